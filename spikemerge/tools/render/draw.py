"""Drawing evidence figures to PNG bytes, in this process or in a worker process.

The four default figures (``render_figures``) are built once per layout and process and redrawn
with each group's data; the optional ones (spike locations, templates at probe positions) are
drawn from scratch. Everything here takes plain numpy payloads built by ``render.py`` and
returns deterministic PNG bytes: same payload and settings, same bytes.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from ..outputs import write_bytes_atomic
from .figures import FIGURES
from .style import (
    RC_PARAMS,
    RenderSettings,
    figure_to_png,
    new_figure,
    note_figure,
    unit_color,
    unit_label,
)

__all__ = ["RenderSettings", "draw_png", "render_jobs", "tile_composite"]

# ---------------------------------------------------------------------------------------------
# optional figures, drawn from scratch each time


def draw_waveforms_multi(payload: dict, settings: RenderSettings) -> Figure:
    """Templates on every channel of the units' sparsity, placed at the probe positions."""
    unit_ids, templates, locs = payload["unit_ids"], payload["templates"], payload["channel_locations"]
    t = payload["template_time_ms"]
    if locs.shape[0] == 0:
        return note_figure("no channels", settings)
    fig = new_figure(settings)
    ax = fig.add_subplot()
    xs_unique = np.unique(locs[:, 0])
    ys_unique = np.unique(locs[:, 1])
    x_pitch = np.min(np.diff(xs_unique)) if xs_unique.size > 1 else 30.0
    y_pitch = np.min(np.diff(ys_unique)) if ys_unique.size > 1 else 20.0
    x_scale = 0.85 * x_pitch / max(np.ptp(t), 1e-6)
    peak = np.nanmax(np.abs(templates)) if np.isfinite(templates).any() else 1.0
    y_scale = 2.2 * y_pitch / max(peak, 1e-6)
    ax.plot(locs[:, 0], locs[:, 1], ls="none", marker="s", ms=3, color="#cccccc")
    for i in range(len(unit_ids)):
        color = unit_color(i)
        traces = templates[i].T  # (channels, samples)
        keep = ~np.all(np.isnan(traces), axis=1)
        if not keep.any():
            continue
        x = (t - t[0] - np.ptp(t) / 2)[None, :] * x_scale + locs[keep, 0:1]
        y = traces[keep] * y_scale + locs[keep, 1:2]
        x = np.concatenate([x, np.full((x.shape[0], 1), np.nan)], axis=1).ravel()
        y = np.concatenate([y, np.full((y.shape[0], 1), np.nan)], axis=1).ravel()
        ax.plot(x, y, color=color, lw=1.0, label=unit_label(unit_ids, i))
    ax.set_xlabel("x (µm)")
    ax.set_ylabel("depth (µm)")
    ax.set_title(f"Templates at probe positions (bar: 1 ms, {payload['unit']} scale {1 / y_scale:.2g}/µm)", pad=2)
    bar_x, bar_y = locs[:, 0].min() - 0.6 * x_pitch, locs[:, 1].min() - y_pitch
    ax.plot([bar_x, bar_x + x_scale], [bar_y, bar_y], color="k", lw=1.5)
    ax.legend(loc="upper right", frameon=True, framealpha=0.8)
    ax.set_aspect("auto")
    ax.margins(0.08)
    fig.subplots_adjust(left=0.09, right=0.98, top=0.94, bottom=0.1)
    return fig


def draw_spike_locations(payload: dict, settings: RenderSettings) -> Figure:
    """Spike positions per unit (or a per-spike estimate) over the probe contacts."""
    unit_ids = payload["unit_ids"]
    fig = new_figure(settings)
    ax = fig.add_subplot()
    probe = payload["channel_locations"]
    ax.plot(probe[:, 0], probe[:, 1], ls="none", marker="s", ms=4, color="#d0d0d0", zorder=0)
    points = [p for p in payload["spike_xy"] if p is not None and len(p)]
    for i, xy in enumerate(payload["spike_xy"]):
        color = unit_color(i)
        if xy is not None and len(xy):
            ax.plot(xy[:, 0], xy[:, 1], ls="none", marker="o", ms=2, mew=0, alpha=0.45, color=color)
        if payload["unit_xy"] is not None:
            ux, uy = payload["unit_xy"][i]
            ax.plot([ux], [uy], ls="none", marker="X", ms=9, mec="k", mew=0.8, color=color,
                    label=f"{unit_label(unit_ids, i)}")
    centre_pts = np.concatenate(points) if points else (
        payload["unit_xy"] if payload["unit_xy"] is not None else probe)
    cx, cy = np.nanmedian(centre_pts, axis=0)
    ax.set_xlim(probe[:, 0].min() - 30, probe[:, 0].max() + 30)
    ax.set_ylim(cy - 90, cy + 90)
    ax.set_xlabel("x (µm)")
    ax.set_ylabel("depth (µm)")
    ax.set_title(payload["source"], pad=2)
    if payload["unit_xy"] is not None:
        ax.legend(loc="upper right", frameon=True, framealpha=0.8)
    fig.subplots_adjust(left=0.09, right=0.98, top=0.94, bottom=0.1)
    return fig


OPTIONAL_DRAWERS: dict[str, Callable[[dict, RenderSettings], Figure]] = {
    "spike_locations": draw_spike_locations,
    "waveforms_multi": draw_waveforms_multi,
}


# ---------------------------------------------------------------------------------------------
# dispatch

_BUILT: OrderedDict[tuple, object] = OrderedDict()
"""Default figures already laid out in this process, by (feature, units in group, settings)."""
_BUILT_MAX = 64
"""Figures kept laid out (each ~2 MB, mostly its canvas). Four features times the group sizes of a
large sort (2 to 14 units on a 436-unit one) must fit, or groups in size order evict each other
and every figure is laid out again (measured: 1.5 s of 16 s on that sort's 94 groups)."""


def _built_figure(feature: str, k: int, settings: RenderSettings):
    key = (feature, k, settings)
    figure = _BUILT.pop(key, None)
    if figure is None:
        figure = FIGURES[feature](k, settings)
    _BUILT[key] = figure
    while len(_BUILT) > _BUILT_MAX:
        _BUILT.popitem(last=False)
    return figure


def draw_png(feature: str, payload: dict, settings: RenderSettings) -> bytes:
    """Draw one feature's figure and return its PNG bytes."""
    with matplotlib.rc_context(RC_PARAMS):
        if feature in OPTIONAL_DRAWERS:
            return figure_to_png(OPTIONAL_DRAWERS[feature](payload, settings), settings)
        reason = FIGURES[feature].blank_reason(payload)
        if reason is not None:
            return figure_to_png(note_figure(reason, settings), settings)
        figure = _built_figure(feature, len(payload["unit_ids"]), settings)
        figure.update(payload)
        return figure_to_png(figure.figure, settings)


def render_jobs(jobs: list[tuple[str, dict, str]], settings: RenderSettings) -> list[str]:
    """Draw and write each ``(feature, payload, path)``; the unit of work sent to a worker process."""
    written = []
    for feature, payload, path in jobs:
        # not fsynced: an image is reused only when complete (``is_complete_png``), else drawn again
        write_bytes_atomic(Path(path), draw_png(feature, payload, settings), durable=False)
        written.append(path)
    return written


def tile_composite(paths: list[Path], settings: RenderSettings) -> bytes:
    """Tile feature PNGs two by two into one image whose long side is 1.5x a single figure's."""
    images = []
    for path in paths:
        with Image.open(path) as image:
            images.append(image.convert("RGB"))
    w, h = settings.width_px, settings.height_px
    cols = 2 if len(images) > 1 else 1
    rows = -(-len(images) // cols)
    sheet = Image.new("RGB", (cols * w, rows * h), "white")
    for n, image in enumerate(images):
        if image.size != (w, h):
            image = image.resize((w, h), Image.Resampling.LANCZOS)
        sheet.paste(image, ((n % cols) * w, (n // cols) * h))
    scale = 1.5 * max(w, h) / max(sheet.size)
    if scale < 1:
        sheet = sheet.resize((round(sheet.width * scale), round(sheet.height * scale)), Image.Resampling.LANCZOS)
    if settings.palette_colors:
        sheet = sheet.quantize(colors=max(settings.palette_colors, 128), method=Image.Quantize.FASTOCTREE,
                               dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()
