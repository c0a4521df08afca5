"""Writing files so that a crash never leaves a half-written one: write beside, then rename."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import SpikemergeError

OUTPUT_MARKER = ".spikemerge-output"


def to_jsonable(value: Any) -> Any:
    """Numpy scalars and arrays, paths and tuples as plain JSON values."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [to_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: Path, data: bytes, durable: bool = True) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    A reader never sees a half-written file; the result gets the usual permissions
    (``mkstemp`` alone would leave it readable by its owner only). ``durable=False`` skips the
    ``fsync``, for files that are checked before reuse and redone when damaged (the figures):
    on ext4 each fsync waits for the journal, and with a merged analyzer being written meanwhile
    that wait is for gigabytes of someone else's data.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextmanager
def exclusive_lock(lock: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file ``lock`` until the block ends (POSIX ``flock``).

    For writers that would otherwise race: builds side by side simulating one template library,
    batches scored side by side rewriting one registry. The operating system drops the lock with
    its holder, so a killed process never leaves the next one waiting.
    """
    import fcntl  # POSIX

    lock = Path(lock)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_text_atomic(path: Path, text: str) -> Path:
    """Write UTF-8 ``text`` atomically (see ``write_bytes_atomic``)."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, data: Any) -> Path:
    return write_text_atomic(path, json.dumps(to_jsonable(data), indent=2) + "\n")


def append_jsonl(path: Path, record: Any) -> None:
    """Append one JSON line and flush it to disk, so an interrupted run keeps every finished line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(to_jsonable(record)) + "\n"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def read_jsonl(path: Path) -> list[dict]:
    """Read a journal, skipping a last line cut short by a crash."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


@contextmanager
def staged_folder(final: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``final``; it becomes ``final`` only if the block succeeds."""
    final = Path(final)
    if final.exists():
        raise SpikemergeError(f"{final} already exists: choose another folder or remove it")
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    try:
        yield staging
        os.replace(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def check_output_folder(out: Path) -> Path:
    """Raise if ``out`` could not become a spikemerge output folder; write nothing.

    The CLI calls this while it checks its arguments, so a refused ``--out`` is reported before
    any folder is created or any work is done.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SpikemergeError(f"output {out} is a file: give a folder path for --out")
    if out.exists() and any(out.iterdir()) and not (out / OUTPUT_MARKER).exists():
        raise SpikemergeError(
            f"output folder {out} exists and was not made by spikemerge: choose a new or empty folder"
        )
    existing = next((p for p in [out, *out.parents] if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise SpikemergeError(f"output {out} is below the file {existing}: give a folder path for --out")
    if existing is not None and not os.access(existing, os.W_OK):
        raise SpikemergeError(f"cannot write in {existing}: choose an output folder you can write to")
    return out


def claim_output_folder(out: Path) -> Path:
    """Make ``out`` ours: create it, or accept it if empty or already marked as a spikemerge output.

    A folder holding anything else is refused, so a typo never writes into a user's data.
    """
    out = check_output_folder(Path(out))
    out.mkdir(parents=True, exist_ok=True)
    (out / OUTPUT_MARKER).touch()
    return out
