"""The merged analyzer's sampled waveforms, written without holding the array in memory.

Why not SpikeInterface's own soft merge of the ``waveforms`` extension: it copies the whole
array into memory (and, from a memory-mapped input, maps all of it too) before realigning the
merged units' rows, so a 1.5 GB ``waveforms.npy`` costs about 3 GB of resident memory during
apply. Here a merged unit's rows are realigned the same way (it keeps the channels all its
parts share, in channel order, zero-padded), rows removed by censoring are dropped, and the
result is the array SpikeInterface would have written (a test checks it row for row); the
extension's metadata files are written by SpikeInterface itself.

How the bytes move: every other row is the input's row unchanged, so when the input is a
``.npy`` file and the row width stays the same, the rows are copied file to file by the kernel
(``os.copy_file_range``: no pass through this process, 1.2 s for 1.5 GB here against about 6 s
read and written block by block, measured), one copy per run of rows between censored ones,
and only the merged units' rows are read, realigned and written over their copies. Otherwise
(an in-memory or zarr input, a narrower merged width) the rows go through memory a block at a
time. Never a hard link: the new file is written in place, and would change the input's.

When: the copy needs nothing SpikeInterface's merge of the other extensions writes, so
:func:`start_copy` runs it in a thread beside that merge (the system call releases the
interpreter lock), and :func:`carry_waveforms` then only patches the merged units' rows. On the
lab-scale benchmark the two took 2.8 s and 2.5 s one after the other.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future
from copy import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..analyzer.rows import file_map, read_rows
from ..judges.base import UnitId


@dataclass(frozen=True)
class StreamParams:
    """Rows per block: a block is rows x samples x channels x 4 bytes (4096 rows: about 25 MB at 18 channels)."""

    block_rows: int = 4096


def _kept_rows(sorting, sampled: np.ndarray, groups: Sequence[Sequence[UnitId]], new_unit_ids: Sequence[UnitId],
               censor_ms: float | None) -> np.ndarray:
    """Which sampled waveforms (rows; ``sampled`` are their spikes' indices) the merged analyzer
    keeps: all but those censoring removes."""
    from spikeinterface.core.sorting_tools import apply_merges_to_sorting

    if not censor_ms:
        return np.ones(sampled.size, dtype=bool)
    _, keep_mask, _ = apply_merges_to_sorting(sorting, [list(g) for g in groups], new_unit_ids=list(new_unit_ids),
                                              censor_ms=censor_ms, return_extra=True)
    return np.asarray(keep_mask)[sampled]


def _sampled(source) -> np.ndarray:
    return np.asarray(source.get_extension("random_spikes").data["random_spikes_indices"])


@dataclass
class EarlyCopy:
    """The kept rows of a ``waveforms.npy`` being copied, at full width, into ``path`` by a thread."""

    path: Path
    future: Future

    def wait(self) -> tuple[np.ndarray, int] | None:
        """``(kept rows, header bytes)`` once the copy is done, or None when it failed."""
        try:
            return self.future.result()
        except Exception:  # noqa: BLE001 - the caller writes the rows itself instead
            return None

    def discard(self) -> None:
        """Wait for the thread, then remove its file."""
        try:
            self.future.result()
        except Exception:  # noqa: BLE001 - the file goes either way
            pass
        self.path.unlink(missing_ok=True)


def start_copy(source, groups: Sequence[Sequence[UnitId]], new_unit_ids: Sequence[UnitId], censor_ms: float | None,
               path: Path) -> EarlyCopy | None:
    """Start copying ``source``'s kept waveform rows into ``path`` (a scratch file) in a thread.

    For :func:`carry_waveforms`, which uses the copy when the merged width is the input's; the
    caller discards it afterwards (:meth:`EarlyCopy.discard`). None when the waveforms do not
    live in a ``.npy`` file.
    """
    data = source.get_extension("waveforms").data["waveforms"]
    stored = file_map(data)  # the .npy file holding the rows
    if stored is None:
        return None

    sorting, sampled = source.sorting, _sampled(source)  # read here: the thread touches no analyzer

    def copy_rows() -> tuple[np.ndarray, int]:
        valid = _kept_rows(sorting, sampled, groups, new_unit_ids, censor_ms)
        with open(path, "wb") as handle:
            _write_header(handle, data, int(valid.sum()), int(data.shape[2]))
            handle.flush()
            header_bytes = handle.tell()
            _copy_kept(data, stored, handle.fileno(), header_bytes, valid)
        return valid, header_bytes

    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(copy_rows())
        except BaseException as error:  # noqa: BLE001 - handed to whoever waits
            future.set_exception(error)

    threading.Thread(target=run, name="spikemerge-copy").start()
    return EarlyCopy(Path(path), future)


def _write_header(handle, data, rows: int, width: int) -> None:
    np.lib.format.write_array_header_1_0(
        handle, {"descr": np.lib.format.dtype_to_descr(np.dtype(data.dtype)), "fortran_order": False,
                 "shape": (rows, int(data.shape[1]), width)})


def carry_waveforms(source, merged_folder: Path, groups: Sequence[Sequence[UnitId]], new_unit_ids: Sequence[UnitId],
                    censor_ms: float | None, params: StreamParams = StreamParams(),
                    early: EarlyCopy | None = None) -> None:
    """Write ``source``'s waveforms, merged as ``groups``, into the analyzer at ``merged_folder``.

    Parameters
    ----------
    source : SortingAnalyzer
        The analyzer being merged (holds ``waveforms`` and ``random_spikes``).
    merged_folder : Path
        The merged analyzer SpikeInterface just wrote (binary_folder, without ``waveforms``).
    groups, new_unit_ids : sequences
        The merges, as given to ``merge_units``.
    censor_ms : float or None
        As given to ``merge_units``: sampled spikes removed by censoring lose their rows.
    early : EarlyCopy, optional
        The rows copied ahead by :func:`start_copy`: only the merged units' rows are left to write.
        Its file is moved into the folder when used; the caller discards it either way.
    """
    from spikeinterface.core import load_sorting_analyzer

    ext = source.get_extension("waveforms")
    data = ext.data["waveforms"]
    row_unit = np.asarray(source.get_extension("random_spikes").get_random_spikes()["unit_index"])

    merged = load_sorting_analyzer(merged_folder, load_extensions=False)
    width = data.shape[2]
    keep_channels: dict[int, np.ndarray] = {}  # unit index -> which of its channels the merged unit keeps
    if source.sparsity is not None:
        mask = np.asarray(source.sparsity.mask, dtype=bool)
        for group in groups:
            indices = source.sorting.ids_to_indices(list(group))
            common = np.all(mask[indices], axis=0)
            for i in indices:
                keep_channels[int(i)] = common[mask[i]]
        width = min(width, int(merged.sparsity.mask.sum(axis=1).max()))

    new_ext = ext.__class__(merged)  # SpikeInterface writes params, provenance and run info
    new_ext.params = ext.params.copy()
    new_ext.run_info = copy(ext.run_info)
    new_ext.data = {"waveforms": np.zeros((0, data.shape[1], width), dtype=data.dtype)}
    new_ext.save()

    target = Path(merged_folder) / "extensions" / "waveforms" / "waveforms.npy"
    copied = early.wait() if early is not None and width == data.shape[2] else None
    if copied is not None:  # the kept rows are in place: write the merged units' rows over theirs
        valid, header_bytes = copied
        with open(early.path, "r+b") as handle:
            _patch_merged(data, handle.fileno(), header_bytes, row_unit, valid, keep_channels, params)
            os.fsync(handle.fileno())
        os.replace(early.path, target)
        return
    valid = _kept_rows(source.sorting, _sampled(source), groups, new_unit_ids, censor_ms)
    partial = target.with_name(".waveforms.npy.partial")
    stored = file_map(data)  # the .npy file holding the rows, when they are memory-mapped
    with open(partial, "wb") as handle:
        _write_header(handle, data, int(valid.sum()), int(width))
        if stored is not None and width == data.shape[2]:
            handle.flush()
            header_bytes = handle.tell()
            _copy_kept(data, stored, handle.fileno(), header_bytes, valid)
            _patch_merged(data, handle.fileno(), header_bytes, row_unit, valid, keep_channels, params)
        else:
            _stream_blocks(data, handle, row_unit, valid, keep_channels, width, params)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, target)


def _realign(block: np.ndarray, units: np.ndarray, keep_channels: dict[int, np.ndarray]) -> None:
    """Move each merged unit's rows in ``block`` onto the channels its merged unit keeps (in place)."""
    for i in np.unique(units):
        keep = keep_channels.get(int(i))
        if keep is None:
            continue
        chosen = units == i
        moved = block[chosen][:, :, : keep.size][:, :, keep]
        block[chosen, :, : moved.shape[2]] = moved
        block[chosen, :, moved.shape[2]:] = 0


def _stream_blocks(data, handle, row_unit: np.ndarray, valid: np.ndarray, keep_channels: dict[int, np.ndarray],
                   width: int, params: StreamParams) -> None:
    """Every row through memory, ``params.block_rows`` at a time, appended to ``handle``."""
    for start in range(0, data.shape[0], params.block_rows):
        rows = np.arange(start, min(start + params.block_rows, data.shape[0]))
        block = read_rows(data, rows)
        _realign(block, row_unit[rows], keep_channels)
        handle.write(np.ascontiguousarray(block[valid[rows]][:, :, :width]).tobytes())


def _copy_range(source_fd: int, target_fd: int, source_offset: int, target_offset: int, count: int) -> None:
    """``count`` bytes from ``source_offset`` to ``target_offset``, file to file (in the kernel where it can)."""
    copy = getattr(os, "copy_file_range", None)
    while count > 0:
        done = 0
        if copy is not None:
            try:
                done = copy(source_fd, target_fd, count, source_offset, target_offset)
            except OSError:  # another file system, an old kernel: plain reads and writes
                copy = None
                continue
        else:
            chunk = os.pread(source_fd, min(count, 1 << 26), source_offset)
            done = os.pwrite(target_fd, chunk, target_offset) if chunk else 0
        if done <= 0:
            raise OSError("the waveforms file ended before its header says (truncated?)")
        source_offset, target_offset, count = source_offset + done, target_offset + done, count - done


def _row_bytes(data) -> int:
    return int(np.prod(data.shape[1:], dtype=np.int64)) * data.dtype.itemsize


def _copy_kept(data, stored: tuple[str, int], target_fd: int, header_bytes: int, valid: np.ndarray) -> None:
    """Copy the kept rows file to file (``stored``: the file and where its rows start), after the
    header, one run of consecutive rows at a time."""
    row_bytes = _row_bytes(data)
    source_file, source_offset = stored
    source_fd = os.open(source_file, os.O_RDONLY)
    try:
        kept = np.flatnonzero(valid)
        breaks = np.flatnonzero(np.diff(kept) != 1) + 1  # runs of kept rows, split where censoring removed some
        position = 0
        for run in np.split(kept, breaks) if kept.size else []:
            count = run.size * row_bytes
            _copy_range(source_fd, target_fd, source_offset + int(run[0]) * row_bytes,
                        header_bytes + position, count)
            position += count
    finally:
        os.close(source_fd)


def _patch_merged(data, target_fd: int, header_bytes: int, row_unit: np.ndarray, valid: np.ndarray,
                  keep_channels: dict[int, np.ndarray], params: StreamParams) -> None:
    """Write the merged units' realigned rows over their copies (:func:`_copy_kept` wrote the rows as they were)."""
    row_bytes = _row_bytes(data)
    kept = np.flatnonzero(valid)
    patched = kept[np.isin(row_unit[kept], np.array(sorted(keep_channels), dtype=np.int64))]  # merged units' rows
    out_row = np.cumsum(valid) - 1
    for start in range(0, patched.size, params.block_rows):
        rows = patched[start:start + params.block_rows]
        block = read_rows(data, rows)
        _realign(block, row_unit[rows], keep_channels)
        flat = np.ascontiguousarray(block).reshape(rows.size, row_bytes // data.dtype.itemsize)
        targets = out_row[rows]
        breaks = np.flatnonzero(np.diff(targets) != 1) + 1
        for part, first in zip(np.split(np.arange(rows.size), breaks), targets[np.concatenate([[0], breaks])]):
            os.pwrite(target_fd, flat[part].tobytes(), header_bytes + int(first) * row_bytes)
