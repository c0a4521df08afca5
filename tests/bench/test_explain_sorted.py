"""scripts/explain_sorted.py: the verdicts of `spikemerge run` from cached evidence, and why pairs were missed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import load_script


@pytest.fixture
def sorted_style_dataset(saved_truth_folder, tmp_path):
    """The small analyzer as a sorted-bench dataset: analyzer/, a truth.json with unit_to_neuron, READY."""
    folder = tmp_path / "small_s0"
    shutil.copytree(saved_truth_folder / "analyzer", folder / "analyzer")
    saved = json.loads((saved_truth_folder / "truth.json").read_text())
    (folder / "truth.json").write_text(json.dumps({"unit_to_neuron": saved["neuron_of_unit"]}))
    (folder / "READY").touch()
    return folder


def test_scores_as_the_cli_does_and_explains_each_miss(sorted_style_dataset, tmp_path, capsys):
    script = load_script("explain_sorted")
    out = tmp_path / "out"
    subprocess.run([sys.executable, "-m", "spikemerge", "run", str(sorted_style_dataset / "analyzer"), "--out",
                    str(out), "--no-render"], check=True, capture_output=True)
    merges = [m["unit_ids"] for m in json.loads((out / "curation.json").read_text()).get("merges", [])]
    from spikemerge.bench.sorted import load_truth, score_sorted

    cli = score_sorted(merges, load_truth(sorted_style_dataset))

    cache = tmp_path / "cache"
    assert script.main([str(sorted_style_dataset), "--cache", str(cache), "-v"]) == 0
    lines = capsys.readouterr().out.splitlines()
    scored = json.loads(lines[-1])
    assert (scored["tp"], scored["fp"], scored["fn"]) == (cli["tp"], cli["fp"], cli["fn"])
    # one line per missed true pair and per wrong pair, each with its reason
    explained = [line for line in lines[:-1] if line.startswith(("  nocand", "  apart", "  WRONG"))]
    assert len(explained) == cli["fn"] + cli["fp"]
    assert list(cache.glob("*.pkl")), "the evidence is kept for the next call"

    # a parameter change is judged from the cached evidence: with a threshold no pair clears, nothing
    # merges and every true pair is explained
    assert script.main([str(sorted_style_dataset), "--cache", str(cache), "--set", "log_odds_offset=-100", "-v"]) == 0
    lines = capsys.readouterr().out.splitlines()
    scored = json.loads(lines[-1])
    assert scored["tp"] == 0 and scored["fn"] == cli["tp"] + cli["fn"] > 0
    assert sum(line.startswith(("  nocand", "  apart")) for line in lines) == scored["fn"]


def test_reliability_counts_every_judged_pair_and_merge(sorted_style_dataset, tmp_path, capsys):
    script = load_script("explain_sorted")
    cache = tmp_path / "cache"
    assert script.main([str(sorted_style_dataset), "--cache", str(cache), "--reliability"]) == 0
    lines = capsys.readouterr().out.splitlines()
    heads = {line.split(":")[0]: int(line.split(", ")[0].split(" n ")[1]) for line in lines if ": n " in line}
    assert set(heads) == {"pairs", "thin pairs", "powered pairs", "merge verdicts", "keep-apart verdicts"}
    assert heads["pairs"] == heads["thin pairs"] + heads["powered pairs"] > 0
    refit = next(line for line in lines if line.startswith("merge confidence refitted"))
    assert f"merge verdicts n {heads['merge verdicts']}," in refit  # each scored once, by a fit without its set
    apart = next(line for line in lines if line.startswith("keep-apart confidence refitted"))
    assert f"refitted on {heads['keep-apart verdicts']} verdicts" in apart
    tables = [line.split() for line in lines if line.startswith("  0.") or line.startswith("  1.")]
    assert sum(int(row[1]) for row in tables) == \
        heads["pairs"] + 2 * heads["merge verdicts"] + 2 * heads["keep-apart verdicts"]


def test_an_unknown_parameter_is_named(sorted_style_dataset, tmp_path):
    with pytest.raises(SystemExit, match="unknown JudgeParams field 'no_such_knob'"):
        load_script("explain_sorted").main([str(sorted_style_dataset), "--cache", str(tmp_path),
                                            "--set", "no_such_knob=1"])


def test_an_unfinished_set_is_named_before_any_work(sorted_style_dataset, tmp_path, capsys):
    failed = tmp_path / "burst_sc2_s9"  # what a build that failed leaves: no truth.json, no READY
    (failed / "analyzer").mkdir(parents=True)
    stopped = tmp_path / "burst_sc2_s10"  # a build stopped after truth.json, before READY
    shutil.copytree(sorted_style_dataset, stopped)
    (stopped / "READY").unlink()
    with pytest.raises(SystemExit) as stop:
        load_script("explain_sorted").main([str(sorted_style_dataset), str(failed), str(stopped),
                                            "--cache", str(tmp_path)])
    assert stop.value.code == 2
    err = capsys.readouterr().err.split("error:")[1]
    assert "burst_sc2_s9, burst_sc2_s10: not a whole dataset (no READY file" in err
    assert sorted_style_dataset.name not in err


def test_a_kept_record_judges_as_its_dataset_does(sorted_style_dataset, tmp_path, capsys):
    """--keep writes the set's truth, groups and evidence; judged from the file, the scores and every
    explained pair are the dataset's own (a new machine has the file, not the analyzer)."""
    script = load_script("explain_sorted")
    cache, kept = tmp_path / "cache", tmp_path / "kept"
    assert script.main([str(sorted_style_dataset), "--cache", str(cache), "-v"]) == 0
    from_folder = capsys.readouterr().out.splitlines()
    assert script.main([str(sorted_style_dataset), "--cache", str(cache), "--keep", str(kept)]) == 0
    path = kept / "small_s0.json.xz"
    assert capsys.readouterr().out.split() == [str(path)]
    first = path.read_bytes()
    assert script.main([str(sorted_style_dataset), "--cache", str(cache), "--keep", str(kept)]) == 0
    assert path.read_bytes() == first, "same record, same bytes: a commit shows only real changes"
    capsys.readouterr()

    shutil.rmtree(sorted_style_dataset)
    assert script.main([str(path), "--cache", str(tmp_path / "empty"), "-v"]) == 0
    assert capsys.readouterr().out.splitlines() == from_folder
    assert not (tmp_path / "empty").exists(), "nothing recomputed"
    assert script.main([str(path), "--reliability"]) == 0
    assert "merge verdicts: n" in capsys.readouterr().out


def test_a_kept_record_holds_when_each_unit_fires(sorted_style_dataset, tmp_path):
    """The record counts every unit's spikes per bin over the whole recording, and keeps them."""
    from spikeinterface.core import load_sorting_analyzer

    script = load_script("explain_sorted")
    record = script.load_set(sorted_style_dataset, tmp_path / "cache")
    sorting = load_sorting_analyzer(sorted_style_dataset / "analyzer", load_extensions=False).sorting
    presence = record["presence"]
    assert presence["bin_s"] == script.PRESENCE_BIN_S
    assert len(presence["counts"][0][1]) == int(np.ceil(presence["duration_s"] / presence["bin_s"]))
    assert {u: sum(c) for u, c in presence["counts"]} == {u: sorting.get_unit_spike_train(u).size
                                                          for u in sorting.unit_ids}
    kept = script.read_kept(script.write_kept(record, tmp_path / "kept"))
    assert kept["presence"] == json.loads(json.dumps(presence))


def test_a_kept_record_of_a_held_out_set_is_refused_until_its_batch_is_scored(tmp_path, capsys, monkeypatch):
    script = load_script("explain_sorted")
    registry = tmp_path / "batches.toml"
    registry.write_text('[[batch]]\nseeds = [901, 902]\n\n[batch.drift]\nlabel = "drift"\nset = {}\n')
    monkeypatch.setattr(script, "HELD_OUT_REGISTRY", registry)
    path = tmp_path / "drift_sc2_s901.json.xz"
    path.write_bytes(b"")
    with pytest.raises(SystemExit) as stop:
        script.main([str(path), "--cache", str(tmp_path)])
    assert stop.value.code == 2 and "held out and not scored yet" in capsys.readouterr().err
    registry.write_text(registry.read_text().replace("seeds = [901, 902]", 'seeds = [901, 902]\nscored = "v0"'))
    with pytest.raises(Exception) as unreadable:  # let through: the empty file is then read
        script.main([str(path), "--cache", str(tmp_path)])
    assert not isinstance(unreadable.value, SystemExit)


def test_batches_pool_each_scenario_of_a_batch_and_say_whether_it_meets_the_bar(tmp_path):
    script = load_script("explain_sorted")
    registry = tmp_path / "batches.toml"
    registry.write_text('[[batch]]\nseeds = [901, 902]\nscored = "v0"\n\n[batch.drift]\nlabel = "d"\nset = {}\n\n'
                        '[[batch]]\nseeds = [903, 904]\nscored = "v0"\n\n[batch.drift]\nlabel = "d"\nset = {}\n')

    def result(tp: int, fp: int, fn: int, wrong: int = 0) -> dict:
        return {"tp": tp, "fp": fp, "fn": fn, "wrong_merges": wrong}

    results = [("drift_sc2_s901", result(9, 0, 1)), ("drift_tdc2_s902", result(10, 0, 0)),
               ("burst_sc2_s901", result(5, 0, 0)),
               ("drift_sc2_s903", result(10, 1, 0, wrong=1)), ("drift_sc2_s999", result(0, 0, 50))]
    lines = script.batch_lines(results, registry)
    # pooled over the batch's sets (19 of 20 found, none wrong: F1 0.974), per scenario; a set of no batch is left out
    assert lines == ["901-902: burst 1.000 (0, 1 sets), drift 0.974 (0, 2 sets): met",
                     "903-904: drift 0.952 (1, 1 sets): missed"]


def test_records_of_an_older_evidence_code_say_so_once_per_code(tmp_path, capsys, monkeypatch):
    """A thousand kept records come from a handful of evidence codes: one line per older code, none
    for records of today's."""
    import lzma

    script = load_script("explain_sorted")
    monkeypatch.setattr(script, "_OLD_CODE_SEEN", set())
    empty = {"truth": {"unit_to_neuron": {}}, "groups": [], "evidence": [], "outside": []}
    for name, code in [("a_s1", "old1"), ("a_s2", "old1"), ("a_s3", "old2"), ("a_s4", script._code_key())]:
        payload = {"name": name, "code_key": code, **empty}
        (tmp_path / f"{name}{script.KEPT_SUFFIX}").write_bytes(lzma.compress(json.dumps(payload).encode()))
        assert script.read_kept(tmp_path / f"{name}{script.KEPT_SUFFIX}")["name"] == name
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" holds evidence of code ")[1].split(",")[0] for line in lines] == ["old1", "old2"]
