"""Table definitions: the single source for the code, the local stack, tests and ``infra/``."""

from __future__ import annotations

from typing import Any

TTL_ATTRIBUTE = "expires_at"
BY_VIEWS_INDEX = "by_views"

# logical name -> definition. Physical names come from Settings (``vts-{stage}-{name}``).
TABLES: dict[str, dict[str, Any]] = {
    "events": {
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
        "TimeToLive": TTL_ATTRIBUTE,
    },
    "aggregates": {
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "gpk", "AttributeType": "S"},
            {"AttributeName": "v", "AttributeType": "N"},
        ],
        # Post TOTAL items carry gpk = A#{artist}: an artist's posts by lifetime Views.
        # KEYS_ONLY: every change of `v` rewrites the index entry, so keep it tiny (the
        # adapter reads the full TOTAL items of a page with one BatchGetItem).
        "GlobalSecondaryIndexes": [
            {
                "IndexName": BY_VIEWS_INDEX,
                "KeySchema": [
                    {"AttributeName": "gpk", "KeyType": "HASH"},
                    {"AttributeName": "v", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
        # Only the close's activity markers carry expires_at; counters never expire.
        "TimeToLive": TTL_ATTRIBUTE,
    },
    "registry": {
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        "TimeToLive": TTL_ATTRIBUTE,
    },
}


def create_table_request(logical: str, physical_name: str) -> dict[str, Any]:
    """The CreateTable arguments for one table (on-demand billing)."""
    spec = TABLES[logical]
    request: dict[str, Any] = {
        "TableName": physical_name,
        "KeySchema": spec["KeySchema"],
        "AttributeDefinitions": spec["AttributeDefinitions"],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if "StreamSpecification" in spec:
        request["StreamSpecification"] = spec["StreamSpecification"]
    if "GlobalSecondaryIndexes" in spec:
        request["GlobalSecondaryIndexes"] = spec["GlobalSecondaryIndexes"]
    return request
