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
"""

from __future__ import annotations

import os
from copy import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..analyzer.rows import read_rows
from ..judges.base import UnitId


@dataclass(frozen=True)
class StreamParams:
    """Rows per block: a block is rows x samples x channels x 4 bytes (4096 rows: about 25 MB at 18 channels)."""

    block_rows: int = 4096


def carry_waveforms(source, merged_folder: Path, groups: Sequence[Sequence[UnitId]], new_unit_ids: Sequence[UnitId],
                    censor_ms: float | None, params: StreamParams = StreamParams()) -> None:
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
    """
    from spikeinterface.core import load_sorting_analyzer
    from spikeinterface.core.sorting_tools import apply_merges_to_sorting

    ext = source.get_extension("waveforms")
    data = ext.data["waveforms"]
    random_spikes = source.get_extension("random_spikes")
    row_unit = np.asarray(random_spikes.get_random_spikes()["unit_index"])
    if censor_ms:
        _, keep_mask, _ = apply_merges_to_sorting(source.sorting, [list(g) for g in groups], new_unit_ids=list(new_unit_ids),
                                                  censor_ms=censor_ms, return_extra=True)
        valid = np.asarray(keep_mask)[np.asarray(random_spikes.data["random_spikes_indices"])]
    else:
        valid = np.ones(row_unit.size, dtype=bool)

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
    partial = target.with_name(".waveforms.npy.partial")
    shape = (int(valid.sum()), int(data.shape[1]), int(width))
    source_file = _source_file(data)
    with open(partial, "wb") as handle:
        np.lib.format.write_array_header_1_0(
            handle, {"descr": np.lib.format.dtype_to_descr(np.dtype(data.dtype)), "fortran_order": False, "shape": shape})
        if source_file is not None and width == data.shape[2]:
            handle.flush()
            _copy_then_patch(data, source_file, handle.fileno(), handle.tell(), row_unit, valid, keep_channels, params)
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


def _source_file(data) -> str | None:
    """The ``.npy`` file holding ``data`` (a C-ordered memory map), or None."""
    filename = getattr(data, "filename", None)
    if isinstance(data, np.memmap) and filename and data.flags.c_contiguous:
        return str(filename)
    return None


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


def _copy_then_patch(data, source_file: str, target_fd: int, header_bytes: int, row_unit: np.ndarray,
                     valid: np.ndarray, keep_channels: dict[int, np.ndarray], params: StreamParams) -> None:
    """Copy the kept rows file to file, then write the merged units' realigned rows over their copies."""
    row_bytes = int(np.prod(data.shape[1:], dtype=np.int64)) * data.dtype.itemsize
    source_fd = os.open(source_file, os.O_RDONLY)
    try:
        kept = np.flatnonzero(valid)
        breaks = np.flatnonzero(np.diff(kept) != 1) + 1  # runs of kept rows, split where censoring removed some
        position = 0
        for run in np.split(kept, breaks) if kept.size else []:
            count = run.size * row_bytes
            _copy_range(source_fd, target_fd, int(data.offset) + int(run[0]) * row_bytes,
                        header_bytes + position, count)
            position += count
    finally:
        os.close(source_fd)
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
