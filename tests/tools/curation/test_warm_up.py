"""The merge's numba kernel, compiled ahead in a thread, is the specialisation SpikeInterface's merge uses."""

from __future__ import annotations

import numpy as np
import pytest


def test_warm_up_compiles_the_kernel_the_merge_calls():
    sorting_tools = pytest.importorskip("spikeinterface.core.sorting_tools")
    if not sorting_tools.HAVE_NUMBA:
        pytest.skip("numba is not installed: nothing to compile")
    from spikeinterface.core import NumpySorting

    from spikemerge.tools.curation.apply import warm_up_merge

    thread = warm_up_merge()
    thread.join(timeout=120)
    assert not thread.is_alive()
    kernel = sorting_tools.get_numba_vector_to_list_of_spiketrain()
    compiled = list(kernel.signatures)
    assert compiled  # compiled in the thread
    sorting = NumpySorting.from_unit_dict([{0: np.array([10, 50]), 1: np.array([20, 60]), 2: np.array([5])}], 30000.0)
    merged = sorting_tools.apply_merges_to_sorting(sorting, [[0, 1]], new_unit_ids=[3], censor_ms=0.3)
    assert list(merged.unit_ids) == [2, 3]
    assert list(kernel.signatures) == compiled  # the merge needed no other specialisation
