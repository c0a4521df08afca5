"""Collect a review: compare the curator's saved curation with the proposals, record it, learn from it.

Writes, in this order (each file atomically, so an interrupted collect can simply be run again):

1. ``OUT/review/proposals.json``: the proposals, kept before ``curation.json`` is replaced;
2. one example per correction in the example library: each rejected proposal as a *bad*
   example, each merge the curator added as a *good* one, with its evidence and figures and a
   note saying it came from a review (the next ``judge_group`` can show them to the judge);
3. ``OUT/review.json``: accepted, rejected and added merges with their group and confidence;
4. ``OUT/curation.json``: the curator's curation, with the proposals' provenance and a
   ``review`` block.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, Sequence

from ..errors import SpikemergeError
from ..tools.curation.format import CURATION_FILE, write_curation
from ..tools.curation.plan import new_unit_ids_for
from ..tools.evidence.pairs import group_evidence
from ..tools.examples import default_library, save_example
from ..tools.judges.base import Example, UnitId
from ..tools.outputs import write_json_atomic
from ..tools.schemas import write_model
from .params import DEFAULT_PARAMS, ReviewParams
from .proposals import (
    PROPOSALS_FILE, REVIEW_FILE, REVIEW_FOLDER, SAVED_FILE, Comparison, Proposed, compare, load_proposals,
    read_curated,
)
from .record import Agreement, LearntExample, ReviewedMerge, ReviewRecord


class ReviewSession(Protocol):
    """What a collect needs from a ``CurationSession`` (kept structural to avoid an import cycle)."""

    analyzer: Any
    context: Any
    info: Any
    out: Path
    policy: str
    judge_used: Any


@dataclass
class ReviewOutcome:
    """What a collect found and wrote."""

    record: ReviewRecord
    comparison: Comparison
    review_path: Path
    curation_path: Path

    def summary(self) -> str:
        learnt = ", ".join(f"{e.label} {e.name}" for e in self.record.examples) or "nothing to learn"
        return (f"{self.comparison.summary()}\n  review: {self.review_path}\n  curation: {self.curation_path}\n"
                f"  examples saved: {learnt}")

    @property
    def good_examples(self) -> list[str]:
        """Names of the saved good examples, for ``judge_group(good_examples=...)``."""
        return [e.name for e in self.record.examples if e.label == "good"]

    @property
    def bad_examples(self) -> list[str]:
        """Names of the saved bad examples, for ``judge_group(bad_examples=...)``."""
        return [e.name for e in self.record.examples if e.label == "bad"]


def default_saved_file(out: Path) -> Path:
    """Where the review GUI's "Save curation" button writes."""
    return Path(out) / REVIEW_FOLDER / SAVED_FILE


def example_name(source: str, unit_ids: Sequence[UnitId], params: ReviewParams = DEFAULT_PARAMS) -> str:
    """A stable library name for a correction: the same units of the same analyzer get the same name.

    A later review of the same units replaces the earlier example, so the library holds the
    curator's latest word on them.
    """
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(source).name)[:20] or "analyzer"
    place = hashlib.sha256(source.encode()).hexdigest()[:6]
    units = "-".join(sorted((str(u) for u in unit_ids), key=lambda s: (len(s), s)))
    name = f"review-{stem}-{place}-u{re.sub(r'[^A-Za-z0-9_.-]', '_', units)}"
    if len(name) > params.example_name_chars:
        name = f"review-{stem}-{place}-u{hashlib.sha256(units.encode()).hexdigest()[:12]}"
    return name


def _learn(session: ReviewSession, unit_ids: Sequence[UnitId], label: str, note: str, library: Path,
           render: bool, params: ReviewParams) -> LearntExample:
    units = list(unit_ids)
    images: dict[str, Path] = {}
    if render:
        from ..tools.render.groups import render_groups

        images = dict(render_groups(session.analyzer, {0: units}, session.out / "images").get(0, {}))
    example = Example(
        name=example_name(session.info.path, units, params), label=label, unit_ids=tuple(units), images=images,
        evidence=group_evidence(session.context, units), note=note, source=session.info.path,
    )
    folder = save_example(example, library, overwrite=True)
    return LearntExample(name=example.name, label=label, unit_ids=units, path=str(folder))


def _final_curation(curated: dict[str, Any], proposed: Proposed, review: dict[str, Any]) -> dict[str, Any]:
    """The curator's curation with every merge given a new unit id and the review in its provenance."""
    proposal_ids = {frozenset(map(str, p.unit_ids)): p.new_unit_id for p in proposed.merges}
    merges = [dict(m) for m in curated.get("merges") or []]
    in_use = {str(u) for u in curated["unit_ids"]} | {str(m["new_unit_id"]) for m in merges if m.get("new_unit_id") is not None}
    for merge in merges:
        if merge.get("new_unit_id") is None:
            candidate = proposal_ids.get(frozenset(map(str, merge["unit_ids"])))
            if candidate is not None and str(candidate) not in in_use:
                merge["new_unit_id"] = candidate
                in_use.add(str(candidate))
    missing = [m for m in merges if m.get("new_unit_id") is None]
    taken = list(curated["unit_ids"]) + [m["new_unit_id"] for m in merges if m.get("new_unit_id") is not None]
    for merge, new_id in zip(missing, new_unit_ids_for(taken, len(missing))):
        merge["new_unit_id"] = new_id
    provenance = {k: v for k, v in proposed.provenance.items() if k != "review"}
    provenance["review"] = review
    return {**curated, "merges": merges, "provenance": provenance}


def collect(
    session: ReviewSession,
    file: str | Path | None = None,
    library: str | Path | None = None,
    render: bool = True,
    params: ReviewParams = DEFAULT_PARAMS,
) -> ReviewOutcome:
    """Compare the curator's curation with the proposals of ``session.out`` and learn from the differences.

    Parameters
    ----------
    session : CurationSession
        A session over the analyzer the proposals were made on, with ``out`` their folder. Its
        ``decisions.csv`` and ``run.json`` are left as they are.
    file : path, optional
        Any SpikeInterface curation (format 2, or 1); default: what the review GUI saved
        (``OUT/review/saved_curation.json``).
    library : path, optional
        The example library; default ``$SPIKEMERGE_EXAMPLES``.
    render : bool
        Draw the examples' figures (cached), which a vision judge needs; the metrics judge
        reads only their evidence.

    Returns
    -------
    ReviewOutcome
        The record written to ``OUT/review.json``, the comparison and the paths written.
    """
    out = Path(session.out)
    path = Path(file) if file is not None else default_saved_file(out)
    if file is None and not path.exists():
        raise SpikemergeError(
            f"no saved curation in {path}: press 'Save curation' in the review GUI, "
            f"or pass the file: spikemerge review {out} --collect FILE"
        )
    proposed = load_proposals(out)
    curated = read_curated(path, proposed.unit_ids)
    comparison = compare(proposed, [m["unit_ids"] for m in curated.get("merges") or []])
    write_json_atomic(out / REVIEW_FOLDER / PROPOSALS_FILE, proposed.to_dict())

    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    library = Path(library) if library is not None else default_library()
    judge = proposed.provenance.get("judge") or "judge"
    examples: list[LearntExample] = []
    for proposal, replacement in comparison.rejected:
        units = ", ".join(map(str, proposal.unit_ids))
        confidence = f", confidence {proposal.confidence:.2f}" if proposal.confidence is not None else ""
        instead = f"; merged {', '.join(map(str, replacement))} instead" if replacement else ""
        note = (f"From a review on {now[:10]}: the curator rejected the proposed merge of units {units} "
                f"(group {proposal.group_id}, {judge} judge{confidence}){instead}.")
        examples.append(_learn(session, proposal.unit_ids, "bad", note, library, render, params))
    for added in comparison.added:
        units = ", ".join(map(str, added.unit_ids))
        judged = (f"group {added.group_id} judged {added.decision}"
                  + (f", confidence {added.confidence:.2f}" if added.confidence is not None else "")
                  if added.group_id is not None else "in no candidate group")
        note = f"From a review on {now[:10]}: the curator merged units {units}, which was not proposed ({judged})."
        examples.append(_learn(session, added.unit_ids, "good", note, library, render, params))

    by_group = {g.group_id: g for g in proposed.groups}

    def proposal_entry(p, replaced_by=None) -> ReviewedMerge:
        group = by_group.get(p.group_id)
        return ReviewedMerge(unit_ids=list(p.unit_ids), group_id=p.group_id,
                             judge_decision=group.decision if group else "merge", confidence=p.confidence,
                             replaced_by=replaced_by)

    record = ReviewRecord(
        time=now, analyzer=session.info.path, curation_file=str(path.resolve()), judge=proposed.provenance.get("judge"),
        policy=proposed.provenance.get("policy"),
        accepted=[proposal_entry(p) for p in comparison.accepted],
        rejected=[proposal_entry(p, r) for p, r in comparison.rejected],
        added=[ReviewedMerge(unit_ids=list(a.unit_ids), group_id=a.group_id, judge_decision=a.decision,
                             confidence=a.confidence, replaces=list(a.replaces)) for a in comparison.added],
        agreement=Agreement(proposed=comparison.proposed, accepted=len(comparison.accepted),
                            rejected=len(comparison.rejected), added=len(comparison.added),
                            groups_judged=comparison.groups_judged, groups_agreed=comparison.groups_agreed,
                            summary=comparison.summary()),
        examples=examples, library=str(library),
    )
    review_path = write_model(out / REVIEW_FILE, record)
    review_block = {
        "time": now, "file": str(path.resolve()), "record": REVIEW_FILE,
        "proposals": f"{REVIEW_FOLDER}/{PROPOSALS_FILE}", "accepted": len(comparison.accepted),
        "rejected": len(comparison.rejected), "added": len(comparison.added),
    }
    curation_path = write_curation(out / CURATION_FILE, _final_curation(curated, proposed, review_block))
    return ReviewOutcome(record=record, comparison=comparison, review_path=review_path, curation_path=curation_path)
