"""``spikemerge chat ANALYZER``: curate in a terminal, in words or with slash commands.

Free text goes to the planner (streamed word by word, tool activity shown as it happens);
slash commands call the tools directly and need no model, so without an API key the chat
still works with the offline metrics judge. The conversation is checkpointed in
``OUT/chat.sqlite``; ``--resume`` continues the last one.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langgraph.errors import GraphRecursionError
from langgraph.types import Command
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .agent import SessionRegistry, build_graph
from .agent.context import DEFAULT_OUT
from .agent.guards import DEFAULT_RECURSION_LIMIT, recursion_message
from .agent.models import default_model, load_chat_model, missing_key
from .agent.state import snapshot
from .agent.tools import ProgressJudge, describe_plan, format_tool_error
from .errors import SpikemergeError
from .tools.judges import MetricsJudge, make_judge
from .tools.outputs import claim_output_folder
from .tools.judges.vlm.model import scrub

HELP = """[bold]Slash commands[/] (no model needed):
  /find \\[similarity]   find candidate groups (e.g. /find 0.7; lower finds more)
  /judge \\[groups]      judge groups (e.g. /judge 1 3; default: all not yet judged)
  /show N              group N: units, verdict, figures
  /apply               apply the judged merges (asks first unless --yes)
  /undo                undo the last apply
  /examples            example groups used so far
  /review \\[port]      review the proposed merges in spikeinterface-gui (web)
  /review collect \\[FILE]  learn from the curation saved in the GUI (or FILE)
  /help, /quit
Anything else is a request to the planner, e.g. "merge duplicates conservatively"."""
THREAD_FILE = "chat_thread.txt"
DECISION_STYLE = {"merge": "green", "not merge": "yellow", "error": "red"}


class Chat:
    """One terminal conversation over a graph, a registry and a checkpointed thread."""

    def __init__(self, graph, registry: SessionRegistry, config: dict, console: Console,
                 ask: Callable[[str], str], yes: bool) -> None:
        self.graph, self.registry, self.config = graph, registry, config
        self.console, self.ask, self.yes = console, ask, yes
        self.streamed = False

    # ------------------------------------------------------------ output

    def say(self, text: str, style: str = "") -> None:
        self.console.print(escape(scrub(text)), style=style or None, highlight=False)

    def verdict_table(self, group_ids=None) -> None:
        session = self.registry.current
        if session is None or not session.verdicts:
            return
        table = Table(title="verdicts", title_justify="left")
        for column in ("group", "units", "decision", "conf.", "merge units", "reasoning"):
            table.add_column(column, overflow="fold")
        for g in sorted(group_ids or session.verdicts):
            v = session.verdicts.get(g)
            if v is None:
                continue
            style = DECISION_STYLE.get(v.decision, "")
            table.add_row(str(g), ", ".join(map(str, v.unit_ids)), f"[{style}]{v.decision}[/]", f"{v.confidence:.2f}",
                          ", ".join(map(str, v.merge_unit_ids)), escape(" ".join(v.reasoning.split())[:90]))
        self.console.print(table)
        self.where()

    def where(self) -> None:
        session = self.registry.current
        if session is None:
            return
        parts = [f"decisions {session.out / 'decisions.csv'}"]
        if (session.out / "images").exists():
            parts.append(f"figures {session.out / 'images'}")
        if (session.out / "report.html").exists():
            parts.append(f"report {session.out / 'report.html'}")
        self.say("outputs: " + "; ".join(parts), "dim")

    # ------------------------------------------------------------ state

    def remember(self, command: str, result: str) -> None:
        """Put a slash command and its result into the checkpointed conversation."""
        update: dict[str, Any] = {"messages": [HumanMessage(content=command), AIMessage(content=result)]}
        if self.registry.current is not None:
            update.update(snapshot(self.registry.current))
        self.graph.update_state(self.config, update, as_node="stop")

    def values(self) -> dict:
        return self.graph.get_state(self.config).values

    # ------------------------------------------------------------ slash commands

    def slash(self, line: str) -> bool:
        """Run one slash command; False means quit."""
        name, *rest = line[1:].split()
        tools = self.registry.tools_by_name
        try:
            if name in ("quit", "exit", "q"):
                return False
            if name == "help":
                self.console.print(HELP)
                return True
            if name == "find":
                args = {"min_similarity": float(rest[0])} if rest else {}
                with self.console.status("finding candidate groups"):
                    result = tools["find_candidates"].invoke(args)
                self.say(result)
            elif name == "judge":
                result = self.judge([int(g) for g in rest] or None)
            elif name == "show":
                result = self.show(int(rest[0]))
            elif name == "apply":
                result = self.apply(undo=False)
            elif name == "undo":
                result = self.apply(undo=True)
            elif name == "review":
                from .review.slash import review_command

                result = review_command(self.registry.require(), rest)
                self.say(result)
            elif name == "examples":
                examples = self.values().get("examples") or {}
                lines = [f"{label}: " + ", ".join(f"group {e['group_id']} {e['unit_ids']}" for e in examples.get(label, []))
                         for label in ("good", "bad") if examples.get(label)]
                self.say("\n".join(lines) or "no examples yet: say e.g. 'use group 3 as a good example and judge again'")
                return True
            else:
                self.say(f"unknown command /{name}: type /help", "red")
                return True
        except (SpikemergeError, ValueError, IndexError) as exc:
            text = format_tool_error(exc) if isinstance(exc, SpikemergeError) else f"Error: bad argument for /{name} ({exc})"
            self.say(text, "red")
            result = text
        self.remember(line, result)
        return True

    def judge(self, group_ids) -> str:
        session = self.registry.require()
        judge = self.registry.judge or session.judge_used or MetricsJudge()
        total = len(group_ids) if group_ids else sum(1 for g in session.groups if g not in session.verdicts)
        with self.console.status(f"judging {total} group(s) with the {judge.name} judge") as status:
            def tick(event: dict) -> None:
                status.update(f"judged {event['done']}/{total}")
            verdicts = session.judge_group(group_ids, judge=ProgressJudge(judge, total, tick))
        session.judge_used = judge
        self.verdict_table([v.group_id for v in verdicts])
        if not verdicts:
            return "nothing to judge: every group has a verdict"
        return f"judged {len(verdicts)} group(s): " + ", ".join(f"group {v.group_id} {v.decision}" for v in verdicts)

    def show(self, group_id: int) -> str:
        session = self.registry.require()
        if group_id not in session.groups:
            raise SpikemergeError(f"no group {group_id}: the groups are {sorted(session.groups) or 'none yet (/find)'}")
        group, verdict = session.groups[group_id], session.verdicts.get(group_id)
        lines = [f"group {group_id}: units {group.unit_ids} (found by {group.found_by})"]
        lines.append(f"verdict: {verdict.decision} ({verdict.confidence:.2f}): {verdict.reasoning}" if verdict else "verdict: not judged yet")
        for feature, path in session.images.get(group_id, {}).items():
            lines.append(f"{feature}: {path}")
        text = "\n".join(lines)
        self.say(text)
        return text

    def apply(self, undo: bool) -> str:
        session = self.registry.require()
        question = "Undo the last apply?" if undo else "Apply these merges?"
        if not undo:
            self.say(describe_plan(session.plan_merges(), session.info.num_units))
        if not self.yes and self.ask(f"{question} [y/N] ").strip().lower() not in ("y", "yes"):
            self.say("nothing changed")
            return "declined: nothing changed"
        with self.console.status("undoing" if undo else "writing the merged analyzer"):
            text = session.undo_last_apply() if undo else session.apply_merges(confirm=True).summary()
        self.say(text, "green")
        return text

    # ------------------------------------------------------------ the planner

    def turn(self, payload: Any) -> None:
        """Stream one planner turn; ask the person whenever the graph pauses for consent."""
        while True:
            judged = False
            try:
                for mode, chunk in self.graph.stream(payload, self.config, stream_mode=["messages", "updates", "custom"]):
                    if mode == "messages":
                        message, meta = chunk
                        if meta.get("langgraph_node") == "planner" and isinstance(message, AIMessageChunk) and message.content:
                            self.console.print(escape(str(message.content)), end="", highlight=False)
                            self.streamed = True
                    elif mode == "custom" and chunk.get("event") == "progress":
                        done = f" {chunk['done']}/{chunk['total']}" if "done" in chunk else ""
                        self.say(f"  … {chunk['tool']}{done} {chunk.get('text', '')}", "dim")
                    elif mode == "updates":
                        judged |= self.show_update(chunk)
            except GraphRecursionError:
                self.say(recursion_message(DEFAULT_RECURSION_LIMIT), "red")
                return
            except SpikemergeError as exc:
                self.say(f"Error: {exc}", "red")
                return
            self.console.print()
            if judged:
                self.verdict_table()
            pending = self.graph.get_state(self.config).interrupts
            if not pending:
                return
            question = pending[0].value
            self.say(f"{question.get('question')}\n{question.get('plan', '')}", "bold")
            answer = "yes" if self.yes else self.ask("[y/N] ")
            payload = Command(resume=answer)

    def show_update(self, chunk: dict) -> bool:
        judged = False
        for node, update in chunk.items():
            if node == "planner" and update:
                reply = update["messages"][-1]
                if reply.content and not self.streamed:  # a reply that was not streamed (no chat model)
                    self.say(str(reply.content))
                self.streamed = False
                for call in getattr(update["messages"][-1], "tool_calls", None) or []:
                    args = ", ".join(f"{k}={v}" for k, v in call["args"].items())
                    self.say(f"\n→ {call['name']}({args})", "cyan")
            if node == "tools" and update:
                for message in update.get("messages", []):
                    if isinstance(message, ToolMessage):
                        first = str(message.content).splitlines()[0] if message.content else ""
                        self.say(f"  {message.name}: {first}", "red" if message.status == "error" else "dim")
                        judged |= message.name == "judge_group" and message.status != "error"
        return judged


def _thread(out: Path, resume: bool, thread_id: str | None) -> str:
    marker = out / THREAD_FILE
    if thread_id is None and resume and marker.exists():
        thread_id = marker.read_text().strip()
    thread_id = thread_id or f"chat-{datetime.now():%Y%m%d-%H%M%S}"
    marker.write_text(thread_id)
    return thread_id


def chat_main(
    analyzer: str | None = None,
    *,
    out: str | Path | None = None,
    model: str | None = None,
    judge_model: str | None = None,
    policy: str = "balanced",
    yes: bool = False,
    resume: bool = False,
    thread_id: str | None = None,
    planner: Any = None,
    console: Console | None = None,
    ask: Callable[[str], str] | None = None,
) -> int:
    """Run the terminal chat; returns the exit code.

    Parameters
    ----------
    analyzer
        Analyzer folder to load first (optional with ``resume``).
    out
        Output folder (default ``curation_out``); also holds ``chat.sqlite``.
    model, judge_model
        Planner and VLM judge model ids (``provider:name``); default planner from
        ``SPIKEMERGE_MODEL``; default judge: the offline metrics judge.
    policy, yes, resume, thread_id
        ``--policy``, ``--yes`` (apply without asking), ``--resume``, ``--thread``.
    planner, console, ask
        A chat model instance, a console and an input function (for tests and embedding).
    """
    console = console or Console()
    ask = ask or (lambda prompt: console.input(prompt))
    try:
        out_path = claim_output_folder(Path(out or DEFAULT_OUT).expanduser())
        judge = MetricsJudge()
        if judge_model:
            try:
                judge = make_judge(judge_model)
            except SpikemergeError as exc:
                console.print(f"[yellow]{escape(scrub(str(exc)))}[/] — judging with the offline metrics judge")
        chat_model = planner
        if chat_model is None:
            name = model or default_model()
            reason = missing_key(name)
            if reason:
                console.print(f"[yellow]{escape(scrub(reason))}[/] — free text is off; slash commands work (/help)")
            else:
                chat_model = load_chat_model(name)
        registry = SessionRegistry(judge=judge, out=out_path, policy=policy)
        saver = _sqlite_saver(out_path / "chat.sqlite")
        graph = build_graph(model=chat_model, registry=registry, checkpointer=saver, auto_approve=yes)
        config = {"configurable": {"thread_id": _thread(out_path, resume, thread_id)}}
        chat = Chat(graph, registry, config, console, ask, yes)
        state = chat.values()
        if resume and state:
            with console.status("reopening the analyzer of this conversation"):
                registry.ensure(state)
            console.print(f"resumed conversation [bold]{config['configurable']['thread_id']}[/] "
                          f"({len(state.get('messages', []))} messages)")
        if analyzer and (registry.current is None or str(Path(analyzer).expanduser()) != str(registry.current.info.path)):
            with console.status(f"loading {analyzer}"):
                text = registry.tools_by_name["load_analyzer"].invoke({"path": str(analyzer)})
            chat.say(text)
            chat.remember(f"/load {analyzer}", text)
    except SpikemergeError as exc:
        console.print(f"[red]{escape(scrub(str(exc)))}[/]")
        return 2
    if resume and registry.current is not None:
        chat.say(registry.current.summary(), "dim")
    console.print("type a request or /help; /quit to leave")
    if graph.get_state(config).interrupts:
        chat.turn(None)
    while True:
        try:
            line = ask("[bold]you> [/]").strip()
        except (EOFError, KeyboardInterrupt):
            console.print()
            return 0
        if not line:
            continue
        if line.startswith("/"):
            if not chat.slash(line):
                return 0
            continue
        chat.turn({"messages": [HumanMessage(content=line)]})


def _sqlite_saver(path: Path):
    from langgraph.checkpoint.sqlite import SqliteSaver

    return SqliteSaver(sqlite3.connect(str(path), check_same_thread=False))


def chat_from_args(args: argparse.Namespace) -> int:
    """``chat_main`` from parsed CLI arguments (the names of :func:`add_arguments`)."""
    return chat_main(args.analyzer, out=args.out, model=args.model, judge_model=args.judge_model, policy=args.policy,
                     yes=args.yes, resume=args.resume, thread_id=args.thread)
