"""The `spikemerge` command: run, demo, bench, chat and review."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

from .errors import SpikemergeError
from .policies import POLICIES
from .tools.judges import make_judge


def _console():
    from rich.console import Console

    return Console(highlight=False)


def _print_verdicts(console, session) -> None:
    from rich.table import Table

    table = Table(title="Verdicts", show_lines=False)
    for column in ("group", "units", "decision", "confidence", "merge units"):
        table.add_column(column)
    styles = {"merge": "green", "not merge": "yellow", "error": "red"}
    for g in sorted(session.verdicts):
        v = session.verdicts[g]
        table.add_row(str(g), " ".join(map(str, v.unit_ids)), f"[{styles[v.decision]}]{v.decision}[/]",
                      f"{v.confidence:.2f}", " ".join(map(str, v.merge_unit_ids)))
    console.print(table)


def curate(session, console, *, min_similarity, preset, relax, judge, render, apply, confirm_apply=True):
    """The offline pipeline the CLI runs: find, render, judge, write curation (and apply)."""
    console.print(f"[bold]Analyzer[/]: {session.info.summary()}")
    search = session.find_candidates(min_similarity=min_similarity, preset=preset, relax=relax)
    console.print(f"[bold]Candidates[/]: {search.summary()}")
    if not search.groups:
        console.print("No candidate groups: nothing to merge. Try a lower --min-similarity.")
        return None
    if render:
        session.render_group(n_workers="auto")  # the console script's main module is import-safe
        console.print(f"[bold]Figures[/]: {session.out / 'images'}")
    session.judge_group(judge=judge)
    _print_verdicts(console, session)
    result = session.apply_merges(confirm=confirm_apply, write_analyzer=apply)
    return result


def cmd_run(args: argparse.Namespace) -> int:
    from .tools.session import CurationSession

    console = _console()
    judge = make_judge(args.judge)
    session = CurationSession.open(args.analyzer, args.out, policy=args.policy, n_jobs=args.jobs,
                                   progress=not args.quiet)
    result = curate(session, console, min_similarity=args.min_similarity, preset=args.preset,
                    relax=not args.no_relax, judge=judge, render=not args.no_render, apply=args.apply)
    _print_outputs(console, session, result)
    return 0


def _print_outputs(console, session, result) -> None:
    out = session.out
    if result is not None:
        console.print(f"[bold]Merges[/]: {result.summary()}")
    for name in ("decisions.csv", "curation.json", "report.html", "run.json"):
        if (out / name).exists():
            console.print(f"  {name}: {out / name}")


def cmd_demo(args: argparse.Namespace) -> int:
    from .bench.scoring import score_merges
    from .bench.synthetic import ScenarioSpec, make_ground_truth, save_ground_truth
    from .tools.outputs import claim_output_folder
    from .tools.session import CurationSession

    console = _console()
    out = claim_output_folder(Path(args.out))
    analyzer_folder = out / "analyzer"
    spec = ScenarioSpec(drift=args.drift, seed=args.seed, duration_s=args.duration)
    if analyzer_folder.exists():
        console.print(f"Reusing the demo recording in {analyzer_folder}")
        import json

        truth_record = json.loads((out / "truth.json").read_text())
        neuron_of_unit = {int(k): v for k, v in truth_record["neuron_of_unit"].items()}
        kinds = {int(k): v for k, v in truth_record["kinds"].items()}
    else:
        start = time.perf_counter()
        console.print(f"Generating a {spec.duration_s:.0f} s {'drifting' if spec.drift else 'static'} recording of "
                      f"{spec.num_neurons} neurons and damaging its sorting (splits, duplicates, near-twin neurons)...")
        truth = make_ground_truth(spec, progress=not args.quiet)
        save_ground_truth(truth, out)
        neuron_of_unit, kinds = truth.neuron_of_unit, truth.kinds
        console.print(f"  done in {time.perf_counter() - start:.0f} s: {analyzer_folder}")
    session = CurationSession.open(analyzer_folder, out / "curation", policy=args.policy, progress=not args.quiet)
    result = curate(session, console, min_similarity=None, preset=None, relax=True, judge=make_judge("metrics"),
                    render=not args.no_render, apply=True)
    merged = result.merges if result is not None else []
    _print_truth(console, neuron_of_unit, kinds, [m["unit_ids"] for m in merged])
    _print_outputs(console, session, result)
    scores = score_merges([m["unit_ids"] for m in merged], neuron_of_unit)
    console.print(f"[bold]Against the known truth[/]: pair precision {scores['precision']:.2f}, recall "
                  f"{scores['recall']:.2f}, F1 {scores['f1']:.2f}; merges of distinct neurons: {scores['distinct_merges']}")
    return 0


def _print_truth(console, neuron_of_unit, kinds, merged_groups) -> None:
    from rich.table import Table

    by_neuron: dict = {}
    for unit, neuron in neuron_of_unit.items():
        by_neuron.setdefault(neuron, []).append(unit)
    merged_sets = [set(g) for g in merged_groups]
    table = Table(title="What the demo damaged, and what spikemerge merged")
    for column in ("neuron", "damage", "sorted units", "merged"):
        table.add_column(column)
    for neuron, units in sorted(by_neuron.items()):
        if len(units) < 2:
            continue
        found = [sorted(g) for g in merged_sets if g & set(units)]
        ok = len(found) == 1 and set(found[0]) == set(units)
        mark = "[green]yes[/]" if ok else f"[red]{found or 'no'}[/]"
        table.add_row(str(neuron), kinds.get(neuron, ""), " ".join(map(str, sorted(units))), mark)
    wrong = [sorted(g) for g in merged_sets if len({neuron_of_unit[u] for u in g}) > 1]
    console.print(table)
    if wrong:
        console.print(f"[red]Merged units of different neurons: {wrong}[/]")


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench.cli import bench_main

    return bench_main(args)


def cmd_chat(args: argparse.Namespace) -> int:
    from .chat import chat_from_args

    return chat_from_args(args)


def cmd_review(args: argparse.Namespace) -> int:
    """Open the proposals in spikeinterface-gui, or (--collect) learn from what the curator saved."""
    if args.collect is not None:
        from .review.proposals import load_proposals
        from .tools.session import CurationSession

        analyzer = args.analyzer or load_proposals(Path(args.out)).analyzer
        session = CurationSession.open(analyzer, args.out, progress=False)
        outcome = session.collect_review(args.collect or None)
        print(outcome.summary())
        return 0
    from .review.gui import serve

    serve(args.out, port=args.port, mode=args.mode, open_browser=not args.no_browser, analyzer=args.analyzer)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spikemerge", description="Decide which spike-sorted units are one neuron, and merge them.")
    sub = parser.add_subparsers(dest="command", required=True)
    policies = list(POLICIES)

    run = sub.add_parser("run", help="curate an analyzer folder offline (metrics judge) or with a vision model")
    run.add_argument("analyzer", help="SortingAnalyzer folder (binary_folder or zarr); never modified")
    run.add_argument("--out", required=True, help="output folder (new, empty, or an earlier spikemerge output)")
    run.add_argument("--policy", choices=policies, default="balanced")
    run.add_argument("--min-similarity", type=float, default=None, help="template similarity gate, 0-1 (default: the policy's)")
    run.add_argument("--preset", default=None, help="a SpikeInterface merge preset instead of the similarity gate")
    run.add_argument("--no-relax", action="store_true", help="do not lower min-similarity when nothing is found")
    run.add_argument("--judge", default="metrics", help="metrics (offline) or a chat model, e.g. openai:gpt-4o")
    run.add_argument("--apply", action="store_true", help="also write the merged analyzer in a new folder")
    run.add_argument("--no-render", action="store_true", help="skip figures and report (metrics judge only)")
    run.add_argument("--jobs", type=int, default=1, help="processes for extensions computed from the recording")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="curate a synthetic recording with known over-splits and compare with the truth")
    demo.add_argument("--out", default="spikemerge_demo")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--drift", action="store_true", help="a drifting recording")
    demo.add_argument("--duration", type=float, default=180.0, help="seconds of recording")
    demo.add_argument("--policy", choices=policies, default="balanced")
    demo.add_argument("--no-render", action="store_true")
    demo.add_argument("--quiet", action="store_true")
    demo.set_defaults(func=cmd_demo)

    bench = sub.add_parser("bench", help="score a judge and SpikeInterface's presets on synthetic ground truth")
    bench.add_argument("--judge", default="metrics", help="metrics or a chat model string")
    bench.add_argument("--scenarios", default="all",
                       help="comma-separated: static, drift, random_splits, time_splits, amplitude, duplicates, "
                            "hard_negatives, or all")
    bench.add_argument("--seeds", default="0,1,2")
    bench.add_argument("--presets", default="all",
                       help="SpikeInterface presets (comma-separated, empty for none): x_contaminations, "
                            "similarity_correlograms, temporal_splits, slay, feature_neighbors, or all")
    bench.add_argument("--policy", choices=policies, default="balanced", help="the judge's policy")
    bench.add_argument("--out", default="bench_out")
    bench.add_argument("--cache", default=None, help="dataset cache folder (default: OUT/datasets)")
    bench.add_argument("--quick", action="store_true", help="short recordings, one seed: a few minutes on 2 cores")
    bench.set_defaults(func=cmd_bench)

    chat = sub.add_parser("chat", help="curate in a terminal chat with a planner model")
    chat.add_argument("analyzer", nargs="?", default=None, help="SortingAnalyzer folder (optional with --resume)")
    chat.add_argument("--out", default=None, help="output folder (default curation_out)")
    chat.add_argument("--model", default=None, help="planner model, provider:name (default $SPIKEMERGE_MODEL)")
    chat.add_argument("--judge-model", default=None, help="vision model for judge_group (default: offline metrics judge)")
    chat.add_argument("--policy", choices=policies, default="balanced")
    chat.add_argument("--yes", action="store_true", help="apply merges without asking")
    chat.add_argument("--resume", action="store_true", help="continue the last conversation in --out")
    chat.add_argument("--thread", default=None, help="conversation id to start or resume")
    chat.set_defaults(func=cmd_chat)

    review = sub.add_parser("review", help="review the proposed merges in spikeinterface-gui; --collect learns from the result")
    review.add_argument("out", help="an output folder of `spikemerge run` (holds curation.json)")
    review.add_argument("--port", type=int, default=0, help="web mode: port on 127.0.0.1 (default: a free one)")
    review.add_argument("--no-browser", action="store_true", help="web mode: do not open a browser")
    review.add_argument("--mode", choices=("web", "desktop"), default="web", help="Panel web app (default) or Qt desktop app")
    review.add_argument("--analyzer", default=None, help="the analyzer folder, if it moved since the run")
    review.add_argument("--collect", nargs="?", const="", default=None, metavar="FILE",
                        help="compare the curator's curation (default: what the GUI saved) with the proposals, "
                             "write review.json and curation.json, and save the corrections as examples")
    review.set_defaults(func=cmd_review)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SpikemergeError as exc:
        print(f"spikemerge: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("spikemerge: interrupted; finished outputs are kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
