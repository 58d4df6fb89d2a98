"""Table definitions: the single source for the code, the local stack, tests and ``infra/``."""

from __future__ import annotations

from typing import Any

TTL_ATTRIBUTE = "expires_at"
BY_VIEWS_INDEX = "by_views"
# What a post's RANK item carries besides its index key (the listing row; docs/data-model.md).
RANK_ROW_ATTRIBUTES = ("i", "first_at", "last_at")

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
        # Post RANK items carry gpk = A#{artist}: an artist's posts by lifetime Views. The
        # index projects the few attributes a listing row shows, so a page (or top_posts)
        # is one Query of tiny entries, with no read of the posts' items.
        "GlobalSecondaryIndexes": [
            {
                "IndexName": BY_VIEWS_INDEX,
                "KeySchema": [
                    {"AttributeName": "gpk", "KeyType": "HASH"},
                    {"AttributeName": "v", "KeyType": "RANGE"},
                ],
                "Projection": {
                    "ProjectionType": "INCLUDE",
                    "NonKeyAttributes": list(RANK_ROW_ATTRIBUTES),
                },
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
