"""render_group: one evidence figure per modality and group, cached on disk by content hash.

The parent process pulls the few arrays each figure needs out of the ``SortingAnalyzer``
(spike trains, amplitudes, sampled waveforms, templates); ``render_draw`` turns them into PNGs,
in this process or in spawned worker processes. The cache key is a hash of exactly those
arrays plus the feature name and the drawing settings, so an image is reused only when it would
be drawn identically, whatever the group is called, and never served for different data.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Hashable, Mapping, Sequence

import numpy as np

from ...errors import SpikemergeError
from ..outputs import write_bytes_atomic
from .draw import render_jobs, tile_composite
from .style import RenderSettings

UnitId = Hashable

DEFAULT_FEATURES: tuple[str, ...] = ("crosscorrelograms", "amplitudes", "waveforms", "pca")
OPTIONAL_FEATURES: tuple[str, ...] = ("spike_locations", "waveforms_multi", "composite")
ALL_FEATURES: tuple[str, ...] = DEFAULT_FEATURES + OPTIONAL_FEATURES
COMPOSITE_PARTS: tuple[str, ...] = DEFAULT_FEATURES
"""The composite tiles these four figures."""

DEFAULT_SETTINGS = RenderSettings()


# ---------------------------------------------------------------------------------------------
# validation


def check_features(features: Sequence[str]) -> tuple[str, ...]:
    """Return ``features`` as a de-duplicated tuple, or raise on a name we do not draw."""
    if isinstance(features, str):
        features = (features,)
    unknown = [f for f in features if f not in ALL_FEATURES]
    if unknown:
        raise SpikemergeError(
            f"unknown feature{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}: "
            f"valid features are {', '.join(ALL_FEATURES)}"
        )
    if not features:
        raise SpikemergeError(f"no features asked for: choose from {', '.join(ALL_FEATURES)}")
    return tuple(dict.fromkeys(features))


def _check_units(analyzer, group_id: int, unit_ids: Sequence[UnitId]) -> list:
    known = list(analyzer.unit_ids)
    lookup = {str(u): u for u in known}
    if len(unit_ids) == 0:
        raise SpikemergeError(f"group {group_id} has no units: give at least one unit id")
    resolved = []
    for unit in unit_ids:
        if unit in known:
            resolved.append(known[known.index(unit)])
        elif str(unit) in lookup:
            resolved.append(lookup[str(unit)])
        else:
            raise SpikemergeError(
                f"group {group_id}: unit {unit!r} is not in the analyzer (units: {', '.join(map(str, known[:20]))}"
                f"{', ...' if len(known) > 20 else ''})"
            )
    return resolved


# ---------------------------------------------------------------------------------------------
# what the figures read, pulled out of the analyzer once per call


@dataclass
class _AnalyzerView:
    """Arrays shared by every group of one ``render_groups`` call."""

    analyzer: Any
    fs: float
    duration_s: float
    spikes: np.ndarray
    spike_time_s: np.ndarray
    spike_sample_concat: np.ndarray
    channel_locations: np.ndarray
    channel_ids: list
    sparse_mask: np.ndarray
    templates: np.ndarray
    template_time_ms: np.ndarray
    amplitude_unit: str

    @classmethod
    def of(cls, analyzer, settings: RenderSettings) -> "_AnalyzerView":
        fs = float(analyzer.sampling_frequency)
        spikes = analyzer.sorting.to_spike_vector()
        num_segments = analyzer.get_num_segments()
        seg_samples = np.array([analyzer.get_num_samples(s) for s in range(num_segments)], dtype=np.int64)
        # segments laid end to end for time, and with a gap wider than the CCG window for lags
        time_offset = np.concatenate([[0], np.cumsum(seg_samples)[:-1]])
        gap = int(2 * settings.ccg_window_ms * fs / 1000.0) + 10
        lag_offset = np.concatenate([[0], np.cumsum(seg_samples + gap)[:-1]])
        seg = spikes["segment_index"]
        sample = spikes["sample_index"].astype(np.int64)
        templates_ext = analyzer.get_extension("templates")
        if templates_ext is None:
            raise SpikemergeError("the analyzer has no templates: open it with load_analyzer, which computes them")
        templates = np.asarray(templates_ext.get_templates(operator="average"), dtype=np.float32)
        n_before = templates_ext.nbefore
        if analyzer.sparsity is not None:
            mask = np.asarray(analyzer.sparsity.mask, dtype=bool)
        else:
            mask = np.ones((len(analyzer.unit_ids), analyzer.get_num_channels()), dtype=bool)
        return cls(
            analyzer=analyzer,
            fs=fs,
            duration_s=float(seg_samples.sum() / fs),
            spikes=spikes,
            spike_time_s=(sample + time_offset[seg]) / fs,
            spike_sample_concat=sample + lag_offset[seg],
            channel_locations=np.asarray(analyzer.get_channel_locations(), dtype=float),
            channel_ids=list(analyzer.channel_ids),
            sparse_mask=mask,
            templates=templates,
            template_time_ms=(np.arange(templates.shape[1]) - n_before) * 1000.0 / fs,
            amplitude_unit="µV" if analyzer.return_in_uV else "a.u.",
        )

    def index(self, unit_id) -> int:
        return int(self.analyzer.sorting.id_to_index(unit_id))

    def spike_mask(self, unit_id) -> np.ndarray:
        return self.spikes["unit_index"] == self.index(unit_id)

    def sparse_channels(self, unit_id) -> np.ndarray:
        return np.flatnonzero(self.sparse_mask[self.index(unit_id)])

    def sampled_waveforms(self, unit_id) -> tuple[np.ndarray, np.ndarray, float]:
        """Sampled waveforms (n, samples, sparse channels), their channel indices, and n_before."""
        ext = self.analyzer.get_extension("waveforms")
        if ext is None:
            raise SpikemergeError("the analyzer has no waveforms: open it with load_analyzer, which computes them")
        wfs = np.asarray(ext.get_waveforms_one_unit(unit_id), dtype=np.float32)
        if self.analyzer.sparsity is not None:
            chans = np.asarray(self.analyzer.sparsity.unit_id_to_channel_indices[unit_id])
        else:
            chans = np.arange(wfs.shape[2])
        return wfs, chans, ext.nbefore

    def channel_label(self, c: int) -> str:
        x, y = self.channel_locations[c][:2]
        return f"ch {self.channel_ids[c]} ({x:.0f}, {y:.0f} µm)"


def _even_pick(n_total: int, n_keep: int) -> np.ndarray:
    """``n_keep`` indices spread evenly over ``range(n_total)`` (deterministic subsample)."""
    if n_keep >= n_total:
        return np.arange(n_total)
    return np.unique(np.linspace(0, n_total - 1, n_keep).round().astype(int))


def _payload_crosscorrelograms(view: _AnalyzerView, units: list, settings: RenderSettings) -> dict:
    trains = [np.sort(view.spike_sample_concat[view.spike_mask(u)]) for u in units]
    return {"trains": trains, "fs": view.fs}


def _payload_amplitudes(view: _AnalyzerView, units: list, settings: RenderSettings) -> dict:
    ext = view.analyzer.get_extension("spike_amplitudes")
    if ext is None:
        raise SpikemergeError("the analyzer has no spike_amplitudes: open it with load_analyzer, which computes them")
    amplitudes = np.asarray(ext.get_data(), dtype=np.float32)
    times, amps = [], []
    for u in units:
        mask = view.spike_mask(u)
        order = np.argsort(view.spike_time_s[mask], kind="stable")
        times.append(view.spike_time_s[mask][order].astype(np.float32))
        amps.append(amplitudes[mask][order])
    return {"times": times, "amplitudes": amps, "duration_s": view.duration_s, "unit": view.amplitude_unit}


def _main_channels(view: _AnalyzerView, units: list, settings: RenderSettings) -> np.ndarray:
    """Union of each unit's largest-template channels (inside its sparsity), ordered by depth."""
    chosen: dict[int, float] = {}
    for u in units:
        chans = view.sparse_channels(u)
        ptp = np.ptp(view.templates[view.index(u)][:, chans], axis=0)
        for c in chans[np.argsort(-ptp, kind="stable")[: settings.main_channels_per_unit]]:
            chosen[int(c)] = max(chosen.get(int(c), 0.0), float(np.ptp(view.templates[view.index(u)][:, c])))
    ranked = sorted(chosen, key=lambda c: -chosen[c])[: settings.max_waveform_channels]
    locs = view.channel_locations
    return np.array(sorted(ranked, key=lambda c: (-locs[c][1], locs[c][0])), dtype=int)


def _templates_on(view: _AnalyzerView, units: list, channels: np.ndarray) -> np.ndarray:
    """Templates (units, samples, channels), NaN where a channel is outside the unit's sparsity."""
    out = np.full((len(units), view.templates.shape[1], channels.size), np.nan, dtype=np.float32)
    for i, u in enumerate(units):
        inside = view.sparse_mask[view.index(u)][channels]
        out[i][:, inside] = view.templates[view.index(u)][:, channels[inside]]
    return out


def _payload_waveforms(view: _AnalyzerView, units: list, settings: RenderSettings) -> dict:
    channels = _main_channels(view, units, settings)
    waveforms = []
    n_before = 0
    for u in units:
        wfs, chans, n_before = view.sampled_waveforms(u)
        pick = _even_pick(wfs.shape[0], settings.waveforms_per_unit)
        block = np.full((pick.size, wfs.shape[1], channels.size), np.nan, dtype=np.float32)
        position = {int(c): j for j, c in enumerate(chans)}
        for j, c in enumerate(channels):
            if int(c) in position:
                block[:, :, j] = wfs[pick][:, :, position[int(c)]]
        waveforms.append(block)
    n_samples = waveforms[0].shape[1] if waveforms else 0
    return {
        "channel_labels": [view.channel_label(int(c)) for c in channels],
        "templates": _templates_on(view, units, channels),
        "template_time_ms": view.template_time_ms,
        "waveforms": waveforms,
        "waveform_time_ms": (np.arange(n_samples) - n_before) * 1000.0 / view.fs,
        "unit": view.amplitude_unit,
    }


def _payload_waveforms_multi(view: _AnalyzerView, units: list, settings: RenderSettings) -> dict:
    union = np.flatnonzero(np.any(view.sparse_mask[[view.index(u) for u in units]], axis=0))
    if union.size > 48:  # dense analyzers: keep the channels nearest the units' main channels
        main = _main_channels(view, units, settings)
        centre = view.channel_locations[main].mean(axis=0)
        dist = np.linalg.norm(view.channel_locations[union] - centre, axis=1)
        union = np.sort(union[np.argsort(dist, kind="stable")[:48]])
    return {
        "templates": _templates_on(view, units, union),
        "template_time_ms": view.template_time_ms,
        "channel_locations": view.channel_locations[union][:, :2],
        "unit": view.amplitude_unit,
    }


def _payload_pca(view: _AnalyzerView, units: list, settings: RenderSettings) -> dict:
    shared = np.flatnonzero(np.all(view.sparse_mask[[view.index(u) for u in units]], axis=0))
    if shared.size == 0:
        return {"waveforms": None, "shared_channels": shared,
                "note": "the units share no channels: no common PCA space"}
    blocks = []
    for u in units:
        wfs, chans, _ = view.sampled_waveforms(u)
        position = {int(c): j for j, c in enumerate(chans)}
        blocks.append(wfs[:, :, [position[int(c)] for c in shared]])
    n = min(min(b.shape[0] for b in blocks), settings.max_pca_spikes_per_unit)
    if n < 2:
        return {"waveforms": None, "shared_channels": shared,
                "note": f"only {n} sampled spike{'s' if n != 1 else ''} in the smallest unit: no PCA"}
    data = np.stack([b[_even_pick(b.shape[0], n)] for b in blocks])
    return {"waveforms": data, "shared_channels": shared}


def _payload_spike_locations(view: _AnalyzerView, units: list, settings: RenderSettings) -> dict:
    ext = view.analyzer.get_extension("spike_locations")
    unit_ext = view.analyzer.get_extension("unit_locations")
    unit_xy = None
    if unit_ext is not None:
        unit_xy = np.asarray(unit_ext.get_data())[[view.index(u) for u in units]][:, :2].astype(float)
    spike_xy = []
    if ext is not None:
        locations = ext.get_data()
        source = "Spike locations (spike_locations extension)"
        for u in units:
            loc = locations[view.spike_mask(u)]
            xy = np.column_stack([loc["x"], loc["y"]]).astype(np.float32)
            spike_xy.append(xy[_even_pick(len(xy), settings.max_location_points)])
    else:
        source = "Spike positions estimated by amplitude centre of mass (spike_locations not computed)"
        for u in units:
            wfs, chans, _ = view.sampled_waveforms(u)
            wfs = wfs[_even_pick(wfs.shape[0], settings.max_location_points)]
            weights = np.ptp(wfs, axis=1)  # (n, channels)
            weights = weights / np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
            spike_xy.append((weights @ view.channel_locations[chans][:, :2]).astype(np.float32))
    return {"spike_xy": spike_xy, "unit_xy": unit_xy, "channel_locations": view.channel_locations[:, :2],
            "source": source}


_PAYLOADS: dict[str, Callable[[_AnalyzerView, list, RenderSettings], dict]] = {
    "crosscorrelograms": _payload_crosscorrelograms,
    "amplitudes": _payload_amplitudes,
    "waveforms": _payload_waveforms,
    "pca": _payload_pca,
    "spike_locations": _payload_spike_locations,
    "waveforms_multi": _payload_waveforms_multi,
}


# ---------------------------------------------------------------------------------------------
# cache keys


def _feed(h, value: Any) -> None:
    """Feed ``value`` into hash ``h`` unambiguously (type, shape and bytes of arrays)."""
    if isinstance(value, np.ndarray):
        h.update(f"nd{value.dtype.str}{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, dict):
        h.update(f"dict{len(value)}".encode())
        for k in sorted(value):
            h.update(repr(k).encode())
            _feed(h, value[k])
    elif isinstance(value, (list, tuple)):
        h.update(f"seq{len(value)}".encode())
        for v in value:
            _feed(h, v)
    else:
        h.update(f"{type(value).__name__}:{value!r};".encode())


def content_key(feature: str, payload: dict, settings: RenderSettings) -> str:
    """Hex digest of everything that decides the figure's pixels."""
    h = hashlib.sha256()
    h.update(json.dumps({"feature": feature, "settings": settings.key()}, sort_keys=True).encode())
    _feed(h, payload)
    return h.hexdigest()


def _image_path(out_dir: Path, group_id: int, feature: str, key: str) -> Path:
    return out_dir / f"group{group_id:04d}_{feature}_{key[:16]}.png"


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"


def is_complete_png(path: Path) -> bool:
    """True when ``path`` starts like a PNG and ends with its closing chunk.

    Images are written atomically, so a file that fails this was damaged or cut short by
    something else; it is drawn again rather than served. Reads 20 bytes, not the image.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(_PNG_SIGNATURE))
            handle.seek(0, 2)
            if handle.tell() < len(_PNG_SIGNATURE) + len(_PNG_END):
                return False
            handle.seek(-len(_PNG_END), 2)
            return head == _PNG_SIGNATURE and handle.read() == _PNG_END
    except OSError:
        return False


def _cached_twin(out_dir: Path, feature: str, key: str) -> Path | None:
    """A complete image drawn for another group with identical content, if any."""
    for path in sorted(out_dir.glob(f"group*_{feature}_{key[:16]}.png")):
        if is_complete_png(path):
            return path
    return None


# ---------------------------------------------------------------------------------------------
# the public entry points


@dataclass
class _Plan:
    paths: dict[int, dict[str, Path]]
    jobs: dict[int, list[tuple[str, dict, str]]]
    composites: dict[int, tuple[Path, list[Path]]]


def _plan(view: _AnalyzerView, groups: Mapping[int, Sequence[UnitId]], out_dir: Path,
          features: tuple[str, ...], settings: RenderSettings) -> _Plan:
    """Decide, per group and feature, the image path and whether it must be drawn."""
    plan = _Plan(paths={}, jobs={}, composites={})
    queued: set[Path] = set()
    for group_id, unit_ids in groups.items():
        units = _check_units(view.analyzer, group_id, unit_ids)
        ids = [str(u) for u in units]
        wanted = [f for f in features if f != "composite"]
        if "composite" in features:
            wanted += [f for f in COMPOSITE_PARTS if f not in wanted]
        paths: dict[str, Path] = {}
        keys: dict[str, str] = {}
        for feature in wanted:
            payload = {"unit_ids": ids, **_PAYLOADS[feature](view, units, settings)}
            key = content_key(feature, payload, settings)
            keys[feature] = key
            path = _image_path(out_dir, int(group_id), feature, key)
            paths[feature] = path
            if path in queued or is_complete_png(path):
                continue
            twin = _cached_twin(out_dir, feature, key)
            if twin is not None:
                write_bytes_atomic(path, twin.read_bytes())
                continue
            plan.jobs.setdefault(group_id, []).append((feature, payload, str(path)))
            queued.add(path)
        if "composite" in features:
            key = hashlib.sha256(("composite" + "".join(keys[f] for f in COMPOSITE_PARTS)).encode()).hexdigest()
            path = _image_path(out_dir, int(group_id), "composite", key)
            paths["composite"] = path
            plan.composites[group_id] = (path, [paths[f] for f in COMPOSITE_PARTS])
        plan.paths[group_id] = {f: paths[f] for f in features}
    return plan


def _worker_context() -> multiprocessing.context.BaseContext:
    """Fork workers from a server that has already imported the drawing code, where possible.

    The server imports the drawing code once (``import spikemerge.tools.render.draw`` takes
    0.8 s here) and each worker is forked from it, instead of importing it again as a spawned
    worker does; on 8 groups the whole batch took as long either way (2.6 s vs 2.5 s). The
    server is a clean single-threaded process, so forking from it is as safe as spawn in a
    process that runs BLAS or event-loop threads.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["spikemerge.tools.render.draw"])
    return context


PARALLEL_MIN_GROUPS = 24
"""With ``n_workers="auto"``, below this many groups to draw one process is as fast (measured:
9 groups took 3.3 s in one process and 5.5 s in two, whose every worker imports matplotlib and
lays out each figure once; 20 groups took 5.7 s and 4.1 s)."""


def _workers(n_workers: int | str, n_groups: int) -> int:
    if n_workers == "auto":
        return min(os.cpu_count() or 1, 4) if n_groups >= PARALLEL_MIN_GROUPS else 1
    if not isinstance(n_workers, int) or n_workers < 1:
        raise SpikemergeError(f"n_workers must be a positive integer or 'auto', not {n_workers!r}")
    return n_workers


def _run_jobs(jobs: dict[int, list], settings: RenderSettings, n_workers: int,
              on_group_done: Callable[[int], None]) -> None:
    """Draw every queued figure, in this process or in ``n_workers`` worker processes.

    Where worker processes cannot start (a sandbox without process creation, a broken pool),
    the remaining groups are drawn here with a warning rather than failing the run.
    """
    done: set[int] = set()
    if n_workers > 1 and len(jobs) > 1:
        try:
            with ProcessPoolExecutor(max_workers=min(n_workers, len(jobs)), mp_context=_worker_context()) as pool:
                futures = {pool.submit(render_jobs, group_jobs, settings): gid for gid, group_jobs in jobs.items()}
                for future in as_completed(futures):
                    future.result()
                    done.add(futures[future])
                    on_group_done(futures[future])
        except (OSError, BrokenProcessPool) as error:
            warnings.warn(f"drawing figures in this process: worker processes failed ({error})", RuntimeWarning,
                          stacklevel=3)
    for group_id, group_jobs in jobs.items():
        if group_id not in done:
            render_jobs(group_jobs, settings)
            on_group_done(group_id)


def render_groups(analyzer, groups: Mapping[int, Sequence[UnitId]], out_dir: Path,
                  features: Sequence[str] = DEFAULT_FEATURES, *, n_workers: int | str = 1,
                  progress: Callable[[int, int], None] | None = None,
                  settings: RenderSettings = DEFAULT_SETTINGS) -> dict[int, dict[str, Path]]:
    """Draw the evidence figures of many groups, reusing every image already drawn.

    Parameters
    ----------
    analyzer : SortingAnalyzer
        Holds random_spikes, waveforms, templates and spike_amplitudes (unit_locations and
        spike_locations are used when present).
    groups : Mapping[int, Sequence[UnitId]]
        Group id -> unit ids of the group.
    out_dir : Path
        Folder for the PNGs (created if needed).
    features : Sequence[str], default: DEFAULT_FEATURES
        Any of ``DEFAULT_FEATURES + OPTIONAL_FEATURES``.
    n_workers : int or "auto", default: 1
        Processes drawing in parallel; 1 draws in this process. ``"auto"``: one per CPU (up to
        4) when at least ``PARALLEL_MIN_GROUPS`` groups need drawing. Worker processes import
        the calling script's main module, so a script asking for them must keep its work under
        ``if __name__ == "__main__":`` (the ``spikemerge`` command does).
    progress : callable, optional
        Called as ``progress(done, total)`` after each group.
    settings : RenderSettings
        Bin widths, sample counts and image size; part of every cache key.

    Returns
    -------
    dict[int, dict[str, Path]]
        ``{group_id: {feature: png_path}}`` in the order of ``features``.
    """
    features = check_features(features)
    _workers(n_workers, 0)  # a bad n_workers is refused before anything is written
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not groups:
        return {}
    view = _AnalyzerView.of(analyzer, settings)
    plan = _plan(view, groups, out_dir, features, settings)
    total, done = len(plan.paths), [0]

    def advance(_group_id: int) -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], total)

    for group_id in plan.paths:
        if group_id not in plan.jobs:
            advance(group_id)
    _run_jobs(plan.jobs, settings, _workers(n_workers, len(plan.jobs)), advance)
    for path, parts in plan.composites.values():
        if not is_complete_png(path):
            write_bytes_atomic(path, tile_composite(parts, settings))
    return plan.paths


def render_group(analyzer, group_id: int, unit_ids: Sequence[UnitId], out_dir: Path,
                 features: Sequence[str] = DEFAULT_FEATURES) -> dict[str, Path]:
    """Draw one group's figures; see :func:`render_groups`.

    Returns
    -------
    dict[str, Path]
        ``{feature: png_path}``.
    """
    return render_groups(analyzer, {group_id: unit_ids}, out_dir, features)[group_id]
