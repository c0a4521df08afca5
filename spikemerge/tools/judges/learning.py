"""Learning from labelled examples, locally: a correction of the metrics judge where the examples speak, none elsewhere.

Why local and not a refit of the term weights: a curator who rejects one proposal means *this*
case (and cases like it) was wrong, not that the crosscorrelogram or the waveforms matter less
everywhere. A global refit from a handful of examples cannot honour that: measured on the
review test recording, one rejected proposal moved its own group only from P 0.994 to 0.896
(still a merge) while unrelated groups moved as much (0.99 to 0.879). So the built-in model
stays the prior everywhere, and each example adds a bump to the log-odds around its own pairs
in the judge's term space:

    Δ(t) = Σ_e k(t, t_e) · c_e

``t`` is a pair's vector of log-likelihood-ratio terms (``terms.TERMS``), divided term by term
by ``JudgeParams.learning_term_scales`` (the nats of a term that make a different kind of
case), followed by its evidence signature (``terms.signature``: the raw numbers, each in steps
of ``learning_signature``). Both halves matter: the terms say what the judge makes of a pair,
but they saturate, so every clear split reads the same and one rejected clear split would
speak for all of them; the raw numbers tell those pairs apart. ``k`` is a Gaussian of
bandwidth ``learning_bandwidth`` shifted and rescaled so that it is exactly 1 at distance 0 and
exactly 0 beyond ``learning_cutoff`` bandwidths: a pair that is an example gets the full
correction, a pair unlike every example keeps its built-in log-odds (and so its verdict and
confidence) bit for bit, and the correction is continuous in between.
``r_e`` is the shift that moves example pair ``e`` to its label's side of the policy's
threshold by ``learning_margin`` nats (0 for a pair already there: it pins, it does not push).
The coefficients ``c`` solve ``K c = r`` by least squares with a singular-value cut
(``learning_rcond``), so examples nearly alike act as one: the same label shares the work,
opposite labels meet halfway (identical examples with opposite labels put the pair at the
threshold), and no pair is shifted beyond the largest shift an example asked for. A good example
whose pair the built-in model vetoes, or finds too thin to decide, clears those flags on pairs
at least ``learning_override_kernel`` alike: the curator has looked at that case and said it is
one neuron.

Measured on the review test's recording (``SMALL_SPEC`` in ``tests/conftest.py``, 5 candidate
groups, one merge labelled bad and one "not merge" labelled good): the rejected merge goes from
P 0.994 to 0.27 (not merge), the pair the curator merged from 0.000002 to 0.73, and the three
other groups keep their P exactly. With the terms alone (no signature) two splits of the same
kind as the rejected one moved (0.990 -> 0.989, 0.982 -> 0.900).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ...errors import SpikemergeError
from .base import Example
from .params import DEFAULT_JUDGE_PARAMS, JudgeParams
from .terms import TERMS, PairScore, logit, score_pair, signature

__all__ = ["LocalCorrection", "fit_local_correction", "kernel", "point"]


def _scales(params: JudgeParams) -> np.ndarray:
    table = dict(params.learning_term_scales)
    missing = [k for k in TERMS if k not in table]
    if missing:
        raise SpikemergeError(f"JudgeParams.learning_term_scales lacks {', '.join(missing)}: give every term a scale")
    return np.array([float(table[k]) for k in TERMS])


def point(score: PairScore, evidence: Mapping[str, Any], params: JudgeParams = DEFAULT_JUDGE_PARAMS) -> np.ndarray:
    """Where a pair sits for the kernel: its standardized terms, then its evidence signature."""
    terms = np.array([score.terms.get(k, 0.0) for k in TERMS]) / _scales(params)
    return np.concatenate([terms, np.asarray(signature(evidence, params), dtype=float)])


def kernel(distance: np.ndarray | float, params: JudgeParams = DEFAULT_JUDGE_PARAMS) -> np.ndarray:
    """Similarity of two pairs from the distance between their points (see :func:`point`).

    A Gaussian of width ``learning_bandwidth`` minus its value at ``learning_cutoff`` widths,
    rescaled to 1 at 0: exactly 0 from the cutoff on, so far pairs are untouched, not merely
    little touched.
    """
    d = np.asarray(distance, dtype=float) / params.learning_bandwidth
    floor = math.exp(-0.5 * params.learning_cutoff ** 2)
    return np.clip((np.exp(-0.5 * d ** 2) - floor) / (1.0 - floor), 0.0, 1.0)


@dataclass
class LocalCorrection:
    """What the metrics judge learned from its examples: one bump per labelled example pair."""

    params: JudgeParams
    centres: np.ndarray
    """Where the example pairs sit (see :func:`point`), one row each."""
    coefficients: np.ndarray
    labels: np.ndarray
    """1 for a pair of a good example, 0 for a bad one."""
    names: list[str] = field(default_factory=list)
    bounds: tuple[float, float] = (0.0, 0.0)
    """The largest shifts asked for, down and up: no pair is moved further than an example asked."""
    record: dict[str, Any] = field(default_factory=dict)

    def apply(self, score: PairScore, evidence: Mapping[str, Any]) -> PairScore:
        """``score`` (of the pair ``evidence``) with the learned correction added to its log-odds (changed in place)."""
        if not len(self.centres):
            return score
        weights = kernel(np.linalg.norm(self.centres - point(score, evidence, self.params), axis=1), self.params)
        if not np.any(weights > 0):
            return score
        delta = float(np.clip(weights @ self.coefficients, *self.bounds))
        score.log_odds += delta
        nearest = int(np.argmax(weights))
        good = weights * (self.labels == 1)
        cleared = (score.veto or score.thin) and delta >= 0 and \
            good.max(initial=0.0) >= self.params.learning_override_kernel
        lifted = "a veto by the crosscorrelogram" if score.veto else "the thin-evidence flag"
        if cleared:
            score.veto = score.thin = False
        if delta == 0.0 and not cleared:
            return score
        score.reasons = {**score.reasons, "examples": (
            f"like example {self.names[nearest]!r} ({'good' if self.labels[nearest] else 'bad'}, "
            f"{100 * weights[nearest]:.0f}% alike): the examples move its log-odds by {delta:+.2f}"
            + (f"; a person judged a case this alike one neuron, which lifts {lifted}" if cleared else ""))}
        return score


def _labelled(examples: Sequence[Example], params: JudgeParams, weights: Mapping[str, float] | None
              ) -> list[tuple[PairScore, np.ndarray, int, str]]:
    out = []
    for example in examples:
        label = 1 if example.label == "good" else 0
        for pair in (example.evidence or {}).get("pairs", []) or []:
            score = score_pair(pair, params, weights)
            out.append((score, point(score, pair, params), label, example.name))
    return out


def fit_local_correction(examples: Sequence[Example], policy_threshold: float,
                         params: JudgeParams = DEFAULT_JUDGE_PARAMS,
                         weights: Mapping[str, float] | None = None) -> LocalCorrection:
    """The local correction that puts every example pair on its label's side of the threshold.

    Parameters
    ----------
    examples : sequence of Example
        Labelled groups with their pair evidence; a good example says every pair is one
        neuron, a bad one that none is (examples without evidence teach nothing here).
    policy_threshold : float
        The policy's merge probability; the target is ``logit(threshold) ± learning_margin``.
    params, weights
        The judge's table and term weights, so examples are scored as the judged pairs are.

    Returns
    -------
    LocalCorrection
        Apply it to each judged pair's score; its ``record`` is what ``run.json`` shows.
    """
    data = _labelled(examples, params, weights)
    _scales(params)  # a table that misses a term fails here, examples or not
    cut = logit(policy_threshold)
    if not data:
        empty = np.zeros((0, len(TERMS) + len(params.learning_signature)))
        return LocalCorrection(params, empty, np.zeros(0), np.zeros(0), [], {
            "method": "local", "examples": len(examples), "pairs": 0, "moved": 0})
    centres = np.array([x for _, x, _, _ in data])
    labels = np.array([y for _, _, y, _ in data])
    z = np.array([s.log_odds for s, _, _, _ in data])
    target = np.where(labels == 1, np.maximum(0.0, cut + params.learning_margin - z),
                      np.minimum(0.0, cut - params.learning_margin - z))
    gram = kernel(np.linalg.norm(centres[:, None, :] - centres[None, :, :], axis=2), params)
    coefficients = np.linalg.lstsq(gram, target, rcond=params.learning_rcond)[0]
    record = {
        "method": "local",
        "examples": len(examples), "pairs": len(data), "good": int(labels.sum()),
        "bad": int(len(labels) - labels.sum()), "moved": int(np.count_nonzero(target)),
        "bandwidth": params.learning_bandwidth, "margin_log_odds": params.learning_margin,
        "corrections": [{"example": name, "pair": [str(s.unit_a), str(s.unit_b)], "label": "good" if y else "bad",
                         "built_in_probability": round(s.probability, 4), "shift_log_odds": round(float(r), 4)}
                        for (s, _, y, name), r in zip(data, target)],
    }
    bounds = (float(min(0.0, target.min())), float(max(0.0, target.max())))
    return LocalCorrection(params, centres, coefficients, labels, [n for _, _, _, n in data], bounds, record)
