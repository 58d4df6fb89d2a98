"""``vts secrets``: create (or rotate) the stage's secrets in SSM Parameter Store.

CloudFormation cannot create a SecureString, and a secret typed into a template would sit
in clear in the template and the stack's history. So the secrets are made here, once per
stage before the first deploy, from the machine's CSPRNG, and never printed; the functions
read them at runtime (``VTS_*_PARAM``, resolved in ``chalicelib/wiring.py``). See
docs/deploy.md for rotation and what it costs.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Callable

NAMES = ("jwt-secret", "visitor-key")


def parameter_name(stage: str, name: str) -> str:
    """The default SSM name the stack's JwtSecretParameter / VisitorKeyParameter point at."""
    return f"/vts/{stage}/{name}"


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    commands: dict[str, Callable[[argparse.Namespace], int]],
) -> None:
    parser = sub.add_parser("secrets", help="create the stage's secrets in SSM (AWS), or rotate one")
    parser.add_argument("--stage", default="prod", help="the stage (prod)")
    parser.add_argument("--region", help="AWS region (the AWS CLI/boto3 default)")
    parser.add_argument("--rotate", choices=NAMES, action="append", default=[],
                        help="replace this secret with a new random value (repeatable)")
    commands["secrets"] = cmd_secrets


def ensure_secrets(client: object, stage: str, rotate: list[str]) -> dict[str, str]:
    """name -> what happened ("created", "rotated", "kept"); values never leave this function."""
    from botocore.exceptions import ClientError

    done = {}
    for name in NAMES:
        overwrite = name in rotate
        try:
            client.put_parameter(  # type: ignore[attr-defined]
                Name=parameter_name(stage, name),
                Description=f"VTS {stage} {name} (vts secrets)",
                Value=secrets.token_urlsafe(48),
                Type="SecureString",
                Overwrite=overwrite,
            )
            done[name] = "rotated" if overwrite else "created"
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ParameterAlreadyExists":
                raise
            done[name] = "kept"
    return done


def cmd_secrets(args: argparse.Namespace) -> int:
    import boto3

    client = boto3.client("ssm", region_name=args.region) if args.region else boto3.client("ssm")
    try:
        done = ensure_secrets(client, args.stage, args.rotate)
    except Exception as error:  # boto3's errors: report them plainly
        print(f"vts: error: {error}", file=sys.stderr)
        return 1
    for name, what in done.items():
        print(f"{parameter_name(args.stage, name)}: {what}")
    if any(what == "rotated" for what in done.values()):
        print("now redeploy with a new SecretsVersion so the functions read it, e.g.\n"
              f"  make deploy STAGE={args.stage} BUCKET=... PARAMS='SecretsVersion=<n+1>'")
    return 0
