"""Build the sorted bench: MEArec recordings over-split by a real sorter, with their ground truth.

Needs the ``[bench]`` extra (MEArec, LFPy, NEURON 8.2.7, hdbscan)::

    pip install -e ".[bench]"
    python scripts/make_sorted_bench.py                                  # the default datasets
    python scripts/make_sorted_bench.py --datasets drift_sc2_s2,burst_tdc2_s2 --cache /tmp/heldout
    python scripts/make_sorted_bench.py --scenario drift --sorter tridesclous2 --seeds 5,6
    python scripts/make_sorted_bench.py --datasets drift_sc2_s5 --set slow_drift_velocity=16 --set n_exc=12

Datasets are named ``<scenario>_<sc2|tdc2|ks4>_s<seed>`` (scenarios: drift, burst, lowsnr; ``ks4``,
Kilosort 4, needs the ``[kilosort]`` extra too) and
written to ``--cache`` (default ``$SPIKEMERGE_CACHE`` or ``~/.cache/spikemerge/sorted_bench``);
one that has its READY file is skipped. ``--set`` changes a recording parameter of the scenario
(a RecordingSpec field) for every dataset of the call, as held-out sets need; the parameters
used are kept in truth.json. The template library is simulated once per cache (about 7 minutes
on 2 cores); each recording once per scenario, seed and parameters, shared by sorters.
Prints, per dataset, the units, true pairs and which neurons were split into how many units,
and rewrites ``<cache>/STATUS.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from spikemerge.bench.sorted import (
    SCENARIOS,
    SORTER_SHORT_NAMES,
    dataset_spec,
    default_cache,
    ensure_venv_bin_on_path,
    is_ready,
    make_dataset,
    mark_failed,
    parse_dataset_name,
    parse_overrides,
    write_status,
)

DEFAULT_DATASETS = ("drift_sc2_s1", "burst_tdc2_s1")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=None,
                        help=f"comma-separated dataset names (default: {','.join(DEFAULT_DATASETS)})")
    parser.add_argument("--scenario", choices=list(SCENARIOS), help="instead of --datasets: one scenario ...")
    parser.add_argument("--sorter", choices=list(SORTER_SHORT_NAMES), default="spykingcircus2",
                        help="... sorted by this sorter (kilosort4: the [kilosort] extra)")
    parser.add_argument("--seeds", default="1", help="... for these seeds (comma-separated)")
    parser.add_argument("--cache", default=None, help="output folder (default: $SPIKEMERGE_CACHE or "
                                                      "~/.cache/spikemerge/sorted_bench)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override a recording parameter of the scenario (RecordingSpec field; repeatable)")
    parser.add_argument("--keep-going", action="store_true", help="go on with the next dataset when one fails")
    args = parser.parse_args(argv)

    ensure_venv_bin_on_path()
    cache = Path(args.cache) if args.cache else default_cache()
    cache.mkdir(parents=True, exist_ok=True)
    if args.scenario:
        specs = [dataset_spec(args.scenario, args.sorter, int(s)) for s in args.seeds.split(",") if s.strip()]
    else:
        names = [n.strip() for n in (args.datasets or ",".join(DEFAULT_DATASETS)).split(",") if n.strip()]
        specs = [parse_dataset_name(n) for n in names]
    try:
        overrides = parse_overrides(args.overrides)
    except ValueError as exc:
        parser.error(str(exc))
    specs = [replace(spec, overrides=overrides) for spec in specs]

    start = time.perf_counter()

    def log(line: str) -> None:
        print(f"{time.perf_counter() - start:7.0f} s  {line}", flush=True)

    failures: dict[str, str] = {}
    for spec in specs:
        folder = cache / spec.name
        t0 = time.perf_counter()
        cached = is_ready(folder)
        log(f"{spec.name}: {'cached' if cached else 'building'} ({spec})")
        try:
            summary = make_dataset(spec, cache, log=log)
        except Exception as exc:  # noqa: BLE001 - recorded in STATUS.md; --keep-going decides
            failures[spec.name] = mark_failed(folder, exc)
            log(f"{spec.name}: FAILED {failures[spec.name]}")
            write_status(cache, failures)
            if not args.keep_going:
                return 1
            continue
        sizes = ", ".join(f"{n}->{k}" for n, k in sorted(summary["split_sizes"].items(), key=lambda kv: -kv[1]))
        log(f"{spec.name}: {'found' if cached else 'built'} in {time.perf_counter() - t0:.0f} s: "
            f"{summary['units']} units of {summary['neurons']} neurons, {summary['impure_units']} impure, "
            f"{summary['true_pairs']} true pairs, {summary['split_neurons']} neurons split ({sizes}), "
            f"{summary['undetected_neurons']} undetected")
        print(json.dumps({"dataset": spec.name, **summary}), flush=True)
        write_status(cache, failures)
    write_status(cache, failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
