"""Provisioning a player in AWS IoT Core (or moto's IoT): its thing, keys and certificate,
and the one player policy every player shares.

The thing is named after the ``player_key``. The certificate is attached to it as an
*exclusive* principal, so IoT resolves ``${iot:Connection.Thing.ThingName}`` from the
certificate itself (the p3a firmware connects as ``p3a-{player_key}``, which is not the
thing name). The policy lets a player connect only as its own client id, publish only its
own view topic, and subscribe to / receive only its own ack topic.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

THING = "${iot:Connection.Thing.ThingName}"  # an IoT policy variable, kept literally
ROOT_CA_URL = "https://www.amazontrust.com/repository/AmazonRootCA1.pem"


def player_policy_document(region: str, account: str) -> dict[str, Any]:
    arn = f"arn:aws:iot:{region}:{account}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "iot:Connect",
                # The firmware's client id, and the bare thing name for other clients.
                "Resource": [f"{arn}:client/p3a-{THING}", f"{arn}:client/{THING}"],
                "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}},
            },
            {
                "Effect": "Allow",
                "Action": "iot:Publish",
                "Resource": f"{arn}:topic/makapix/player/{THING}/view",
            },
            {
                "Effect": "Allow",
                "Action": "iot:Subscribe",
                "Resource": f"{arn}:topicfilter/makapix/player/{THING}/view/ack",
            },
            {
                "Effect": "Allow",
                "Action": "iot:Receive",
                "Resource": f"{arn}:topic/makapix/player/{THING}/view/ack",
            },
        ],
    }


@dataclass(frozen=True)
class ProvisionedPlayer:
    player_key: str
    thing_arn: str
    certificate_arn: str
    policy_name: str
    endpoint: str
    directory: Path
    certificate_file: Path
    private_key_file: Path


def iot_client(region: str, endpoint_url: str | None = None) -> Any:
    import boto3

    kwargs: dict[str, Any] = {"region_name": region}
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
        if boto3.session.Session().get_credentials() is None:
            kwargs.update(aws_access_key_id="testing", aws_secret_access_key="testing")
    return boto3.client("iot", **kwargs)


def _code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def ensure_policy(client: Any, name: str, document: dict[str, Any]) -> None:
    try:
        client.create_policy(policyName=name, policyDocument=json.dumps(document))
    except Exception as error:
        if _code(error) != "ResourceAlreadyExistsException":
            raise


def ensure_thing(client: Any, name: str) -> str:
    try:
        answer = client.create_thing(thingName=name)
    except Exception as error:
        if _code(error) != "ResourceAlreadyExistsException":
            raise
        answer = client.describe_thing(thingName=name)
    return str(answer["thingArn"])


def provision_player(
    client: Any, player_key: str, policy_name: str, out_dir: Path, region: str
) -> ProvisionedPlayer:
    """Thing, active certificate, policy; the key files written under ``out_dir/{key}``."""
    thing_arn = ensure_thing(client, player_key)
    cert = client.create_keys_and_certificate(setAsActive=True)
    certificate_arn = str(cert["certificateArn"])
    account = certificate_arn.split(":")[4]
    ensure_policy(client, policy_name, player_policy_document(region, account))
    client.attach_policy(policyName=policy_name, target=certificate_arn)
    client.attach_thing_principal(
        thingName=player_key, principal=certificate_arn, thingPrincipalType="EXCLUSIVE_THING"
    )
    endpoint = str(client.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"])

    directory = out_dir / player_key
    directory.mkdir(parents=True, exist_ok=True)
    certificate_file = directory / "certificate.pem.crt"
    private_key_file = directory / "private.pem.key"
    certificate_file.write_text(cert["certificatePem"])
    _write_secret(private_key_file, cert["keyPair"]["PrivateKey"])
    (directory / "public.pem.key").write_text(cert["keyPair"]["PublicKey"])
    (directory / "player.json").write_text(json.dumps({
        "player_key": player_key,
        "client_id": f"p3a-{player_key}",
        "endpoint": endpoint,
        "port": 8883,
        "certificate_arn": certificate_arn,
        "view_topic": f"makapix/player/{player_key}/view",
        "ack_topic": f"makapix/player/{player_key}/view/ack",
        "root_ca": ROOT_CA_URL,
    }, indent=2) + "\n")
    return ProvisionedPlayer(
        player_key=player_key,
        thing_arn=thing_arn,
        certificate_arn=certificate_arn,
        policy_name=policy_name,
        endpoint=endpoint,
        directory=directory,
        certificate_file=certificate_file,
        private_key_file=private_key_file,
    )


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
