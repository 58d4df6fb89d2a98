#!/usr/bin/env python3
"""Size of the tracker `/v1/vts.js` as served: minified (by the build, esbuild) and
gzipped (level 9 and the default 6). Goal: under 1 KB gzipped. The dashboard bundle's
sizes are printed beside it for reference (it loads once per sign-in, not on artists'
pages). Reads chalicelib/web/static/ (built by `npm run build`; built here if missing)."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "chalicelib" / "web" / "static"
SOURCE = ROOT / "frontend" / "vts.js"
GOAL_GZIP_B = 1024


def gz(data: bytes, level: int) -> int:
    return len(gzip.compress(data, compresslevel=level, mtime=0))


def main() -> int:
    tracker = STATIC / "vts.js"
    if not tracker.exists():
        if not shutil.which("npm"):
            print("vts.js is not built and npm is missing: run `make setup`", file=sys.stderr)
            return 2
        subprocess.run(["npm", "run", "--silent", "build"], cwd=ROOT, check=True)
    minified = tracker.read_bytes()
    source = SOURCE.read_bytes()
    figures: dict[str, object] = {
        "vtsjs_source_bytes": len(source),
        "vtsjs_min_bytes": len(minified),
        "vtsjs_gzip9_bytes": gz(minified, 9),
        "vtsjs_gzip6_bytes": gz(minified, 6),
        "vtsjs_goal_gzip_bytes": GOAL_GZIP_B,
    }
    figures["vtsjs_under_goal"] = figures["vtsjs_gzip9_bytes"] < GOAL_GZIP_B  # type: ignore[operator]
    for kind in ("js", "css"):
        [bundle] = sorted((STATIC / "assets").glob(f"dashboard-*.{kind}"))
        data = bundle.read_bytes()
        figures[f"dashboard_{kind}_min_bytes"] = len(data)
        figures[f"dashboard_{kind}_gzip9_bytes"] = gz(data, 9)

    print("vts.js (the tracker, as served at /v1/vts.js)")
    print(f"  source (frontend/vts.js, with comments)  {figures['vtsjs_source_bytes']:>7} B")
    print(f"  minified (esbuild, ES5)                  {figures['vtsjs_min_bytes']:>7} B")
    print(f"  minified + gzip -9                       {figures['vtsjs_gzip9_bytes']:>7} B")
    print(f"  minified + gzip -6                       {figures['vtsjs_gzip6_bytes']:>7} B")
    verdict = "under" if figures["vtsjs_under_goal"] else "OVER"
    print(f"  goal: < {GOAL_GZIP_B} B gzipped -> {verdict}")
    print("dashboard bundle (for reference)")
    for kind in ("js", "css"):
        print(
            f"  dashboard .{kind:<3} minified {figures[f'dashboard_{kind}_min_bytes']:>7} B, "
            f"gzip -9 {figures[f'dashboard_{kind}_gzip9_bytes']:>6} B"
        )
    print("BENCH " + json.dumps({"name": "vtsjs", **figures}))
    return 0 if figures["vtsjs_under_goal"] else 1


if __name__ == "__main__":
    sys.exit(main())
