"""Fitting the metrics judge to labelled data: examples a person gives, and the user's own recording.

``fit_weights`` turns good/bad examples (their pair evidence) into per-term weights by logistic
regression with the built-in weights as a Gaussian prior (MAP), so a handful of examples nudges
the judge where they speak and the built-in physics holds everywhere else.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from .base import Example
from .params import DEFAULT_JUDGE_PARAMS, JudgeParams
from .terms import TERMS, pair_terms

WEIGHT_KEYS: tuple[str, ...] = TERMS + ("offset",)


def labelled_pairs(examples: Sequence[Example]) -> list[tuple[Mapping[str, Any], int]]:
    """(pair evidence, 1 for one neuron / 0 for two) from examples.

    A good example says its units are one neuron: every pair is a 1. A bad example says they
    should not merge: every pair is a 0.
    """
    out = []
    for example in examples:
        label = 1 if example.label == "good" else 0
        for pair in example.evidence.get("pairs", []) if example.evidence else []:
            out.append((pair, label))
    return out


def fit_weights(
    examples: Sequence[Example],
    params: JudgeParams = DEFAULT_JUDGE_PARAMS,
    prior: Mapping[str, float] | None = None,
    policy: str = "balanced",
    iterations: int = 50,
) -> tuple[dict[str, float], dict[str, Any]]:
    """MAP weights of the log-odds terms given labelled examples.

    The model is ``P(one neuron) = sigmoid(scale · (Σ_k w_k·term_k + offset) + base_offset)``
    with a Gaussian prior of precision ``params.prior_precision`` centred on the built-in
    weights (1 per term, offset 0, or ``prior``). Newton's method on this convex objective
    converges in a few steps. With no labelled pair the prior comes back unchanged.

    Returns
    -------
    weights : dict
        ``{term: weight, "offset": value}``.
    record : dict
        Counts and the moved weights, for the run record.
    """
    prior = {k: float((prior or {}).get(k, 0.0 if k == "offset" else 1.0)) for k in WEIGHT_KEYS}
    data = labelled_pairs(examples)
    theta0 = np.array([prior[k] for k in WEIGHT_KEYS])
    if not data:
        return dict(prior), {"pairs": 0, "examples": len(examples), "weights": dict(prior)}
    features = np.array([[pair_terms(e, params).terms[k] for k in TERMS] + [1.0] for e, _ in data])
    labels = np.array([y for _, y in data], dtype=float)
    x = params.log_odds_scale * features
    base = params.log_odds_offset
    precision = params.prior_precision
    theta = theta0.copy()
    for _ in range(iterations):
        z = np.clip(x @ theta + base, -50, 50)
        prob = 1.0 / (1.0 + np.exp(-z))
        gradient = x.T @ (prob - labels) + precision * (theta - theta0)
        hessian = (x * (prob * (1 - prob))[:, None]).T @ x + precision * np.eye(theta.size)
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    weights = {k: float(v) for k, v in zip(WEIGHT_KEYS, theta)}
    return weights, {"pairs": len(data), "examples": len(examples), "good": int(labels.sum()),
                     "bad": int(len(labels) - labels.sum()), "weights": weights}


__all__ = ["WEIGHT_KEYS", "fit_weights", "labelled_pairs"]
