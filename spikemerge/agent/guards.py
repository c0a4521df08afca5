"""Guards that stop a runaway turn with a clear message instead of looping.

LangGraph's own recursion limit is a backstop; these checks stop earlier and say why: too many
tool calls in one user turn, or the planner asking for a call it already made this turn.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

from langchain_core.messages import AIMessage, ToolMessage

DEFAULT_MAX_TOOL_CALLS = 12
DEFAULT_RECURSION_LIMIT = 60
"""Graph steps per invocation: about four per tool round, so above the tool-call cap."""


@dataclass(frozen=True)
class Limits:
    """Per-turn limits (``build_graph`` arguments)."""

    max_tool_calls_per_turn: int = DEFAULT_MAX_TOOL_CALLS
    recursion_limit: int = DEFAULT_RECURSION_LIMIT


def call_signature(call: dict[str, Any]) -> str:
    """A tool call's name and arguments, canonical, for spotting repeats."""
    return f"{call['name']}({json.dumps(call.get('args') or {}, sort_keys=True, default=str)})"


def check_turn(turn: dict[str, Any], calls: Sequence[dict[str, Any]], limits: Limits) -> str | None:
    """Why the planner's next ``calls`` must not run, or None when they may.

    Parameters
    ----------
    turn
        The state's turn counters: ``tool_calls`` made so far and ``seen`` call signatures.
    calls
        The tool calls the planner just asked for.
    limits
        The limits in force.
    """
    done = int(turn.get("tool_calls", 0))
    if done + len(calls) > limits.max_tool_calls_per_turn:
        return (
            f"Stopped this turn: the planner asked for more than {limits.max_tool_calls_per_turn} tool calls "
            f"({done} done). Say 'continue' to let it go on, or use a slash command (/help)."
        )
    seen = set(turn.get("seen", []))
    for call in calls:
        signature = call_signature(call)
        if signature in seen:
            return (
                f"Stopped this turn: the planner repeated {signature}, which already ran this turn with the "
                "same arguments. Rephrase the request or use a slash command (/help)."
            )
        seen.add(signature)
    return None


def stop_messages(last: AIMessage, reason: str) -> list:
    """Answer every pending tool call as not run, then say why the turn stopped."""
    answers = [
        ToolMessage(content=f"Not run: {reason}", tool_call_id=c["id"], name=c["name"], status="error")
        for c in last.tool_calls
    ]
    return answers + [AIMessage(content=reason)]


def recursion_message(limit: int) -> str:
    """What to print when LangGraph's recursion limit ends a run."""
    return f"Stopped: this turn took more than {limit} graph steps (the recursion limit). Say 'continue' or use /help."
