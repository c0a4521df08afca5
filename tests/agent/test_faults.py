"""The agent under faults, through the public build_graph: retries, cancelled calls, stale plans."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from spikemerge.agent import Limits, build_graph
from spikemerge.agent.guards import CANCELLED
from spikemerge.agent.tools import describe_verdicts
from spikemerge.tools.judges.base import Verdict

from .conftest import ask, call, planner, user

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fakes import http_error  # noqa: E402

FAST = Limits(retry_initial_delay=0.01, retry_max_delay=0.02)


def _graph(model, registry, **kwargs):
    kwargs.setdefault("limits", FAST)
    return build_graph(model=model, registry=registry, checkpointer=InMemorySaver(), **kwargs)


def _unanswered(messages) -> list[str]:
    answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
    return [c["id"] for m in messages if isinstance(m, AIMessage) for c in m.tool_calls if c["id"] not in answered]


def test_a_rate_limit_once_still_finishes_the_turn(registry, fake_session, thread):
    model = planner(http_error(429, "Rate limit reached"), ask(call("find_candidates", min_similarity=0.7)),
                    http_error(500), "Found 2 groups.")
    state = _graph(model, registry).invoke(user("find candidates"), thread)
    assert state["messages"][-1].content == "Found 2 groups."
    assert [n for n, _ in fake_session.calls] == ["find_candidates"] and len(model.calls) == 4


def test_a_planner_that_keeps_failing_ends_the_turn_with_one_line(registry, thread):
    model = planner(*[http_error(503, "overloaded")] * 4, "later")
    graph = _graph(model, registry)
    state = graph.invoke(user("find candidates"), thread)
    reply = state["messages"][-1].content
    assert "planner model failed" in reply and "503" in reply and "\n" not in reply
    assert graph.invoke(user("try again"), thread)["messages"][-1].content == "later"  # the chat goes on


def test_an_auth_error_is_not_retried(registry, thread):
    model = planner(http_error(401, "Incorrect API key provided: sk-abc"), "never")
    with pytest.raises(Exception) as err:
        _graph(model, registry).invoke(user("hi"), thread)
    assert "401" in str(err.value) or "AuthenticationError" in type(err.value).__name__
    assert len(model.calls) == 1


def test_a_cancelled_turn_leaves_no_unanswered_call_for_the_planner(registry, fake_session, thread):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C while the tool runs

    original = fake_session.find_candidates
    fake_session.find_candidates = interrupted
    model = planner(ask(call("find_candidates", min_similarity=0.7), call("judge_group")), "Searching again.")
    graph = _graph(model, registry)
    with pytest.raises(KeyboardInterrupt):
        graph.invoke(user("find and judge"), thread)
    assert _unanswered(graph.get_state(thread).values["messages"])  # the checkpoint was left that way
    fake_session.find_candidates = original
    state = graph.invoke(user("try again"), thread)
    seen = model.calls[-1][0]
    assert _unanswered(seen) == [] and _unanswered(state["messages"]) == []
    cancelled = [m for m in seen if isinstance(m, ToolMessage) and m.content == CANCELLED]
    assert len(cancelled) == 2
    calling = next(i for i, m in enumerate(seen) if isinstance(m, AIMessage) and m.tool_calls)
    assert all(isinstance(m, ToolMessage) for m in seen[calling + 1: calling + 3])  # right after the call
    assert state["messages"][-1].content == "Searching again."


def test_an_old_checkpoint_with_a_dangling_call_is_repaired(registry, thread):
    model = planner("Hello again.")
    graph = _graph(model, registry)
    dangling = AIMessage(content="", tool_calls=[{"name": "judge_group", "args": {}, "id": "old1", "type": "tool_call"}])
    graph.update_state(thread, {"messages": [HumanMessage("judge"), dangling]}, as_node="SessionSync.after_agent")
    graph.invoke(user("hello"), thread)
    assert _unanswered(model.calls[-1][0]) == []


def test_the_plan_shown_includes_the_verdicts_of_the_same_reply(registry, fake_session, thread):
    graph = _graph(planner(ask(call("find_candidates", min_similarity=0.7), call("judge_group"),
                               call("apply_merges", confirm=True)), "Applied."), registry)
    paused = graph.invoke(user("merge what is clear"), thread)
    question = paused["__interrupt__"][0].value
    assert "2 merge(s)" in question["plan"] and "merge units [1, 2]" in question["plan"]
    assert question["plan_hash"] in question["plan"]
    graph.invoke(Command(resume={"approve": True, "plan_hash": question["plan_hash"]}), thread)
    assert len(fake_session.applies) == 1


def test_consent_to_a_plan_that_changed_writes_nothing(registry, fake_session, thread):
    graph = _graph(planner(ask(call("find_candidates", min_similarity=0.7), call("judge_group")), "judged",
                           ask(call("apply_merges", confirm=True)), "Not applied."), registry)
    graph.invoke(user("judge"), thread)
    question = graph.invoke(user("apply"), thread)["__interrupt__"][0].value
    fake_session.verdicts.pop(2)  # the plan changes while the question is open
    state = graph.invoke(Command(resume={"approve": True, "plan_hash": question["plan_hash"]}), thread)
    result = [m for m in state["messages"] if isinstance(m, ToolMessage)][-1]
    assert "plan changed" in result.content and fake_session.applies == []


def test_tool_results_stay_compact_at_300_groups(fake_session):
    verdicts = [Verdict(group_id=g, unit_ids=[2 * g, 2 * g + 1], decision="merge" if g % 3 else "not merge",
                        confidence=0.9, merge_unit_ids=[2 * g, 2 * g + 1] if g % 3 else [],
                        reasoning="a long explanation " * 40) for g in range(300)]
    text = describe_verdicts(fake_session, verdicts, "metrics")
    assert len(text) < 1500 and "200 merge, 100 not merge" in text and "295 more" in text
    assert "decisions.csv" in text


def test_the_planner_reads_a_bounded_history_cut_at_a_persons_message(registry, thread):
    model = planner(*[f"reply {i}" for i in range(12)])
    graph = _graph(model, registry, limits=Limits(history_tokens=400, retry_initial_delay=0.01))
    for i in range(12):
        graph.invoke(user(f"request {i}: " + "words " * 40), thread)
    seen = model.calls[-1][0]
    history = [m for m in seen if m.type != "system"]
    assert len(history) < 12 and isinstance(history[0], HumanMessage)
    assert history[-1].content.startswith("request 11")
    assert len(graph.get_state(thread).values["messages"]) == 24  # the checkpoint keeps it all


def test_context_defaults_come_from_the_environment(monkeypatch, registry):
    from spikemerge.agent import Context

    monkeypatch.setenv("SPIKEMERGE_MAX_TOOL_CALLS", "2")
    monkeypatch.setenv("SPIKEMERGE_RECURSION_LIMIT", "40")
    monkeypatch.setenv("SPIKEMERGE_POLICY", "conservative")
    context = Context()
    assert (context.max_tool_calls_per_turn, context.recursion_limit, context.policy) == (2, 40, "conservative")
    graph = build_graph(model=planner("hi"), context=context)
    assert graph.limits.max_tool_calls_per_turn == 2 and graph.config["recursion_limit"] == 40
    assert graph.registry.policy == "conservative"
    monkeypatch.setenv("SPIKEMERGE_MAX_TOOL_CALLS", "many")
    with pytest.raises(Exception, match="SPIKEMERGE_MAX_TOOL_CALLS must be a whole number"):
        Context()


def test_the_judge_named_in_the_run_context_is_used(registry, fake_session, thread):
    from spikemerge.agent import Context

    class BuildTimeJudge:
        name, model = "build-time", None

    registry.judge = BuildTimeJudge()
    graph = _graph(planner(ask(call("find_candidates", min_similarity=0.7), call("judge_group")), "done",
                           ask(call("judge_group", group_ids=[1])), "again"), registry)
    graph.invoke(user("judge"), thread, context=Context(registry=registry, judge="metrics"))
    assert type(fake_session.judge_used).__name__ == "MetricsJudge"  # the run's choice wins
    graph.invoke(user("judge group 1"), thread)  # no context: the registry's judge
    assert type(fake_session.judge_used).__name__ == "BuildTimeJudge"
