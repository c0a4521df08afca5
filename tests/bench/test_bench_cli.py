"""`spikemerge bench --quick` end to end on a tiny cached dataset, and the preset runner's edges."""

from __future__ import annotations

import json

import pytest

from spikemerge.bench import run as bench_run
from spikemerge.bench.run import PresetRunner, _usage_delta, preset_blocker
from spikemerge.bench.synthetic import GroundTruth
from spikemerge.cli import main

from .conftest import TINY_SPEC


@pytest.fixture
def tiny_scenario(monkeypatch):
    """A scenario named "tiny" whose quick spec is exactly the cached ``TINY_SPEC``."""
    monkeypatch.setitem(bench_run.SCENARIOS, "tiny", TINY_SPEC)
    monkeypatch.setattr(bench_run, "QUICK_DURATION_S", TINY_SPEC.duration_s)
    monkeypatch.setattr(bench_run, "make_ground_truth", lambda spec: pytest.fail("regenerated a cached dataset"))
    return "tiny"


@pytest.mark.slow
def test_quick_bench_writes_table_json_and_plot(tiny_cache, tiny_scenario, tmp_path, capsys):
    out = tmp_path / "bench"
    code = main(["bench", "--quick", "--scenarios", tiny_scenario, "--presets", "slay,feature_neighbors",
                 "--cache", str(tiny_cache), "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    for method in ("spikemerge/metrics", "si/slay", "si/feature_neighbors"):
        assert method in printed
    record = json.loads((out / "bench.json").read_text())
    rows = {r["method"]: r for r in record["rows"]}
    assert list(rows) == ["none", "spikemerge/metrics", "si/slay", "si/feature_neighbors"]
    assert all(r["status"] == "ok" for r in rows.values()), [r.get("reason") for r in rows.values()]
    baseline = rows["none"]
    assert (baseline["num_gt"], baseline["num_sorter"]) == (12, 19)
    assert baseline["recall"] == 0.0 and baseline["num_redundant"] > 0
    judged = rows["spikemerge/metrics"]
    for key in ("precision", "recall", "f1", "distinct_merges", "num_well_detected", "num_redundant",
                "num_overmerged", "num_false_positive", "seconds"):
        assert key in judged
    assert {"load", "find", "judge"} <= set(judged["stage_seconds"])
    assert judged["usage"] is None  # the metrics judge makes no model calls
    assert judged["num_sorter"] == judged["units_after"]
    assert "extensions (shared)" in rows["si/slay"]["stage_seconds"]
    assert record["summary"] and record["seeds"] == [0] and record["quick"] is True
    assert (out / "bench_f1.png").stat().st_size > 1000


def test_unknown_scenario_is_a_one_line_error(tmp_path, capsys):
    assert main(["bench", "--scenarios", "nope", "--out", str(tmp_path / "b")]) == 2
    assert "unknown scenario(s) nope" in capsys.readouterr().err


@pytest.mark.parametrize("seeds", ["1,x", "", " , "])
def test_bad_seeds_are_refused_before_anything_is_written(seeds, tmp_path, capsys):
    """One check (bench.cli.parse_seeds) for the CLI's early refusal and bench_main: "1,x" passed the
    first and failed the second once."""
    out = tmp_path / "b"
    assert main(["bench", "--seeds", seeds, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "seed" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.slow
def test_a_sorted_bench_scenario_runs_from_the_command_line(small_truth, saved_truth_folder, tmp_path, monkeypatch,
                                                            capsys):
    """``spikemerge bench --scenarios sorted_burst`` reads the sorted-bench dataset of that scenario and seed
    from ``$SPIKEMERGE_CACHE`` (here the small analyzer, laid out as make_sorted_bench.py leaves one)."""
    import shutil

    from spikemerge.bench.sorted import build_truth, write_json
    from spikemerge.bench.synthetic import save_gt_sorting

    cache = tmp_path / "sorted"
    folder = cache / "burst_tdc2_s1"
    shutil.copytree(saved_truth_folder / "analyzer", folder / "analyzer")
    gt = small_truth.ground_truth_sorting()
    write_json(folder / "truth.json", {**build_truth(gt, small_truth.analyzer.sorting),
                                       "num_neurons": len(gt.unit_ids)})
    save_gt_sorting(gt, folder / "gt_sorting.npz")
    (folder / "READY").touch()
    monkeypatch.setenv("SPIKEMERGE_CACHE", str(cache))
    out = tmp_path / "bench"
    assert main(["bench", "--scenarios", "sorted_burst", "--seeds", "1", "--presets", "", "--out", str(out)]) == 0
    rows = {r["method"]: r for r in json.loads((out / "bench.json").read_text())["rows"]}
    judged = rows["spikemerge/metrics"]
    assert judged["status"] == "ok" and judged["dataset"] == "burst_tdc2_s1" and 0.0 <= judged["f1"] <= 1.0
    assert rows["none"]["recall"] == 0.0


@pytest.mark.slow
def test_feature_neighbors_is_skipped_without_locations_or_recording(tiny_truth):
    analyzer = tiny_truth.analyzer.copy()
    analyzer.delete_extension("spike_locations")
    assert not analyzer.has_recording()
    truth = GroundTruth(analyzer=analyzer, spec=tiny_truth.spec, neuron_of_unit=tiny_truth.neuron_of_unit,
                        kinds=tiny_truth.kinds, twin_pairs=tiny_truth.twin_pairs)
    assert "spike_locations" in preset_blocker(analyzer, "feature_neighbors")
    assert preset_blocker(analyzer, "slay") is None
    result = PresetRunner(truth, ["feature_neighbors"]).run("feature_neighbors")
    assert result["status"] == "skipped" and "recording" in result["reason"]


@pytest.mark.slow
def test_presets_never_touch_the_judges_analyzer(tiny_truth):
    before = set(tiny_truth.analyzer.get_loaded_extension_names())
    PresetRunner(tiny_truth, ["slay"]).run("slay")
    assert set(tiny_truth.analyzer.get_loaded_extension_names()) == before


class _PricedJudge:
    """Stands in for a VLM judge: usage accumulates across datasets."""

    def __init__(self, records):
        self.records = records

    def usage_summary(self):
        return {"model": "openai:gpt-4o", "records": self.records}


def test_usage_is_counted_per_dataset():
    judge = _PricedJudge([{"input_tokens": 100, "output_tokens": 10, "cost_usd": 0.5}])
    judge.records.append({"input_tokens": 7, "output_tokens": 3, "cost_usd": 0.25})
    usage = _usage_delta(judge, calls_before=1)
    assert usage == {"model": "openai:gpt-4o", "calls": 1, "input_tokens": 7, "output_tokens": 3, "cost_usd": 0.25}
    judge.records.append({"input_tokens": 1, "output_tokens": 1, "cost_usd": None})
    assert _usage_delta(judge, calls_before=1)["cost_usd"] is None  # an unknown price is not $0
    assert _usage_delta(object(), 0) is None


def test_the_help_names_every_sorted_bench_scenario(capsys):
    from spikemerge.bench.sorted import BENCH_SCENARIOS

    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(name in text for name in BENCH_SCENARIOS)
