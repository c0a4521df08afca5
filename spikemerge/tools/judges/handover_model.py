"""A fitted model of thin drift hand-overs: P(two neurons) for a pair the crosscorrelogram cannot speak for.

Two drifting neighbours' fragments that follow each other on one motion-corrected trajectory, with
too few coincidences expected for the crosscorrelogram, read as one neuron term by term: shapes
alike within noise, places within tolerance, the drift term at its bound. What tells them from one
neuron's fragments is how those numbers go together (amplitudes that do not meet at the hand-over
beside a wider corrected separation and a lower amplitude ratio, for instance), which no one term
or threshold captured (``docs/sorted_bench_history.md``, metrics-v42 and v45). A gradient-boosted
tree ensemble, fitted on sorter-made drifting sets by ``scripts/fit_handover_model.py``, weighs them
together; the metrics judge caps such a pair's P(one neuron) at one minus the model's P(two
neurons) (``terms.cap_thin_handover``). The model can only lower a pair's P, never raise it.

The trees are data (``models/<name>.json``: features, baseline, per tree its nodes; what it was
fitted on and how it scored out of sample), read and evaluated here with numpy; scikit-learn fits
them and :func:`from_sklearn` exports them.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

MODELS = Path(__file__).with_name("models")
"""Where the fitted models ship (package data)."""
FORMAT = 1
"""Bumped when the file's layout changes."""
LOG_ODDS_FEATURE = "log_odds"
"""The pair's summed log-odds before the cap, fed to the model beside the evidence numbers."""


@dataclass(frozen=True)
class Tree:
    """One regression tree: node arrays, children by index, leaves hold their value."""

    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    left: np.ndarray
    right: np.ndarray
    leaf: np.ndarray
    value: np.ndarray

    def predict(self, x: np.ndarray) -> float:
        node = 0
        while not self.leaf[node]:
            v = x[self.feature[node]]
            go_left = bool(self.missing_left[node]) if math.isnan(v) else v <= self.threshold[node]
            node = int(self.left[node] if go_left else self.right[node])
        return float(self.value[node])


@dataclass(frozen=True)
class HandoverModel:
    """A fitted ensemble: the raw score is ``baseline + Σ tree(x)``, P(two neurons) its logistic."""

    features: tuple[str, ...]
    baseline: float
    trees: tuple[Tree, ...]
    digest: str
    """sha256 of the model file (first 16 hex digits): enters the judge's fingerprint."""
    record: Mapping[str, Any] = field(default_factory=dict)
    """What the model was fitted on and how it scored out of sample, as the fitting script wrote it."""

    def log_odds_two(self, evidence: Mapping[str, Any], log_odds: float) -> float:
        """log P(two neurons) / P(one neuron) for the pair."""
        x = feature_vector(self.features, evidence, log_odds)
        return self.baseline + sum(tree.predict(x) for tree in self.trees)


def feature_vector(features: Sequence[str], evidence: Mapping[str, Any], log_odds: float) -> np.ndarray:
    """A model's inputs from a pair's evidence numbers and summed log-odds (missing or non-finite: NaN),
    as fitted and as judged."""
    out = []
    for name in features:
        value = log_odds if name == LOG_ODDS_FEATURE else evidence.get(name)
        finite = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        out.append(float(value) if finite else math.nan)
    return np.asarray(out, dtype=float)


def _tree(nodes: Mapping[str, Sequence[Any]]) -> Tree:
    return Tree(feature=np.asarray(nodes["feature"], dtype=int), threshold=np.asarray(nodes["threshold"], dtype=float),
                missing_left=np.asarray(nodes["missing_left"], dtype=bool), left=np.asarray(nodes["left"], dtype=int),
                right=np.asarray(nodes["right"], dtype=int), leaf=np.asarray(nodes["leaf"], dtype=bool),
                value=np.asarray(nodes["value"], dtype=float))


def read_model(path: Path) -> HandoverModel:
    """A model file as :func:`write_model` wrote it; a clear error when it is not one."""
    raw = Path(path).read_bytes()
    payload = json.loads(raw)
    if payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a hand-over model of format {FORMAT}: refit it with scripts/fit_handover_model.py")
    return HandoverModel(features=tuple(payload["features"]), baseline=float(payload["baseline"]),
                         trees=tuple(_tree(t) for t in payload["trees"]),
                         digest=hashlib.sha256(raw).hexdigest()[:16], record=payload.get("record", {}))


@lru_cache(maxsize=8)
def load_model(name: str) -> HandoverModel | None:
    """The shipped model ``models/<name>.json``, or the model file at ``name`` when it ends in .json (a
    refit of one's own, or a fold's, ``scripts/fit_handover_model.py``); None for an empty name (the cap
    is off)."""
    if not name:
        return None
    path = Path(name) if name.endswith(".json") else MODELS / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no hand-over model {name!r} (shipped in {MODELS}, or a .json file): set "
                                f"JudgeParams.handover_model to one of {sorted(p.stem for p in MODELS.glob('*.json'))}, "
                                f"to a model file's path, or to '' to turn the cap off")
    return read_model(path)


def from_sklearn(model: Any, features: Sequence[str]) -> dict[str, Any]:
    """The payload of a fitted binary ``HistGradientBoostingClassifier`` (positive class: two neurons).

    Reads the fitted trees' nodes (``_predictors``, ``_baseline_prediction``: scikit-learn's own
    layout, stable since 1.0 but not public), so the judge needs no pickle and no scikit-learn version to read them.
    """
    if getattr(model, "n_trees_per_iteration_", 1) != 1 or list(model.classes_) != [False, True]:
        raise ValueError("a binary classifier whose positive class is True (two neurons) is needed")
    trees = []
    for (predictor,) in model._predictors:
        nodes = predictor.nodes
        if np.any(nodes["is_categorical"]):
            raise ValueError("categorical splits are not supported")
        trees.append({"feature": nodes["feature_idx"].tolist(), "threshold": nodes["num_threshold"].tolist(),
                      "missing_left": nodes["missing_go_to_left"].astype(bool).tolist(),
                      "left": nodes["left"].tolist(), "right": nodes["right"].tolist(),
                      "leaf": nodes["is_leaf"].astype(bool).tolist(), "value": nodes["value"].tolist()})
    return {"format": FORMAT, "features": list(features),
            "baseline": float(np.ravel(model._baseline_prediction)[0]), "trees": trees}


def write_model(payload: Mapping[str, Any], path: Path) -> Path:
    """Write a payload (:func:`from_sklearn`, with a ``record``) whole or not at all."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, separators=(",", ":")) + "\n")
    tmp.replace(path)
    return path
