"""The curation pipeline as the commands run it, and what they print about it.

Shared by ``run``, ``demo`` and ``batch`` (which prints :func:`run_summary` per analyzer), so
the three say the same thing in the same words.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from .progress import ProgressJudge

log = logging.getLogger(__name__)

OUTPUT_NAMES = ("decisions.csv", "curation.json", "report.html", "run.json")


def make_console(json_mode: bool = False):
    """The rich console for people; on stderr when stdout carries the ``--json`` summary."""
    from rich.console import Console

    return Console(highlight=False, stderr=json_mode)


def _print_verdicts(console, session) -> None:
    from rich.table import Table

    table = Table(title="Verdicts", show_lines=False)
    for column in ("group", "units", "decision", "confidence", "merges"):
        table.add_column(column)
    styles = {"merge": "green", "not merge": "yellow", "abstain": "blue", "error": "red"}
    labels = {"abstain": "abstain (not enough evidence)"}
    for g in sorted(session.verdicts):
        v = session.verdicts[g]
        merges = " | ".join(" ".join(map(str, part)) for part in v.merge_groups)
        table.add_row(str(g), " ".join(map(str, v.unit_ids)), f"[{styles[v.decision]}]{labels.get(v.decision, v.decision)}[/]",
                      f"{v.confidence:.2f}", merges)
    console.print(table)


def _draws_in_processes(workers, n_groups: int) -> bool:
    """Whether the figures would be drawn in worker processes (not in a thread of this process).

    Only then are they started before evidence: a drawing thread here shares the interpreter
    lock with the evidence loop, and on the lab-scale benchmark (machine busy, so one process)
    evidence took 203 s beside it against 61 s alone. Judging and applying, mostly file writes
    and numpy, share it well, so a thread starts after evidence, as before.
    """
    from .tools.render.groups import drawing_workers

    return drawing_workers(workers, n_groups) > 1


def curate(session, console, *, min_similarity, preset, relax, judge, render, apply, confirm_apply=True,
           progress: bool = True, calibrate: bool = False):
    """The offline pipeline the CLI runs: find, render, judge, write curation.json (and, with ``apply``, the merged analyzer).

    With ``calibrate``, the offline judge is first tried on the recording's own units split on
    purpose and on distinct neighbours (:meth:`CurationSession.calibrate`), and the result is
    printed and kept in run.json and the report.

    Returns the :class:`~spikemerge.tools.curation.ApplyResult`, or None when no group was found.
    """
    console.print(f"[bold]Analyzer[/]: {session.info.summary()}")
    if calibrate:
        console.print(f"[bold]Calibration[/]: {session.calibrate()['summary']}")
    from .tools.workers import idle_cpus, start_worker_server

    # read before this run's own workers load the machine: on a busy one they only slow each other
    workers = "auto" if idle_cpus() > 1 else 1
    if workers == "auto":  # the workers' imports run while candidates are found
        start_worker_server()
    search = session.find_candidates(min_similarity=min_similarity, preset=preset, relax=relax)
    console.print(f"[bold]Candidates[/]: {search.summary()}")
    motion = session.motion_record()
    if motion and motion["range_um"] > 0:
        sized = (f", sized {motion['gain']:.1f} times by the drift hand-overs" if motion.get("gain", 1.0) != 1.0
                 else "")
        console.print(f"[bold]Probe motion[/]: {motion['range_um']:.0f} µm over the recording, registered from "
                      f"the units' {'spikes' if motion['source'] == 'spikes' else 'firing'}{sized} (in run.json)")
    log.info("found %d candidate groups", len(search.groups))
    if not search.groups:
        console.print("No candidate groups: nothing to merge. Try a lower --min-similarity.")
        return None
    # a judge that reads only numbers does not wait for the figures: they are drawn while it works
    background = render and getattr(judge, "name", None) == "metrics"
    early = background and _draws_in_processes(workers, len(search.groups))
    if early:  # in worker processes, from now on: they need only the groups, not the evidence
        session.start_render(n_workers=workers)
    try:
        if apply and confirm_apply:  # the merge's numba kernel compiles while evidence is computed
            from .tools.curation.apply import warm_up_merge

            warm_up_merge()
        session.compute_evidence(n_workers=workers)  # the console script's main module is import-safe
        if background and not early:
            session.start_render(n_workers=workers)
        if render and not background:
            session.render_group(n_workers=workers)
            console.print(f"[bold]Figures[/]: {session.out / 'images'}")
            log.info("drew figures for %d groups", len(session.images))
        session.judge_group(judge=ProgressJudge(judge, console, enabled=progress))
        _print_verdicts(console, session)
        result = session.apply_merges(confirm=confirm_apply, write_analyzer=apply)
    except BaseException:
        if background:  # the figures' thread is not left drawing; its own failure would hide this one
            try:
                session.finish_render()
            except Exception as error:  # noqa: BLE001 - reported, the first error is raised
                log.warning("drawing the figures failed too: %s", error)
        raise
    if background:
        session.finish_render()
        console.print(f"[bold]Figures[/]: {session.out / 'images'}")
        log.info("drew figures for %d groups", len(session.images))
    return result


def merges_sentence(result) -> str:
    """What happened to the merges, in words that do not claim an analyzer was written when none was."""
    if result is None:
        return "no merges: no candidate groups"
    n = len(result.merges)
    skipped = f"; {len(result.skipped)} verdict(s) not applied (groups {', '.join(str(g) for g, _ in result.skipped)})" \
        if result.skipped else ""
    if result.analyzer_folder is None:
        return (f"{n} merge(s) planned, {result.units_before} -> {result.units_after} units, written to "
                f"{result.curation_path.name}; no analyzer written (add --apply to write the merged analyzer){skipped}")
    return (f"{n} merge(s) applied, {result.units_before} -> {result.units_after} units; merged analyzer in "
            f"{result.analyzer_folder}{skipped}")


def run_summary(session, result) -> dict[str, Any]:
    """The one machine-readable summary of a curation (``--json``), validated by :class:`RunSummary`.

    ``spikemerge batch`` prints one per analyzer with the same helper.
    """
    decisions = [v.decision for v in session.verdicts.values()]
    usage_of = getattr(session.judge_used, "usage_summary", None)
    usage = usage_of() if callable(usage_of) else {}
    out = session.out.resolve()
    outputs = {name: str(out / name) for name in ("decisions.csv", "curation.json", "report.html", "run.json",
                                                  "verdicts.jsonl") if (out / name).exists()}
    written = result is not None and result.analyzer_folder is not None
    from .tools.schemas import RunSummary  # SpikeInterface's curation model: not for --help's sake
    from .tools.judges.calibrate import calibration_figures

    summary = RunSummary(
        analyzer=session.info.path,
        out=str(out),
        units=session.info.num_units,
        groups=len(session.groups),
        decisions={d: decisions.count(d) for d in ("merge", "not merge", "abstain", "error")},
        merges_planned=len(result.merges) if result is not None else 0,
        merges_applied=len(result.merges) if written else 0,
        units_after=result.units_after if result is not None else session.info.num_units,
        merged_analyzer=str(Path(result.analyzer_folder).resolve()) if written else None,
        outputs=outputs,
        stage_seconds={k: round(v, 3) for k, v in session.times.seconds.items()},
        usage={k: usage.get(k) for k in ("calls", "input_tokens", "output_tokens", "cost_usd") if k in usage},
        calibration=calibration_figures(session.calibration),
    )
    return summary.model_dump(mode="json")


def print_json(data: dict[str, Any]) -> None:
    """One JSON document on stdout.

    It holds counts and paths only, never free text, so it is not passed through ``scrub``:
    the key-shaped pattern could match inside a path (``.../task-20261130...``) and corrupt it.
    """
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
    sys.stdout.flush()


def print_outputs(console, session, result) -> None:
    """The merges sentence and where each output is."""
    out = session.out
    console.print(f"[bold]Merges[/]: {merges_sentence(result)}")
    for name in OUTPUT_NAMES:
        if (out / name).exists():
            console.print(f"  {name}: {out / name}")
