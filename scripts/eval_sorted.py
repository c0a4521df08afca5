"""Score spikemerge and SpikeInterface's merge presets on one sorter-made dataset of the sorted bench.

    python scripts/eval_sorted.py /path/to/sorted_bench/sidrift_tdc2_s2 [--policy balanced] [--presets x_contaminations,slay]
    python scripts/eval_sorted.py DATASET --presets x_contaminations,slay --no-spikemerge   # the presets only

spikemerge runs as ``spikemerge run ANALYZER --out OUT --no-render`` (the offline metrics judge) in a
child process; each preset runs SpikeInterface's ``compute_merge_unit_groups`` on a copy. Every method
is scored the same way (``spikemerge.bench.sorted.score_sorted``: pair F1 over pairs of pure units, and
merged pairs of two distinct neurons), and one JSON line is printed per method. ``--no-spikemerge`` scores
the presets alone, so whoever builds held-out sets can record the presets' baseline without ever seeing
spikemerge's score on them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from spikemerge.bench.sorted import load_truth, score_sorted

PRESETS = ("x_contaminations", "similarity_correlograms", "temporal_splits", "slay")


def _line(dataset: Path, method: str, seconds: float, score: dict) -> str:
    kept = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in score.items() if not isinstance(v, list)}
    return json.dumps({"dataset": dataset.name, "method": method, "seconds": round(seconds, 1), **kept}, default=str)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("dataset", type=Path, help="a sorted-bench folder (analyzer/, truth.json)")
    parser.add_argument("--policy", default="balanced", help="spikemerge's policy")
    parser.add_argument("--presets", default=",".join(PRESETS), help="SpikeInterface presets, comma-separated")
    parser.add_argument("--no-spikemerge", action="store_true",
                        help="do not run spikemerge: score the presets only (held-out baselines)")
    args = parser.parse_args(argv)
    truth = load_truth(args.dataset)
    if not args.no_spikemerge:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out"
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "spikemerge", "run", str(args.dataset / "analyzer"), "--out",
                            str(out), "--no-render", "--policy", args.policy], check=True, stdout=subprocess.DEVNULL)
            merges = [m["unit_ids"] for m in json.loads((out / "curation.json").read_text()).get("merges", [])]
            print(_line(args.dataset, f"spikemerge ({args.policy})", time.perf_counter() - start,
                        score_sorted(merges, truth)), flush=True)
    from spikeinterface.core import load_sorting_analyzer
    from spikeinterface.curation import compute_merge_unit_groups

    analyzer = load_sorting_analyzer(args.dataset / "analyzer")
    for preset in [p for p in args.presets.split(",") if p]:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            groups = compute_merge_unit_groups(analyzer, preset=preset, resolve_graph=True,
                                               compute_needed_extensions=True, force_copy=True)
        print(_line(args.dataset, f"SI {preset}", time.perf_counter() - start,
                    score_sorted([list(g) for g in groups], truth)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
