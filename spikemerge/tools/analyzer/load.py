"""load_analyzer: open a SortingAnalyzer folder, check it, compute what later steps need.

The user's folder is opened read-only in spirit: every extension we add is computed on an
in-memory copy, so the files already in the folder stay byte-identical (SpikeInterface's
``compute_merge_unit_groups`` copies for the same reason).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

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


def open_analyzer(path: str | Path) -> SortingAnalyzer:
    """Open an analyzer folder (binary_folder or zarr) with one-line errors for the usual mistakes."""
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
            analyzer = load_sorting_analyzer(path, load_extensions=True)
    except Exception as exc:  # SpikeInterface raises many kinds here
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SpikemergeError(f"could not read the analyzer at {path} ({first_line}): check the folder is complete") from exc
    if analyzer.get_num_units() < 2:
        raise SpikemergeError(
            f"the analyzer at {path} has {analyzer.get_num_units()} unit(s): merging needs at least two"
        )
    return analyzer


def missing_extensions(analyzer: SortingAnalyzer, required: tuple[str, ...] = REQUIRED_EXTENSIONS) -> list[str]:
    return [name for name in required if not analyzer.has_extension(name)]


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
    """Return an in-memory working copy holding every ``required`` extension, and what was computed.

    ``recording`` stands in for an analyzer whose recording link is lost. Raises a one-line
    error naming the missing extensions when no recording is available to compute them.
    """
    missing = missing_extensions(analyzer, required)
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
        extensions_present=sorted(original.get_loaded_extension_names()),
        extensions_computed=computed,
    )
