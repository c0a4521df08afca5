import numpy as np

from spikemerge.tools.evidence.presence import comparison_window, handover_times, presence_evidence


def test_units_that_follow_each_other_are_compared_at_the_handover():
    rng = np.random.default_rng(0)
    first = np.sort(rng.uniform(0, 140, 2000))
    second = np.sort(rng.uniform(150, 300, 2000))
    amp_first = -100 + 0.2 * first + rng.normal(0, 5, first.size)  # drifting: amplitude fades
    amp_second = -70 + 0.0 * second + rng.normal(0, 5, second.size)
    window = comparison_window(first, second, 300.0)
    assert window.kind == "handover"
    assert window.mask(first, "a").sum() < first.size and window.mask(first, "a")[-1]
    assert window.mask(second, "b")[0] and not window.mask(second, "b")[-1]
    e = presence_evidence(first, amp_first, second, amp_second, 300.0)
    assert e["presence_overlap"] < 0.1
    assert e["amplitude_handover"] > 0.5  # they meet at the handover ...
    assert e["amplitude_overlap"] < 0.5  # ... not over the whole recording
    assert 15 < e["handover_gap_s"] < 30  # from the first's 95th to the second's 5th percentile


def test_units_firing_together_are_compared_while_both_fire():
    rng = np.random.default_rng(1)
    a, b = np.sort(rng.uniform(0, 300, 3000)), np.sort(rng.uniform(0, 300, 3000))
    assert comparison_window(a, b, 300.0).kind == "concurrent"


def test_a_unit_either_side_of_another_hands_over_twice():
    """A neuron that drifts away and back: the sorter gives its spikes to one unit at both ends of the
    recording and to another in the middle. The two units meet at both hand-overs, where the neuron's
    amplitude is the same for both; the first unit's last spikes and the second's first ones (one
    hand-over, as if the first unit ended where the second began) are 100 s apart in the neuron's life."""
    rng = np.random.default_rng(2)
    times = np.sort(rng.uniform(0, 300, 6000))
    place = np.minimum(times, 300 - times)  # away and back
    amplitudes = -150 + 0.5 * place + rng.normal(0, 4, times.size)
    middle = (times >= 100) & (times < 200)
    outer, inner = times[~middle], times[middle]
    moments = handover_times(outer, inner, 300.0)
    assert len(moments) == 2 and abs(moments[0] - 100) <= 15 and abs(moments[1] - 200) <= 15
    window = comparison_window(outer, inner, 300.0)
    assert window.kind == "handover" and window.handovers == moments
    near = outer[window.nearest(outer, 200)]
    assert np.all(np.abs(near - 100) < 30) or np.all(np.minimum(np.abs(near - 100), np.abs(near - 200)) < 30)
    e = presence_evidence(outer, amplitudes[~middle], inner, amplitudes[middle], 300.0)
    assert e["amplitude_handover"] > 0.5
    assert e["amplitude_overlap"] < 0.5  # over the whole recording they differ
