"""Build a held-out batch of the sorted bench and score it: presets when built, spikemerge once.

    python scripts/heldout_batch.py list                          # the batches of heldout_batches.toml
    python scripts/heldout_batch.py build 139-140 [--cache DIR]   # datasets, then the presets' scores
    python scripts/heldout_batch.py score 139-140 --judge metrics-v28   # once, when the judge is final

Needs the ``[bench]`` extra. A batch (``heldout_batches.toml``) is two seeds and, per scenario, the
recording parameters and the label of its table rows, and optionally ``sorters`` (default
spykingcircus2 and tridesclous2; ``kilosort4`` needs the ``[kilosort]`` extra); ``build`` makes
every scenario's datasets with each sorter (one failing does not stop the others: MEArec sometimes
cannot place the cells)
and writes ``<cache>/scores/<seeds>_<scenario>_presets.jsonl``. ``score`` writes
``..._ours.jsonl`` beside it and prints each scenario's per-set rows and pooled line (the tables of
``docs/sorted_bench_history.md``), then the batch's row of the README's summary with its verdict on
the bar (``spikemerge.bench.heldout``), records in the registry which judge scored the batch
(``scored = "..."``, to be committed), and keeps each scored set's record (``explain_sorted.py
--keep``, in ``scripts/dev_evidence`` unless ``--keep DIR`` or ``--no-keep``; to be committed too: the
datasets do not outlive their machine, the records let later judges be measured on them). It
refuses to score a batch twice, by the registry or by the cache, since a second look would no longer
be held out. The cache (default
``$SPIKEMERGE_CACHE`` or ``~/.cache/spikemerge/sorted_bench``) holds one template library for all
batches (seeds never repeat, so dataset names do not collide).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from spikemerge.bench.heldout import (
    Batch, batch_row, dataset_folders, load_batches, mark_scored, pooled_line, read_scenario, repeated_parameters,
    score_file, set_rows,
)
from spikemerge.bench.sorted import (
    dataset_spec, default_cache, ensure_venv_bin_on_path, is_ready, make_dataset, mark_failed,
)

HERE = Path(__file__).resolve().parent
REGISTRY = HERE / "heldout_batches.toml"
KEPT = HERE / "dev_evidence"
PRESETS = "x_contaminations,similarity_correlograms,temporal_splits,feature_neighbors,slay"


def ready_folders(folders: list[Path]) -> list[Path]:
    """The folders whose dataset was built whole (a ``READY`` file), in their order."""
    return [f for f in folders if is_ready(f)]


def run_eval(folders: list[Path], args: list[str], out: Path) -> None:
    """``eval_sorted.py`` on the ready folders, its lines written to ``out`` only once it succeeded."""
    ready = [str(f) for f in ready_folders(folders)]
    if not ready:
        raise SystemExit(f"no ready dataset among {', '.join(f.name for f in folders)}: build the batch first")
    out.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([sys.executable, str(HERE / "eval_sorted.py"), *ready, *args],
                            check=True, stdout=subprocess.PIPE, text=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(result.stdout)
    os.replace(tmp, out)


def keep_records(ready: list[Path], kept: Path) -> None:
    """Each set's record written to ``kept`` (``explain_sorted.py --keep``), once the batch is scored."""
    subprocess.run([sys.executable, str(HERE / "explain_sorted.py"), *map(str, ready), "--keep", str(kept)],
                   check=True, stdout=subprocess.DEVNULL)


def build(batch: Batch, cache: Path) -> int:
    ensure_venv_bin_on_path()
    failed = 0
    for scenario in batch.scenarios:
        for sorter in batch.sorters:
            for seed in batch.seeds:
                spec = replace(dataset_spec(scenario.name, sorter, seed), overrides=scenario.overrides)
                try:
                    summary = make_dataset(spec, cache, log=lambda line: print(line, flush=True))
                except Exception as exc:  # noqa: BLE001 - reported; the batch goes on with the other sets
                    failed += 1
                    # a FAILED file, not an empty folder: STATUS.md and the next build see why
                    print(f"{spec.name}: FAILED {mark_failed(cache / spec.name, exc)}", flush=True)
                    continue
                print(f"{spec.name}: {summary['units']} units, {summary['true_pairs']} true pairs", flush=True)
        presets = score_file(cache, batch, scenario, "presets")
        if not presets.exists():
            run_eval(dataset_folders(batch, scenario, cache), ["--no-spikemerge", "--presets", PRESETS], presets)
        print(f"{scenario.name}: presets scored in {presets}", flush=True)
    return 1 if failed else 0


def score(batch: Batch, cache: Path, judge: str, again: bool, registry: Path = REGISTRY,
          kept: Path | None = KEPT) -> int:
    if batch.scored and not again:
        raise SystemExit(f"batch {batch.name} was scored already with {batch.scored} ({registry.name}): "
                         "held out means once")
    files = [(s, score_file(cache, batch, s, "ours"), score_file(cache, batch, s, "presets")) for s in batch.scenarios]
    for _, ours, presets in files:  # every scenario checked before any is scored
        if not presets.exists():
            raise SystemExit(f"{presets} is missing: build the batch (its presets are scored when it is built)")
        if ours.exists() and not again:
            raise SystemExit(f"{ours} exists: batch {batch.name} was scored already (held out means once)")
    scored = []
    for scenario, ours, presets in files:
        run_eval(dataset_folders(batch, scenario, cache), ["--presets", ""], ours)
        scores = read_scenario(scenario.name, scenario.label, ours, presets)
        print(f"\n{scenario.name} ({batch.name}):\n", *set_rows(scores, judge), "",
              f"Pooled: {pooled_line(scores)}", sep="\n", flush=True)
        scored.append(scores)
    print("\nThe batch's summary row:\n", batch_row(batch.name, scored, judge), sep="\n", flush=True)
    if not batch.scored:
        mark_scored(registry, batch, judge)
        print(f"\nRecorded in {registry.name} as scored with {judge}: commit it with the figures.", flush=True)
    if kept is not None:
        ready = ready_folders([f for s in batch.scenarios for f in dataset_folders(batch, s, cache)])
        try:
            keep_records(ready, kept)
        except subprocess.CalledProcessError:
            print(f"\nThe sets' records could not be kept (the scores stand); keep them with: python "
                  f"{HERE / 'explain_sorted.py'} {' '.join(map(str, ready))} --keep {kept}",
                  file=sys.stderr, flush=True)
            return 1
        print(f"Kept the sets' records in {kept}: commit them too.", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("list", "build", "score"))
    parser.add_argument("batch", nargs="?", help="a batch's seeds, e.g. 139-140")
    parser.add_argument("--cache", type=Path, default=None, help="datasets and scores (default: the sorted bench's)")
    parser.add_argument("--judge", default="spikemerge", help="score: the judge's name for the table's header")
    parser.add_argument("--again", action="store_true", help="score: overwrite an earlier score (no longer held out)")
    parser.add_argument("--keep", type=Path, default=KEPT, metavar="DIR",
                        help="score: where the scored sets' records go (default: scripts/dev_evidence)")
    parser.add_argument("--no-keep", action="store_true", help="score: do not keep the sets' records")
    args = parser.parse_args(argv)
    try:
        batches = load_batches(REGISTRY)
    except ValueError as exc:
        parser.error(str(exc))
    if args.command == "list":
        for batch in batches.values():
            status = f"(scored with {batch.scored})" if batch.scored else "(held out)"
            print(batch.name, status, "; ".join(f"{s.name}: {s.label}, " + " ".join(f"{k}={v}" for k, v in s.overrides)
                                                for s in batch.scenarios))
        return 0
    if args.batch not in batches:
        parser.error(f"no batch {args.batch!r} in {REGISTRY.name}: one of {', '.join(batches)}")
    cache = args.cache or default_cache()
    cache.mkdir(parents=True, exist_ok=True)
    if args.command == "build":
        if repeats := repeated_parameters(batches[args.batch], batches):
            parser.error(f"batch {args.batch} repeats recording parameters ({'; '.join(repeats)}): "
                         f"change them in {REGISTRY.name} before building")
        return build(batches[args.batch], cache)
    return score(batches[args.batch], cache, args.judge, args.again, kept=None if args.no_keep else args.keep)


if __name__ == "__main__":
    sys.exit(main())
