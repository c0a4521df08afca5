"""Drawing the evidence figures from small arrays: matplotlib's Agg canvas, no pyplot, no SpikeInterface.

Everything here takes plain numpy payloads (built by ``render.py`` in the parent process) and
returns PNG bytes, so it runs unchanged in a spawned worker process. Output is deterministic:
same payload and settings, same bytes.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image

from .outputs import write_bytes_atomic

try:
    from threadpoolctl import threadpool_limits as _threadpool_limits
except ImportError:  # pragma: no cover - scikit-learn brings it
    _threadpool_limits = None

RENDER_VERSION = "1"
"""Bump when a figure's look changes, so cached images are redrawn."""

UNIT_COLORS: tuple[str, ...] = (
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
)
"""Unit colour by position in the group; the same in every figure of a group."""

CCG_COLOR = "#3a3a3a"
CCG_BACKGROUND = "#eef1f5"
REFRACTORY_COLOR = "#f2b134"

_RC = {
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
}


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


# ---------------------------------------------------------------------------------------------
# figure plumbing


def _single_thread_blas():
    """Small matrices on a shared machine: BLAS threads only fight each other."""
    if _threadpool_limits is None:
        return contextlib.nullcontext()
    return _threadpool_limits(limits=1, user_api="blas")


def _new_figure(settings: RenderSettings) -> Figure:
    fig = Figure(figsize=(settings.width_px / 100.0, settings.height_px / 100.0), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def figure_to_png(fig: Figure, settings: RenderSettings) -> bytes:
    """Rasterise ``fig`` and encode it as a palette PNG without metadata (deterministic bytes)."""
    canvas = fig.canvas
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    image = Image.fromarray(rgba[..., :3].copy(), mode="RGB")
    if settings.palette_colors:
        image = image.quantize(colors=settings.palette_colors, method=Image.Quantize.FASTOCTREE,
                               dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def _note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#666666", wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def _unit_label(unit_ids: list[str], i: int) -> str:
    return f"unit {unit_ids[i]}"


# ---------------------------------------------------------------------------------------------
# correlograms


def lag_histogram(a: np.ndarray, b: np.ndarray, fs: float, settings: RenderSettings,
                  auto: bool) -> tuple[np.ndarray, np.ndarray]:
    """Counts of ``b - a`` spike time differences in bins centred on zero.

    Parameters
    ----------
    a, b : np.ndarray
        Sorted spike sample indices.
    fs : float
        Sampling frequency in Hz.
    settings : RenderSettings
        Window half-width and bin width.
    auto : bool
        True for an autocorrelogram: each spike's difference with itself is left out.

    Returns
    -------
    counts, edges_ms : np.ndarray
        ``counts[i]`` spike pairs with lag in ``[edges_ms[i], edges_ms[i + 1])``.
    """
    half_bins = int(round(settings.ccg_window_ms / settings.ccg_bin_ms))
    edges_ms = (np.arange(-half_bins, half_bins + 2) - 0.5) * settings.ccg_bin_ms
    window = settings.ccg_window_ms * fs / 1000.0 + 1
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if a.size == 0 or b.size == 0:
        return np.zeros(edges_ms.size - 1, dtype=np.int64), edges_ms
    lo = np.searchsorted(b, a - window, side="left")
    hi = np.searchsorted(b, a + window, side="right")
    n = hi - lo
    if n.sum() == 0:
        return np.zeros(edges_ms.size - 1, dtype=np.int64), edges_ms
    owner = np.repeat(np.arange(a.size), n)
    idx = np.arange(owner.size) - np.repeat(np.cumsum(n) - n, n) + np.repeat(lo, n)
    lags = b[idx] - a[owner]
    if auto:
        lags = lags[idx != owner]
    counts, _ = np.histogram(lags * (1000.0 / fs), bins=edges_ms)
    return counts, edges_ms


def _draw_correlogram(ax, counts, edges, settings: RenderSettings, color: str, title: str,
                      title_color: str, background: str | None) -> None:
    ax.axvspan(-settings.refractory_ms, settings.refractory_ms, color=REFRACTORY_COLOR, alpha=0.35, lw=0)
    ax.stairs(counts, edges, fill=True, color=color, lw=0)
    if background:
        ax.set_facecolor(background)
    centres = 0.5 * (edges[:-1] + edges[1:])
    in_refractory = int(counts[np.abs(centres) < settings.refractory_ms].sum())
    ax.set_title(title, color=title_color, fontweight="bold", pad=2, y=1.0)
    ax.text(0.98, 0.97, f"±{settings.refractory_ms:g} ms: {in_refractory}", transform=ax.transAxes,
            ha="right", va="top", fontsize=7, color="#333333")
    ax.set_xlim(edges[0], edges[-1])
    top = max(1, int(counts.max()))
    ax.set_ylim(0, top * 1.15)
    ax.margins(x=0)


def draw_crosscorrelograms(payload: dict, settings: RenderSettings) -> Figure:
    """ACG of each unit (unit colour, white) then CCG of each pair (dark grey on blue-grey)."""
    unit_ids, trains, fs = payload["unit_ids"], payload["trains"], payload["fs"]
    k = len(unit_ids)
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    ncols = 3 if k <= 3 else min(k, 6)
    n_panels = k + len(pairs)
    fig = _new_figure(settings)
    axes = fig.subplots(-(-n_panels // ncols), ncols, squeeze=False, sharex=True)
    flat = axes.ravel()
    for i in range(k):
        counts, edges = lag_histogram(trains[i], trains[i], fs, settings, auto=True)
        color = UNIT_COLORS[i % len(UNIT_COLORS)]
        _draw_correlogram(flat[i], counts, edges, settings, color,
                          f"ACG {_unit_label(unit_ids, i)} (n={len(trains[i])})", color, None)
    for p, (i, j) in enumerate(pairs):
        counts, edges = lag_histogram(trains[i], trains[j], fs, settings, auto=False)
        _draw_correlogram(flat[k + p], counts, edges, settings, CCG_COLOR,
                          f"CCG {unit_ids[i]} × {unit_ids[j]}", "#000000", CCG_BACKGROUND)
    for ax in flat[n_panels:]:
        ax.set_visible(False)
    for n in range(n_panels):
        if n + ncols >= n_panels:  # nothing drawn below this panel
            flat[n].set_xlabel("lag (ms)")
            flat[n].xaxis.set_tick_params(labelbottom=True)
    for ax in axes[:, 0]:
        ax.set_ylabel("count")
    half = settings.ccg_window_ms
    axes[0, 0].set_xticks([-half, -half / 2, 0, half / 2, half])
    for ax in axes.ravel():
        ax.yaxis.set_major_locator(MaxNLocator(3, integer=True))
    fig.suptitle(f"Correlograms, {settings.ccg_bin_ms:g} ms bins; shaded: ±{settings.refractory_ms:g} ms refractory",
                 fontsize=8)
    fig.subplots_adjust(left=0.07, right=0.99, top=0.88 if axes.shape[0] == 1 else 0.91, bottom=0.1,
                        hspace=0.45, wspace=0.25)
    return fig


# ---------------------------------------------------------------------------------------------
# amplitudes


def draw_amplitudes(payload: dict, settings: RenderSettings) -> Figure:
    """Amplitude of every spike over time, with a horizontal histogram per unit on the right."""
    unit_ids = payload["unit_ids"]
    fig = _new_figure(settings)
    grid = fig.add_gridspec(1, 2, width_ratios=(4.2, 1), wspace=0.04)
    ax = fig.add_subplot(grid[0])
    hist_ax = fig.add_subplot(grid[1], sharey=ax)
    all_amps = np.concatenate([a for a in payload["amplitudes"]] + [np.zeros(0)])
    if all_amps.size == 0:
        _note(ax, "no spikes")
        return fig
    lo, hi = np.percentile(all_amps, [0.5, 99.5])
    pad = 0.05 * max(hi - lo, 1e-6)
    bins = np.linspace(lo - pad, hi + pad, 60)
    for i, (times, amps) in enumerate(zip(payload["times"], payload["amplitudes"])):
        color = UNIT_COLORS[i % len(UNIT_COLORS)]
        step = max(1, int(np.ceil(times.size / settings.max_amplitude_points)))
        ax.plot(times[::step], amps[::step], ls="none", marker="o", ms=1.6, mew=0, alpha=0.6, color=color,
                label=f"{_unit_label(unit_ids, i)} ({amps.size} spikes)")
        counts, _ = np.histogram(amps, bins=bins)
        hist_ax.stairs(counts, bins, orientation="horizontal", color=color, lw=1.2)
    ax.set_xlim(0, payload["duration_s"])
    ax.set_ylim(bins[0], bins[-1])
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"amplitude ({payload['unit']})")
    ax.set_title("Spike amplitudes over time", pad=2, y=1.0)
    legend = ax.legend(loc="best", markerscale=4, frameon=True, framealpha=0.8)
    for handle in legend.legend_handles:
        handle.set_alpha(1)
    ax.yaxis.set_major_locator(MaxNLocator(5))
    hist_ax.xaxis.set_major_locator(MaxNLocator(2, integer=True))
    hist_ax.set_xlabel("count")
    hist_ax.tick_params(labelleft=False)
    hist_ax.set_title("distribution", pad=2, y=1.0)
    fig.subplots_adjust(left=0.09, right=0.98, top=0.94, bottom=0.1)
    return fig


# ---------------------------------------------------------------------------------------------
# waveforms


def _nan_joined(traces: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, samples) traces as one NaN-separated polyline: one artist instead of n."""
    n = traces.shape[0]
    xs = np.concatenate([np.tile(np.append(x, np.nan), n)])
    ys = np.concatenate([traces, np.full((n, 1), np.nan)], axis=1).ravel()
    return xs, ys


def _nice(value: float) -> float:
    """The 1-2-5 number nearest below ``value``."""
    if value <= 0 or not np.isfinite(value):
        return 1.0
    power = 10 ** np.floor(np.log10(value))
    return float(max(m for m in (1, 2, 5, 10) if m * power <= value) * power)


def draw_waveforms(payload: dict, settings: RenderSettings) -> Figure:
    """Templates of every unit on the same channels, faint waveforms behind, in one axes.

    Channels are blocks laid out in a grid (one axes keeps the figure cheap to draw); every
    block has its own time axis in ms and all blocks share one amplitude scale (scale bar).
    """
    unit_ids, labels = payload["unit_ids"], payload["channel_labels"]
    templates, waveforms = payload["templates"], payload["waveforms"]
    t_tpl, t_wf = payload["template_time_ms"], payload["waveform_time_ms"]
    n_chan = len(labels)
    fig = _new_figure(settings)
    ax = fig.add_axes((0.03, 0.09, 0.95, 0.83))
    if n_chan == 0:
        _note(ax, "no channels with a template")
        return fig
    ncols = min(4, n_chan)
    nrows = -(-n_chan // ncols)
    t0, t1 = min(t_tpl[0], t_wf[0] if t_wf.size else t_tpl[0]), max(t_tpl[-1], t_wf[-1] if t_wf.size else t_tpl[-1])
    span = t1 - t0
    x_step = span * 1.18
    finite = templates[np.isfinite(templates)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (-1.0, 1.0)
    lo, hi = lo - 0.25 * (hi - lo), hi + 0.15 * (hi - lo)
    y_step = (hi - lo) * 1.12
    ticks, tick_labels = [], []
    for c in range(n_chan):
        row, col = divmod(c, ncols)
        dx, dy = col * x_step - t0, -row * y_step
        ax.plot([dx + t0, dx + t1], [dy, dy], color="#c8c8c8", lw=0.5)
        ax.plot([dx, dx], [dy + lo, dy + hi], color="#c8c8c8", lw=0.5)
        missing = []
        for i in range(len(unit_ids)):
            color = UNIT_COLORS[i % len(UNIT_COLORS)]
            if np.all(np.isnan(templates[i, :, c])):
                missing.append(str(unit_ids[i]))
                continue
            wf = waveforms[i][:, :, c]
            wf = np.clip(wf[~np.all(np.isnan(wf), axis=1)], lo, hi)
            if wf.size:
                xs, ys = _nan_joined(wf, t_wf)
                ax.plot(xs + dx, ys + dy, color=color, lw=0.5, alpha=0.12)
            ax.plot(t_tpl + dx, templates[i, :, c] + dy, color=color, lw=max(0.9, 2.2 - 0.5 * i))
        ax.text(dx + t0 + 0.5 * span, dy + hi, labels[c], ha="center", va="bottom", fontsize=7)
        if missing:
            ax.text(dx + t0, dy + lo, "not on: " + ", ".join(missing), fontsize=6, color="#777777", va="bottom")
        if row == nrows - 1 or c + ncols >= n_chan:
            for value in (np.ceil(t0), 0.0, np.floor(t1)):
                ticks.append(dx + value)
                tick_labels.append(f"{value:g}")
    bar = _nice(0.5 * (hi - lo))
    bar_x = t0 - 0.06 * span
    ax.plot([bar_x, bar_x], [lo, lo + bar], color="k", lw=1.5)
    ax.text(bar_x - 0.03 * span, lo + bar / 2, f"{bar:g} {payload['unit']}", rotation=90, ha="right",
            va="center", fontsize=7)
    ax.set_xticks(ticks, tick_labels)
    ax.set_yticks([])
    ax.spines["left"].set_visible(False)
    ax.set_xlim(t0 - 0.2 * span, (ncols - 1) * x_step + t1 + 0.02 * span)
    ax.set_ylim(-(nrows - 1) * y_step + lo, hi + 0.08 * (hi - lo))
    ax.set_xlabel("time (ms) on each channel")
    handles = [matplotlib.lines.Line2D([], [], color=UNIT_COLORS[i % len(UNIT_COLORS)], lw=2)
               for i in range(len(unit_ids))]
    fig.legend(handles, [_unit_label(unit_ids, i) for i in range(len(unit_ids))], loc="upper right",
               ncols=len(unit_ids), frameon=False)
    fig.text(0.02, 0.975, "Templates (thick) and sampled waveforms on the same channels", va="top", fontsize=8)
    return fig


def draw_waveforms_multi(payload: dict, settings: RenderSettings) -> Figure:
    """Templates on every channel of the units' sparsity, placed at the probe positions."""
    unit_ids, templates, locs = payload["unit_ids"], payload["templates"], payload["channel_locations"]
    t = payload["template_time_ms"]
    fig = _new_figure(settings)
    ax = fig.add_subplot()
    if locs.shape[0] == 0:
        _note(ax, "no channels")
        return fig
    xs_unique = np.unique(locs[:, 0])
    ys_unique = np.unique(locs[:, 1])
    x_pitch = np.min(np.diff(xs_unique)) if xs_unique.size > 1 else 30.0
    y_pitch = np.min(np.diff(ys_unique)) if ys_unique.size > 1 else 20.0
    x_scale = 0.85 * x_pitch / max(np.ptp(t), 1e-6)
    peak = np.nanmax(np.abs(templates)) if np.isfinite(templates).any() else 1.0
    y_scale = 2.2 * y_pitch / max(peak, 1e-6)
    ax.plot(locs[:, 0], locs[:, 1], ls="none", marker="s", ms=3, color="#cccccc")
    for i in range(len(unit_ids)):
        color = UNIT_COLORS[i % len(UNIT_COLORS)]
        traces = templates[i].T  # (channels, samples)
        keep = ~np.all(np.isnan(traces), axis=1)
        if not keep.any():
            continue
        x = (t - t[0] - np.ptp(t) / 2)[None, :] * x_scale + locs[keep, 0:1]
        y = traces[keep] * y_scale + locs[keep, 1:2]
        x = np.concatenate([x, np.full((x.shape[0], 1), np.nan)], axis=1).ravel()
        y = np.concatenate([y, np.full((y.shape[0], 1), np.nan)], axis=1).ravel()
        ax.plot(x, y, color=color, lw=1.0, label=_unit_label(unit_ids, i))
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


# ---------------------------------------------------------------------------------------------
# PCA


def pca_projections(stacked: np.ndarray, n_components: int = 3) -> np.ndarray:
    """Project rows of ``stacked`` (spikes, features) on its first principal components.

    The axes are fitted on the spikes nearest the median (collisions and noise would otherwise
    take PC1 for themselves), through the eigenvectors of the smaller of the Gram and covariance
    matrices (much cheaper than an SVD for a few hundred spikes); signs are fixed (largest
    loading positive) so the picture never flips.
    """
    data = stacked.astype(np.float64)
    centre = np.median(data, axis=0, keepdims=True)
    norms = np.linalg.norm(data - centre, axis=1)
    core = data[norms <= 2.5 * max(np.median(norms), 1e-12)]
    if core.shape[0] <= n_components:
        core = data
    mean = core.mean(axis=0, keepdims=True)
    fit = core - mean
    with _single_thread_blas():
        if fit.shape[0] <= fit.shape[1]:
            values, vectors = np.linalg.eigh(fit @ fit.T)
            order = np.argsort(values)[::-1][:n_components]
            loadings = fit.T @ vectors[:, order]
            loadings /= np.maximum(np.linalg.norm(loadings, axis=0, keepdims=True), 1e-12)
        else:
            values, vectors = np.linalg.eigh(fit.T @ fit)
            order = np.argsort(values)[::-1][:n_components]
            loadings = vectors[:, order]
        signs = np.sign(loadings[np.argmax(np.abs(loadings), axis=0), np.arange(loadings.shape[1])])
        signs[signs == 0] = 1
        return (data - mean) @ (loadings * signs[None, :])


def _robust_limits(values: np.ndarray) -> tuple[float, float]:
    """Axis limits around the central 98 % of ``values`` (outliers fall off the edge)."""
    lo, hi = np.percentile(values, [1, 99])
    pad = 0.15 * max(hi - lo, 1e-9)
    return float(lo - pad), float(hi + pad)


def draw_pca(payload: dict, settings: RenderSettings) -> Figure:
    """PC1/PC2 scatter and PC1 density, on shared channels with equal spikes per unit."""
    unit_ids, data = payload["unit_ids"], payload["waveforms"]
    fig = _new_figure(settings)
    grid = fig.add_gridspec(1, 2, width_ratios=(1.6, 1), wspace=0.25)
    ax = fig.add_subplot(grid[0])
    dens = fig.add_subplot(grid[1])
    n_shared = len(payload["shared_channels"])
    if data is None or n_shared == 0 or data.shape[1] < 2:
        reason = payload.get("note") or "not enough spikes for PCA"
        _note(ax, reason)
        dens.set_visible(False)
        return fig
    k, n = data.shape[:2]
    flat = data.reshape(k * n, -1)
    proj = pca_projections(flat, n_components=min(3, flat.shape[0] - 1, flat.shape[1]))
    if proj.shape[1] < 2:
        proj = np.concatenate([proj, np.zeros((proj.shape[0], 2 - proj.shape[1]))], axis=1)
    for i in range(k):  # one Line2D of markers per unit: far cheaper to draw than a scatter
        block = proj[i * n:(i + 1) * n]
        ax.plot(block[:, 0], block[:, 1], ls="none", marker="o", ms=2.2, mew=0, alpha=0.55,
                color=UNIT_COLORS[i % len(UNIT_COLORS)])
    xlim, ylim = _robust_limits(proj[:, 0]), _robust_limits(proj[:, 1])
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel("PC1")
    ax.set_ylabel("PC2")
    ax.set_title(f"PCA on {n_shared} shared channel{'s' if n_shared != 1 else ''}, {n} spikes per unit", pad=2, y=1.0)
    bins = np.linspace(xlim[0], xlim[1], 40)
    for i in range(k):
        color = UNIT_COLORS[i % len(UNIT_COLORS)]
        counts, _ = np.histogram(proj[i * n:(i + 1) * n, 0], bins=bins)
        dens.stairs(counts, bins, color=color, lw=1.3, label=_unit_label(unit_ids, i))
    all_counts, _ = np.histogram(proj[:, 0], bins=bins)
    dens.stairs(all_counts, bins, color="#888888", lw=0.8, ls="--", label="all")
    dens.set_xlabel("PC1")
    dens.set_ylabel("count")
    dens.set_title("PC1 density", pad=2, y=1.0)
    dens.legend(loc="upper right", frameon=False)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.93, bottom=0.1)
    return fig


# ---------------------------------------------------------------------------------------------
# spike locations


def draw_spike_locations(payload: dict, settings: RenderSettings) -> Figure:
    """Spike positions per unit (or a per-spike estimate) over the probe contacts."""
    unit_ids = payload["unit_ids"]
    fig = _new_figure(settings)
    ax = fig.add_subplot()
    probe = payload["channel_locations"]
    ax.plot(probe[:, 0], probe[:, 1], ls="none", marker="s", ms=4, color="#d0d0d0", zorder=0)
    points = [p for p in payload["spike_xy"] if p is not None and len(p)]
    for i, xy in enumerate(payload["spike_xy"]):
        color = UNIT_COLORS[i % len(UNIT_COLORS)]
        if xy is not None and len(xy):
            ax.plot(xy[:, 0], xy[:, 1], ls="none", marker="o", ms=2, mew=0, alpha=0.45, color=color)
        if payload["unit_xy"] is not None:
            ux, uy = payload["unit_xy"][i]
            ax.plot([ux], [uy], ls="none", marker="X", ms=9, mec="k", mew=0.8, color=color,
                    label=f"{_unit_label(unit_ids, i)}")
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


DRAWERS: dict[str, Callable[[dict, RenderSettings], Figure]] = {
    "crosscorrelograms": draw_crosscorrelograms,
    "amplitudes": draw_amplitudes,
    "waveforms": draw_waveforms,
    "pca": draw_pca,
    "spike_locations": draw_spike_locations,
    "waveforms_multi": draw_waveforms_multi,
}


def draw_png(feature: str, payload: dict, settings: RenderSettings) -> bytes:
    """Draw one feature's figure and return its PNG bytes."""
    with matplotlib.rc_context(_RC):
        fig = DRAWERS[feature](payload, settings)
        return figure_to_png(fig, settings)


def render_jobs(jobs: list[tuple[str, dict, str]], settings: RenderSettings) -> list[str]:
    """Draw and write each ``(feature, payload, path)``; the unit of work sent to a worker process."""
    written = []
    for feature, payload, path in jobs:
        write_bytes_atomic(Path(path), draw_png(feature, payload, settings))
        written.append(path)
    return written


def tile_composite(paths: list[Path], settings: RenderSettings) -> bytes:
    """Tile feature PNGs two by two into one image whose long side is 1.5x a single figure's."""
    images = [Image.open(p).convert("RGB") for p in paths]
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
