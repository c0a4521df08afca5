"""Positioned reads of chosen rows of a .npy file: the same rows as indexing, or an error when the file is short."""

import numpy as np
import pytest

from spikemerge.tools.analyzer.rows import read_file_rows, read_rows


def test_rows_equal_indexing_runs_and_scattered(tmp_path):
    data = np.random.default_rng(0).standard_normal((50, 7, 3)).astype(np.float32)
    path = tmp_path / "w.npy"
    np.save(path, data)
    mapped = np.load(path, mmap_mode="r")
    rows = np.array([0, 1, 2, 9, 20, 21, 49])  # runs and single rows, first and last
    np.testing.assert_array_equal(read_rows(mapped, rows), data[rows])
    assert read_rows(mapped, np.array([], dtype=np.int64)).shape == (0, 7, 3)


def test_short_file_is_reported(tmp_path):
    data = np.arange(40, dtype=np.int16).reshape(10, 4)
    path = tmp_path / "w.npy"
    np.save(path, data)
    offset = int(np.load(path, mmap_mode="r").offset)
    with open(path, "r+b") as f:
        f.truncate(offset + 5 * 4 * 2)  # five rows left
    np.testing.assert_array_equal(read_file_rows(str(path), offset, np.int16, (4,), np.array([1, 4])), data[[1, 4]])
    with pytest.raises(OSError, match="shorter"):
        read_file_rows(str(path), offset, np.int16, (4,), np.array([3, 8]))
