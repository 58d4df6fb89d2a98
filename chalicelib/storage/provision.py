"""Create the tables from ``tables.TABLES`` (local stack and tests; AWS uses ``infra/``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.storage.tables import TABLES, create_table_request


def ensure_tables(client: Any, names: Mapping[str, str]) -> None:
    """Create any missing table of ``names`` (logical name in ``TABLES`` -> physical name,
    e.g. ``Settings.table_names()``) and switch its TTL on. Safe to call again."""
    for logical, name in names.items():
        try:
            client.create_table(**create_table_request(logical, name))
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceInUseException":
                raise
        client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1})
        _ensure_indexes(client, logical, name)
        ttl = TABLES[logical]["TimeToLive"]
        if ttl:
            client.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl}
            )


def _ensure_indexes(client: Any, logical: str, name: str) -> None:
    """Add a global secondary index a table made before the index existed is missing."""
    wanted = TABLES[logical].get("GlobalSecondaryIndexes", [])
    if not wanted:
        return
    table = client.describe_table(TableName=name)["Table"]
    present = {index["IndexName"] for index in table.get("GlobalSecondaryIndexes", [])}
    for index in wanted:
        if index["IndexName"] in present:
            continue
        client.update_table(
            TableName=name,
            AttributeDefinitions=TABLES[logical]["AttributeDefinitions"],
            GlobalSecondaryIndexUpdates=[{"Create": index}],
        )


def stream_arn(client: Any, events_table: str) -> str:
    table = client.describe_table(TableName=events_table)["Table"]
    return str(table["LatestStreamArn"])
