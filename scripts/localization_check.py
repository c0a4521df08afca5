"""How well units are localized on built sorted-bench sets, against MEArec's somata.

    python scripts/localization_check.py ~/.cache/spikemerge/sorted_bench/burst_sc2_s432 ...

Per set: units whose ``unit_locations`` fit lies farther than ``ViewParams.location_max_offset_um``
from their peak channel (a fit that ran off the probe), how many of those sit at the fit's bound
(1 µm from the probe plane), and on static sets (no drift, so a soma has one place) how often the
templates' centre of mass is nearer the soma than the fit. Then, pooled by scenario and probe, how
far apart two units of one neuron are localized (fitted, as the view reads them, centre of mass) and
how often they share their peak channel: the localization error the judge's separation rules stand
on. A development tool for built sets (it reads their analyzers and MEArec recordings).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from explain_sorted import HELD_OUT_REGISTRY  # noqa: E402

from spikemerge.bench.heldout import held_out_error  # noqa: E402
from spikemerge.tools.analyzer import DEFAULT_VIEW_PARAMS, AnalyzerView, open_analyzer  # noqa: E402

FIT_BOUND_UM = 1.01
"""Monopolar triangulation keeps a source at least 1 µm from the probe plane: a fit there is at its bound."""
APART_UM = 20.0
"""Two units of one neuron farther apart than this are counted as localized apart."""


def set_positions(folder: Path) -> dict:
    """One set's unit positions as the analyzer view reads them (fitted, checked, centre of mass, peak
    channel), the fits' distance from the probe plane, the truth and the probe."""
    import MEArec as mr

    view = AnalyzerView(open_analyzer(folder / "analyzer"))
    fitted3 = np.asarray(view.analyzer.get_extension("unit_locations").get_data(), dtype=float)
    truth = json.loads((folder / "truth.json").read_text())
    somata = np.asarray(mr.load_recordings(folder / "recording.h5", verbose=False).template_locations)
    return {"ids": [str(u) for u in view.unit_ids], "fitted": fitted3[:, :2], "bound": fitted3[:, 2] < FIT_BOUND_UM,
            "checked": view.locations, "centre": view.centre_of_mass_locations, "peak": view.peak_channel_locations,
            "truth": truth, "somata": somata[:, 1:3] if somata.ndim == 2 else None,  # MEArec: x off the probe
            "probe": truth["scenario"]["templates"]["probe"], "drifting": bool(truth["scenario"]["drifting"])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+", type=Path, help="built dataset folders")
    parser.add_argument("--peek-held-out", action="store_true", help="allow sets of a batch not scored yet")
    args = parser.parse_args(argv)
    if not args.peek_held_out and (refused := held_out_error(args.datasets, HELD_OUT_REGISTRY)):
        print(refused, file=sys.stderr)
        return 2
    if missing := [str(f) for f in args.datasets if not ((f / "analyzer").is_dir() and (f / "truth.json").is_file())]:
        print(f"not a built sorted-bench set (no analyzer/ and truth.json): {', '.join(missing)}", file=sys.stderr)
        return 2
    limit = DEFAULT_VIEW_PARAMS.location_max_offset_um
    pooled: dict[tuple[str, str], dict[str, list]] = defaultdict(lambda: defaultdict(list))
    nearer = [0, 0]
    for folder in args.datasets:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = set_positions(folder)
        off = ~(np.linalg.norm(s["fitted"] - s["peak"], axis=1) <= limit)
        line = f"{folder.name}: {len(s['ids'])} units, {off.sum()} fitted over {limit:.0f} µm from their peak channel"
        line += f" ({(off & s['bound']).sum()} at the fit's bound)"
        if not s["drifting"] and s["somata"] is not None:
            closer = 0
            for unit, neuron in s["truth"]["unit_to_neuron"].items():
                i = s["ids"].index(str(unit))
                if neuron is None or not off[i]:
                    continue
                soma = s["somata"][int(str(neuron).lstrip("#"))]
                closer += np.linalg.norm(s["centre"][i] - soma) < np.linalg.norm(s["fitted"][i] - soma)
                nearer[1] += 1
            nearer[0] += closer
            line += f"; centre of mass nearer the soma for {closer} of them"
        print(line)
        key = ("drifting" if s["drifting"] else "static", s["probe"])
        for a, b in s["truth"]["true_pairs"]:
            i, j = s["ids"].index(str(a)), s["ids"].index(str(b))
            for name, where in (("fitted", s["fitted"]), ("checked", s["checked"]), ("centre of mass", s["centre"]),
                                ("peak channel", s["peak"])):
                pooled[key][name].append(float(np.linalg.norm(where[i] - where[j])))
    if nearer[1]:
        print(f"static sets: centre of mass nearer the soma for {nearer[0]} of {nearer[1]} fits off the probe")
    for (kind, probe), by in sorted(pooled.items()):
        print(f"{kind}, {probe}: {len(by['fitted'])} same-neuron pairs; apart (median, 90th percentile, share over "
              f"{APART_UM:.0f} µm): " + "; ".join(
                  f"{name} {np.nanmedian(d):.1f}, {np.nanpercentile(d, 90):.1f}, {np.mean(np.asarray(d) > APART_UM):.2f}"
                  for name, d in by.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
