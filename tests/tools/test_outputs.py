"""Writing outputs: never half-written, normal permissions, never into a folder that is not ours."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

from spikemerge.errors import SpikemergeError
from spikemerge.tools import outputs
from spikemerge.tools.outputs import (
    OUTPUT_MARKER, append_jsonl, check_output_folder, claim_output_folder, read_jsonl, staged_folder, to_jsonable,
    write_json_atomic, write_text_atomic,
)


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "run.json"
    write_json_atomic(path, {"old": 1})

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(outputs.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_json_atomic(path, {"new": 2})
    assert json.loads(path.read_text()) == {"old": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


def test_atomic_files_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_text_atomic(tmp_path / "sub" / "report.html", "<p>é</p>")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's 0o600
    assert path.read_text(encoding="utf-8") == "<p>é</p>"


def test_only_durable_writes_are_fsynced(tmp_path, monkeypatch):
    synced = []
    real = outputs.os.fsync
    monkeypatch.setattr(outputs.os, "fsync", lambda fd: synced.append(fd) or real(fd))
    outputs.write_bytes_atomic(tmp_path / "figure.png", b"png", durable=False)  # figures: checked before reuse
    assert synced == [] and (tmp_path / "figure.png").read_bytes() == b"png"
    outputs.write_bytes_atomic(tmp_path / "run.json", b"{}")
    assert len(synced) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figure.png", "run.json"]


def test_json_values_from_numpy_paths_and_nan(tmp_path):
    data = {"a": np.int64(3), "b": np.array([1.5, 2.0]), "c": tmp_path, 4: (1, 2), "d": float("nan")}
    assert to_jsonable(data) == {"a": 3, "b": [1.5, 2.0], "c": str(tmp_path), "4": [1, 2], "d": None}
    write_json_atomic(tmp_path / "x.json", data)
    assert json.loads((tmp_path / "x.json").read_text())["d"] is None


def test_journal_keeps_every_finished_line_after_a_crash(tmp_path):
    path = tmp_path / "verdicts.jsonl"
    append_jsonl(path, {"n": 1})
    append_jsonl(path, {"n": np.float32(2.5)})
    with open(path, "a") as handle:
        handle.write('{"n": 3, "cut sho')  # the process died mid-line
    assert read_jsonl(path) == [{"n": 1}, {"n": 2.5}]
    assert read_jsonl(tmp_path / "absent.jsonl") == []


def test_staged_folder_appears_whole_or_not_at_all(tmp_path):
    final = tmp_path / "merged_analyzer"
    with pytest.raises(RuntimeError):
        with staged_folder(final) as staging:
            (staging / "part.bin").write_bytes(b"1")
            raise RuntimeError("crash while writing")
    assert list(tmp_path.iterdir()) == []
    with staged_folder(final) as staging:
        (staging / "part.bin").write_bytes(b"1")
    assert (final / "part.bin").read_bytes() == b"1" and len(list(tmp_path.iterdir())) == 1
    with pytest.raises(SpikemergeError, match="already exists"):
        with staged_folder(final):
            pass


def test_output_folder_checks_write_nothing_and_refuse_foreign_folders(tmp_path):
    new = tmp_path / "a" / "b"
    assert check_output_folder(new) == new and not (tmp_path / "a").exists()
    claim_output_folder(new)
    assert (new / OUTPUT_MARKER).exists()
    claim_output_folder(new)  # ours: accepted again
    foreign = tmp_path / "data"
    foreign.mkdir()
    (foreign / "keep.bin").write_bytes(b"\0")
    for bad, message in ((foreign, "not made by spikemerge"), (foreign / "keep.bin", "is a file"),
                         (foreign / "keep.bin" / "out", "below the file")):
        with pytest.raises(SpikemergeError, match=message):
            check_output_folder(bad)
        with pytest.raises(SpikemergeError, match=message):
            claim_output_folder(bad)
    assert sorted(p.name for p in foreign.iterdir()) == ["keep.bin"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert claim_output_folder(empty) == empty


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_output_folder_that_cannot_be_written_is_refused_first(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(SpikemergeError, match="cannot write"):
        check_output_folder(locked / "out")
