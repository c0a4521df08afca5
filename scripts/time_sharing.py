"""Does a time-only test tell one neuron's fragments from two neurons? Measured on a reliability dump.

    python scripts/reliability.py SORTED_BENCH/drift_sc2_s1 ... --dump pairs.jsonl
    python scripts/time_sharing.py pairs.jsonl [--bench SORTED_BENCH] [--list]

The thin pairs (too few coincidences expected for the crosscorrelogram's refractory test) carry
nearly all of the judge's errors on the sorter-made dev sets. For drift fragments a test on the
units' firing over time alone was proposed: one neuron's fragments take turns, two neurons fire
independently. This script computes two forms of that test for every judged pair of the dump
and prints how well each separates the truth (ROC AUC, 0.5 = no better than chance), on the
decision-relevant thin pairs and on all pairs:

* **turn-taking** (``turn_taking_p``): in time bins, the number of bins where both units are
  active against the hypergeometric null of independent activity (given each unit's number of
  active bins); a small p says the units avoid each other, as fragments that take turns do;
* **time sharing** (``time_sharing_llr``): a constrained Poisson likelihood ratio on per-bin
  counts. Each unit's full rate is a high quantile of its active-bin counts; two neurons have
  each unit's share of its full rate free in [0, 1] per bin, one neuron shared in time has the
  two shares adding up to at most one. The one-neuron model is nested, so the ratio (>= 0) only
  speaks against one neuron, where both units fire near their full rates at once. Only pairs
  that take turns somewhere are tested (units present together throughout are not time-shared).

Measured on the 8 dev sets (balanced, metrics-v5; see docs/sorted_bench_history.md): neither
separates. On the thin, not vetoed pairs with P >= 0.3, turn-taking has AUC 0.38 (distinct
neighbours take turns MORE often than fragments: under a rigid drift every neuron near a site
enters and leaves a sorter's unit as the probe moves, so activity is driven by the common
motion, not independent) and time sharing AUC 0.59 (one neuron's fragments often fire at near
full rate together for a while: the sorter cuts a neuron into concurrent pieces as it drifts).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

TIME_BINS = 40
"""Bins across the recording (7.5 s on the 300 s dev recordings: tens of spikes of a sparse unit per bin)."""
ACTIVE_FRACTION = 0.1
"""A unit is active in a bin with at least this share of its mean spikes per bin (as ``presence.py``)."""
FULL_QUANTILE = 0.75
"""Quantile of a unit's active-bin counts read as its full rate (the neuron wholly in it); a quantile,
not the maximum, so one bin's Poisson excess does not make every other bin look partial."""
MIN_SPIKES = 50
"""Fewer spikes in either unit: too few per bin to tell a full rate from a share (no test)."""
MIN_TURN = 0.2
"""Each unit must be quiet in this share of the other's active bins for the time-sharing test."""

_SHARES = np.linspace(0.0, 1.0, 101)[:, None]


def bin_counts(times_s: np.ndarray, duration_s: float, bins: int = TIME_BINS) -> np.ndarray:
    return np.histogram(times_s, np.linspace(0.0, duration_s, bins + 1))[0].astype(float)


def active(counts: np.ndarray) -> np.ndarray:
    return counts > ACTIVE_FRACTION * max(float(counts.mean()), 1e-12)


def turn_taking_p(active_a: np.ndarray, active_b: np.ndarray) -> float:
    """P(as few bins with both units active) under independent activity (hypergeometric, one-sided)."""
    from scipy.stats import hypergeom

    n, ka, kb = active_a.size, int(active_a.sum()), int(active_b.sum())
    return float(hypergeom.cdf(int((active_a & active_b).sum()), n, ka, kb))


def full_rate(counts: np.ndarray) -> float:
    on = counts[active(counts)]
    return float(np.quantile(on, FULL_QUANTILE)) if on.size else 0.0


def _loglik(n: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Poisson log-likelihood without ``log n!`` (it cancels in the ratio)."""
    mu = np.maximum(mu, 1e-12)
    return n * np.log(mu) - mu


def time_sharing_llr(counts_a: np.ndarray, counts_b: np.ndarray) -> float:
    """Log-likelihood ratio (nats, >= 0) of independent full-rate shares against shares adding up to at
    most one, summed over bins; NaN when the units do not take turns or either fires at no rate."""
    on_a, on_b = active(counts_a), active(counts_b)
    turn = min((on_a & ~on_b).sum() / max(1, on_a.sum()), (on_b & ~on_a).sum() / max(1, on_b.sum()))
    la, lb = full_rate(counts_a), full_rate(counts_b)
    if turn < MIN_TURN or la <= 0 or lb <= 0:
        return float("nan")
    sa, sb = np.minimum(counts_a / la, 1.0), np.minimum(counts_b / lb, 1.0)
    two = _loglik(counts_a, sa * la) + _loglik(counts_b, sb * lb)
    # one neuron: the first unit's share at most s, the second's at most 1 - s; the best s per bin
    one = (_loglik(counts_a[None, :], np.minimum(_SHARES, sa[None, :]) * la)
           + _loglik(counts_b[None, :], np.minimum(1.0 - _SHARES, sb[None, :]) * lb)).max(axis=0)
    return float(np.maximum(two - one, 0.0).sum())


def auc(same: Sequence[float], distinct: Sequence[float]) -> float:
    """P(a same-neuron pair scores above a distinct one), ties half (NaN without both kinds)."""
    s, d = np.asarray(same, float), np.asarray(distinct, float)
    if not s.size or not d.size:
        return float("nan")
    return float(((s[:, None] > d[None, :]).sum() + 0.5 * (s[:, None] == d[None, :]).sum()) / (s.size * d.size))


def measure(rows: list[dict[str, Any]], bench: Path) -> list[dict[str, Any]]:
    """Both statistics for every dumped pair (reads each dataset's analyzer once)."""
    from spikemerge.bench.sorted import load_dataset
    from spikemerge.tools.evidence.pairs import EvidenceContext

    by = defaultdict(list)
    for r in rows:
        by[r["dataset"]].append(r)
    out = []
    for name, pairs in by.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ctx = EvidenceContext(load_dataset(bench / name).analyzer)
        for r in pairs:
            ta, tb = ctx.times_s(ctx.unit_id(r["a"])), ctx.times_s(ctx.unit_id(r["b"]))
            ca, cb = bin_counts(ta, ctx.duration_s), bin_counts(tb, ctx.duration_s)
            tested = min(ta.size, tb.size) >= MIN_SPIKES
            out.append({**r, "turn_p": turn_taking_p(active(ca), active(cb)),
                        "sharing_llr": time_sharing_llr(ca, cb) if tested else float("nan")})
    return out


def report(rows: list[dict[str, Any]], listing: bool = False) -> None:
    subsets = [("thin, not vetoed, P >= 0.3", lambda r: r["thin"] and not r["veto"] and r["p"] >= 0.3),
               ("thin", lambda r: r["thin"]), ("all", lambda r: True)]
    print(f"{'pairs':<28}{'same':>6}{'distinct':>10}{'AUC turn-taking':>17}{'tested':>8}{'AUC sharing':>13}")
    for label, keep in subsets:
        rs = [r for r in rows if r["truth"] is not None and keep(r)]
        turn = {t: [-math.log10(max(r["turn_p"], 1e-300)) for r in rs if r["truth"] == t] for t in (0, 1)}
        share = {t: [-r["sharing_llr"] for r in rs if r["truth"] == t and math.isfinite(r["sharing_llr"])]
                 for t in (0, 1)}
        print(f"{label:<28}{len(turn[1]):>6}{len(turn[0]):>10}{auc(turn[1], turn[0]):>17.2f}"
              f"{len(share[0]) + len(share[1]):>8}{auc(share[1], share[0]):>13.2f}")
    if listing:
        for r in sorted(rows, key=lambda r: (r["dataset"], -r["p"])):
            if r["truth"] is not None and r["thin"] and not r["veto"] and r["p"] >= 0.3:
                print(f"  {r['dataset']:<16}{r['a']:>5},{r['b']:<5} truth {r['truth']} P {r['p']:.2f} "
                      f"turn-taking p {r['turn_p']:.1g} sharing LLR {r['sharing_llr']:.1f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dump", type=Path, help="pairs written by scripts/reliability.py --dump")
    parser.add_argument("--bench", type=Path, default=Path("/work/cache/sorted_bench"), help="sorted-bench root")
    parser.add_argument("--list", action="store_true", help="list the decision-relevant thin pairs")
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in args.dump.read_text().splitlines() if line.strip()]
    report(measure(rows, args.bench), args.list)
    return 0


if __name__ == "__main__":
    sys.exit(main())
