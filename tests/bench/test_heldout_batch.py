"""scripts/heldout_batch.py: the registry of held-out batches is checked as ``--set`` is, and a batch is
scored once only."""

from __future__ import annotations

import pytest

from tests.helpers import load_script


def test_the_registry_parses_and_every_batch_has_new_seeds_and_both_scenarios():
    batches = load_script("heldout_batch").load_batches()
    seeds = [s for b in batches.values() for s in b.seeds]
    assert len(seeds) == len(set(seeds)) and min(seeds) > 138  # seeds up to 138 were used by earlier batches
    for batch in batches.values():
        assert {s.name for s in batch.scenarios} == {"drift", "burst"}
        assert all(s.label and s.overrides for s in batch.scenarios)


def test_a_seed_used_twice_or_a_misspelt_parameter_is_refused(tmp_path):
    module = load_script("heldout_batch")
    twice = tmp_path / "twice.toml"
    twice.write_text('[[batch]]\nseeds = [1, 2]\n[batch.drift]\nlabel = "a"\n'
                     '[[batch]]\nseeds = [2, 3]\n[batch.drift]\nlabel = "b"\n')
    with pytest.raises(ValueError, match="a seed is used by two batches"):
        module.load_batches(twice)
    typo = tmp_path / "typo.toml"
    typo.write_text('[[batch]]\nseeds = [1, 2]\n[batch.drift]\nlabel = "a"\nset = { slow_drift_velocty = 9 }\n')
    with pytest.raises(ValueError, match="slow_drift_velocty"):
        module.load_batches(typo)


def test_a_batch_scored_once_is_not_scored_again(tmp_path):
    module = load_script("heldout_batch")
    batch = next(iter(module.load_batches().values()))
    for scenario in batch.scenarios:
        for who in ("presets", "ours"):
            path = module.score_file(tmp_path, batch, scenario, who)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("{}\n")
    with pytest.raises(SystemExit, match="scored already"):
        module.score(batch, tmp_path, "v0", again=False)
