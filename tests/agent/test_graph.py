"""Scripted planner conversations: each behaviour the issue asks the agent to show."""

from __future__ import annotations

import json
import time

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.errors import GraphRecursionError
from langgraph.types import Command

from spikemerge.agent import Context, SessionRegistry, build_graph
from spikemerge.agent.guards import recursion_message

from .conftest import FakeSession, ask, call, last_tool_text, planner, reactive_planner, user


def _graph(model, registry, **kwargs):
    return build_graph(model=model, registry=registry, checkpointer=InMemorySaver(), **kwargs)


def test_nothing_found_the_planner_lowers_min_similarity(registry, thread):
    def rule(messages):
        result = last_tool_text(messages)
        if not any(isinstance(m, ToolMessage) for m in messages):
            return ask(call("find_candidates", min_similarity=0.99, relax=False))
        if "No candidate groups" in result:
            return ask(call("find_candidates", min_similarity=0.7, relax=False), text="Nothing at 0.99; trying 0.70.")
        return "Found 2 groups at 0.70."

    graph = _graph(reactive_planner(rule), registry)
    state = graph.invoke(user("find units to merge"), thread)
    tried = [(t["min_similarity"], t["num_groups"]) for t in state["thresholds_tried"]]
    assert tried == [(0.99, 0), (0.7, 2)]
    assert [g["unit_ids"] for g in state["groups"]] == [[1, 2], [3, 4]]
    assert state["messages"][-1].content == "Found 2 groups at 0.70."


def test_relax_lowers_the_threshold_by_itself(registry, thread):
    graph = _graph(planner(ask(call("find_candidates", min_similarity=0.99)), "done"), registry)
    state = graph.invoke(user("find candidates strictly"), thread)
    levels = [t["min_similarity"] for t in state["thresholds_tried"]]
    assert levels[0] == 0.99 and levels[-1] < 0.99 and state["thresholds_tried"][-1]["num_groups"] > 0
    assert "tried min_similarity 0.99: 0 groups" in last_tool_text(state["messages"])


def test_wrong_verdict_rejudged_with_a_good_example(registry, fake_session, thread):
    graph = _graph(planner(
        ask(call("find_candidates", min_similarity=0.6), call("judge_group")), "Groups 1 and 2 merge, 3 does not.",
        ask(call("judge_group", good_examples=[2])), "Judged again with group 2 as a good example.",
    ), registry)
    graph.invoke(user("find and judge"), thread)
    state = graph.invoke(user("that was wrong, use group 2 as a good example and judge again"), thread)
    judged = [args for name, args in fake_session.calls if name == "judge_group"]
    assert judged[-1]["good"] == [2]
    assert state["examples"]["good"] == [{"group_id": 2, "unit_ids": [3, 4]}]
    assert "group 1 [1, 2]: merge" in last_tool_text(state["messages"])


def test_conservatively_means_the_conservative_policy(registry, fake_session, thread):
    graph = _graph(planner(
        ask(call("find_candidates", min_similarity=0.7), call("judge_group", policy="conservative")), "Only group 1 is clear enough.",
    ), registry)
    state = graph.invoke(user("merge duplicates conservatively"), thread)
    assert state["policy"] == "conservative"
    assert {v["policy"] for v in state["verdicts"]} == {"conservative"}
    decisions = {tuple(v["unit_ids"]): v["decision"] for v in state["verdicts"]}
    assert decisions[(3, 4)] == "not merge"  # would merge under the balanced policy


def _judged_then_apply(registry, thread, *after, **kwargs):
    graph = _graph(planner(ask(call("find_candidates", min_similarity=0.7), call("judge_group")), "judged",
                           ask(call("apply_merges", confirm=True)), *after), registry, **kwargs)
    graph.invoke(user("find and judge"), thread)
    return graph, graph.invoke(user("apply the merges"), thread)


def test_apply_pauses_and_no_applies_nothing(registry, fake_session, thread):
    graph, paused = _judged_then_apply(registry, thread, "Nothing was applied.")
    question = paused["__interrupt__"][0].value
    assert question["action"] == "apply" and "merge units [1, 2]" in question["plan"]
    assert fake_session.applies == [] and not (fake_session.out / "curation.json").exists()
    state = graph.invoke(Command(resume="no"), thread)
    assert "declined" in last_tool_text(state["messages"])
    assert fake_session.applies == [] and state["last_apply"] is None


def test_apply_yes_resumes_without_redoing_work(registry, fake_session, thread):
    graph, paused = _judged_then_apply(registry, thread, "Applied.")
    before = list(fake_session.calls)
    state = graph.invoke(Command(resume="yes"), thread)
    new_calls = [name for name, _ in fake_session.calls[len(before):]]
    assert new_calls == ["apply_merges"]  # no find or judge again
    assert (fake_session.out / "curation.json").exists() and state["last_apply"]["units_after"] == 4


def test_auto_approve_applies_without_asking(registry, fake_session, thread):
    _, state = _judged_then_apply(registry, thread, "Applied.", auto_approve=True)
    assert "__interrupt__" not in state and len(fake_session.applies) == 1


def test_undo_of_the_last_apply_is_confirmed_then_done(registry, fake_session, thread):
    graph, _ = _judged_then_apply(registry, thread, "Applied.", ask(call("apply_merges", undo=True)), "Undone.")
    graph.invoke(Command(resume="yes"), thread)
    paused = graph.invoke(user("undo that"), thread)
    assert paused["__interrupt__"][0].value["action"] == "undo"
    state = graph.invoke(Command(resume={"approve": True}), thread)
    assert "undid the last apply" in last_tool_text(state["messages"])
    assert not (fake_session.out / "curation.json").exists()


def test_tool_errors_come_back_as_messages(registry, thread):
    graph = _graph(planner(ask(call("judge_group", group_ids=[7])), "I need candidates first."), registry)
    state = graph.invoke(user("judge group 7"), thread)
    error = [m for m in state["messages"] if isinstance(m, ToolMessage)][-1]
    assert error.status == "error" and error.content.startswith("Error: no candidate groups yet")
    assert state["messages"][-1].content == "I need candidates first."


def test_unexpected_exceptions_do_not_crash_the_chat(registry, fake_session, thread):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire\nsecond line")

    fake_session.find_candidates = broken
    graph = _graph(planner(ask(call("find_candidates")), "The tool failed."), registry)
    state = graph.invoke(user("find"), thread)
    assert last_tool_text(state["messages"]) == "Error (RuntimeError): disk on fire"


def test_tool_call_cap_stops_the_turn_with_a_message(registry, fake_session, thread):
    graph = _graph(planner(*[ask(call("find_candidates", min_similarity=0.9 - i / 10)) for i in range(5)], "next turn"),
                   registry, max_tool_calls_per_turn=3)
    state = graph.invoke(user("keep searching"), thread)
    assert "limit" in state["messages"][-1].content and "3" in state["messages"][-1].content
    assert [n for n, _ in fake_session.calls] == ["find_candidates"] * 3
    pending = state["messages"][-2]
    assert isinstance(pending, ToolMessage) and pending.status == "error"
    state = graph.invoke(user("go on"), thread)  # the cap counts per turn
    assert state["messages"][-1].content == "next turn"


def test_repeated_call_is_detected(registry, fake_session, thread):
    graph = _graph(planner(ask(call("find_candidates", min_similarity=0.8)),
                           ask(call("find_candidates", min_similarity=0.8))), registry)
    state = graph.invoke(user("find"), thread)
    assert "repeated find_candidates" in state["messages"][-1].content
    assert [n for n, _ in fake_session.calls] == ["find_candidates"]


def test_the_guard_counters_reset_each_turn(registry, thread):
    graph = _graph(planner(ask(call("find_candidates", min_similarity=0.8)), "one",
                           ask(call("find_candidates", min_similarity=0.8)), "two"), registry)
    graph.invoke(user("find"), thread)
    state = graph.invoke(user("find again"), thread)
    assert state["messages"][-1].content == "two"


def test_recursion_limit_is_explicit(registry, thread):
    graph = _graph(planner(*[ask(call("find_candidates", min_similarity=0.9 - i / 100)) for i in range(20)]),
                   registry, max_tool_calls_per_turn=100, recursion_limit=8)
    assert graph.config["recursion_limit"] == 8
    with pytest.raises(GraphRecursionError):
        graph.invoke(user("loop"), thread)
    assert "recursion limit" in recursion_message(8)


def test_state_is_serialisable_and_holds_no_analyzer(registry, thread):
    graph = _graph(planner(ask(call("find_candidates"), call("judge_group")), "done"), registry)
    graph.invoke(user("go"), thread)
    values = graph.get_state(thread).values
    json.dumps({k: v for k, v in values.items() if k != "messages"})
    assert values["analyzer_path"] == "/data/fake_analyzer" and len(values["verdicts"]) == 1


def test_registry_can_come_from_the_runtime_context(tmp_path, thread):
    built, passed = SessionRegistry(), SessionRegistry(FakeSession(tmp_path / "other"))
    graph = _graph(planner(ask(call("find_candidates")), "done"), built)
    state = graph.invoke(user("find"), thread, context=Context(registry=passed))
    assert passed.current.calls and len(state["groups"]) == 1


def test_without_a_model_free_text_points_to_slash_commands(registry, thread):
    state = _graph(None, registry).invoke(user("hello"), thread)
    assert "/help" in state["messages"][-1].content


def test_tool_results_are_compact_text(registry, thread):
    graph = _graph(planner(ask(call("find_candidates"), call("render_group"), call("judge_group")), "done"), registry)
    state = graph.invoke(user("go"), thread)
    for m in state["messages"]:
        if isinstance(m, ToolMessage):
            assert isinstance(m.content, str) and len(m.content) < 2000
    assert isinstance(state["messages"][-1], AIMessage)


def test_calls_in_one_reply_run_in_order(registry, fake_session, thread):
    slow_find = fake_session.find_candidates

    def find(*args, **kwargs):
        time.sleep(0.2)
        return slow_find(*args, **kwargs)

    fake_session.find_candidates = find
    graph = _graph(planner(ask(call("find_candidates", min_similarity=0.7), call("judge_group")), "done"), registry)
    state = graph.invoke(user("find and judge"), thread)
    assert len(state["verdicts"]) == 2
