import numpy as np
import pytest

from spikemerge.tools.evidence.waveforms import noise_aware_similarity, template_lag


def _template(samples=150, channels=6):
    t = np.arange(samples)
    shape = -np.exp(-0.5 * ((t - 75) / 3.0) ** 2) + 0.4 * np.exp(-0.5 * ((t - 87) / 6.0) ** 2)
    gains = np.exp(-0.5 * ((np.arange(channels) - 2) / 1.5) ** 2)
    return 100.0 * shape[:, None] * gains[None, :]


def test_template_lag_finds_a_misalignment_of_two_ms_and_its_sign():
    a = _template()
    b = np.zeros_like(a)
    b[:-60] = a[60:]  # B's waveform 2 ms (at 30 kHz) earlier in its window: B's times are 60 samples later
    lag, similarity = template_lag(a, b, max_shift=60)
    assert lag == 60
    assert similarity > 0.95
    assert template_lag(a, a, 60) == (0, pytest.approx(1.0))


def test_a_noisy_low_amplitude_template_is_the_same_shape_once_noise_is_removed():
    rng = np.random.default_rng(0)
    sd = np.full(6, 10.0)
    truth = _template()
    a = truth + rng.normal(0, 10.0 / np.sqrt(500), truth.shape)  # 500 spikes averaged
    b = 0.15 * truth + rng.normal(0, 10.0 / np.sqrt(10), truth.shape)  # 10 small spikes
    raw = float(np.sum(a * b) / np.linalg.norm(a) / np.linalg.norm(b))
    result = noise_aware_similarity(a, b, sd, 500, 10)
    assert raw < 0.8
    assert result["template_similarity_denoised"] > 0.9
    assert result["template_difference_chi2"] == pytest.approx(1.0, abs=0.25)
    other = np.roll(truth, 3, axis=1) * 0.15 + rng.normal(0, 10.0 / np.sqrt(100), truth.shape)  # elsewhere, 100 spikes
    assert noise_aware_similarity(a, other, sd, 500, 100)["template_difference_chi2"] > 3


# ---------------------------------------------------------------- burst splits: the smaller unit is wider


def test_lag_scores_are_template_lags_products_at_every_shift():
    from spikemerge.tools.evidence.waveforms import lag_scores, overlap_similarity

    rng = np.random.default_rng(0)
    a, b = _template() + rng.normal(0, 1, (150, 6)), np.roll(_template(), -7, axis=0)
    scores = lag_scores(a, b, 20)
    assert int(np.argmax(scores)) - 20 == template_lag(a, b, 20)[0] == 7
    for shift in (-20, -3, 0, 5, 20):  # the same products template_lag takes one shift at a time
        x, y = (a[shift:], b[: 150 - shift]) if shift >= 0 else (a[: 150 + shift], b[-shift:])
        assert scores[shift + 20] == pytest.approx(float(np.sum(x * y)))
    assert overlap_similarity(a, b, 7) > 0.99


def test_a_smaller_wider_copy_matches_once_the_larger_is_widened_and_a_narrower_one_does_not():
    from spikemerge.tools.evidence.waveforms import stretch_similarity, stretched

    big = _template()
    stretches = np.arange(1.0, 1.51, 0.05)
    small_wide = 0.5 * stretched(big, 1.3)  # a bursting cell's later spike: smaller and 30 % wider
    found = stretch_similarity(big, small_wide, 60, stretches)
    plain = template_lag(big, small_wide, 60)[1]
    assert found["template_stretch"] == pytest.approx(1.3, abs=0.051)
    assert found["template_similarity_stretch"] > 0.999 > plain + 0.02
    # widening runs one way only: a smaller but narrower unit gains nothing (distinct cells do not pass for bursts)
    small_narrow = 0.5 * stretched(big, 1 / 1.3)
    narrow = stretch_similarity(big, small_narrow, 60, stretches)
    assert narrow["template_similarity_stretch"] == pytest.approx(template_lag(big, small_narrow, 60)[1], abs=0.01)
    # noise-aware: a 20-spike template's noise is not read as a shape difference
    rng = np.random.default_rng(1)
    noisy = small_wide + rng.normal(0, 10.0 / np.sqrt(20), small_wide.shape)
    denoised = stretch_similarity(big, noisy, 60, stretches, np.full(6, 10.0), 5000, 20)
    raw = stretch_similarity(big, noisy, 60, stretches)
    assert denoised["template_similarity_stretch"] > raw["template_similarity_stretch"]
    assert denoised["template_similarity_stretch"] > 0.97


def test_footprint_ignores_size_and_width_but_not_where_the_unit_is_seen():
    from spikemerge.tools.evidence.waveforms import footprint_similarity, stretched

    big = _template()
    assert footprint_similarity(big, 0.4 * stretched(big, 1.4)) > 0.999  # one cell's later burst spike
    moved = np.roll(big, 1, axis=1)  # the same time course one channel over
    assert footprint_similarity(big, moved) < 0.9


def test_stretch_search_reuses_spectra_and_weights_without_changing_a_bit():
    """The smaller template's spectrum and the widening matrices are computed once and shared: the
    numbers are those of the one-factor-at-a-time search, to the last bit."""
    from spikemerge.tools.evidence.waveforms import lag_scores, stretch_similarity, stretched

    def widened(t, factor):  # the matrix built afresh for every call, as before it was shared
        n = t.shape[0]
        centre = int(np.argmax(np.abs(t).max(axis=1)))
        where = centre + (np.arange(n) - centre) / factor
        lo = np.floor(where).astype(int)
        weights = np.zeros((n, n))
        for k, w in ((lo, 1.0 - (where - lo)), (lo + 1, where - lo)):
            inside = (k >= 0) & (k < n) & (where >= 0) & (where <= n - 1)
            weights[np.arange(n)[inside], k[inside]] += w[inside]
        return weights @ t

    rng = np.random.default_rng(7)
    big = rng.normal(0, 1, (90, 12)) * np.hanning(90)[:, None] * 5
    small = 0.5 * widened(big, 1.25) + rng.normal(0, 0.1, (90, 12))
    factors = np.arange(1.0, 1.5 + 0.025, 0.05)
    for factor in factors:
        assert np.array_equal(stretched(big, factor), widened(big, factor))
        assert np.array_equal(stretched(big, factor), stretched(big.copy(), factor))  # shared matrix, same result
    best, best_factor = -np.inf, 1.0
    norm_small = float(np.sum(small ** 2))
    for factor in factors:
        wide = widened(big, float(factor)) if factor != 1.0 else big
        value = float(lag_scores(wide, small, 60).max()) / np.sqrt(float(np.sum(wide ** 2)) * norm_small)
        if value > best + 1e-9:
            best, best_factor = value, float(factor)
    result = stretch_similarity(big, small, 60, factors)
    assert result == {"template_similarity_stretch": float(min(1.0, best)), "template_stretch": best_factor}
    assert best_factor > 1.0
