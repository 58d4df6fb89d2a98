"""The player_views topic rule: one JSON file for infra and the bridge (no I/O)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iot_rules import load_rule, parse_sql, player_views_rule
from tests.conftest import load_event

KEY = "6f1c2f4e-9a57-4c8e-b1d2-3f6a8e0c7d15"


def test_the_rule_as_written() -> None:
    rule = player_views_rule()
    assert rule.sql == (
        "SELECT *, topic(3) AS topic_player_key, clientid() AS client_id, "
        "timestamp() AS received_at FROM 'makapix/player/+/view' "
        "WHERE isUndefined(topic_player_key) AND isUndefined(client_id) AND isUndefined(received_at)"
    )
    assert rule.undefined_fields == ("topic_player_key", "client_id", "received_at")
    assert (rule.topic_filter, rule.sql_version, rule.functions) == (
        "makapix/player/+/view", "2016-03-23", ["player_views"])
    assert rule.matches(f"makapix/player/{KEY}/view")
    assert not rule.matches(f"makapix/player/{KEY}/view/ack")
    assert not rule.matches(f"makapix/player/{KEY}/status")


def test_the_event_is_built_as_the_sql_builds_it() -> None:
    rule = player_views_rule()
    payload = load_event("p3a_channel_reactions")
    event = rule.build_event(
        f"makapix/player/{KEY}/view", json.dumps(payload).encode(), f"p3a-{KEY}", 1795514400120
    )
    assert event == load_event("iot_player_view")
    assert list(event)[-3:] == ["topic_player_key", "client_id", "received_at"]


@pytest.mark.parametrize("field", ["topic_player_key", "client_id", "received_at"])
def test_a_payload_carrying_a_rule_field_is_skipped_by_the_where(field: str) -> None:
    rule = player_views_rule()
    forged = json.dumps({"post_id": 1, field: "vts-bridge-makapix"}).encode()
    assert rule.apply(f"makapix/player/{KEY}/view", forged, f"p3a-{KEY}", 42) == ("filtered", None)
    assert rule.build_event(f"makapix/player/{KEY}/view", forged, f"p3a-{KEY}", 42) is None


def test_null_client_ids_stay_null() -> None:
    event = player_views_rule().build_event(f"makapix/player/{KEY}/view", b"{}", None, 42)
    assert event == {"topic_player_key": KEY, "client_id": None, "received_at": 42}


def test_where_terms_other_than_is_undefined_are_refused() -> None:
    parse_sql("SELECT * FROM 'a/+' WHERE isUndefined(x) AND isUndefined(y)")
    with pytest.raises(ValueError):
        parse_sql("SELECT * FROM 'a/+' WHERE isUndefined(x) OR isUndefined(y)")


@pytest.mark.parametrize("payload", [b"not json", b"[1, 2]", b'"text"', b"\xff\xfe", b"12"])
def test_payloads_that_are_not_objects_fail_the_action(payload: bytes) -> None:
    rule = player_views_rule()
    assert rule.apply(f"makapix/player/{KEY}/view", payload, None, 1) == ("error", None)


def test_an_empty_payload_still_invokes_with_the_rule_fields() -> None:
    event = player_views_rule().build_event(f"makapix/player/{KEY}/view", b"", "c", 1)
    assert event == {"topic_player_key": KEY, "client_id": "c", "received_at": 1}


def test_infra_renderings() -> None:
    rule = player_views_rule()
    resource = rule.cloudformation(
        lambda name: {"Fn::GetAtt": [f"{name}Function", "Arn"]},
        lambda group: {"Ref": "PlayerRuleErrors"},
        {"Fn::GetAtt": ["IotRuleRole", "Arn"]},
    )
    props = resource["Properties"]["TopicRulePayload"]
    assert resource["Type"] == "AWS::IoT::TopicRule"
    assert props["Sql"] == rule.sql and props["AwsIotSqlVersion"] == "2016-03-23"
    assert props["Actions"] == [{"Lambda": {"FunctionArn": {"Fn::GetAtt": ["player_viewsFunction", "Arn"]}}}]
    assert props["ErrorAction"]["CloudwatchLogs"]["LogGroupName"] == {"Ref": "PlayerRuleErrors"}
    payload = rule.topic_rule_payload(lambda n: f"arn:{n}", lambda g: g, "arn:role")
    assert payload["actions"] == [{"lambda": {"functionArn": "arn:player_views"}}]


@pytest.mark.parametrize("sql", [
    "SELECT * FROM 'a/+' WHERE x = 1",
    "SELECT *, upper(x) AS y FROM 'a'",
    "SELECT *, clientid(2) AS c FROM 'a'",
    "DELETE FROM 'a'",
])
def test_sql_the_bridge_cannot_mirror_is_refused(sql: str) -> None:
    with pytest.raises(ValueError):
        parse_sql(sql)


def test_a_rule_needs_an_error_action(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text(json.dumps({
        "name": "r", "sql": "SELECT * FROM 'a'", "awsIotSqlVersion": "2016-03-23",
        "actions": [{"lambda": {"function": "f"}}]}))
    with pytest.raises(ValueError):
        load_rule("r", tmp_path)


def test_a_payload_nested_past_any_use_fails_the_action_without_raising() -> None:
    deep = b"[" * 5000 + b"]" * 5000
    assert player_views_rule().apply(f"makapix/player/{KEY}/view", deep, "c", 1) == ("error", None)
