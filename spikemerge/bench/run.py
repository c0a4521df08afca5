"""Run judges and SpikeInterface presets on synthetic ground truth and score them side by side.

Per scenario and seed the same analyzer is curated by spikemerge's judge and by each of
SpikeInterface's merge presets, and every result is scored twice: pair-level (which pairs of
units were merged, :func:`~spikemerge.bench.scoring.score_merges`) and unit-level, the counts
SpikeInterface's merge benchmark reports (well detected, redundant, overmerged, ...) from
``compare_sorter_to_ground_truth`` between the undamaged sorting and the curated one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from ..tools.judges.base import Judge
from ..tools.judges.metrics import MetricsJudge
from ..tools.session import CurationSession
from .scoring import score_merges, unit_counts
from .sorted import BENCH_SCENARIOS
from .synthetic import (
    GroundTruth,
    ScenarioSpec,
    load_gt_sorting,
    make_ground_truth,
    save_ground_truth,
    save_gt_sorting,
)

_NO_DAMAGE = dict(num_random_splits_2=0, num_random_splits_3=0, num_time_splits=0, num_duplicates=0,
                  num_amplitude_splits=0)

SCENARIOS: dict[str, ScenarioSpec] = {
    "static": ScenarioSpec(drift=False),
    "drift": ScenarioSpec(drift=True),
    "random_splits": ScenarioSpec(**{**_NO_DAMAGE, "num_random_splits_2": 3, "num_random_splits_3": 2}),
    "time_splits": ScenarioSpec(drift=True, **{**_NO_DAMAGE, "num_time_splits": 4}),
    "amplitude": ScenarioSpec(**{**_NO_DAMAGE, "num_amplitude_splits": 4}),
    "duplicates": ScenarioSpec(**{**_NO_DAMAGE, "num_duplicates": 4}),
    "hard_negatives": ScenarioSpec(num_twin_pairs=5, **_NO_DAMAGE),
}
"""Scenario name -> spec (the seed and, in quick mode, the duration are set per run).

``static`` and ``drift`` mix every damage kind except amplitude splits (they are the demo's
datasets and must not change); each other scenario holds one kind only, beside two pairs of
near-twin distinct neurons (``hard_negatives``: five pairs and no damage at all).
"""

SCENARIO_HELP: dict[str, str] = {
    "static": "static probe; 2-/3-way random splits, median-time splits, duplicates, near twins",
    "drift": "zigzag drift of ±15 µm; the same damage as static",
    "random_splits": "three 2-way and two 3-way random splits (inject_some_split_units)",
    "time_splits": "four median-time splits under drift (split_sorting_by_times)",
    "amplitude": "four median-amplitude splits (split_sorting_by_amplitudes)",
    "duplicates": "four shifted duplicates (inject_some_duplicate_units)",
    "hard_negatives": "five pairs of near-identical distinct neurons a few µm apart; nothing to merge",
}

SI_PRESETS: tuple[str, ...] = ("x_contaminations", "similarity_correlograms", "temporal_splits", "slay",
                               "feature_neighbors")
QUICK_DURATION_S = 120.0
CENSOR_MS = 0.3
"""Spikes closer than this inside a merged unit are dropped (the duplicate copies), for every method alike."""

_LEGACY_FIELDS = frozenset({
    "drift", "num_neurons", "duration_s", "num_twin_pairs", "twin_distance_um", "num_random_splits_2",
    "num_random_splits_3", "num_time_splits", "num_duplicates", "firing_rates", "seed",
})
"""ScenarioSpec's fields before amplitude splits; newer fields enter the cache key only when set."""

Log = Callable[[str], None]


def scenario_spec(name: str, seed: int = 0, quick: bool = False) -> ScenarioSpec:
    """The spec of scenario ``name`` for ``seed``; ``quick`` shortens the recording to 120 s."""
    base = SCENARIOS[name]
    return replace(base, seed=seed, duration_s=QUICK_DURATION_S if quick else base.duration_s)


def dataset_key(spec: ScenarioSpec) -> str:
    """A short hash of the parameters; stable for specs that leave newer fields at their defaults."""
    defaults = asdict(ScenarioSpec())
    record = {k: v for k, v in asdict(spec).items() if k in _LEGACY_FIELDS or v != defaults[k]}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:12]


def add_spike_locations(analyzer) -> bool:
    """Compute ``spike_locations`` (needed by the ``feature_neighbors`` preset) when the recording is there.

    Returns
    -------
    bool
        Whether the analyzer has spike locations afterwards.
    """
    if analyzer.has_extension("spike_locations"):
        return True
    if not analyzer.has_recording():
        return False
    from threadpoolctl import threadpool_limits

    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        analyzer.compute("spike_locations", method="center_of_mass", n_jobs=1, progress_bar=False,
                         chunk_duration="1s")
    return True


def load_or_make(spec: ScenarioSpec, cache: Path | None, with_locations: bool = True) -> GroundTruth:
    """The ground truth of ``spec``, from ``cache`` when it was made before with the same parameters.

    A new dataset is written to a hidden staging folder and renamed into place when complete,
    so an interrupted run never leaves a half-written dataset that a rerun would trust. With
    ``with_locations`` a new dataset also stores spike locations (computed while its generated
    recording is still at hand), so ``feature_neighbors`` can run on the cached copy.
    """
    if cache is None:
        truth = make_ground_truth(spec)
        if with_locations:
            add_spike_locations(truth.analyzer)
        return truth
    from spikeinterface.core import load_sorting_analyzer

    cache = Path(cache)
    folder = cache / dataset_key(spec)
    if not (folder / "truth.json").exists():
        truth = make_ground_truth(spec)
        if with_locations:
            add_spike_locations(truth.analyzer)
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=cache))
        try:
            save_ground_truth(truth, staging)
            save_gt_sorting(truth.gt_sorting, staging / "gt_sorting.npz")
            try:
                os.replace(staging, folder)
            except OSError:
                if not (folder / "truth.json").exists():  # not a concurrent run that finished first
                    raise
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return truth
    record = json.loads((folder / "truth.json").read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analyzer = load_sorting_analyzer(folder / "analyzer").save_as(format="memory")
    gt_path = folder / "gt_sorting.npz"
    return GroundTruth(
        analyzer=analyzer, spec=spec,
        neuron_of_unit={int(k): v for k, v in record["neuron_of_unit"].items()},
        kinds={int(k): v for k, v in record["kinds"].items()},
        twin_pairs=[tuple(p) for p in record["twin_pairs"]],
        gt_sorting=load_gt_sorting(gt_path) if gt_path.exists() else None,
    )


def curated_sorting(sorting, groups: Sequence[Sequence[Any]]):
    """``sorting`` with ``groups`` merged (each keeps its first unit id; copies within 0.3 ms dropped)."""
    if not groups:
        return sorting
    from spikeinterface.core.sorting_tools import apply_merges_to_sorting

    groups = [list(g) for g in groups]
    return apply_merges_to_sorting(sorting, groups, new_unit_ids=[g[0] for g in groups], censor_ms=CENSOR_MS)


def score_result(truth: GroundTruth, groups: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """Pair-level scores and unit-level counts of merging ``groups`` in ``truth``'s sorting.

    Units a truth marks impure (``impure_units``: a sorter-made unit that is no single neuron)
    are left out of the pair-level score; the unit-level counts see the whole curated sorting.
    """
    groups = [[u.item() if hasattr(u, "item") else u for u in g] for g in groups]
    impure = set(getattr(truth, "impure_units", ()))
    scored = [[u for u in g if u not in impure] for g in groups] if impure else groups
    scores = score_merges([g for g in scored if len(g) > 1], truth.neuron_of_unit)
    sorting = truth.analyzer.sorting
    scores.update(unit_counts(truth.ground_truth_sorting(), curated_sorting(sorting, groups)))
    scores.update(merge_groups=len(groups), units_before=len(sorting.unit_ids),
                  units_after=len(sorting.unit_ids) - sum(len(g) - 1 for g in groups),
                  merged=[list(g) for g in groups])
    return scores


def _usage_delta(judge: Judge, calls_before: int) -> dict[str, Any] | None:
    """Calls, tokens and estimated cost of ``judge`` since it had made ``calls_before`` calls."""
    summary = getattr(judge, "usage_summary", None)
    if not callable(summary):
        return None
    usage = summary()
    records = usage.get("records", [])[calls_before:]
    costs = [r.get("cost_usd") for r in records]
    return {
        "model": usage.get("model"),
        "calls": len(records),
        "input_tokens": sum(int(r.get("input_tokens", 0)) for r in records),
        "output_tokens": sum(int(r.get("output_tokens", 0)) for r in records),
        "cost_usd": round(sum(costs), 6) if all(c is not None for c in costs) else None,
    }


def _calls_so_far(judge: Judge) -> int:
    summary = getattr(judge, "usage_summary", None)
    return len(summary().get("records", [])) if callable(summary) else 0


def run_judge(truth: GroundTruth, judge: Judge, out: Path, policy: str = "balanced") -> dict[str, Any]:
    """The whole offline pipeline on one dataset (candidates, judge, plan), scored.

    Returns pair-level scores, unit-level counts, wall time per stage (``stage_seconds``:
    load, find, render, judge) and, for a judge that reports it, its token usage and cost.
    """
    from threadpoolctl import threadpool_limits

    calls_before = _calls_so_far(judge)
    start = time.perf_counter()
    with threadpool_limits(1):
        session = CurationSession.from_analyzer(truth.analyzer, out, policy=policy, progress=False)
        session.find_candidates()
        session.judge_group(judge=judge)
        plan = session.plan_merges()
    seconds = time.perf_counter() - start
    result = score_result(truth, plan.groups)
    decisions = [v.decision for v in session.verdicts.values()]
    result.update(candidate_groups=len(session.groups), errors=decisions.count("error"), seconds=seconds,
                  stage_seconds={k: round(v, 3) for k, v in session.times.seconds.items()},
                  usage=_usage_delta(judge, calls_before))
    return result


def preset_extensions(presets: Sequence[str]) -> list[str]:
    """Every analyzer extension ``presets`` read, in SpikeInterface's order of first use."""
    from spikeinterface.curation.auto_merge import _compute_merge_presets, _required_extensions

    needed: list[str] = []
    for preset in presets:
        for step in _compute_merge_presets[preset]:
            for ext in _required_extensions.get(step, []):
                if ext not in needed:
                    needed.append(ext)
    return needed


def preset_blocker(analyzer, preset: str) -> str | None:
    """Why ``preset`` cannot run on ``analyzer`` (an extension it needs must come from the recording), or None."""
    from spikeinterface.core.sortinganalyzer import get_extension_class

    if analyzer.has_recording():
        return None
    missing = [ext for ext in preset_extensions([preset])
               if not analyzer.has_extension(ext) and get_extension_class(ext).need_recording]
    if missing:
        return (f"needs {', '.join(missing)}, which must be computed from the recording, and this analyzer has "
                "none (a dataset cached without them; clear the cache to regenerate)")
    return None


class PresetRunner:
    """SpikeInterface's presets with their default thresholds on one shared copy of an analyzer.

    The extensions the presets read are computed once on the copy (timed as the shared
    ``extensions`` stage); each preset then only runs its own steps. The analyzer the judge
    curates is never touched.
    """

    def __init__(self, truth: GroundTruth, presets: Sequence[str]):
        from threadpoolctl import threadpool_limits

        self.truth = truth
        self.skipped = {p: r for p in presets if (r := preset_blocker(truth.analyzer, p)) is not None}
        runnable = [p for p in presets if p not in self.skipped]
        start = time.perf_counter()
        self.analyzer = truth.analyzer.copy()
        self.extension_errors: dict[str, str] = {}
        with warnings.catch_warnings(), threadpool_limits(1):
            warnings.simplefilter("ignore")
            for ext in preset_extensions(runnable):
                if self.analyzer.has_extension(ext):
                    continue
                try:
                    if ext == "templates" and not self.analyzer.has_extension("random_spikes"):
                        self.analyzer.compute(["random_spikes", "templates"])
                    else:
                        self.analyzer.compute(ext, n_jobs=1, progress_bar=False)
                except Exception as exc:  # noqa: BLE001 - reported per preset, the bench goes on
                    self.extension_errors[ext] = f"{type(exc).__name__}: {exc}"
        self.extensions_s = time.perf_counter() - start

    def run(self, preset: str) -> dict[str, Any]:
        """One preset's merge groups, scored; ``status`` is ``ok``, ``skipped`` or ``error``."""
        from spikeinterface.curation import compute_merge_unit_groups
        from threadpoolctl import threadpool_limits

        if preset in self.skipped:
            return {"status": "skipped", "reason": self.skipped[preset]}
        broken = [e for e in preset_extensions([preset]) if e in self.extension_errors]
        if broken:
            return {"status": "error", "reason": f"extension {broken[0]}: {self.extension_errors[broken[0]]}"}
        start = time.perf_counter()
        try:
            with warnings.catch_warnings(), threadpool_limits(1):
                warnings.simplefilter("ignore")
                groups = compute_merge_unit_groups(self.analyzer, preset=preset, resolve_graph=True,
                                                   compute_needed_extensions=False, force_copy=False)
        except Exception as exc:  # noqa: BLE001 - one preset failing must not end the bench
            return {"status": "error", "reason": f"{type(exc).__name__}: {exc}"}
        seconds = time.perf_counter() - start
        result = score_result(self.truth, groups)
        result.update(status="ok", seconds=seconds,
                      stage_seconds={"extensions (shared)": round(self.extensions_s, 3), "merge_groups": round(seconds, 3)})
        return result


def run_preset(truth: GroundTruth, preset: str) -> dict[str, Any]:
    """SpikeInterface's own preset, with its default thresholds, on a copy of the same analyzer."""
    return PresetRunner(truth, [preset]).run(preset)


def _sorted_dataset(scenario: str, seed: int, sorted_cache: Path | None, log: Log):
    """A sorted-bench dataset for the bench loop: (truth, row base, whether it was cached)."""
    from .sorted import dataset_spec, default_cache, is_ready, sorted_ground_truth

    cache = Path(sorted_cache) if sorted_cache is not None else default_cache()
    spec = dataset_spec(*BENCH_SCENARIOS[scenario], seed)
    cached = is_ready(cache / spec.name)
    log(f"{scenario} seed {seed}: {'loading' if cached else 'building (MEArec + sorter)'} dataset {spec.name}")
    truth = sorted_ground_truth(scenario, seed, cache, log=log)
    base = {"scenario": scenario, "seed": seed, "dataset": spec.name, "neurons": truth.truth.get("num_neurons"),
            "true_groups": len(truth.true_groups), "impure_units": len(truth.impure_units)}
    return truth, base, cached


def run_bench(
    scenarios: Sequence[str] = ("static", "drift"),
    seeds: Sequence[int] = (0, 1, 2),
    judge: Judge | None = None,
    presets: Sequence[str] = SI_PRESETS,
    cache: Path | None = None,
    out: Path | None = None,
    quick: bool = False,
    log: Log | None = None,
    policy: str = "balanced",
    sorted_cache: Path | None = None,
) -> list[dict[str, Any]]:
    """Score ``judge`` (default: metrics) and ``presets`` on every scenario and seed.

    Scenarios named in :data:`~spikemerge.bench.sorted.BENCH_SCENARIOS` (``sorted_drift``,
    ``sorted_burst``, ...) are over-splits made by a real sorter: their datasets are read from
    ``sorted_cache`` (default ``$SPIKEMERGE_CACHE`` or ``~/.cache/spikemerge/sorted_bench``) and
    built there when missing, which needs the ``[bench]`` extra and minutes per dataset.

    Parameters
    ----------
    scenarios : sequence of str
        Names from :data:`SCENARIOS`.
    seeds : sequence of int
        One dataset per scenario and seed.
    judge : Judge, optional
        The judge to measure (default :class:`MetricsJudge`).
    presets : sequence of str
        SpikeInterface merge presets run on the same analyzers.
    cache : Path, optional
        Dataset cache folder (datasets are keyed by their parameters).
    out : Path, optional
        Where each curation session writes its files (default: a temporary folder).
    quick : bool
        120 s recordings instead of the scenario's duration.
    log : callable, optional
        Called with one line of progress per step.
    policy : str
        The judge's policy (conservative, balanced, aggressive).

    Returns
    -------
    list of dict
        One row per scenario, seed and method (``none``: nothing merged; ``spikemerge/<judge>``;
        ``si/<preset>``) with ``status``, pair-level scores, unit-level counts, seconds and usage.
    """
    unknown = [s for s in scenarios if s not in SCENARIOS and s not in BENCH_SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenario(s) {unknown}: use {', '.join([*SCENARIOS, *BENCH_SCENARIOS])}")
    judge = judge or MetricsJudge()
    log = log or (lambda line: None)
    rows: list[dict[str, Any]] = []
    work = Path(out or tempfile.mkdtemp(prefix="spikemerge-bench-"))
    for scenario in scenarios:
        for seed in seeds:
            t0 = time.perf_counter()
            if scenario in BENCH_SCENARIOS:
                truth, base, cached = _sorted_dataset(scenario, seed, sorted_cache, log)
            else:
                spec = scenario_spec(scenario, seed, quick)
                key = dataset_key(spec)
                cached = cache is not None and (Path(cache) / key / "truth.json").exists()
                log(f"{scenario} seed {seed}: {'loading' if cached else 'generating'} dataset {key}")
                truth = load_or_make(spec, cache)
                base = {"scenario": scenario, "seed": seed, "dataset": key, "neurons": spec.num_neurons,
                        "true_groups": len(truth.true_groups)}
            dataset_info = {"generate_s" if not cached else "load_s": round(time.perf_counter() - t0, 3),
                            "cached": cached}
            rows.append({**base, "method": "none", "kind": "baseline", "status": "ok", "seconds": 0.0,
                         **dataset_info, **score_result(truth, [])})
            log(f"{scenario} seed {seed}: judge {judge.name}")
            rows.append({**base, "method": f"spikemerge/{judge.name}", "kind": "judge", "status": "ok",
                         **run_judge(truth, judge, work / f"{scenario}_{seed}", policy=policy)})
            if presets:
                log(f"{scenario} seed {seed}: SpikeInterface presets {', '.join(presets)}")
                runner = PresetRunner(truth, presets)
                log(f"{scenario} seed {seed}: extensions the presets share computed in {runner.extensions_s:.1f} s")
                for preset in presets:
                    rows.append({**base, "method": f"si/{preset}", "kind": "preset", **runner.run(preset)})
    return rows
