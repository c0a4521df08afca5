"""Positioned reads of chosen rows of a .npy file: the same rows as indexing, or an error when the file is short."""

import numpy as np
import pytest

from spikemerge.tools.analyzer.rows import file_map, read_file_rows, read_rows


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


def test_file_map_of_a_map_and_of_a_plain_view_of_all_of_it(tmp_path):
    data = np.arange(60, dtype=np.float32).reshape(10, 6)
    path = tmp_path / "w.npy"
    np.save(path, data)
    mapped = np.load(path, mmap_mode="r")
    where = (str(path), int(mapped.offset))
    assert file_map(mapped) == where
    view = mapped.view(np.ndarray)  # how load.keep_mapped holds an extension's array
    assert file_map(view) == where
    np.testing.assert_array_equal(read_rows(view, np.array([2, 3, 7])), data[[2, 3, 7]])
    # part of the map, or a copy in memory, is not read from the file (the rows would be another's)
    assert file_map(view[2:]) is None
    assert file_map(np.asarray(mapped[:, :3])) is None
    assert file_map(np.array(mapped)) is None
