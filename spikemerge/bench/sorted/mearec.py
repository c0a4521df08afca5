"""MEArec: the template library (simulated once per spec, minutes) and the recordings made from it."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import warnings
from dataclasses import asdict
from pathlib import Path

from ...tools.outputs import exclusive_lock
from .specs import Log, RecordingSpec, TemplateSpec

MAX_TRACE_UV = 5000.0
"""Largest |value| (µV) a simulated recording's channel may reach. MEArec's cells peak at 220-430 µV
on the 17 recordings measured (32-channel and Neuropixels-24, bursting and drifting); one bursting
Neuropixels-24 recording (seed 442) came out with a channel at up to 5.1e10 µV on 12 % of its
samples, which every sorted unit then carried as its largest channel (MEArec's rescaling of a
burst-stretched template, guarded by :func:`stretch_guarded` since)."""
CHECK_CHUNK_S = 10.0
"""Seconds of traces read at once by :func:`check_recording`."""
STRETCH_BLOWUP = 10.0
"""A burst-stretched template's channel larger than this many times the channel's unstretched peak
(times the modulation, when above 1) was blown up by MEArec's rescaling (:func:`stretch_guarded`)."""


def ensure_venv_bin_on_path() -> None:
    """Put this interpreter's ``bin`` first on PATH: MEArec compiles NEURON mechanisms with ``nrnivmodl``."""
    bin_dir = str(Path(sys.executable).parent)
    parts = os.environ.get("PATH", "").split(os.pathsep)
    if parts[:1] != [bin_dir]:
        os.environ["PATH"] = os.pathsep.join([bin_dir] + [p for p in parts if p != bin_dir])


def _atomic_target(path: Path) -> Path:
    """A hidden name beside ``path`` that keeps its suffix (MEArec insists on ``.h5``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")


def make_templates(spec: TemplateSpec, cache: Path, n_jobs: int = 2, log: Log | None = None) -> Path:
    """The template library of ``spec`` (``<cache>/templates/templates_<key>.h5``), simulated when missing.

    Each cell model is simulated with seed ``spec.seed + i`` whatever the number of jobs, so
    ``n_jobs`` changes the wall time only. About 7 minutes on 2 cores for 32 channels. Builds
    started side by side on a new cache simulate it once: the others wait for it (MEArec's one
    shared work folder, too, holds one library at a time).
    """
    log = log or (lambda line: None)
    path = Path(cache) / "templates" / f"templates_{spec.key()}.h5"
    if path.exists():
        return path
    with exclusive_lock(path.parent / ".work.lock"):
        if path.exists():  # simulated by another build while this one waited
            return path
        return _simulate_templates(spec, path, n_jobs, log)


def _simulate_templates(spec: TemplateSpec, path: Path, n_jobs: int, log: Log) -> Path:
    ensure_venv_bin_on_path()
    import MEArec as mr

    log(f"templates {spec.key()}: simulating {spec} (minutes)")
    start = time.perf_counter()
    # one work folder for every library: MEArec reuses the intracellular simulations it holds
    # when their parameters match (they depend on the seed, not on the probe or drift)
    tmp_dir = path.parent / ".work"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.chdir(tmp_dir):  # MEArec writes tmp_params_path.yaml into the working directory
        tempgen = mr.gen_templates(mr.get_default_cell_models_folder(), params=spec.mearec_params(),
                                   templates_tmp_folder=str(tmp_dir), parallel=n_jobs > 1, n_jobs=n_jobs,
                                   verbose=False, delete_tmp=True)
    target = _atomic_target(path)
    mr.save_template_generator(tempgen, filename=str(target))
    os.replace(target, path)
    (path.with_suffix(".json")).write_text(json.dumps({**asdict(spec), "seconds": time.perf_counter() - start},
                                                      indent=1))
    log(f"templates {spec.key()}: {len(tempgen.templates)} templates in {time.perf_counter() - start:.0f} s")
    return path


def make_recording(spec: RecordingSpec, path: Path, cache: Path, log: Log | None = None) -> Path:
    """Simulate the recording of ``spec`` into ``path`` (an ``.h5``), unless it is there already."""
    log = log or (lambda line: None)
    path = Path(path)
    if path.exists():
        return path
    templates = make_templates(spec.templates, cache, log=log)
    import MEArec as mr

    start = time.perf_counter()
    log(f"recording {spec.key()}: simulating {spec.duration_s:.0f} s")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with stretch_guarded():
            recgen = mr.gen_recordings(params=spec.mearec_params(), templates=str(templates), verbose=False, n_jobs=1)
    target = _atomic_target(path)
    mr.save_recording_generator(recgen, filename=str(target))
    os.replace(target, path)
    log(f"recording {spec.key()}: {len(recgen.spiketrains)} cells in {time.perf_counter() - start:.0f} s")
    return path


@contextlib.contextmanager
def stretch_guarded():
    """Keep MEArec from blowing up a bursting cell's channel that never dips below 0 while it simulates.

    MEArec rescales each channel of a burst-stretched template by the unstretched minimum over the
    stretched one (``MEArec.tools.compute_stretched_template``); on a channel where the cell's template
    never dips below 0 (a positive 10 µV wave whose minimum is a rounding error) both minima are near 0
    and the channel comes out near 5e10 µV (Neuropixels-24 bursting recordings of seeds 442 and 446).
    Such a channel gets the modulation times its unstretched template instead; every other channel,
    and so every recording this never touches, is MEArec's own.
    """
    import MEArec.tools as tools
    import numpy as np

    original = tools.compute_stretched_template

    def stretched(template, mod, shape_stretch=30.0):
        out = original(template, mod, shape_stretch)
        if np.ndim(template) != 2:
            return out
        factor = np.broadcast_to(np.asarray(mod, dtype=float).ravel(), (len(template),))  # per channel, or one
        peak = np.abs(template).max(axis=1) * np.maximum(factor, 1.0)
        blown = ~(np.abs(out).max(axis=1) <= STRETCH_BLOWUP * peak)
        if blown.any():
            out = np.array(out, dtype=float)
            out[blown] = factor[blown, None] * template[blown]
        return out

    tools.compute_stretched_template = stretched
    try:
        yield
    finally:
        tools.compute_stretched_template = original


def check_recording(recording, name: str, max_uv: float = MAX_TRACE_UV) -> None:
    """Raise if a channel of ``recording`` exceeds ``max_uv``: a failed simulation, not data to sort."""
    import numpy as np

    peak = np.zeros(recording.get_num_channels())
    for segment in range(recording.get_num_segments()):
        samples = recording.get_num_samples(segment)
        step = max(1, int(CHECK_CHUNK_S * recording.sampling_frequency))
        for start in range(0, samples, step):
            traces = recording.get_traces(segment_index=segment, start_frame=start, end_frame=min(samples, start + step),
                                          return_in_uV=True)
            peak = np.maximum(peak, np.abs(traces).max(axis=0))
    bad = np.flatnonzero(~(peak <= max_uv))
    if bad.size:
        channels = ", ".join(f"{recording.channel_ids[i]} ({peak[i]:.3g} µV)" for i in bad[:4])
        raise RuntimeError(f"{name}: channel {channels} beyond {max_uv:.0f} µV: the simulation failed, "
                           "so the set is not built from it")


def read_recording(path: Path):
    """The MEArec recording and its ground-truth sorting (SpikeInterface extractors)."""
    import spikeinterface.extractors as se

    return se.read_mearec(str(path))
