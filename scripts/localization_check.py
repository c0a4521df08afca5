"""How well units are localized on built sorted-bench sets, against MEArec's somata.

    python scripts/localization_check.py ~/.cache/spikemerge/sorted_bench/burst_sc2_s432 ...

Per set: units whose ``unit_locations`` fit the view takes for failed (``view.implausible_locations``:
far from their peak channel, or resting on the probe plane beside the contacts), how many of those
sit at the fit's bound (1 µm from the probe plane), and on static sets (no drift, so a soma has one
place) how often the templates' centre of mass is nearer the soma than the fit. Then, pooled by
scenario and probe, how far apart two units of one neuron are localized (fitted, as the view reads
them, centre of mass) and how often they share their peak channel: the localization error the
judge's separation rules stand on. Also, per set: how far apart the fits of two halves of each unit's sampled spikes lie (random,
first and second half in time, smaller and larger spikes), which is the fit's own noise, not the bias
between units; and on drifting sets the registered motion against MEArec's drift vector. Pooled
separations are given for every location the evidence could read: SpikeInterface's monopolar
triangulation on peak-to-peak (the view's fit) and on energy, its grid convolution, and the centre of
mass. A development tool for built sets (it reads their analyzers and MEArec recordings).
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
from spikemerge.tools.analyzer import DEFAULT_VIEW_PARAMS, open_analyzer  # noqa: E402
from spikemerge.tools.analyzer.view import implausible_locations  # noqa: E402
from spikemerge.tools.evidence.pairs import EvidenceContext  # noqa: E402

APART_UM = 20.0
"""Two units of one neuron farther apart than this are counted as localized apart."""
PART_MIN_SPIKES = 40
"""A unit is halved for :func:`part_fit_offsets` when it has this many sampled spikes or more."""


def set_positions(folder: Path) -> dict:
    """One set's unit positions as the analyzer view reads them (fitted, checked, centre of mass, peak
    channel), the fits' distance from the probe plane, the truth and the probe."""
    import MEArec as mr

    from spikeinterface.postprocessing.localization_tools import compute_grid_convolution, compute_monopolar_triangulation

    view = EvidenceContext(open_analyzer(folder / "analyzer"))
    fitted3 = np.asarray(view.analyzer.get_extension("unit_locations").get_data(), dtype=float)
    truth = json.loads((folder / "truth.json").read_text())
    recording = mr.load_recordings(folder / "recording.h5", verbose=False)
    somata = np.asarray(recording.template_locations)
    drifting = bool(truth["scenario"]["drifting"])
    return {"ids": [str(u) for u in view.unit_ids], "fitted": fitted3[:, :2], "fitted3": fitted3,
            "contacts": view.channel_locations, "bound": fitted3[:, 2] <= DEFAULT_VIEW_PARAMS.location_plane_um,
            "checked": view.locations, "centre": view.centre_of_mass_locations, "peak": view.peak_channel_locations,
            "energy": compute_monopolar_triangulation(view.analyzer, feature="energy")[:, :2],
            "grid": compute_grid_convolution(view.analyzer)[:, :2],
            "truth": truth, "somata": somata[:, 1:3] if somata.ndim == 2 else None,  # MEArec: x off the probe
            "probe": truth["scenario"]["templates"]["probe"], "drifting": drifting,
            "parts": part_fit_offsets(view), "motion": motion_against_truth(view.motion, recording) if drifting else None}


def part_fit_offsets(view, min_spikes: int = PART_MIN_SPIKES, seed: int = 0) -> dict[str, np.ndarray]:
    """Per way of halving a unit's sampled spikes (at random, in time, by size), the distance between the
    monopolar fits (SpikeInterface's, as the view's locations) of the two halves' templates, for every
    unit with ``min_spikes`` sampled spikes or more."""
    from spikeinterface.core import Templates
    from spikeinterface.postprocessing.localization_tools import compute_monopolar_triangulation

    rng = np.random.default_rng(seed)
    halves: dict[str, list[np.ndarray]] = defaultdict(list)
    for unit_id in view.unit_ids:
        unit = view.unit(unit_id)
        waveforms = np.asarray(unit.waveforms, dtype=float)
        if len(waveforms) < min_spikes:
            continue
        size = np.ptp(waveforms, axis=1).max(axis=1)
        for kind, first in (("random", rng.random(len(waveforms)) < 0.5),
                            ("time", unit.waveform_times_s < np.median(unit.waveform_times_s)),
                            ("size", size < np.median(size))):
            for part in (first, ~first):
                dense = np.zeros((waveforms.shape[1], view.templates.shape[2]))
                dense[:, unit.channels] = waveforms[part].mean(axis=0)
                halves[kind].append(dense)
    offsets = {}
    for kind, dense in halves.items():
        templates = Templates(templates_array=np.stack(dense), sampling_frequency=view.fs,
                              nbefore=view.waveform_nbefore, probe=view.analyzer.get_probe(), is_in_uV=True)
        fits = compute_monopolar_triangulation(templates, peak_sign="neg", peak_mode="extremum")[:, :2]
        offsets[kind] = np.linalg.norm(fits[0::2] - fits[1::2], axis=1)
    return offsets


def motion_against_truth(motion, recording) -> tuple[float, float, float]:
    """``motion``'s range over MEArec's drift vector's range in the same time bins, their correlation
    (NaN for a motion without range), and the vector's range there (µm)."""
    drift = recording.drift_list[0]
    vector = np.asarray(drift["drift_vector_um"], dtype=float)
    centres = 0.5 * (motion.edges_s[1:] + motion.edges_s[:-1])
    true = np.interp(centres, np.arange(vector.size) / float(drift["drift_fs"]), vector)
    corr = float(np.corrcoef(true, motion.displacement_um)[0, 1]) if motion.range_um > 0 else float("nan")
    return float(motion.range_um / np.ptp(true)), corr, float(np.ptp(true))


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
    outside = DEFAULT_VIEW_PARAMS.location_max_outside_um
    pooled: dict[tuple[str, str], dict[str, list]] = defaultdict(lambda: defaultdict(list))
    nearer = [0, 0]
    for folder in args.datasets:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = set_positions(folder)
        off = implausible_locations(s["fitted3"], s["peak"], s["contacts"])
        line = (f"{folder.name}: {len(s['ids'])} units, {off.sum()} fitted implausibly (over {limit:.0f} µm from "
                f"their peak channel, or on the probe plane over {outside:.0f} µm outside the contacts)")
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
        line += "; halves' fits apart (median, 90th percentile µm): " + ", ".join(
            f"{kind} {np.median(d):.1f}, {np.percentile(d, 90):.1f}" for kind, d in s["parts"].items())
        if s["motion"] is not None:
            line += f"; registered motion {s['motion'][0]:.2f} times MEArec's drift, correlation {s['motion'][1]:.2f}"
        print(line)
        key = ("drifting" if s["drifting"] else "static", s["probe"])
        for a, b in s["truth"]["true_pairs"]:
            i, j = s["ids"].index(str(a)), s["ids"].index(str(b))
            for name, where in (("fitted", s["fitted"]), ("checked", s["checked"]), ("monopolar energy", s["energy"]),
                                ("grid convolution", s["grid"]), ("centre of mass", s["centre"]),
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
