"""``GET /v1/health``: is storage answering, what has been dropped lately, how far the rollup is."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from chalicelib.rollup.status import rollup_status
from chalicelib.storage import keys
from chalicelib.wiring import Services


def health_report(services: Services) -> dict[str, Any]:
    now = services.clock.now()
    services.drops.flush()
    days = [keys.day_of(now - timedelta(days=n)) for n in range(2)]
    # A registry read proves the tables answer; a failure raises StorageUnavailable (503).
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
