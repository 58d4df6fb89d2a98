#!/usr/bin/env python3
"""`make run`: the whole of VTS on this machine, with demo data. Ctrl-C stops it."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vtsops.localstack import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
