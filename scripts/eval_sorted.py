"""Score spikemerge and SpikeInterface's merge presets on sorter-made datasets of the sorted bench.

    python scripts/eval_sorted.py /path/to/sorted_bench/sidrift_tdc2_s2 [--policy balanced] [--presets x_contaminations,slay]
    python scripts/eval_sorted.py DATASET --presets x_contaminations,slay --no-spikemerge   # the presets only
    python scripts/eval_sorted.py /path/to/heldout/*/ --presets ""   # several sets, then one pooled line

spikemerge runs as ``spikemerge run ANALYZER --out OUT --no-render`` (the offline metrics judge) in a
child process; each preset runs SpikeInterface's ``compute_merge_unit_groups`` on a copy. Every method
is scored the same way (``spikemerge.bench.sorted.score_sorted``: pair F1 over pairs of pure units, and
merged pairs of two distinct neurons), and one JSON line is printed per method. ``--no-spikemerge`` scores
the presets alone, so whoever builds held-out sets can record the presets' baseline without ever seeing
spikemerge's score on them. Given several datasets, a last line per method pools them (true pairs,
merged pairs and wrong merges summed over the sets, then precision, recall and F1 of the sums):
the figure that a few small sets' per-set F1 cannot give.
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

from spikemerge.bench.scoring import pool_scores
from spikemerge.bench.sorted import load_truth, score_sorted

PRESETS = ("x_contaminations", "similarity_correlograms", "temporal_splits", "slay")


def _line(dataset: str, method: str, seconds: float, score: dict) -> str:
    kept = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in score.items() if not isinstance(v, list)}
    return json.dumps({"dataset": dataset, "method": method, "seconds": round(seconds, 1), **kept}, default=str)


def score_dataset(dataset: Path, policy: str, presets: list[str], run_spikemerge: bool):
    """Yield (method, seconds, score) for spikemerge (unless told not to) and each preset on one dataset."""
    truth = load_truth(dataset)
    if run_spikemerge:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out"
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "spikemerge", "run", str(dataset / "analyzer"), "--out",
                            str(out), "--no-render", "--policy", policy], check=True, stdout=subprocess.DEVNULL)
            merges = [m["unit_ids"] for m in json.loads((out / "curation.json").read_text()).get("merges", [])]
            yield f"spikemerge ({policy})", time.perf_counter() - start, score_sorted(merges, truth)
    if not presets:
        return
    from spikeinterface.core import load_sorting_analyzer
    from spikeinterface.curation import compute_merge_unit_groups

    analyzer = load_sorting_analyzer(dataset / "analyzer")
    for preset in presets:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            groups = compute_merge_unit_groups(analyzer, preset=preset, resolve_graph=True,
                                               compute_needed_extensions=True, force_copy=True)
        yield f"SI {preset}", time.perf_counter() - start, score_sorted([list(g) for g in groups], truth)


def _locatable(dataset: Path) -> bool:
    """Whether ``feature_neighbors`` can run on ``dataset``: it stores spike locations, or the recording
    its truth.json names (``recording.h5`` for MEArec sets, a folder for SpikeInterface-made ones) is there."""
    if (dataset / "analyzer" / "extensions" / "spike_locations").is_dir():
        return True
    recording = load_truth(dataset).get("recording") if (dataset / "truth.json").exists() else None
    return bool(recording) and (dataset / recording).exists()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("datasets", type=Path, nargs="+", help="sorted-bench folders (analyzer/, truth.json)")
    parser.add_argument("--policy", default="balanced", help="spikemerge's policy")
    parser.add_argument("--presets", default=",".join(PRESETS), help="SpikeInterface presets, comma-separated")
    parser.add_argument("--no-spikemerge", action="store_true",
                        help="do not run spikemerge: score the presets only (held-out baselines)")
    args = parser.parse_args(argv)
    presets = [p for p in args.presets.split(",") if p]
    if "feature_neighbors" in presets:
        missing = [d.name for d in args.datasets if not _locatable(d)]
        if missing:  # found before any set is scored, so a run is never left half done
            parser.error(f"feature_neighbors needs each set's spike locations or its recording; without either: "
                         f"{', '.join(missing)} (rebuild the recording with the same seed and --set, or drop the preset)")
    per_method: dict[str, list[dict]] = {}
    seconds: dict[str, float] = {}
    for dataset in args.datasets:
        for method, took, score in score_dataset(dataset, args.policy, presets, not args.no_spikemerge):
            print(_line(dataset.name, method, took, score), flush=True)
            per_method.setdefault(method, []).append(score)
            seconds[method] = seconds.get(method, 0.0) + took
    if len(args.datasets) > 1:
        for method, scores in per_method.items():
            print(_line("pooled", method, seconds[method], pool_scores(scores)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
