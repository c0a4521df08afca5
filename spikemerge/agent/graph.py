r"""The curation agent as a LangGraph ``StateGraph``: planner, approval, tools, record.

::

    START -> begin -> planner --(no tool call)------------------------> END
                         |  \--(a guard trips)--> stop ---------------> END
                         |  \--(apply/undo asked)--> approve --+
                         \--(other tool calls)-----------------+--> tools -> record -> planner

``begin`` resets the per-turn guard counters; ``approve`` asks the person with ``interrupt``
before any side effect (its only work before the question is a read-only merge plan, so a
resume redoes nothing); ``tools`` runs the five tools with errors returned as messages;
``record`` copies the session's serialisable state into the checkpointed state.
"""

from __future__ import annotations

from importlib import resources
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, SystemMessage, ToolMessage
from langgraph.graph import END, START, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from ..errors import SpikemergeError
from ..tools.judges.base import Judge
from .context import Context, SessionRegistry
from .guards import DEFAULT_MAX_TOOL_CALLS, DEFAULT_RECURSION_LIMIT, Limits, call_signature, check_turn, stop_messages
from .models import load_chat_model
from .state import CurationState, snapshot
from .tools import describe_plan, format_tool_error

NO_MODEL_REPLY = "No planner model is set up, so I cannot read free text: use the slash commands (/help)."


def load_planner_prompt() -> str:
    """The planner's system prompt, from ``spikemerge/prompts/planner.md``."""
    return resources.files("spikemerge").joinpath("prompts", "planner.md").read_text(encoding="utf-8").strip()


def needs_approval(call: dict[str, Any]) -> bool:
    """A call with side effects the person must approve: apply_merges with confirm or undo."""
    args = call.get("args") or {}
    return call["name"] == "apply_merges" and bool(args.get("confirm") or args.get("undo"))


def is_yes(answer: Any) -> bool:
    """Read a resume value as consent: True, "y"/"yes", or {"approve": True} / {"type": "approve"}."""
    if isinstance(answer, dict):
        return bool(answer.get("approve")) or answer.get("type") == "approve"
    if isinstance(answer, str):
        return answer.strip().lower() in ("y", "yes", "ok", "approve", "apply", "go")
    return answer is True


def _status(state: CurationState) -> str:
    """A few facts the planner should not have to dig out of the history."""
    if not state.get("analyzer_path"):
        return "Current state: no analyzer loaded."
    verdicts = state.get("verdicts") or []
    merges = sum(1 for v in verdicts if v.get("decision") == "merge")
    tried = ", ".join(f"{t['min_similarity']:.2f}->{t['num_groups']}" for t in state.get("thresholds_tried") or [])
    return (
        f"Current state: analyzer {state['analyzer_path']}, output {state.get('out')}, policy {state.get('policy')}; "
        f"{len(state.get('groups') or [])} candidate groups; {len(verdicts)} judged ({merges} merge); "
        f"thresholds tried: {tried or 'none'}."
    )


def build_graph(
    model: str | BaseChatModel | None = None,
    judge: Judge | None = None,
    *,
    checkpointer: Any = None,
    registry: SessionRegistry | None = None,
    auto_approve: bool = False,
    max_tool_calls_per_turn: int = DEFAULT_MAX_TOOL_CALLS,
    recursion_limit: int = DEFAULT_RECURSION_LIMIT,
    system_prompt: str | None = None,
    name: str = "spikemerge",
):
    """Build the compiled curation graph.

    Parameters
    ----------
    model
        The planner: an ``init_chat_model`` string (``"openai:gpt-4o"``), a ``BaseChatModel``
        instance, or None for no planner (free text gets a pointer to the slash commands).
    judge
        The judge ``judge_group`` uses (default: the registry's, else the offline metrics judge).
    checkpointer
        A LangGraph checkpointer (``SqliteSaver`` for a resumable chat). Needed for the
        confirmation interrupt; leave None when embedding in a parent graph that has one.
    registry
        Where the live session is kept (default: a new, empty one). A ``Context(registry=...)``
        passed at run time takes precedence.
    auto_approve
        Apply merges without asking (``--yes``); ``Context(auto_approve=...)`` overrides it.
    max_tool_calls_per_turn
        Tool calls allowed between two messages of the person.
    recursion_limit
        Graph steps per invocation, set on the compiled graph (LangGraph's default is far higher).
    system_prompt
        Replaces the prompt from ``prompts/planner.md``.
    name
        The compiled graph's name (a node name when embedded).

    Returns
    -------
    CompiledStateGraph
        Input/output ``CurationState``; context schema :class:`Context`.
    """
    default_registry = registry if registry is not None else SessionRegistry(judge=judge)
    if judge is not None and default_registry.judge is None:
        default_registry.judge = judge
    limits = Limits(max_tool_calls_per_turn, recursion_limit)
    chat_model = load_chat_model(model) if isinstance(model, str) else model
    planner_model = chat_model.bind_tools(default_registry.tools) if chat_model is not None else None
    prompt = system_prompt or load_planner_prompt()

    def registry_of(context: Context | None) -> SessionRegistry:
        return context.registry if context is not None and context.registry is not None else default_registry

    def auto_of(context: Context | None) -> bool:
        return context.auto_approve if context is not None and context.auto_approve is not None else auto_approve

    # ------------------------------------------------------------ nodes

    def begin(state: CurationState) -> dict:
        return {"turn": {"tool_calls": 0, "seen": [], "stopped": None}}

    def planner(state: CurationState) -> dict:
        if planner_model is None:
            return {"messages": [AIMessage(content=NO_MODEL_REPLY)]}
        messages = [SystemMessage(content=f"{prompt}\n\n{_status(state)}"), *state["messages"]]
        return {"messages": [planner_model.invoke(messages)]}

    def route(state: CurationState) -> Literal["stop", "approve", "tools", "__end__"]:
        last = state["messages"][-1]
        calls = getattr(last, "tool_calls", None) or []
        if not calls:
            return END
        if check_turn(state.get("turn") or {}, calls, limits):
            return "stop"
        if any(needs_approval(c) for c in calls):
            return "approve"
        return "tools"

    def stop(state: CurationState) -> dict:
        last = state["messages"][-1]
        reason = check_turn(state.get("turn") or {}, last.tool_calls, limits) or "Stopped."
        return {"messages": stop_messages(last, reason), "turn": {**(state.get("turn") or {}), "stopped": reason}}

    def approve(state: CurationState, runtime: Runtime[Context]) -> dict:
        reg = registry_of(runtime.context)
        approvals = dict(state.get("approvals") or {})
        for call in state["messages"][-1].tool_calls:
            if not needs_approval(call) or call["id"] in approvals:
                continue
            if auto_of(runtime.context):
                approvals[call["id"]] = "approved"
                continue
            args = call.get("args") or {}
            try:
                session = reg.ensure(state) or reg.require()
                if args.get("undo"):
                    action, plan = "undo", f"undo the last apply in {session.out} (its merged analyzer and curation.json)"
                else:
                    action = "apply"
                    plan = describe_plan(session.plan_merges(args.get("group_ids")), session.info.num_units)
            except SpikemergeError as exc:  # e.g. judged by an earlier call of this same reply: ask anyway
                action = "undo" if args.get("undo") else "apply"
                plan = f"the plan cannot be shown yet ({exc}); the merges judged by then will be applied"
            question = "Undo the last apply?" if action == "undo" else "Apply these merges?"
            answer = interrupt({"type": "confirm", "action": action, "tool_call_id": call["id"],
                                "question": question, "plan": plan})
            approvals[call["id"]] = "approved" if is_yes(answer) else "declined"
        return {"approvals": approvals}

    def guarded_call(request: ToolCallRequest, execute):
        call = request.tool_call
        reg = registry_of(request.runtime.context if request.runtime is not None else None)
        if reg is not default_registry and call["name"] in reg.tools_by_name:
            request = request.override(tool=reg.tools_by_name[call["name"]])
        if needs_approval(call) and (request.state.get("approvals") or {}).get(call["id"]) != "approved":
            return ToolMessage(
                content="Not done: the person declined, so nothing was written or removed.",
                tool_call_id=call["id"], name=call["name"],
            )
        try:
            reg.ensure(request.state)
        except Exception as exc:  # a resumed conversation whose analyzer cannot be reopened
            return ToolMessage(content=format_tool_error(exc), tool_call_id=call["id"], name=call["name"], status="error")
        return execute(request)

    tools = ToolNode(default_registry.tools, handle_tool_errors=format_tool_error, wrap_tool_call=guarded_call)

    def record(state: CurationState, runtime: Runtime[Context]) -> dict:
        reg = registry_of(runtime.context)
        last_ai = next(m for m in reversed(state["messages"]) if isinstance(m, AIMessage) and m.tool_calls)
        results = {m.tool_call_id: m for m in state["messages"] if isinstance(m, ToolMessage)}
        turn = dict(state.get("turn") or {})
        turn["tool_calls"] = int(turn.get("tool_calls", 0)) + len(last_ai.tool_calls)
        turn["seen"] = list(turn.get("seen", [])) + [call_signature(c) for c in last_ai.tool_calls]
        update: dict[str, Any] = {"turn": turn}
        if reg.current is not None:
            update.update(snapshot(reg.current))
        ok = [c for c in last_ai.tool_calls if getattr(results.get(c["id"]), "status", "error") != "error"]
        tried = list(state.get("thresholds_tried") or [])
        examples = {k: list(v) for k, v in (state.get("examples") or {"good": [], "bad": []}).items()}
        for call in ok:
            if call["name"] == "find_candidates" and update.get("search"):
                tried += update["search"]["levels"]
            if call["name"] == "judge_group":
                groups = {g["group_id"]: g["unit_ids"] for g in update.get("groups") or []}
                for label in ("good", "bad"):
                    for gid in call["args"].get(f"{label}_examples") or []:
                        entry = {"group_id": gid, "unit_ids": groups.get(gid, [])}
                        if entry not in examples.setdefault(label, []):
                            examples[label].append(entry)
        update["thresholds_tried"] = tried
        update["examples"] = examples
        return update

    # ------------------------------------------------------------ edges

    graph = StateGraph(CurationState, context_schema=Context)
    graph.add_node("begin", begin)
    graph.add_node("planner", planner)
    graph.add_node("stop", stop)
    graph.add_node("approve", approve)
    graph.add_node("tools", tools.with_config(max_concurrency=1))  # the session is stateful: calls run in order
    graph.add_node("record", record)
    graph.add_edge(START, "begin")
    graph.add_edge("begin", "planner")
    graph.add_conditional_edges("planner", route, ["stop", "approve", "tools", END])
    graph.add_edge("stop", END)
    graph.add_edge("approve", "tools")
    graph.add_edge("tools", "record")
    graph.add_edge("record", "planner")
    compiled = graph.compile(checkpointer=checkpointer, name=name)
    compiled = compiled.with_config(recursion_limit=limits.recursion_limit)
    compiled.registry = default_registry  # type: ignore[attr-defined]
    return compiled
