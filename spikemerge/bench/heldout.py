"""Held-out batches of the sorted bench: the registry, where their scores live, and their tables.

A batch (``scripts/heldout_batches.toml``) is two new seeds and, per scenario, the recording
parameters its sets are built with. Whoever builds it records the presets' scores when the sets are
built; spikemerge is scored once, after the judge is final (``scripts/heldout_batch.py``), into
``<cache>/scores/``, and the registry records which judge scored it (``scored = "..."``, so that a
batch stays scored when the cache is lost with its machine). Until then its sets are not to be looked
at (:func:`unscored`). The tables
format the two ``eval_sorted.py`` outputs of each scenario: the per-set table of
``docs/sorted_bench_history.md``, the pooled line under it, and the batch's row of the README's
summary with the verdict on issue 11's bar.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..tools.outputs import exclusive_lock, write_text_atomic
from .scoring import pool_scores
from .sorted import SORTER_SHORT_NAMES, SORTERS, dataset_spec, parse_dataset_name, parse_overrides

MIN_F1 = 0.9
"""The bar: pooled pair F1 of each scenario at least this, no pair of distinct neurons merged, and
spikemerge's F1 above the best preset's on every set."""


@dataclass(frozen=True)
class Scenario:
    """One scenario of a batch: its name (``drift``, ``burst``), its rows' label, its recording overrides."""

    name: str
    label: str
    overrides: tuple[tuple[str, object], ...]


@dataclass(frozen=True)
class Batch:
    """Two seeds (or more) and the scenarios built with them, each by every one of ``sorters``;
    ``scored`` names the judge that scored it once (empty while it is held out)."""

    seeds: tuple[int, ...]
    scenarios: tuple[Scenario, ...]
    scored: str = ""
    sorters: tuple[str, ...] = SORTERS

    @property
    def name(self) -> str:
        return "-".join(str(s) for s in self.seeds)


def load_batches(path: Path) -> dict[str, Batch]:
    """The registry's batches by name (their seeds joined by '-'); overrides are checked as ``--set`` checks them."""
    batches: dict[str, Batch] = {}
    for record in tomllib.loads(path.read_text()).get("batch", []):
        scenarios = tuple(
            Scenario(name, spec["label"], parse_overrides(f"{k}={v}" for k, v in _flat(spec.get("set", {}))))
            for name, spec in record.items() if name not in ("seeds", "scored", "sorters"))
        sorters = tuple(record.get("sorters", SORTERS))
        if unknown := [s for s in sorters if s not in SORTER_SHORT_NAMES]:
            raise ValueError(f"{path.name}: seeds {record['seeds']}: unknown sorter {', '.join(unknown)} "
                             f"(use {', '.join(SORTER_SHORT_NAMES)})")
        batch = Batch(tuple(int(s) for s in record["seeds"]), scenarios, str(record.get("scored", "")), sorters)
        if batch.name in batches:
            raise ValueError(f"{path.name}: seeds {batch.name} appear twice")
        batches[batch.name] = batch
    used = [s for b in batches.values() for s in b.seeds]
    if len(used) != len(set(used)):
        raise ValueError(f"{path.name}: a seed is used by two batches")
    return batches


def _flat(table: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """A ``set`` table's items with nested tables as dotted keys (``templates = { seed = 1 }`` or
    ``templates.seed = 1`` -> ``templates.seed``), as ``--set`` spells them."""
    out: list[tuple[str, Any]] = []
    for key, value in table.items():
        out += _flat(value, f"{prefix}{key}.") if isinstance(value, dict) else [(prefix + key, value)]
    return out


def repeated_parameters(batch: Batch, batches: dict[str, Batch]) -> list[str]:
    """Each scenario of ``batch`` whose recording parameters an earlier batch (lower seeds) already used,
    as "drift as in 229-230": a held-out batch must differ in its parameters as well as its seeds."""
    earlier = [b for b in batches.values() if min(b.seeds) < min(batch.seeds)]
    return [f"{scenario.name} as in {other.name}" for scenario in batch.scenarios for other in earlier
            if any(o.name == scenario.name and sorted(o.overrides) == sorted(scenario.overrides)
                   for o in other.scenarios)]


def dataset_folders(batch: Batch, scenario: Scenario, cache: Path) -> list[Path]:
    """The batch's dataset folders of ``scenario`` in ``cache``, every sorter and seed."""
    return [cache / dataset_spec(scenario.name, sorter, seed).name for sorter in batch.sorters
            for seed in batch.seeds]


def score_file(cache: Path, batch: Batch, scenario: Scenario, who: str) -> Path:
    """Where a scenario's scores live: ``who`` is ``presets`` (written at build) or ``ours`` (scored once)."""
    return cache / "scores" / f"{batch.name}_{scenario.name}_{who}.jsonl"


def _registry_lock(registry: Path) -> contextlib.AbstractContextManager:
    """Hold the registry while it is rewritten: two batches scored side by side each rewrite the whole
    file, and without a lock one ``scored`` line can be lost. The lock file lives in the temporary
    folder (keyed by the registry's path), not beside the registry in the repository; where ``flock``
    is missing (Windows) writers are not serialised."""
    try:
        import fcntl  # noqa: F401 - what exclusive_lock needs
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    key = hashlib.sha256(str(registry.resolve()).encode()).hexdigest()[:16]
    return exclusive_lock(Path(tempfile.gettempdir()) / f"spikemerge-registry-{key}.lock")


def mark_scored(registry: Path, batch: Batch, judge: str) -> None:
    """Record in the registry that ``judge`` scored ``batch`` (a ``scored`` line under its seeds), in place.

    The registry lives in the repository, so a batch stays scored on a new machine whose cache
    holds no ``ours`` file (:func:`unscored`, ``heldout_batch.py score``). Written whole or not at all,
    one writer at a time (:func:`_registry_lock`).
    """
    seeds = ", ".join(str(s) for s in batch.seeds)
    if batch.scored:
        raise ValueError(f"{registry.name}: batch {batch.name} was scored already, with {batch.scored}")
    with _registry_lock(registry):
        text = registry.read_text()  # read under the lock: another writer may have just replaced it
        line = re.search(rf"^seeds = \[{re.escape(seeds)}\]\n", text, flags=re.MULTILINE)
        if line is None:
            raise ValueError(f"{registry.name}: no line 'seeds = [{seeds}]' to record the score under")
        already = re.match(r"scored = (.*)\n", text[line.end():])
        if already:
            raise ValueError(f"{registry.name}: batch {batch.name} was scored already, with {json.loads(already.group(1))}")
        write_text_atomic(registry, text[:line.end()] + f"scored = {json.dumps(judge)}\n" + text[line.end():])


def unscored(datasets: list[Path], batches: dict[str, Batch]) -> list[Path]:
    """The datasets of a registered batch whose scenario spikemerge has not scored yet (the registry
    names no judge for the batch and the ``ours`` file is missing from the scores beside them): still
    held out, so not to be explained or re-judged."""
    held = []
    for folder in datasets:
        try:
            spec = parse_dataset_name(Path(folder).name)
        except ValueError:
            continue  # not a MEArec sorted-bench set (a generator set, say): no batch holds it
        for batch in batches.values():
            scenario = next((s for s in batch.scenarios if s.name == spec.scenario), None)
            if spec.seed in batch.seeds and scenario is not None and not batch.scored and \
                    not score_file(Path(folder).parent, batch, scenario, "ours").exists():
                held.append(Path(folder))
    return held


def held_out_error(datasets: list[Path], registry: Path) -> str | None:
    """The one-line refusal a development tool gives for sets of a batch not scored yet (None: none)."""
    if not registry.exists():
        return None
    held = unscored(datasets, load_batches(registry))
    if not held:
        return None
    return (f"{', '.join(h.name for h in held)}: held out and not scored yet; score the batch once "
            f"(scripts/heldout_batch.py score) before looking at it, or pass --peek-held-out")


@dataclass(frozen=True)
class ScenarioScores:
    """One scenario of a batch: its label, spikemerge's per-set lines and the presets' lines on the same sets."""

    name: str
    label: str
    ours: list[dict[str, Any]]
    presets: list[dict[str, Any]]


def read_lines(path: Path) -> list[dict[str, Any]]:
    """The per-set JSON lines of an ``eval_sorted.py`` output; its pooled lines (pooled again here, over
    the sets both files share) and other lines, e.g. warnings, are skipped."""
    rows = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("{"):
            row = json.loads(line)
            if row["dataset"] != "pooled":
                rows.append(row)
    return rows


def read_scenario(name: str, label: str, ours: Path, presets: Path) -> ScenarioScores:
    """A scenario's scores from its two ``eval_sorted.py`` outputs (spikemerge's lines, the presets' lines)."""
    mine = [r for r in read_lines(ours) if r["method"].startswith("spikemerge")]
    if not mine:
        raise ValueError(f"{ours} holds no spikemerge line: score the sets with eval_sorted.py --presets \"\"")
    return ScenarioScores(name, label, mine, [r for r in read_lines(presets) if r["method"].startswith("SI ")])


def set_key(dataset: str) -> tuple[str, int]:
    """``drift_tdc2_s139`` -> ("tdc2", 139), the order of the tables."""
    match = re.fullmatch(r"[a-z]+_([a-z0-9]+)_s(\d+)", dataset)
    if not match:
        raise ValueError(f"not a sorted-bench dataset name: {dataset!r}")
    return match.group(1), int(match.group(2))


def best_preset(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The preset row with the highest F1 (fewer wrong pairs first on ties); None when every F1 is 0."""
    scored = [r for r in rows if r["f1"] > 0]
    return max(scored, key=lambda r: (r["f1"], -r["wrong_merges"])) if scored else None


def _method(row: dict[str, Any]) -> str:
    return row["method"].removeprefix("SI ")


def _preset_cell(row: dict[str, Any] | None, zero_wrong: int) -> str:
    if row is None:
        return f"0.00 ({zero_wrong})"
    return f"{row['f1']:.2f} ({row['wrong_merges']}) `{_method(row)}`"


def set_rows(scores: ScenarioScores, judge: str) -> list[str]:
    """One table row per set, by sorter then seed: true pairs, our F1 (wrong), the set's best preset."""
    per_set = {r["dataset"]: r for r in scores.ours}
    header = ["held-out dataset (sorter, seed)", "true pairs", f"{judge} F1 (wrong)",
              "best SpikeInterface preset F1 (wrong)"]
    lines = ["| " + " | ".join(header) + " |", "|---|---|---|---|"]
    for name in sorted(per_set, key=set_key):
        sorter, seed = set_key(name)
        mine = per_set[name]
        theirs = [r for r in scores.presets if r["dataset"] == name]
        zero_wrong = min((r["wrong_merges"] for r in theirs), default=0)
        lines.append(f"| {scores.label} ({sorter}, {seed}) | {mine['true_pairs']} | "
                     f"**{mine['f1']:.2f}** ({mine['wrong_merges']}) | "
                     f"{_preset_cell(best_preset(theirs), zero_wrong)} |")
    return lines


def pooled(scores: ScenarioScores) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Ours pooled over the scenario's sets, and the preset whose pooled F1 on those sets is highest."""
    sets = {r["dataset"] for r in scores.ours}
    methods = sorted({r["method"] for r in scores.presets})
    theirs = [{"method": m, **pool_scores([r for r in scores.presets if r["method"] == m and r["dataset"] in sets])}
              for m in methods]
    return pool_scores(scores.ours), best_preset(theirs)


def pooled_line(scores: ScenarioScores) -> str:
    mine, theirs = pooled(scores)
    wrong = "none" if mine["wrong_merges"] == 0 else f"{mine['wrong_merges']} wrong"
    if "impure_foreign" in mine:  # not scored as pairs; shown so a merge of mostly another neuron's spikes is seen
        wrong += f"; impure units merged: {mine['impure_own']} to their neuron, {mine['impure_foreign']} to another"
    best = "no preset above 0" if theirs is None else \
        f"`{_method(theirs)}` {theirs['f1']:.2f} with {theirs['wrong_merges']}"
    return f"F1 {mine['f1']:.3f} (P {mine['precision']:.2f}, R {mine['recall']:.2f}, {wrong}; {best})"


def bar_misses(scenarios: list[ScenarioScores]) -> list[str]:
    """Where the batch falls short of the bar (empty: met): a scenario's pooled F1 under ``MIN_F1``
    (with its recall), pairs of distinct neurons merged, a set on which a preset does as well."""
    misses = []
    for scores in scenarios:
        mine, _ = pooled(scores)
        if mine["f1"] < MIN_F1:
            misses.append(f"{scores.name} F1 {mine['f1']:.3f} (recall {mine['recall']:.2f})")
        if mine["wrong_merges"]:
            misses.append(f"{scores.name}: {mine['wrong_merges']} distinct pairs merged")
        for row in scores.ours:
            best = best_preset([r for r in scores.presets if r["dataset"] == row["dataset"]])
            if best is not None and best["f1"] >= row["f1"]:
                misses.append(f"{row['dataset']}: `{_method(best)}` {best['f1']:.2f} against {row['f1']:.2f}")
    return misses


def batch_row(batch: str, scenarios: list[ScenarioScores], judge: str) -> str:
    """The batch's row of the README's summary: seeds, each scenario's label, the judge, each scenario's
    pooled F1 (wrong pairs), the best presets' pooled F1, and the bar (met, or what missed it)."""
    labels = " | ".join(s.label for s in scenarios)
    ours, theirs = [], []
    for scores in scenarios:
        mine, best = pooled(scores)
        ours.append(f"{mine['f1']:.3f} ({mine['wrong_merges']})")
        theirs.append("0.00" if best is None else f"{best['f1']:.2f}")
    misses = bar_misses(scenarios)
    verdict = "met" if not misses else "missed: " + "; ".join(misses)
    return (f"| {batch.replace('-', '–')} | {labels} | {judge} | {' | '.join(ours)} | {' / '.join(theirs)} | "
            f"{verdict} |")
