"""render_group: one evidence figure per modality and group, cached on disk by content hash.

The parent process pulls the few arrays each figure needs (spike trains, amplitudes, sampled
waveforms, templates) out of the analyzer's one ``AnalyzerView``, the same one evidence reads,
group by group as the drawing proceeds; ``render_draw`` turns them into PNGs, in this process or
in worker processes. The cache key is a hash of exactly those
arrays plus the feature name and the drawing settings, so an image is reused only when it would
be drawn identically, whatever the group is called, and never served for different data.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, as_completed, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Hashable, Iterator, Mapping, Sequence

import numpy as np

from ...errors import SpikemergeError
from ..outputs import write_bytes_atomic
from ..analyzer.view import AnalyzerView
from ..workers import prepare_drawing_worker, usable_cpus, worker_context
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
# what the figures read: the analyzer's one view, shared with evidence


def as_view(source) -> AnalyzerView:
    """The ``AnalyzerView`` of ``source`` (an analyzer, or a view already built, e.g. the session's).

    Passing the session's view lets render reuse the per-unit arrays evidence already read, and
    guarantees both count the same spikes on the same time axis.
    """
    return source if isinstance(source, AnalyzerView) else AnalyzerView(source)


def _channel_label(view: AnalyzerView, c: int) -> str:
    x, y = view.channel_locations[c][:2]
    return f"ch {view.channel_ids[c]} ({x:.0f}, {y:.0f} µm)"


def _sampled_waveforms(view: AnalyzerView, unit_id) -> tuple[np.ndarray, np.ndarray, int]:
    """Sampled waveforms (n, samples, sparse channels), their channel indices, and n_before."""
    unit = view.unit(unit_id)
    return unit.waveforms, unit.channels, view.waveform_nbefore


def _template_time_ms(view: AnalyzerView) -> np.ndarray:
    return (np.arange(view.templates.shape[1]) - view.template_nbefore) * 1000.0 / view.fs


def _even_pick(n_total: int, n_keep: int) -> np.ndarray:
    """``n_keep`` indices spread evenly over ``range(n_total)`` (deterministic subsample)."""
    if n_keep >= n_total:
        return np.arange(n_total)
    return np.unique(np.linspace(0, n_total - 1, n_keep).round().astype(int))


def _payload_crosscorrelograms(view: AnalyzerView, units: list, settings: RenderSettings) -> dict:
    # the view's trains: the same samples, and the same gaps between segments, as the evidence's
    return {"trains": [view.train(u) for u in units], "fs": view.fs}


def _payload_amplitudes(view: AnalyzerView, units: list, settings: RenderSettings) -> dict:
    times = [view.times_s(u).astype(np.float32) for u in units]
    amps = [view.amplitudes(u) for u in units]
    return {"times": times, "amplitudes": amps, "duration_s": view.duration_s, "unit": view.amplitude_unit}


def _main_channels(view: AnalyzerView, units: list, settings: RenderSettings) -> np.ndarray:
    """Union of each unit's largest-template channels (inside its sparsity), ordered by depth."""
    chosen: dict[int, float] = {}
    for u in units:
        chans = view.channels(u)
        ptp = np.ptp(view.templates[view.index(u)][:, chans], axis=0)
        for c in chans[np.argsort(-ptp, kind="stable")[: settings.main_channels_per_unit]]:
            chosen[int(c)] = max(chosen.get(int(c), 0.0), float(np.ptp(view.templates[view.index(u)][:, c])))
    ranked = sorted(chosen, key=lambda c: -chosen[c])[: settings.max_waveform_channels]
    locs = view.channel_locations
    return np.array(sorted(ranked, key=lambda c: (-locs[c][1], locs[c][0])), dtype=int)


def _templates_on(view: AnalyzerView, units: list, channels: np.ndarray) -> np.ndarray:
    """Templates (units, samples, channels), NaN where a channel is outside the unit's sparsity."""
    out = np.full((len(units), view.templates.shape[1], channels.size), np.nan, dtype=np.float32)
    for i, u in enumerate(units):
        inside = view.sparsity_mask[view.index(u)][channels]
        out[i][:, inside] = view.templates[view.index(u)][:, channels[inside]].astype(np.float32)
    return out


def _payload_waveforms(view: AnalyzerView, units: list, settings: RenderSettings) -> dict:
    channels = _main_channels(view, units, settings)
    waveforms = []
    n_before = 0
    for u in units:
        wfs, chans, n_before = _sampled_waveforms(view, u)
        pick = _even_pick(wfs.shape[0], settings.waveforms_per_unit)
        block = np.full((pick.size, wfs.shape[1], channels.size), np.nan, dtype=np.float32)
        position = {int(c): j for j, c in enumerate(chans)}
        for j, c in enumerate(channels):
            if int(c) in position:
                block[:, :, j] = wfs[pick][:, :, position[int(c)]]
        waveforms.append(block)
    n_samples = waveforms[0].shape[1] if waveforms else 0
    return {
        "channel_labels": [_channel_label(view, int(c)) for c in channels],
        "templates": _templates_on(view, units, channels),
        "template_time_ms": _template_time_ms(view),
        "waveforms": waveforms,
        "waveform_time_ms": (np.arange(n_samples) - n_before) * 1000.0 / view.fs,
        "unit": view.amplitude_unit,
    }


def _payload_waveforms_multi(view: AnalyzerView, units: list, settings: RenderSettings) -> dict:
    union = np.flatnonzero(np.any(view.sparsity_mask[[view.index(u) for u in units]], axis=0))
    if union.size > 48:  # dense analyzers: keep the channels nearest the units' main channels
        main = _main_channels(view, units, settings)
        centre = view.channel_locations[main].mean(axis=0)
        dist = np.linalg.norm(view.channel_locations[union] - centre, axis=1)
        union = np.sort(union[np.argsort(dist, kind="stable")[:48]])
    return {
        "templates": _templates_on(view, units, union),
        "template_time_ms": _template_time_ms(view),
        "channel_locations": view.channel_locations[union][:, :2],
        "unit": view.amplitude_unit,
    }


def _payload_pca(view: AnalyzerView, units: list, settings: RenderSettings) -> dict:
    shared = np.flatnonzero(np.all(view.sparsity_mask[[view.index(u) for u in units]], axis=0))
    if shared.size == 0:
        return {"waveforms": None, "shared_channels": shared,
                "note": "the units share no channels: no common PCA space"}
    blocks = []
    for u in units:
        wfs, chans, _ = _sampled_waveforms(view, u)
        position = {int(c): j for j, c in enumerate(chans)}
        blocks.append(wfs[:, :, [position[int(c)] for c in shared]])
    n = min(min(b.shape[0] for b in blocks), settings.max_pca_spikes_per_unit)
    if n < 2:
        return {"waveforms": None, "shared_channels": shared,
                "note": f"only {n} sampled spike{'s' if n != 1 else ''} in the smallest unit: no PCA"}
    data = np.stack([b[_even_pick(b.shape[0], n)] for b in blocks])
    return {"waveforms": data, "shared_channels": shared}


def _payload_spike_locations(view: AnalyzerView, units: list, settings: RenderSettings) -> dict:
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
            loc = locations[view.spike_rows(u)]
            xy = np.column_stack([loc["x"], loc["y"]]).astype(np.float32)
            spike_xy.append(xy[_even_pick(len(xy), settings.max_location_points)])
    else:
        source = "Spike positions estimated by amplitude centre of mass (spike_locations not computed)"
        for u in units:
            wfs, chans, _ = _sampled_waveforms(view, u)
            wfs = wfs[_even_pick(wfs.shape[0], settings.max_location_points)]
            weights = np.ptp(wfs, axis=1)  # (n, channels)
            weights = weights / np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
            spike_xy.append((weights @ view.channel_locations[chans][:, :2]).astype(np.float32))
    return {"spike_xy": spike_xy, "unit_xy": unit_xy, "channel_locations": view.channel_locations[:, :2],
            "source": source}


_PAYLOADS: dict[str, Callable[[AnalyzerView, list, RenderSettings], dict]] = {
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
class _GroupPlan:
    """One group's image paths, the figures still to draw (with their payloads), and its composite."""

    group_id: int
    paths: dict[str, Path]
    jobs: list[tuple[str, dict, str]]
    composite: tuple[Path, list[Path]] | None


def _plan_groups(view: AnalyzerView, groups: Mapping[int, Sequence[UnitId]], out_dir: Path,
                 features: tuple[str, ...], settings: RenderSettings) -> Iterator[_GroupPlan]:
    """Per group, in order: decide each feature's image path and whether it must be drawn.

    A generator, so that a group's payloads (its trains, waveforms, templates) exist only while
    that group waits to be drawn, not every group's at once. Unit ids are checked for all groups
    first, so a bad id fails before anything is drawn.
    """
    checked = {group_id: _check_units(view.analyzer, group_id, unit_ids) for group_id, unit_ids in groups.items()}
    queued: set[Path] = set()
    for group_id, units in checked.items():
        ids = [str(u) for u in units]
        wanted = [f for f in features if f != "composite"]
        if "composite" in features:
            wanted += [f for f in COMPOSITE_PARTS if f not in wanted]
        paths: dict[str, Path] = {}
        keys: dict[str, str] = {}
        jobs: list[tuple[str, dict, str]] = []
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
                write_bytes_atomic(path, twin.read_bytes(), durable=False)
                continue
            jobs.append((feature, payload, str(path)))
            queued.add(path)
        composite = None
        if "composite" in features:
            key = hashlib.sha256(("composite" + "".join(keys[f] for f in COMPOSITE_PARTS)).encode()).hexdigest()
            path = _image_path(out_dir, int(group_id), "composite", key)
            paths["composite"] = path
            composite = (path, [paths[f] for f in COMPOSITE_PARTS])
        yield _GroupPlan(group_id, {f: paths[f] for f in features}, jobs, composite)


PARALLEL_MIN_GROUPS = 24
"""With ``n_workers="auto"``, below this many groups to draw one process is as fast (measured:
9 groups took 3.3 s in one process and 5.5 s in two, whose every worker imports matplotlib and
lays out each figure once; 20 groups took 5.7 s and 4.1 s)."""


def drawing_workers(n_workers: int | str, n_groups: int) -> int:
    """How many processes draw ``n_groups`` groups for ``n_workers`` (1: drawn in this process)."""
    if n_workers == "auto":
        return min(usable_cpus(), 4) if n_groups >= PARALLEL_MIN_GROUPS else 1
    if not isinstance(n_workers, int) or n_workers < 1:
        raise SpikemergeError(f"n_workers must be a positive integer or 'auto', not {n_workers!r}")
    return n_workers


def _draw_in_worker(jobs: list, settings: RenderSettings) -> int:
    """Draw one group's figures in a worker process; return the worker's peak RSS in bytes.

    Workers are forked from a server process, not from this one, so their memory is invisible
    to this process's ``RUSAGE_CHILDREN``: each reports its own high-water mark instead.
    """
    import resource
    import sys

    render_jobs(jobs, settings)
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024))


IN_FLIGHT_PER_WORKER = 2
"""Groups handed to each worker ahead of time: enough to keep it busy, few enough that only a
handful of groups' payloads are ever in memory."""


def _run_stream(stream: Iterator[_GroupPlan], settings: RenderSettings, n_workers: int,
                on_group_done: Callable[[_GroupPlan], None], stats: dict | None = None) -> None:
    """Draw each planned group's figures as the plans arrive, here or in ``n_workers`` processes.

    Plans are pulled from ``stream`` only while fewer than ``IN_FLIGHT_PER_WORKER * n_workers``
    groups are waiting, so payloads are built group by group as workers free up. The pool starts
    at the first group that has something to draw (a rerun with every image cached starts none).
    Where worker processes cannot start (a sandbox without process creation, a broken pool), the
    remaining groups are drawn here with a warning rather than failing the run. ``stats`` gets
    ``worker_peak_rss_bytes``, the largest worker's peak memory.
    """
    stats = {} if stats is None else stats

    def note(future) -> None:
        stats["worker_peak_rss_bytes"] = max(stats.get("worker_peak_rss_bytes", 0), int(future.result() or 0))

    pending: dict = {}
    pool = None
    try:
        for plan in stream:
            if not plan.jobs:
                on_group_done(plan)
                continue
            if n_workers > 1 and pool is None:
                try:
                    pool = ProcessPoolExecutor(max_workers=n_workers, mp_context=worker_context(),
                                               initializer=prepare_drawing_worker)
                except OSError as error:
                    warnings.warn(f"drawing figures in this process: worker processes failed ({error})",
                                  RuntimeWarning, stacklevel=3)
                    n_workers = 1
            if pool is None:
                render_jobs(plan.jobs, settings)
                on_group_done(plan)
                continue
            try:
                pending[pool.submit(_draw_in_worker, plan.jobs, settings)] = plan
                while len(pending) >= IN_FLIGHT_PER_WORKER * n_workers:
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        note(future)
                        on_group_done(pending.pop(future))
            except (OSError, BrokenProcessPool) as error:
                warnings.warn(f"drawing figures in this process: worker processes failed ({error})", RuntimeWarning,
                              stacklevel=3)
                pool.shutdown(wait=False, cancel_futures=True)
                pool, n_workers = None, 1
                for future, waiting in list(pending.items()):
                    if future.done() and future.exception() is None:
                        on_group_done(waiting)
                    else:
                        render_jobs(waiting.jobs, settings)
                        on_group_done(waiting)
                pending.clear()
        if pool is not None:
            try:
                for future in as_completed(list(pending)):
                    note(future)
                    on_group_done(pending.pop(future))
            except (OSError, BrokenProcessPool) as error:
                warnings.warn(f"drawing figures in this process: worker processes failed ({error})", RuntimeWarning,
                              stacklevel=3)
                for waiting in pending.values():
                    render_jobs(waiting.jobs, settings)
                    on_group_done(waiting)
                pending.clear()
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def render_groups(analyzer, groups: Mapping[int, Sequence[UnitId]], out_dir: Path,
                  features: Sequence[str] = DEFAULT_FEATURES, *, n_workers: int | str = 1,
                  progress: Callable[[int, int], None] | None = None,
                  settings: RenderSettings = DEFAULT_SETTINGS, stats: dict | None = None) -> dict[int, dict[str, Path]]:
    """Draw the evidence figures of many groups, reusing every image already drawn.

    Parameters
    ----------
    analyzer : SortingAnalyzer or AnalyzerView
        Holds random_spikes, waveforms, templates and spike_amplitudes (unit_locations and
        spike_locations are used when present). Pass the session's view (``session.context``)
        to share the arrays evidence already read.
    groups : Mapping[int, Sequence[UnitId]]
        Group id -> unit ids of the group.
    out_dir : Path
        Folder for the PNGs (created if needed).
    features : Sequence[str], default: DEFAULT_FEATURES
        Any of ``DEFAULT_FEATURES + OPTIONAL_FEATURES``.
    n_workers : int or "auto", default: 1
        Processes drawing in parallel; 1 draws in this process. ``"auto"``: one per CPU (up to
        4) when at least ``PARALLEL_MIN_GROUPS`` groups need drawing (``spikemerge run`` asks
        for ``"auto"`` only when the machine has idle CPUs, see
        :func:`~spikemerge.tools.workers.idle_cpus`). Worker processes import
        the calling script's main module, so a script asking for them must keep its work under
        ``if __name__ == "__main__":`` (the ``spikemerge`` command does).
    progress : callable, optional
        Called as ``progress(done, total)`` after each group.
    settings : RenderSettings
        Bin widths, sample counts and image size; part of every cache key.
    stats : dict, optional
        Filled with ``worker_peak_rss_bytes`` when worker processes drew.

    Returns
    -------
    dict[int, dict[str, Path]]
        ``{group_id: {feature: png_path}}`` in the order of ``features``.
    """
    features = check_features(features)
    drawing_workers(n_workers, 0)  # a bad n_workers is refused before anything is written
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not groups:
        return {}
    view = as_view(analyzer)
    total, done = len(groups), [0]
    paths: dict[int, dict[str, Path]] = {}
    composites: dict[int, tuple[Path, list[Path]]] = {}

    def finished(plan: _GroupPlan) -> None:
        paths[plan.group_id] = plan.paths
        if plan.composite is not None:
            composites[plan.group_id] = plan.composite
        done[0] += 1
        if progress is not None:
            progress(done[0], total)

    _run_stream(_plan_groups(view, groups, out_dir, features, settings), settings,
                drawing_workers(n_workers, len(groups)), finished, stats)
    for path, parts in composites.values():
        if not is_complete_png(path):
            write_bytes_atomic(path, tile_composite(parts, settings), durable=False)
    return {g: paths[g] for g in groups}


def render_group(analyzer, group_id: int, unit_ids: Sequence[UnitId], out_dir: Path,
                 features: Sequence[str] = DEFAULT_FEATURES) -> dict[str, Path]:
    """Draw one group's figures; see :func:`render_groups`.

    Returns
    -------
    dict[str, Path]
        ``{feature: png_path}``.
    """
    return render_groups(analyzer, {group_id: unit_ids}, out_dir, features)[group_id]
