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
