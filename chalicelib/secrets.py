"""Secrets named by SSM parameters (``VTS_JWT_SECRET_PARAM``, ``VTS_VISITOR_KEY_PARAM``):
resolved once per container, before the services are built (docs/deploy.md)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from chalicelib.config import Settings
from chalicelib.errors import ConfigError, StorageUnavailable


def ssm_client(settings: Settings) -> Any:
    import boto3
    from botocore.config import Config

    # The endpoint comes from botocore's own AWS_ENDPOINT_URL_SSM when a test sets it.
    config = Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 3, "mode": "standard"})
    return boto3.client("ssm", region_name=settings.region, config=config)


# (region, parameter name) -> value. Kept for the container's life: a rotation reaches the
# functions with a configuration change (SecretsVersion in infra), which starts fresh ones.
_secrets: dict[tuple[str, str], str] = {}
_SSM_UNAVAILABLE = {"ThrottlingException", "InternalServerError", "ServiceUnavailable"}


def with_secrets(settings: Settings, client: Any = None) -> Settings:
    """The settings with each secret that names an SSM parameter (and has no value) filled in."""
    wanted = {
        name: param
        for name, param in (
            ("jwt_secret", settings.jwt_secret_param),
            ("visitor_key", settings.visitor_key_param),
        )
        if param and not getattr(settings, name)
    }
    missing = sorted({p for p in wanted.values() if (settings.region, p) not in _secrets})
    if missing:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = (client or ssm_client(settings)).get_parameters(
                Names=missing, WithDecryption=True
            )
        except BotoCoreError as error:
            raise StorageUnavailable(f"SSM unreachable: {type(error).__name__}") from error
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in _SSM_UNAVAILABLE:
                raise StorageUnavailable(f"SSM answered {code}") from error
            raise ConfigError(f"cannot read the secrets from SSM ({code})") from error
        if answer.get("InvalidParameters"):
            raise ConfigError(f"SSM has no parameter {', '.join(answer['InvalidParameters'])}")
        for parameter in answer.get("Parameters", []):
            _secrets[(settings.region, parameter["Name"])] = parameter["Value"]
    if not wanted:
        return settings
    jwt_param, key_param = wanted.get("jwt_secret"), wanted.get("visitor_key")
    return replace(
        settings,
        jwt_secret=_secrets[(settings.region, jwt_param)] if jwt_param else settings.jwt_secret,
        visitor_key=_secrets[(settings.region, key_param)] if key_param else settings.visitor_key,
    )
