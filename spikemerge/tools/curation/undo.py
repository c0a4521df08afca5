"""Undo: the write-ahead manifest of what each apply writes, and removing exactly that.

Write-ahead: an apply records its entry as ``pending`` (every path it is about to create,
replace or back up, and the hash of the ``curation.json`` it will write) *before* it writes
anything, and marks it ``complete`` at the end. A process killed anywhere in between leaves a
pending entry, so ``undo`` always sees what may have been written and removes it.

Confinement: the manifest is a file in a folder others may share or edit. Every path it names
is checked to be a plain relative path inside the output folder before anything is deleted;
one bad path refuses the whole undo, with nothing touched.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path, PurePosixPath
from typing import Any

from ...errors import SpikemergeError, one_line
from ..outputs import write_json_atomic
from ..schemas import UndoManifest
from .format import CURATION_FILE

MANIFEST_FILE = ".spikemerge-merges.json"
UNDO_FOLDER = ".spikemerge-undo"
PENDING = "pending"
COMPLETE = "complete"
PATH_FIELDS = ("analyzer_folder", "staging", "replaced", "curation", "previous_curation")
"""Entry fields that name a path (relative to the output folder)."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def _read_manifest(out_dir: Path) -> dict[str, Any]:
    path = Path(out_dir) / MANIFEST_FILE
    if not path.exists():
        return {"applies": []}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SpikemergeError(
            f"{path} is unreadable ({one_line(exc)}): delete it to start a new undo history"
        ) from exc
    try:  # validated as the schema says, handed on as plain data (unknown keys kept)
        return UndoManifest.model_validate(data).model_dump(mode="json")
    except ValueError as exc:
        raise SpikemergeError(
            f"{path} is not a spikemerge manifest ({one_line(exc, 160)}): delete it to start a new undo history"
        ) from None


def write_manifest(out_dir: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest atomically (a reader sees the old or the new one, never half)."""
    write_json_atomic(Path(out_dir) / MANIFEST_FILE, manifest)


def confined(out_dir: Path, relative: Any, field: str) -> Path:
    """``out_dir / relative``, refused unless it is a plain relative path inside ``out_dir``.

    Refused: absolute paths, ``..`` parts, empty names, and paths whose resolved location (after
    symlinks) is not strictly inside ``out_dir``.
    """
    out_dir = Path(out_dir)
    text = str(relative) if isinstance(relative, str) else None
    pure = PurePosixPath(text) if text else None
    if (pure is None or pure.is_absolute() or text.startswith(("/", "\\")) or ".." in pure.parts
            or "\\" in text or str(pure) in ("", ".")):
        raise SpikemergeError(
            f"the undo manifest {out_dir / MANIFEST_FILE} names {field} {relative!r}, which is not a path inside "
            f"{out_dir}: nothing was removed; check or delete that file"
        )
    path = out_dir / pure
    root = out_dir.resolve()
    if root not in path.resolve().parents:
        raise SpikemergeError(
            f"the undo manifest {out_dir / MANIFEST_FILE} names {field} {relative!r}, which leads outside "
            f"{out_dir}: nothing was removed; check or delete that file"
        )
    return path


def _entry_paths(out_dir: Path, entry: dict[str, Any]) -> dict[str, Path]:
    """Every path the entry names, each checked (all checked before any is used)."""
    paths = {}
    for field in PATH_FIELDS:
        if entry.get(field):
            paths[field] = confined(out_dir, entry[field], field)
    for field in ("analyzer_folder", "staging", "replaced"):  # folders we delete must be our own direct children
        if field in paths and paths[field].parent.resolve() not in (out_dir.resolve(), (out_dir / UNDO_FOLDER).resolve()):
            raise SpikemergeError(
                f"the undo manifest names {field} {entry[field]!r}, which is not a folder spikemerge writes: "
                "nothing was removed; check or delete that file"
            )
    return paths


def undo_last_apply(out_dir: Path) -> str:
    """Remove what the last :func:`apply_merges` in ``out_dir`` wrote, and say what was removed.

    The merged analyzer folder is deleted; ``curation.json`` is restored to what it was before
    that apply (or removed if there was none). A ``curation.json`` changed since by someone else
    is left alone. An apply that was interrupted (its entry still ``pending``) is undone the
    same way: whatever of it reached the disk is removed, and a merged analyzer it was replacing
    is put back. Only paths recorded in the manifest, checked to lie inside ``out_dir``, are
    touched.

    Parameters
    ----------
    out_dir : Path
        The output folder given to :func:`apply_merges`.

    Returns
    -------
    str
        One line describing what was undone.

    Raises
    ------
    SpikemergeError
        No apply recorded in ``out_dir``, or the manifest names a path outside it.
    """
    out_dir = Path(out_dir)
    manifest = _read_manifest(out_dir)
    if not manifest["applies"]:
        raise SpikemergeError(f"nothing to undo in {out_dir}: no merges were applied there")
    entry = manifest["applies"][-1]
    if not isinstance(entry, dict):
        raise SpikemergeError(f"the last entry of {out_dir / MANIFEST_FILE} is damaged: delete that file")
    paths = _entry_paths(out_dir, entry)  # every path checked before anything is removed
    pending = entry.get("status") == PENDING
    done = ["an interrupted apply"] if pending else []

    staging = paths.get("staging")
    if staging is not None and staging.exists():
        shutil.rmtree(staging, ignore_errors=True)
        done.append("removed its unfinished analyzer")
    folder, replaced = paths.get("analyzer_folder"), paths.get("replaced")
    if folder is not None:
        name = entry["analyzer_folder"]
        # the folder in place is this apply's, unless an interrupted replace never got to move the
        # earlier analyzer aside (then the one in place is still the earlier apply's, and stays)
        ours = replaced is None or not pending or entry.get("swapped") or replaced.exists()
        if folder.is_dir() and ours:
            shutil.rmtree(folder)
            done.append(f"removed {name}")
        elif not pending:
            done.append(f"{name} was already gone")
        if replaced is not None and replaced.exists():  # killed mid-swap: the earlier analyzer comes back
            os.replace(replaced, folder)
            _remove_if_empty(replaced.parent)
            done.append(f"put the earlier {name} back")
        elif replaced is not None and (not pending or entry.get("swapped")):
            done.append(f"the earlier {name} it replaced was not kept: apply that curation again to rebuild it")

    curation_path = paths.get("curation", out_dir / CURATION_FILE)
    previous = paths.get("previous_curation")
    if not curation_path.exists():
        if not pending:
            done.append(f"{curation_path.name} was already gone")
    elif _sha256(curation_path) != entry.get("curation_sha256"):
        if not pending:
            done.append(f"kept {curation_path.name} (changed since the merge was applied)")
    elif previous is not None and previous.exists():
        os.replace(previous, curation_path)
        done.append(f"restored the previous {curation_path.name}")
    else:
        curation_path.unlink()
        done.append(f"removed {curation_path.name}")
    if previous is not None:
        previous.unlink(missing_ok=True)
        _remove_if_empty(previous.parent)
    manifest["applies"].pop()
    write_manifest(out_dir, manifest)
    if pending and len(done) == 1:
        done.append("nothing of it had reached the disk")
    return (
        f"undid the apply of {entry.get('time', '?')} ({entry.get('merges', 0)} merge(s), "
        f"{entry.get('units_before', '?')} -> {entry.get('units_after', '?')} units): {'; '.join(done)}"
    )
