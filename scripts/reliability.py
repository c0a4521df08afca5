"""How calibrated is the offline metrics judge on sorter-made data? Reliability tables, Brier, ECE; optional refit.

    python scripts/reliability.py SORTED_BENCH/drift_sc2_s1 SORTED_BENCH/burst_tdc2_s1 ... [--fit] [--dump pairs.jsonl]

Each dataset (a sorted-bench folder: analyzer/, truth.json) is curated in process as
``scripts/eval_sorted.py`` does through ``spikemerge run --no-render`` (candidates, evidence, the
metrics judge, the merge plan). Then:

* every judged pair inside a candidate group gives its probability (``terms.score_pair``), its
  veto/thin flags and its truth: 1 same neuron, 0 two neurons, left out when it touches an impure
  unit (``unit_to_neuron`` null) or one the truth does not list;
* every merge verdict gives its confidence (that all its parts are right) and whether each of its
  parts holds the pure units of one neuron; every "not merge" verdict its confidence and whether
  no two of its pure units are one neuron.

Printed per dataset and pooled: a reliability table (bins of P: count, share right, mean P), the
Brier score and the expected calibration error (ECE, count-weighted |share right − mean P|).

``--fit`` fits the judge's two calibration numbers (``log_odds_scale``, ``log_odds_offset`` in
``judges/params.py``: P = sigmoid(scale·L + offset), L the plain sum of the terms) by logistic
regression on the pooled pairs, and checks the refit leave-one-dataset-out: fitted on all but one
dataset, scored on that one (reliability, ECE, pair F1 at 0.5, wrong pairs crossing 0.5, and the
dataset's F1 from re-judging its groups with the refitted numbers, as ``score_sorted`` counts it).

The term names are read from the judge (``terms.TERMS``), never listed here, so the script runs
unchanged when terms are added. Sets of a held-out batch that spikemerge has not scored yet
(``heldout_batches.toml``) are refused unless told ``--peek-held-out``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from spikemerge.bench.heldout import held_out_error

HELD_OUT_REGISTRY = Path(__file__).with_name("heldout_batches.toml")
"""Held-out batches: their sets are refused until spikemerge has scored them once."""
DEFAULT_BINS = 10


# ---------------------------------------------------------------- pure functions (tested without recordings)


def reliability_table(p: Sequence[float], y: Sequence[float], bins: int = DEFAULT_BINS) -> list[dict[str, Any]]:
    """Equal-width bins of ``p`` on [0, 1]: count, share of ``y`` = 1 (right), mean P. Empty bins are kept (n 0)."""
    p, y = np.asarray(p, dtype=float), np.asarray(y, dtype=float)
    index = np.minimum((p * bins).astype(int), bins - 1)
    rows = []
    for b in range(bins):
        mask = index == b
        n = int(mask.sum())
        rows.append({"lo": b / bins, "hi": (b + 1) / bins, "n": n,
                     "right": float(y[mask].mean()) if n else float("nan"),
                     "mean_p": float(p[mask].mean()) if n else float("nan")})
    return rows


def expected_calibration_error(p: Sequence[float], y: Sequence[float], bins: int = DEFAULT_BINS) -> float:
    """Σ_bins n_b/N · |share right − mean P| (NaN with no data)."""
    rows = reliability_table(p, y, bins)
    total = sum(r["n"] for r in rows)
    if not total:
        return float("nan")
    return float(sum(r["n"] * abs(r["right"] - r["mean_p"]) for r in rows if r["n"]) / total)


def brier(p: Sequence[float], y: Sequence[float]) -> float:
    """Mean squared difference between P and the 0/1 truth (NaN with no data)."""
    p, y = np.asarray(p, dtype=float), np.asarray(y, dtype=float)
    return float(np.mean((p - y) ** 2)) if p.size else float("nan")


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50.0, 50.0)))


def fit_scale_offset(log_odds: Sequence[float], y: Sequence[float], prior: tuple[float, float] = (1.0, 0.0),
                     precision: float = 1e-3, iterations: int = 100) -> tuple[float, float]:
    """(scale, offset) maximising Σ log-likelihood of ``y`` under P = sigmoid(scale·L + offset).

    Newton's method with step halving (``judges.calibrate.map_logistic``, which also fits the
    judge's weights to examples); a faint Gaussian prior (``precision``) around ``prior`` keeps
    the fit finite when the data are separable.
    """
    from spikemerge.tools.judges.calibrate import map_logistic

    x = np.column_stack([np.asarray(log_odds, dtype=float), np.ones(len(log_odds))])
    theta = map_logistic(x, np.asarray(y, dtype=float), np.asarray(prior, dtype=float), precision,
                         iterations=iterations, tolerance=1e-9)
    return float(theta[0]), float(theta[1])


def pair_counts(p: Sequence[float], y: Sequence[float], blocked: Sequence[bool] | None = None,
                threshold: float = 0.5) -> dict[str, Any]:
    """Pairs called one neuron (P ≥ ``threshold`` and not ``blocked``, e.g. vetoed) against the truth.

    ``wrong`` counts pairs of two neurons that cross the threshold (the wrong merges a pair
    judgement would make); F1 is over the pairs given (recall among the judged pairs).
    """
    p, y = np.asarray(p, dtype=float), np.asarray(y, dtype=int)
    called = p >= threshold
    if blocked is not None:
        called &= ~np.asarray(blocked, dtype=bool)
    tp = int(np.sum(called & (y == 1)))
    fp = int(np.sum(called & (y == 0)))
    fn = int(np.sum(~called & (y == 1)))
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    return {"tp": tp, "wrong": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A reliability table as aligned text (empty bins left out)."""
    lines = ["  P bin        n   right  mean P"]
    for r in rows:
        if r["n"]:
            lines.append(f"  {r['lo']:.1f}-{r['hi']:.1f}  {r['n']:6d}  {r['right']:6.2f}  {r['mean_p']:6.2f}")
    return "\n".join(lines)


def _f(x: float, digits: int = 3) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


# ---------------------------------------------------------------- one dataset, curated as `spikemerge run` does


def pair_truth(a: Any, b: Any, unit_to_neuron: Mapping[str, Any]) -> int | None:
    """1 same neuron, 0 two neurons, None when either unit is impure or not in the truth."""
    na, nb = unit_to_neuron.get(str(a)), unit_to_neuron.get(str(b))
    if na is None or nb is None:
        return None
    return int(na == nb)


def collect(folder: Path, policy: str = "balanced") -> dict[str, Any]:
    """Curate one dataset in process; its judged pairs, merge/keep-apart verdicts and re-judgeable requests."""
    from threadpoolctl import threadpool_limits

    from spikemerge.bench.sorted import load_dataset, score_sorted
    from spikemerge.tools.judges.base import JudgeRequest
    from spikemerge.tools.judges.metrics import MetricsJudge
    from spikemerge.tools.judges.terms import pair_terms, score_pair
    from spikemerge.tools.session import CurationSession

    start = time.perf_counter()
    data = load_dataset(folder)
    truth = data.truth
    u2n = truth["unit_to_neuron"]
    judge = MetricsJudge()
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        session = CurationSession.from_analyzer(data.analyzer, Path(tmp) / "out", policy=policy, progress=False)
        session.find_candidates()
        session.judge_group(judge=judge)
        plan = session.plan_merges()
        requests = [JudgeRequest(group_id=g, unit_ids=tuple(group.unit_ids), evidence=session.evidence(g))
                    for g, group in sorted(session.groups.items())]
        verdicts = dict(session.verdicts)
        unit_ids = list(session.info.unit_ids)
    pairs, seen = [], set()
    for request in requests:
        for e in request.evidence.get("pairs", []):
            key = frozenset((str(e["unit_a"]), str(e["unit_b"])))
            if key in seen:
                continue
            seen.add(key)
            raw = pair_terms(e, judge.params)
            score = score_pair(e, judge.params)
            pairs.append({"group": request.group_id, "a": str(e["unit_a"]), "b": str(e["unit_b"]),
                          "L": raw.log_odds, "p": score.probability, "veto": score.veto, "thin": score.thin,
                          "duplicate": score.duplicate, "handover": score.handover, "terms": dict(raw.terms),
                          "truth": pair_truth(e["unit_a"], e["unit_b"], u2n)})
    return {"name": Path(folder).name, "pairs": pairs, "requests": requests, "unit_ids": unit_ids,
            "truth": truth, "policy": policy, "verdicts": verdict_rows(verdicts.values(), u2n),
            "score": score_sorted(plan.groups, truth), "seconds": time.perf_counter() - start}


def part_truth(part: Sequence[Any], unit_to_neuron: Mapping[str, Any]) -> int | None:
    """1 when a merged part's pure units are one neuron, 0 when they are several, None with fewer than two
    (an impure unit's spikes belong to no one neuron: it neither makes nor breaks a merge)."""
    neurons = [n for n in (unit_to_neuron.get(str(u)) for u in part) if n is not None]
    return None if len(neurons) < 2 else int(len(set(neurons)) == 1)


def verdict_truth(part_truths: Sequence[int | None]) -> int | None:
    """A merge verdict is right when every part with a truth (``part_truth``) is; None when no part has one."""
    known = [t for t in part_truths if t is not None]
    return int(all(known)) if known else None


def verdict_rows(verdicts, unit_to_neuron: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per merge verdict (right: every part's pure units one neuron; its confidence is that all
    its parts are right) and per keep-apart verdict (right: no two of its pure units one neuron); a merge
    none of whose parts holds two pure units has truth None."""
    rows = []
    for v in verdicts:
        if v.decision == "merge":
            truth = verdict_truth([part_truth(part, unit_to_neuron) for part in v.merge_groups])
            rows.append({"kind": "merge", "group": v.group_id,
                         "units": [[str(u) for u in part] for part in v.merge_groups],
                         "p": float(v.confidence), "truth": truth})
        elif v.decision == "not merge":
            rows.append({"kind": "not merge", "group": v.group_id, "units": [str(u) for u in v.unit_ids],
                         "p": float(v.confidence), "truth": apart_truth(v.unit_ids, unit_to_neuron)})
    return rows


def apart_truth(unit_ids: Sequence[Any], unit_to_neuron: Mapping[str, Any]) -> int | None:
    """Whether no two of a group's pure units are one neuron (1 right, 0 wrong); None when it has fewer
    than two pure units (nothing to keep apart that the truth knows of)."""
    neurons = [n for n in (unit_to_neuron.get(str(u)) for u in unit_ids) if n is not None]
    return int(len(set(neurons)) == len(neurons)) if len(neurons) >= 2 else None


def keep_apart_refit(verdicts: Sequence[Mapping[str, Any]], precision: float = 1.0,
                     ) -> tuple[tuple[float, float], list[tuple[float, int]]]:
    """The keep-apart confidence's two numbers (``JudgeParams.keep_apart_confidence_scale``/``_offset``)
    refitted, and checked leave-one-set-out.

    ``verdicts``: one per keep-apart verdict with a truth, ``{"set": name, "strongest": log-odds, "truth":
    1 right / 0}``. Fitted as P(some pair one neuron) = sigmoid(scale·L + offset) (MAP logistic, prior of
    ``precision`` around 1, 0: the strongest pair's own P). Returns the fit on every set, and each
    verdict's confidence under the fit on the other sets beside its truth.
    """
    from spikemerge.tools.judges.metrics import keep_apart_confidence
    from spikemerge.tools.judges.params import DEFAULT_JUDGE_PARAMS

    def fit(rows):
        if not rows:
            return 1.0, 0.0
        return fit_scale_offset([v["strongest"] for v in rows], [1 - v["truth"] for v in rows], precision=precision)

    def held_out(v, scale, offset):
        params = replace(DEFAULT_JUDGE_PARAMS, keep_apart_confidence_scale=scale, keep_apart_confidence_offset=offset)
        return keep_apart_confidence(v["strongest"], params), v["truth"]

    return fit(verdicts), _leave_one_set_out(verdicts, fit, held_out)


def _leave_one_set_out(verdicts: Sequence[Mapping[str, Any]], fit, held_out) -> list[tuple[float, int]]:
    """Each verdict scored by ``held_out(verdict, scale, offset)`` (a (confidence, truth), or None to
    skip it) under ``fit`` (verdicts -> (scale, offset)) on the verdicts of the other sets."""
    held = []
    for name in sorted({v["set"] for v in verdicts}):
        scale, offset = fit([v for v in verdicts if v["set"] != name])
        held += [row for v in verdicts if v["set"] == name and (row := held_out(v, scale, offset)) is not None]
    return held


def merge_confidence_refit(verdicts: Sequence[Mapping[str, Any]], precision: float = 1.0,
                           ) -> tuple[tuple[float, float], list[tuple[float, int]]]:
    """The merge confidence's two numbers (``JudgeParams.merge_confidence_scale``/``_offset``) refitted,
    and checked leave-one-set-out.

    ``verdicts``: one per merge verdict, ``{"set": name, "parts": [(weakest log-odds, truth or None), ...]}``.
    Parts with a truth are fitted (MAP logistic, Gaussian prior of ``precision`` around scale 1, offset
    0: the weakest pair's own P). Returns the fit on every set, and for each merge verdict with a truth
    its confidence under the fit on the other sets (the product over its parts) beside its truth.
    """
    from spikemerge.tools.judges.metrics import merge_confidence
    from spikemerge.tools.judges.params import DEFAULT_JUDGE_PARAMS

    def fit(rows):
        parts = [(w, t) for v in rows for w, t in v["parts"] if t is not None]
        if not parts:
            return 1.0, 0.0
        return fit_scale_offset([w for w, _ in parts], [t for _, t in parts], precision=precision)

    def held_out(v, scale, offset):
        truth = verdict_truth([t for _, t in v["parts"]])
        if truth is None:
            return None
        params = replace(DEFAULT_JUDGE_PARAMS, merge_confidence_scale=scale, merge_confidence_offset=offset)
        return merge_confidence([w for w, _ in v["parts"]], params), truth

    return fit(verdicts), _leave_one_set_out(verdicts, fit, held_out)


def rejudge(dataset: Mapping[str, Any], scale: float, offset: float) -> dict[str, Any]:
    """The dataset's score (``score_sorted``) when its groups are judged with other calibration numbers."""
    from spikemerge.bench.sorted import score_sorted
    from spikemerge.tools.curation.plan import plan_merges
    from spikemerge.tools.judges.metrics import MetricsJudge
    from spikemerge.tools.judges.params import DEFAULT_JUDGE_PARAMS

    judge = MetricsJudge(replace(DEFAULT_JUDGE_PARAMS, log_odds_scale=scale, log_odds_offset=offset))
    verdicts = judge.judge_many(dataset["requests"], policy=dataset["policy"])
    return score_sorted(plan_merges(verdicts, dataset["unit_ids"]).groups, dataset["truth"])


# ---------------------------------------------------------------- reporting


def labelled(pairs: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(L, P, truth, veto) of the pairs with a truth."""
    kept = [r for r in pairs if r["truth"] is not None]
    return (np.array([r["L"] for r in kept], dtype=float), np.array([r["p"] for r in kept], dtype=float),
            np.array([r["truth"] for r in kept], dtype=int), np.array([r["veto"] for r in kept], dtype=bool))


def summary_line(p: np.ndarray, y: np.ndarray, bins: int) -> str:
    return (f"n {p.size} (same neuron {int(y.sum())}), Brier {_f(brier(p, y))}, "
            f"ECE {_f(expected_calibration_error(p, y, bins))}")


def report_dataset(name: str, pairs: Sequence[Mapping[str, Any]], verdicts: Sequence[Mapping[str, Any]],
                   bins: int, flags: bool = True) -> None:
    _, p, y, veto = labelled(pairs)
    excluded = sum(1 for r in pairs if r["truth"] is None)
    print(f"\n== {name}: pairs judged {len(pairs)}, with truth {p.size}, left out (impure/unmatched) {excluded}")
    print(f"pairs: {summary_line(p, y, bins)}")
    print(format_table(reliability_table(p, y, bins)))
    if flags and p.size:
        kept = [r for r in pairs if r["truth"] is not None]
        thin = np.array([r["thin"] for r in kept], dtype=bool)
        c = pair_counts(p, y, veto)
        print(f"  vetoed {int(veto.sum())} (same neuron among them {int(y[veto].sum())}), thin {int(thin.sum())} "
              f"(same neuron {int(y[thin].sum())}); called at 0.5 (not vetoed): tp {c['tp']} wrong {c['wrong']} "
              f"fn {c['fn']} F1 {_f(c['f1'])}; wrong pairs with raw P >= 0.5: "
              f"{int(np.sum((p >= 0.5) & (y == 0)))}")
    for kind in ("merge", "not merge"):
        rows = [v for v in verdicts if v["kind"] == kind and v["truth"] is not None]
        if not rows:
            continue
        vp = np.array([v["p"] for v in rows])
        vy = np.array([v["truth"] for v in rows])
        left = sum(1 for v in verdicts if v["kind"] == kind and v["truth"] is None)
        print(f"{kind} verdicts (confidence vs right): n {vp.size}, right {int(vy.sum())}, mean confidence "
              f"{_f(float(vp.mean()), 2)}, Brier {_f(brier(vp, vy))}, "
              f"ECE {_f(expected_calibration_error(vp, vy, bins))}"
              f"{f', left out (impure) {left}' if left else ''}")
        if kind == "merge":
            print(format_table(reliability_table(vp, vy, bins)))


def leave_one_out(datasets: Sequence[Mapping[str, Any]], bins: int, precision: float) -> dict[str, Any]:
    """Fit (scale, offset) on all datasets but one, score on that one; pooled out-of-fold figures too."""
    rows, pooled = [], {"p0": [], "p1": [], "y": [], "veto": []}
    print("\n== leave one dataset out: fitted on the others, scored on this one")
    print("  held out            scale  offset   ECE before/after   Brier before/after   pair F1 before/after  "
          "wrong pairs before/after   dataset F1 before/after (wrong)")
    for i, held in enumerate(datasets):
        train = [r for j, d in enumerate(datasets) if j != i for r in d["pairs"]]
        lt, _, yt, _ = labelled(train)
        scale, offset = fit_scale_offset(lt, yt, precision=precision)
        L, p0, y, veto = labelled(held["pairs"])
        p1 = sigmoid(scale * L + offset)
        c0, c1 = pair_counts(p0, y, veto), pair_counts(p1, y, veto)
        s0, s1 = held["score"], rejudge(held, scale, offset)
        row = {"dataset": held["name"], "scale": scale, "offset": offset,
               "ece_before": expected_calibration_error(p0, y, bins),
               "ece_after": expected_calibration_error(p1, y, bins),
               "brier_before": brier(p0, y), "brier_after": brier(p1, y), "pair_f1_before": c0["f1"],
               "pair_f1_after": c1["f1"], "wrong_before": c0["wrong"], "wrong_after": c1["wrong"],
               "f1_before": s0["f1"], "f1_after": s1["f1"], "wrong_merges_before": s0["wrong_merges"],
               "wrong_merges_after": s1["wrong_merges"]}
        rows.append(row)
        print(f"  {held['name']:<18} {scale:6.3f} {offset:7.3f}   {_f(row['ece_before'])} / {_f(row['ece_after'])}"
              f"      {_f(row['brier_before'])} / {_f(row['brier_after'])}        {_f(c0['f1'], 2)} / {_f(c1['f1'], 2)}"
              f"             {c0['wrong']:3d} / {c1['wrong']:<3d}               {_f(s0['f1'], 2)} / {_f(s1['f1'], 2)} "
              f"({s0['wrong_merges']} / {s1['wrong_merges']})")
        for key, value in (("p0", p0), ("p1", p1), ("y", y), ("veto", veto)):
            pooled[key].append(value)
    p0, p1, y, veto = (np.concatenate(pooled[k]) for k in ("p0", "p1", "y", "veto"))
    print(f"\npooled out-of-fold, built-in numbers: {summary_line(p0, y, bins)}")
    print(format_table(reliability_table(p0, y, bins)))
    print(f"pooled out-of-fold, refitted: {summary_line(p1, y, bins)}")
    print(format_table(reliability_table(p1, y, bins)))
    c0, c1 = pair_counts(p0, y, veto), pair_counts(p1, y, veto)
    print(f"pooled pair F1 at 0.5 (not vetoed): {_f(c0['f1'])} -> {_f(c1['f1'])}; wrong pairs {c0['wrong']} -> "
          f"{c1['wrong']}; dataset F1 mean {_f(np.mean([r['f1_before'] for r in rows]))} -> "
          f"{_f(np.mean([r['f1_after'] for r in rows]))}; wrong merges {sum(r['wrong_merges_before'] for r in rows)}"
          f" -> {sum(r['wrong_merges_after'] for r in rows)}")
    return {"folds": rows, "ece_before": expected_calibration_error(p0, y, bins),
            "ece_after": expected_calibration_error(p1, y, bins), "brier_before": brier(p0, y),
            "brier_after": brier(p1, y), "pair_before": c0, "pair_after": c1}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("datasets", nargs="+", type=Path, help="sorted-bench folders (analyzer/, truth.json)")
    parser.add_argument("--policy", default="balanced", help="spikemerge's policy (candidate gate and threshold)")
    parser.add_argument("--bins", type=int, default=DEFAULT_BINS, help="equal-width bins of P")
    parser.add_argument("--fit", action="store_true", help="refit log_odds_scale/offset; check leave-one-dataset-out")
    parser.add_argument("--precision", type=float, default=1e-3,
                        help="Gaussian prior precision of the refit around (scale 1, offset 0)")
    parser.add_argument("--dump", type=Path, default=None,
                        help="write every judged pair (terms, flags, truth) as JSON lines")
    parser.add_argument("--peek-held-out", action="store_true",
                        help="read sets of a held-out batch that spikemerge has not scored yet (no longer held out)")
    args = parser.parse_args(argv)
    if not args.peek_held_out and (refused := held_out_error(args.datasets, HELD_OUT_REGISTRY)):
        parser.error(refused)

    from spikemerge.tools.judges.metrics import MetricsJudge
    from spikemerge.tools.judges.params import DEFAULT_JUDGE_PARAMS
    from spikemerge.tools.judges.terms import TERMS

    print(f"judge {MetricsJudge().fingerprint()} (terms: {', '.join(TERMS)}); log_odds_scale "
          f"{DEFAULT_JUDGE_PARAMS.log_odds_scale}, log_odds_offset {DEFAULT_JUDGE_PARAMS.log_odds_offset}; "
          f"policy {args.policy}", flush=True)
    datasets = []
    for folder in args.datasets:
        d = collect(folder, args.policy)
        datasets.append(d)
        s = d["score"]
        print(f"{d['name']}: {len(d['requests'])} groups, {len(d['pairs'])} pairs, {d['seconds']:.1f} s; "
              f"F1 {_f(s['f1'], 2)}, wrong merges {s['wrong_merges']}", flush=True)
    if args.dump:
        with args.dump.open("w") as fh:
            for d in datasets:
                for r in d["pairs"]:
                    fh.write(json.dumps({"dataset": d["name"], **r}) + "\n")
    for d in datasets:
        report_dataset(d["name"], d["pairs"], d["verdicts"], args.bins)
    all_pairs = [r for d in datasets for r in d["pairs"]]
    all_verdicts = [v for d in datasets for v in d["verdicts"]]
    report_dataset("pooled", all_pairs, all_verdicts, args.bins)
    for label, thin in (("thin (too few coincidences expected for the CCG)", True),
                        ("not thin (powered CCG, duplicate or clean hand-over)", False)):
        _, p, y, _ = labelled([r for r in all_pairs if r["thin"] == thin])
        print(f"\npooled pairs, {label}: {summary_line(p, y, args.bins)}")
        print(format_table(reliability_table(p, y, args.bins)))
    if args.fit:
        L, p, y, veto = labelled(all_pairs)
        scale, offset = fit_scale_offset(L, y, precision=args.precision)
        p1 = sigmoid(scale * L + offset)
        c0, c1 = pair_counts(p, y, veto), pair_counts(p1, y, veto)
        print(f"\n== refit on all {p.size} pooled pairs: log_odds_scale {scale:.3f}, log_odds_offset {offset:.3f} "
              f"(in-sample ECE {_f(expected_calibration_error(p, y, args.bins))} -> "
              f"{_f(expected_calibration_error(p1, y, args.bins))}, Brier {_f(brier(p, y))} -> {_f(brier(p1, y))}, "
              f"pair F1 {_f(c0['f1'])} -> {_f(c1['f1'])}, wrong pairs {c0['wrong']} -> {c1['wrong']})")
        leave_one_out(datasets, args.bins, args.precision)
    return 0


if __name__ == "__main__":
    sys.exit(main())
