"""Table definitions: the single source for the code, the local stack, tests and ``infra/``."""

from __future__ import annotations

from typing import Any

TTL_ATTRIBUTE = "expires_at"

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
        ],
        "TimeToLive": None,
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
    return request
