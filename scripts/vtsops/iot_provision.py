"""Provisioning in AWS IoT Core (or moto's IoT): a player's thing, keys and certificate and
the one player policy every player shares; and a trusted bridge's (DESIGN §7) thing,
certificate, policy and Mosquitto bridge block.

The thing is named after the ``player_key``. The certificate is attached to it as an
*exclusive* principal, so IoT resolves ``${iot:Connection.Thing.ThingName}`` from the
certificate itself (the p3a firmware connects as ``p3a-{player_key}``, which is not the
thing name). The policy lets a player connect only as its own client id, publish only its
own view topic, and subscribe to / receive only its own ack topic.

A bridge (Makapix's Mosquitto forwarding its frames' reports) is a thing too, named by its
client id. Its policy, ``bridge_policy_document`` (also the stack's ``PlayerBridgeIotPolicy``,
scripts/build_template.py), lets it connect only as that client id and publish only
``makapix/player/*/view``: no subscribe, no receive, no retained messages.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable
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


# ---- bridges ------------------------------------------------------------------------------

BRIDGE_VIEW_TOPIC = "makapix/player/*/view"  # in a policy `*` stands for the player key
BRIDGE_CERT_FILE = "vts-bridge.crt"
BRIDGE_KEY_FILE = "vts-bridge.key"
BRIDGE_CA_FILE = "AmazonRootCA1.pem"
BROKER_CONFIG_DIR = "/mosquitto/config"  # where Makapix's Mosquitto container reads them
CLIENT_ID = re.compile(r"[A-Za-z0-9:_-]{1,128}")  # an MQTT client id that is a thing name

ArnOf = Callable[[str, str], Any]
"""``arn(kind, rest)``: the ARN of IoT resource ``kind/rest`` (``client/NAME``, ``topic/T``)."""


def iot_arns(region: str, account: str, partition: str = "aws") -> ArnOf:
    """Literal ARNs in one account and region (the stack writes ``Fn::Sub`` ones instead)."""
    prefix = f"arn:{partition}:iot:{region}:{account}"

    def arn(kind: str, rest: str) -> str:
        return f"{prefix}:{kind}/{rest}"

    return arn


def bridge_policy_document(arn: ArnOf) -> dict[str, Any]:
    """The bridge policy: connect only as its own client id (the thing name, from its
    exclusively attached certificate), publish only player view topics. Nothing else: no
    Subscribe, no Receive, no RetainPublish."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "iot:Connect",
                "Resource": arn("client", THING),
                "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}},
            },
            {
                "Effect": "Allow",
                "Action": "iot:Publish",
                "Resource": arn("topic", BRIDGE_VIEW_TOPIC),
            },
        ],
    }


def policy_grants(document: dict[str, Any]) -> list[tuple[str, tuple[str, ...], tuple[str, ...], str]]:
    """A policy document as sorted (effect, actions, resources, condition) rows: two documents
    grant the same when their rows are equal, whatever their layout."""
    def listed(value: Any) -> tuple[str, ...]:
        return tuple(sorted([value] if isinstance(value, str) else value or []))

    return sorted(
        (str(s.get("Effect")), listed(s.get("Action")), listed(s.get("Resource")),
         json.dumps(s.get("Condition"), sort_keys=True))
        for s in document.get("Statement", [])
    )


def bridge_policy_conflict(client: Any, policy_name: str) -> str | None:
    """Why an existing policy of that name cannot serve as the bridge policy (it grants
    something else), or None when it is absent or grants exactly the bridge's rights."""
    try:
        policy = client.get_policy(policyName=policy_name)
    except Exception as error:
        if _code(error) == "ResourceNotFoundException":
            return None
        raise
    wanted = bridge_policy_document(iot_arns(*_region_account(policy["policyArn"])))
    if policy_grants(json.loads(policy["policyDocument"])) != policy_grants(wanted):
        return (f"IoT policy {policy_name} exists and grants other rights than a bridge's "
                "(connect as itself, publish makapix/player/*/view): pick another --policy-name")
    return None


def _region_account(arn: str) -> tuple[str, str, str]:
    """(region, account, partition) of an ARN: ``iot_arns``'s arguments."""
    parts = arn.split(":")
    return parts[3], parts[4], parts[1]


def data_endpoint(client: Any) -> str:
    """The account's IoT data endpoint (ATS), or "" when IoT names none."""
    answer = client.describe_endpoint(endpointType="iot:Data-ATS")
    return str(answer.get("endpointAddress") or "")


def bridge_files(out_dir: Path, *, private_key: bool, ca: bool) -> list[Path]:
    """The files ``provision_bridge`` writes into ``out_dir``."""
    names = [BRIDGE_CERT_FILE]
    names += [BRIDGE_KEY_FILE] if private_key else []
    names += [BRIDGE_CA_FILE] if ca else []
    return [out_dir / name for name in names]


@dataclass(frozen=True)
class ProvisionedBridge:
    name: str
    thing_arn: str
    certificate_arn: str
    certificate_id: str
    policy_name: str
    files: list[Path]
    certificates: int  # attached to the thing now (more than one: a rotation in progress)


def provision_bridge(
    client: Any,
    name: str,
    policy_name: str,
    out_dir: Path,
    *,
    csr: str | None = None,
    ca_pem: str | None = None,
) -> ProvisionedBridge:
    """Thing ``name`` (reused), the bridge policy (reused), a new active certificate (from
    ``csr``: the private key stays with its owner; else IoT makes the key pair), attached to
    both; the certificate, key and ``ca_pem`` written as new files into ``out_dir``.

    If anything fails once the certificate exists, the certificate is detached, deactivated
    and deleted, and the files this call wrote are removed."""
    thing_arn = ensure_thing(client, name)
    region, account, partition = _region_account(thing_arn)
    ensure_policy(client, policy_name, bridge_policy_document(iot_arns(region, account, partition)))
    if csr is not None:
        cert = client.create_certificate_from_csr(certificateSigningRequest=csr, setAsActive=True)
    else:
        cert = client.create_keys_and_certificate(setAsActive=True)
    certificate_arn = str(cert["certificateArn"])
    certificate_id = str(cert["certificateId"])
    written: list[Path] = []
    try:
        client.attach_policy(policyName=policy_name, target=certificate_arn)
        client.attach_thing_principal(
            thingName=name, principal=certificate_arn, thingPrincipalType="EXCLUSIVE_THING"
        )
        out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        contents = [(out_dir / BRIDGE_CERT_FILE, cert["certificatePem"], 0o644)]
        if csr is None:
            contents.append((out_dir / BRIDGE_KEY_FILE, cert["keyPair"]["PrivateKey"], 0o600))
        if ca_pem is not None:
            contents.append((out_dir / BRIDGE_CA_FILE, ca_pem, 0o644))
        for path, text, mode in contents:
            _write_new(path, text, mode)
            written.append(path)
        certificates = len(client.list_thing_principals(thingName=name)["principals"])
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        _discard_certificate(client, name, policy_name, certificate_arn, certificate_id)
        raise
    return ProvisionedBridge(
        name=name,
        thing_arn=thing_arn,
        certificate_arn=certificate_arn,
        certificate_id=certificate_id,
        policy_name=policy_name,
        files=written,
        certificates=certificates,
    )


def _discard_certificate(
    client: Any, thing: str, policy_name: str, certificate_arn: str, certificate_id: str
) -> None:
    """Best effort: a certificate nobody holds the key of must not stay active."""
    steps: list[Callable[[], Any]] = [
        lambda: client.detach_thing_principal(thingName=thing, principal=certificate_arn),
        lambda: client.detach_policy(policyName=policy_name, target=certificate_arn),
        lambda: client.update_certificate(certificateId=certificate_id, newStatus="INACTIVE"),
        lambda: client.delete_certificate(certificateId=certificate_id),
    ]
    for step in steps:
        with contextlib.suppress(Exception):
            step()


def bridge_block(
    endpoint: str,
    name: str,
    *,
    port: int = 8883,
    config_dir: str = BROKER_CONFIG_DIR,
    connection: str = "vts",
    tls: bool = True,
) -> str:
    """The Mosquitto bridge block (DESIGN §7) that forwards players' view reports to IoT Core
    as client id ``name``, with the files ``register-bridge`` wrote placed in ``config_dir``.
    ``tls=False`` (tests only: a plaintext stand-in broker) leaves out the TLS files."""
    directory = config_dir.rstrip("/")
    lines = [
        f"connection {connection}",
        f"address {endpoint}:{port}",
        "bridge_protocol_version mqttv311",
        f"remote_clientid {name}",
        "topic makapix/player/+/view out 1",
    ]
    if tls:
        lines += [
            f"bridge_cafile {directory}/{BRIDGE_CA_FILE}",
            f"bridge_certfile {directory}/{BRIDGE_CERT_FILE}",
            f"bridge_keyfile {directory}/{BRIDGE_KEY_FILE}",
        ]
    lines += [
        "try_private false",
        "notifications false",
        "cleansession true",
        # cleansession alone also cleans the bridge's local session: what was queued for
        # IoT Core during an outage would be discarded on reconnect (mosquitto 2.0).
        "local_cleansession false",
        # Reconnect backoff, base and cap in seconds (2.0.11 ignores the one-value form).
        "restart_timeout 2 30",
    ]
    return "\n".join(lines) + "\n"


def _write_new(path: Path, text: str, mode: int) -> None:
    """Create ``path`` with ``mode``; an existing file is an error, never overwritten."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, mode)  # whatever the umask
