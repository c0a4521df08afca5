"""The judge contract: what a judge is asked (JudgeRequest), shown (Example) and answers (Verdict), and the Judge protocol."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Protocol, Sequence, runtime_checkable

Decision = Literal["merge", "not merge", "abstain", "error"]
DECISIONS: tuple[str, ...] = ("merge", "not merge", "abstain", "error")
UnitId = int | str


@dataclass(frozen=True)
class JudgeRequest:
    """One candidate group as a judge sees it: unit ids, figure paths per feature, evidence numbers."""

    group_id: int
    unit_ids: tuple[UnitId, ...]
    images: Mapping[str, Path] = field(default_factory=dict)
    evidence: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""
    """The analyzer the group comes from, so an example from another recording never clashes."""


@dataclass(frozen=True)
class Example:
    """A labelled group shown beside the one being judged (few-shot); never judged itself."""

    name: str
    label: Literal["good", "bad"]
    unit_ids: tuple[UnitId, ...]
    images: Mapping[str, Path] = field(default_factory=dict)
    evidence: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""
    source: str = ""
    """The analyzer the example's units belong to."""

    def is_group(self, request: "JudgeRequest") -> bool:
        """Whether ``request`` is this very example (same recording, same units)."""
        same_units = set(map(str, self.unit_ids)) == set(map(str, request.unit_ids))
        return same_units and (not self.source or not request.source or self.source == request.source)


@dataclass
class Verdict:
    """A judge's decision on one group: a partition of its units into neurons.

    ``merge_groups`` are the parts to merge (each at least two units, disjoint); a unit in no
    part stays on its own. One group may hold several merges (two neurons' splits judged
    together). ``merge_unit_ids`` is their union, kept for tables and older callers; a verdict
    built with only ``merge_unit_ids`` is read as one part. ``abstain`` means the evidence is
    too thin to decide (few expected coincidences): nothing merges, and it is not "not merge".
    A failed judgement is ``decision="error"`` with the cause in ``reasoning``; it is never read
    as "not merge".
    """

    group_id: int
    unit_ids: list[UnitId]
    decision: Decision
    confidence: float
    merge_unit_ids: list[UnitId] = field(default_factory=list)
    reasoning: str = ""
    judge: str = ""
    model: str | None = None
    policy: str = "balanced"
    reports: dict[str, str] = field(default_factory=dict)
    usage: dict[str, Any] = field(default_factory=dict)
    merge_groups: list[list[UnitId]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.decision not in DECISIONS:
            raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, not {self.decision!r}")
        self.confidence = float(min(1.0, max(0.0, self.confidence)))
        if self.decision != "merge":
            self.merge_unit_ids, self.merge_groups = [], []
            return
        parts = [list(part) for part in self.merge_groups if len(part)] or [list(self.merge_unit_ids)]
        known = {str(u) for u in self.unit_ids}
        seen: set[str] = set()
        for part in parts:
            keys = {str(u) for u in part}
            if len(keys) < 2 or not keys <= known or keys & seen:
                raise ValueError(
                    f"group {self.group_id}: merge_groups {parts} must be disjoint parts of at least two of {self.unit_ids}"
                )
            seen |= keys
        # listed in the group's order (a judge may name them in the order it joined them), as
        # curation.json lists them, so the table, decisions.csv and the curation file agree
        rank = {str(u): i for i, u in enumerate(self.unit_ids)}
        parts = [sorted(part, key=lambda u: rank[str(u)]) for part in parts]
        self.merge_groups = sorted(parts, key=lambda part: rank[str(part[0])])
        self.merge_unit_ids = [u for part in self.merge_groups for u in part]

    def blocks(self) -> list[set[str]]:
        """The partition as sets of unit-id texts: each merge part, then every other unit alone."""
        parts = [{str(u) for u in part} for part in self.merge_groups]
        merged = set().union(*parts) if parts else set()
        return parts + [{str(u)} for u in self.unit_ids if str(u) not in merged]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Verdict":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    @classmethod
    def failed(cls, request: JudgeRequest, cause: str, judge: str, model: str | None, policy: str) -> "Verdict":
        """The verdict of a group whose judgement could not be made."""
        return cls(
            group_id=request.group_id,
            unit_ids=list(request.unit_ids),
            decision="error",
            confidence=0.0,
            merge_unit_ids=[],
            reasoning=cause,
            judge=judge,
            model=model,
            policy=policy,
        )


VerdictCallback = Callable[[Verdict], None]


@runtime_checkable
class Judge(Protocol):
    """What the session needs from a judge.

    ``fingerprint`` must change whenever the same request could get a different answer
    (another model, other prompts, other settings); the session uses it in the cache key.
    ``judge_many`` calls ``on_verdict`` as each verdict arrives, so the session can journal it
    at once, and returns the verdicts in request order.
    """

    name: str
    model: str | None

    def fingerprint(self) -> str: ...

    def judge_many(
        self,
        requests: Sequence[JudgeRequest],
        examples: Sequence[Example] = (),
        policy: str = "balanced",
        on_verdict: VerdictCallback | None = None,
    ) -> list[Verdict]: ...
