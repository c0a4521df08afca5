"""The terminal chat driven in-process: slash commands, streamed planner words, confirmation."""

from __future__ import annotations

import io

from langgraph.checkpoint.memory import InMemorySaver
from rich.console import Console

from spikemerge.agent import build_graph
from spikemerge.chat import Chat, chat_main

from .conftest import ask, call, planner


def _chat(registry, model=None, answers=(), yes=False):
    console = Console(file=io.StringIO(), width=120, record=True, color_system=None)
    replies = iter(answers)
    graph = build_graph(model=model, registry=registry, checkpointer=InMemorySaver(), auto_approve=yes)
    chat = Chat(graph, registry, {"configurable": {"thread_id": "c"}}, console, lambda prompt: next(replies), yes)
    return chat, console


def test_slash_commands_work_without_a_model(registry, fake_session):
    chat, console = _chat(registry, answers=["n", "y", "y"])
    for line in ("/help", "/find 0.7", "/judge", "/show 2", "/apply", "/apply", "/examples", "/undo"):
        assert chat.slash(line)
    assert not chat.slash("/quit")
    screen = console.export_text()
    assert "2 candidate groups" in screen and "verdicts" in screen and "not merge" not in screen.split("verdicts")[0]
    assert "group 2: units [3, 4]" in screen
    assert "nothing changed" in screen and "6 -> 4 units" in screen  # first /apply declined, second done
    assert "undid the last apply" in screen and fake_session.applies == []
    values = chat.values()
    assert len(values["groups"]) == 2 and any("/find 0.7" in str(m.content) for m in values["messages"])


def test_free_text_streams_words_and_asks_before_applying(registry, fake_session):
    model = planner(ask(call("find_candidates", min_similarity=0.7), call("judge_group")),
                    "Two groups; group 1 merges.",
                    ask(call("apply_merges", confirm=True)), "Applied.")
    chat, console = _chat(registry, model=model, answers=["yes"])
    chat.turn({"messages": [("user", "merge duplicates")]})
    chat.turn({"messages": [("user", "apply them")]})
    screen = console.export_text()
    assert "→ find_candidates(min_similarity=0.7)" in screen
    assert "Two groups; group 1 merges." in screen and "Apply these merges?" in screen
    assert "merge units [1, 2]" in screen and len(fake_session.applies) == 1


def test_bad_output_folder_is_one_line_and_exit_2(tmp_path):
    folder = tmp_path / "not_ours"
    folder.mkdir()
    (folder / "data.bin").write_text("x")
    console = Console(file=io.StringIO(), width=200, record=True, color_system=None)
    code = chat_main("missing_analyzer", out=folder, planner=None, model="openai:gpt-4o", console=console,
                     ask=lambda prompt: "/quit")
    assert code == 2
    assert "was not made by spikemerge" in console.export_text()
