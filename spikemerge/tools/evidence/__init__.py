"""The numbers behind each picture: crosscorrelograms, waveforms, PCA features, presence over time.

``pairs`` reads the analyzer (``EvidenceContext``) and assembles per-pair and per-group
records; ``ccg``, ``waveforms``, ``features``, ``presence`` and ``motion`` compute on plain
arrays; ``handover`` finds the units that take over from one another (for the candidate search's
chains and the motion's size); ``params`` holds every window and bin.
"""

from __future__ import annotations

from .pairs import EvidenceContext, denoised_similarity, group_evidence, pair_evidence, template_similarity
from .params import DEFAULT_EVIDENCE_PARAMS, EvidenceParams

__all__ = ["DEFAULT_EVIDENCE_PARAMS", "EvidenceContext", "EvidenceParams", "denoised_similarity", "group_evidence",
           "pair_evidence", "template_similarity"]
