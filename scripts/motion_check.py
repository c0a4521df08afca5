"""The registered probe motion of drifting sorted-bench sets against MEArec's drift, and the hand-overs' gain.

    python scripts/motion_check.py DATASET...

Per set: the range the registration found (before the hand-overs size it), MEArec's drift vector's
range in the same time bins, their ratio and correlation, the drift hand-overs' gain
(``evidence.motion.handover_gain``: their median depth shift over the registered displacement) with
how many links moved enough to count, and the factor the motion was sized by
(``EvidenceParams.motion_handover_min_gain``, or ``motion_unsized_min_gain`` where the depth
profiles' size, shown, is under ``motion_unsized_below_scale`` times the offsets' course). MEArec's vector is the path of its shortest-drifting
cell (each cell drifts its own length), so a ratio near 1 is not the goal; a ratio far under it with
a gain of 2 or more is the registration missing the size. Needs the ``[bench]`` extra (MEArec) and the
sets' ``recording.h5``; refuses held-out sets not scored yet, as ``explain_sorted.py`` does.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from localization_check import motion_against_truth  # noqa: E402

from spikemerge.bench.heldout import held_out_error  # noqa: E402

HELD_OUT_REGISTRY = Path(__file__).with_name("heldout_batches.toml")


def check(folder: Path) -> str:
    """One set's line."""
    import MEArec as mr

    from spikemerge.tools.analyzer.load import open_analyzer
    from spikemerge.tools.evidence.pairs import EvidenceContext

    view = EvidenceContext(open_analyzer(folder / "analyzer"))
    motion = view.motion
    registered = motion.scaled(1.0 / motion.gain)
    ratio, corr, true_range = motion_against_truth(registered, mr.load_recordings(folder / "recording.h5", verbose=False))
    gain, used = view.handover_gain(registered)
    profiles = "" if motion.profile_scale is None else f" (the profiles' size x{motion.profile_scale:.1f} the course)"
    return (f"{folder.name}: registered {registered.range_um:.1f} µm{profiles}, MEArec's {true_range:.1f} µm (ratio "
            f"{ratio:.2f}, correlation {corr:.2f}); hand-over gain {gain:.2f} from {used} links; sized x{motion.gain:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("datasets", nargs="+", type=Path, help="built drifting dataset folders")
    parser.add_argument("--peek-held-out", action="store_true", help="allow sets of a batch not scored yet")
    args = parser.parse_args(argv)
    if not args.peek_held_out and (refused := held_out_error(args.datasets, HELD_OUT_REGISTRY)):
        print(refused, file=sys.stderr)
        return 2
    if missing := [str(f) for f in args.datasets if not ((f / "analyzer").is_dir() and (f / "recording.h5").is_file())]:
        print(f"not a built drifting set (no analyzer/ and recording.h5): {', '.join(missing)}", file=sys.stderr)
        return 2
    for folder in args.datasets:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            print(check(folder), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
