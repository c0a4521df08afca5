"""The four default evidence figures, built once per layout and redrawn with each group's data.

Building a matplotlib figure (axes, ticks, legends, text layout) costs more than drawing it, and
candidate groups share a handful of layouts (a figure's layout depends only on how many units
the group has). So each figure is a class: ``__init__`` lays out every artist for ``k`` units,
``update(payload)`` only sets data, limits and text, and ``blank_reason(payload)`` says when
there is nothing to plot (then a note figure is drawn instead). ``render_draw`` keeps one instance per
layout in each process. Every value an update sets is set on every update, so a figure redrawn
for group B and then A gives the same bytes as a fresh one for A.
"""

from __future__ import annotations

import matplotlib.colors
import numpy as np
import scipy.linalg
from matplotlib.artist import Artist
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from .style import (
    CCG_BACKGROUND,
    CCG_COLOR,
    REFRACTORY_COLOR,
    RenderSettings,
    new_figure,
    single_thread_blas,
    unit_color,
    unit_label,
)

# ---------------------------------------------------------------------------------------------
# correlograms


def lag_edges_ms(settings: RenderSettings) -> np.ndarray:
    """Correlogram bin edges in ms, with a bin centred on zero lag."""
    half_bins = int(round(settings.ccg_window_ms / settings.ccg_bin_ms))
    return (np.arange(-half_bins, half_bins + 2) - 0.5) * settings.ccg_bin_ms


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
    edges_ms = lag_edges_ms(settings)
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


class CorrelogramFigure:
    """ACG of each unit (unit colour, white) then CCG of each pair (dark grey on blue-grey).

    Every panel is a block of one axes (one set of collections, no per-panel axes or tick
    machinery): drawing time barely grows with the number of panels. Each panel has its own
    count scale, read from a labelled tick at a round count; lags are ticked at the window's
    ends, its middle and zero, labelled under the lowest panel of each column.
    """

    margins_px = (24.0, 5.0, 15.0, 13.0)
    """Room inside each panel's cell, in pixels: left (count label), right, top (title), bottom (lag labels)."""

    def __init__(self, k: int, settings: RenderSettings) -> None:
        from matplotlib.collections import LineCollection, PolyCollection

        self.settings = settings
        self.pairs = [(i, i) for i in range(k)] + [(i, j) for i in range(k) for j in range(i + 1, k)]
        n_panels = len(self.pairs)
        self.ncols = ncols = 3 if k <= 3 else min(k, 6)
        self.nrows = nrows = -(-n_panels // ncols)
        self.edges = edges = lag_edges_ms(settings)
        half = settings.ccg_window_ms
        self.figure = fig = new_figure(settings)
        rect = (0.04, 0.055, 0.955, 0.875 if nrows == 1 else 0.895)
        self.ax = ax = fig.add_axes(rect)
        ax.set_axis_off()
        ax.set_xlim(0, ncols)
        ax.set_ylim(-nrows, 0)
        # pixel margins as fractions of a cell, shrunk together when the cells are small
        cell_w = rect[2] * settings.width_px / ncols
        cell_h = rect[3] * settings.height_px / nrows
        left, right, top, bottom = self.margins_px
        shrink = min(1.0, 0.6 * cell_h / (top + bottom), 0.5 * cell_w / (left + right))
        self._px = (1.0 / cell_w, 1.0 / cell_h)
        ml, mr, mt, mb = left * shrink / cell_w, right / cell_w, top * shrink / cell_h, bottom * shrink / cell_h
        fontsize = 8 if nrows <= 3 and ncols <= 4 else 7 if nrows <= 6 else 6
        self.boxes = []  # (x0, x1, y0, y1) of each panel's plotting area
        for n in range(n_panels):
            row, col = divmod(n, ncols)
            self.boxes.append((col + ml, col + 1 - mr, -row - 1 + mb, -row - mt))
        self._x_of = lambda lag, box: box[0] + (lag - edges[0]) / (edges[-1] - edges[0]) * (box[1] - box[0])

        def rect_verts(x0, x1, y0, y1):
            return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]

        backgrounds = [rect_verts(*b) for (i, j), b in zip(self.pairs, self.boxes) if i != j]
        ax.add_collection(PolyCollection(backgrounds, facecolors=CCG_BACKGROUND, edgecolors="none", zorder=0),
                          autolim=False)
        r = settings.refractory_ms
        bands = [rect_verts(self._x_of(-r, b), self._x_of(r, b), b[2], b[3]) for b in self.boxes]
        ax.add_collection(PolyCollection(bands, facecolors=REFRACTORY_COLOR, alpha=0.35, edgecolors="none", zorder=1),
                          autolim=False)
        colors = [unit_color(i) if i == j else CCG_COLOR for i, j in self.pairs]
        self.bars = PolyCollection([], facecolors=colors, edgecolors="none", zorder=2)
        ax.add_collection(self.bars, autolim=False)
        # axes lines and the lag ticks are fixed; the count ticks move with each panel's scale
        tick_x, tick_y = 3.0 * self._px[0], 3.0 * self._px[1]
        frame = []
        for b in self.boxes:
            frame.append([(b[0], b[3]), (b[0], b[2]), (b[1], b[2])])
            for lag in (-half, -half / 2, 0.0, half / 2, half):
                x = self._x_of(lag, b)
                frame.append([(x, b[2]), (x, b[2] - tick_y)])
        ax.add_collection(LineCollection(frame, colors="#333333", linewidths=0.6, zorder=3), autolim=False)
        self.count_ticks = LineCollection([], colors="#333333", linewidths=0.6, zorder=3)
        ax.add_collection(self.count_ticks, autolim=False)
        self._tick_len = tick_x
        self.titles, self.counts, self.scale_labels = [], [], []
        for (i, j), b in zip(self.pairs, self.boxes):
            color = unit_color(i) if i == j else "#000000"
            self.titles.append(ax.text(0.5 * (b[0] + b[1]), b[3] + 2 * self._px[1], "", ha="center", va="bottom",
                                       fontsize=fontsize, fontweight="bold", color=color, clip_on=False))
            self.counts.append(ax.text(b[1] - 2 * self._px[0], b[3] - 2 * self._px[1], "", ha="right", va="top",
                                       fontsize=7 if fontsize > 6 else 6, color="#333333"))
            self.scale_labels.append(ax.text(b[0] - tick_x - 1.5 * self._px[0], b[2], "", ha="right",
                                             va="center", fontsize=7 if fontsize > 6 else 6))
        lowest = {}
        for n, b in enumerate(self.boxes):
            lowest[n % ncols] = b
        for b in lowest.values():
            for lag in (-half, 0.0, half):
                ax.text(self._x_of(lag, b), b[2] - tick_y - 1.5 * self._px[1], f"{lag:g}", ha="center", va="top",
                        fontsize=7 if fontsize > 6 else 6)
        fig.text(0.5, 0.005, "lag (ms)", ha="center", va="bottom", fontsize=8)
        fig.text(0.008, 0.5, "count", ha="left", va="center", rotation=90, fontsize=8)
        fig.text(0.5, 0.985, f"Correlograms, {settings.ccg_bin_ms:g} ms bins; shaded: ±{settings.refractory_ms:g} ms "
                 "refractory", ha="center", va="top", fontsize=8)
        self._centres = 0.5 * (edges[:-1] + edges[1:])
        self._x_steps = [np.repeat(self._x_of(edges, b), 2) for b in self.boxes]

    @staticmethod
    def blank_reason(payload: dict) -> str | None:
        return None  # empty trains draw as empty correlograms

    def update(self, payload: dict) -> None:
        unit_ids, trains, fs = payload["unit_ids"], payload["trains"], payload["fs"]
        refractory = np.abs(self._centres) < self.settings.refractory_ms
        verts, ticks = [], []
        for n, (i, j) in enumerate(self.pairs):
            x0, x1, y0, y1 = self.boxes[n]
            counts, _ = lag_histogram(trains[i], trains[j], fs, self.settings, auto=i == j)
            peak = max(1, int(counts.max(initial=0)))
            scale = (y1 - y0) / (peak * 1.15)
            heights = y0 + counts * scale
            ys = np.concatenate([[y0], np.repeat(heights, 2), [y0]])
            verts.append(np.column_stack([self._x_steps[n], ys]))
            # ticks every round step up to the top, the highest one labelled
            step = max(1.0, _nice(peak * 1.15 / 2.5))
            marks = step * np.arange(1, int(peak * 1.15 // step) + 1)
            for mark in marks:
                ticks.append([(x0 - self._tick_len, y0 + mark * scale), (x0, y0 + mark * scale)])
            self.scale_labels[n].set_text(f"{marks[-1]:g}" if marks.size else "")
            self.scale_labels[n].set_y(y0 + (marks[-1] if marks.size else 0.0) * scale)
            if i == j:
                self.titles[n].set_text(f"ACG {unit_label(unit_ids, i)} (n={len(trains[i])})")
            else:
                self.titles[n].set_text(f"CCG {unit_ids[i]} × {unit_ids[j]}")
            self.counts[n].set_text(f"±{self.settings.refractory_ms:g} ms: {int(counts[refractory].sum())}")
        self.bars.set_verts(verts)
        self.count_ticks.set_segments(ticks)


# ---------------------------------------------------------------------------------------------
# amplitudes


class AmplitudeFigure:
    """Amplitude of every spike over time, with a horizontal histogram per unit on the right."""

    n_bins = 59
    legend_rows = 12
    """Units listed per legend column: more units take more columns."""

    def __init__(self, k: int, settings: RenderSettings) -> None:
        self.settings = settings
        self.figure = fig = new_figure(settings)
        grid = fig.add_gridspec(1, 2, width_ratios=(4.2, 1), wspace=0.04)
        self.ax = ax = fig.add_subplot(grid[0])
        self.hist_ax = hist_ax = fig.add_subplot(grid[1], sharey=ax)
        placeholder = np.arange(self.n_bins + 1, dtype=float)
        self.points, self.hists = [], []
        for i in range(k):
            self.points.append(ax.plot([], [], ls="none", marker="o", ms=1.6, mew=0, alpha=0.6,
                                       color=unit_color(i))[0])
            self.hists.append(hist_ax.stairs(np.zeros(self.n_bins), placeholder, orientation="horizontal",
                                             color=unit_color(i), lw=1.2))
        ax.set_xlabel("time (s)")
        ax.set_title("Spike amplitudes over time", pad=2, y=1.0)
        # a large group's legend in columns, so that it stays inside the axes
        columns = int(np.ceil(k / self.legend_rows))
        self.legend = ax.legend(self.points, [f"unit {i}" for i in range(k)], loc="upper right", markerscale=4,
                                frameon=True, framealpha=0.8, ncols=columns,
                                fontsize="small" if columns > 1 else None, columnspacing=0.8)
        # the legend's share of the axes, for choosing its corner (matplotlib's "best" tests every
        # point against every candidate box at each draw: a third of this figure's drawing time)
        self._legend_size = (min(0.95, 0.32 * columns), min(0.9, 0.035 + 0.055 * int(np.ceil(k / columns))))
        for handle in self.legend.legend_handles:
            handle.set_alpha(1)
        ax.yaxis.set_major_locator(MaxNLocator(5))
        # no 0 at the histogram's left edge: it ran into the scatter's last time label
        hist_ax.xaxis.set_major_locator(MaxNLocator(2, integer=True, prune="lower"))
        hist_ax.set_xlabel("count")
        hist_ax.tick_params(labelleft=False)
        hist_ax.set_title("distribution", pad=2, y=1.0)
        fig.subplots_adjust(left=0.09, right=0.98, top=0.94, bottom=0.1)

    @staticmethod
    def blank_reason(payload: dict) -> str | None:
        return None if sum(len(a) for a in payload["amplitudes"]) else "no spikes"

    def update(self, payload: dict) -> None:
        unit_ids = payload["unit_ids"]
        all_amps = np.concatenate(payload["amplitudes"])
        lo, hi = np.percentile(all_amps, [0.5, 99.5])
        pad = 0.05 * max(hi - lo, 1e-6)
        bins = np.linspace(lo - pad, hi + pad, self.n_bins + 1)
        top = 1
        for i, (times, amps) in enumerate(zip(payload["times"], payload["amplitudes"])):
            step = max(1, int(np.ceil(times.size / self.settings.max_amplitude_points)))
            self.points[i].set_data(times[::step], amps[::step])
            counts, _ = np.histogram(amps, bins=bins)
            self.hists[i].set_data(counts, bins)
            top = max(top, int(counts.max(initial=0)))
            self.legend.texts[i].set_text(f"{unit_label(unit_ids, i)} ({amps.size} spikes)")
        self.ax.set_xlim(0, payload["duration_s"])
        self.ax.set_ylim(bins[0], bins[-1])
        self.legend.set_loc(self._emptiest_corner(payload, bins[0], bins[-1]))
        self.hist_ax.set_xlim(0, top * 1.05)
        self.ax.set_ylabel(f"amplitude ({payload['unit']})")


    def _emptiest_corner(self, payload: dict, y0: float, y1: float) -> str:
        """The corner of the scatter whose legend-sized box holds the fewest plotted points."""
        w, h = self._legend_size
        duration = max(float(payload["duration_s"]), 1e-9)
        counts = dict.fromkeys(("upper right", "upper left", "lower left", "lower right"), 0)
        for line in self.points:
            x, y = line.get_data()
            fx, fy = np.asarray(x) / duration, (np.asarray(y) - y0) / max(y1 - y0, 1e-12)
            right, left, top, bottom = fx > 1 - w, fx < w, fy > 1 - h, fy < h
            counts["upper right"] += int(np.count_nonzero(right & top))
            counts["upper left"] += int(np.count_nonzero(left & top))
            counts["lower left"] += int(np.count_nonzero(left & bottom))
            counts["lower right"] += int(np.count_nonzero(right & bottom))
        return min(counts, key=counts.get)  # ties: the first listed


# ---------------------------------------------------------------------------------------------
# waveforms


def _polyline(traces: np.ndarray, x: np.ndarray, dx: float, dy: float) -> tuple[np.ndarray, np.ndarray]:
    """(n, samples) traces shifted by (dx, dy) as one NaN-separated polyline."""
    n = traces.shape[0]
    xs = np.tile(np.append(x + dx, np.nan), n)
    ys = np.concatenate([traces + dy, np.full((n, 1), np.nan)], axis=1).ravel()
    return xs, ys


def _joined(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    if not parts:
        return np.zeros(0), np.zeros(0)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _nice(value: float) -> float:
    """The 1-2-5 number nearest below ``value``."""
    if value <= 0 or not np.isfinite(value):
        return 1.0
    power = 10 ** np.floor(np.log10(value))
    return float(max(m for m in (1, 2, 5, 10) if m * power <= value) * power)


def _line_pixels(xs: np.ndarray, ys: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Flat indices of the pixels a NaN-separated polyline passes through (one sample per pixel step).

    ``xs``, ``ys`` are in pixel units of an image of ``shape`` (rows counted from the top).
    """
    height, width = shape
    x0, x1, y0, y1 = xs[:-1], xs[1:], ys[:-1], ys[1:]
    valid = np.isfinite(x0) & np.isfinite(x1) & np.isfinite(y0) & np.isfinite(y1)
    x0, x1, y0, y1 = x0[valid], x1[valid], y0[valid], y1[valid]
    dx, dy = x1 - x0, y1 - y0
    steps = np.maximum(np.ceil(np.maximum(np.abs(dx), np.abs(dy))), 1).astype(np.int64)
    seg = np.repeat(np.arange(steps.size), steps)
    t = (np.arange(seg.size) - np.repeat(np.cumsum(steps) - steps, steps)) / steps[seg]
    px = np.concatenate([x0[seg] + t * dx[seg], x1])  # and every segment's end (a trace's last point)
    py = np.concatenate([y0[seg] + t * dy[seg], y1])
    col, row = np.floor(px).astype(np.int64), np.floor(py).astype(np.int64)
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    return row[inside] * width + col[inside]


WAVEFORM_ALPHA = 0.14
"""Opacity of a unit's sampled waveforms (where any passes) behind its templates."""


class WaveformFigure:
    """Templates of every unit on the same channels, faint waveforms behind, in one axes.

    Channels are blocks laid out in a grid (one axes keeps the figure cheap to draw); every
    block has its own time axis in ms and all blocks share one amplitude scale (scale bar).
    Each unit's templates (and its waveforms) over all channels are one polyline.
    """

    def __init__(self, k: int, settings: RenderSettings) -> None:
        self.settings = settings
        self.figure = fig = new_figure(settings)
        # the axes on whole pixels, so the faint waveforms' image maps one to one onto the canvas
        left, bottom = round(0.03 * settings.width_px), round(0.09 * settings.height_px)
        # up to three units share the title's line; more get legend rows of their own below it
        legend_rows = 0 if k <= 3 else -(-k // 6)
        self.shape = (round((0.83 - 0.04 * legend_rows) * settings.height_px), round(0.95 * settings.width_px))
        self.ax = ax = fig.add_axes((left / settings.width_px, bottom / settings.height_px,
                                     self.shape[1] / settings.width_px, self.shape[0] / settings.height_px))
        self.frame = ax.plot([], [], color="#c8c8c8", lw=0.5)[0]
        # sampled waveforms: one pixel-wide trace per waveform, rasterised here (drawing hundreds of
        # faint antialiased polylines was half the figure's drawing time)
        self.waveform_image = _Pixels((left, bottom), self.shape)
        self.waveform_image.set_zorder(1.5)
        ax.add_artist(self.waveform_image)
        self.colors = [np.array(matplotlib.colors.to_rgb(unit_color(i))) for i in range(k)]
        self.template_lines = []
        for i in range(k):
            self.template_lines.append(ax.plot([], [], color=unit_color(i), lw=max(0.9, 2.2 - 0.5 * i))[0])
        slots = settings.max_waveform_channels
        self.channel_texts = [ax.text(0, 0, "", ha="center", va="bottom", fontsize=7) for _ in range(slots)]
        self.missing_texts = [ax.text(0, 0, "", fontsize=6, color="#777777", va="bottom") for _ in range(slots)]
        self.bar = ax.plot([], [], color="k", lw=1.5)[0]
        self.bar_text = ax.text(0, 0, "", rotation=90, ha="right", va="center", fontsize=7)
        ax.set_yticks([])
        ax.spines["left"].set_visible(False)
        ax.set_xlabel("time (ms) on each channel")
        handles = [Line2D([], [], color=unit_color(i), lw=2) for i in range(k)]
        self.legend = fig.legend(handles, [f"unit {i}" for i in range(k)], loc="upper right", ncols=min(k, 6),
                                 frameon=False, bbox_to_anchor=(1.0, 1.0 if k <= 3 else 0.955))
        fig.text(0.02, 0.975, "Templates (thick) and sampled waveforms on the same channels", va="top",
                 fontsize=8)

    @staticmethod
    def blank_reason(payload: dict) -> str | None:
        return None if payload["channel_labels"] else "no channels with a template"

    def update(self, payload: dict) -> None:
        unit_ids, labels = payload["unit_ids"], payload["channel_labels"]
        templates, waveforms = payload["templates"], payload["waveforms"]
        t_tpl, t_wf = payload["template_time_ms"], payload["waveform_time_ms"]
        n_chan = min(len(labels), len(self.channel_texts))
        ncols = min(4, n_chan)
        nrows = -(-n_chan // ncols)
        t0 = min(t_tpl[0], t_wf[0] if t_wf.size else t_tpl[0])
        t1 = max(t_tpl[-1], t_wf[-1] if t_wf.size else t_tpl[-1])
        span = t1 - t0
        x_step = span * 1.18
        finite = templates[np.isfinite(templates)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (-1.0, 1.0)
        lo, hi = lo - 0.25 * (hi - lo), hi + 0.15 * (hi - lo)
        y_step = (hi - lo) * 1.12
        frame, ticks, tick_labels = [], [], []
        wf_parts: list[list] = [[] for _ in unit_ids]
        tpl_parts: list[list] = [[] for _ in unit_ids]
        for c in range(n_chan):
            row, col = divmod(c, ncols)
            dx, dy = col * x_step - t0, -row * y_step
            frame.append((np.array([dx + t0, dx + t1, np.nan, dx, dx, np.nan]),
                          np.array([dy, dy, np.nan, dy + lo, dy + hi, np.nan])))
            missing = []
            for i in range(len(unit_ids)):
                if np.all(np.isnan(templates[i, :, c])):
                    missing.append(str(unit_ids[i]))
                    continue
                wf = waveforms[i][:, :, c]
                wf = np.clip(wf[~np.all(np.isnan(wf), axis=1)], lo, hi)
                if wf.size:
                    wf_parts[i].append(_polyline(wf, t_wf, dx, dy))
                tpl_parts[i].append(_polyline(templates[i, :, c][None, :], t_tpl, dx, dy))
            self.channel_texts[c].set_text(labels[c])
            self.channel_texts[c].set_position((dx + t0 + 0.5 * span, dy + hi))
            self.missing_texts[c].set_text("not on: " + ", ".join(missing) if missing else "")
            self.missing_texts[c].set_position((dx + t0, dy + lo))
            if row == nrows - 1 or c + ncols >= n_chan:
                for value in (np.ceil(t0), 0.0, np.floor(t1)):
                    ticks.append(dx + value)
                    tick_labels.append(f"{value:g}")
        for c in range(n_chan, len(self.channel_texts)):
            self.channel_texts[c].set_text("")
            self.missing_texts[c].set_text("")
        self.frame.set_data(*_joined(frame))
        for i in range(len(unit_ids)):
            self.template_lines[i].set_data(*_joined(tpl_parts[i]))
            self.legend.texts[i].set_text(unit_label(unit_ids, i))
        bar = _nice(0.5 * (hi - lo))
        bar_x = -0.06 * span  # blocks start at col * x_step: the bar sits just left of the first
        self.bar.set_data([bar_x, bar_x], [lo, lo + bar])
        self.bar_text.set_text(f"{bar:g} {payload['unit']}")
        self.bar_text.set_position((bar_x - 0.03 * span, lo + bar / 2))
        self.ax.set_xticks(ticks, tick_labels)
        xlim = (-0.2 * span, (ncols - 1) * x_step + span + 0.02 * span)  # the last block whole
        ylim = (-(nrows - 1) * y_step + lo, hi + 0.08 * (hi - lo))
        self.ax.set_xlim(*xlim)
        self.ax.set_ylim(*ylim)
        self.waveform_image.pixels = self._waveform_pixels([_joined(parts) for parts in wf_parts], xlim, ylim)

    def _waveform_pixels(self, traces: list[tuple[np.ndarray, np.ndarray]], xlim, ylim) -> np.ndarray:
        """RGBA image (rows from the top) of each unit's traces at ``WAVEFORM_ALPHA``, later units over earlier ones."""
        height, width = self.shape
        units = np.zeros(height * width, dtype=np.uint16)  # bit i: unit i passes through the pixel
        for i, (xs, ys) in enumerate(traces):
            if xs.size < 2:
                continue
            px = (xs - xlim[0]) * (width / (xlim[1] - xlim[0]))
            py = (ylim[1] - ys) * (height / (ylim[1] - ylim[0]))
            units[_line_pixels(px, py, self.shape)] |= np.uint16(1 << min(i, 15))
        hit = np.flatnonzero(units)
        which = units[hit]
        premultiplied = np.zeros((hit.size, 3), dtype=np.float32)
        alpha = np.zeros(hit.size, dtype=np.float32)
        for i, color in enumerate(self.colors[:16]):
            on = ((which >> i) & 1).astype(np.float32) * WAVEFORM_ALPHA
            premultiplied = color[None, :] * on[:, None] + premultiplied * (1 - on[:, None])
            alpha = on + alpha * (1 - on)
        image = np.zeros((height * width, 4), dtype=np.uint8)
        image[hit, :3] = np.round(255 * premultiplied / alpha[:, None])
        image[hit, 3] = np.round(255 * alpha)
        return image.reshape(height, width, 4)


class _Pixels(Artist):
    """An RGBA array stamped unscaled at a pixel position of the canvas (no resampling, no colour mapping)."""

    def __init__(self, corner: tuple[int, int], shape: tuple[int, int]) -> None:
        super().__init__()
        self.corner = corner
        self.pixels = np.zeros((*shape, 4), dtype=np.uint8)

    def draw(self, renderer) -> None:
        if not self.get_visible():
            return
        gc = renderer.new_gc()
        renderer.draw_image(gc, self.corner[0], self.corner[1], self.pixels[::-1])
        gc.restore()


# ---------------------------------------------------------------------------------------------
# PCA


PCA_FIT_SPIKES = 240
"""Spikes the PCA axes are fitted on (all are projected): three axes are settled by a few hundred
spikes, and the fit's cost grows with the square of this (a 14-unit group has 2800)."""


def pca_projections(stacked: np.ndarray, n_components: int = 3) -> np.ndarray:
    """Project rows of ``stacked`` (spikes, features) on its first principal components.

    The axes are fitted on the spikes nearest the median (collisions and noise would otherwise
    take PC1 for themselves), at most ``PCA_FIT_SPIKES`` of them spread evenly over the units,
    through the leading eigenvectors of the smaller of the Gram and covariance matrices; only
    those few are computed (Lanczos from a fixed start vector, so the result is deterministic),
    far cheaper than an SVD for a few hundred spikes. Signs are fixed (largest loading
    positive) so the picture never flips.
    """
    data = np.asarray(stacked, dtype=np.float32)
    centre = np.median(data[_even_rows(data.shape[0], 256)], axis=0, keepdims=True)
    norms = np.linalg.norm(data - centre, axis=1)
    core = data[norms <= 2.5 * max(float(np.median(norms)), 1e-12)]
    if core.shape[0] <= n_components + 1:
        core = data
    core = core[_even_rows(core.shape[0], PCA_FIT_SPIKES)]
    mean = core.mean(axis=0, keepdims=True)
    fit = core - mean
    with single_thread_blas():
        gram = fit.shape[0] <= fit.shape[1]
        matrix = (fit @ fit.T if gram else fit.T @ fit).astype(np.float64)
        vectors = _leading_eigenvectors(matrix, n_components)
        if gram:
            loadings = fit.T.astype(np.float64) @ vectors
            loadings /= np.maximum(np.linalg.norm(loadings, axis=0, keepdims=True), 1e-12)
        else:
            loadings = vectors
        signs = np.sign(loadings[np.argmax(np.abs(loadings), axis=0), np.arange(loadings.shape[1])])
        signs[signs == 0] = 1
        return (data - mean).astype(np.float64) @ (loadings * signs[None, :])


def _even_rows(n_total: int, n_keep: int) -> np.ndarray:
    if n_keep >= n_total:
        return np.arange(n_total)
    return np.unique(np.linspace(0, n_total - 1, n_keep).round().astype(int))


def _leading_eigenvectors(matrix: np.ndarray, n: int) -> np.ndarray:
    """Eigenvectors of the ``n`` largest eigenvalues of a symmetric matrix, largest first."""
    size = matrix.shape[0]
    n = min(n, size)
    if size > 4 * n + 8:
        from scipy.sparse.linalg import eigsh

        values, vectors = eigsh(matrix, k=n, which="LA", v0=np.ones(size))
    else:
        values, vectors = scipy.linalg.eigh(matrix, subset_by_index=[size - n, size - 1])
    return vectors[:, np.argsort(values)[::-1]]


def _robust_limits(values: np.ndarray) -> tuple[float, float]:
    """Axis limits around the central 98 % of ``values`` (outliers fall off the edge)."""
    lo, hi = np.percentile(values, [1, 99])
    pad = 0.15 * max(hi - lo, 1e-9)
    return float(lo - pad), float(hi + pad)


class PCAFigure:
    """PC1/PC2 scatter and PC1 density, on shared channels with equal spikes per unit."""

    n_bins = 39

    def __init__(self, k: int, settings: RenderSettings) -> None:
        self.settings = settings
        self.figure = fig = new_figure(settings)
        grid = fig.add_gridspec(1, 2, width_ratios=(1.6, 1), wspace=0.25)
        self.ax = ax = fig.add_subplot(grid[0])
        self.dens = dens = fig.add_subplot(grid[1])
        placeholder = np.arange(self.n_bins + 1, dtype=float)
        # one Line2D of markers per unit: far cheaper to draw than a scatter
        self.clouds = [ax.plot([], [], ls="none", marker="o", ms=2.2, mew=0, alpha=0.55, color=unit_color(i))[0]
                       for i in range(k)]
        self.densities = [dens.stairs(np.zeros(self.n_bins), placeholder, color=unit_color(i), lw=1.3)
                          for i in range(k)]
        self.density_all = dens.stairs(np.zeros(self.n_bins), placeholder, color="#888888", lw=0.8, ls="--")
        ax.set_xlabel("PC1")
        ax.set_ylabel("PC2")
        self.title = ax.set_title(" ", pad=2, y=1.0)
        for axis in (ax.xaxis, ax.yaxis, dens.xaxis):
            axis.set_major_locator(MaxNLocator(5))
        dens.yaxis.set_major_locator(MaxNLocator(4, integer=True))
        dens.set_xlabel("PC1")
        dens.set_ylabel("count")
        dens.set_title("PC1 density", pad=2, y=1.0)
        self.legend = dens.legend(self.densities + [self.density_all], [f"unit {i}" for i in range(k)] + ["all"],
                                  loc="upper right", frameon=False)
        fig.subplots_adjust(left=0.08, right=0.98, top=0.93, bottom=0.1)

    @staticmethod
    def blank_reason(payload: dict) -> str | None:
        data = payload["waveforms"]
        if data is None or len(payload["shared_channels"]) == 0 or data.shape[1] < 2:
            return payload.get("note") or "not enough spikes for PCA"
        return None

    def update(self, payload: dict) -> None:
        unit_ids, data = payload["unit_ids"], payload["waveforms"]
        n_shared = len(payload["shared_channels"])
        k, n = data.shape[:2]
        flat = data.reshape(k * n, -1)
        proj = pca_projections(flat, n_components=min(3, flat.shape[0] - 1, flat.shape[1]))
        if proj.shape[1] < 2:
            proj = np.concatenate([proj, np.zeros((proj.shape[0], 2 - proj.shape[1]))], axis=1)
        xlim, ylim = _robust_limits(proj[:, 0]), _robust_limits(proj[:, 1])
        bins = np.linspace(xlim[0], xlim[1], self.n_bins + 1)
        all_counts, _ = np.histogram(proj[:, 0], bins=bins)
        for i in range(k):
            block = proj[i * n:(i + 1) * n]
            self.clouds[i].set_data(block[:, 0], block[:, 1])
            counts, _ = np.histogram(block[:, 0], bins=bins)
            self.densities[i].set_data(counts, bins)
            self.legend.texts[i].set_text(unit_label(unit_ids, i))
        self.density_all.set_data(all_counts, bins)
        self.ax.set_xlim(*xlim)
        self.ax.set_ylim(*ylim)
        self.dens.set_xlim(bins[0], bins[-1])
        self.dens.set_ylim(0, max(1, int(all_counts.max())) * 1.05)
        self.title.set_text(f"PCA on {n_shared} shared channel{'s' if n_shared != 1 else ''}, "
                            f"{n} spikes per unit")


FIGURES = {
    "crosscorrelograms": CorrelogramFigure,
    "amplitudes": AmplitudeFigure,
    "waveforms": WaveformFigure,
    "pca": PCAFigure,
}
"""The reusable default figures by feature name."""
