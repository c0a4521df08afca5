"""Print a held-out batch's README rows from ``eval_sorted.py`` output: ours beside the best preset.

    python scripts/eval_sorted.py H/drift_* --no-spikemerge --presets x_contaminations,... > presets.jsonl  # built
    python scripts/eval_sorted.py H/drift_* --presets "" > ours.jsonl                          # once, later
    python scripts/heldout_rows.py ours.jsonl presets.jsonl --label "MEArec drift 16 µm/min" --judge metrics-v28

Whoever builds a held-out batch records the presets' scores when the sets are built; spikemerge is
scored once, after the judge is final. This script only formats both files: one table row per set
(true pairs, our F1 and wrong pairs, the preset with the highest F1 on that set) and one pooled line
(pair counts summed over the sets; the preset whose pooled F1 is highest).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from spikemerge.bench.scoring import pool_scores


def read_lines(path: Path) -> list[dict]:
    """The per-set JSON lines of an ``eval_sorted.py`` output; its pooled lines (pooled again here, over
    the sets both files share) and other lines, e.g. warnings, are skipped."""
    rows = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("{"):
            row = json.loads(line)
            if row["dataset"] != "pooled":
                rows.append(row)
    return rows


def set_key(dataset: str) -> tuple[str, int]:
    """``drift_tdc2_s139`` -> ("tdc2", 139), the order of the README's tables."""
    match = re.fullmatch(r"[a-z]+_([a-z0-9]+)_s(\d+)", dataset)
    if not match:
        raise ValueError(f"not a sorted-bench dataset name: {dataset!r}")
    return match.group(1), int(match.group(2))


def best_preset(rows: list[dict]) -> dict | None:
    """The preset row with the highest F1 (fewer wrong pairs first on ties); None when every F1 is 0."""
    scored = [r for r in rows if r["f1"] > 0]
    return max(scored, key=lambda r: (r["f1"], -r["wrong_merges"])) if scored else None


def preset_cell(row: dict | None, zero_wrong: int) -> str:
    if row is None:
        return f"0.00 ({zero_wrong})"
    return f"{row['f1']:.2f} ({row['wrong_merges']}) `{row['method'].removeprefix('SI ')}`"


def table(ours: list[dict], presets: list[dict], label: str, judge: str) -> list[str]:
    per_set = {r["dataset"]: r for r in ours}
    header = ["held-out dataset (sorter, seed)", "true pairs", f"{judge} F1 (wrong)",
              "best SpikeInterface preset F1 (wrong)"]
    lines = ["| " + " | ".join(header) + " |", "|---|---|---|---|"]
    for name in sorted(per_set, key=set_key):
        sorter, seed = set_key(name)
        mine = per_set[name]
        theirs = [r for r in presets if r["dataset"] == name]
        zero_wrong = min((r["wrong_merges"] for r in theirs), default=0)
        best = preset_cell(best_preset(theirs), zero_wrong)
        lines.append(f"| {label} ({sorter}, {seed}) | {mine['true_pairs']} | "
                     f"**{mine['f1']:.2f}** ({mine['wrong_merges']}) | {best} |")
    return lines


def pooled_line(ours: list[dict], presets: list[dict]) -> str:
    mine = pool_scores(ours)
    sets = {r["dataset"] for r in ours}
    methods = sorted({r["method"] for r in presets})
    pooled = [{"method": m, **pool_scores([r for r in presets if r["method"] == m and r["dataset"] in sets])}
              for m in methods]
    theirs = best_preset(pooled)
    wrong = "none" if mine["wrong_merges"] == 0 else f"{mine['wrong_merges']} wrong"
    best = "no preset above 0" if theirs is None else (
        f"`{theirs['method'].removeprefix('SI ')}` {theirs['f1']:.2f} with {theirs['wrong_merges']}")
    return f"F1 {mine['f1']:.3f} (P {mine['precision']:.2f}, R {mine['recall']:.2f}, {wrong}; {best})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ours", type=Path, help="eval_sorted.py output with spikemerge's lines")
    parser.add_argument("presets", type=Path, help="eval_sorted.py --no-spikemerge output on the same sets")
    parser.add_argument("--label", required=True, help='what the sets are, e.g. "MEArec drift 16 µm/min"')
    parser.add_argument("--judge", default="spikemerge", help="the judge's name for the column header")
    args = parser.parse_args(argv)
    ours = [r for r in read_lines(args.ours) if r["method"].startswith("spikemerge")]
    presets = [r for r in read_lines(args.presets) if r["method"].startswith("SI ")]
    if not ours:
        parser.error(f"{args.ours} holds no spikemerge line: score the sets with eval_sorted.py --presets \"\"")
    print("\n".join(table(ours, presets, args.label, args.judge)))
    print()
    print("Pooled:", pooled_line(ours, presets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
