"""Render the same candidate groups two ways and compare time and bytes per group.

(a) baseline: SpikeInterface widgets (crosscorrelograms, amplitudes, unit waveforms) and a
    pyplot PCA scatter, each saved as a 300 dpi JPEG;
(b) spikemerge: ``render_groups`` with the four default features (PNG, content-hash cache).

Extensions the widgets need (correlograms' numba kernel warm-up, principal_components) are
prepared before timing, so the baseline is timed on drawing and saving alone; ours includes
extracting the arrays and computing its correlograms and PCA.

Usage::

    python scripts/bench_render.py [--analyzer FOLDER] [--groups 24] [--workers 2]
    python scripts/bench_render.py --analyzer FOLDER --candidates --groups 0 --ours-only

Prints the baseline's median seconds and bytes per group, ours in steady state (figures laid
out), ours for the whole batch in one process and in worker processes (start-up included), and
the ratios; all in one run, since the machine is shared and noisy. Each figure is given as wall
time and as this process's CPU time, which other jobs on a shared machine disturb far less.

``--candidates`` renders the groups spikemerge's own candidate search finds (what ``spikemerge
run`` draws) instead of nearest-neighbour groups; ``--groups 0`` keeps them all. ``--ours-only``
skips the baseline (minutes per hundred groups) and times only spikemerge's batch, in one process:
for a large sort's CPU cost.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _near_groups(analyzer) -> list[list]:
    """Each unit with its nearest neighbour, then with its two nearest: what candidate search yields."""
    ids = list(analyzer.unit_ids)
    xy = analyzer.get_extension("unit_locations").get_data()[:, :2]
    groups: list[list] = []
    for size in (2, 3):
        for i in range(len(ids)):
            nearest = np.argsort(np.linalg.norm(xy - xy[i], axis=1), kind="stable")[:size]
            group = sorted((ids[j] for j in nearest), key=ids.index)
            if len(set(group)) == size and group not in groups:
                groups.append(group)
    return groups


def _groups(args) -> tuple[object, dict[int, list]]:
    """The analyzer and its groups: true merges, near-twin pairs, then nearest-neighbour groups."""
    if args.analyzer and args.candidates:
        from spikemerge.policies import get_policy
        from spikemerge.tools.analyzer.load import open_analyzer, prepare_analyzer
        from spikemerge.tools.candidates import find_candidates
        from spikemerge.tools.evidence.pairs import EvidenceContext

        analyzer, _ = prepare_analyzer(open_analyzer(args.analyzer), progress=False)
        view = EvidenceContext(analyzer)
        search = find_candidates(view, min_similarity=get_policy("balanced").min_similarity)
        candidates = [list(g.unit_ids) for g in search.groups]
        return view, {i: g for i, g in enumerate(candidates[: args.groups or None])}
    if args.analyzer:
        from spikeinterface.core import load_sorting_analyzer

        analyzer = load_sorting_analyzer(args.analyzer)
        candidates = _near_groups(analyzer)
    else:
        from spikemerge.bench.synthetic import ScenarioSpec, make_ground_truth

        truth = make_ground_truth(ScenarioSpec(num_neurons=12, duration_s=120.0, seed=3))
        analyzer = truth.analyzer
        candidates = [list(g) for g in truth.true_groups] + [list(p) for p in truth.twin_pairs]
        candidates += [g for g in _near_groups(analyzer) if g not in candidates]
    return analyzer, {i: list(g) for i, g in enumerate(candidates[: args.groups])}


def _baseline_group(analyzer, units: list, out: Path) -> int:
    """Draw one group with SpikeInterface widgets at 300 dpi JPEG; return bytes written."""
    import spikeinterface.widgets as sw

    paths = []
    w = sw.plot_crosscorrelograms(analyzer.sorting.select_units(units), window_ms=50.0, bin_ms=0.5,
                                  backend="matplotlib")
    paths.append(out / "ccg.jpg")
    w.figure.savefig(paths[-1], dpi=300)
    w = sw.plot_amplitudes(analyzer, unit_ids=units, plot_histograms=True, backend="matplotlib")
    paths.append(out / "amplitudes.jpg")
    w.figure.savefig(paths[-1], dpi=300)
    w = sw.plot_unit_waveforms(analyzer, unit_ids=units, backend="matplotlib")
    paths.append(out / "waveforms.jpg")
    w.figure.savefig(paths[-1], dpi=300)
    pc = analyzer.get_extension("principal_components")
    fig, ax = plt.subplots()
    for u in units:
        proj = pc.get_projections_one_unit(u, sparse=False)
        best = int(np.argmax(np.abs(proj[:, 0, :]).mean(axis=0)))
        ax.scatter(proj[:, 0, best], proj[:, 1, best], s=4, label=str(u))
    ax.legend()
    paths.append(out / "pca.jpg")
    fig.savefig(paths[-1], dpi=300)
    plt.close("all")
    return sum(p.stat().st_size for p in paths)


def _prepare_baseline(analyzer, groups: dict[int, list]) -> None:
    """Compute what the widgets read, outside the timed section."""
    from spikeinterface.postprocessing import compute_correlograms

    first = next(iter(groups.values()))
    compute_correlograms(analyzer.sorting.select_units(first), window_ms=50.0, bin_ms=0.5)  # numba warm-up
    if not analyzer.has_extension("principal_components"):
        analyzer.compute("principal_components", n_components=3, mode="by_channel_local")


def _fresh_process_run(groups: dict[int, list], folder: Path, n_workers: int, analyzer) -> tuple[float, float]:
    """Wall and CPU time of one ``render_groups`` call with no figure built or string rasterised yet
    in this process (the CPU time counts this process only: workers are forked from a server process)."""
    from spikemerge.tools.render import draw as render_draw
    from spikemerge.tools.render import style as render_style
    from spikemerge.tools.render.groups import render_groups

    render_draw._BUILT.clear()
    render_style._TEXT_MASKS.clear()
    start, cpu = time.perf_counter(), _cpu()
    render_groups(analyzer, groups, folder, n_workers=n_workers)
    return time.perf_counter() - start, _cpu() - cpu


def _cpu() -> float:
    return time.process_time()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--analyzer", help="a saved SortingAnalyzer folder (default: a synthetic one)")
    parser.add_argument("--groups", type=int, default=24, help="groups to render (default 24)")
    parser.add_argument("--workers", type=int, default=2, help="processes for the parallel run (default 2)")
    parser.add_argument("--candidates", action="store_true",
                        help="with --analyzer: spikemerge's candidate groups instead of nearest-neighbour groups")
    parser.add_argument("--ours-only", action="store_true", help="time only spikemerge's batch in one process")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    from spikemerge.tools.render.groups import render_group

    analyzer, groups = _groups(args)
    n = len(groups)
    print(f"host: {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.2f}")
    print(f"{n} groups, sizes {[len(g) for g in groups.values()]}")
    work = Path(tempfile.mkdtemp(prefix="bench_render_"))
    try:
        if args.ours_only:
            wall, cpu = _fresh_process_run(groups, work / "ours_serial", 1, analyzer)
            print(f"spikemerge, 1 process, whole batch: {wall:.2f} s wall, {cpu:.2f} s CPU = {cpu / n:.3f} s CPU/group "
                  f"(includes reading the units' waveforms and laying out each figure once); "
                  f"load average after {os.getloadavg()[0]:.2f}")
            return
        _prepare_baseline(analyzer, groups)
        base_t, base_c, base_b = [], [], []
        for gid, units in groups.items():
            folder = work / "baseline" / str(gid)
            folder.mkdir(parents=True)
            start, cpu = time.perf_counter(), time.process_time()
            base_b.append(_baseline_group(analyzer, units, folder))
            base_t.append(time.perf_counter() - start)
            base_c.append(time.process_time() - cpu)

        serial, serial_cpu = _fresh_process_run(groups, work / "ours_serial", 1, analyzer)
        parallel, _ = _fresh_process_run(groups, work / "ours_parallel", args.workers, analyzer)

        ours_t, ours_c, ours_b = [], [], []  # one group per call, figures already laid out: the steady state
        for gid, units in groups.items():
            start, cpu = time.perf_counter(), time.process_time()
            paths = render_group(analyzer, gid, units, work / "ours")
            ours_t.append(time.perf_counter() - start)
            ours_c.append(time.process_time() - cpu)
            ours_b.append(sum(p.stat().st_size for p in paths.values()))

        start = time.perf_counter()
        _fresh_process_run(groups, work / "ours", 1, analyzer)
        cached = time.perf_counter() - start
    finally:
        shutil.rmtree(work, ignore_errors=True)

    bt, bc, bb = statistics.median(base_t), statistics.median(base_c), statistics.median(base_b)
    ot, oc, ob = statistics.median(ours_t), statistics.median(ours_c), statistics.median(ours_b)
    print(f"baseline (SI widgets, 300 dpi JPEG), 1 process: median {bt:.3f} s/group ({bc:.3f} s CPU), "
          f"mean {statistics.mean(base_t):.3f}, {bb / 1e3:.0f} kB/group")
    print(f"spikemerge, 1 process, steady state:    median {ot:.3f} s/group ({oc:.3f} s CPU), {ob / 1e3:.0f} kB/group"
          f" -> time {ot / bt:.3f}x (CPU {oc / bc:.3f}x), bytes {ob / bb:.3f}x (target <= 0.2x both)")
    print(f"spikemerge, 1 process, whole batch:     {serial:.2f} s = {serial / n:.3f} s/group"
          f" -> {serial / n / bt:.3f}x (CPU {serial_cpu / n / bc:.3f}x; includes laying out each figure once)")
    print(f"spikemerge, {args.workers} processes, whole batch:   {parallel:.2f} s = {parallel / n:.3f} s/group"
          f" -> {parallel / n / bt:.3f}x (includes starting the workers)")
    print(f"all {n} groups again, cache hits: {cached:.3f} s; load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
