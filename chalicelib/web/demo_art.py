"""Pixel art for the demo data: a small PNG per number, drawn deterministically (the same
number always gives the same picture), so the local stack's dashboard looks like Makapix's.

Served at ``/demo-art/{n}.png`` only where VTS runs on a local DynamoDB (the local stack and
the tests, ``VTS_DYNAMODB_ENDPOINT`` set), never in AWS. Written with ``zlib`` and
``struct`` alone: no image library.
"""

from __future__ import annotations

import random
import re
import struct
import zlib

from chalicelib.config import Settings
from chalicelib.errors import NotFound

SIZE = 16  # pixels a side: pixel art, shown scaled up with image-rendering: pixelated
CACHE = "public, max-age=31536000, immutable"
_NAME = re.compile(r"^([1-9][0-9]{0,5})\.png$")

Rgb = tuple[int, int, int]
# Soft grounds and vivid bodies, in the spirit of a pixel-art site's feed.
GROUNDS: tuple[Rgb, ...] = (
    (238, 242, 255), (254, 243, 199), (220, 252, 231), (252, 231, 243),
    (224, 242, 254), (243, 232, 255), (255, 237, 213), (236, 253, 245),
)
BODIES: tuple[Rgb, ...] = (
    (79, 70, 229), (225, 29, 72), (5, 150, 105), (217, 119, 6),
    (37, 99, 235), (147, 51, 234), (219, 39, 119), (13, 148, 136),
    (234, 88, 12), (101, 163, 13),
)
OUTLINE: Rgb = (30, 27, 46)
EYE: Rgb = (255, 255, 255)


def served(settings: Settings) -> bool:
    """Demo art exists only beside a local DynamoDB (the local stack, tests)."""
    return settings.dynamodb_endpoint is not None


def number_of(name: str) -> int:
    """``7.png`` -> 7; anything else is a 404."""
    match = _NAME.match(name)
    if match is None:
        raise NotFound(f"no demo art named {name!r}")
    return int(match.group(1))


def sprite(number: int) -> list[list[Rgb]]:
    """A symmetric little creature on a soft ground, ``SIZE`` x ``SIZE``: the same for the
    same number."""
    rng = random.Random(f"vts-demo-art-{number}")
    ground = GROUNDS[rng.randrange(len(GROUNDS))]
    body = BODIES[rng.randrange(len(BODIES))]
    r, g, b = (min(255, c + (255 - c) // 2) for c in body)
    light = (r, g, b)
    half = SIZE // 2
    filled = [[False] * SIZE for _ in range(SIZE)]
    for y in range(3, SIZE - 3):
        for x in range(3, half):
            # Denser towards the middle column, so the shape holds together.
            if rng.random() < 0.35 + 0.1 * (x - 2):
                filled[y][x] = filled[y][SIZE - 1 - x] = True
    pixels = [[ground] * SIZE for _ in range(SIZE)]
    for y in range(SIZE):
        for x in range(SIZE):
            if filled[y][x]:
                pixels[y][x] = light if y < SIZE // 2 - 1 else body
            elif any(
                0 <= y + dy < SIZE and 0 <= x + dx < SIZE and filled[y + dy][x + dx]
                for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1))
            ):
                pixels[y][x] = OUTLINE
    rows = [y for y in range(4, 9) if filled[y][half - 2] and filled[y + 1][half - 2]]
    eyes_y = rng.choice(rows) if rows else rng.randrange(5, 8)
    for x in (half - 2, half + 1):
        pixels[eyes_y][x] = EYE
        pixels[eyes_y + 1][x] = OUTLINE
    return pixels


def png(pixels: list[list[Rgb]]) -> bytes:
    """8-bit RGB PNG of ``pixels`` (rows of (r, g, b))."""
    height, width = len(pixels), len(pixels[0])
    raw = b"".join(b"\x00" + bytes(c for rgb in row for c in rgb) for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def picture(number: int) -> bytes:
    """The PNG of demo artwork ``number``."""
    return png(sprite(number))
