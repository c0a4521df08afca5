"""The offline metrics judge: decides from the evidence numbers alone (no network, no key)."""

from __future__ import annotations


import hashlib
import math
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Mapping

from ...policies import get_policy
from .base import Example, JudgeRequest, Verdict, VerdictCallback

CONTAMINATION = 0.15
"""Share of independent-looking coincidences one neuron's units may still show (noise spikes)."""
DUPLICATE_FRACTION = 0.3
"""Share of the smaller unit's spikes coinciding within ±0.25 ms that marks a duplicate."""


@dataclass
class PairScore:
    """One pair's log-odds of being one neuron, and the reasons, one per modality."""

    unit_a: Any
    unit_b: Any
    log_odds: float
    duplicate: bool
    reasons: dict[str, str] = field(default_factory=dict)

    @property
    def probability(self) -> float:
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, self.log_odds))))


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def score_pair(e: Mapping[str, Any]) -> PairScore:
    """Sum the evidence of one pair as log-likelihood ratios (same neuron vs two neurons).

    Each term is bounded so that no single number decides alone unless it is decisive by
    physics: a powered CCG with coincidences inside the refractory window, or a duplicate peak.
    """
    reasons: dict[str, str] = {}
    terms: list[float] = []
    a, b = e["unit_a"], e["unit_b"]
    duplicate = e.get("duplicate_fraction", 0.0) >= DUPLICATE_FRACTION and e.get("duplicate_excess", 0.0) >= 10
    expected, observed = e.get("ccg_expected_refractory", 0.0), e.get("ccg_refractory_count", 0)
    if duplicate:
        terms.append(8.0)
        reasons["crosscorrelograms"] = (
            f"{100 * e['duplicate_fraction']:.0f}% of spikes coincide within ±0.25 ms "
            f"({e['duplicate_excess']:.0f}x chance): the same spikes detected twice"
        )
    else:
        ccg = expected * (1 - CONTAMINATION) - observed * math.log(1 / CONTAMINATION)
        terms.append(max(-12.0, min(6.0, ccg)))
        if expected < 3:
            verdict = "too few coincidences expected to tell"
        elif observed <= CONTAMINATION * expected * 1.5:
            verdict = "a refractory dip, as in one neuron"
        else:
            verdict = "no refractory dip, as for two neurons"
        reasons["crosscorrelograms"] = (
            f"{observed} coincidences within ±1.5 ms where independent firing predicts {expected:.1f}: {verdict}"
        )
    similarity = e.get("template_similarity", 0.0)
    terms.append(max(-10.0, min(2.0, 20.0 * (similarity - 0.85))))
    reasons["waveforms"] = (
        f"templates {100 * similarity:.0f}% alike on shared channels, amplitude ratio "
        f"{e.get('template_amplitude_ratio', float('nan')):.2f}, {e.get('distance_um', float('nan')):.0f} µm apart"
    )
    concurrent = e.get("presence_overlap", 1.0) >= 0.5
    dprime = e.get("pca_dprime", float("nan"))
    if _finite(dprime):
        pca = 2.0 - 4.0 * dprime if concurrent else 1.5 - dprime
        terms.append(max(-8.0, min(2.0, pca)))
        shape = "one cloud" if dprime < 0.5 else "partly separated" if dprime < 2 else "separate clusters"
        reasons["pca"] = f"PCA on {e.get('shared_channels', 0)} shared channels: d′ {dprime:.2f} ({shape})"
    else:
        reasons["pca"] = "PCA not comparable: the units share no channels or have too few spikes"
    overlap, handover = e.get("presence_overlap", 1.0), e.get("amplitude_handover", float("nan"))
    concurrent_amp = e.get("amplitude_overlap_concurrent", float("nan"))
    if overlap < 0.3 and _finite(handover):
        terms.append(1.5 if handover >= 0.5 else -2.0 if handover < 0.2 else 0.0)
        reasons["amplitudes"] = (
            f"one unit takes over as the other fades (presence overlap {overlap:.2f}); amplitudes at the "
            f"handover overlap {handover:.2f}"
        )
    else:
        if _finite(concurrent_amp) and concurrent_amp < 0.2:
            terms.append(-1.0)
        amp_text = f"{concurrent_amp:.2f}" if _finite(concurrent_amp) else "n/a"
        reasons["amplitudes"] = (
            f"both units fire throughout (presence overlap {overlap:.2f}); amplitude distributions "
            f"overlap {amp_text} while both fire"
        )
    return PairScore(unit_a=a, unit_b=b, log_odds=float(sum(terms)), duplicate=duplicate, reasons=reasons)


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def merge_subset(unit_ids: Sequence[Any], scores: Mapping[frozenset, PairScore], threshold: float) -> list[Any]:
    """The largest set of units whose every pair clears ``threshold`` (complete linkage).

    Never chains A–B and B–C into A–B–C unless A–C also clears the threshold.
    """
    cut = _logit(threshold)
    clusters = [[u] for u in unit_ids]
    while True:
        best, best_pair = cut, None
        for i, j in combinations(range(len(clusters)), 2):
            link = min(scores[frozenset((a, b))].log_odds for a in clusters[i] for b in clusters[j])
            if link >= best:
                best, best_pair = link, (i, j)
        if best_pair is None:
            break
        i, j = best_pair
        clusters[i] = clusters[i] + clusters.pop(j)
    clusters.sort(key=len, reverse=True)
    return clusters[0] if len(clusters[0]) >= 2 else []


class MetricsJudge:
    """Decides from the evidence numbers alone: offline, free, and the baseline for other judges."""

    name = "metrics"
    model: str | None = None

    def fingerprint(self) -> str:
        source = f"metrics-v1 contamination={CONTAMINATION} duplicate={DUPLICATE_FRACTION}"
        return hashlib.sha256(source.encode()).hexdigest()[:16]

    def judge(self, request: JudgeRequest, policy: str = "balanced") -> Verdict:
        rule = get_policy(policy)
        pairs = request.evidence.get("pairs", [])
        scores = {frozenset((p["unit_a"], p["unit_b"])): score_pair(p) for p in pairs}
        units = list(request.unit_ids)
        if len(scores) != len(units) * (len(units) - 1) // 2:
            return Verdict.failed(request, "evidence is missing for some pairs of this group", self.name, None, policy)
        subset = merge_subset(units, scores, rule.merge_threshold)
        inside = [s for key, s in scores.items() if key <= set(subset)] if subset else []
        if subset:
            weakest = min(inside, key=lambda s: s.log_odds)
            confidence = weakest.probability
            shown = weakest
        else:
            strongest = max(scores.values(), key=lambda s: s.log_odds)
            confidence = 1.0 - strongest.probability
            shown = strongest
        decision = "merge" if subset else "not merge"
        reasoning = self._reasoning(units, subset, shown, rule.name)
        return Verdict(
            group_id=request.group_id,
            unit_ids=units,
            decision=decision,
            confidence=confidence,
            merge_unit_ids=subset,
            reasoning=reasoning,
            judge=self.name,
            model=None,
            policy=rule.name,
            reports=dict(shown.reasons),
        )

    @staticmethod
    def _reasoning(units: list, subset: list, shown: PairScore, policy: str) -> str:
        pair = f"units {shown.unit_a} and {shown.unit_b}"
        evidence = "; ".join(shown.reasons[k] for k in ("crosscorrelograms", "waveforms", "pca", "amplitudes")
                             if k in shown.reasons)
        if subset:
            lead = f"Merge units {', '.join(map(str, subset))}"
            if len(subset) < len(units):
                lead += f" (not {', '.join(str(u) for u in units if u not in subset)})"
            return f"{lead}: P(one neuron) {shown.probability:.2f} for the weakest pair, {pair} ({policy} policy). {evidence}."
        return f"Keep separate: P(one neuron) at most {shown.probability:.2f}, for {pair} ({policy} policy). {evidence}."

    def judge_many(
        self,
        requests: Sequence[JudgeRequest],
        examples: Sequence[Example] = (),
        policy: str = "balanced",
        on_verdict: VerdictCallback | None = None,
    ) -> list[Verdict]:
        """Judge each request in turn; examples are not used by this judge."""
        verdicts = []
        for request in requests:
            verdict = self.judge(request, policy)
            if on_verdict is not None:
                on_verdict(verdict)
            verdicts.append(verdict)
        return verdicts
