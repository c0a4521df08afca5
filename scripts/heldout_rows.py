"""Print a held-out scenario's table rows from ``eval_sorted.py`` output: ours beside the best preset.

    python scripts/eval_sorted.py H/drift_* --no-spikemerge --presets x_contaminations,... > presets.jsonl  # built
    python scripts/eval_sorted.py H/drift_* --presets "" > ours.jsonl                          # once, later
    python scripts/heldout_rows.py ours.jsonl presets.jsonl --label "MEArec drift 16 µm/min" --judge metrics-v28

Whoever builds a held-out batch records the presets' scores when the sets are built; spikemerge is
scored once, after the judge is final. This script only formats both files
(``spikemerge.bench.heldout``): one table row per set (true pairs, our F1 and wrong pairs, the preset
with the highest F1 on that set) and one pooled line (pair counts summed over the sets; the preset
whose pooled F1 is highest). ``heldout_batch.py score`` prints the same for every scenario of a batch,
and the batch's summary row.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spikemerge.bench.heldout import pooled_line, read_scenario, set_rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ours", type=Path, help="eval_sorted.py output with spikemerge's lines")
    parser.add_argument("presets", type=Path, help="eval_sorted.py --no-spikemerge output on the same sets")
    parser.add_argument("--label", required=True, help='what the sets are, e.g. "MEArec drift 16 µm/min"')
    parser.add_argument("--judge", default="spikemerge", help="the judge's name for the column header")
    args = parser.parse_args(argv)
    try:
        scores = read_scenario("sets", args.label, args.ours, args.presets)
    except ValueError as exc:
        parser.error(str(exc))
    print("\n".join(set_rows(scores, args.judge)))
    print()
    print("Pooled:", pooled_line(scores))
    return 0


if __name__ == "__main__":
    sys.exit(main())
