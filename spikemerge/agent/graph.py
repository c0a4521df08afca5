r"""The curation agent: LangChain's ``create_agent`` loop with spikemerge's middleware.

::

    START -> [cancel dangling calls] -> model ---(no tool call)---> [sync state] -> END
                                          ^   \--(tool calls)--> tools (one at a time)
                                          |                        |  apply/undo: ask first
                                          +--[sync state]----------+

``model`` is the planner, wrapped by ``ModelRetryMiddleware`` (a 429 or 5xx is retried with
backoff; a fault that outlasts the retries ends the turn with a one-line message) and by
``ContextEditingMiddleware`` plus a history window (the planner reads recent turns and recent
tool results, not the whole history). ``tools`` runs the five tools in the order the planner
listed them; ``ToolCallLimitMiddleware`` caps calls per turn, :class:`~.guards.RepeatGuard`
stops repeats, ``ToolErrorMiddleware`` returns errors to the planner as text.
:class:`ApprovalMiddleware` asks the person before ``apply_merges(confirm=true)`` or ``undo``
writes or removes anything: the plan is computed as the call starts (after the calls before
it in the same reply), shown with its hash, and written only if it still has that hash.
:class:`SessionSync` copies the session's plain values into the checkpointed state.
"""

from __future__ import annotations

from importlib import resources
from typing import Any, Callable

from langchain.agents import create_agent
from langchain.agents.middleware import (
    AgentMiddleware,
    ClearToolUsesEdit,
    ContextEditingMiddleware,
    ModelRequest,
    ModelRetryMiddleware,
    ToolCallLimitMiddleware,
    ToolErrorMiddleware,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, SystemMessage, ToolMessage, trim_messages
from langchain_core.messages.utils import count_tokens_approximately
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.types import interrupt

from ..errors import SpikemergeError
from ..tools.judges.base import Judge
from ..tools.judges.vlm.calls import describe
from .context import Context, SessionRegistry
from .guards import CancelDanglingCalls, InOrder, Limits, RepeatGuard, planner_retryable
from .models import load_chat_model
from .state import CurationState, snapshot
from .tools import TOOL_NAMES, format_tool_error, make_tools, plan_of, registry_for

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


def status_text(state: dict[str, Any]) -> str:
    """A few facts the planner should not have to dig out of the history."""
    if not state.get("analyzer_path"):
        return "Current state: no analyzer loaded."
    verdicts = state.get("verdicts") or []
    decisions = [v.get("decision") for v in verdicts]
    tried = ", ".join(f"{t['min_similarity']:.2f}->{t['num_groups']}" for t in state.get("thresholds_tried") or [])
    return (
        f"Current state: analyzer {state['analyzer_path']}, output {state.get('out')}, policy {state.get('policy')}; "
        f"{len(state.get('groups') or [])} candidate groups; {len(verdicts)} judged ({decisions.count('merge')} merge, "
        f"{decisions.count('abstain')} abstain, {decisions.count('error')} error); thresholds tried: {tried or 'none'}."
    )


class NoPlanner(BaseChatModel):
    """The planner when no model is set up: every free-text request gets a pointer to /help."""

    @property
    def _llm_type(self) -> str:
        return "spikemerge-no-planner"

    def bind_tools(self, tools, **kwargs):  # noqa: D102 - it calls no tools
        return self

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=NO_MODEL_REPLY))])


class SessionSync(AgentMiddleware):
    """Copies the session's plain values into the state, and shows the planner a bounded history.

    Before each planner call (after a tool round) and when the run ends, the registry's
    session is snapshotted into the state (only changed keys), with the thresholds tried and
    the examples used by the calls of the last round. The planner sees the system prompt with
    a status line and at most ``Limits.history_tokens`` of history, cut at a person's message.
    """

    state_schema = CurationState

    def __init__(self, registry: SessionRegistry, prompt: str, limits: Limits) -> None:
        super().__init__()
        self.registry, self.prompt, self.limits = registry, prompt, limits

    def _sync(self, state: dict[str, Any], runtime: Any) -> dict[str, Any] | None:
        reg = registry_for(getattr(runtime, "context", None), self.registry)
        if reg.current is None:
            return None
        update = snapshot(reg.current, state)
        messages = state.get("messages") or []
        # the round that just ran: the history ends with the results of the last planner reply
        last_ai = None
        if messages and isinstance(messages[-1], ToolMessage):
            last_ai = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
        results = {m.tool_call_id: m for m in messages if isinstance(m, ToolMessage)}
        tried = list(state.get("thresholds_tried") or [])
        examples = {k: list(v) for k, v in (state.get("examples") or {"good": [], "bad": []}).items()}
        search = update.get("search") or state.get("search")
        groups = {g["group_id"]: g["unit_ids"] for g in (update.get("groups") or state.get("groups") or [])}
        for call in (last_ai.tool_calls if last_ai is not None else []):
            result = results.get(call["id"])
            if result is None or result.status == "error":
                continue
            if call["name"] == "find_candidates" and search:
                tried += search["levels"]
            if call["name"] == "judge_group":
                for label in ("good", "bad"):
                    for gid in call["args"].get(f"{label}_examples") or []:
                        entry = {"group_id": gid, "unit_ids": groups.get(gid, [])}
                        if entry not in examples.setdefault(label, []):
                            examples[label].append(entry)
        if tried != (state.get("thresholds_tried") or []):
            update["thresholds_tried"] = tried
        if examples != (state.get("examples") or {"good": [], "bad": []}):
            update["examples"] = examples
        return update or None

    def before_model(self, state, runtime) -> dict[str, Any] | None:  # noqa: D102
        return self._sync(state, runtime)

    def after_agent(self, state, runtime) -> dict[str, Any] | None:  # noqa: D102
        return self._sync(state, runtime)

    def wrap_model_call(self, request: ModelRequest, handler: Callable) -> Any:  # noqa: D102
        system = SystemMessage(content=f"{self.prompt}\n\n{status_text(request.state)}")
        window: list[AnyMessage] = trim_messages(
            request.messages, max_tokens=self.limits.history_tokens, token_counter=count_tokens_approximately,
            strategy="last", start_on="human", include_system=False, allow_partial=False,
        ) or list(request.messages[-1:])
        return handler(request.override(system_message=system, messages=window))


class ApprovalMiddleware(AgentMiddleware):
    """Ask the person before apply_merges writes or undoes anything; bind the answer to the plan.

    The question is raised as the call starts (LangGraph ``interrupt``), so the plan shown
    already includes what earlier calls of the same reply judged. The interrupt value is
    ``{"type": "confirm", "action", "question", "plan", "plan_hash", "tool_call_id"}``. Resume
    with ``"yes"``/``True``/``{"approve": True}`` (add ``"plan_hash"`` to bind the consent to
    the plan shown), anything else declines. Nothing runs before the question, so a resume
    redoes no work; the plan is recomputed on resume and written only if its hash is the one
    approved.
    """

    def __init__(self, registry: SessionRegistry, auto_approve: bool) -> None:
        super().__init__()
        self.registry, self.auto_approve = registry, auto_approve

    def wrap_tool_call(self, request, handler):  # noqa: D102
        call = request.tool_call
        if not needs_approval(call):
            return handler(request)
        context = getattr(request.runtime, "context", None)
        auto = getattr(context, "auto_approve", None)
        if (self.auto_approve if auto is None else auto):
            return handler(request)
        args = call.get("args") or {}
        reg = registry_for(context, self.registry)

        def answer(text: str, status: str = "success") -> ToolMessage:
            return ToolMessage(content=text, tool_call_id=call["id"], name=call["name"], status=status)

        try:
            reg.ensure(request.state)
            session = reg.require()
            if args.get("undo"):
                action, plan, digest = "undo", f"undo the last apply in {session.out} (its merged analyzer and curation.json)", "undo"
            else:
                action = "apply"
                plan, digest = plan_of(reg, args.get("group_ids"))
        except SpikemergeError as exc:
            return answer(format_tool_error(exc), "error")
        question = "Undo the last apply?" if action == "undo" else "Apply these merges?"
        reply = interrupt({"type": "confirm", "action": action, "tool_call_id": call["id"], "question": question,
                           "plan": plan, "plan_hash": digest})
        if not is_yes(reply):
            return answer("Not done: the person declined, so nothing was written or removed.")
        approved = reply.get("plan_hash") if isinstance(reply, dict) else None
        if approved is not None and approved != digest:
            return answer(f"Not done: the plan changed after it was shown (approved {approved}, now {digest}); "
                          "show the new plan and ask again.", "error")
        return handler(request)


def _on_planner_failure(exc: Exception) -> str:
    return (f"The planner model failed after retrying ({describe(exc)}). Nothing else was done; "
            "ask again in a moment, or use the slash commands (/help).")


def build_graph(
    model: str | BaseChatModel | None = None,
    judge: Judge | None = None,
    *,
    checkpointer: Any = None,
    registry: SessionRegistry | None = None,
    context: Context | None = None,
    auto_approve: bool = False,
    max_tool_calls_per_turn: int | None = None,
    recursion_limit: int | None = None,
    limits: Limits | None = None,
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
        approval interrupt; leave None when embedding in a parent graph that has one.
    registry
        Where the live session is kept (default: a new one writing to ``context.out``).
        ``Context(registry=...)`` passed at run time takes precedence.
    context
        Default run settings (policy, output folder, limits); see :class:`Context`.
    auto_approve
        Apply merges without asking (``--yes``); ``Context(auto_approve=...)`` overrides it per run.
    max_tool_calls_per_turn, recursion_limit
        Override the context's limits.
    limits
        The full parameter table (retries, history window); the two arguments above win.
    system_prompt
        Replaces the prompt from ``prompts/planner.md``.
    name
        The compiled graph's name (a node name when embedded).

    Returns
    -------
    CompiledStateGraph
        State :class:`~.state.CurationState`; context schema :class:`Context`.
    """
    base = context or Context()
    limits = limits or Limits(max_tool_calls_per_turn=base.max_tool_calls_per_turn, recursion_limit=base.recursion_limit)
    overrides = {k: v for k, v in (("max_tool_calls_per_turn", max_tool_calls_per_turn),
                                   ("recursion_limit", recursion_limit)) if v is not None}
    if overrides:
        limits = Limits(**{**limits.__dict__, **overrides})
    default_registry = registry if registry is not None else SessionRegistry(judge=judge, out=base.out, policy=base.policy)
    if judge is not None and default_registry.judge is None:
        default_registry.judge = judge
    if model is None:
        planner: BaseChatModel = NoPlanner()
    else:
        planner = load_chat_model(model) if isinstance(model, str) else model
    middleware = [
        CancelDanglingCalls(),
        SessionSync(default_registry, system_prompt or load_planner_prompt(), limits),
        ModelRetryMiddleware(
            max_retries=limits.planner_retries, retry_on=planner_retryable, on_failure=_on_planner_failure,
            initial_delay=limits.retry_initial_delay, max_delay=limits.retry_max_delay,
        ),
        ContextEditingMiddleware(edits=[ClearToolUsesEdit(trigger=limits.clear_tool_results_at_tokens,
                                                          keep=limits.keep_tool_results)]),
        ToolCallLimitMiddleware(run_limit=limits.max_tool_calls_per_turn, exit_behavior="end"),
        RepeatGuard(),
        InOrder(limits.order_grace_s),
        ApprovalMiddleware(default_registry, auto_approve),
        ToolErrorMiddleware(on_error=format_tool_error),
    ]
    graph = create_agent(
        planner, make_tools(default_registry), middleware=middleware, context_schema=Context,
        checkpointer=checkpointer, name=name,
    )
    compiled = graph.with_config(recursion_limit=limits.recursion_limit)
    compiled.registry = default_registry  # type: ignore[attr-defined]
    compiled.limits = limits  # type: ignore[attr-defined]
    return compiled


__all__ = ["TOOL_NAMES", "build_graph", "load_planner_prompt", "NO_MODEL_REPLY"]
