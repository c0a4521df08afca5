"""scripts/time_sharing.py on arrays: the turn-taking and time-sharing statistics behind its measurement."""

from __future__ import annotations


import numpy as np
import pytest

from tests.helpers import load_script


@pytest.fixture(scope="module")
def ts():
    return load_script("time_sharing")


def _counts(rate_a, rate_b, rng, bins=40):
    return rng.poisson(rate_a).astype(float), rng.poisson(rate_b).astype(float)


def test_fragments_that_take_turns_share_time_and_two_neurons_do_not(ts):
    rng = np.random.default_rng(0)
    half = np.arange(40) < 20
    # one neuron at 30 spikes per bin, in the first unit for the first half, the second afterwards
    a, b = _counts(np.where(half, 30.0, 0.0), np.where(half, 0.0, 30.0), rng)
    assert ts.time_sharing_llr(a, b) == pytest.approx(0.0, abs=1.0)
    assert ts.turn_taking_p(ts.active(a), ts.active(b)) < 1e-6
    # two neurons: the second also fires at its full rate through the last third of the first's life
    both = (np.arange(40) >= 13)
    a2, b2 = _counts(np.where(half, 30.0, 0.0), np.where(both, 30.0, 0.0), rng)
    assert ts.time_sharing_llr(a2, b2) > 50.0
    # units present together throughout are not tested as time-shared
    a3, b3 = _counts(np.full(40, 30.0), np.full(40, 10.0), rng)
    assert np.isnan(ts.time_sharing_llr(a3, b3))


def test_auc_counts_ties_half(ts):
    assert ts.auc([1.0, 2.0], [0.0]) == 1.0
    assert ts.auc([0.0], [1.0]) == 0.0
    assert ts.auc([1.0], [1.0]) == 0.5
    assert np.isnan(ts.auc([], [1.0]))
