"""``vts register-bridge`` against moto's IoT over HTTP: the bridge's thing, certificate and
least-privilege policy, its key files, the Mosquitto bridge block it prints, and every bad
input refused in one line before anything changes in IoT."""

from __future__ import annotations

import json
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest
from vtsops.cli import build_parser
from vtsops.iot_provision import (
    THING,
    bridge_block,
    bridge_policy_document,
    iot_arns,
    iot_client,
)

pytestmark = pytest.mark.integration
REGION = "us-east-1"


def vts(*argv: str) -> int:
    parser, commands = build_parser()
    args = parser.parse_args(list(argv))
    return commands[args.command](args)


@pytest.fixture
def stage(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A stage of its own (so its own default bridge policy), credentials for moto."""
    stage = f"t{uuid.uuid4().hex[:8]}"
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": REGION, "VTS_STAGE": stage}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("VTS_IOT_ENDPOINT", raising=False)
    return stage


@pytest.fixture
def iot(moto_endpoint: str) -> Any:
    return iot_client(REGION, moto_endpoint)


@pytest.fixture
def name() -> str:
    return f"vts-bridge-t{uuid.uuid4().hex[:8]}"


def snapshot(iot: Any) -> dict[str, Any]:
    """What exists in moto's IoT: things, certificates (and their status), policies."""
    return {
        "things": sorted(t["thingName"] for t in iot.list_things()["things"]),
        "certificates": sorted((c["certificateId"], c["status"])
                               for c in iot.list_certificates()["certificates"]),
        "policies": sorted(p["policyName"] for p in iot.list_policies()["policies"]),
    }


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    error = captured.err.strip()
    assert error.startswith("vts: error: ") and "\n" not in error, captured.err
    assert captured.out == ""
    return error


def block_of(output: str) -> str:
    """The configuration lines of the printed block (its comment header left out)."""
    return "".join(line for line in output.splitlines(keepends=True) if not line.startswith("#"))


def test_register_bridge_creates_the_identity_writes_the_keys_and_prints_the_block(
    stage: str, moto_endpoint: str, iot: Any, name: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "bridge"
    assert vts("register-bridge", name, "--out", str(out), "--iot-endpoint", moto_endpoint) == 0
    captured = capsys.readouterr()
    # moto names a new random data endpoint at each describe-endpoint: take the printed one.
    [address] = [line for line in captured.out.splitlines() if line.startswith("address ")]
    endpoint = address.removeprefix("address ").removesuffix(":8883")
    assert endpoint.endswith(f"-ats.iot.{REGION}.amazonaws.com")

    # The files: certificate and private key (0600), nothing else.
    assert sorted(p.name for p in out.iterdir()) == ["vts-bridge.crt", "vts-bridge.key"]
    key_file = out / "vts-bridge.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "PRIVATE KEY-----" in key_file.read_text()

    # The thing holds exactly one certificate, active, with the bridge policy.
    [principal] = iot.list_thing_principals(thingName=name)["principals"]
    certificate = iot.describe_certificate(certificateId=principal.rsplit("/", 1)[1])
    assert certificate["certificateDescription"]["status"] == "ACTIVE"
    assert certificate["certificateDescription"]["certificatePem"] == (out / "vts-bridge.crt").read_text()
    [policy] = iot.list_attached_policies(target=principal)["policies"]
    assert policy["policyName"] == f"vts-{stage}-bridge"

    # The policy is the bridge document: connect as itself, publish view reports, nothing else.
    account = principal.split(":")[4]
    document = json.loads(iot.get_policy(policyName=policy["policyName"])["policyDocument"])
    assert document == bridge_policy_document(iot_arns(REGION, account))
    arn = f"arn:aws:iot:{REGION}:{account}"
    assert [(s["Effect"], s["Action"], s["Resource"], s.get("Condition"))
            for s in document["Statement"]] == [
        ("Allow", "iot:Connect", f"{arn}:client/{THING}",
         {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}),
        ("Allow", "iot:Publish", f"{arn}:topic/makapix/player/*/view", None),
    ]

    # stdout is the bridge block (under a comment header), filled in.
    assert block_of(captured.out) == bridge_block(endpoint, name)
    lines = captured.out.splitlines()
    for line in (f"address {endpoint}:8883", f"remote_clientid {name}",
                 "topic makapix/player/+/view out 1", "bridge_protocol_version mqttv311",
                 "bridge_cafile /mosquitto/config/AmazonRootCA1.pem",
                 "bridge_certfile /mosquitto/config/vts-bridge.crt",
                 "bridge_keyfile /mosquitto/config/vts-bridge.key",
                 "try_private false", "notifications false", "cleansession true"):
        assert line in lines
    assert not any("retain" in line for line in lines if not line.startswith("#"))
    # A bridge not named in the stack's default PlayerBridges is told so.
    assert "PlayerBridges" in captured.err


def test_defaults_and_the_iot_endpoint_from_the_environment(
    stage: str, moto_endpoint: str, iot: Any, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    import vtsops.cmd_bridge as cmd_bridge

    monkeypatch.setenv("VTS_IOT_ENDPOINT", moto_endpoint)
    monkeypatch.setattr(cmd_bridge, "DEFAULT_BRIDGES_DIR", tmp_path / "bridges")
    assert vts("register-bridge", "--endpoint", "vts.example.net") == 0
    captured = capsys.readouterr()
    out = tmp_path / "bridges" / "vts-bridge-makapix"
    assert (out / "vts-bridge.crt").is_file() and (out / "vts-bridge.key").is_file()
    assert "address vts.example.net:8883" in captured.out.splitlines()
    assert "remote_clientid vts-bridge-makapix" in captured.out.splitlines()
    assert "PlayerBridges" not in captured.err  # the stack trusts this name by default
    assert iot.list_thing_principals(thingName="vts-bridge-makapix")["principals"]


def test_a_second_run_into_the_same_directory_refuses_and_creates_nothing(
    stage: str, moto_endpoint: str, iot: Any, name: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ("register-bridge", name, "--out", str(tmp_path), "--iot-endpoint", moto_endpoint)
    assert vts(*argv) == 0
    capsys.readouterr()
    key = (tmp_path / "vts-bridge.key").read_text()
    before = snapshot(iot)

    assert vts(*argv) == 2
    assert "exists" in one_line_error(capsys)
    assert snapshot(iot) == before
    assert (tmp_path / "vts-bridge.key").read_text() == key
    assert len(iot.list_thing_principals(thingName=name)["principals"]) == 1


def test_another_directory_adds_a_certificate_to_the_same_thing(
    stage: str, moto_endpoint: str, iot: Any, name: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for out in ("first", "second"):
        assert vts("register-bridge", name, "--out", str(tmp_path / out),
                   "--iot-endpoint", moto_endpoint) == 0
    assert "2 certificates" in capsys.readouterr().err
    principals = iot.list_thing_principals(thingName=name)["principals"]
    assert len(principals) == 2
    assert len([t for t in iot.list_things()["things"] if t["thingName"] == name]) == 1


def test_a_csr_keeps_the_private_key_on_the_operators_host(
    stage: str, moto_endpoint: str, iot: Any, name: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
           .sign(key, hashes.SHA256()))
    csr_file = tmp_path / "bridge.csr"
    csr_file.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    out = tmp_path / "out"

    assert vts("register-bridge", name, "--csr", str(csr_file), "--out", str(out),
               "--iot-endpoint", moto_endpoint) == 0
    printed = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["vts-bridge.crt"]
    # IoT signed our CSR (moto keeps its subject; unlike IoT it signs a key of its own).
    certificate = x509.load_pem_x509_certificate((out / "vts-bridge.crt").read_bytes())
    assert certificate.subject == csr.subject
    assert "bridge_keyfile /mosquitto/config/vts-bridge.key" in printed.splitlines()
    [principal] = iot.list_thing_principals(thingName=name)["principals"]
    [policy] = iot.list_attached_policies(target=principal)["policies"]
    assert policy["policyName"] == f"vts-{stage}-bridge"


def test_a_ca_file_is_copied_beside_the_certificate(
    stage: str, moto_endpoint: str, name: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ca = tmp_path / "AmazonRootCA1.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    out = tmp_path / "out"
    assert vts("register-bridge", name, "--ca-file", str(ca), "--out", str(out),
               "--broker-dir", "/etc/mosquitto/certs/", "--iot-endpoint", moto_endpoint) == 0
    printed = capsys.readouterr().out.splitlines()
    assert (out / "AmazonRootCA1.pem").read_text() == ca.read_text()
    assert "bridge_cafile /etc/mosquitto/certs/AmazonRootCA1.pem" in printed
    assert "bridge_keyfile /etc/mosquitto/certs/vts-bridge.key" in printed


@pytest.mark.parametrize("case", ["missing csr", "csr is a directory", "csr not pem",
                                  "missing ca-file", "ca-file not pem"])
def test_an_unreadable_csr_or_ca_file_changes_nothing(
    case: str, stage: str, moto_endpoint: str, iot: Any, name: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    junk = tmp_path / "junk.txt"
    junk.write_text("not a pem file\n")
    option, path = {
        "missing csr": ("--csr", tmp_path / "nope.csr"),
        "csr is a directory": ("--csr", tmp_path),
        "csr not pem": ("--csr", junk),
        "missing ca-file": ("--ca-file", tmp_path / "nope.pem"),
        "ca-file not pem": ("--ca-file", junk),
    }[case]
    out = tmp_path / "out"
    before = snapshot(iot)
    assert vts("register-bridge", name, option, str(path), "--out", str(out),
               "--iot-endpoint", moto_endpoint) == 2
    assert f"{option} {path}" in one_line_error(capsys)
    assert snapshot(iot) == before
    assert not out.exists()


@pytest.mark.parametrize("bad", ["", "bad name", "a/b", "ümlaut", "x" * 129, "p3a+#"])
def test_a_name_that_is_no_client_id_changes_nothing(
    bad: str, stage: str, moto_endpoint: str, iot: Any, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = snapshot(iot)
    assert vts("register-bridge", bad, "--out", str(tmp_path / "out"),
               "--iot-endpoint", moto_endpoint) == 2
    assert "bridge name" in one_line_error(capsys)
    assert snapshot(iot) == before
    assert not (tmp_path / "out").exists()


def test_an_output_path_that_is_a_file_changes_nothing(
    stage: str, moto_endpoint: str, iot: Any, name: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "taken"
    out.write_text("")
    before = snapshot(iot)
    assert vts("register-bridge", name, "--out", str(out), "--iot-endpoint", moto_endpoint) == 2
    assert "not a directory" in one_line_error(capsys)
    assert snapshot(iot) == before


class NoEndpoint:
    """moto's IoT client, except that describe-endpoint names no endpoint (or fails)."""

    def __init__(self, client: Any, fail: bool) -> None:
        self.client, self.fail = client, fail

    def describe_endpoint(self, **_: Any) -> dict[str, Any]:
        if self.fail:
            raise RuntimeError("describe-endpoint is not allowed")
        return {}

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.client, attribute)


@pytest.mark.parametrize("fail", [False, True])
def test_no_data_endpoint_is_an_error_and_changes_nothing(
    fail: bool, stage: str, moto_endpoint: str, iot: Any, name: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    import vtsops.iot_provision as iot_provision

    real = iot_provision.iot_client
    monkeypatch.setattr(iot_provision, "iot_client",
                        lambda *a, **k: NoEndpoint(real(*a, **k), fail))
    before = snapshot(iot)
    assert vts("register-bridge", name, "--out", str(tmp_path / "out"),
               "--iot-endpoint", moto_endpoint) == 2
    assert "--endpoint HOST" in one_line_error(capsys)
    assert snapshot(iot) == before
    assert not (tmp_path / "out").exists()

    # Given on the command line, the endpoint needs no describe-endpoint.
    assert vts("register-bridge", name, "--out", str(tmp_path / "out"), "--endpoint",
               "abc123-ats.iot.us-east-1.amazonaws.com", "--iot-endpoint", moto_endpoint) == 0
    assert "address abc123-ats.iot.us-east-1.amazonaws.com:8883" in capsys.readouterr().out


def test_an_endpoint_that_is_no_host_name_changes_nothing(
    stage: str, moto_endpoint: str, iot: Any, name: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = snapshot(iot)
    assert vts("register-bridge", name, "--out", str(tmp_path), "--endpoint",
               "https://abc123-ats.iot.us-east-1.amazonaws.com", "--iot-endpoint", moto_endpoint) == 2
    assert "--endpoint" in one_line_error(capsys)
    assert snapshot(iot) == before


def test_a_policy_of_that_name_granting_more_is_not_reused(
    stage: str, moto_endpoint: str, iot: Any, name: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    policy = f"vts-{stage}-bridge"
    broader = bridge_policy_document(iot_arns(REGION, "123456789012"))
    broader["Statement"].append({"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "*"})
    iot.create_policy(policyName=policy, policyDocument=json.dumps(broader))
    before = snapshot(iot)
    assert vts("register-bridge", name, "--out", str(tmp_path), "--iot-endpoint", moto_endpoint) == 2
    assert policy in one_line_error(capsys)
    assert snapshot(iot) == before
    assert list(tmp_path.iterdir()) == []


class FailingAttach(NoEndpoint):
    """moto's IoT client whose attach-thing-principal fails (after the certificate exists)."""

    def describe_endpoint(self, **kwargs: Any) -> dict[str, Any]:
        return dict(self.client.describe_endpoint(**kwargs))

    def attach_thing_principal(self, **_: Any) -> None:
        raise RuntimeError("attach refused")


def test_a_failure_after_the_certificate_exists_leaves_no_certificate(
    stage: str, moto_endpoint: str, iot: Any, name: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    import vtsops.iot_provision as iot_provision

    real = iot_provision.iot_client
    monkeypatch.setattr(iot_provision, "iot_client",
                        lambda *a, **k: FailingAttach(real(*a, **k), False))
    before = snapshot(iot)
    assert vts("register-bridge", name, "--out", str(tmp_path), "--iot-endpoint", moto_endpoint) == 1
    assert "attach refused" in one_line_error(capsys)
    assert snapshot(iot)["certificates"] == before["certificates"]
    assert list(tmp_path.iterdir()) == []


def test_help_documents_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    parser, _ = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["register-bridge", "--help"])
    text = capsys.readouterr().out
    for word in ("vts-bridge-makapix", "vts-bridge.crt", "vts-bridge.key", "--csr", "--endpoint",
                 "PlayerBridges", "PlayerAcks=none", "makapix/player/*/view"):
        assert word in text
