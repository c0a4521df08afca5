"""Run judges and SpikeInterface presets on synthetic ground truth and score them side by side."""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
import warnings
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Sequence

from ..tools.judge import Judge, MetricsJudge
from ..tools.session import CurationSession
from .scoring import score_merges
from .synthetic import GroundTruth, ScenarioSpec, make_ground_truth, save_ground_truth

SCENARIOS: dict[str, ScenarioSpec] = {
    "static": ScenarioSpec(drift=False),
    "drift": ScenarioSpec(drift=True),
}
SI_PRESETS = ("x_contaminations", "similarity_correlograms", "temporal_splits", "slay")


def dataset_key(spec: ScenarioSpec) -> str:
    return hashlib.sha256(json.dumps(asdict(spec), sort_keys=True).encode()).hexdigest()[:12]


def load_or_make(spec: ScenarioSpec, cache: Path | None) -> GroundTruth:
    """The ground truth of ``spec``, from ``cache`` when it was made before with the same parameters."""
    if cache is None:
        return make_ground_truth(spec)
    from spikeinterface.core import load_sorting_analyzer

    folder = Path(cache) / dataset_key(spec)
    if not (folder / "truth.json").exists():
        truth = make_ground_truth(spec)
        staging = Path(tempfile.mkdtemp(dir=Path(cache).mkdir(parents=True, exist_ok=True) or cache))
        save_ground_truth(truth, staging)
        staging.rename(folder)
        return truth
    record = json.loads((folder / "truth.json").read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analyzer = load_sorting_analyzer(folder / "analyzer").save_as(format="memory")
    return GroundTruth(
        analyzer=analyzer, spec=spec,
        neuron_of_unit={int(k): v for k, v in record["neuron_of_unit"].items()},
        kinds={int(k): v for k, v in record["kinds"].items()},
        twin_pairs=[tuple(p) for p in record["twin_pairs"]],
    )


def run_judge(truth: GroundTruth, judge: Judge, out: Path, policy: str = "balanced") -> dict[str, Any]:
    """The whole offline pipeline on one dataset: candidates, judge, plan; scored."""
    start = time.perf_counter()
    session = CurationSession.from_analyzer(truth.analyzer, out, policy=policy, progress=False)
    session.find_candidates()
    session.judge_group(judge=judge)
    plan = session.plan_merges()
    scores = score_merges(plan.groups, truth.neuron_of_unit)
    scores.update(groups=len(session.groups), seconds=time.perf_counter() - start,
                  stage_seconds=dict(session.times.seconds))
    return scores


def run_preset(truth: GroundTruth, preset: str) -> dict[str, Any]:
    """SpikeInterface's own preset, with its default thresholds, on the same analyzer."""
    from spikeinterface.curation import compute_merge_unit_groups

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        groups = compute_merge_unit_groups(truth.analyzer, preset=preset, resolve_graph=True,
                                           compute_needed_extensions=True, force_copy=True)
    groups = [[u.item() if hasattr(u, "item") else u for u in g] for g in groups]
    scores = score_merges(groups, truth.neuron_of_unit)
    scores.update(groups=len(groups), seconds=time.perf_counter() - start)
    return scores


def run_bench(
    scenarios: Sequence[str] = ("static", "drift"),
    seeds: Sequence[int] = (0, 1, 2),
    judge: Judge | None = None,
    presets: Sequence[str] = SI_PRESETS,
    cache: Path | None = None,
    out: Path | None = None,
    quick: bool = False,
) -> list[dict[str, Any]]:
    """Score ``judge`` (default: metrics) and ``presets`` on every scenario and seed."""
    judge = judge or MetricsJudge()
    rows = []
    work = Path(out or tempfile.mkdtemp(prefix="spikemerge-bench-"))
    for scenario in scenarios:
        base = SCENARIOS[scenario]
        for seed in seeds:
            spec = replace(base, seed=seed, duration_s=120.0 if quick else base.duration_s)
            t0 = time.perf_counter()
            truth = load_or_make(spec, cache)
            generate_s = time.perf_counter() - t0
            result = run_judge(truth, judge, work / f"{scenario}_{seed}")
            rows.append({"scenario": scenario, "seed": seed, "method": f"spikemerge/{judge.name}",
                         "generate_s": generate_s, **result})
            for preset in presets:
                rows.append({"scenario": scenario, "seed": seed, "method": f"si/{preset}", **run_preset(truth, preset)})
    return rows
