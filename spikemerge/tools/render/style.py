"""What every evidence figure shares: drawing settings, colours, fonts, the canvas and PNG encoding.

No pyplot and no SpikeInterface here, so the figure modules run unchanged in spawned workers.
"""

from __future__ import annotations

import contextlib
import io
import math
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.figure import Figure
from PIL import Image

try:
    from threadpoolctl import threadpool_limits as _threadpool_limits
except ImportError:  # pragma: no cover - scikit-learn brings it
    _threadpool_limits = None

RENDER_VERSION = "3"
"""Bump when a figure's look changes, so cached images are redrawn."""

UNIT_COLORS: tuple[str, ...] = (
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
)
"""Unit colour by position in the group; the same in every figure of a group."""

CCG_COLOR = "#3a3a3a"
CCG_BACKGROUND = "#eef1f5"
REFRACTORY_COLOR = "#f2b134"
NOTE_COLOR = "#666666"

RC_PARAMS = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "path.simplify": True,
    "svg.hashsalt": "spikemerge",
    "text.hinting": "no_hinting",  # unhinted glyphs rasterise faster and read the same at 7-8 pt
}
"""Matplotlib settings every figure is built and drawn under."""


@dataclass(frozen=True)
class RenderSettings:
    """How figures are drawn; every field is part of the cache key."""

    ccg_window_ms: float = 40.0
    """Half-width of the correlogram window."""
    ccg_bin_ms: float = 0.5
    """Correlogram bin width (0.5 ms or less shows a refractory dip)."""
    refractory_ms: float = 1.5
    """Half-width of the shaded refractory window."""
    main_channels_per_unit: int = 3
    """Channels of largest template amplitude taken from each unit for the waveform figure."""
    max_waveform_channels: int = 8
    """Cap on the channels shown in the waveform figure."""
    waveforms_per_unit: int = 20
    """Individual waveforms drawn faintly behind each template."""
    max_pca_spikes_per_unit: int = 200
    """Spikes per unit in the PCA scatter (every unit gets the same count)."""
    max_amplitude_points: int = 3000
    """Points per unit in the amplitude scatter (evenly strided subsample)."""
    max_location_points: int = 600
    """Points per unit in the spike location scatter."""
    width_px: int = 768
    height_px: int = 512
    palette_colors: int = 64
    """PNG palette size; line art needs few colours and the file shrinks several times."""

    def key(self) -> dict[str, Any]:
        return {"render_version": RENDER_VERSION, **asdict(self)}


def single_thread_blas():
    """Small matrices on a shared machine: BLAS threads only fight each other."""
    if _threadpool_limits is None:
        return contextlib.nullcontext()
    return _threadpool_limits(limits=1, user_api="blas")


TEXT_CACHE_MAX = 8192
"""Rasterised strings kept per process (a few hundred bytes each)."""

_TEXT_MASKS: OrderedDict[tuple, tuple[np.ndarray, int, int] | None] = OrderedDict()
_TEXT_MASKS_LOCK = threading.Lock()
_MISSING = object()


class _TextMaskRenderer(RendererAgg):
    """An Agg renderer that rasterises each distinct string once and stamps it afterwards.

    Matplotlib lays out and rasterises every glyph of every string at every draw; in these
    figures that was most of the drawing time, and the same strings (tick labels, unit names,
    axis labels) recur in every figure. A string is drawn once, in black, on a scratch canvas
    at a whole-pixel position; its coverage (alpha) mask is kept and stamped in the text's
    colour at the text's position rounded to the nearest pixel, which is exactly what drawing it
    there would give. Mathtext falls through to matplotlib.
    """

    def draw_text(self, gc, x, y, s, prop, angle, ismath=False, mtext=None):
        if ismath or not s:
            return super().draw_text(gc, x, y, s, prop, angle, ismath=ismath, mtext=mtext)
        key = (s, hash(prop), prop.get_size_in_points(), tuple(prop.get_family()), prop.get_weight(),
               prop.get_style(), float(angle), bool(gc.get_antialiased()), self.dpi,
               getattr(mtext, "get_fontfeatures", lambda: None)(), getattr(mtext, "get_language", lambda: None)(),
               matplotlib.rcParams["text.hinting"], matplotlib.rcParams["text.hinting_factor"])
        with _TEXT_MASKS_LOCK:  # figures may be drawn in a background thread while another draws
            mask = _TEXT_MASKS.get(key, _MISSING)
            if mask is not _MISSING:
                _TEXT_MASKS.move_to_end(key)
        if mask is _MISSING:
            mask = self._text_mask(gc, s, prop, angle, mtext)
            with _TEXT_MASKS_LOCK:
                _TEXT_MASKS[key] = mask
                while len(_TEXT_MASKS) > TEXT_CACHE_MAX:
                    _TEXT_MASKS.popitem(last=False)
        if mask is not None:
            image, dx, dy = mask
            self._renderer.draw_text_image(image, math.floor(x + 0.5) + dx, math.floor(y + 0.5) + dy, 0, gc)
        return None

    def _text_mask(self, gc, s, prop, angle, mtext) -> tuple[np.ndarray, int, int] | None:
        """Coverage of ``s`` drawn at the origin: (mask, column offset, offset of the row below it)."""
        width, height, _ = self.get_text_width_height_descent(s, prop, ismath=False)
        pad = 4
        w, h = int(math.ceil(width)) + pad, int(math.ceil(height)) + pad
        # the scratch canvas just holds the string around the origin (x0, y0): baseline-left at
        # angle 0, rotated about that corner otherwise (a square wide enough for any angle)
        if angle % 360 == 0:
            size, (x0, y0) = (w + pad, 2 * h), (pad, h)
        elif angle % 360 == 90:
            size, (x0, y0) = (2 * h, w + pad), (h, w)
        else:
            size, (x0, y0) = (2 * (w + h), 2 * (w + h)), (w + h, w + h)
        scratch = RendererAgg(size[0], size[1], self.dpi)
        ink = scratch.new_gc()
        ink.set_foreground((0.0, 0.0, 0.0, 1.0))
        ink.set_antialiased(gc.get_antialiased())
        RendererAgg.draw_text(scratch, ink, x0, y0, s, prop, angle, mtext=mtext)
        ink.restore()
        alpha = np.asarray(scratch.buffer_rgba())[:, :, 3]
        rows = np.flatnonzero(alpha.any(axis=1))
        cols = np.flatnonzero(alpha.any(axis=0))
        if rows.size == 0:
            return None
        image = np.ascontiguousarray(alpha[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1])
        return image, int(cols[0]) - x0, int(rows[-1]) + 1 - y0


class _Canvas(FigureCanvasAgg):
    """An Agg canvas whose renderer reuses rasterised strings (:class:`_TextMaskRenderer`)."""

    def get_renderer(self):
        w, h = self.get_width_height(physical=True)
        key = w, h, self.figure.dpi
        if self._lastKey != key:
            self.renderer = _TextMaskRenderer(w, h, self.figure.dpi)
            self._lastKey = key
        return self.renderer


def new_figure(settings: RenderSettings) -> Figure:
    """A pyplot-free figure of the configured pixel size on an Agg canvas."""
    fig = Figure(figsize=(settings.width_px / 100.0, settings.height_px / 100.0), dpi=100)
    _Canvas(fig)
    return fig


def note_figure(text: str, settings: RenderSettings) -> Figure:
    """A figure that says why there is nothing to plot (no spikes, no shared channels, ...)."""
    fig = new_figure(settings)
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color=NOTE_COLOR, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])
    return fig


def figure_to_png(fig: Figure, settings: RenderSettings) -> bytes:
    """Rasterise ``fig`` and encode it as a palette PNG without metadata (deterministic bytes)."""
    canvas = fig.canvas
    canvas.draw()
    image = Image.fromarray(np.asarray(canvas.buffer_rgba())).convert("RGB")
    if settings.palette_colors:
        image = image.quantize(colors=settings.palette_colors, method=Image.Quantize.FASTOCTREE,
                               dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


def unit_color(i: int) -> str:
    return UNIT_COLORS[i % len(UNIT_COLORS)]


def unit_label(unit_ids: list[str], i: int) -> str:
    return f"unit {unit_ids[i]}"
