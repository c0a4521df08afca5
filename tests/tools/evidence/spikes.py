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


FS = 30000.0
NOISE_SD = 8.0


def waveform_shape(samples: int = 120, trough: int = 60, width: float = 1.0) -> np.ndarray:
    """A spike's time course: a trough then a slower positive bump (``width`` > 1 broadens it in time)."""
    t = np.arange(samples)
    return (-np.exp(-0.5 * ((t - trough) / (4.0 * width)) ** 2)
            + 0.35 * np.exp(-0.5 * ((t - trough - 14 * width) / (8.0 * width)) ** 2))


def channel_gains(centre: float, channels: int = 8, width: float = 1.5) -> np.ndarray:
    return np.exp(-0.5 * ((np.arange(channels) - centre) / width) ** 2)


def unit_arrays(rng: np.random.Generator, times: np.ndarray, scales: np.ndarray, centre: float | np.ndarray = 3.0,
                peak_uv: float = 120.0, shift: int = 0, n_waveforms: int = 300, channels: int = 8,
                width: float = 1.0):
    """UnitArrays of a unit from its spike times, per-spike amplitude scales and channel centre(s).

    Waveforms are ``scale · peak · shape ⊗ gains(centre) + noise``; ``centre`` may vary per
    spike (drift). ``shift`` moves the waveform earlier in the window by that many samples (a
    sorter's misaligned template; the unit's spike times should then be later by as much).
    ``width`` broadens the waveform in time (a bursting cell's later spikes).
    """
    from spikemerge.tools.evidence.pairs import UnitArrays

    order = np.argsort(times)
    times, scales = times[order], np.asarray(scales, float)[order]
    centres = np.broadcast_to(np.asarray(centre, float), times.shape)[order] if np.ndim(centre) else \
        np.full(times.shape, float(centre))
    shape = waveform_shape(width=width)
    if shift:
        shape = np.concatenate([shape[shift:], np.zeros(shift)])
    pick = np.sort(rng.choice(times.size, min(n_waveforms, times.size), replace=False))
    gains = np.stack([channel_gains(c, channels) for c in centres[pick]])
    waveforms = (peak_uv * scales[pick, None, None] * shape[None, :, None] * gains[:, None, :]
                 + rng.normal(0, NOISE_SD, (pick.size, shape.size, channels))).astype(np.float32)
    template = waveforms.mean(axis=0)
    main = int(np.argmax(np.ptp(template, axis=0)))
    amplitudes = -peak_uv * scales * np.array([channel_gains(c, channels)[main] for c in centres]) \
        + rng.normal(0, NOISE_SD, times.size)
    return UnitArrays(times_s=times, amplitudes=amplitudes, waveforms=waveforms, channels=np.arange(channels),
                      template=template, location=np.array([0.0, 20.0 * float(np.mean(centres))]),
                      main_channel=main, waveform_times_s=times[pick])


def pair_record(a_id, b_id, a, b, duration_s: float = 300.0, params=None) -> dict:
    """One pair's evidence, with the default ``EvidenceParams`` unless ``params`` is given."""
    from spikemerge.tools.evidence.pairs import unit_pair_evidence
    from spikemerge.tools.evidence.params import DEFAULT_EVIDENCE_PARAMS

    return unit_pair_evidence(a_id, b_id, a, b, FS, duration_s, np.full(a.template.shape[1], NOISE_SD),
                              params or DEFAULT_EVIDENCE_PARAMS)


def copies_of(rng: np.random.Generator, train: np.ndarray, share: float, lag_s: float) -> np.ndarray:
    """A share of ``train``'s spikes detected again ``lag_s`` later (a sorter's duplicate), jittered by ~1 sample."""
    picked = rng.choice(train, size=int(share * train.size), replace=False)
    return picked + lag_s + rng.normal(0, 0.00003, picked.size)


def group_record(units: dict, duration_s: float = 300.0, chains=()) -> dict:
    """Group evidence as ``group_evidence`` returns it, from UnitArrays by id."""
    from itertools import combinations

    ids = list(units)
    return {"pairs": [pair_record(x, y, units[x], units[y], duration_s) for x, y in combinations(ids, 2)],
            "chains": [list(c) for c in chains]}
