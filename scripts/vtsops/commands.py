"""Extra ``vts`` subcommands, discovered by module: each ``vtsops.cmd_*`` module exposes
``register(subparsers, commands)`` adding its parser(s) and handler(s)."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from collections.abc import Callable

import vtsops


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    commands: dict[str, Callable[[argparse.Namespace], int]],
) -> None:
    names = sorted(
        info.name for info in pkgutil.iter_modules(vtsops.__path__) if info.name.startswith("cmd_")
    )
    for name in names:
        importlib.import_module(f"vtsops.{name}").register(sub, commands)
