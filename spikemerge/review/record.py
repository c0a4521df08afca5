"""``OUT/review.json``: its schema lives with every other file's in ``tools/schemas.py``."""

from __future__ import annotations

from pathlib import Path

from ..tools.schemas import LearntExample, ReviewAgreement, ReviewedMerge, ReviewRecord, read_review

Agreement = ReviewAgreement


def load_review(path: Path) -> ReviewRecord:
    """Read and validate a ``review.json`` (a one-line error when it is missing or damaged)."""
    return read_review(Path(path))


__all__ = ["Agreement", "LearntExample", "ReviewRecord", "ReviewedMerge", "load_review"]
