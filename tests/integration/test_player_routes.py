"""``PUT``/``DELETE /v1/players/{player_key}`` through the Chalice test client, backed by moto."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.config import Settings
from chalicelib.wiring import dynamodb_services
from tests.conftest import auth

pytestmark = pytest.mark.integration
KEY = "6f1c2f4e-9a57-4c8e-b1d2-3f6a8e0c7d15"


def put(api: Any, settings: Settings, body: Any, key: str = KEY, role: str = "service") -> Any:
    headers = {"Content-Type": "application/json", **auth(settings, "svc", role)}
    return api.http.put(f"/v1/players/{key}", headers=headers, body=json.dumps(body))


def test_register_update_and_revoke(api: Any, aws_env: Settings) -> None:
    answer = put(api, aws_env, {"owner_id": "user-1", "country": "br", "timezone": "America/Sao_Paulo"},
                 key=KEY.upper())
    assert answer.status_code == 201
    assert answer.json_body == {"player_key": KEY, "owner_id": "user-1", "country": "BR",
                                "timezone": "America/Sao_Paulo"}
    assert put(api, aws_env, {"owner_id": "user-2"}).status_code == 200
    stored = dynamodb_services(aws_env).registry.get_player(KEY)
    assert stored is not None and (stored.owner_id, stored.country) == ("user-2", None)
    headers = auth(aws_env, "svc", "service")
    assert api.http.delete(f"/v1/players/{KEY}", headers=headers).status_code == 204
    again = api.http.delete(f"/v1/players/{KEY}", headers=headers)
    assert again.status_code == 404 and again.json_body["error"]["code"] == "unknown_player"


@pytest.mark.parametrize(("key", "body", "code"), [
    ("not-a-uuid", {"owner_id": "u"}, "invalid_player_key"),
    (KEY, {}, "invalid_owner_id"),
    (KEY, {"owner_id": "u", "country": "Brazil"}, "invalid_country"),
    (KEY, {"owner_id": "u", "timezone": "Atlantis/Capital"}, "invalid_timezone"),
    (KEY, ["owner_id"], "invalid_json"),
])
def test_bad_registrations_answer_400(api: Any, aws_env: Settings, key: str, body: Any, code: str) -> None:
    answer = put(api, aws_env, body, key=key)
    assert answer.status_code == 400
    assert answer.json_body["error"]["code"] == code


def test_only_services_and_admins_register_players(api: Any, aws_env: Settings) -> None:
    assert put(api, aws_env, {"owner_id": "u"}, role="artist").status_code == 403
    anonymous = api.http.put(f"/v1/players/{KEY}", headers={"Content-Type": "application/json"},
                             body=json.dumps({"owner_id": "u"}))
    assert anonymous.status_code == 401
    assert put(api, aws_env, {"owner_id": "u"}, role="admin").status_code == 201
