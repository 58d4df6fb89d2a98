"""Storage: ports (Protocols), key formats, and the DynamoDB and in-memory adapters.

Only this package (and ``wiring``) talks to DynamoDB.
"""
