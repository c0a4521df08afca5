"""Spike trains and feature clouds made with numpy alone, for evidence and judge tests."""

from __future__ import annotations

import numpy as np


def neuron_train(rng: np.random.Generator, rate_hz: float = 15.0, duration_s: float = 300.0,
                 refractory_s: float = 0.002) -> np.ndarray:
    """A renewal train with a dead time: no two spikes closer than ``refractory_s``."""
    n = int(rate_hz * duration_s * 1.3) + 10
    isi = refractory_s + rng.exponential(1.0 / rate_hz - refractory_s, n)
    times = np.cumsum(isi)
    return times[times < duration_s]


def burst_train(rng: np.random.Generator, burst_rate_hz: float = 3.0, duration_s: float = 300.0,
                spikes_per_burst: int = 4, isi_s: tuple[float, float] = (0.003, 0.008)) -> tuple[np.ndarray, np.ndarray]:
    """Bursts of one neuron: (times, position in burst); amplitude decays along a burst."""
    onsets = np.cumsum(0.03 + rng.exponential(1.0 / burst_rate_hz, int(burst_rate_hz * duration_s * 1.2)))
    onsets = onsets[onsets < duration_s - 0.1]
    times, position = [], []
    for t in onsets:
        gaps = np.concatenate([[0.0], rng.uniform(*isi_s, spikes_per_burst - 1)])
        times.append(t + np.cumsum(gaps))
        position.append(np.arange(spikes_per_burst))
    return np.concatenate(times), np.concatenate(position)
