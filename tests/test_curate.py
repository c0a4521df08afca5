"""When run starts the figures: before evidence only when they are drawn in worker processes."""

from spikemerge.curate import _draws_in_processes
from spikemerge.tools.render.groups import PARALLEL_MIN_GROUPS


def test_figures_start_before_evidence_only_in_worker_processes():
    assert _draws_in_processes("auto", PARALLEL_MIN_GROUPS)
    assert not _draws_in_processes("auto", PARALLEL_MIN_GROUPS - 1)  # drawn in this process: after evidence
    assert not _draws_in_processes(1, 10 * PARALLEL_MIN_GROUPS)  # a busy machine: one process


def test_run_with_figures_in_worker_processes_from_the_start(analyzer_folder, tmp_path, monkeypatch):
    """An idle machine: figures drawn in worker processes while evidence is computed (and the merge
    kernel compiled), then judged and applied; every figure and the merged analyzer are written,
    with the same verdicts as a run whose figures wait for the evidence."""
    import json

    from spikemerge import curate as C
    from spikemerge.cli import main
    from spikemerge.tools import workers
    from spikemerge.tools.render import groups as render_groups

    assert main(["run", str(analyzer_folder), "--out", str(tmp_path / "after"), "--apply", "--quiet"]) == 0
    monkeypatch.setattr(workers, "idle_cpus", lambda: 2)
    monkeypatch.setattr(render_groups, "PARALLEL_MIN_GROUPS", 1)
    started = []
    real = C._draws_in_processes
    monkeypatch.setattr(C, "_draws_in_processes", lambda *a: started.append(real(*a)) or started[-1])
    assert main(["run", str(analyzer_folder), "--out", str(tmp_path / "early"), "--apply", "--quiet"]) == 0
    assert started == [True]
    early, after = (json.loads((tmp_path / name / "curation.json").read_text()) for name in ("early", "after"))
    assert early["merges"] == after["merges"] and early["merges"]
    assert (tmp_path / "early" / "merged_analyzer").is_dir()
    images = sorted(p.name for p in (tmp_path / "early" / "images").glob("*.png"))
    assert images and images == sorted(p.name for p in (tmp_path / "after" / "images").glob("*.png"))
