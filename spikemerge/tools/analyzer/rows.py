"""Reading chosen rows of a large per-spike array without mapping the file into this process.

Why not the memory map itself: a unit's sampled waveforms are scattered through
``waveforms.npy`` (rows are in time order, not unit order), and the kernel maps a block of pages
around every row it faults in. Touching a few hundred units' rows through ``np.memmap`` ends up
mapping most of the file, and every mapped page counts in this process's resident memory. Plain
positioned reads (``os.pread``) leave the data in the page cache, shared and reclaimable, and
this process holds only the rows it asked for.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np


def _runs(rows: np.ndarray) -> list[tuple[int, int]]:
    """Sorted row indices as ``(start, stop)`` runs of consecutive rows."""
    if rows.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [rows.size]])
    return [(int(rows[a]), int(rows[b - 1]) + 1) for a, b in zip(starts, stops)]


def read_rows(array, rows: np.ndarray) -> np.ndarray:
    """``array[rows]`` for increasing ``rows``, read without memory-mapping the file when possible.

    Parameters
    ----------
    array : np.memmap, np.ndarray or zarr.Array
        A C-ordered array whose first axis is the row axis. A memory map of a ``.npy`` file (or a
        plain view of all of one, :func:`file_map`) is read with ``os.pread``; any other array is
        indexed as it is.
    rows : np.ndarray
        Increasing row indices.

    Returns
    -------
    np.ndarray
        The rows, as a new in-memory array.
    """
    rows = np.asarray(rows, dtype=np.int64)
    where = file_map(array)
    if where is None:
        if isinstance(array, np.ndarray):
            return np.asarray(array[rows])
        from spikeinterface.core.core_tools import slice_rows  # zarr arrays

        return np.asarray(slice_rows(array, rows))
    return read_file_rows(where[0], where[1], array.dtype, array.shape[1:], rows)


def file_map(array) -> tuple[str, int] | None:
    """``(file, byte offset)`` of a C-ordered array that is a file's memory map, or a plain view of the
    whole of one (as :func:`~spikemerge.tools.analyzer.load.keep_mapped` holds an extension's arrays);
    None for any other array."""
    if not isinstance(array, np.ndarray) or not array.flags.c_contiguous:
        return None
    mapped = array
    while not isinstance(mapped, np.memmap):
        mapped = getattr(mapped, "base", None)
        if not isinstance(mapped, np.ndarray):
            return None
    filename = getattr(mapped, "filename", None)
    if not filename:
        return None
    same = mapped is array or (array.shape == mapped.shape and array.dtype == mapped.dtype and
                               array.__array_interface__["data"][0] == mapped.__array_interface__["data"][0])
    return (str(filename), int(mapped.offset)) if same else None


def _read_into(fd: int, target: memoryview, at: int, filename: str) -> None:
    """Fill ``target`` from byte ``at`` of the open file, straight into it (``os.preadv``: no bytes
    object and no second copy per run; where there is no ``preadv``, ``os.pread`` and a copy)."""
    done = 0
    while done < len(target):
        if hasattr(os, "preadv"):
            got = os.preadv(fd, [target[done:]], at + done)
        else:
            data = os.pread(fd, len(target) - done, at + done)
            got = len(data)
            target[done:done + got] = data
        if got == 0:
            raise OSError(f"{filename} is shorter than its header says (truncated?)")
        done += got


def read_file_rows(filename: str, offset: int, dtype, row_shape: tuple, rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` (increasing) of a C-ordered array stored at ``offset`` in ``filename``, by positioned reads."""
    rows = np.asarray(rows, dtype=np.int64)
    dtype = np.dtype(dtype)
    row_shape = tuple(int(n) for n in row_shape)
    row_bytes = int(np.prod(row_shape, dtype=np.int64)) * dtype.itemsize
    out = np.empty((rows.size,) + row_shape, dtype=dtype)
    buffer = memoryview(out.reshape(-1).view(np.uint8))
    fd = os.open(filename, os.O_RDONLY)
    try:
        position = 0
        for start, stop in _runs(rows):
            wanted = (stop - start) * row_bytes
            _read_into(fd, buffer[position:position + wanted], offset + start * row_bytes, filename)
            position += wanted
    finally:
        os.close(fd)
    return out


@dataclass(frozen=True, eq=False)
class FileRows:
    """Rows of an array in a ``.npy`` file, read when called: a few bytes to send to a worker process
    instead of the rows themselves, which the worker then reads from the (shared) page cache.

    ``channels`` keeps only the first channels of each row (a sparse unit's); the rows are
    returned as float32, as :meth:`~spikemerge.tools.analyzer.view.AnalyzerView.sampled_waveforms` does.
    """

    filename: str
    offset: int
    dtype: str
    row_shape: tuple
    rows: np.ndarray
    channels: int | None = None

    @classmethod
    def of(cls, array, rows: np.ndarray, channels: int | None = None) -> "FileRows | None":
        """The reader of ``array[rows]``, or None when ``array`` is not a C-ordered memory map of a file."""
        where = file_map(array)
        if where is None:
            return None
        return cls(where[0], where[1], array.dtype.str, tuple(array.shape[1:]), np.asarray(rows, dtype=np.int64),
                   channels)

    def __call__(self) -> np.ndarray:
        rows = read_file_rows(self.filename, self.offset, self.dtype, self.row_shape, self.rows)
        if self.channels is not None:
            rows = rows[:, :, : self.channels]
        return np.asarray(rows, dtype=np.float32)
