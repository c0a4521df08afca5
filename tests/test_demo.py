"""The demo tells the truth: its unit count, why ids have gaps, and whether the near twins stayed apart."""

from __future__ import annotations

import re

import pytest

from spikemerge.cli import main
from spikemerge.demo import DemoTruth, score_twins, units_sentence


def _truth(small_truth) -> DemoTruth:
    return DemoTruth(dict(small_truth.neuron_of_unit), dict(small_truth.kinds),
                     [tuple(p) for p in small_truth.twin_pairs], small_truth.spec.num_neurons)


def test_unit_count_is_the_analyzers_and_the_id_gaps_are_explained(small_truth):
    truth = _truth(small_truth)
    text = units_sentence(truth)
    units = [int(u) for u in small_truth.analyzer.unit_ids]
    assert text.startswith(f"{len(units)} sorted units from {small_truth.spec.num_neurons} neurons")
    retired = sorted(set(range(max(units) + 1)) - set(units))
    split = sorted(n for n, kind in small_truth.kinds.items() if kind in ("split2", "split3"))
    assert retired == split  # each neuron split at random gave its id up to its parts
    assert f"ids run from {min(units)} to {max(units)}" in text and f"({', '.join(map(str, split))})" in text


def test_twins_are_scored_kept_apart_or_wrongly_merged(small_truth):
    truth = _truth(small_truth)
    assert truth.twin_pairs, "the shared fixture has a near-twin pair"
    a, b = truth.twin_pairs[0]
    assert all(row["kept_apart"] for row in score_twins(truth, []))
    rows = score_twins(truth, [[a, b]])
    assert rows[0]["kept_apart"] is False and rows[0]["units_a"] == [a] and rows[0]["units_b"] == [b]
    other = next(u for u in truth.neuron_of_unit if u not in (a, b))
    assert score_twins(truth, [[a, other]])[0]["kept_apart"] is True


@pytest.mark.slow
def test_demo_end_to_end_scores_splits_and_twins(tmp_path, capsys):
    args = ["demo", "--out", str(tmp_path / "demo"), "--duration", "40", "--no-render", "--quiet"]
    assert main(args) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert re.search(r"24 sorted units from 16 neurons; ids run from 0 to \d+ because the 3 neuron\(s\) split at random", text)
    assert "near twins (distinct)" in text
    found = re.search(r"near-twin pairs kept apart: (\d) of (\d)", text)
    assert found and found.group(2) == "2", text[-600:]
    assert "merge(s) applied" in text and "F1" in text
    assert main(args) == 0  # a rerun reuses the recording
    assert "Reusing the demo recording" in capsys.readouterr().out
