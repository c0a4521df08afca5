"""spikemerge batch: curate many analyzers, in local processes or on a Dask cluster.

Each analyzer is curated exactly as ``spikemerge run`` would (same session steps, same files in
``OUT/<name>/``); ``OUT/batch.csv`` gets one row per analyzer as it finishes, so a killed batch
resumes where it stopped: rows marked ``ok`` whose ``run.json`` exists are skipped, everything
else is curated again. One analyzer failing (bad folder, a SpikeInterface error, a dead worker)
is an ``error`` row with a one-line reason; the others go on.

Engines: ``local`` runs one analyzer per worker process on this machine; ``dask`` hands them to
Dask distributed, a ``LocalCluster`` of ``workers`` single-threaded processes or an existing
scheduler (e.g. one whose workers dask-jobqueue starts on SLURM). A worker curates one analyzer
at a time with one process (figures drawn serially), so a VLM judge's ``max_concurrency`` and
``requests_per_second`` are per worker: a cluster of N workers makes at most N times as many
calls at once.
"""

from __future__ import annotations

import csv
import glob
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ..errors import SpikemergeError, one_line

BATCH_FILE = "batch.csv"
COLUMNS = ["name", "analyzer", "status", "reason", "units_before", "units_after", "merges", "wall_seconds",
           "recovered_splits", "neighbours", "neighbours_merged", "suggested_policy"]
ENGINES = ("local", "dask")


@dataclass(frozen=True)
class BatchSettings:
    """How every analyzer of a batch is curated (the ``run`` options) and where."""

    judge: str = "metrics"
    policy: str = "balanced"
    min_similarity: float | None = None
    preset: str | None = None
    relax: bool = True
    render: bool = True
    apply: bool = False
    calibrate: bool = False
    """Try the offline judge on each recording's own artificial splits first (run.json keeps the result,
    the table its figures)."""
    vlm_max_concurrency: int = 4
    """Model calls in flight per worker (a VLM judge only)."""
    vlm_requests_per_second: float | None = None
    """Rate limit per worker (a VLM judge only); None: no limit beyond the provider's."""


@dataclass(frozen=True)
class BatchItem:
    name: str
    path: str


# ---------------------------------------------------------------------------------- inputs


def _from_manifest(path: Path) -> list[BatchItem]:
    """A CSV with a ``path`` column (relative paths are relative to the CSV) and an optional ``name``."""
    try:
        rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SpikemergeError(f"could not read the manifest {path} ({one_line(exc)}): give a CSV with a 'path' column")
    if not rows or "path" not in rows[0]:
        raise SpikemergeError(f"the manifest {path} has no 'path' column: give a CSV with a 'path' column (and 'name')")
    items = []
    for row in rows:
        target = Path(row["path"].strip()).expanduser()
        target = target if target.is_absolute() else path.parent / target
        items.append(BatchItem(name=(row.get("name") or "").strip() or target.name, path=str(target)))
    return items


def resolve_inputs(inputs: Sequence[str]) -> list[BatchItem]:
    """Analyzer folders from folders, glob patterns and CSV manifests, each named once.

    Raises
    ------
    SpikemergeError
        Nothing matched, or two analyzers would write into the same ``OUT/<name>``.
    """
    items: list[BatchItem] = []
    for text in inputs:
        path = Path(text).expanduser()
        if path.suffix.lower() == ".csv" and path.is_file():
            items.extend(_from_manifest(path))
        elif any(ch in text for ch in "*?["):
            matches = sorted(glob.glob(str(path)))
            if not matches:
                raise SpikemergeError(f"no folder matches {text!r}: check the pattern (quote it in the shell)")
            items.extend(BatchItem(name=Path(m).name, path=m) for m in matches if Path(m).is_dir())
        else:
            items.append(BatchItem(name=path.name, path=str(path)))
    if not items:
        raise SpikemergeError("no analyzers given: pass folders, a glob pattern or a CSV manifest")
    seen: dict[str, str] = {}
    for item in items:
        if item.name in seen and seen[item.name] != item.path:
            raise SpikemergeError(
                f"two analyzers are both named {item.name!r} ({seen[item.name]} and {item.path}): "
                "give distinct names in a CSV manifest (columns path,name)"
            )
        seen[item.name] = item.path
    unique = {item.name: item for item in items}
    return list(unique.values())


# ---------------------------------------------------------------------------------- one analyzer


def curate_one(item: BatchItem, out_root: str, settings: BatchSettings) -> dict[str, Any]:
    """Curate one analyzer into ``out_root/<name>`` as ``spikemerge run`` does; never raises.

    Returns
    -------
    dict
        The analyzer's ``batch.csv`` row.
    """
    import warnings

    start = time.perf_counter()
    row: dict[str, Any] = {"name": item.name, "analyzer": item.path, "status": "error", "reason": "",
                           "units_before": "", "units_after": "", "merges": "", "wall_seconds": ""}
    try:
        from ..tools.judges import make_judge
        from ..tools.session import CurationSession

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vlm = {} if settings.judge in ("", "metrics") else {
                "max_concurrency": settings.vlm_max_concurrency,
                "requests_per_second": settings.vlm_requests_per_second,
            }
            judge = make_judge(settings.judge, **vlm)
            session = CurationSession.open(item.path, Path(out_root) / item.name, policy=settings.policy,
                                           progress=False)
            row["units_before"] = row["units_after"] = session.info.num_units
            if settings.calibrate:
                from ..tools.judges.calibrate import calibration_figures

                figures = calibration_figures(session.calibrate())
                recovered = figures["recovered_fraction"]
                row.update(recovered_splits=None if recovered is None else round(recovered, 3),
                           neighbours=figures["negatives"],
                           neighbours_merged=figures["negatives_merged"],
                           suggested_policy=figures["recommended_policy"] or "")
            search = session.find_candidates(min_similarity=settings.min_similarity, preset=settings.preset,
                                             relax=settings.relax)
            merges = 0
            if search.groups:
                session.compute_evidence()
                if settings.render:
                    session.render_group(n_workers=1)  # parallel across analyzers, not inside one
                session.judge_group(judge=judge)
                result = session.apply_merges(confirm=True, write_analyzer=settings.apply)
                row["units_after"] = result.units_after
                merges = len(result.merges)
            session.save()
        row.update(status="ok", merges=merges)
    except SpikemergeError as exc:
        row["reason"] = one_line(exc)
    except Exception as exc:  # one analyzer's failure is its row, never the batch's
        row["reason"] = f"{type(exc).__name__}: {one_line(exc)}"
    row["wall_seconds"] = round(time.perf_counter() - start, 2)
    return row


# ---------------------------------------------------------------------------------- the table


def read_table(out: Path) -> dict[str, dict[str, str]]:
    """The rows of ``out/batch.csv`` by name (empty when there is none)."""
    from ..tools.schemas import BatchRow

    path = Path(out) / BATCH_FILE
    if not path.exists():
        return {}
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    try:
        checked = [BatchRow.model_validate(row) for row in rows]
    except ValueError as exc:
        raise SpikemergeError(f"{path} is not a valid batch table ({one_line(exc, 160)}): delete it to start "
                              "the batch afresh") from None
    return {row.name: {k: str(v) for k, v in row.cells().items()} for row in checked}


def write_table(out: Path, rows: Iterable[dict[str, Any]]) -> Path:
    """Write ``out/batch.csv`` atomically, each row checked against :class:`~spikemerge.tools.schemas.BatchRow`."""
    from ..tools.outputs import write_text_atomic
    from ..tools.schemas import BatchRow

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(BatchRow.model_validate(row).cells())
    return write_text_atomic(Path(out) / BATCH_FILE, buffer.getvalue())


def _finished(out: Path, row: dict[str, str] | None) -> bool:
    return bool(row) and row.get("status") == "ok" and (Path(out) / row["name"] / "run.json").exists()


# ---------------------------------------------------------------------------------- engines


def _run_local(todo: list[BatchItem], out: str, settings: BatchSettings, workers: int,
               done: Callable[[dict], None]) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("forkserver" if "forkserver" in multiprocessing.get_all_start_methods()
                                          else "spawn")
    with ProcessPoolExecutor(max_workers=max(1, min(workers, len(todo))), mp_context=context) as pool:
        futures = {pool.submit(curate_one, item, out, settings): item for item in todo}
        for future in as_completed(futures):
            done(_row_of(future, futures[future]))


def _run_dask(todo: list[BatchItem], out: str, settings: BatchSettings, workers: int, scheduler: str | None,
              done: Callable[[dict], None]) -> None:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError as exc:
        raise SpikemergeError("the dask engine needs Dask distributed: pip install 'spikemerge[dask]'") from exc
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except Exception as exc:
            raise SpikemergeError(f"could not reach the Dask scheduler at {scheduler} ({one_line(exc)}): "
                                  "check the address, or use --workers N for a local cluster") from exc
        cluster = None
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    try:
        futures = {client.submit(curate_one, item, out, settings, pure=False, key=f"spikemerge-{i}-{item.name}"): item
                   for i, item in enumerate(todo)}
        for future in as_completed(list(futures)):
            done(_row_of(future, futures[future]))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _row_of(future, item: BatchItem) -> dict[str, Any]:
    """The row a finished future returned, or an error row when its worker died."""
    try:
        return future.result()
    except Exception as exc:
        return {"name": item.name, "analyzer": item.path, "status": "error",
                "reason": f"the worker running it failed: {type(exc).__name__}: {one_line(exc)}",
                "units_before": "", "units_after": "", "merges": "", "wall_seconds": ""}


def run_batch(
    inputs: Sequence[str],
    out: str | Path,
    settings: BatchSettings = BatchSettings(),
    *,
    engine: str = "local",
    workers: int = 2,
    scheduler: str | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Curate every analyzer of ``inputs`` into ``out/<name>/`` and write ``out/batch.csv``.

    Parameters
    ----------
    inputs : sequence of str
        Analyzer folders, glob patterns (``"sorts/*/analyzer"``) and CSV manifests (``path``
        column, optional ``name``).
    out : str or Path
        The batch folder (new, empty, or an earlier batch's: then finished analyzers are skipped).
    settings : BatchSettings
        The ``run`` options every analyzer gets.
    engine : {"local", "dask"}
    workers : int, default: 2
        Processes (local) or Dask workers of the local cluster.
    scheduler : str or None
        Address of an existing Dask scheduler (``tcp://host:8786``); with it ``workers`` is unused.
    progress : bool
        Show a progress bar of analyzers done.

    Returns
    -------
    list of dict
        Every row of ``batch.csv``, in input order.
    """
    from ..tools.outputs import claim_output_folder

    if engine not in ENGINES:
        raise SpikemergeError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    if workers < 1:
        raise SpikemergeError(f"--workers must be at least 1, not {workers}")
    items = resolve_inputs(inputs)
    out = claim_output_folder(Path(out).expanduser())
    rows = read_table(out)
    todo = [item for item in items if not _finished(out, rows.get(item.name))]

    def save() -> None:
        order = [item.name for item in items] + [name for name in rows if name not in {i.name for i in items}]
        write_table(out, [rows[name] for name in order if name in rows])

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("curating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("{task.description}"), console=Console(stderr=True), disable=not progress)
    with bar:
        task = bar.add_task("", total=len(items), completed=len(items) - len(todo))

        def done(row: dict[str, Any]) -> None:
            rows[row["name"]] = row
            save()
            bar.update(task, advance=1, description=f"{row['name']}: {row['status']}")

        if todo:
            if engine == "local":
                _run_local(todo, str(out), settings, workers, done)
            else:
                _run_dask(todo, str(out), settings, workers, scheduler, done)
    save()
    return [rows[item.name] for item in items if item.name in rows]
