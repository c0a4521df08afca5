"""Shared synthetic analyzers, built once per test session with SpikeInterface's generators."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from spikemerge.bench.synthetic import GroundTruth, ScenarioSpec, make_ground_truth, save_ground_truth

SMALL_SPEC = ScenarioSpec(
    num_neurons=8,
    duration_s=60.0,
    num_twin_pairs=1,
    num_random_splits_2=1,
    num_random_splits_3=1,
    num_time_splits=1,
    num_duplicates=1,
    firing_rates=(8.0, 15.0),
    seed=7,
)


@pytest.fixture(scope="session")
def small_truth() -> GroundTruth:
    """An in-memory analyzer: 8 neurons damaged into 12 units, with every extension computed."""
    return make_ground_truth(SMALL_SPEC)


@pytest.fixture(scope="session")
def saved_truth_folder(small_truth, tmp_path_factory) -> Path:
    """The small analyzer saved as a binary_folder (without its recording), plus truth.json."""
    folder = tmp_path_factory.mktemp("truth")
    save_ground_truth(small_truth, folder)
    return folder


@pytest.fixture
def analyzer_folder(saved_truth_folder, tmp_path) -> Path:
    """A private copy of the saved analyzer folder, safe to open in any test."""
    target = tmp_path / "analyzer"
    shutil.copytree(saved_truth_folder / "analyzer", target)
    return target
