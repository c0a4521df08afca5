"""Why the offline judge missed or wrongly merged pairs on sorter-made datasets, and what a parameter change does.

    python scripts/explain_sorted.py DATASET...                   # score, as `spikemerge run` would
    python scripts/explain_sorted.py DATASET... -v                # ... and one line per missed or wrong pair
    python scripts/explain_sorted.py DATASET... --set gap_max_ratio=0.3 --set concurrent_max_separation_um=30
    python scripts/explain_sorted.py DATASET... --reliability   # how calibrated P is, pairs and merges
    python scripts/explain_sorted.py DATASET... --batches       # ... and each held-out batch's pooled F1 and bar
    python scripts/explain_sorted.py DATASET... --keep            # keep each set's record in scripts/dev_evidence/
    python scripts/explain_sorted.py scripts/dev_evidence/*.json.xz --set ...   # ... and judge from the kept records

A dataset is a whole sorted-bench folder (``analyzer/``, ``truth.json`` and ``READY``, see
``scripts/make_sorted_bench.py``). Candidates and evidence are computed once per dataset and kept
in ``--cache`` (keyed by the source of the evidence and candidate code, so a change there
recomputes them); the metrics judge then runs on them in a second or two, so a ``--set`` of
``JudgeParams`` fields can be tried across many sets. Without ``--set`` the verdicts are those of
``spikemerge run ANALYZER --no-render`` (same candidates, evidence, judge and policy).

The cache and the datasets do not outlive their machine. ``--keep`` writes a set's record (truth,
candidate groups, evidence; ``<name>.json.xz``) to be committed, and a kept record stands in for its
dataset in every mode: judge changes can then be measured on every kept set on a new machine at
once. A record's evidence is that of the code that wrote it; when the evidence or candidate code
has changed since, it says so, and such changes need the sets themselves.

With ``-v`` every true pair that was not merged is printed with the reason: ``nocand`` (never in
one candidate group; its plain, denoised and widened similarities, distance and CCG numbers) or
``apart`` (judged and kept apart; the pair's log-odds, its nonzero terms and flags), and every
merged pair of two distinct neurons as ``WRONG`` with the same numbers, and every impure unit merged
with none of its best neuron's units as ``IMPURE``. This is a development
tool: it refuses the sets of a batch of ``heldout_batches.toml`` that spikemerge has not scored yet
(``heldout_batch.py score``), unless told ``--peek-held-out``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import pickle
import sys
import tempfile
from dataclasses import fields, replace
from itertools import combinations
from pathlib import Path
from typing import Any, Iterator

import spikemerge
from spikemerge.bench.heldout import ScenarioScores, bar_misses, held_out_error, load_batches
from spikemerge.bench.scoring import pool_scores
from spikemerge.bench.sorted import (
    impure_placements, is_ready, load_truth, parse_dataset_name, score_sorted, true_pairs,
)

CODE = Path(spikemerge.__file__).parent / "tools"
EVIDENCE_SOURCES = ("evidence", "analyzer", "candidates.py")
KEPT = Path(__file__).with_name("dev_evidence")
"""Kept records of scored sets (``--keep``): what a judge change is measured on when no analyzer is at hand."""
KEPT_SUFFIX = ".json.xz"
PRESENCE_BIN_S = 10.0
"""Width of the bins in which a kept record counts each unit's spikes (``presence``)."""
RECORD_FORMAT = 2
"""Bumped when a record gains a field: cached records of an older format are computed again."""
HELD_OUT_REGISTRY = Path(__file__).with_name("heldout_batches.toml")
"""Held-out batches: their sets are refused until spikemerge has scored them once."""
SHOWN_FIELDS = ("template_similarity", "template_similarity_denoised", "template_similarity_stretch",
                "template_stretch", "distance_um", "ccg_expected_refractory", "ccg_refractory_count",
                "ccg_depletion_p", "duplicate_fraction", "burst_forward", "burst_backward", "burst_expected",
                "burst_asymmetry_p", "presence_overlap")


def _code_key() -> str:
    """A hash of the code that makes candidates and evidence: cached evidence never outlives it."""
    digest = hashlib.sha256()
    for name in EVIDENCE_SOURCES:
        path = CODE / name
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


def _outside_pairs(ctx, pairs: list[tuple[Any, Any]]) -> dict[frozenset, dict[str, float]]:
    """The numbers of true pairs that never met in a candidate group: why the search passed them by."""
    import numpy as np

    from spikemerge.tools.evidence.ccg import ccg_evidence
    from spikemerge.tools.evidence.pairs import denoised_similarity

    out = {}
    for a, b in pairs:
        record = dict(denoised_similarity(ctx, a, b))
        record["distance_um"] = float(np.linalg.norm(ctx.unit(a).location - ctx.unit(b).location))
        record.update(ccg_evidence(ctx.unit(a).times_s, ctx.unit(b).times_s, 0.0))
        out[frozenset((a, b))] = record
    return out


def _presence(ctx) -> dict[str, Any]:
    """Each unit's spike count per ``PRESENCE_BIN_S`` over the recording: when it fires, which no pair's
    numbers say (which unit fills another's silence, how a part's rate runs once merged), kept so a
    rule that reads it can be measured on the records before the evidence carries it."""
    import numpy as np

    edges = np.arange(0.0, ctx.duration_s + PRESENCE_BIN_S, PRESENCE_BIN_S)
    counts = [[u, np.histogram(ctx.times_s(u), bins=edges)[0].tolist()] for u in ctx.unit_ids]
    return {"bin_s": PRESENCE_BIN_S, "duration_s": float(ctx.duration_s), "counts": counts}


def _true_pairs(truth: dict, unit_ids: list) -> list[tuple[Any, Any]]:
    """The truth's pairs among ``unit_ids``, as those ids (truth.json keys them as strings)."""
    by_key = {str(u): u for u in unit_ids}
    among = {u: n for u, n in truth["unit_to_neuron"].items() if u in by_key}
    return [(by_key[a], by_key[b]) for a, b in true_pairs(among)]


def evidence_of(dataset: Path, cache: Path) -> dict[str, Any]:
    """Candidate groups, their evidence, and the numbers of true pairs outside every group (cached)."""
    from spikemerge.tools.session import CurationSession

    path = cache / f"{dataset.resolve().as_posix().strip('/').replace('/', '_')}.{_code_key()}.r{RECORD_FORMAT}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    truth = load_truth(dataset)
    with tempfile.TemporaryDirectory() as tmp:
        session = CurationSession.open(dataset / "analyzer", Path(tmp) / "out", progress=False)
        session.find_candidates()
        session.compute_evidence(n_workers="auto")
        groups = {g: (list(grp.unit_ids), [list(c) for c in grp.chains]) for g, grp in session.groups.items()}
        evidence = {g: session.evidence(g) for g in groups}
        together = {frozenset(p) for units, _ in groups.values() for p in combinations(units, 2)}
        outside = [p for p in _true_pairs(truth, list(session.context.unit_ids)) if frozenset(p) not in together]
        record = {"groups": groups, "evidence": evidence, "outside": _outside_pairs(session.context, outside),
                  "presence": _presence(session.context)}
    cache.mkdir(parents=True, exist_ok=True)
    tmp_path = path.with_suffix(".tmp")
    tmp_path.write_bytes(pickle.dumps(record))
    tmp_path.replace(path)
    return record


def load_set(path: Path, cache: Path) -> dict[str, Any]:
    """A set's record: ``name``, ``truth``, candidate ``groups``, their ``evidence``, the ``outside`` pairs'
    numbers and each unit's ``presence`` over time; read from a kept file (``--keep``), or computed from
    the dataset folder (cached)."""
    if path.name.endswith(KEPT_SUFFIX):
        return read_kept(path)
    return {"name": path.name, "truth": load_truth(path), **evidence_of(path, cache)}


def write_kept(record: dict[str, Any], folder: Path) -> Path:
    """``record`` as ``<folder>/<name>.json.xz``: the judge's whole input and the truth (10-560 kB; xz
    takes a quarter off gzip's size), so a judge change can be measured on this set after its analyzer
    is gone (the cache does not outlive its machine). Written whole or not at all; same record, same bytes."""
    payload = {
        "name": record["name"], "code_key": _code_key(), "truth": record["truth"],
        "groups": [[g, list(units), [list(c) for c in chains]] for g, (units, chains) in record["groups"].items()],
        "evidence": [[g, ev] for g, ev in record["evidence"].items()],
        "outside": [[sorted(pair, key=str), numbers] for pair, numbers in record["outside"].items()],
    }
    if record.get("presence") is not None:
        payload["presence"] = record["presence"]
    text = json.dumps(payload, default=lambda v: v.item() if hasattr(v, "item") else str(v), sort_keys=True)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{record['name']}{KEPT_SUFFIX}"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(lzma.compress(text.encode(), preset=9))
    tmp.replace(path)
    return path


_OLD_CODE_SEEN: set[str] = set()


def read_kept(path: Path) -> dict[str, Any]:
    """A record written by :func:`write_kept`; says so on stderr when the evidence code has changed
    since, once per older code (a thousand records come from a handful of codes)."""
    payload = json.loads(lzma.decompress(path.read_bytes()))
    if payload["code_key"] != _code_key() and payload["code_key"] not in _OLD_CODE_SEEN:
        _OLD_CODE_SEEN.add(payload["code_key"])
        print(f"explain_sorted: {path.name} (and any other record of that code) holds evidence of code "
              f"{payload['code_key']}, now {_code_key()}: judge changes compare on it, evidence or candidate "
              "changes need the set rebuilt", file=sys.stderr)
    return {"name": payload["name"], "truth": payload["truth"],
            "groups": {g: (units, chains) for g, units, chains in payload["groups"]},
            "evidence": {g: ev for g, ev in payload["evidence"]},
            "outside": {frozenset(pair): numbers for pair, numbers in payload["outside"]},
            "presence": payload.get("presence")}  # records kept before 2026-12-04 (seeds up to 260) have none


def kept_name(path: Path) -> Path:
    """The dataset a kept file stands for (its folder beside the file), for the held-out check."""
    return path.with_name(path.name.removesuffix(KEPT_SUFFIX))


def _numbers(record: dict[str, Any]) -> str:
    return " ".join(f"{k}={record[k]:.3g}" if isinstance(record[k], float) else f"{k}={record[k]}"
                    for k in SHOWN_FIELDS if k in record and record[k] is not None)


def _score_line(score) -> str:
    terms = " ".join(f"{k}={v:+.2f}" for k, v in score.terms.items() if abs(v) > 1e-9)
    flags = [f for f in ("duplicate", "thin", "handover", "veto", "on_trajectory", "fitted_two", "sequential",
                         "starved") if getattr(score, f)]
    return f"log_odds={score.log_odds:+.2f} [{' '.join(flags)}] {terms}"


def print_group(record: dict[str, Any], group: int, judge, policy: str) -> None:
    """Every pair of one candidate group with the neurons of its units, its score and its numbers."""
    from spikemerge.tools.judges.base import JudgeRequest

    neuron = record["truth"]["unit_to_neuron"]
    units, chains = record["groups"][group]
    request = JudgeRequest(group_id=group, unit_ids=tuple(units), evidence=record["evidence"][group])
    verdict = judge.judge(request, policy=policy)
    print(f"group {group} of {record['name']}: units {units}, chains {chains}, parts {verdict.merge_groups}")
    print(f"  neurons: {' '.join(f'{u}:{neuron.get(str(u))}' for u in units)}")
    scores = judge.scores(request)
    for p in record["evidence"][group]["pairs"]:
        a, b = p["unit_a"], p["unit_b"]
        same = "same" if neuron.get(str(a)) is not None and neuron.get(str(a)) == neuron.get(str(b)) else "    "
        print(f"  {same} {a}+{b}: {_score_line(scores[frozenset((a, b))])} | {_numbers(p)}")


def judged_groups(record: dict[str, Any], judge, policy: str) -> Iterator[tuple[Any, list, Any, dict]]:
    """Each candidate group of a set as the judge sees it: its id, units, verdict and pair scores."""
    from spikemerge.tools.judges.base import JudgeRequest

    for g, (units, _) in record["groups"].items():
        request = JudgeRequest(group_id=g, unit_ids=tuple(units), evidence=record["evidence"][g])
        yield g, units, judge.judge(request, policy=policy), judge.scores(request)


def judge_dataset(record: dict[str, Any], judge, policy: str, verbose: bool) -> dict[str, Any]:
    truth, name = record["truth"], record["name"]
    merges, scores, verdicts = [], {}, {}
    for g, _, verdict, group_scores in judged_groups(record, judge, policy):
        verdicts[g] = verdict
        merges += [list(part) for part in verdict.merge_groups]
        scores.update(group_scores)
    result = score_sorted(merges, truth)
    if verbose:
        neuron = {u: n for u, n in truth["unit_to_neuron"].items()}
        merged = {frozenset(p) for part in merges for p in combinations(part, 2)}
        evidence = {frozenset((p["unit_a"], p["unit_b"])): p for ev in record["evidence"].values() for p in ev["pairs"]}
        group_of = {u: g for g, (units, _) in record["groups"].items() for u in units}
        all_units = sorted({u for units, _ in record["groups"].values() for u in units} |
                           {u for pair in record["outside"] for u in pair}, key=str)
        for a, b in _true_pairs(truth, all_units):
            key = frozenset((a, b))
            if key in merged:
                continue
            if key in record["outside"]:
                print(f"  nocand {name} {a}+{b}: {_numbers(record['outside'][key])}")
            else:
                parts = verdicts[group_of[a]].merge_groups
                print(f"  apart  {name} {a}+{b} (group {group_of[a]}, parts {parts}): "
                      f"{_score_line(scores[key])} | {_numbers(evidence[key])}")
        for key in sorted(merged, key=lambda k: sorted(map(str, k))):
            a, b = sorted(key, key=str)
            na, nb = neuron.get(str(a)), neuron.get(str(b))
            if na is not None and nb is not None and na != nb:
                print(f"  WRONG  {name} {a}({na})+{b}({nb}): {_score_line(scores[key])} | "
                      f"{_numbers(evidence[key])}")
        merged_parts = [[str(u) for u in part] for part in merges]
        pure = {u: n for u, n in neuron.items() if n is not None}
        for unit, best, share, owner in impure_placements(merged_parts, pure, truth.get("purity") or {}):
            if str(best) != str(owner):
                part = next(p for p in merged_parts if unit in p)
                print(f"  IMPURE {name} {unit} ({share:.0%} of its spikes {best}'s) merged into "
                      f"{[x for x in part if x != unit]} ({owner}'s)")
    return result


def _reliability_script():
    """``scripts/reliability.py``, whose truth rules and tables the ``--reliability`` report uses."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("reliability", Path(__file__).with_name("reliability.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reliability_rows(record: dict[str, Any], judge, policy: str,
                     rel) -> tuple[list, list, list, list]:
    """Every judged pair's (P, one neuron?, thin?), every merge verdict's (confidence, all its parts right?),
    for the merge confidence's refit every merge verdict's parts (weakest carrying log-odds, right?), and
    every keep-apart verdict's strongest pair (log-odds) and confidence beside its truth; pure units only
    (``rel``: the reliability script, for ``pair_truth``, ``part_truth``, ``apart_truth``, ``verdict_rows``)."""
    from spikemerge.policies import get_policy
    from spikemerge.tools.judges.metrics import weakest_carrying
    from spikemerge.tools.judges.terms import logit

    rule = get_policy(policy)
    cut = logit(rule.merge_threshold)
    neuron = record["truth"]["unit_to_neuron"]
    pairs, verdicts, refit, apart, seen = [], [], [], [], set()
    for _, units, verdict, scores in judged_groups(record, judge, policy):
        for key, score in scores.items():
            truth = rel.pair_truth(*tuple(key), neuron)
            if key not in seen and truth is not None:
                pairs.append((score.probability, truth, score.thin))
            seen.add(key)
        verdicts.append(verdict)
        if verdict.decision == "merge":
            weakest = [weakest_carrying(part, scores, judge.params, cut, rule.abstain_on_thin, judge.weights).log_odds
                       for part in verdict.merge_groups]
            refit.append({"set": record["name"], "parts": [(w, rel.part_truth(part, neuron))
                                                         for w, part in zip(weakest, verdict.merge_groups)]})
        elif verdict.decision == "not merge" and (truth := rel.apart_truth(units, neuron)) is not None:
            apart.append({"set": record["name"], "strongest": max(s.log_odds for s in scores.values()),
                          "p": verdict.confidence, "truth": truth})
    merges = [(row["p"], row["truth"]) for row in rel.verdict_rows(verdicts, neuron)
              if row["kind"] == "merge" and row["truth"] is not None]
    return pairs, merges, refit, apart


def print_reliability(pairs: list, merges: list, refit: list, apart: list, rel) -> None:
    """Reliability tables (``rel``: the reliability script's) of the pairs' P and the merge and keep-apart
    verdicts' confidence, and both confidences refitted and scored leave-one-set-out."""
    keep = [(r["p"], r["truth"]) for r in apart]
    for name, rows in (("pairs", pairs), ("thin pairs", [r for r in pairs if r[2]]),
                       ("powered pairs", [r for r in pairs if not r[2]]), ("merge verdicts", merges),
                       ("keep-apart verdicts", keep)):
        p, y = [r[0] for r in rows], [r[1] for r in rows]
        print(f"{name}: n {len(rows)}, {'right' if 'verdicts' in name else 'one neuron'} {sum(y)}, "
              f"Brier {rel.brier(p, y):.3f}, "
              f"ECE {rel.expected_calibration_error(p, y):.3f}")
        if name in ("pairs", "merge verdicts", "keep-apart verdicts"):
            print(rel.format_table(rel.reliability_table(p, y)))
    parts = sum(t is not None for v in refit for _, t in v["parts"])
    _print_refit("merge", "merge_confidence", f"{parts} parts", *rel.merge_confidence_refit(refit), rel)
    _print_refit("keep-apart", "keep_apart_confidence", f"{len(apart)} verdicts", *rel.keep_apart_refit(apart), rel)


def _print_refit(kind: str, field: str, basis: str, fitted: tuple[float, float], held: list, rel) -> None:
    """One confidence's refitted numbers (``JudgeParams.<field>_scale``/``_offset``) and its verdicts
    scored leave-one-set-out, with their reliability table."""
    p, y = [r[0] for r in held], [r[1] for r in held]
    print(f"{kind} confidence refitted on {basis}: {field}_scale {fitted[0]:.3f}, {field}_offset {fitted[1]:.3f}; "
          f"leave one set out: {kind} verdicts n {len(held)}, Brier {rel.brier(p, y):.4f}, "
          f"ECE {rel.expected_calibration_error(p, y):.3f}")
    print(rel.format_table(rel.reliability_table(p, y)))


def batch_lines(results: list[tuple[str, dict[str, Any]]], registry: Path) -> list[str]:
    """Each registry batch's pooled F1 (wrong pairs) per scenario over the given sets, and whether it meets the
    bar (``bar_misses``; the records hold no preset scores, so its third part is not checked): how a judge
    change would have fared batch by batch, in sample."""
    batch_of = {seed: batch for batch in load_batches(registry).values() for seed in batch.seeds}
    rows: dict[str, dict[str, list]] = {}
    for name, result in results:
        spec = parse_dataset_name(name)
        if spec.seed in batch_of:
            rows.setdefault(batch_of[spec.seed].name, {}).setdefault(spec.scenario, []).append(
                {**result, "dataset": name})
    lines = []
    for batch, scenarios in sorted(rows.items()):
        scores = [ScenarioScores(scenario, scenario, ours, []) for scenario, ours in sorted(scenarios.items())]
        cells = [f"{s.name} {(mine := pool_scores(s.ours))['f1']:.3f} ({mine['wrong_merges']}, {mine['sets']} sets)"
                 for s in scores]
        lines.append(f"{batch}: {', '.join(cells)}: {'missed' if bar_misses(scores) else 'met'}")
    return lines


def judge_params(overrides: list[str]):
    from spikemerge.tools.judges.params import DEFAULT_JUDGE_PARAMS

    known = {f.name: f for f in fields(DEFAULT_JUDGE_PARAMS)}
    changes = {}
    for item in overrides:
        name, _, value = item.partition("=")
        if name not in known:
            raise SystemExit(f"explain_sorted: unknown JudgeParams field {name!r}")
        changes[name] = type(getattr(DEFAULT_JUDGE_PARAMS, name))(json.loads(value))
    return replace(DEFAULT_JUDGE_PARAMS, **changes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", type=Path, nargs="+",
                        help=f"sorted-bench folders (analyzer/, truth.json, READY) or kept records (*{KEPT_SUFFIX})")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "spikemerge-explain",
                        help="where candidates and evidence are kept between calls")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", dest="overrides",
                        help="a JudgeParams field for this call (repeatable; the value is JSON)")
    parser.add_argument("--policy", default="balanced")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per missed or wrong pair")
    parser.add_argument("--group", type=int, default=None,
                        help="print every pair of this candidate group of the (one) dataset instead of scoring")
    parser.add_argument("--reliability", action="store_true",
                        help="print how calibrated P is (pairs, merges) over the datasets instead of scoring")
    parser.add_argument("--batches", action="store_true",
                        help="after scoring, one line per held-out batch: pooled F1 (wrong) per scenario, F1 bar met?")
    parser.add_argument("--keep", type=Path, nargs="?", const=KEPT, default=None, metavar="DIR",
                        help=f"write each set's record to DIR (default {KEPT.relative_to(KEPT.parent.parent)}) "
                             "instead of scoring: to commit, so it outlives the machine")
    parser.add_argument("--peek-held-out", action="store_true",
                        help="read sets of a held-out batch that spikemerge has not scored yet (no longer held out)")
    args = parser.parse_args(argv)
    named = [kept_name(d) if d.name.endswith(KEPT_SUFFIX) else d for d in args.datasets]
    if not args.peek_held_out and (refused := held_out_error(named, HELD_OUT_REGISTRY)):
        parser.error(refused)
    unfinished = [d.name for d in args.datasets if not d.name.endswith(KEPT_SUFFIX) and not is_ready(d)]
    if unfinished:
        parser.error(f"{', '.join(unfinished)}: not a whole dataset (no READY file; a build that failed or is "
                     f"still running leaves none): leave {'it' if len(unfinished) == 1 else 'them'} out")
    if args.keep is not None:
        for dataset in args.datasets:
            print(write_kept(load_set(dataset, args.cache), args.keep), flush=True)
        return 0

    from spikemerge.tools.judges.metrics import MetricsJudge

    judge = MetricsJudge(judge_params(args.overrides))
    if args.group is not None:
        for dataset in args.datasets:
            print_group(load_set(dataset, args.cache), args.group, judge, args.policy)
        return 0
    if args.reliability:
        rel, pairs, merges, refit, apart = _reliability_script(), [], [], [], []
        for dataset in args.datasets:
            found = reliability_rows(load_set(dataset, args.cache), judge, args.policy, rel)
            pairs, merges, refit, apart = pairs + found[0], merges + found[1], refit + found[2], apart + found[3]
        print_reliability(pairs, merges, refit, apart, rel)
        return 0
    counts = ("tp", "fp", "fn", "wrong_merges", "impure_own", "impure_foreign")
    results = []
    for dataset in args.datasets:
        record = load_set(dataset, args.cache)
        result = judge_dataset(record, judge, args.policy, args.verbose)
        results.append((record["name"], result))
        print(json.dumps({"dataset": record["name"], "f1": round(result["f1"], 3),
                          **{k: result[k] for k in counts}}), flush=True)
    if len(results) > 1:
        pooled = pool_scores([result for _, result in results])
        print(json.dumps({"dataset": "pooled", "sets": pooled["sets"], **{k: pooled[k] for k in counts},
                          "f1": round(pooled["f1"], 3)}))
    if args.batches:
        print("\n".join(batch_lines(results, HELD_OUT_REGISTRY)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
