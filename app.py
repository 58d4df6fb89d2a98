"""Every trigger of VTS, each a thin adapter: parse -> one service call -> plain result."""

from __future__ import annotations

from typing import Any

from chalice import CORSConfig, Rate, Response  # type: ignore[attr-defined]

from chalicelib.claims import require_role
from chalicelib.function_url import UrlAwareChalice
from chalicelib.http import (
    CORS_HEADERS,
    PIXEL_GIF,
    answers_errors,
    header,
    normalise_framework_error,
    web_hit,
)
from chalicelib.jsonbody import json_object
from chalicelib.model import parse_post_id
from chalicelib.registry.posts import post_body
from chalicelib.wiring import get_services

app = UrlAwareChalice(app_name="vts")
app.api.binary_types.append("image/gif")

RECORD_CORS = CORSConfig(allow_origin="*", max_age=600)
BEACON_TYPES = ["application/json", "text/plain", "application/x-www-form-urlencoded"]


@app.middleware("http")
def framework_errors(event: Any, get_response: Any) -> Response:
    return normalise_framework_error(get_response(event))


def _request() -> Any:
    return app.current_request


def _bearer_claims(header_value: str | None) -> Any:
    # PyJWT (and cryptography) load with the first request that carries a token, not with
    # every Lambda's start (docs/adr/0015-cold-start.md).
    from chalicelib.auth import bearer_claims

    return bearer_claims(header_value, get_services().settings)


def _service_claims() -> Any:
    claims = _bearer_claims(header(app.current_request, "authorization"))
    return require_role(claims, ("service", "admin"))


# ---- recording ----------------------------------------------------------------------------


@app.route(
    "/v1/posts/{post_id}/views", methods=["POST"], cors=RECORD_CORS, content_types=BEACON_TYPES
)
@answers_errors(CORS_HEADERS)
def record_view(post_id: str) -> Response:
    services = get_services()
    hit = web_hit(app.current_request, post_id, services.settings)
    outcome = services.web_recorder.record(hit)
    if outcome.counted:
        return Response(body={"counted": True}, status_code=201)
    return Response(body="", status_code=204)


@app.route("/v1/posts/{post_id}/pixel.gif", methods=["GET"], cors=RECORD_CORS)
def record_pixel(post_id: str) -> Response:
    headers: dict[str, str | list[str]] = {"Content-Type": "image/gif", "Cache-Control": "no-store"}

    @answers_errors()
    def record() -> Response:
        services = get_services()
        hit = web_hit(app.current_request, post_id, services.settings, query=True)
        outcome = services.web_recorder.record(hit)
        return Response(body="", headers={"X-VTS-Outcome": outcome.reason})

    # A no-script embed always gets its pixel; the outcome travels in a header.
    answer = record()
    if answer.status_code >= 400 and isinstance(answer.body, dict):
        headers["X-VTS-Outcome"] = answer.body["error"]["code"]
    else:
        headers.update(answer.headers)
    return Response(body=PIXEL_GIF, status_code=200, headers=headers)


# ---- registry (service token) ---------------------------------------------------------------


@app.route("/v1/posts/{post_id}", methods=["PUT"])
@answers_errors()
def register_post(post_id: str) -> Response:
    from chalicelib.registry.schema import PostFields, validated  # registry routes only

    _service_claims()
    number = parse_post_id(post_id)
    fields = validated(PostFields, json_object(_request().raw_body))
    record, created = get_services().posts.put(number, fields.details())
    return Response(body=post_body(record), status_code=201 if created else 200)


@app.route("/v1/posts/{post_id}", methods=["DELETE"])
@answers_errors()
def delete_post(post_id: str) -> Response:
    _service_claims()
    get_services().posts.delete(parse_post_id(post_id))
    return Response(body="", status_code=204)


@app.route("/v1/players/{player_key}", methods=["PUT"])
@answers_errors()
def register_player(player_key: str) -> Response:
    from chalicelib.players.directory import check_player_key, player_body
    from chalicelib.registry.schema import PlayerFields, validated  # registry routes only

    _service_claims()
    key = check_player_key(player_key)
    fields = validated(PlayerFields, json_object(_request().raw_body))
    record, created = get_services().players.put(key, fields.details())
    return Response(body=player_body(record), status_code=201 if created else 200)


@app.route("/v1/players/{player_key}", methods=["DELETE"])
@answers_errors()
def delete_player(player_key: str) -> Response:
    _service_claims()
    get_services().players.delete(player_key)
    return Response(body="", status_code=204)


@app.route("/v1/registry/batch", methods=["POST"])
@answers_errors()
def registry_batch() -> Response:
    """Many posts and players at once (docs/makapix.md): each applied or refused on its own."""
    from chalicelib.registry.batch import RegistryBatch  # registry routes only

    _service_claims()
    services = get_services()
    outcome = RegistryBatch(services.posts, services.players).apply_body(_request().raw_body)
    return Response(body=outcome.body(), headers={"X-VTS-Changed": str(outcome.changed)})


# ---- players (IoT rule iot_rules/player_views.json -> this Lambda) -------------------------


@app.lambda_function(name="player_views")
def player_views(event: Any, context: Any) -> dict[str, Any]:
    """One view report from a player; only an infrastructure fault raises (Lambda retries)."""
    return get_services().player_views.record(event)


# ---- rollup: live counters from the events stream, the daily exact close -------------------
# The stream's event source mapping (partial batch responses, bisect, on-failure queue) is in
# infra/: Chalice's on_dynamodb_record can do neither (docs/adr/0003-stream-handler.md).


@app.lambda_function(name="aggregate")
def aggregate(event: Any, context: Any) -> dict[str, Any]:
    """One batch of raw-event stream records -> live counters; answers the records to retry."""
    return get_services().aggregator.handle(event)


@app.schedule(Rate(1, unit=Rate.HOURS), name="close_days")
def close_days(event: Any) -> dict[str, Any]:
    """Close every finished Day exactly. "Now" is the clock's, never the event's time."""
    services = get_services()
    return services.day_closer.run(services.clock.now()).as_dict()


# ---- reading: stats (docs/stats.md) ---------------------------------------------------------

STATS_HEADERS = {"Cache-Control": "private, no-store"}
COUNTER_HEADERS = {**CORS_HEADERS, "Cache-Control": "public, max-age=60"}


def _reader() -> Any:
    """The caller's Claims (None without a token). Behind a Cognito or custom authorizer,
    build them from ``_request().context["authorizer"]`` here instead: nothing else changes."""
    return _bearer_claims(header(_request(), "authorization"))


def _params() -> dict[str, str]:
    return dict(_request().query_params or {})


def _headers(base: dict[str, str], extra: dict[str, str] | None = None) -> dict[str, str | list[str]]:
    return {**base, **(extra or {})}


@app.route("/v1/posts/{post_id}/counter", methods=["GET"], cors=RECORD_CORS)
@answers_errors({**CORS_HEADERS, "Cache-Control": "no-store"})
def post_counter(post_id: str) -> Response:
    """Public: a count may be a minute old (browsers and CDNs absorb repeated reads, DESIGN
    §8); an error (unknown post, bad id, storage down) is never cached."""
    return Response(body=get_services().stats.counter(post_id), headers=_headers(COUNTER_HEADERS))


@app.route("/v1/posts/{post_id}/stats", methods=["GET"])
@answers_errors(STATS_HEADERS)
def post_stats(post_id: str) -> Response:
    stats = get_services().stats.post_stats(_reader(), post_id, _params())
    return Response(body=stats, headers=_headers(STATS_HEADERS))


@app.route("/v1/posts/{post_id}/stats.csv", methods=["GET"])
@answers_errors(STATS_HEADERS)
def post_stats_csv(post_id: str) -> Response:
    text, name = get_services().stats.post_csv(_reader(), post_id, _params())
    csv = {"Content-Type": "text/csv; charset=utf-8",
           "Content-Disposition": f'attachment; filename="{name}"'}
    return Response(body=text, headers=_headers(STATS_HEADERS, csv))


@app.route("/v1/artists/{artist_id}/stats", methods=["GET"])
@answers_errors(STATS_HEADERS)
def artist_stats(artist_id: str) -> Response:
    stats = get_services().stats.artist_stats(_reader(), artist_id, _params())
    return Response(body=stats, headers=_headers(STATS_HEADERS))


@app.route("/v1/artists/{artist_id}/posts", methods=["GET"])
@answers_errors(STATS_HEADERS)
def artist_posts(artist_id: str) -> Response:
    page = get_services().stats.artist_posts(_reader(), artist_id, _params())
    return Response(body=page, headers=_headers(STATS_HEADERS))


@app.route("/v1/site/stats", methods=["GET"])
@answers_errors(STATS_HEADERS)
def site_stats() -> Response:
    stats = get_services().stats.site_stats(_reader(), _params())
    return Response(body=stats, headers=_headers(STATS_HEADERS))


# ---- front end: the tracker script and the artist dashboard (built into chalicelib/web/static)


@app.route("/v1/vts.js", methods=["GET"], cors=True)
@answers_errors(CORS_HEADERS)
def tracker_script() -> Response:
    from chalicelib.web import assets

    return assets.respond(assets.tracker_script(), header(_request(), "if-none-match"))


@app.route("/dashboard", methods=["GET"])
@answers_errors()
def dashboard() -> Response:
    from chalicelib.web import assets

    # The sign-in token travels in the URL fragment, which browsers never send here. Images
    # only from the page's own origin and the configured art origins (VTS_ART_ORIGINS).
    policy = assets.dashboard_csp(get_services().settings.art_origins)
    page_headers = {"Content-Security-Policy": policy, "Referrer-Policy": "no-referrer"}
    return assets.respond(assets.dashboard_page(), header(_request(), "if-none-match"), page_headers)


@app.route("/dashboard/assets/{name}", methods=["GET"])
@answers_errors()
def dashboard_asset(name: str) -> Response:
    from chalicelib.web import assets

    return assets.respond(assets.dashboard_asset(name), header(_request(), "if-none-match"))


app.api.binary_types.append("image/png")


@app.route("/demo-art/{name}", methods=["GET"])
@answers_errors()
def demo_art(name: str) -> Response:
    """The demo data's pixel art (``{n}.png``): only beside a local DynamoDB (the local
    stack, tests), a 404 in AWS."""
    from chalicelib.errors import NotFound
    from chalicelib.web import demo_art

    if not demo_art.served(get_services().settings):
        raise NotFound("demo art is served by the local stack only")
    picture = demo_art.picture(demo_art.number_of(name))
    headers: dict[str, str | list[str]] = {
        "Content-Type": "image/png",
        "Cache-Control": demo_art.CACHE,
        "X-Content-Type-Options": "nosniff",
    }
    return Response(body=picture, status_code=200, headers=headers)


# ---- operations -----------------------------------------------------------------------------


@app.route("/v1/health", methods=["GET"], cors=True)
@answers_errors()
def health() -> Any:
    from chalicelib.health import health_report

    return health_report(get_services(), _reader())
