"""Dataset folders: recording, unmerged sorting, analyzer and truth built once; opened for scoring; STATUS.md."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import traceback
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from .mearec import check_recording, make_recording, read_recording
from .sorters import run_sorter_unmerged, sorter_params
from .specs import BENCH_SCENARIOS, DatasetSpec, Log, RecordingSpec, dataset_spec, default_cache
from .truth import build_truth, load_truth, split_neurons, summarise_truth, to_python


def build_analyzer(sorting, recording, folder: Path, n_jobs: int = 1):
    """A sparse binary_folder ``SortingAnalyzer`` of ``sorting`` with every extension spikemerge reads."""
    from spikeinterface.core import create_sorting_analyzer
    from spikeinterface.core.sortinganalyzer import get_extension_class
    from threadpoolctl import threadpool_limits

    from ...tools.analyzer import EXTENSION_PARAMS, REQUIRED_EXTENSIONS

    job_kwargs = {"n_jobs": n_jobs, "progress_bar": False, "chunk_duration": "1s"}
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        analyzer = create_sorting_analyzer(sorting, recording, format="binary_folder", folder=str(folder), sparse=True,
                                           overwrite=True, **job_kwargs)
        for name in REQUIRED_EXTENSIONS:
            params = dict(EXTENSION_PARAMS.get(name, {}))
            if get_extension_class(name).need_job_kwargs:
                params.update(job_kwargs)
            analyzer.compute(name, **params)
    return analyzer


def is_ready(folder: Path) -> bool:
    """Whether ``folder`` holds a whole dataset: its ``READY`` file, written last by the build."""
    return (Path(folder) / "READY").exists()


def build_dataset(name: str, spec: RecordingSpec, sorter: str, cache: Path, scenario_name: str = "",
                  sorter_seed: int | None = None, motion_correction: bool | None = None, n_jobs: int = 1,
                  log: Log | None = None, recording_path: Path | None = None) -> dict[str, Any]:
    """Build ``<cache>/<name>/`` (recording, sorting, analyzer, truth.json, READY), skipping what is there.

    The recording is simulated once per spec into ``<cache>/recordings/rec_<key>.h5`` (or taken
    from ``recording_path``) and hard-linked into the dataset folder, so two sorters of one
    scenario and seed sort the same recording. Returns the dataset's summary (see :func:`summarise_truth`).
    A ``FAILED`` file left by an earlier try (:func:`mark_failed`) is removed once the set is found or built.
    """
    log = log or (lambda line: None)
    cache = Path(cache)
    folder = cache / name
    if is_ready(folder):
        summary = summarise_truth(load_truth(folder))
    else:
        folder.mkdir(parents=True, exist_ok=True)
        with _building(folder):
            summary = _build_dataset(folder, name, spec, sorter, cache, scenario_name, sorter_seed,
                                     motion_correction, n_jobs, log, recording_path)
    (folder / "FAILED").unlink(missing_ok=True)
    return summary


@contextlib.contextmanager
def _building(folder: Path):
    """Claim ``folder`` with a BUILDING file (pid); refuse when a live process holds it."""
    marker = folder / "BUILDING"
    if marker.exists():
        try:
            pid = int(marker.read_text().split()[0])
            os.kill(pid, 0)
        except (ValueError, IndexError, ProcessLookupError, PermissionError):
            pass  # a stale claim: its process is gone
        else:
            if pid != os.getpid():
                raise RuntimeError(f"{folder.name} is being built by process {pid} (remove {marker} if it is not)")
    marker.write_text(f"{os.getpid()} {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n")
    try:
        yield
    finally:
        marker.unlink(missing_ok=True)


def _build_dataset(folder, name, spec, sorter, cache, scenario_name, sorter_seed, motion_correction, n_jobs, log,
                   recording_path) -> dict[str, Any]:
    times: dict[str, float] = {}
    start = time.perf_counter()
    rec_path = folder / "recording.h5"
    if not rec_path.exists():
        shared = Path(recording_path) if recording_path is not None else cache / "recordings" / f"rec_{spec.key()}.h5"
        make_recording(spec, shared, cache, log=lambda line: log(f"{name}: {line}"))
        if _same_fs(shared, folder):
            os.link(shared, rec_path)
        else:
            shutil.copy(shared, rec_path)
    times["recording_s"] = time.perf_counter() - start
    recording, gt_sorting = read_recording(rec_path)
    check_recording(recording, f"{name}: recording rec_{spec.key()}.h5")

    sorting_folder = folder / "sorting"
    t0 = time.perf_counter()
    if not (sorting_folder / "spikes.npy").exists() and not (sorting_folder / "si_folder.json").exists():
        log(f"{name}: sorting with {sorter} (final merge off)")
        sorting = run_sorter_unmerged(recording, sorter, folder / "sorter_output",
                                      seed=spec.seed if sorter_seed is None else sorter_seed,
                                      motion_correction=motion_correction)
        if sorting_folder.exists():
            shutil.rmtree(sorting_folder)
        sorting = sorting.save(folder=str(sorting_folder))
        shutil.rmtree(folder / "sorter_output", ignore_errors=True)
    from spikeinterface.core import load

    sorting = load(str(sorting_folder))
    times["sort_s"] = time.perf_counter() - t0
    log(f"{name}: {len(sorting.unit_ids)} units; ground-truth comparison")

    t0 = time.perf_counter()
    truth = build_truth(gt_sorting, sorting)
    truth.update(sorter=sorter, sorter_params=sorter_params(sorter, spec.seed if sorter_seed is None else sorter_seed,
                                                             motion_correction),
                 scenario={"name": scenario_name, **asdict(spec)}, num_units=len(sorting.unit_ids),
                 num_neurons=len(gt_sorting.unit_ids), sampling_frequency=sorting.sampling_frequency,
                 duration_s=recording.get_total_duration(), recording="recording.h5", final_merge="off",
                 versions=_versions())
    times["truth_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    log(f"{name}: analyzer")
    build_analyzer(sorting, recording, folder / "analyzer", n_jobs=n_jobs)
    times["analyzer_s"] = time.perf_counter() - t0
    truth["build_seconds"] = {k: round(v, 1) for k, v in times.items()}
    from ..synthetic import save_gt_sorting

    save_gt_sorting(gt_sorting, folder / "gt_sorting.npz")
    write_json(folder / "truth.json", truth)
    (folder / "READY").touch()
    return summarise_truth(truth)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("spikeinterface", "MEArec", "neuron", "LFPy", "hdbscan", "numpy"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            pass
    return out


def _same_fs(a: Path, b: Path) -> bool:
    try:
        return os.stat(a).st_dev == os.stat(b).st_dev
    except OSError:
        return False


def write_json(path: Path, record: Mapping) -> None:
    """``record`` as JSON at ``path``, written beside it first and moved in place (never half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, indent=1, default=to_python))
    os.replace(tmp, path)


def make_dataset(spec: DatasetSpec, cache: Path | None = None, log: Log | None = None) -> dict[str, Any]:
    """Build (or find) the dataset ``spec`` in ``cache``; returns its summary."""
    cache = Path(cache) if cache is not None else default_cache()
    return build_dataset(spec.name, spec.recording_spec(), spec.sorter, cache, scenario_name=spec.scenario,
                         motion_correction=spec.motion_correction, log=log)


@dataclass
class SortedGroundTruth:
    """A sorted-bench dataset in the shape the bench runner scores (see ``run.GroundTruth``).

    ``neuron_of_unit`` holds the pure units only; ``impure_units`` are left out of pair scoring.
    """

    analyzer: Any
    truth: dict
    neuron_of_unit: dict
    impure_units: list
    gt_sorting: Any
    name: str = ""

    def ground_truth_sorting(self):
        return self.gt_sorting

    @property
    def true_groups(self) -> list[list]:
        return [sorted(us) for us in split_neurons(self.neuron_of_unit, 2).values()]


def load_dataset(folder: Path, in_memory: bool = True) -> SortedGroundTruth:
    """Open a READY dataset folder: its analyzer (a memory copy by default), truth and gt sorting.

    The gt sorting comes from ``gt_sorting.npz`` (written beside truth.json), so neither the
    recording nor MEArec is needed to score.
    """
    from spikeinterface.core import load_sorting_analyzer

    from ..synthetic import load_gt_sorting

    folder = Path(folder)
    if not is_ready(folder):
        raise FileNotFoundError(f"{folder} is not a complete sorted-bench dataset (no READY file)")
    truth = load_truth(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analyzer = load_sorting_analyzer(folder / "analyzer")
        if in_memory:
            analyzer = analyzer.save_as(format="memory")
    by_str = {str(to_python(u)): u for u in analyzer.unit_ids}
    neuron_of_unit = {by_str[u]: n for u, n in truth["unit_to_neuron"].items() if n is not None}
    impure = [by_str[str(u)] for u in truth["impure_units"]]
    return SortedGroundTruth(analyzer=analyzer, truth=truth, neuron_of_unit=neuron_of_unit, impure_units=impure,
                             gt_sorting=load_gt_sorting(folder / "gt_sorting.npz"), name=folder.name)


def sorted_ground_truth(bench_scenario: str, seed: int, cache: Path | None = None,
                        log: Log | None = None) -> SortedGroundTruth:
    """The dataset behind ``spikemerge bench --scenarios <bench_scenario>`` for ``seed``, built when missing."""
    scenario_name, sorter = BENCH_SCENARIOS[bench_scenario]
    spec = dataset_spec(scenario_name, sorter, seed)
    cache = Path(cache) if cache is not None else default_cache()
    make_dataset(spec, cache, log=log)
    return load_dataset(cache / spec.name)


def mark_failed(folder: Path, exc: BaseException) -> str:
    """Write ``<folder>/FAILED`` with the error and its traceback, so the folder reads as a failed
    build (``write_status``) rather than an empty one; returns the one-line cause."""
    cause = f"{type(exc).__name__}: {exc}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "FAILED").write_text(f"{cause}\n\n{''.join(traceback.format_exception(exc))}")
    return cause


def write_status(cache: Path, failures: Mapping[str, str] | None = None, notes: Sequence[str] = ()) -> Path:
    """``<cache>/STATUS.md``: every dataset folder, READY or not, with its counts; failures with their cause."""
    cache = Path(cache)
    lines = ["# sorted bench: status", "",
             f"Written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by scripts/make_sorted_bench.py.", "",
             "| dataset | ready | sorter | motion corr. | units | neurons | impure | true pairs | split neurons "
             "(neuron:units) | undetected | pairs: duplicate / fragments / concurrent | build s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    failed = dict(failures or {})
    for folder in sorted(p for p in cache.iterdir() if p.is_dir() and (p / "truth.json").exists()
                         or (p.is_dir() and (p / "FAILED").exists())):
        if (folder / "FAILED").exists() and not is_ready(folder):
            failed.setdefault(folder.name, (folder / "FAILED").read_text().strip())
        if not (folder / "truth.json").exists():
            continue
        truth = load_truth(folder)
        s = summarise_truth(truth)
        sizes = ", ".join(f"{n}:{k}" for n, k in sorted(s["split_sizes"].items(), key=lambda kv: -kv[1]))
        secs = sum((truth.get("build_seconds") or {}).values())
        mc = (truth.get("sorter_params") or {}).get("apply_motion_correction", "default")
        lines.append(f"| {folder.name} | {'yes' if is_ready(folder) else 'no'} | {s['sorter']} | {mc} | "
                     f"{s['units']} | {s['neurons']} | {s['impure_units']} | {s['true_pairs']} | "
                     f"{s['split_neurons']} ({sizes}) | {s['undetected_neurons']} | "
                     f"{s['pair_kinds']['duplicate']} / {s['pair_kinds']['fragments']} / "
                     f"{s['pair_kinds']['concurrent']} | {secs:.0f} |")
    if failed:
        lines += ["", "## failed", ""] + [f"- {name}: {why}" for name, why in failed.items()]
    path = cache / "STATUS.md"
    if notes:
        lines += ["", "## notes", ""] + [f"- {n}" for n in notes]
    elif path.exists() and "\n## notes\n" in path.read_text():  # keep notes written by hand or an earlier call
        lines += ["", "## notes" + path.read_text().split("\n## notes", 1)[1].rstrip("\n")]
    tmp = path.with_name(".STATUS.md.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path
