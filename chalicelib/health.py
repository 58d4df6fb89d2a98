"""``GET /v1/health``: is storage answering; for an operator (admin or service token) also
what has been dropped lately and how far the rollup is (DESIGN §8).

A public call answers ``{"status": "ok"}`` after one registry read (a single GetItem) that
proves the tables answer: a probe that says "ok" while DynamoDB is down would be worse than
none. It writes nothing and reads nothing else, so anyone may poll it cheaply.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from chalicelib.claims import Claims
from chalicelib.days import day_of
from chalicelib.rollup.status import rollup_status
from chalicelib.wiring import Services

OPERATOR_ROLES = ("admin", "service")


def health_report(services: Services, claims: Claims | None = None) -> dict[str, Any]:
    """The public answer, or the full report when ``claims`` are an operator's."""
    if claims is None or claims.role not in OPERATOR_ROLES:
        return public_health(services)
    return operator_health(services)


def public_health(services: Services) -> dict[str, Any]:
    # One read; a failure raises StorageUnavailable (503 + Retry-After).
    services.registry.get_post(0)
    return {"status": "ok"}


def operator_health(services: Services) -> dict[str, Any]:
    now = services.clock.now()
    services.drops.flush()
    days = [day_of(now - timedelta(days=n)) for n in range(2)]
    services.registry.get_post(0)
    return {
        "status": "ok",
        "stage": services.settings.stage,
        "now": now.isoformat(),
        "drops": {
            "today": services.drop_store.get_drops(days[:1]),
            "since_yesterday": services.drop_store.get_drops(days),
        },
        # Who reported last (a bridge delivering, or not): kept at each drop flush.
        "players": {"last_report": services.drop_store.last_report()},
        # The close watermark, the Days still open, and the stream handler's position/lag.
        "rollup": rollup_status(services.aggregates, now),
    }
