"""``vts register-bridge``: the IoT identity of a trusted bridge (DESIGN §7), e.g. Makapix's
Mosquitto forwarding its frames' view reports into AWS IoT Core.

It validates everything first (name, output files, ``--csr``/``--ca-file``, the data
endpoint, an existing policy of the same name), so bad input changes nothing; then creates
the thing, the bridge policy and an active certificate (iot_provision.provision_bridge),
writes the key files, and prints the Mosquitto bridge block (iot_provision.bridge_block).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vtsops.iot_provision import (
    BRIDGE_CA_FILE,
    BRIDGE_CERT_FILE,
    BRIDGE_KEY_FILE,
    BROKER_CONFIG_DIR,
    CLIENT_ID,
    ROOT_CA_URL,
    bridge_files,
)
from vtsops.stack import ROOT

DEFAULT_NAME = "vts-bridge-makapix"  # also the stack's PlayerBridges default
DEFAULT_BRIDGES_DIR = ROOT / ".vts" / "bridges"
HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
POLICY_NAME = re.compile(r"[\w+=,.@-]{1,128}")

DESCRIPTION = f"""\
Create the AWS IoT identity of a trusted MQTT bridge (Makapix's Mosquitto) and print the
Mosquitto bridge block that uses it.

Creates (or reuses) the IoT thing NAME and the bridge policy (default vts-{{stage}}-bridge,
stage from VTS_STAGE: connect only as client id NAME, publish only makapix/player/*/view),
creates a new active certificate attached to both, and writes into --out (default
.vts/bridges/NAME/) {BRIDGE_CERT_FILE} and {BRIDGE_KEY_FILE} (mode 0600). With --csr FILE,
IoT signs your CSR and the private key never leaves your host. Existing files are never
overwritten: the command refuses before creating anything.

stdout is the bridge block, ready to save as a Mosquitto configuration file; copy it and
the files to Makapix's host ({BROKER_CONFIG_DIR}/, with {BRIDGE_CA_FILE} from
{ROOT_CA_URL}).
VTS trusts only the client ids in the stack's PlayerBridges parameter (default
{DEFAULT_NAME}); deploy beside Makapix with PlayerAcks=none.

  scripts/vts register-bridge                       # vts-bridge-makapix, against AWS
  scripts/vts register-bridge --csr bridge.csr      # IoT signs your own key's CSR
"""


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    commands: dict[str, Callable[[argparse.Namespace], int]],
) -> None:
    reg = sub.add_parser(
        "register-bridge",
        help="create a trusted bridge's IoT thing, certificate and policy; print its Mosquitto block",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    reg.add_argument("name", nargs="?", default=DEFAULT_NAME, metavar="NAME",
                     help=f"the bridge's client id and thing name (default {DEFAULT_NAME})")
    reg.add_argument("--out", type=Path, metavar="DIR",
                     help="directory for the certificate and key (default .vts/bridges/NAME/)")
    reg.add_argument("--csr", type=Path, metavar="FILE",
                     help="a PEM certificate signing request: IoT signs it, no key is written")
    reg.add_argument("--ca-file", type=Path, metavar="FILE",
                     help=f"{BRIDGE_CA_FILE} (Amazon Root CA 1) to copy into --out as well")
    reg.add_argument("--endpoint", metavar="HOST",
                     help="the IoT data endpoint (default: describe-endpoint iot:Data-ATS)")
    reg.add_argument("--policy-name", help="the bridge policy (default vts-{stage}-bridge)")
    reg.add_argument("--broker-dir", default=BROKER_CONFIG_DIR, metavar="DIR",
                     help=f"where the files will be on the broker's host (default {BROKER_CONFIG_DIR})")
    reg.add_argument("--iot-endpoint", default=os.environ.get("VTS_IOT_ENDPOINT"), metavar="URL",
                     help="IoT control-plane endpoint override, e.g. moto (env VTS_IOT_ENDPOINT)")
    commands["register-bridge"] = cmd_register_bridge


def _fail(message: str, code: int = 2) -> int:
    print(f"vts: error: {message}", file=sys.stderr)
    return code


@dataclass(frozen=True)
class BridgeRequest:
    name: str
    out_dir: Path
    policy_name: str
    region: str
    csr: str | None
    ca_pem: str | None


def _read_pem(option: str, path: Path, kinds: tuple[str, ...]) -> str:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or type(error).__name__
        raise ValueError(f"{option} {path}: cannot read it ({reason})") from None
    if not any(f"-----BEGIN {kind}-----" in text for kind in kinds):
        raise ValueError(f"{option} {path}: not a PEM {kinds[0].lower()}")
    return text


def _check_writable(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"--out {directory}: not a directory")
    existing = directory
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"--out {directory}: cannot write there ({existing} is not writable)")


def check_request(args: argparse.Namespace) -> BridgeRequest:
    """Everything the command can check without touching IoT; ValueError says what is wrong."""
    from chalicelib.config import get_settings
    from chalicelib.errors import ConfigError

    name = args.name
    if not CLIENT_ID.fullmatch(name):
        raise ValueError(f"bridge name {name!r}: use 1-128 of A-Z a-z 0-9 : _ - "
                         "(it is the MQTT client id and the IoT thing name)")
    try:
        settings = get_settings()
    except ConfigError as error:
        raise ValueError(str(error)) from None
    policy_name = args.policy_name or f"vts-{settings.stage}-bridge"
    if not POLICY_NAME.fullmatch(policy_name):
        raise ValueError(f"--policy-name {policy_name!r}: not an IoT policy name")
    if args.endpoint is not None and not HOST.fullmatch(args.endpoint):
        raise ValueError(f"--endpoint {args.endpoint!r}: give the host name only, "
                         "e.g. abc123-ats.iot.us-east-1.amazonaws.com")
    if not args.broker_dir.startswith("/") or any(c.isspace() for c in args.broker_dir):
        raise ValueError(f"--broker-dir {args.broker_dir!r}: an absolute path without spaces")
    csr = None if args.csr is None else _read_pem(
        "--csr", args.csr, ("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"))
    ca_pem = None if args.ca_file is None else _read_pem("--ca-file", args.ca_file, ("CERTIFICATE",))
    out_dir = args.out if args.out is not None else DEFAULT_BRIDGES_DIR / name
    _check_writable(out_dir)
    for path in bridge_files(out_dir, private_key=csr is None, ca=ca_pem is not None):
        if path.exists() or path.is_symlink():
            raise ValueError(f"{path} exists: refusing to overwrite it "
                             "(move it away, or give another --out)")
    return BridgeRequest(name, out_dir, policy_name, settings.region, csr, ca_pem)


def cmd_register_bridge(args: argparse.Namespace) -> int:
    from vtsops.iot_provision import (
        bridge_block,
        bridge_policy_conflict,
        data_endpoint,
        iot_client,
        provision_bridge,
    )

    try:
        request = check_request(args)
    except ValueError as error:
        return _fail(str(error))
    client = iot_client(request.region, args.iot_endpoint)
    endpoint = args.endpoint
    if endpoint is None:
        try:
            endpoint = data_endpoint(client)
        except Exception as error:  # boto3's errors: report them plainly
            return _fail(f"no IoT data endpoint: describe-endpoint failed ({error}); "
                         "give --endpoint HOST")
        if not endpoint:
            return _fail("no IoT data endpoint: describe-endpoint named none; give --endpoint HOST")
    try:
        conflict = bridge_policy_conflict(client, request.policy_name)
    except Exception as error:
        return _fail(f"could not read IoT policy {request.policy_name}: {error}", 1)
    if conflict:
        return _fail(conflict)
    try:
        bridge = provision_bridge(client, request.name, request.policy_name, request.out_dir,
                                  csr=request.csr, ca_pem=request.ca_pem)
    except Exception as error:
        return _fail(f"IoT provisioning failed (no certificate kept): {error}", 1)

    files = ", ".join(path.name for path in bridge.files)
    print(f"# Mosquitto bridge into AWS IoT Core, from `vts register-bridge {bridge.name}`:")
    print(f"# thing {bridge.name}, certificate {bridge.certificate_id}, policy {bridge.policy_name}.")
    print(f"# Into {args.broker_dir}/ on the broker's host: {files} (from {request.out_dir})")
    if request.csr is not None:
        print(f"# and the private key of your CSR as {BRIDGE_KEY_FILE}")
    if request.ca_pem is None:
        print(f"# and {BRIDGE_CA_FILE} from {ROOT_CA_URL}")
    print(bridge_block(endpoint, bridge.name, config_dir=args.broker_dir), end="")
    if bridge.name != DEFAULT_NAME:
        print(f"note: VTS counts this bridge's reports only once {bridge.name} is in the stack's "
              f"PlayerBridges parameter (default {DEFAULT_NAME})", file=sys.stderr)
    if bridge.certificates > 1:
        print(f"note: thing {bridge.name} now has {bridge.certificates} certificates; once the "
              "bridge runs with the new one, deactivate the old ones (aws iot update-certificate "
              "--certificate-id ID --new-status INACTIVE)", file=sys.stderr)
    return 0
