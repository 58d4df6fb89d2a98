"""The only place that picks adapters: DynamoDB (real or moto) or in-memory fakes.

Services are built lazily on first use and cached per Settings, so nothing touches the
environment or the network at import time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from chalicelib.clock import Clock, SystemClock
from chalicelib.config import Settings, get_settings
from chalicelib.drops import DropCounter
from chalicelib.known import KnownViews
from chalicelib.registry.posts import PostDirectory
from chalicelib.secrets import with_secrets
from chalicelib.storage.ports import AggregateStore, DropStore, EventStore, Registry

if TYPE_CHECKING:
    from chalicelib.ingest.web import WebRecorder
    from chalicelib.players.acks import AckPublisher
    from chalicelib.players.directory import PlayerDirectory
    from chalicelib.players.pipeline import PlayerViewRecorder
    from chalicelib.rollup.aggregate import Aggregator
    from chalicelib.rollup.close import DayCloser
    from chalicelib.stats.service import StatsService
    from chalicelib.storage.aggregates import Aggregates


def dynamodb_client(settings: Settings, service: str = "dynamodb") -> Any:
    """A boto3 client of DynamoDB (or, with ``service="dynamodbstreams"``, of its Streams,
    which the local stream pump reads) at the configured endpoint."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=2,
        # moto (local endpoint) answers wide queries far slower than DynamoDB does.
        read_timeout=30 if settings.dynamodb_endpoint else 5,
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
            kwargs["aws_secret_access_key"] = "testing"  # noqa: S105 - moto's dummy
    return boto3.client(service, **kwargs)


@dataclass
class Services:
    """Everything the handlers use, already wired."""

    settings: Settings
    events: EventStore
    registry: Registry
    drop_store: DropStore
    aggregate_items: AggregateStore  # the aggregates table's generic items (tools, tests)
    clock: Clock = field(default_factory=SystemClock)
    client: Any = None  # the boto3 client when backed by DynamoDB

    @property
    def aggregates(self) -> Aggregates:
        """The aggregates table as the services speak of it (over ``aggregate_items``)."""
        from chalicelib.storage.aggregates import Aggregates

        return Aggregates(self.aggregate_items)

    @cached_property
    def drops(self) -> DropCounter:
        import os

        from chalicelib.metrics import stdout_sink

        # EMF lines only where CloudWatch reads them: inside Lambda.
        in_lambda = bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))
        sink = stdout_sink(self.settings.stage) if in_lambda else None
        return DropCounter(self.drop_store, self.clock, self.settings.drop_flush_s, sink)

    @cached_property
    def known_views(self) -> KnownViews:
        """View keys the store confirmed, shared by web and player recording (one container)."""
        return KnownViews()

    @cached_property
    def posts(self) -> PostDirectory:
        return PostDirectory(
            self.registry,
            self.clock,
            self.settings.post_cache_s,
            aggregates=self.aggregates,
            hot_shards=self.settings.hot_shards,
        )

    @cached_property
    def stats(self) -> StatsService:
        from chalicelib.stats.service import StatsService

        return StatsService(
            self.aggregates, self.posts, self.clock, site_url=self.settings.site_url
        )

    @cached_property
    def web_recorder(self) -> WebRecorder:
        from chalicelib.enrich.device import classify
        from chalicelib.enrich.geo import get_geo_lookup
        from chalicelib.ingest.web import WebRecorder
        from chalicelib.netcap import Caps, NetCaps

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
            known_views=self.known_views,
            net_caps=NetCaps(Caps(self.settings.net_views, self.settings.net_impressions)),
        )

    @cached_property
    def players(self) -> PlayerDirectory:
        from chalicelib.players.directory import PlayerDirectory

        return PlayerDirectory(self.registry, self.clock, self.settings.post_cache_s)

    @cached_property
    def acks(self) -> AckPublisher:
        """Where view acks go: none, the local MQTT broker, or IoT Core's data plane."""
        from chalicelib.players import acks

        transport = self.settings.ack_transport
        if transport == "mqtt":
            return acks.MqttAckPublisher(self.settings.mqtt_host, self.settings.mqtt_port)
        if transport == "iot":
            return acks.IotDataAckPublisher(iot_data_client(self.settings))
        return acks.NullAckPublisher()

    @cached_property
    def player_views(self) -> PlayerViewRecorder:
        from chalicelib.players.pipeline import PlayerViewRecorder

        return PlayerViewRecorder(
            events=self.events,
            registry=self.registry,
            players=self.players,
            posts=self.posts,
            drops=self.drops,
            acks=self.acks,
            clock=self.clock,
            player_interval_s=self.settings.player_interval_s,
            retransmission_window_s=self.settings.retransmission_window_s,
            visitor_key=self.settings.visitor_key,
            known_views=self.known_views,
            bridges=frozenset(self.settings.player_bridges),
            backlog_s=self.settings.player_backlog_s,
        )

    @cached_property
    def aggregator(self) -> Aggregator:
        """The stream handler's service (one per container: it remembers markers written)."""
        from chalicelib.rollup.aggregate import Aggregator
        from chalicelib.rollup.hot import HotPosts

        settings = self.settings
        hot = HotPosts(
            self.aggregates,
            self.clock,
            ttl_days=settings.event_ttl_days,
            registry=self.registry,
            looks_per_s=settings.hot_views_per_s,
            shards=settings.hot_shards,
        )
        return Aggregator(
            self.aggregates,
            self.drops,
            self.clock,
            ttl_days=settings.event_ttl_days,
            state_every_s=settings.stream_state_every_s,
            hot=hot,
        )

    @cached_property
    def day_closer(self) -> DayCloser:
        import os

        from chalicelib.metrics import to_stdout
        from chalicelib.netcap import Caps
        from chalicelib.rollup.close import DayCloser

        # The watermark-age metric (alarmed in infra/) only where CloudWatch reads it.
        in_lambda = bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))
        return DayCloser(
            self.aggregates,
            self.events,
            self.clock,
            grace_s=self.settings.close_grace_s,
            budget_s=self.settings.close_budget_s,
            ttl_days=self.settings.event_ttl_days,
            stage=self.settings.stage,
            emit=to_stdout if in_lambda else None,
            caps=Caps(self.settings.net_views, self.settings.net_impressions),
        )


def iot_data_client(settings: Settings) -> Any:
    """boto3 ``iot-data`` for acks; the endpoint is the account's ATS data endpoint."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=2, read_timeout=5, retries={"max_attempts": 2, "mode": "standard"}
    )
    kwargs: dict[str, Any] = {"region_name": settings.region, "config": config}
    if settings.iot_data_endpoint:
        endpoint = settings.iot_data_endpoint
        kwargs["endpoint_url"] = endpoint if "://" in endpoint else f"https://{endpoint}"
    return boto3.client("iot-data", **kwargs)


def dynamodb_services(settings: Settings, clock: Clock | None = None) -> Services:
    from chalicelib.storage.aggregates.items_dynamodb import DynamoAggregateStore
    from chalicelib.storage.dynamodb import DynamoDropStore, DynamoEventStore, DynamoRegistry

    client = dynamodb_client(settings)
    return Services(
        settings=settings,
        events=DynamoEventStore(client, settings.events_table, settings.event_ttl_days),
        registry=DynamoRegistry(client, settings.registry_table),
        drop_store=DynamoDropStore(client, settings.aggregates_table),
        aggregate_items=DynamoAggregateStore(client, settings.aggregates_table),
        clock=clock or SystemClock(),
        client=client,
    )


# The fakes keep nothing past the process: tests and replays that set no visitor key hash
# with this one. DynamoDB-backed services always need the real key.
MEMORY_VISITOR_KEY = "vts-in-memory-visitor-key-not-a-secret"


def memory_services(settings: Settings, clock: Clock | None = None) -> Services:
    from chalicelib.storage.aggregates.items_memory import MemoryAggregateStore
    from chalicelib.storage.memory import MemoryDropStore, MemoryEventStore, MemoryRegistry

    if not settings.visitor_key:
        settings = replace(settings, visitor_key=MEMORY_VISITOR_KEY)
    return Services(
        settings=settings,
        events=MemoryEventStore(settings.event_ttl_days),
        registry=MemoryRegistry(),
        drop_store=MemoryDropStore(),
        aggregate_items=MemoryAggregateStore(),
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
            services = _cache[settings] = dynamodb_services(with_secrets(settings))
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
