"""The compiled graph as a node of a larger LangGraph application, and its tools on their own."""

from __future__ import annotations

from typing import Annotated, TypedDict

from langchain_core.messages import AnyMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command

from spikemerge.agent import TOOL_NAMES, SessionRegistry, build_graph, make_tools

from .conftest import ask, call, planner


class HostState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    notes: list[str]


def test_interrupt_and_resume_through_a_parent_graph(registry, fake_session):
    curation = build_graph(
        model=planner(ask(call("find_candidates", min_similarity=0.7), call("judge_group"),
                          call("apply_merges", confirm=True)), "Merged group 1 and 2."),
        registry=registry,
    )  # no checkpointer: the parent's is used

    def report(state: HostState) -> dict:
        return {"notes": [f"curation said: {state['messages'][-1].content}"]}

    host = StateGraph(HostState)
    host.add_node("curate", curation)
    host.add_node("report", report)
    host.add_edge(START, "curate")
    host.add_edge("curate", "report")
    host.add_edge("report", END)
    app = host.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "host"}}

    paused = app.invoke({"messages": [HumanMessage("curate these units")]}, config)
    assert paused["__interrupt__"][0].value["action"] == "apply"
    assert fake_session.applies == []
    done = app.invoke(Command(resume="yes"), config)
    assert len(fake_session.applies) == 1
    assert done["notes"] == ["curation said: Merged group 1 and 2."]
    assert [n for n, _ in fake_session.calls].count("judge_group") == 1


def test_the_tools_work_without_a_graph(fake_session):
    tools = {t.name: t for t in make_tools(SessionRegistry(fake_session))}
    assert tuple(tools) == TOOL_NAMES
    assert "2 candidate groups" in tools["find_candidates"].invoke({"min_similarity": 0.7})
    assert "2 merge, 0 not merge" in tools["judge_group"].invoke({})
    assert tools["apply_merges"].invoke({}).startswith("plan (nothing written yet)")
    assert "6 -> 4 units" in tools["apply_merges"].invoke({"confirm": True})
    schema = tools["judge_group"].tool_call_schema.model_json_schema()["properties"]
    assert set(schema) == {"group_ids", "good_examples", "bad_examples", "policy"}
