"""What the agent remembers between steps and across restarts (checkpointed, serialisable only).

The loaded analyzer is *not* here: it lives in a :class:`~spikemerge.agent.context.SessionRegistry`.
The state keeps what is needed to reopen the session in a new process (paths, the candidate
groups, compact verdicts, figure paths) and what the planner and the person need to see
(thresholds tried, examples, the last apply), all as plain JSON-like values. Verdicts are
compact (no reasoning, no reports): the full ones are in the output folder's
``verdicts.jsonl`` and are read back from there on resume. :func:`snapshot` returns only the
keys that changed, so a tool round that judged nothing does not copy every group again.
"""

from __future__ import annotations

from typing import Any, Mapping

from langchain.agents import AgentState
from typing_extensions import NotRequired

from ..tools.outputs import to_jsonable
from ..tools.session import CurationSession

COMPACT_VERDICT_KEYS = ("group_id", "unit_ids", "decision", "confidence", "merge_groups", "policy", "judge", "model")


class CurationState(AgentState):
    """The graph state: messages plus the curation, in plain values.

    Attributes
    ----------
    messages
        The conversation (person, planner, tool results); tool results are compact text.
    analyzer_path, out, policy
        The analyzer folder, the output folder and the current policy name.
    groups
        Candidate groups: ``group_id``, ``unit_ids``, ``found_by``, ``pairs``.
    search
        The last candidate search: ``preset``, ``min_similarity``, ``levels``.
    thresholds_tried
        Every ``{min_similarity, num_groups}`` level tried in this conversation, in order.
    verdicts
        Compact verdicts (:data:`COMPACT_VERDICT_KEYS`); the full ones are in ``verdicts.jsonl``.
    images
        ``{group_id: {feature: path}}`` of the figures drawn.
    examples
        ``{"good": [...], "bad": [...]}``: example groups used by ``judge_group`` (group id and units).
    last_apply
        What the last ``apply_merges(confirm=True)`` wrote, or None.
    """

    analyzer_path: NotRequired[str | None]
    out: NotRequired[str | None]
    policy: NotRequired[str]
    groups: NotRequired[list[dict[str, Any]]]
    search: NotRequired[dict[str, Any] | None]
    thresholds_tried: NotRequired[list[dict[str, Any]]]
    verdicts: NotRequired[list[dict[str, Any]]]
    images: NotRequired[dict[str, dict[str, str]]]
    examples: NotRequired[dict[str, list[dict[str, Any]]]]
    last_apply: NotRequired[dict[str, Any] | None]


def compact_verdict(verdict_dict: Mapping[str, Any]) -> dict[str, Any]:
    """A verdict without reasoning, reports or usage (those stay in ``verdicts.jsonl``)."""
    return to_jsonable({k: verdict_dict[k] for k in COMPACT_VERDICT_KEYS if k in verdict_dict})


def full_snapshot(session: CurationSession) -> dict[str, Any]:
    """The serialisable part of a session."""
    search = session.search
    return to_jsonable({
        "analyzer_path": str(session.info.path),
        "out": str(session.out),
        "policy": session.policy,
        "groups": [session.groups[g].to_dict() for g in sorted(session.groups)],
        "search": (
            {"preset": search.preset, "min_similarity": search.min_similarity, "levels": search.levels}
            if search is not None else None
        ),
        "verdicts": [compact_verdict(session.verdicts[g].to_dict()) for g in sorted(session.verdicts)],
        "images": {str(g): {k: str(p) for k, p in paths.items()} for g, paths in sorted(session.images.items())},
        "last_apply": session.last_apply.__dict__ if session.last_apply is not None else None,
    })


def snapshot(session: CurationSession, previous: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The session's state update: only the keys whose value differs from ``previous``."""
    now = full_snapshot(session)
    if previous is None:
        return now
    return {k: v for k, v in now.items() if k not in previous or previous[k] != v}
