"""Sorter-made ground truth from SpikeInterface's own generators (no MEArec needed).

A recording with a known ground truth is sorted by one of SpikeInterface's internal sorters with its
final merge step switched off, and the truth comes from the ground-truth comparison
(``spikemerge.bench.sorted.build_truth``: a unit belongs to a neuron when >= 80 % of its spikes match it).
The dataset folder has the layout of the sorted bench (``analyzer/``, ``truth.json``, ``READY``).

    python scripts/make_si_sorted_bench.py drift --seed 1 --sorter spykingcircus2     # -> sidrift_sc2_s1
    python scripts/make_si_sorted_bench.py drift --seed 2 --sorter tridesclous2       # -> sidrift_tdc2_s2
    python scripts/make_si_sorted_bench.py burst --seed 1 --sorter spykingcircus2     # -> siburst_sc2_s1
    python scripts/make_si_sorted_bench.py drift --seed 9 --units 28 --drift-um 40 --period-s 200   # held-out variant

drift: ``generate_drifting_recording`` on a 32-channel two-column probe, 20 neurons, 300 s, zigzag
drift of +/-30 um with a 400 s period (``--drift-um``, ``--period-s`` change them, as held-out sets need;
truth.json's scenario keeps the values used). burst: SpikeInterface's templates and noise, 6 of 16 cells firing
bursts of 2-5 spikes 3-7 ms apart whose amplitude falls to 0.8x spike by spike. Needs the sorters'
dependencies (``pip install -e ".[bench]"``). Each build takes 5-20 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from probeinterface import generate_multi_columns_probe

from spikemerge.bench import sorted as sb
from spikemerge.bench.synthetic import save_gt_sorting


def probe_32():
    probe = generate_multi_columns_probe(num_columns=2, num_contact_per_column=16, xpitch=32, ypitch=25,
                                         contact_shapes="circle", contact_shape_params={"radius": 6})
    probe.set_device_channel_indices(np.arange(32))
    return probe


def drift_recording(seed: int, duration: float, num_units: int, drift_um: float = 60.0, period_s: float = 400.0):
    """Zigzag rigid drift of ``drift_um`` peak to peak (centred on 0) with period ``period_s``, from 20 s on."""
    from spikeinterface.generation import generate_drifting_recording

    _, drifting, gt = generate_drifting_recording(
        num_units=num_units, duration=duration, probe=probe_32(), seed=seed,
        generate_displacement_vector_kwargs={
            "displacement_sampling_frequency": 5.0, "drift_start_um": [0, drift_um / 2],
            "drift_stop_um": [0, -drift_um / 2],
            "drift_step_um": 1, "motion_list": [{"drift_mode": "zigzag", "non_rigid_gradient": None,
                                                 "t_start_drift": 20.0, "t_end_drift": None, "period_s": period_s}]},
        generate_sorting_kwargs={"firing_rates": (3.0, 10.0), "refractory_period_ms": 4.0},
        generate_noise_kwargs={"noise_levels": (6.0, 8.0), "spatial_decay": 25.0})
    scenario = {"name": "si_drift", "generator": "spikeinterface.generation.generate_drifting_recording",
                "seed": seed, "duration_s": duration, "num_units": num_units,
                "drift_um": drift_um, "period_s": period_s}
    return drifting, gt, scenario


def burst_recording(seed: int, duration: float, num_units: int, num_bursting: int = 6, decrement: float = 0.8):
    from spikeinterface.core import NumpySorting
    from spikeinterface.core.generate import InjectTemplatesRecording, generate_templates, generate_unit_locations
    from spikeinterface.generation import NoiseGeneratorRecording

    rng = np.random.default_rng(seed)
    fs, ms_before, ms_after = 30000.0, 1.5, 3.0
    probe = probe_32()
    chan = probe.contact_positions
    units_xyz = generate_unit_locations(num_units, chan, margin_um=10.0, minimum_z=5.0, maximum_z=40.0,
                                        minimum_distance=22.0, max_iteration=200, distance_strict=False, seed=seed)
    templates = generate_templates(chan, units_xyz, fs, ms_before=ms_before, ms_after=ms_after, seed=seed,
                                   unit_params=dict(alpha=(150.0, 450.0), spatial_decay=(15, 40)))
    nbefore, n_samples = int(ms_before * fs / 1000), int(duration * fs)
    samples, labels, factors = [], [], []
    for u in range(num_units):
        if u < num_bursting:  # bursts ~1.5 Hz of 2-5 spikes 3-7 ms apart, each spike `decrement` x the previous
            onsets = np.cumsum(rng.exponential(1 / 1.5, int(duration * 3)))
            for t0 in onsets[onsets < duration - 0.1]:
                n = int(rng.integers(2, 6))
                ts = t0 + np.concatenate([[0], np.cumsum(rng.uniform(0.003, 0.007, n - 1))])
                samples.extend((ts * fs).astype(np.int64)); labels.extend([u] * n)
                factors.extend(decrement ** np.arange(n))
            singles = np.cumsum(rng.exponential(1 / 2.0, int(duration * 4)))
            singles = singles[singles < duration - 0.1]
            samples.extend((singles * fs).astype(np.int64)); labels.extend([u] * singles.size)
            factors.extend([1.0] * singles.size)
        else:
            rate = rng.uniform(3.0, 9.0)
            ts = np.cumsum(rng.exponential(1 / rate, int(duration * rate * 2)) + 0.003)
            ts = ts[ts < duration - 0.1]
            samples.extend((ts * fs).astype(np.int64)); labels.extend([u] * ts.size)
            factors.extend(rng.normal(1.0, 0.05, ts.size))
    samples, labels, factors = np.asarray(samples), np.asarray(labels), np.asarray(factors, dtype="float32")
    keep = (samples > nbefore + 10) & (samples < n_samples - 200)
    samples, labels, factors = samples[keep], labels[keep], factors[keep]
    order = np.lexsort((samples, labels))  # one neuron never fires twice within 2 ms
    samples, labels, factors = samples[order], labels[order], factors[order]
    drop = np.concatenate([[False], (np.diff(samples) < int(0.002 * fs)) & (np.diff(labels) == 0)])
    samples, labels, factors = samples[~drop], labels[~drop], factors[~drop]
    order = np.lexsort((labels, samples))  # the spike vector's order, which amplitude_factor follows
    samples, labels, factors = samples[order], labels[order], factors[order]
    gt = NumpySorting.from_samples_and_labels([samples], [labels], fs, unit_ids=np.arange(num_units))
    noise = NoiseGeneratorRecording(num_channels=32, sampling_frequency=fs, durations=[duration], noise_levels=6.0,
                                    dtype="float32", seed=seed, strategy="on_the_fly")
    rec = InjectTemplatesRecording(gt, templates, nbefore=nbefore, amplitude_factor=factors, parent_recording=noise)
    rec.set_probe(probe, in_place=True)
    scenario = {"name": "si_burst", "generator": f"spikeinterface templates + bursts, amplitude x{decrement} per spike",
                "seed": seed, "duration_s": duration, "num_units": num_units,
                "bursting_units": list(range(num_bursting))}
    return rec, gt, scenario


def build(kind: str, seed: int, sorter: str, duration: float, num_units: int, cache: Path,
          **recording_kwargs) -> dict:
    folder = cache / f"si{kind}_{sb.SORTER_SHORT_NAMES[sorter]}_s{seed}"
    if sb.is_ready(folder):
        return sb.summarise_truth(sb.load_truth(folder))
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    t0 = time.perf_counter()
    recording, gt, scenario = (drift_recording if kind == "drift" else burst_recording)(seed, duration, num_units,
                                                                                             **recording_kwargs)
    recording = recording.save(folder=str(folder / "recording"), n_jobs=1, progress_bar=False)
    times = {"recording_s": time.perf_counter() - t0}
    start = time.perf_counter()
    sorting = sb.run_sorter_unmerged(recording, sorter, folder / "sorter_output", seed=seed, motion_correction=False)
    sorting = sorting.save(folder=str(folder / "sorting"))
    shutil.rmtree(folder / "sorter_output", ignore_errors=True)
    truth = sb.build_truth(gt, sorting)
    truth.update(sorter=sorter, sorter_params=sb.sorter_params(sorter, seed, motion_correction=False),
                 scenario=scenario, num_units=len(sorting.unit_ids), num_neurons=len(gt.unit_ids),
                 sampling_frequency=sorting.sampling_frequency, duration_s=duration, recording="recording",
                 final_merge="off", sort_seconds=round(time.perf_counter() - start, 1))
    times["sort_s"] = time.perf_counter() - start
    t0 = time.perf_counter()
    sb.build_analyzer(sorting, recording, folder / "analyzer")
    times["analyzer_s"] = time.perf_counter() - t0
    truth["build_seconds"] = {k: round(v, 1) for k, v in times.items()}  # STATUS.md's "build s" column
    save_gt_sorting(gt, folder / "gt_sorting.npz")
    sb.write_json(folder / "truth.json", truth)
    (folder / "READY").touch()
    return sb.summarise_truth(truth)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("kind", choices=("drift", "burst"), help="which recording")
    parser.add_argument("--seed", type=int, default=1, help="seed of the recording and the sorter")
    parser.add_argument("--sorter", choices=sb.SORTERS, default="spykingcircus2", help="internal sorter, merge off")
    parser.add_argument("--duration", type=float, default=None, help="seconds (default: 300 drift, 240 burst)")
    parser.add_argument("--units", type=int, default=None, help="neurons (default: 20 drift, 16 burst)")
    parser.add_argument("--drift-um", type=float, default=60.0, help="drift only: zigzag amplitude, peak to peak (um)")
    parser.add_argument("--period-s", type=float, default=400.0, help="drift only: zigzag period (s)")
    parser.add_argument("--cache", type=Path, default=None, help="datasets folder (default: the sorted bench's cache)")
    args = parser.parse_args(argv)
    duration = args.duration or (300.0 if args.kind == "drift" else 240.0)
    units = args.units or (20 if args.kind == "drift" else 16)
    cache = args.cache or sb.default_cache()
    extra = {"drift_um": args.drift_um, "period_s": args.period_s} if args.kind == "drift" else {}
    print(json.dumps(build(args.kind, args.seed, args.sorter, duration, units, cache, **extra), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
