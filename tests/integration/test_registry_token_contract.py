"""Redelivery tokens on rate slots and seen-once markers: the same contract for the
DynamoDB registry (moto over HTTP) and the in-memory fake."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.config import Settings
from chalicelib.wiring import Services, dynamodb_services, memory_services

pytestmark = pytest.mark.integration
AT = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "dynamodb"])
def services(request: pytest.FixtureRequest) -> Services:
    if request.param == "memory":
        return memory_services(Settings())
    settings: Settings = request.getfixturevalue("aws_env")
    return dynamodb_services(settings)


def test_a_marker_repeated_with_its_own_token_is_a_redelivery(services: Services) -> None:
    registry = services.registry
    assert registry.mark_once("ptx", "k#1#t", 60, AT, token="evt-1") is True
    # The same event again (a Lambda retry): still "first".
    assert registry.mark_once("ptx", "k#1#t", 60, AT + timedelta(seconds=5), token="evt-1") is True
    # Another delivery of the same message (a QoS 1 retransmission): a repeat.
    assert registry.mark_once("ptx", "k#1#t", 60, AT + timedelta(seconds=6), token="evt-2") is False
    assert registry.mark_once("ptx", "k#1#t", 60, AT + timedelta(seconds=6)) is False


def test_a_marker_without_token_behaves_as_before(services: Services) -> None:
    registry = services.registry
    assert registry.mark_once("ptx", "plain", 60, AT) is True
    assert registry.mark_once("ptx", "plain", 60, AT + timedelta(seconds=1)) is False
    assert registry.mark_once("ptx", "plain", 60, AT + timedelta(seconds=61)) is True


def test_a_slot_is_not_its_own_competitor(services: Services) -> None:
    registry = services.registry
    assert registry.take_slot("player", "k", 5, AT, token="evt-1") is None
    assert registry.take_slot("player", "k", 5, AT + timedelta(seconds=1), token="evt-1") is None
    wait = registry.take_slot("player", "k", 5, AT + timedelta(seconds=2), token="evt-2")
    assert wait is not None and 0 < wait <= 5
    assert registry.take_slot("player", "k", 5, AT + timedelta(seconds=2)) is not None


def test_an_untokened_claim_clears_the_previous_holders_token(services: Services) -> None:
    registry = services.registry
    assert registry.take_slot("player", "k2", 5, AT, token="evt-1") is None
    assert registry.take_slot("player", "k2", 5, AT + timedelta(seconds=6)) is None
    assert registry.take_slot("player", "k2", 5, AT + timedelta(seconds=7), token="evt-1") is not None
