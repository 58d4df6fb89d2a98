"""The only place that picks adapters: DynamoDB (real or moto) or in-memory fakes.

Services are built lazily on first use and cached per Settings, so nothing touches the
environment or the network at import time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from chalicelib.clock import Clock, SystemClock
from chalicelib.config import Settings, get_settings
from chalicelib.ingest.drops import DropCounter
from chalicelib.registry.posts import PostDirectory
from chalicelib.storage.ports import DropStore, EventStore, Registry


def dynamodb_client(settings: Settings) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=2,
        read_timeout=5,
        retries={"max_attempts": 3, "mode": "standard"},
        max_pool_connections=20,
    )
    kwargs: dict[str, Any] = {"region_name": settings.region, "config": config}
    if settings.dynamodb_endpoint:
        kwargs["endpoint_url"] = settings.dynamodb_endpoint
        # moto accepts any credentials; set them only when none are configured.
        session = boto3.session.Session()
        if session.get_credentials() is None:
            kwargs["aws_access_key_id"] = "testing"
            kwargs["aws_secret_access_key"] = "testing"
    return boto3.client("dynamodb", **kwargs)


@dataclass
class Services:
    """Everything the handlers use, already wired."""

    settings: Settings
    events: EventStore
    registry: Registry
    drop_store: DropStore
    clock: Clock = field(default_factory=SystemClock)
    client: Any = None  # the boto3 client when backed by DynamoDB

    @cached_property
    def drops(self) -> DropCounter:
        return DropCounter(self.drop_store, self.clock, self.settings.drop_flush_s)

    @cached_property
    def posts(self) -> PostDirectory:
        return PostDirectory(self.registry, self.clock, self.settings.post_cache_s)

    @cached_property
    def web_recorder(self) -> Any:
        from chalicelib.enrich.device import classify
        from chalicelib.enrich.geo import get_geo_lookup
        from chalicelib.ingest.web import WebRecorder

        self.settings.require_secrets()
        return WebRecorder(
            events=self.events,
            registry=self.registry,
            posts=self.posts,
            drops=self.drops,
            clock=self.clock,
            classify=classify,
            country=get_geo_lookup(self.settings.geoip_db).country,
            visitor_key=self.settings.visitor_key,
            impression_interval_s=self.settings.impression_interval_s,
        )


def dynamodb_services(settings: Settings, clock: Clock | None = None) -> Services:
    from chalicelib.storage.dynamodb import DynamoDropStore, DynamoEventStore, DynamoRegistry

    client = dynamodb_client(settings)
    return Services(
        settings=settings,
        events=DynamoEventStore(client, settings.events_table, settings.event_ttl_days),
        registry=DynamoRegistry(client, settings.registry_table),
        drop_store=DynamoDropStore(client, settings.aggregates_table),
        clock=clock or SystemClock(),
        client=client,
    )


def memory_services(settings: Settings, clock: Clock | None = None) -> Services:
    from chalicelib.storage.memory import MemoryDropStore, MemoryEventStore, MemoryRegistry

    return Services(
        settings=settings,
        events=MemoryEventStore(settings.event_ttl_days),
        registry=MemoryRegistry(),
        drop_store=MemoryDropStore(),
        clock=clock or SystemClock(),
    )


_lock = threading.Lock()
_override: Services | None = None
_cache: dict[Settings, Services] = {}


def get_services() -> Services:
    if _override is not None:
        return _override
    settings = get_settings()
    with _lock:
        services = _cache.get(settings)
        if services is None:
            services = _cache[settings] = dynamodb_services(settings)
    return services


@contextmanager
def use(services: Services) -> Iterator[Services]:
    """Run the handlers over given services (tests, replays, the local bridge)."""
    global _override
    previous, _override = _override, services
    try:
        yield services
    finally:
        _override = previous
