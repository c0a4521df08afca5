"""The merged analyzer's waveforms, written block by block, equal SpikeInterface's own in-memory merge."""

from __future__ import annotations

import warnings
from itertools import combinations

import numpy as np
import pytest
from spikeinterface.core import load_sorting_analyzer

from spikemerge.tools import curation as M
from spikemerge.tools.curation.waveforms import StreamParams, carry_waveforms


def _groups(analyzer, true_groups):
    """True groups plus one pair whose sparsity only partly overlaps (its rows must be realigned)."""
    used = {u for g in true_groups for u in g}
    partial = next(
        [a, b] for a, b in combinations(analyzer.unit_ids, 2)
        if a not in used and b not in used and 0 < M.apply._overlap(analyzer, [a, b])[1]
        and M.apply._overlap(analyzer, [a, b])[0] < 0.75
    )
    return [list(g) for g in true_groups] + [partial]


def test_streamed_waveforms_equal_spikeinterface_merge(small_truth, tmp_path, monkeypatch):
    analyzer = small_truth.analyzer
    groups = _groups(analyzer, small_truth.true_groups)
    real = carry_waveforms
    monkeypatch.setattr(M.apply, "carry_waveforms",  # small blocks: several blocks, runs split across them
                        lambda *a, **k: real(*a, **k, params=StreamParams(block_rows=97)))
    _, new_ids = M.apply._merge(analyzer, groups, 0.3, 1, folder=tmp_path / "ours")
    assert "waveforms" in analyzer.extensions  # the input keeps its extension
    ours = load_sorting_analyzer(tmp_path / "ours")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = analyzer.merge_units(groups, new_unit_ids=new_ids, censor_ms=0.3, merging_mode="soft",
                                      sparsity_overlap=0.0, format="memory")
    a = ours.get_extension("waveforms").get_data()
    b = theirs.get_extension("waveforms").get_data()
    assert a.shape == b.shape and np.array_equal(a, b)
    for unit in new_ids + [u for u in ours.unit_ids if u not in new_ids][:3]:
        assert np.array_equal(ours.get_extension("waveforms").get_waveforms_one_unit(unit),
                              theirs.get_extension("waveforms").get_waveforms_one_unit(unit))
    assert np.array_equal(ours.get_extension("templates").get_data(), theirs.get_extension("templates").get_data())


def _theirs(analyzer, groups, new_ids, censor_ms):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return analyzer.merge_units(groups, new_unit_ids=new_ids, censor_ms=censor_ms, merging_mode="soft",
                                    sparsity_overlap=0.0, format="memory")


@pytest.mark.parametrize("censor_ms,copy_works", [(0.3, True), (20.0, True), (20.0, False)])
def test_waveforms_copied_file_to_file_equal_spikeinterface_merge(small_truth, analyzer_folder, tmp_path, monkeypatch,
                                                                  censor_ms, copy_works):
    """From a memory-mapped input the rows are copied by the kernel and the merged units' rows patched
    over them; a wide censor window drops sampled rows, so the copy runs are split; without
    copy_file_range the same bytes come from plain reads and writes."""
    from spikemerge.tools.analyzer.load import open_analyzer
    from spikemerge.tools.curation import waveforms as W

    analyzer = open_analyzer(analyzer_folder)
    groups = _groups(analyzer, small_truth.true_groups)

    def no_streaming(*args, **kwargs):
        raise AssertionError("a memory-mapped input of unchanged width is copied, not streamed")

    monkeypatch.setattr(W, "_stream_blocks", no_streaming)
    if not copy_works:
        def refuse(*args, **kwargs):
            raise OSError(18, "Invalid cross-device link")
        monkeypatch.setattr(W.os, "copy_file_range", refuse, raising=False)
    real = carry_waveforms
    monkeypatch.setattr(M.apply, "carry_waveforms", lambda *a, **k: real(*a, **k, params=StreamParams(block_rows=97)))
    _, new_ids = M.apply._merge(analyzer, groups, censor_ms, 1, folder=tmp_path / "ours")
    ours = load_sorting_analyzer(tmp_path / "ours")
    theirs = _theirs(analyzer, groups, new_ids, censor_ms)
    rows_before = analyzer.get_extension("waveforms").data["waveforms"].shape[0]
    a = ours.get_extension("waveforms").get_data()
    b = theirs.get_extension("waveforms").get_data()
    assert a.shape == b.shape and np.array_equal(a, b)
    if censor_ms > 1:
        assert a.shape[0] < rows_before  # rows were dropped: the copy was done in several runs
    for unit in new_ids:
        assert np.array_equal(ours.get_extension("waveforms").get_waveforms_one_unit(unit),
                              theirs.get_extension("waveforms").get_waveforms_one_unit(unit))
    assert not list(tmp_path.glob(".*waveforms.npy"))  # the early copy's scratch file went into the folder


@pytest.mark.parametrize("fails_in", ["thread", "merge"])
def test_a_failed_early_copy_or_merge_leaves_no_scratch_file(small_truth, analyzer_folder, tmp_path, monkeypatch,
                                                             fails_in):
    """The rows copied ahead in a thread are only a head start: when that copy fails the rows are
    written the usual way (same array), and when SpikeInterface's merge fails the copy is removed."""
    from spikemerge.tools.analyzer.load import open_analyzer
    from spikemerge.tools.curation import waveforms as W

    analyzer = open_analyzer(analyzer_folder)
    groups = _groups(analyzer, small_truth.true_groups)
    real_kept = W._kept_rows
    calls = []

    def kept_rows(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OSError("disk full")
        return real_kept(*args, **kwargs)

    if fails_in == "thread":
        monkeypatch.setattr(W, "_kept_rows", kept_rows)
        _, new_ids = M.apply._merge(analyzer, groups, 0.3, 1, folder=tmp_path / "ours")
        theirs = _theirs(analyzer, groups, new_ids, 0.3)
        a = load_sorting_analyzer(tmp_path / "ours").get_extension("waveforms").get_data()
        assert len(calls) == 2 and np.array_equal(a, theirs.get_extension("waveforms").get_data())
        assert not list(tmp_path.glob(".*waveforms.npy"))
    else:
        def broken(*args, **kwargs):
            raise RuntimeError("merge failed")

        monkeypatch.setattr(type(analyzer), "merge_units", broken)
        with pytest.raises(RuntimeError):
            M.apply._merge(analyzer, groups, 0.3, 1, folder=tmp_path / "ours")
        assert not list(tmp_path.glob(".*waveforms.npy"))
        assert "waveforms" in analyzer.extensions  # the input analyzer is left as it was
