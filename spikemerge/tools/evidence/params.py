"""Every tunable number of the evidence, in one frozen table (SpikeInterface-style defaults).

The table is hashed with the evidence it produces (see ``EvidenceParams.fingerprint``), so a
cached verdict never outlives a change of window or bin.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class EvidenceParams:
    """Windows, bins and sample sizes behind the evidence numbers.

    Times are in milliseconds unless the name says otherwise.
    """

    refractory_ms: float = 1.5
    """Half-width of the window where one neuron cannot fire twice (DESIGN: about ±1–2 ms)."""
    duplicate_ms: float = 0.25
    """Half-width of the duplicate window, centred on the lag by which the templates are shifted."""
    duplicate_search_ms: float = 0.3
    """The duplicate window may move this far from the template lag to the CCG's densest spot
    (the template lag is measured to a sample, spike times jitter by about one)."""
    duplicate_min_count: int = 20
    """A duplicate peak found away from the template lag needs at least this many coincidences."""
    max_lag_ms: float = 2.0
    """Largest template misalignment searched: real sorters offset one neuron's units by up to ~2 ms."""
    shoulder_ms: tuple[float, float] = (10.0, 50.0)
    """Lags that estimate the CCG baseline when the two trains are independent."""
    burst_ms: float = 15.0
    """Lags (beyond the refractory window) where a burst puts the later, smaller spikes."""
    time_bins: int = 20
    """Bins across the recording for presence and amplitude-over-time comparisons."""
    sequential_overlap: float = 0.3
    """Presence overlap below this: the units follow each other in time and are compared at the hand-over."""
    active_fraction: float = 0.1
    """A unit is active in a time bin with at least this share of its mean spikes per bin."""
    handover_fraction: float = 0.15
    """Share of the recording on each side of a hand-over whose spikes describe it."""
    handover_spikes: int = 60
    """Largest number of sampled waveforms per side compared at a hand-over."""
    pca_channels: int = 8
    """Channels (largest in either template, shared by both units) used for features."""
    pca_components: int = 5
    min_feature_spikes: int = 10
    """Fewer sampled waveforms than this in either unit: no feature comparison."""
    min_continuity_spikes: int = 30
    """Fewer spikes than this in the chosen time window: continuity falls back to all spikes."""
    density_grid: int = 256
    seed: int = 0
    """Seed of the spike subsampling in feature comparisons (results are reproducible)."""

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


DEFAULT_EVIDENCE_PARAMS = EvidenceParams()


@dataclass(frozen=True)
class EvidenceWorkers:
    """How evidence is spread over processes. Not hashed into any evidence: they change how fast
    the numbers come, never the numbers."""

    max_workers: int = 4
    """Worker processes at most with ``n_workers="auto"`` (and never more than the usable CPUs;
    ``spikemerge run`` asks for ``"auto"`` only when the machine has idle CPUs)."""
    parallel_min_pairs: int = 40
    """With ``n_workers="auto"``, fewer pairs than this in all groups are computed in this process:
    starting workers (about a second each to import scipy) would cost more than they save."""
    pairs_per_job: int = 12
    """Pairs of a group sent to a worker at once: a group of 11 units (55 pairs) is spread over
    every worker instead of keeping one busy while the others wait at the end."""
    in_flight_per_worker: int = 3
    """Jobs handed to each worker ahead of time: enough to keep it busy, few enough that only a
    handful of units' arrays are in memory at once."""


DEFAULT_EVIDENCE_WORKERS = EvidenceWorkers()
