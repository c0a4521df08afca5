"""Every weight and threshold of the metrics judge, in one frozen table (SpikeInterface-style defaults).

The judge sums log-likelihood ratios (one neuron vs two), one per kind of evidence; each row
here is a bound, a slope or a cut of one of those terms. The table is hashed into
``MetricsJudge.fingerprint()``, so a journalled verdict never outlives a change.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class JudgeParams:
    """The metrics judge's parameters. Log-odds are natural logs of P(one neuron)/P(two)."""

    # crosscorrelogram: a Poisson test of the refractory count, one neuron vs independent trains
    contamination_floor: float = 0.1
    """Share of the independent-firing coincidences one neuron's units may still show (noise and
    sorting errors); raised to the units' own refractory contamination when that is larger."""
    contamination_cap: float = 0.5
    ccg_bounds: tuple[float, float] = (-12.0, 6.0)
    min_expected_coincidences: float = 3.0
    """Fewer coincidences than this expected in the refractory window: the CCG cannot decide."""
    # duplicates: the same spikes detected twice, at the template lag
    duplicate_fraction: float = 0.3
    duplicate_excess: float = 10.0
    duplicate_log_odds: float = 8.0
    # waveforms: noise-aware cosine at the best lag (at the hand-over for units that follow each other)
    similarity_centre: float = 0.85
    similarity_slope: float = 20.0
    similarity_bounds: tuple[float, float] = (-10.0, 2.0)
    # continuity: a valley between the units along the discriminant axis or in amplitude
    gap_p: float = 1e-3
    """A valley this improbable under a unimodal density is a gap."""
    gap_min_expected: float = 5.0
    """Below this many spikes expected in the valley window the valley test has no power."""
    gap_log_odds_per_decade: float = 1.0
    gap_bounds: tuple[float, float] = (-6.0, 1.0)
    continuous_ratio: float = 0.7
    continuous_log_odds: float = 1.0
    # bursts: a one-sided short-lag CCG peak beside the refractory dip
    burst_p: float = 1e-3
    burst_min_ratio: float = 3.0
    burst_log_odds: float = 1.5
    # hand-over: one unit takes over as the other fades (a drift split)
    handover_presence: float = 0.3
    """Presence overlap below this: the units follow each other in time."""
    handover_amplitude_good: float = 0.5
    handover_amplitude_bad: float = 0.2
    handover_similarity: float = 0.9
    handover_log_odds: float = 1.5
    handover_mismatch_log_odds: float = -2.0
    # decisive evidence against, which a drift chain may not override
    veto_log_odds: float = -3.0
    # calibration of the summed log-odds into a probability: P = sigmoid(scale · L + offset)
    log_odds_scale: float = 1.0
    log_odds_offset: float = 0.0
    # learning from examples: MAP logistic regression with the built-in weights as the prior
    prior_precision: float = 2.0
    """Gaussian prior precision on each term weight and the offset around the built-in values."""

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


DEFAULT_JUDGE_PARAMS = JudgeParams()
