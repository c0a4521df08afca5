"""Write-ahead apply manifest: a killed apply is still undone; manifest paths never leave the folder."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from spikemerge.errors import SpikemergeError
from spikemerge.tools.curation import MANIFEST_FILE, undo_last_apply

KILLED_APPLY = textwrap.dedent("""
    import os, sys
    from spikemerge.tools import curation as M
    from spikemerge.tools.analyzer.load import open_analyzer
    from spikemerge.tools.judges.base import Verdict

    analyzer = open_analyzer(sys.argv[1])
    units = [int(u) for u in sys.argv[3].split(",")]
    real_write = M.apply.write_curation

    def write_then_die(path, curation):
        real_write(path, curation)
        os._exit(9)  # SIGKILL-like: no cleanup, no except blocks, no manifest update

    M.apply.write_curation = write_then_die
    verdict = Verdict(group_id=1, unit_ids=units, decision="merge", confidence=0.9, merge_unit_ids=units,
                      reasoning="test", judge="hand")
    M.apply_merges(analyzer, M.plan_merges([verdict], analyzer.unit_ids), sys.argv[2], {"tool": "test"})
""")


def _true_group(folder: Path) -> list[int]:
    truth = json.loads((folder / "truth.json").read_text())
    by_neuron: dict = {}
    for unit, neuron in truth["neuron_of_unit"].items():
        by_neuron.setdefault(neuron, []).append(int(unit))
    return sorted(next(g for g in by_neuron.values() if len(g) == 2))


def test_apply_killed_after_writing_curation_is_seen_and_undone(analyzer_folder, saved_truth_folder, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "curation.json").write_text('{"earlier": true}')
    group = _true_group(saved_truth_folder)
    done = subprocess.run([sys.executable, "-c", KILLED_APPLY, str(analyzer_folder), str(out),
                           ",".join(map(str, group))], capture_output=True, text=True, timeout=300)
    assert done.returncode == 9, done.stderr[-2000:]
    entry = json.loads((out / MANIFEST_FILE).read_text())["applies"][-1]
    assert entry["status"] == "pending"  # written before anything else, never marked complete
    assert (out / "merged_analyzer").is_dir() and json.loads((out / "curation.json").read_text())["merges"]

    message = undo_last_apply(out)
    assert "interrupted" in message and "removed merged_analyzer" in message
    assert not (out / "merged_analyzer").exists()
    assert (out / "curation.json").read_text() == '{"earlier": true}'
    assert json.loads((out / MANIFEST_FILE).read_text())["applies"] == []
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_FILE, "curation.json"]


@pytest.mark.parametrize("field, value", [
    ("analyzer_folder", "../victim"),
    ("analyzer_folder", "/tmp"),
    ("previous_curation", "../victim/data.json"),
    ("staging", "sub/../../victim"),
    ("curation", "../victim/data.json"),
])
def test_undo_refuses_a_manifest_path_outside_the_output_folder(tmp_path, field, value):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "data.json").write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / "curation.json").write_text("{}")
    entry = {"status": "complete", "analyzer_folder": None, "curation": "curation.json", "previous_curation": None,
             "curation_sha256": None, field: value}
    (out / MANIFEST_FILE).write_text(json.dumps({"applies": [entry]}))
    with pytest.raises(SpikemergeError, match="nothing was removed") as err:
        undo_last_apply(out)
    assert "\n" not in str(err.value)
    assert (victim / "data.json").read_text() == "precious" and (out / "curation.json").exists()
    assert json.loads((out / MANIFEST_FILE).read_text())["applies"] == [entry]


def test_undo_refuses_a_symlink_leading_outside(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "merged_analyzer").symlink_to(victim, target_is_directory=True)
    entry = {"status": "complete", "analyzer_folder": "merged_analyzer", "curation": "curation.json"}
    (out / MANIFEST_FILE).write_text(json.dumps({"applies": [entry]}))
    with pytest.raises(SpikemergeError, match="outside"):
        undo_last_apply(out)
    assert victim.is_dir()
