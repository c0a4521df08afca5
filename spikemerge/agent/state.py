"""What the agent remembers between steps and across restarts (checkpointed, serialisable only).

The loaded analyzer is *not* here: it lives in a :class:`~spikemerge.agent.context.SessionRegistry`.
The state keeps what is needed to rebuild the session in a new process (paths, the candidate
groups, the verdicts) and what the planner and the person need to see (thresholds tried,
examples, the last apply), all as plain JSON-like values.
"""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages

from ..tools.outputs import to_jsonable
from ..tools.session import CurationSession

REASONING_CHARS = 400
"""Verdict reasoning kept in the state (the full text is in decisions.csv)."""


class TurnCounters(TypedDict, total=False):
    """Guard counters for the current user turn (reset when a new turn starts)."""

    tool_calls: int
    seen: list[str]
    stopped: str | None


class CurationState(TypedDict, total=False):
    """The graph state: messages plus the curation, in plain values.

    Attributes
    ----------
    messages
        The conversation (user, planner, tool results); tool results are compact text.
    analyzer_path, out, policy
        The analyzer folder, the output folder and the current policy name.
    groups
        Candidate groups: ``group_id``, ``unit_ids``, ``found_by``, ``pairs``.
    search
        The last candidate search: ``preset``, ``min_similarity``, ``levels``.
    thresholds_tried
        Every ``{min_similarity, num_groups}`` level tried in this conversation, in order.
    verdicts
        Verdict dicts (reasoning shortened, no token usage).
    examples
        ``{"good": [...], "bad": [...]}``: example groups used by ``judge_group`` (group id and units).
    last_apply
        What the last ``apply_merges(confirm=True)`` wrote, or None.
    approvals
        ``tool_call_id -> "approved" | "declined"`` for calls that needed the person's consent.
    turn
        Guard counters for the current turn.
    """

    messages: Annotated[list[AnyMessage], add_messages]
    analyzer_path: str | None
    out: str | None
    policy: str
    groups: list[dict[str, Any]]
    search: dict[str, Any] | None
    thresholds_tried: list[dict[str, Any]]
    verdicts: list[dict[str, Any]]
    examples: dict[str, list[dict[str, Any]]]
    last_apply: dict[str, Any] | None
    approvals: dict[str, str]
    turn: TurnCounters


def verdict_summary(verdict_dict: dict[str, Any]) -> dict[str, Any]:
    """A verdict dict without token usage and with its reasoning shortened."""
    kept = {k: v for k, v in verdict_dict.items() if k not in ("usage", "reports")}
    reasoning = str(kept.get("reasoning", ""))
    if len(reasoning) > REASONING_CHARS:
        kept["reasoning"] = reasoning[: REASONING_CHARS - 1] + "…"
    return to_jsonable(kept)


def snapshot(session: CurationSession) -> dict[str, Any]:
    """The serialisable part of a session, as a state update."""
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
        "verdicts": [verdict_summary(session.verdicts[g].to_dict()) for g in sorted(session.verdicts)],
        "last_apply": session.last_apply.__dict__ if session.last_apply is not None else None,
    })
