"""The numbers behind each picture: crosscorrelograms, waveforms, PCA features, presence over time."""

from __future__ import annotations

from .pairs import EvidenceContext, group_evidence, pair_evidence, template_similarity

__all__ = ["EvidenceContext", "group_evidence", "pair_evidence", "template_similarity"]
