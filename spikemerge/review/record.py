"""The schema of ``OUT/review.json``: what the curator kept, rejected and added, and what was learnt.

Defined here until ``tools/schemas.py`` (every file spikemerge writes) takes it over.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ValidationError

from ..errors import SpikemergeError


class ReviewedMerge(BaseModel):
    """One merge, proposed or added, with the candidate group and the judge's view of it."""

    unit_ids: list[int | str]
    group_id: int | None = None
    judge_decision: str | None = None
    """The judge's decision on the group: ``merge`` for a proposal, often ``not merge`` for an added merge."""
    confidence: float | None = None
    """The judge's confidence in that decision (0-1); None when no judged group holds the units."""
    replaced_by: list[int | str] | None = None
    """For a rejected proposal: the curated merge that overlaps it, if any."""
    replaces: list[int | None] = []
    """For an added merge: the groups of the rejected proposals it overlaps."""


class LearntExample(BaseModel):
    """An example saved to the library from this review."""

    name: str
    label: Literal["good", "bad"]
    unit_ids: list[int | str]
    path: str


class Agreement(BaseModel):
    proposed: int
    accepted: int
    rejected: int
    added: int
    groups_judged: int
    groups_agreed: int
    summary: str


class ReviewRecord(BaseModel):
    """``OUT/review.json``."""

    format_version: Literal["1"] = "1"
    time: str
    analyzer: str
    curation_file: str
    """The curation the curator saved, as it was read."""
    judge: str | None = None
    policy: str | None = None
    accepted: list[ReviewedMerge]
    rejected: list[ReviewedMerge]
    added: list[ReviewedMerge]
    agreement: Agreement
    examples: list[LearntExample] = []
    library: str = ""


def load_review(path: Path) -> ReviewRecord:
    """Read and validate a ``review.json``."""
    try:
        return ReviewRecord.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise SpikemergeError(f"{path} does not exist: run `spikemerge review OUT --collect` first") from None
    except (json.JSONDecodeError, ValidationError) as exc:
        raise SpikemergeError(f"{path} is not a valid review record ({type(exc).__name__}): collect the review again") from None
