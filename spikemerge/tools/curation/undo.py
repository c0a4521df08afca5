"""Undo: the manifest of what each apply wrote, and removing exactly that."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from ...errors import SpikemergeError, one_line
from ..outputs import write_json_atomic
from .format import CURATION_FILE

MANIFEST_FILE = ".spikemerge-merges.json"
UNDO_FOLDER = ".spikemerge-undo"


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
    data.setdefault("applies", [])
    return data


def undo_last_apply(out_dir: Path) -> str:
    """Remove what the last :func:`apply_merges` in ``out_dir`` wrote, and say what was removed.

    The merged analyzer folder is deleted; ``curation.json`` is restored to what it was before
    that apply (or removed if there was none). A ``curation.json`` changed since by someone else
    is left alone. Only files recorded in the manifest are touched.

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
        No apply recorded in ``out_dir``.
    """
    out_dir = Path(out_dir)
    manifest = _read_manifest(out_dir)
    if not manifest["applies"]:
        raise SpikemergeError(f"nothing to undo in {out_dir}: no merges were applied there")
    entry = manifest["applies"].pop()
    done = []
    folder_name = entry.get("analyzer_folder")
    if folder_name:
        folder = out_dir / folder_name
        if folder.resolve().parent == out_dir.resolve() and folder.is_dir():
            shutil.rmtree(folder)
            done.append(f"removed {folder_name}")
        else:
            done.append(f"{folder_name} was already gone")
    curation_path = out_dir / entry.get("curation", CURATION_FILE)
    previous = out_dir / entry["previous_curation"] if entry.get("previous_curation") else None
    if not curation_path.exists():
        done.append(f"{curation_path.name} was already gone")
    elif _sha256(curation_path) != entry.get("curation_sha256"):
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
    write_json_atomic(out_dir / MANIFEST_FILE, manifest)
    return (
        f"undid the apply of {entry.get('time', '?')} ({entry.get('merges', 0)} merge(s), "
        f"{entry.get('units_before', '?')} -> {entry.get('units_after', '?')} units): {'; '.join(done)}"
    )
