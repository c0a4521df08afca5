"""Curation policies: one named row each, setting the candidate threshold and the judge's rule.

``conservative`` merges only clear cases (an ambiguous group is not merged), ``aggressive``
accepts weaker evidence. Every judge reads the same row, so a policy means the same thing
whether the metrics judge or a vision model decides.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Policy:
    name: str
    min_similarity: float
    """Default candidate gate: templates at least this alike (0.8 = 80 %)."""
    merge_threshold: float
    """A group merges when the judge's merge probability is at least this."""
    description: str
    abstain_on_thin: bool = False
    """Too few coincidences expected for the crosscorrelogram to decide: abstain instead of
    merging on shape alone."""
    within: str | None = None
    """A stricter policy merges only inside the parts the named one merges, so that what it merges
    the named one merges too. Alone, refusing thin pairs frees a unit from its own neuron's
    fragments to join a neighbour on a collision dip: on 20 sorter-made drifting sets, the
    conservative rule merged 10 distinct pairs where the balanced one merged 4."""


POLICIES: dict[str, Policy] = {
    "conservative": Policy(
        name="conservative",
        min_similarity=0.85,
        merge_threshold=0.8,
        description="Merge only clear cases; when the evidence is ambiguous, do not merge; "
                    "when it is too thin to tell, abstain.",
        abstain_on_thin=True,
        within="balanced",
    ),
    "balanced": Policy(
        name="balanced",
        min_similarity=0.8,
        merge_threshold=0.5,
        description="Merge when the evidence for one neuron outweighs the evidence against.",
    ),
    "aggressive": Policy(
        name="aggressive",
        min_similarity=0.7,
        merge_threshold=0.35,
        description="Merge unless the evidence shows two neurons; accepts weaker support.",
    ),
}


def get_policy(name: str) -> Policy:
    """Return the named policy, or raise a one-line error listing the known names."""
    from .errors import SpikemergeError

    try:
        return POLICIES[name]
    except KeyError:
        known = ", ".join(POLICIES)
        raise SpikemergeError(f"unknown policy {name!r}: use one of {known}") from None
