"""A probe drifting back and forth over a few neurons, cut by depth as a sorter without motion correction cuts them."""

from __future__ import annotations

import numpy as np

from .spikes import neuron_train, unit_arrays

PITCH_UM = 20.0  # unit_arrays puts channel k at k * 20 µm


def triangle(times_s: np.ndarray, amplitude_channels: float, period_s: float) -> np.ndarray:
    """Back-and-forth motion (channels): up for half a period, down for the other half."""
    phase = (times_s / period_s) % 1.0
    return amplitude_channels * (4.0 * np.abs(phase - 0.5) - 1.0)


def drifting_population(rng: np.random.Generator, centres: dict, amplitude: float = 1.5, period_s: float = 150.0,
                        duration_s: float = 300.0, channels: int = 16) -> tuple[dict, dict]:
    """Units cut by depth: each neuron's spike goes to the unit of the channel row it is nearest then.

    Returns ``(units, neuron_of)``: UnitArrays by id ``"<neuron><row>"``, and each unit's neuron.
    """
    units, neuron_of = {}, {}
    for name, centre in centres.items():
        times = neuron_train(rng, rate_hz=10, duration_s=duration_s)
        where = centre + triangle(times, amplitude, period_s)
        rows = np.rint(where).astype(int)
        scales = rng.normal(1.0, 0.1, times.size)
        for row in np.unique(rows):
            sel = rows == row
            if sel.sum() < 100:
                continue
            uid = f"{name}{row}"
            units[uid] = unit_arrays(rng, times[sel], scales[sel], centre=where[sel], channels=channels)
            neuron_of[uid] = name
    return units, neuron_of
