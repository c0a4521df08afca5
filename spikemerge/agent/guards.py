"""Guards that keep a turn bounded and a conversation valid, as agent middleware.

LangChain's own middleware does most of it (see ``graph.py``): ``ModelRetryMiddleware`` for
planner faults, ``ToolCallLimitMiddleware`` for the cap on tool calls per turn,
``ContextEditingMiddleware`` to clear old tool results from what the planner reads. Two things
it has no primitive for live here:

- :class:`RepeatGuard` stops a turn whose planner asks again for a call it already made in
  this turn with the same arguments (a loop, not progress);
- :class:`CancelDanglingCalls` answers every tool call left without a result ("cancelled")
  before the planner reads the history again. A turn cancelled with Ctrl-C, a killed process
  or a checkpoint written by an older version leave such calls behind, and every provider
  rejects a history holding one (HTTP 400), so without this the chat could never recover.
"""

from __future__ import annotations

import ctypes
import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Sequence

from langchain.agents.middleware import AgentMiddleware, hook_config
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, RemoveMessage, ToolMessage
from langgraph.graph.message import REMOVE_ALL_MESSAGES

from ..tools.judges.vlm.calls import classify

CANCELLED = "Cancelled: the person interrupted this call before it finished; it may have done part of its work."


@dataclass(frozen=True)
class Limits:
    """The agent's parameter table (``build_graph`` arguments and :class:`~.context.Context`)."""

    max_tool_calls_per_turn: int = 12
    """Tool calls allowed between two messages of the person."""
    recursion_limit: int = 150
    """Graph steps per invocation. A tool round is about seven steps (middleware hooks are
    nodes), so this sits above the tool-call cap; LangGraph's own default is far higher."""
    planner_retries: int = 3
    """Retries of a planner call that failed with a passing fault (429, 5xx, timeout)."""
    retry_initial_delay: float = 1.0
    """Seconds before the first planner retry; doubles per retry, jittered."""
    retry_max_delay: float = 30.0
    """Longest wait between two planner retries, in seconds."""
    clear_tool_results_at_tokens: int = 8000
    """Once the history the planner reads passes this many tokens, older tool results are cleared."""
    keep_tool_results: int = 4
    """Most recent tool results always shown to the planner in full."""
    history_tokens: int = 24000
    """The planner reads at most this many tokens of history (whole turns, newest first)."""
    order_grace_s: float = 0.05
    """How long a tool call waits for an earlier call of the same reply to show up before it
    counts that call as already done (it ran before an approval pause and is not rerun)."""




def planner_retryable(exc: BaseException) -> bool:
    """A planner fault worth another try: rate limits, timeouts, 5xx, dropped connections.

    The same sorting as the VLM judge's calls; authentication, unknown model, no quota and
    rejected requests are not retried (another try fails the same way).
    """
    return classify(exc) == "retry"


def call_signature(call: dict[str, Any]) -> str:
    """A tool call's name and arguments, canonical, for spotting repeats."""
    return f"{call['name']}({json.dumps(call.get('args') or {}, sort_keys=True, default=str)})"


def this_turn(messages: Sequence[AnyMessage]) -> list[AnyMessage]:
    """The messages since the person's last message."""
    start = max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), default=-1)
    return list(messages[start + 1:])


def repeated_call(messages: Sequence[AnyMessage]) -> str | None:
    """The signature of a call in the last planner reply that already ran this turn, if any."""
    turn = this_turn(messages)
    if not turn or not isinstance(turn[-1], AIMessage):
        return None
    seen: set[str] = set()
    for message in turn[:-1]:
        if isinstance(message, AIMessage):
            seen.update(call_signature(c) for c in message.tool_calls)
    for call in turn[-1].tool_calls:
        signature = call_signature(call)
        if signature in seen:
            return signature
        seen.add(signature)
    return None


def stop_messages(last: AIMessage, reason: str) -> list[AnyMessage]:
    """Answer every pending tool call as not run, then say why the turn stopped."""
    answers: list[AnyMessage] = [
        ToolMessage(content=f"Not run: {reason}", tool_call_id=c["id"], name=c["name"], status="error")
        for c in last.tool_calls
    ]
    return answers + [AIMessage(content=reason)]


def answer_dangling(messages: Sequence[AnyMessage]) -> list[AnyMessage] | None:
    """The history with every unanswered tool call answered "cancelled" right after its call.

    Returns None when nothing is unanswered. The answers go directly after the calling
    message (and after the results it did get), where providers require them.
    """
    answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
    if all(c["id"] in answered for m in messages if isinstance(m, AIMessage) for c in m.tool_calls):
        return None
    repaired: list[AnyMessage] = []
    pending: list[dict[str, Any]] = []

    def flush() -> None:
        repaired.extend(ToolMessage(content=CANCELLED, tool_call_id=c["id"], name=c["name"], status="error")
                        for c in pending)
        pending.clear()

    for message in messages:
        if not (isinstance(message, ToolMessage) and pending):
            flush()
        repaired.append(message)
        if isinstance(message, AIMessage):
            pending.extend(c for c in message.tool_calls if c["id"] not in answered)
        elif isinstance(message, ToolMessage):
            pending[:] = [c for c in pending if c["id"] != message.tool_call_id]
    flush()
    return repaired


class CancelDanglingCalls(AgentMiddleware):
    """Answer unanswered tool calls "cancelled" when a run starts and before each planner call."""

    def _repair(self, state: dict[str, Any]) -> dict[str, Any] | None:
        repaired = answer_dangling(state.get("messages") or [])
        if repaired is None:
            return None
        return {"messages": [RemoveMessage(id=REMOVE_ALL_MESSAGES), *repaired]}

    def before_agent(self, state, runtime) -> dict[str, Any] | None:  # noqa: D102
        return self._repair(state)

    def before_model(self, state, runtime) -> dict[str, Any] | None:  # noqa: D102
        return self._repair(state)


class RepeatGuard(AgentMiddleware):
    """End the turn, with a message saying why, when the planner repeats a call of this turn."""

    @hook_config(can_jump_to=["end"])
    def after_model(self, state, runtime) -> dict[str, Any] | None:  # noqa: D102
        messages = state.get("messages") or []
        signature = repeated_call(messages)
        if signature is None:
            return None
        reason = (f"Stopped this turn: the planner repeated {signature}, which already ran this turn with the "
                  "same arguments. Rephrase the request or use a slash command (/help).")
        return {"messages": stop_messages(messages[-1], reason), "jump_to": "end"}


class InOrder(AgentMiddleware):
    """Run the tool calls of one planner reply one at a time, in the order the planner listed them.

    ``create_agent`` sends each call to the tool node as its own task, and LangGraph runs tasks
    of a step concurrently. The session is stateful, and a plan shown for approval must include
    what the ``judge_group`` listed before it decided, so each call waits for the earlier calls
    of its reply that are running in this step. Tasks start in the order they were sent; an
    earlier call that has not started within ``order_grace_s`` of a later one is not part of
    this step (it finished before an approval pause, and LangGraph does not run it again).
    """

    def __init__(self, grace_s: float) -> None:
        super().__init__()
        self.grace_s = grace_s
        self._cond = threading.Condition()
        self._started: set[str] = set()
        self._finished: set[str] = set()

    def _earlier(self, request) -> list[str]:
        call_id = request.tool_call["id"]
        answered = {m.tool_call_id for m in request.state.get("messages", []) if isinstance(m, ToolMessage)}
        for message in reversed(request.state.get("messages", [])):
            if isinstance(message, AIMessage) and any(c["id"] == call_id for c in message.tool_calls):
                ids = [c["id"] for c in message.tool_calls]
                return [i for i in ids[: ids.index(call_id)] if i not in answered]
        return []

    def wrap_tool_call(self, request, handler):  # noqa: D102
        call_id = request.tool_call["id"]
        earlier = self._earlier(request)
        began = time.monotonic()
        with self._cond:
            self._started.add(call_id)
            self._cond.notify_all()

            def blocked() -> bool:
                late = time.monotonic() - began > self.grace_s
                return any(i not in self._finished and (i in self._started or not late) for i in earlier)

            while blocked():
                self._cond.wait(self.grace_s / 2)
        _RUNNING[threading.get_ident()] = call_id
        try:
            return handler(request)
        finally:
            _RUNNING.pop(threading.get_ident(), None)
            with self._cond:
                self._finished.add(call_id)
                self._cond.notify_all()


_RUNNING: dict[int, str] = {}
"""Threads running a tool call right now (thread id -> tool call id)."""


def interrupt_running_tools() -> int:
    """Raise ``KeyboardInterrupt`` in every thread running a tool call; returns how many.

    LangGraph runs tool calls in worker threads, where Ctrl-C never arrives: the main thread
    would stop streaming and then wait for a judge_group of 300 groups to finish (and pay for
    it). The chat calls this from its Ctrl-C handler, so the tool stops as a single-threaded
    program would: at its next Python instruction, with what it finished kept (verdicts are
    journaled as they arrive, and the session saves its outputs on the way out).
    """
    count = 0
    for ident in list(_RUNNING):
        if ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(KeyboardInterrupt)) == 1:
            count += 1
    return count


def recursion_message(limit: int) -> str:
    """What to print when LangGraph's recursion limit ends a run."""
    return f"Stopped: this turn took more than {limit} graph steps (the recursion limit). Say 'continue' or use /help."
