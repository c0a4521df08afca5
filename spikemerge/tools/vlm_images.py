"""Figures as the VLM sees them: sized to whole billing tiles, PNG, LangChain image blocks.

Size choice (documented for the billing rule of OpenAI's high-detail vision, the costliest
common case): an image is billed 85 tokens plus 170 per 512-px tile it covers, after being
scaled to fit 2048 px and to a shortest side of at most 768 px. A 768 x 576 figure covers four
tiles (765 tokens); the same figure at 512 x 384 covers one tile (255 tokens), a third of the
price, and the renderer's figures (axis labels at 8 pt or more, 0.5 ms CCG bins over about 450
px) stay legible at that size. So ``fit_to_tiles`` first caps the long side at
``image_long_side`` and then shrinks by at most a third when that saves whole tiles. Anthropic
and Gemini bill by pixel area or a fixed tile too, so the smaller image is never dearer there.
"""

from __future__ import annotations

import base64
import io
import math
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

from PIL import Image

TILE = 512
MIN_SHRINK = 2 / 3
"""The most a figure is shrunk (linear factor) to save whole tiles."""


def openai_tiles(width: int, height: int) -> int:
    """512-px tiles billed for an image under OpenAI's high-detail rule (after its own scaling)."""
    w, h = float(width), float(height)
    if max(w, h) > 2048:
        s = 2048 / max(w, h)
        w, h = w * s, h * s
    if min(w, h) > 768:
        s = 768 / min(w, h)
        w, h = w * s, h * s
    return math.ceil(round(w, 6) / TILE) * math.ceil(round(h, 6) / TILE)


def openai_image_tokens(width: int, height: int) -> int:
    """Image input tokens under OpenAI's high-detail rule: 85 + 170 per 512-px tile."""
    return 85 + 170 * openai_tiles(width, height)


def fit_to_tiles(width: int, height: int, long_side: int) -> tuple[int, int]:
    """The size to send: long side capped at ``long_side``, then shrunk to save tiles.

    Parameters
    ----------
    width, height
        The figure's size in pixels.
    long_side
        Cap on the longer side (never upscaled).

    Returns
    -------
    tuple of int
        ``(width, height)`` with the fewest tiles reachable by shrinking at most ``MIN_SHRINK``.
    """
    scale = min(1.0, long_side / max(width, height))
    base = (max(1, round(width * scale)), max(1, round(height * scale)))
    best, best_tiles = base, openai_tiles(*base)
    factors = sorted(
        {
            target / side
            for side in base
            for target in range(TILE, side, TILE)
            if target / side >= MIN_SHRINK
        },
        reverse=True,
    )
    for factor in factors:  # largest shrink factor first: ties keep the sharper image
        size = (max(1, math.floor(base[0] * factor)), max(1, math.floor(base[1] * factor)))
        tiles = openai_tiles(*size)
        if tiles < best_tiles:
            best, best_tiles = size, tiles
    return best


@lru_cache(maxsize=1024)
def _fitted(path: str, mtime_ns: int, long_side: int) -> Image.Image:
    with Image.open(path) as img:
        img = img.convert("RGB") if img.mode not in ("RGB", "L") else img.copy()
    size = fit_to_tiles(img.width, img.height, long_side)
    return img.resize(size, Image.LANCZOS) if size != img.size else img


def _png_base64(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=3)
    return base64.b64encode(buf.getvalue()).decode("ascii")


@lru_cache(maxsize=512)
def _encoded(path: str, mtime_ns: int, long_side: int) -> tuple[str, tuple[int, int]]:
    img = _fitted(path, mtime_ns, long_side)
    return _png_base64(img), img.size


def encode_png(path: Path, long_side: int) -> tuple[str, tuple[int, int]]:
    """Base64 PNG of a figure fitted to tiles, and its sent size (cached per file version)."""
    p = Path(path)
    return _encoded(str(p.resolve()), p.stat().st_mtime_ns, long_side)


def image_block(path: Path, long_side: int) -> dict[str, Any]:
    """A LangChain standard image content block (base64 PNG), converted per provider by LangChain."""
    data, _ = encode_png(path, long_side)
    return {"type": "image", "base64": data, "mime_type": "image/png"}


def composite_block(paths: Sequence[Path], long_side: int) -> dict[str, Any]:
    """One image block showing several figures on a grid (for the head or single mode)."""
    data, _ = encode_composite(paths, long_side)
    return {"type": "image", "base64": data, "mime_type": "image/png"}


@lru_cache(maxsize=256)
def _composite(key: tuple[tuple[str, int], ...], long_side: int) -> tuple[str, tuple[int, int]]:
    # built from the already fitted figures: a 2-column sheet, then fitted to tiles itself
    images = [_fitted(p, mtime, long_side) for p, mtime in key]
    cols = 1 if len(images) == 1 else 2
    rows = math.ceil(len(images) / cols)
    cell_w = max(im.width for im in images)
    cell_h = max(im.height for im in images)
    sheet = Image.new("RGB", (cols * cell_w, rows * cell_h), "white")
    for i, im in enumerate(images):
        sheet.paste(im.convert("RGB"), ((i % cols) * cell_w, (i // cols) * cell_h))
    size = fit_to_tiles(sheet.width, sheet.height, long_side)
    if size != sheet.size:
        sheet = sheet.resize(size, Image.LANCZOS)
    return _png_base64(sheet), size


def encode_composite(paths: Sequence[Path], long_side: int) -> tuple[str, tuple[int, int]]:
    """Base64 PNG of the figures on a two-column grid, fitted to tiles, and its size."""
    key = tuple((str(Path(p).resolve()), Path(p).stat().st_mtime_ns) for p in paths)
    return _composite(key, long_side)


def group_figures(images: Mapping[str, Path], features: Sequence[str] | None) -> dict[str, Path]:
    """The figures of a group to show, in feature order (all but ``composite`` when unspecified)."""
    if features is None:
        return {k: Path(v) for k, v in images.items() if k != "composite"}
    return {k: Path(images[k]) for k in features if k in images}
