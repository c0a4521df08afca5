"""What every evidence figure shares: drawing settings, colours, fonts, the canvas and PNG encoding.

No pyplot and no SpikeInterface here, so the figure modules run unchanged in spawned workers.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
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


def new_figure(settings: RenderSettings) -> Figure:
    """A pyplot-free figure of the configured pixel size on an Agg canvas."""
    fig = Figure(figsize=(settings.width_px / 100.0, settings.height_px / 100.0), dpi=100)
    FigureCanvasAgg(fig)
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
