"""``vts register-player`` against moto's IoT, and ``vts simulate-players`` (awscrt) through
the real broker and bridge into moto."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from vtsops.cli import build_parser
from vtsops.iot_provision import THING, iot_client
from vtsops.mqtt_broker import BrokerProcess
from vtsops.trigger_mqtt import PlayerViewBridge

from chalicelib.clock import FixedClock
from chalicelib.config import Settings
from chalicelib.wiring import Services, dynamodb_services
from tests.conftest import free_port

pytestmark = pytest.mark.integration
KEY = "6f1c2f4e-9a57-4c8e-b1d2-3f6a8e0c7d15"


def vts(*argv: str) -> int:
    parser, commands = build_parser()
    args = parser.parse_args(list(argv))
    return commands[args.command](args)


def test_register_player_provisions_iot_and_the_registry(
    aws_env: Settings, moto_endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = vts("register-player", "--owner", "user-9", "--player-key", KEY, "--country", "PT",
               "--timezone", "Europe/Lisbon", "--out", str(tmp_path), "--iot-endpoint", moto_endpoint,
               "--policy-name", f"{aws_env.registry_table}-player")
    assert code == 0, capsys.readouterr().err
    files = tmp_path / KEY
    assert "BEGIN CERTIFICATE" in (files / "certificate.pem.crt").read_text()
    assert stat.S_IMODE((files / "private.pem.key").stat().st_mode) == 0o600
    info = json.loads((files / "player.json").read_text())
    assert info["client_id"] == f"p3a-{KEY}" and info["view_topic"] == f"makapix/player/{KEY}/view"

    iot = iot_client(aws_env.region, moto_endpoint)
    [principal] = iot.list_thing_principals(thingName=KEY)["principals"]
    assert principal == info["certificate_arn"]
    [policy] = iot.list_attached_policies(target=principal)["policies"]
    document = json.loads(iot.get_policy(policyName=policy["policyName"])["policyDocument"])
    resources = {s["Action"]: s["Resource"] for s in document["Statement"]}
    assert resources["iot:Publish"].endswith(f":topic/makapix/player/{THING}/view")
    assert resources["iot:Subscribe"].endswith(f":topicfilter/makapix/player/{THING}/view/ack")
    assert resources["iot:Receive"].endswith(f":topic/makapix/player/{THING}/view/ack")
    assert any(r.endswith(f":client/p3a-{THING}") for r in resources["iot:Connect"])

    player = dynamodb_services(aws_env).registry.get_player(KEY)
    assert player is not None and (player.owner_id, player.country, player.timezone) == (
        "user-9", "PT", "Europe/Lisbon")


def test_register_player_validates_before_creating_anything(
    aws_env: Settings, moto_endpoint: str, tmp_path: Path
) -> None:
    assert vts("register-player", "--owner", "u", "--country", "Portugal", "--out", str(tmp_path),
               "--iot-endpoint", moto_endpoint) == 2
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def broker() -> Iterator[BrokerProcess]:
    process = BrokerProcess(free_port())
    process.start()
    yield process
    process.stop()


@pytest.fixture
def services(aws_env: Settings) -> Services:
    services = dynamodb_services(replace(aws_env, post_cache_s=0), clock=FixedClock(datetime.now(UTC)))
    for post_id in (1, 2, 3):
        services.posts.register(post_id, "artist-1")
    return services


def test_simulated_players_go_through_the_broker_into_storage(
    services: Services, broker: BrokerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    bridge = PlayerViewBridge(services, "127.0.0.1", broker.port, workers=1)
    bridge.start()
    try:
        code = vts("simulate-players", "--players", "3", "--messages", "30", "--rate", "300",
                   "--posts", "1-3", "--port", str(broker.port), "--retransmit", "0.3",
                   "--unset-clock", "0.5", "--ack", "0.4", "--ack-wait", "15", "--json")
        assert code == 0, capsys.readouterr().err
        report: dict[str, Any] = json.loads(capsys.readouterr().out)
        assert bridge.wait_for(report["sent"])
    finally:
        bridge.stop()
    assert report["reports"] == 30 and report["sent"] == 30 + report["retransmissions"]
    assert bridge.handled == report["sent"] and (bridge.failures, bridge.rule_errors) == (0, 0)
    outcomes = bridge.outcomes
    # The bridge's clock stands still: each player gets one slot, the rest is rate-limited,
    # and every resent message is caught as a retransmission before it can spend a slot.
    assert outcomes["counted"] + outcomes["impression"] + outcomes["player_duplicate"] == 3
    assert outcomes["player_retransmission"] >= report["retransmissions"]
    assert set(outcomes) <= {"counted", "impression", "player_duplicate", "player_retransmission",
                             "player_rate_limited"}
    assert sum(report["acks"].values()) == report["ack_requests"]
