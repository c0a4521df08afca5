"""`spikemerge bench`: a table in the terminal, bench.json and a plot in the output folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from ..tools.outputs import claim_output_folder, write_json_atomic
from .run import SCENARIOS, run_bench


def summarise(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Mean precision, recall and F1 and the total of distinct-neuron merges per scenario and method."""
    frame = pd.DataFrame(rows)
    return (frame.groupby(["scenario", "method"], sort=False)
            .agg(precision=("precision", "mean"), recall=("recall", "mean"), f1=("f1", "mean"),
                 f1_min=("f1", "min"), distinct_merges=("distinct_merges", "sum"), runs=("f1", "size"),
                 seconds=("seconds", "median"))
            .reset_index())


def plot_f1(summary: pd.DataFrame, path: Path) -> Path:
    """Bars of mean F1 per scenario, one bar per method."""
    from matplotlib.figure import Figure

    pivot = summary.pivot(index="scenario", columns="method", values="f1")
    fig = Figure(figsize=(7, 3.5), dpi=100)
    ax = fig.add_subplot()
    pivot.plot.bar(ax=ax, rot=0)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("pair-level F1")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    return path


def bench_main(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from ..cli import _judge_from_arg

    console = Console(highlight=False)
    out = claim_output_folder(Path(args.out))
    scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        from ..errors import SpikemergeError

        raise SpikemergeError(f"unknown scenario(s) {unknown}: use {', '.join(SCENARIOS)}")
    seeds = [0] if args.quick else [int(s) for s in args.seeds.split(",") if s]
    presets = [p for p in args.presets.split(",") if p]
    cache = Path(args.cache) if args.cache else out / "datasets"
    rows = run_bench(scenarios, seeds, judge=_judge_from_arg(args.judge), presets=presets, cache=cache,
                     out=out / "runs", quick=args.quick)
    summary = summarise(rows)
    table = Table(title=f"Pair-level scores over seeds {seeds}")
    for column in summary.columns:
        table.add_column(column)
    for record in summary.to_dict("records"):
        table.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in record.values()])
    console.print(table)
    write_json_atomic(out / "bench.json", {"rows": rows, "summary": summary.to_dict("records"),
                                           "scenarios": scenarios, "seeds": seeds, "quick": args.quick})
    plot_f1(summary, out / "bench_f1.png")
    console.print(f"bench.json and bench_f1.png in {out}")
    return 0
