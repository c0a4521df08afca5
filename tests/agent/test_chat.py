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


def test_bad_arguments_are_one_line_and_say_what_is_valid(registry):
    chat, console = _chat(registry)
    for line in ("/find 1.5", "/find abc", "/judge x", "/show", "/load"):
        assert chat.slash(line)
    screen = console.export_text()
    assert "min_similarity must be between 0 and 1" in screen and "not 1.5" in screen
    assert "/find takes a similarity between 0 and 1" in screen and "/judge takes group numbers" in screen
    assert "/show needs one group number" in screen and "/load needs a folder" in screen
    assert "validation error" not in screen.lower() and "pydantic" not in screen.lower()


def test_undo_says_nothing_to_undo_before_asking(registry):
    asked = []
    chat, console = _chat(registry)
    chat.ask = lambda prompt: asked.append(prompt) or "y"
    chat.slash("/find 0.7")
    chat.slash("/undo")
    assert "nothing to undo" in console.export_text() and asked == []


def test_render_draws_through_the_same_tool(registry, fake_session):
    chat, console = _chat(registry)
    chat.slash("/find 0.7")
    chat.slash("/render 2")
    chat.slash("/show 2")
    assert ("render_group", {"group_ids": [2]}) in fake_session.calls
    screen = console.export_text()
    assert "rendered 1 group(s)" in screen and "group2_crosscorrelograms.png" in screen


def test_ctrl_c_in_a_command_or_a_turn_cancels_it_not_the_chat(registry, fake_session):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    model = planner(lambda: (_ for _ in ()).throw(KeyboardInterrupt()), "Back again.")
    chat, console = _chat(registry, model=model)
    chat.slash("/find 0.7")
    judge = fake_session.judge_group
    fake_session.judge_group = interrupted
    assert chat.slash("/judge")
    fake_session.judge_group = judge
    chat.turn({"messages": [("user", "judge them")]})
    chat.turn({"messages": [("user", "are you there?")]})
    screen = console.export_text()
    assert "/judge cancelled (Ctrl-C)" in screen and "turn cancelled (Ctrl-C)" in screen
    assert "Back again." in screen


def test_a_provider_error_ends_the_turn_with_one_line(registry):
    from fakes import http_error

    chat, console = _chat(registry, model=planner(http_error(401, "Incorrect API key provided: sk-secret123"), "fine"))
    chat.turn({"messages": [("user", "hello")]})
    chat.turn({"messages": [("user", "hello again")]})
    screen = console.export_text()
    assert "the turn stopped; the chat goes on" in screen and "sk-secret123" not in screen and "fine" in screen


def test_resume_on_an_empty_folder_says_so(tmp_path):
    console = Console(file=io.StringIO(), width=200, record=True, color_system=None)
    code = chat_main(None, out=tmp_path / "fresh", resume=True, planner=planner(), console=console,
                     ask=lambda prompt: "/quit")
    assert code == 0 and "nothing to resume" in console.export_text()


def test_ctrl_c_during_a_tool_stops_the_tool_not_only_the_stream(registry, fake_session):
    """LangGraph runs a tool in a worker thread, where Ctrl-C never lands: the chat must stop it there."""
    import signal
    import threading
    import time

    steps, started = [], threading.Event()
    judge = fake_session.judge_group

    def slow_judge(*args, **kwargs):
        started.set()
        for i in range(100):
            time.sleep(0.05)
            steps.append(i)
        return judge(*args, **kwargs)

    fake_session.judge_group = slow_judge
    model = planner(ask(call("find_candidates", min_similarity=0.7), call("judge_group")), "Still here.")
    chat, console = _chat(registry, model=model)
    main = threading.main_thread().ident

    def press_ctrl_c():
        started.wait(10)
        time.sleep(0.2)
        signal.pthread_kill(main, signal.SIGINT)

    threading.Thread(target=press_ctrl_c, daemon=True).start()
    began = time.monotonic()
    chat.turn({"messages": [("user", "judge everything")]})
    took, done_at_return = time.monotonic() - began, len(steps)
    time.sleep(0.3)
    assert took < 2.0 and done_at_return < 30 and len(steps) == done_at_return  # the judge stopped too
    fake_session.judge_group = judge
    chat.turn({"messages": [("user", "hello?")]})
    screen = console.export_text()
    assert "turn cancelled (Ctrl-C)" in screen and "Still here." in screen
    answered = {m.tool_call_id for m in model.calls[-1][0] if m.type == "tool"}
    assert all(c["id"] in answered for m in model.calls[-1][0] if m.type == "ai" for c in m.tool_calls)
