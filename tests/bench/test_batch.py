"""spikemerge batch: many analyzers, local processes or Dask, one row each, resumable, failures isolated."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from spikemerge.bench.batch import BatchItem, BatchSettings, resolve_inputs, run_batch
from spikemerge.cli import main
from spikemerge.errors import SpikemergeError


def _rows(out: Path) -> dict[str, dict]:
    with open(out / "batch.csv", newline="") as handle:
        return {row["name"]: row for row in csv.DictReader(handle)}


@pytest.fixture
def two_analyzers(saved_truth_folder, tmp_path) -> list[Path]:
    folders = []
    for name in ("mouse1", "mouse2"):
        target = tmp_path / "sorts" / name / "analyzer"
        shutil.copytree(saved_truth_folder / "analyzer", target)
        folders.append(target)
    return folders


def test_inputs_from_folders_globs_and_a_manifest(two_analyzers, tmp_path):
    manifest = tmp_path / "sessions.csv"
    manifest.write_text("path,name\nsorts/mouse1/analyzer,m1\nsorts/mouse2/analyzer,\n")
    assert resolve_inputs([str(manifest)]) == [BatchItem("m1", str(two_analyzers[0])),
                                                BatchItem("analyzer", str(two_analyzers[1]))]
    with pytest.raises(SpikemergeError, match="both named 'analyzer'"):
        resolve_inputs([str(tmp_path / "sorts" / "*" / "analyzer")])
    with pytest.raises(SpikemergeError, match="no folder matches"):
        resolve_inputs([str(tmp_path / "nothing*")])


@pytest.mark.slow
def test_dask_engine_curates_two_analyzers_and_isolates_a_failure(two_analyzers, tmp_path):
    pytest.importorskip("distributed")
    out = tmp_path / "batch"
    manifest = tmp_path / "sessions.csv"
    manifest.write_text(f"path,name\n{two_analyzers[0]},mouse1\n{two_analyzers[1]},mouse2\n{tmp_path / 'missing'},ghost\n")
    code = main(["batch", str(manifest), "--out", str(out), "--engine", "dask", "--workers", "2", "--no-render",
                 "--quiet"])
    assert code == 1  # one analyzer failed; the others were curated
    rows = _rows(out)
    assert [rows[n]["status"] for n in ("mouse1", "mouse2", "ghost")] == ["ok", "ok", "error"]
    assert "no such folder" in rows["ghost"]["reason"] and "\n" not in rows["ghost"]["reason"]
    for name in ("mouse1", "mouse2"):
        for produced in ("decisions.csv", "curation.json", "run.json"):
            assert (out / name / produced).exists()
        run = json.loads((out / name / "run.json").read_text())
        assert int(rows[name]["merges"]) == run["counts"]["merge"] >= 1
        assert int(rows[name]["units_before"]) - int(rows[name]["units_after"]) >= int(rows[name]["merges"])
        assert float(rows[name]["wall_seconds"]) > 0


@pytest.mark.slow
def test_local_engine_resumes_skipping_finished_and_retrying_failed(two_analyzers, tmp_path):
    out = tmp_path / "batch"
    broken = tmp_path / "sorts" / "broken"
    shutil.copytree(two_analyzers[1], broken)
    shutil.rmtree(broken / "sorting")
    inputs = [str(two_analyzers[0]), str(broken)]
    first = run_batch(inputs, out, BatchSettings(render=False, apply=True), engine="local", workers=2, progress=False)
    assert [r["status"] for r in first] == ["ok", "error"]
    assert (out / "analyzer" / "merged_analyzer").is_dir()
    stamp = (out / "analyzer" / "run.json").stat().st_mtime_ns

    shutil.rmtree(broken)
    shutil.copytree(two_analyzers[1], broken)  # fixed: the retry curates it
    second = run_batch(inputs, out, BatchSettings(render=False, apply=True), engine="local", workers=2,
                       progress=False)
    assert [r["status"] for r in second] == ["ok", "ok"]
    assert (out / "analyzer" / "run.json").stat().st_mtime_ns == stamp  # finished one skipped
    assert float(second[0]["wall_seconds"]) == float(first[0]["wall_seconds"])
    assert (out / "broken" / "run.json").exists()


def test_batch_json_prints_one_validated_row_per_analyzer(two_analyzers, tmp_path, capsys):
    out = tmp_path / "batch_json"
    missing = tmp_path / "sorts" / "nowhere"
    code = main(["batch", str(two_analyzers[0]), str(missing), "--out", str(out), "--no-render", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 1  # one analyzer failed: a runtime error, and the other one is still curated
    assert summary["table"] == str((out / "batch.csv").resolve())
    rows = {r["name"]: r for r in summary["analyzers"]}
    assert rows["analyzer"]["status"] == "ok" and isinstance(rows["analyzer"]["units_before"], int)
    assert rows["nowhere"]["status"] == "error" and rows["nowhere"]["reason"] and rows["nowhere"]["merges"] is None
    assert set(_rows(out)) == {"analyzer", "nowhere"}


def test_batch_calibrate_puts_each_recordings_figures_in_its_row(two_analyzers, tmp_path):
    """A lab reads the calibration of every session in the table, not in each run.json."""
    out = tmp_path / "batch_calibrated"
    rows = run_batch([str(two_analyzers[0])], out, BatchSettings(render=False, calibrate=True), engine="local",
                     workers=1, progress=False)
    run = json.loads((out / "analyzer" / "run.json").read_text())["calibration"]
    row = _rows(out)["analyzer"]
    assert rows[0]["status"] == "ok"
    assert float(row["recovered_splits"]) == pytest.approx(run["recovered_fraction"], abs=1e-3)
    assert int(row["neighbours"]) == run["negatives"]["n"]
    assert int(row["neighbours_merged"]) == run["negatives"]["merged"]
    assert row["suggested_policy"] == (run["recommended_policy"] or "")
    # without --calibrate the cells stay empty
    plain = tmp_path / "batch_plain"
    run_batch([str(two_analyzers[1])], plain, BatchSettings(render=False), engine="local", workers=1, progress=False)
    assert {_rows(plain)["analyzer"][k] for k in ("recovered_splits", "neighbours", "suggested_policy")} == {""}


def test_bad_batch_arguments_are_usage_errors_before_any_curation(two_analyzers, tmp_path, capsys):
    out = tmp_path / "batch_bad"
    assert main(["batch", str(two_analyzers[0]), "--out", str(out), "--min-similarity", "1.5"]) == 2
    assert main(["batch", str(two_analyzers[0]), "--out", str(out), "--preset", "foo"]) == 2
    assert "--min-similarity must be in (0, 1]" in capsys.readouterr().err
    assert not out.exists()
