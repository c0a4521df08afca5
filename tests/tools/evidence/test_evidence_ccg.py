import numpy as np
import pytest

from spikemerge.tools.evidence.ccg import ccg_evidence, contamination, contamination_evidence, merged_train
from spikemerge.tools.evidence.params import EvidenceParams

from tests.tools.evidence.spikes import burst_train, copies_of, neuron_train


def test_an_offset_duplicate_is_found_at_the_template_lag_not_read_as_violations():
    rng = np.random.default_rng(0)
    a = neuron_train(rng)
    b = np.sort(a + 0.0012 + rng.normal(0, 0.00003, a.size))  # the same spikes, 1.2 ms later
    at_lag = ccg_evidence(a, b, lag_ms=1.2)
    unaligned = ccg_evidence(a, b, lag_ms=0.0)  # templates that could not be aligned: the CCG's own peak is used
    assert unaligned["duplicate_lag_ms"] == pytest.approx(1.2, abs=0.1)
    assert unaligned["ccg_refractory_count"] <= 2 and unaligned["duplicate_fraction"] > 0.95
    assert at_lag["duplicate_fraction"] > 0.95 and at_lag["duplicate_excess"] > 100
    assert at_lag["ccg_refractory_count"] <= 2
    assert at_lag["duplicate_lag_ms"] == pytest.approx(1.2, abs=0.1)


def test_a_split_neuron_shows_a_dip_and_two_neurons_do_not():
    rng = np.random.default_rng(1)
    neuron = neuron_train(rng, rate_hz=20)
    side = rng.random(neuron.size) < 0.5
    split = ccg_evidence(neuron[side], neuron[~side])
    other = neuron_train(rng, rate_hz=10)
    distinct = ccg_evidence(neuron[side], other)
    assert split["ccg_refractory_count"] == 0 and split["ccg_expected_refractory"] > 20
    assert split["ccg_depletion_p"] < 1e-6
    assert distinct["ccg_refractory_ratio"] == pytest.approx(1.0, abs=0.3)
    assert distinct["duplicate_fraction"] < 0.05


def test_jittered_copies_around_a_duplicate_peak_are_not_read_as_violations():
    """Two slices of one neuron, one of which also holds jittered copies of 5 % of the other's
    spikes (detected twice, 0.2 to 0.8 ms early, as between spykingcircus2 slices of a bursting
    cell): the copies are a duplicate peak, not refractory violations."""
    rng = np.random.default_rng(7)
    neuron = neuron_train(rng, rate_hz=20)
    side = rng.random(neuron.size) < 0.5
    a, b = neuron[side], neuron[~side]
    copies = rng.choice(a, size=int(0.05 * a.size), replace=False) - rng.uniform(0.0002, 0.0008, int(0.05 * a.size))
    evidence = ccg_evidence(a, np.sort(np.concatenate([b, copies])))
    assert evidence["duplicate_fraction"] < 0.3  # not a duplicate pair: the refractory dip must speak
    assert evidence["ccg_refractory_count"] <= 1 and evidence["ccg_depletion_p"] < 1e-3
    narrow = ccg_evidence(a, np.sort(np.concatenate([b, copies])),
                          params=EvidenceParams(duplicate_censor_ms=0.25, duplicate_more_peaks=0))
    assert narrow["ccg_refractory_count"] > 5 * evidence["ccg_refractory_count"] + 5


def test_a_burst_split_shows_a_one_sided_peak_beside_the_dip():
    rng = np.random.default_rng(2)
    times, position = burst_train(rng)
    first, later = times[position == 0], np.sort(times[position > 0])  # big first spike, smaller later ones
    e = ccg_evidence(first, later)
    assert e["burst_forward"] > 5 * max(1, e["burst_backward"])
    assert e["burst_asymmetry_p"] < 1e-6
    assert e["ccg_refractory_count"] == 0
    flat = ccg_evidence(neuron_train(rng), neuron_train(rng))
    assert flat["burst_asymmetry_p"] > 1e-3


def test_merged_contamination_is_low_for_a_split_and_high_for_two_neurons():
    rng = np.random.default_rng(3)
    neuron = neuron_train(rng, rate_hz=20)
    side = rng.random(neuron.size) < 0.5
    split = contamination_evidence(neuron[side], neuron[~side], 300.0)
    assert split["contamination_merged"] < 0.05
    two = contamination_evidence(neuron, neuron_train(rng, rate_hz=20), 300.0)
    assert two["contamination_merged"] > 0.15 > 10 * split["contamination_merged"]
    poisson = np.sort(rng.uniform(0, 300.0, 6000))
    assert contamination(poisson, 300.0) == pytest.approx(1.0, abs=0.25)


def test_merged_train_censors_the_duplicate_copies():
    a = np.array([1.0, 2.0, 3.0])
    assert merged_train(a, a + 0.0010, lag_ms=1.0).size == 3


def test_a_duplicate_at_1_9_ms_is_found_beside_a_few_coincidences_at_the_template_lag():
    # a sorter's duplicate 1.9 ms off, plus a handful of near-synchronous spikes at 0 ms (a
    # neighbour's, or the bursting cell's): the peak with more coincidences beyond chance wins
    rng = np.random.default_rng(5)
    a = neuron_train(rng, rate_hz=8)
    kept = a[rng.random(a.size) < 0.6]
    copy = kept + 0.0019 + rng.normal(0, 0.00003, kept.size)
    sync = a[rng.choice(a.size, 15, replace=False)] + rng.normal(0, 0.00005, 15)
    b = np.sort(np.concatenate([copy, sync]))
    e = ccg_evidence(a, b, lag_ms=0.0)
    assert e["duplicate_lag_ms"] == pytest.approx(1.9, abs=0.1)
    assert e["duplicate_fraction"] > 0.9


def test_copies_at_two_lags_are_both_censored():
    """A unit that re-detects another slice's spikes at two lags (Kilosort 4 with its merge off keeps
    several templates of a bursting cell, each aligned differently): 30 % of the slice's spikes
    0.5 ms early, 20 % 1.0 ms late, beside its own share of the neuron. The second peak is copies
    too, not refractory violations; read with one peak censored, it is an excess."""
    rng = np.random.default_rng(11)
    neuron = neuron_train(rng, rate_hz=20)
    side = rng.random(neuron.size) < 0.5
    a, own = neuron[side], neuron[~side]
    b = np.sort(np.concatenate([own, copies_of(rng, a, 0.3, -0.0005), copies_of(rng, a, 0.2, 0.0010)]))
    both = ccg_evidence(a, b)
    one = ccg_evidence(a, b, params=EvidenceParams(duplicate_more_peaks=0))
    assert both["duplicate_more_peaks"] == 1 and one["duplicate_more_peaks"] == 0
    assert both["duplicate_lag_ms"] < 0 < both["duplicate_fraction"] - 0.25  # the larger peak, early
    assert one["ccg_refractory_count"] > 5 * one["ccg_expected_refractory"]
    assert both["ccg_refractory_count"] < 0.2 * both["ccg_expected_refractory"] and both["ccg_depletion_p"] < 1e-6


def test_no_second_peak_is_read_into_independent_spikes():
    """Copies of a neighbour's spikes at one lag beside independent spikes: the refractory window
    holds chance coincidences, no further peak, and its count is what one censored peak leaves."""
    rng = np.random.default_rng(12)
    a, other = neuron_train(rng, rate_hz=20), neuron_train(rng, rate_hz=20)
    b = np.sort(np.concatenate([other, copies_of(rng, a, 0.3, -0.0005)]))
    more = ccg_evidence(a, b)
    one = ccg_evidence(a, b, params=EvidenceParams(duplicate_more_peaks=0))
    assert more["duplicate_more_peaks"] == 0
    assert more["ccg_refractory_count"] == one["ccg_refractory_count"] > 10
    assert more["ccg_refractory_ratio"] == pytest.approx(1.0, abs=0.35)


def test_a_few_spikes_detected_twice_without_a_peak_are_not_read_as_violations():
    """Two slices of one neuron firing at 3 Hz each, one of which re-detects 8 of the other's spikes
    0.3-0.47 ms off on either side (Kilosort 4 keeping two templates of one bursting cell): too few
    and too spread for a duplicate peak. Counted from 0.25 ms they fill the refractory window as
    independent trains would; the ring to ``refractory_inner_ms`` holds them all and the rest of the
    window none, so the ring is left out and the dip shows. Two independent trains keep the whole
    window: their ring holds its share."""
    rng = np.random.default_rng(21)
    neuron = neuron_train(rng, rate_hz=6)
    side = rng.random(neuron.size) < 0.5
    a, b = neuron[side], neuron[~side]
    picked = rng.choice(a, size=8, replace=False)
    again = picked + rng.choice([-1.0, 1.0], 8) * rng.uniform(0.0003, 0.00047, 8)
    b = np.sort(np.concatenate([b, again]))
    inner = ccg_evidence(a, b)
    from_duplicate_window = ccg_evidence(a, b, params=EvidenceParams(refractory_inner_ms=0.25))
    assert inner["duplicate_fraction"] < 0.01  # no copy peak to censor around
    assert from_duplicate_window["ccg_refractory_count"] == 8
    assert from_duplicate_window["ccg_refractory_count"] >= from_duplicate_window["ccg_expected_refractory"]
    assert inner["ccg_refractory_count"] == 0 and inner["ccg_expected_refractory"] > 4
    assert inner["ccg_depletion_p"] < 0.01
    assert inner["ccg_expected_refractory"] == pytest.approx(0.8 * from_duplicate_window["ccg_expected_refractory"])
    other = neuron_train(rng, rate_hz=20)
    independent = ccg_evidence(a, other)
    assert independent == ccg_evidence(a, other, params=EvidenceParams(refractory_inner_ms=0.25))
    assert independent["ccg_refractory_ratio"] == pytest.approx(1.0, abs=0.3)
