"""load_analyzer: open a SortingAnalyzer folder, check it, compute what later steps need.

The user's folder is opened read-only in spirit: every extension we add is computed on an
in-memory copy, so the files already in the folder stay byte-identical (SpikeInterface's
``compute_merge_unit_groups`` copies for the same reason).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from spikeinterface.core import SortingAnalyzer, load_sorting_analyzer
from spikeinterface.core.sortinganalyzer import get_extension_class

from ...errors import SpikemergeError

REQUIRED_EXTENSIONS: tuple[str, ...] = (
    "random_spikes",
    "waveforms",
    "templates",
    "noise_levels",
    "unit_locations",
    "spike_amplitudes",
)
"""What candidates, evidence and figures read, in dependency order.

Template similarity and correlograms are computed by spikemerge itself (numpy, on the pairs
that need them): SpikeInterface's numba kernels for both cost about 30 s of compilation in
every new process, more than the rest of a small curation.
"""

EXTENSION_PARAMS: dict[str, dict] = {
    "random_spikes": {"method": "uniform", "max_spikes_per_unit": 500, "seed": 0},
    "waveforms": {"ms_before": 1.0, "ms_after": 2.0},
    "unit_locations": {"method": "monopolar_triangulation"},
}
"""Parameters for extensions we compute ourselves (those already present are used as they are)."""

READ_EXTENSIONS: tuple[str, ...] = REQUIRED_EXTENSIONS + ("spike_locations",)
"""The only extensions ever opened from a folder. Anything else in it (``principal_components``
can be tens of GB on a long sort, ``quality_metrics``, ...) is never read, not even its header."""


@dataclass
class AnalyzerInfo:
    """What ``load_analyzer`` reports about the opened analyzer."""

    path: str
    format: str
    unit_ids: list
    num_channels: int
    duration_s: float
    sampling_frequency: float
    has_recording: bool
    sparse: bool
    extensions_present: list[str] = field(default_factory=list)
    extensions_computed: list[str] = field(default_factory=list)

    @property
    def num_units(self) -> int:
        return len(self.unit_ids)

    def summary(self) -> str:
        computed = ", ".join(self.extensions_computed) or "none"
        return (
            f"{self.num_units} units, {self.num_channels} channels, {self.duration_s:.1f} s "
            f"({self.format}, recording {'available' if self.has_recording else 'not available'}); "
            f"extensions present: {', '.join(self.extensions_present) or 'none'}; computed: {computed}"
        )


def open_analyzer(path: str | Path, extensions: tuple[str, ...] = READ_EXTENSIONS) -> SortingAnalyzer:
    """Open an analyzer folder (binary_folder or zarr) lazily, with one-line errors for the usual mistakes.

    Only ``extensions`` are opened, and their arrays are memory-mapped (binary_folder) or zarr
    handles, so opening costs the spike vector and a few small files whatever the folder's size:
    a unit's waveforms are read when that unit is looked at. Nothing is ever written into the
    folder by spikemerge (extensions it lacks are computed on an in-memory copy, see
    :func:`prepare_analyzer`).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise SpikemergeError(f"no such folder: {path}: give the path of a SortingAnalyzer folder")
    if not path.is_dir():
        raise SpikemergeError(f"{path} is a file, not a folder: give the path of a SortingAnalyzer folder")
    looks_binary = (path / "spikeinterface_info.json").exists()
    looks_zarr = (path / ".zattrs").exists() or (path / "zarr.json").exists()
    if not (looks_binary or looks_zarr):
        raise SpikemergeError(
            f"{path} is not a SortingAnalyzer folder (no spikeinterface_info.json or zarr metadata): "
            "create one with spikeinterface.create_sorting_analyzer(..., format='binary_folder')"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            analyzer = load_sorting_analyzer(path, load_extensions=False, format="zarr" if looks_zarr and not looks_binary else "auto")
            attach_extensions(analyzer, extensions)
    except Exception as exc:  # SpikeInterface raises many kinds here
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SpikemergeError(f"could not read the analyzer at {path} ({first_line}): check the folder is complete") from exc
    if analyzer.get_num_units() < 2:
        raise SpikemergeError(
            f"the analyzer at {path} has {analyzer.get_num_units()} unit(s): merging needs at least two"
        )
    return analyzer


def attach_extensions(analyzer: SortingAnalyzer, names: tuple[str, ...]) -> list[str]:
    """Open the saved extensions among ``names`` memory-mapped; return those opened.

    SpikeInterface's own ``load_extension`` reads a whole extension into memory, and its
    ``lazy=True`` mode opens every saved extension as soon as the analyzer is copied or merged.
    Loading each wanted extension's class with ``lazy=True`` and registering it by hand gives
    memory-mapped arrays for exactly these extensions and no others; an extension whose run did
    not complete is left out (it counts as missing).
    """
    saved = set(analyzer.get_saved_extension_names())
    opened = []
    for name in names:
        if name not in saved or name in analyzer.extensions:
            continue
        ext_class = get_extension_class(name)
        ext = ext_class.load(analyzer, lazy=True) if ext_class is not None else None
        if ext is not None:
            keep_mapped(ext.data)
            analyzer.extensions[name] = ext
            opened.append(name)
    return opened


def keep_mapped(data: dict) -> None:
    """Hold each memory-mapped array of an extension's ``data`` as a plain array over the same map.

    SpikeInterface (0.105) closes an extension's ``np.memmap`` handles, and sets its data to None,
    when the extension or its analyzer is collected. Every array handed out before (a unit's
    templates, the fitted locations) then points at unmapped memory, and reading it kills the
    process with a segfault; ``save_as(format="memory")`` shares the same ``data`` dict, so the
    working copy :func:`prepare_analyzer` makes would find None once the opened analyzer is gone.
    A plain ``ndarray`` view is not closed by SpikeInterface: the map stays open for as long as any
    array reads it, as numpy's own reference counting keeps it.
    """
    for key, value in list(data.items()):
        if isinstance(value, np.memmap):
            data[key] = value.view(np.ndarray)


def present_extensions(analyzer: SortingAnalyzer) -> list[str]:
    """Extensions the analyzer holds (saved in its folder, or in memory), without opening any."""
    if analyzer.format == "memory":
        return sorted(analyzer.get_loaded_extension_names())
    return sorted(set(analyzer.get_saved_extension_names()) | set(analyzer.get_loaded_extension_names()))


def missing_extensions(analyzer: SortingAnalyzer, required: tuple[str, ...] = REQUIRED_EXTENSIONS) -> list[str]:
    """The ``required`` extensions the analyzer does not hold (opened ones count as held)."""
    if analyzer.format == "memory":
        return [name for name in required if not analyzer.has_extension(name)]
    return [name for name in required if name not in analyzer.extensions]


def _needs_recording(name: str, analyzer: SortingAnalyzer) -> bool:
    if name == "templates":
        # templates come from waveforms when those exist, otherwise from the recording
        return not analyzer.has_extension("waveforms")
    return bool(get_extension_class(name).need_recording)


def prepare_analyzer(
    analyzer: SortingAnalyzer,
    required: tuple[str, ...] = REQUIRED_EXTENSIONS,
    recording=None,
    n_jobs: int = 1,
    progress: bool = True,
) -> tuple[SortingAnalyzer, list[str]]:
    """Return an analyzer holding every ``required`` extension, and what was computed.

    When nothing is missing the opened analyzer itself is returned: no copy, its arrays stay
    memory-mapped. Otherwise an in-memory copy holds the opened extensions plus the computed
    ones (the folder is never written). ``recording`` stands in for an analyzer whose recording
    link is lost. Raises a one-line error naming the missing extensions when no recording is
    available to compute them.

    An analyzer from a folder whose saved extensions are not loaded yet (SpikeInterface's
    ``lazy=True`` or ``load_extensions=False``, as a caller of ``CurationSession.from_analyzer``
    may pass) has them opened here, memory-mapped. The working copy shares the opened extensions'
    data (and SpikeInterface reopens a lazy analyzer's extensions as it copies them), so its arrays
    are held once copied (:func:`keep_mapped`): the copy outlives the caller's analyzer.
    """
    if analyzer.format != "memory":
        attach_extensions(analyzer, required)
    missing = missing_extensions(analyzer, required)
    if not missing:
        if recording is not None and not analyzer.has_recording():
            analyzer.set_temporary_recording(recording)
        return analyzer, []
    if recording is None and analyzer.has_recording():
        recording = analyzer.recording
    if recording is None:
        impossible = [name for name in missing if _needs_recording(name, analyzer)]
        if impossible:
            raise SpikemergeError(
                "the analyzer's recording is not available and it lacks "
                f"{', '.join(impossible)}: compute them where the recording is available, "
                "or pass the recording: CurationSession.open(path, out, recording=recording)"
            )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        work = analyzer.save_as(format="memory")
        for extension in work.extensions.values():
            keep_mapped(extension.data)
        if recording is not None and not work.has_recording():
            work.set_temporary_recording(recording)
        job_kwargs = {"n_jobs": n_jobs, "progress_bar": progress, "chunk_duration": "1s"}
        for name in missing:
            params = dict(EXTENSION_PARAMS.get(name, {}))
            if get_extension_class(name).need_job_kwargs:
                params.update(job_kwargs)
            work.compute(name, **params)
    return work, missing


def load_analyzer(
    path: str | Path, recording=None, n_jobs: int = 1, progress: bool = True
) -> tuple[SortingAnalyzer, AnalyzerInfo]:
    """Open the analyzer at ``path`` and return a prepared working copy and its description.

    Parameters
    ----------
    path : str or Path
        A SortingAnalyzer folder (binary_folder or zarr).
    recording : BaseRecording or None, default: None
        The recording, when the analyzer cannot find its own and extensions are missing.
    n_jobs : int, default: 1
        Processes for the extensions computed from the recording.
    progress : bool, default: True
        Show progress bars while computing.

    Returns
    -------
    analyzer : SortingAnalyzer
        An in-memory copy with every extension in ``REQUIRED_EXTENSIONS``.
    info : AnalyzerInfo
    """
    original = open_analyzer(path)
    work, computed = prepare_analyzer(original, recording=recording, n_jobs=n_jobs, progress=progress)
    return work, describe(original, work, computed, str(Path(path).resolve()))


def describe(original: SortingAnalyzer, work: SortingAnalyzer, computed: list[str], path: str) -> AnalyzerInfo:
    """The ``AnalyzerInfo`` of an analyzer and its prepared working copy."""
    return AnalyzerInfo(
        path=path,
        format=original.format,
        unit_ids=[u.item() if hasattr(u, "item") else u for u in original.unit_ids],
        num_channels=original.get_num_channels(),
        duration_s=float(original.get_total_duration()),
        sampling_frequency=float(original.sampling_frequency),
        has_recording=work.has_recording(),
        sparse=original.is_sparse(),
        extensions_present=present_extensions(original),
        extensions_computed=computed,
    )
