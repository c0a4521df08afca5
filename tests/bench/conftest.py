"""A tiny dataset of every damage kind, generated once per test session into a dataset cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from spikemerge.bench.run import load_or_make
from spikemerge.bench.synthetic import GroundTruth, ScenarioSpec

TINY_SPEC = ScenarioSpec(
    num_neurons=12,
    duration_s=40.0,
    num_twin_pairs=1,
    num_random_splits_2=1,
    num_random_splits_3=1,
    num_time_splits=1,
    num_duplicates=1,
    num_amplitude_splits=2,
    firing_rates=(8.0, 15.0),
    seed=0,
)
"""Every damage kind at once: 12 neurons -> 12 + 1 + 2 + 1 + 1 + 2 = 19 units (about 10 s to make)."""


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory) -> Path:
    """A dataset cache holding ``TINY_SPEC`` (made once, with spike locations)."""
    cache = tmp_path_factory.mktemp("bench_cache")
    load_or_make(TINY_SPEC, cache)
    return cache


@pytest.fixture(scope="session")
def tiny_truth(tiny_cache) -> GroundTruth:
    """``TINY_SPEC``'s ground truth as read back from the cache (no recording, like a rerun)."""
    return load_or_make(TINY_SPEC, tiny_cache)
