import json

import pytest

from spikemerge.cli import main
from tests.helpers import folder_digest


def test_run_offline_writes_the_outputs(analyzer_folder, tmp_path, capsys):
    before = folder_digest(analyzer_folder)
    code = main(["run", str(analyzer_folder), "--out", str(tmp_path / "out"), "--no-render", "--apply", "--quiet"])
    assert code == 0
    out = tmp_path / "out"
    for name in ("decisions.csv", "curation.json", "run.json"):
        assert (out / name).exists(), name
    assert (out / "merged_analyzer").is_dir()
    assert json.loads((out / "run.json").read_text())["counts"]["merge"] >= 1
    assert folder_digest(analyzer_folder) == before
    assert "Verdicts" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["run", "/no/such/folder", "--out", "{tmp}/o"], "no such folder"),
    (["run", "{foreign}", "--out", "{tmp}/o"], "not a SortingAnalyzer folder"),
    (["run", "{analyzer}", "--out", "{tmp}/o", "--policy", "balanced", "--min-similarity", "3"], "min_similarity"),
    (["run", "{analyzer}", "--out", "{foreign}"], "not made by spikemerge"),
])
def test_bad_input_exits_non_zero_with_one_line(args, message, analyzer_folder, tmp_path, capsys):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "data.bin").write_bytes(b"\0")
    args = [a.format(tmp=tmp_path, analyzer=analyzer_folder, foreign=foreign) for a in args]
    code = main(args + ["--no-render", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and len(err.splitlines()) == 1
    assert (foreign / "data.bin").read_bytes() == b"\0"
