import numpy as np

from spikemerge.tools.evidence.presence import comparison_window, presence_evidence


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
