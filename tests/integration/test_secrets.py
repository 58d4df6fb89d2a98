"""Secrets named by SSM parameters (``VTS_*_PARAM``) are read at runtime from SSM (moto over
HTTP), once, and a missing or unreachable parameter store fails clearly."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.config import Settings
from chalicelib.errors import ConfigError, StorageUnavailable
from chalicelib.secrets import with_secrets

pytestmark = pytest.mark.integration


@pytest.fixture
def ssm(moto_endpoint: str) -> Iterator[Any]:
    import boto3

    yield boto3.client("ssm", endpoint_url=moto_endpoint, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")


class CountingSsm:
    """The real client (moto), counting GetParameters calls."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls = 0

    def get_parameters(self, **kwargs: Any) -> Any:
        self.calls += 1
        return self.client.get_parameters(**kwargs)


def names() -> tuple[str, str]:
    prefix = f"/vts/t{uuid.uuid4().hex[:8]}"
    return f"{prefix}/jwt-secret", f"{prefix}/visitor-key"


def test_secrets_come_from_ssm_once(ssm: Any) -> None:
    jwt, key = names()
    ssm.put_parameter(Name=jwt, Value="jwt-value-" + "x" * 40, Type="SecureString")
    ssm.put_parameter(Name=key, Value="key-value-" + "y" * 40, Type="SecureString")
    client = CountingSsm(ssm)
    settings = Settings(jwt_secret_param=jwt, visitor_key_param=key)

    resolved = with_secrets(settings, client)
    assert resolved.jwt_secret == "jwt-value-" + "x" * 40
    assert resolved.visitor_key == "key-value-" + "y" * 40
    resolved.require_secrets()
    assert with_secrets(settings, client) == resolved
    assert client.calls == 1


def test_a_value_in_the_environment_wins_and_nothing_is_read(ssm: Any) -> None:
    client = CountingSsm(ssm)
    settings = Settings(jwt_secret="local", visitor_key="local-key",
                        jwt_secret_param="/nope/a", visitor_key_param="/nope/b")
    assert with_secrets(settings, client) is settings
    assert client.calls == 0


def test_a_missing_parameter_is_a_config_error(ssm: Any) -> None:
    jwt, key = names()
    ssm.put_parameter(Name=jwt, Value="v" * 48, Type="SecureString")
    with pytest.raises(ConfigError, match=key):
        with_secrets(Settings(jwt_secret_param=jwt, visitor_key_param=key), ssm)


def test_an_unreachable_ssm_is_storage_unavailable() -> None:
    import boto3
    from botocore.config import Config

    from tests.conftest import free_port

    jwt, key = names()
    client = boto3.client(
        "ssm", endpoint_url=f"http://127.0.0.1:{free_port()}", region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
        config=Config(connect_timeout=1, retries={"max_attempts": 1}),
    )
    with pytest.raises(StorageUnavailable):
        with_secrets(Settings(jwt_secret_param=jwt, visitor_key_param=key), client)
