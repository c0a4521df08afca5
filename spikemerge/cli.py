"""The `spikemerge` command: run, batch, demo, bench, chat and review.

Conventions every sub-command follows:

- exit codes: 0 done, 1 a runtime error (bad analyzer, missing key, ...), 2 a usage error
  (argparse's own, and arguments this module checks before doing anything), 130 interrupted;
- every argument is checked before anything is written (:func:`check_run_args`);
- errors are one line on stderr; ``-v`` logs progress, ``-vv`` debug details and tracebacks;
  logs pass through the secrets filter;
- ``--json`` prints one machine-readable summary on stdout and sends everything else to stderr.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from . import __version__
from .errors import SpikemergeError, one_line
from .policies import POLICIES
from .curate import curate, make_console, print_json, print_outputs, run_summary
from .progress import setup_logging
from .tools.judges import make_judge
from .tools.outputs import check_output_folder
from .tools.secrets import scrub

log = logging.getLogger(__name__)

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(SpikemergeError):
    """An argument that cannot work (found before anything is written): exit code 2."""


# ------------------------------------------------------------------ checking arguments


def _check_fraction(value: float | None, flag: str) -> None:
    if value is not None and not (math.isfinite(value) and 0.0 < value <= 1.0):
        raise UsageError(f"{flag} must be in (0, 1], not {value}: 0.9 means templates 90 % alike")


def _check_curation_args(args: argparse.Namespace) -> None:
    """The checks ``run`` and ``batch`` share: the gate, the preset, figures for a vision judge."""
    from .tools.candidates import SI_PRESETS

    _check_fraction(args.min_similarity, "--min-similarity")
    if args.preset not in (None, "", "none") and args.preset not in SI_PRESETS:
        raise UsageError(f"unknown --preset {args.preset!r}: use one of {', '.join(SI_PRESETS)} or none")
    if args.no_render and str(args.judge).strip().lower() not in ("", "metrics"):
        raise UsageError("--no-render works only with the metrics judge: a vision model judges the figures")


def check_run_args(args: argparse.Namespace) -> None:
    """Every check ``run`` can make before it writes anything; raises :class:`UsageError`."""
    _check_curation_args(args)
    if args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, not {args.jobs}")
    analyzer, out = Path(args.analyzer).expanduser(), Path(args.out).expanduser()
    if not analyzer.exists():
        raise UsageError(f"no such folder {analyzer}: give the path of a SortingAnalyzer folder")
    if out.resolve() == analyzer.resolve() or analyzer.resolve() in out.resolve().parents:
        raise UsageError(f"output folder {out} is inside the analyzer folder: choose a folder outside it")
    try:
        check_output_folder(out)
    except SpikemergeError as exc:
        raise UsageError(str(exc)) from None


# ------------------------------------------------------------------ commands


def cmd_run(args: argparse.Namespace) -> int:
    from .tools.session import CurationSession

    check_run_args(args)
    judge = make_judge(args.judge)  # a missing key or package fails here, before any folder exists
    log.info("judge %s%s, policy %s, output %s", judge.name, f" ({judge.model})" if judge.model else "",
             args.policy, Path(args.out).resolve())
    console = make_console(json_mode=args.json)
    show_progress = not args.quiet and not args.json
    session = CurationSession.open(args.analyzer, args.out, policy=args.policy, n_jobs=args.jobs,
                                   progress=show_progress)
    result = curate(session, console, min_similarity=args.min_similarity, preset=args.preset,
                    relax=not args.no_relax, judge=judge, render=not args.no_render, apply=args.apply,
                    progress=show_progress, calibrate=args.calibrate)
    print_outputs(console, session, result)
    if args.json:
        print_json(run_summary(session, result))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    if args.duration <= 0 or not math.isfinite(args.duration):
        raise UsageError(f"--duration must be a positive number of seconds, not {args.duration}")
    if args.seed < 0:
        raise UsageError(f"--seed must be 0 or more, not {args.seed}")
    try:
        check_output_folder(Path(args.out))
    except SpikemergeError as exc:
        raise UsageError(str(exc)) from None
    return run_demo(args, make_console())


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench.cli import bench_main, parse_list, parse_scenarios, parse_seeds
    from .bench.run import SI_PRESETS

    try:
        parse_scenarios(args.scenarios)
        parse_list(args.presets, list(SI_PRESETS), "preset(s)")
        parse_seeds(args.seeds, args.quick)
        check_output_folder(Path(args.out))
    except SpikemergeError as exc:
        raise UsageError(str(exc)) from None
    return bench_main(args)


def check_batch_args(args: argparse.Namespace) -> None:
    """What ``batch`` can check before curating anything; raises :class:`UsageError` (exit 2)."""
    _check_curation_args(args)
    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, not {args.workers}")


def cmd_batch(args: argparse.Namespace) -> int:
    from .bench.batch import BatchSettings, run_batch

    check_batch_args(args)

    settings = BatchSettings(
        judge=args.judge, policy=args.policy, min_similarity=args.min_similarity, preset=args.preset,
        relax=not args.no_relax, render=not args.no_render, apply=args.apply, calibrate=args.calibrate,
        vlm_max_concurrency=args.vlm_concurrency, vlm_requests_per_second=args.vlm_rate,
    )
    rows = run_batch(args.analyzers, args.out, settings, engine=args.engine, workers=args.workers,
                     scheduler=args.scheduler, progress=not (args.quiet or args.json))
    failed = [r for r in rows if r["status"] != "ok"]
    table = Path(args.out).resolve() / "batch.csv"
    if args.json:
        from .tools.schemas import BatchRow

        print_json({"format_version": "1", "out": str(Path(args.out).resolve()), "table": str(table),
                    "analyzers": [BatchRow.model_validate(r).model_dump(mode="json") for r in rows]})
    else:
        print(f"{len(rows) - len(failed)} of {len(rows)} analyzers curated; table: {table}")
    for row in failed:
        print(f"  {row['name']}: {row['reason']}", file=sys.stderr)
    return 1 if failed else 0


def cmd_chat(args: argparse.Namespace) -> int:
    from .chat import chat_from_args

    return chat_from_args(args)


def cmd_review(args: argparse.Namespace) -> int:
    """Open the proposals in spikeinterface-gui, or (--collect) learn from what the curator saved."""
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port} is not a TCP port: give 1-65535, or 0 for a free one")
    if not Path(args.out).is_dir():
        raise UsageError(f"{args.out} is not a folder: give the --out folder of `spikemerge run`")
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


# ------------------------------------------------------------------ the parser


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every option's default; options without one (flags, required) show none."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default is None or action.default is False or action.default == argparse.SUPPRESS \
                or isinstance(action, argparse._CountAction) or "%(default)" in text or action.required:
            return text
        return super()._get_help_string(action)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                        help="log what is done (-vv: debug details and tracebacks)")


def _add_run(sub, policies: list[str]) -> None:
    run = sub.add_parser("run", help="curate an analyzer folder offline (metrics judge) or with a vision model",
                         formatter_class=_HelpFormatter)
    run.add_argument("analyzer", help="SortingAnalyzer folder (binary_folder or zarr); never modified")
    run.add_argument("--out", required=True, help="output folder (new, empty, or an earlier spikemerge output)")
    run.add_argument("--policy", choices=policies, default="balanced", help="how readily groups merge")
    run.add_argument("--min-similarity", type=float, default=None,
                     help="template similarity gate in (0, 1] (default: the policy's)")
    run.add_argument("--preset", default=None, help="a SpikeInterface merge preset instead of the similarity gate "
                     "(default: none)")
    run.add_argument("--no-relax", action="store_true", help="do not lower min-similarity when nothing is found")
    run.add_argument("--judge", default="metrics", help="metrics (offline) or a chat model, e.g. openai:gpt-4o")
    run.add_argument("--apply", action="store_true", help="also write the merged analyzer in a new folder")
    run.add_argument("--calibrate", action="store_true",
                     help="first try the offline judge on this recording's own units split on purpose and on "
                          "distinct neighbours; reports recall, false merges and a suggested policy")
    run.add_argument("--no-render", action="store_true", help="skip figures and report (metrics judge only)")
    run.add_argument("--jobs", type=int, default=1, help="processes for extensions computed from the recording")
    run.add_argument("--json", action="store_true", help="print one JSON summary on stdout (the rest goes to stderr)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    _common(run)
    run.set_defaults(func=cmd_run)


def _add_demo(sub, policies: list[str]) -> None:
    demo = sub.add_parser("demo", help="curate a synthetic recording with known over-splits and compare with the truth",
                          formatter_class=_HelpFormatter)
    demo.add_argument("--out", default="spikemerge_demo", help="output folder; a rerun reuses its recording")
    demo.add_argument("--seed", type=int, default=0, help="random seed of the synthetic recording")
    demo.add_argument("--drift", action="store_true", help="a drifting recording")
    demo.add_argument("--duration", type=float, default=180.0, help="seconds of recording")
    demo.add_argument("--policy", choices=policies, default="balanced", help="how readily groups merge")
    demo.add_argument("--no-render", action="store_true", help="skip figures and report")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    _common(demo)
    demo.set_defaults(func=cmd_demo)


def _add_bench(sub, policies: list[str]) -> None:
    bench = sub.add_parser("bench", help="score a judge and SpikeInterface's presets on synthetic ground truth",
                           formatter_class=_HelpFormatter)
    bench.add_argument("--judge", default="metrics", help="metrics or a chat model string")
    bench.add_argument("--scenarios", default="all",
                       help="comma-separated: static, drift, random_splits, time_splits, amplitude, duplicates, "
                            "hard_negatives, or all; also over-splits made by a real sorter (the [bench] extra, "
                            "datasets in $SPIKEMERGE_CACHE, built when missing): sorted_drift, sorted_burst, "
                            "sorted_lowsnr, sorted_drift_tdc2, sorted_burst_sc2")
    bench.add_argument("--seeds", default="0,1,2", help="comma-separated random seeds, one recording each")
    bench.add_argument("--presets", default="all",
                       help="SpikeInterface presets (comma-separated, empty for none): x_contaminations, "
                            "similarity_correlograms, temporal_splits, slay, feature_neighbors, or all")
    bench.add_argument("--policy", choices=policies, default="balanced", help="the judge's policy")
    bench.add_argument("--out", default="bench_out", help="output folder for bench.json and bench_f1.png")
    bench.add_argument("--cache", default=None, help="dataset cache folder (default: OUT/datasets)")
    bench.add_argument("--quick", action="store_true", help="short recordings, one seed: a few minutes on 2 cores")
    _common(bench)
    bench.set_defaults(func=cmd_bench)


def _add_batch(sub, policies: list[str]) -> None:
    batch = sub.add_parser("batch", help="curate many analyzers (folders, a glob, or a CSV manifest), locally or on Dask",
                           formatter_class=_HelpFormatter)
    batch.add_argument("analyzers", nargs="+", help="analyzer folders, glob patterns, or a CSV manifest (path,name)")
    batch.add_argument("--out", required=True, help="batch folder: OUT/<name>/ per analyzer and OUT/batch.csv")
    batch.add_argument("--engine", choices=("local", "dask"), default="local",
                       help="local worker processes, or Dask distributed (a LocalCluster unless --scheduler)")
    batch.add_argument("--workers", type=int, default=2, help="worker processes (local) or Dask workers")
    batch.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler (with --engine dask)")
    batch.add_argument("--policy", choices=policies, default="balanced", help="how readily groups merge")
    batch.add_argument("--min-similarity", type=float, default=None,
                       help="template similarity gate in (0, 1] (default: the policy's)")
    batch.add_argument("--preset", default=None, help="a SpikeInterface merge preset instead of the similarity gate")
    batch.add_argument("--no-relax", action="store_true", help="do not lower the gate when nothing is found")
    batch.add_argument("--judge", default="metrics", help="metrics (offline) or a vision model, provider:name")
    batch.add_argument("--vlm-concurrency", type=int, default=4, help="model calls in flight per worker")
    batch.add_argument("--vlm-rate", type=float, default=None, help="model requests per second per worker")
    batch.add_argument("--apply", action="store_true", help="also write each merged analyzer")
    batch.add_argument("--calibrate", action="store_true",
                       help="calibrate the offline judge on each recording (see `run --calibrate`)")
    batch.add_argument("--no-render", action="store_true", help="skip the figures (the metrics judge does not need them)")
    batch.add_argument("--quiet", action="store_true", help="no progress bar")
    batch.add_argument("--json", action="store_true",
                       help="print one JSON summary (a row per analyzer) on stdout instead of the sentence")
    _common(batch)
    batch.set_defaults(func=cmd_batch)


def _add_chat(sub, policies: list[str]) -> None:
    chat = sub.add_parser("chat", help="curate in a terminal chat with a planner model", formatter_class=_HelpFormatter)
    chat.add_argument("analyzer", nargs="?", default=None, help="SortingAnalyzer folder (optional with --resume)")
    chat.add_argument("--out", default=None, help="output folder (default: curation_out)")
    chat.add_argument("--model", default=None, help="planner model, provider:name (default: $SPIKEMERGE_MODEL)")
    chat.add_argument("--judge-model", default=None, help="vision model for judge_group (default: offline metrics judge)")
    chat.add_argument("--policy", choices=policies, default="balanced", help="how readily groups merge")
    chat.add_argument("--yes", action="store_true", help="apply merges without asking")
    chat.add_argument("--resume", action="store_true", help="continue the last conversation in --out")
    chat.add_argument("--thread", default=None, help="conversation id to start or resume (default: the last one)")
    _common(chat)
    chat.set_defaults(func=cmd_chat)


def _add_review(sub, policies: list[str]) -> None:
    review = sub.add_parser("review", help="review the proposed merges in spikeinterface-gui; --collect learns from the result",
                            formatter_class=_HelpFormatter)
    review.add_argument("out", help="an output folder of `spikemerge run` (holds curation.json)")
    review.add_argument("--port", type=int, default=0, help="web mode: port on 127.0.0.1 (0: a free one)")
    review.add_argument("--no-browser", action="store_true", help="web mode: do not open a browser")
    review.add_argument("--mode", choices=("web", "desktop"), default="web", help="Panel web app or Qt desktop app")
    review.add_argument("--analyzer", default=None, help="the analyzer folder, if it moved since the run")
    review.add_argument("--collect", nargs="?", const="", default=None, metavar="FILE",
                        help="compare the curator's curation (default: what the GUI saved) with the proposals, "
                             "write review.json and curation.json, and save the corrections as examples")
    _common(review)
    review.set_defaults(func=cmd_review)


SUBCOMMANDS: list[Callable[[Any, list[str]], None]] = [_add_run, _add_batch, _add_demo, _add_bench, _add_chat, _add_review]
"""Each adds one sub-parser, with ``_HelpFormatter`` and ``_common``."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spikemerge", formatter_class=_HelpFormatter,
                                     description="Decide which spike-sorted units are one neuron, and merge them.",
                                     epilog="exit codes: 0 done, 1 runtime error, 2 usage error, 130 interrupted")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log what is done (-vv: debug details and tracebacks)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    policies = list(POLICIES)
    for add in SUBCOMMANDS:
        add(sub, policies)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, run, and map failures to exit codes (see the module docstring)."""
    parser = build_parser()
    args = parser.parse_args(argv)  # usage errors exit 2 here, --version and --help exit 0
    verbosity = int(getattr(args, "verbose", 0) or 0)
    setup_logging(verbosity)
    log.debug("spikemerge %s: %s", __version__, " ".join(sys.argv[1:] if argv is None else list(argv)))
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(scrub(f"spikemerge: error: {one_line(exc)}"), file=sys.stderr)
        return EXIT_USAGE
    except SpikemergeError as exc:
        print(scrub(f"spikemerge: error: {one_line(exc)}"), file=sys.stderr)
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        print("spikemerge: interrupted; finished outputs are kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: one line, and the traceback with -vv
        if verbosity >= 2:
            raise
        print(scrub(f"spikemerge: unexpected {type(exc).__name__}: {one_line(exc)} (rerun with -vv for the traceback, "
                    "and report it)"), file=sys.stderr)
        return EXIT_RUNTIME


if __name__ == "__main__":
    sys.exit(main())
