"""`spikemerge bench`: a table in the terminal, bench.json and a plot in the output folder."""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from ..errors import SpikemergeError
from ..tools.outputs import claim_output_folder, to_jsonable
from ..tools.schemas import BenchRecord, write_model
from .run import CENSOR_MS, SCENARIO_HELP, SCENARIOS, SI_PRESETS, dataset_key, run_bench, scenario_spec
from .scoring import MATCH_SCORE, OVERMERGED_SCORE, REDUNDANT_SCORE, WELL_DETECTED_SCORE
from .sorted import BENCH_SCENARIO_HELP, BENCH_SCENARIOS, dataset_spec

SUMMARY_COLUMNS = ["scenario", "method", "status", "runs", "precision", "recall", "f1", "f1_min", "distinct_merges",
                   "num_gt", "num_well_detected", "num_redundant", "num_overmerged", "seconds", "input_tokens",
                   "output_tokens", "cost_usd", "reason"]


def parse_list(value: str | None, everything: Sequence[str], what: str, extra: Sequence[str] = ()) -> list[str]:
    """Comma-separated names; ``all`` means ``everything``; unknown names are a one-line error.

    ``extra`` names are accepted when asked for by name but are not part of ``all``.
    """
    names = [s.strip() for s in (value or "").split(",") if s.strip()]
    if names == ["all"]:
        return list(everything)
    known = [*everything, *extra]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SpikemergeError(f"unknown {what} {', '.join(unknown)}: use any of {', '.join(known)} "
                              f"(or all: {', '.join(everything)})")
    return names


def parse_scenarios(value: str | None) -> list[str]:
    """The scenarios asked for: the generator's (``all`` is every one of them) and, by name, the sorted
    bench's (``BENCH_SCENARIOS``); at least one, else a one-line error."""
    scenarios = parse_list(value, list(SCENARIOS), "scenario(s)", extra=list(BENCH_SCENARIOS))
    if not scenarios:
        raise SpikemergeError(f"no scenario given: use any of {', '.join(SCENARIOS)} (or all)")
    return scenarios


def _usage_total(rows: Sequence[dict[str, Any]], key: str) -> float | None:
    values = [(r.get("usage") or {}).get(key) for r in rows if r.get("usage")]
    if not values:
        return None
    if any(v is None for v in values):
        return None
    return sum(values)


def summarise(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One line per scenario and method, over seeds.

    Means of precision, recall, F1 and the unit counts, the worst F1, the total of
    distinct-neuron merges, the median seconds and the total tokens and cost. A method that
    was skipped or failed on every seed has ``status`` ``skipped``/``error`` and its reason.
    """
    records = []
    keys: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        keys.setdefault((row["scenario"], row["method"]), []).append(row)
    for (scenario, method), group in keys.items():
        ok = [r for r in group if r.get("status", "ok") == "ok"]
        record: dict[str, Any] = {"scenario": scenario, "method": method, "runs": len(ok)}
        if not ok:
            record.update(status=group[0].get("status", "error"), reason=group[0].get("reason", ""))
            records.append(record)
            continue
        frame = pd.DataFrame(ok)
        failed = [r for r in group if r not in ok]
        record.update(
            status="ok" if not failed else f"ok ({len(failed)} {failed[0].get('status')})",
            precision=frame["precision"].mean(), recall=frame["recall"].mean(), f1=frame["f1"].mean(),
            f1_min=frame["f1"].min(), distinct_merges=int(frame["distinct_merges"].sum()),
            num_gt=frame["num_gt"].mean(), num_well_detected=frame["num_well_detected"].mean(),
            num_redundant=frame["num_redundant"].mean(), num_overmerged=frame["num_overmerged"].mean(),
            seconds=frame["seconds"].median(), reason=failed[0].get("reason", "") if failed else "",
            input_tokens=_usage_total(ok, "input_tokens"), output_tokens=_usage_total(ok, "output_tokens"),
            cost_usd=_usage_total(ok, "cost_usd"),
        )
        records.append(record)
    return pd.DataFrame(records, columns=SUMMARY_COLUMNS)


def plot_f1(summary: pd.DataFrame, path: Path) -> Path:
    """Bars of mean F1 per scenario, one bar per method (the judge first, then the presets).

    Skipped or failed methods have no bar; the "none" baseline is left out.
    """
    from matplotlib.figure import Figure

    data = summary[(summary["method"] != "none") & summary["f1"].notna()]
    pivot = data.pivot(index="scenario", columns="method", values="f1")
    pivot = pivot.reindex(index=list(dict.fromkeys(data["scenario"])), columns=list(dict.fromkeys(data["method"])))
    fig = Figure(figsize=(max(7.0, 1.3 * len(pivot.index) + 2), 3.8), dpi=100)
    ax = fig.add_subplot()
    if len(pivot):
        pivot.plot.bar(ax=ax, rot=20, width=0.8)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("pair-level F1 (mean over seeds)")
    ax.set_xlabel("")
    ax.set_title("spikemerge judge vs SpikeInterface presets", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    return path


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def render_table(summary: pd.DataFrame, seeds: Sequence[int]):
    """The summary as a rich table (tokens and cost columns only when a judge reported usage)."""
    from rich.table import Table

    with_usage = summary["input_tokens"].notna().any()
    table = Table(title=f"spikemerge bench: seeds {list(seeds)} (means over seeds; distinct = wrong pairs, summed)")
    columns = [("scenario", "left"), ("method", "left"), ("P", "right"), ("R", "right"), ("F1", "right"),
               ("F1 min", "right"), ("distinct", "right"), ("well/gt", "right"), ("redund.", "right"),
               ("overm.", "right"), ("s", "right")]
    if with_usage:
        columns += [("tokens in/out", "right"), ("cost $", "right")]
    for name, justify in columns:
        table.add_column(name, justify=justify, no_wrap=name in ("scenario", "method"))
    previous = None
    for record in summary.to_dict("records"):
        scenario = record["scenario"] if record["scenario"] != previous else ""
        if previous is not None and scenario:
            table.add_section()
        previous = record["scenario"]
        if not str(record["status"]).startswith("ok"):
            cells = [scenario, record["method"], f"[dim]{record['status']}[/]"] + [""] * (len(columns) - 3)
            table.add_row(*cells)
            continue
        cells = [
            scenario, record["method"], _fmt(record["precision"]), _fmt(record["recall"]), _fmt(record["f1"]),
            _fmt(record["f1_min"]), _fmt(record["distinct_merges"]),
            f"{_fmt(record['num_well_detected'], 1)}/{_fmt(record['num_gt'], 0)}",
            _fmt(record["num_redundant"], 1), _fmt(record["num_overmerged"], 1), _fmt(record["seconds"], 1),
        ]
        if with_usage:
            tokens = ("" if record["input_tokens"] is None or math.isnan(record["input_tokens"])
                      else f"{record['input_tokens']:.0f}/{record['output_tokens']:.0f}")
            cells += [tokens, _fmt(record["cost_usd"], 4)]
        table.add_row(*cells)
    return table


def _scenario_record(name: str, seeds: Sequence[int], quick: bool) -> dict[str, Any]:
    """What bench.json says about one scenario: description, dataset per seed, parameters."""
    if name in BENCH_SCENARIOS:
        specs = {seed: dataset_spec(*BENCH_SCENARIOS[name], seed) for seed in seeds}
        first = specs[seeds[0]]
        return {"description": BENCH_SCENARIO_HELP[name], "datasets": {seed: s.name for seed, s in specs.items()},
                "spec": {**asdict(first.recording_spec()), "sorter": first.sorter,
                         "motion_correction": first.motion_correction}}
    return {"description": SCENARIO_HELP.get(name, ""),
            "datasets": {seed: dataset_key(scenario_spec(name, seed, quick)) for seed in seeds},
            "spec": scenario_spec(name, seeds[0], quick).__dict__}


def parse_seeds(value: str | None, quick: bool = False) -> list[int]:
    """The random seeds asked for (``--quick`` runs seed 0 alone); at least one, else a one-line error."""
    if quick:
        return [0]
    try:
        seeds = [int(s) for s in (value or "").split(",") if s.strip()]
    except ValueError:
        raise SpikemergeError(f"--seeds takes integers separated by commas, not {value!r}") from None
    if not seeds:
        raise SpikemergeError("no seed given: e.g. --seeds 0,1,2")
    return seeds


def bench_main(args: argparse.Namespace) -> int:
    """Run the bench the parsed ``args`` ask for; print the table; write bench.json and bench_f1.png."""
    from rich.console import Console

    from ..tools.judges import make_judge

    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=150)
    scenarios = parse_scenarios(args.scenarios)
    presets = parse_list(args.presets, list(SI_PRESETS), "preset(s)")
    seeds = parse_seeds(args.seeds, args.quick)
    judge = make_judge(args.judge)
    policy = getattr(args, "policy", None) or "balanced"
    out = claim_output_folder(Path(args.out))
    cache = Path(args.cache) if args.cache else out / "datasets"
    start = time.perf_counter()

    def log(line: str) -> None:
        console.print(f"[dim]{time.perf_counter() - start:6.0f} s[/]  {line}")

    rows = run_bench(scenarios, seeds, judge=judge, presets=presets, cache=cache, out=out / "runs",
                     quick=args.quick, log=log, policy=policy)
    summary = summarise(rows)
    console.print(render_table(summary, seeds))
    for record in summary.to_dict("records"):
        if record["reason"]:
            console.print(f"[dim]{record['scenario']} {record['method']}: {record['status']}: {record['reason']}[/]")
    console.print(
        f"[dim]P/R/F1: pair-level against the true groups. well/gt, redund., overm.: SpikeInterface's "
        f"compare_sorter_to_ground_truth on the curated sorting (well detected ≥ {WELL_DETECTED_SCORE}, "
        f"redundant/overmerged ≥ {REDUNDANT_SCORE}). s: median wall seconds of the method "
        f"(presets: after their shared extensions).[/]"
    )
    usage = getattr(judge, "usage_summary", None)
    write_model(out / "bench.json", BenchRecord.model_validate({
        "judge": {"name": judge.name, "model": getattr(judge, "model", None), "policy": policy},
        "scenarios": {name: _scenario_record(name, seeds, args.quick) for name in scenarios},
        "seeds": seeds, "presets": presets, "quick": args.quick, "cache": str(cache),
        "thresholds": {"match_score": MATCH_SCORE, "well_detected_score": WELL_DETECTED_SCORE,
                       "redundant_score": REDUNDANT_SCORE, "overmerged_score": OVERMERGED_SCORE,
                       "censor_ms": CENSOR_MS},
        "total_seconds": round(time.perf_counter() - start, 1),
        "judge_usage": {k: v for k, v in usage().items() if k != "records"} if callable(usage) else None,
        "summary": to_jsonable(summary.to_dict("records")),
        "rows": to_jsonable(rows),
    }))
    plot_f1(summary, out / "bench_f1.png")
    console.print(f"bench.json and bench_f1.png in {out} ({time.perf_counter() - start:.0f} s)")
    return 0
