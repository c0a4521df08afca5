"""``spikemerge chat ANALYZER``: curate in a terminal, in words or with slash commands.

Free text goes to the planner (streamed word by word, tool activity shown as it happens);
slash commands run the very same tool operations as the planner (``agent.tools.run_tool``) and
need no model, so without an API key the chat still works with the offline metrics judge.
Input has line editing and history (stdlib ``readline``, history kept in the output folder).
Ctrl-C cancels the running turn or command, never the chat; Ctrl-D or ``/quit`` leaves. The
conversation is checkpointed in ``OUT/chat.sqlite``; ``--resume`` continues the last one.
"""

from __future__ import annotations

import argparse
import json
import signal
import sqlite3
import threading
from contextlib import contextmanager
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
from .agent.guards import interrupt_running_tools, recursion_message
from .agent.models import default_model, load_chat_model, missing_key
from .agent.state import snapshot
from .agent.tools import format_tool_error, plan_of, run_tool
from .errors import SpikemergeError
from .tools.judges import MetricsJudge, make_judge
from .tools.outputs import claim_output_folder
from .tools.secrets import scrub

HELP = """[bold]Slash commands[/] (no model needed):
  /load PATH           open an analyzer folder
  /find \\[similarity]   find candidate groups (e.g. /find 0.7; lower finds more; 0 to 1)
  /render \\[groups]     draw the groups' figures (default: all)
  /judge \\[groups]      judge groups (e.g. /judge 1 3; default: all not yet judged)
  /show N              group N: units, verdict, figures
  /apply               apply the judged merges (asks first unless --yes)
  /undo                undo the last apply (asks first)
  /examples            example groups used so far
  /review \\[port]      review the proposed merges in spikeinterface-gui (web)
  /review collect \\[FILE]  learn from the curation saved in the GUI (or FILE)
  /help, /quit         (Ctrl-C cancels what is running; Ctrl-D leaves)
Anything else is a request to the planner, e.g. "merge duplicates conservatively"."""
THREAD_FILE = "chat_thread.txt"
HISTORY_FILE = ".chat_history"
PROMPT = "you> "
DECISION_STYLE = {"merge": "green", "not merge": "yellow", "abstain": "cyan", "error": "red"}
REMEMBER_AS = "SessionSync.after_agent"
"""The node a slash command's messages are recorded as: the last one before END, so the
conversation stays finished (nothing pending) after a command."""


def readline_input(history: Path | None) -> Callable[[str], str]:
    """``input`` with line editing and a history file, when the platform has ``readline``."""
    try:
        import readline
    except ImportError:  # e.g. Windows without pyreadline: plain input still works
        return input
    if history is not None:
        try:
            readline.read_history_file(str(history))
        except OSError:
            pass
        readline.set_history_length(1000)

        def ask(prompt: str) -> str:
            line = input(prompt)
            try:
                readline.write_history_file(str(history))
            except OSError:
                pass
            return line

        return ask
    return input


def confirm(ask: Callable[[str], str], question: str) -> bool:
    """Ask a ``question [y/N]``; only y/yes is consent, Ctrl-C or end of input is no."""
    try:
        return ask(f"{question} [y/N] " if question else "[y/N] ").strip().lower() in ("y", "yes")
    except (EOFError, KeyboardInterrupt):
        return False


def nothing_to_undo(session: Any) -> bool:
    """True when no apply was recorded in the session's output folder (checked before asking)."""
    if getattr(session, "last_apply", None) is not None:
        return False
    from .tools.curation import undo as undo_log

    path = Path(session.out) / undo_log.MANIFEST_FILE
    if not path.exists():
        return True
    try:
        return not json.loads(path.read_text(encoding="utf-8")).get("applies")
    except (OSError, ValueError):
        return False  # let undo itself explain what is wrong with the file


@contextmanager
def ctrl_c_reaches_tools():
    """While a planner turn runs, Ctrl-C also stops the tool running in a LangGraph worker thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_ctrl_c(signum, frame):
        interrupt_running_tools()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class Chat:
    """One terminal conversation over a graph, a registry and a checkpointed thread."""

    def __init__(self, graph, registry: SessionRegistry, config: dict, console: Console,
                 ask: Callable[[str], str], yes: bool) -> None:
        self.graph, self.registry, self.config = graph, registry, config
        self.console, self.ask, self.yes = console, ask, yes
        self.streamed = False

    def confirm(self, question: str) -> bool:
        """The person's consent to ``question`` (``[y/N]``; always yes with ``--yes``)."""
        self.console.print(escape(question), style="bold", highlight=False, end=" ")
        if self.yes:
            self.console.print("yes (--yes)")
            return True
        return confirm(self.ask, "")

    # ------------------------------------------------------------ output

    def say(self, text: str, style: str = "") -> None:
        self.console.print(escape(scrub(text)), style=style or None, highlight=False)

    def verdict_table(self, group_ids=None) -> None:
        session = self.registry.current
        if session is None or not session.verdicts:
            return
        table = Table(title="verdicts", title_justify="left")
        for column in ("group", "units", "decision", "conf.", "merges", "reasoning"):
            table.add_column(column, overflow="fold")
        for g in sorted(group_ids or session.verdicts):
            v = session.verdicts.get(g)
            if v is None:
                continue
            style = DECISION_STYLE.get(v.decision, "")
            merges = " + ".join("(" + ", ".join(map(str, part)) + ")" for part in v.merge_groups)
            table.add_row(str(g), ", ".join(map(str, v.unit_ids)), f"[{style}]{v.decision}[/]", f"{v.confidence:.2f}",
                          merges, escape(" ".join(v.reasoning.split())[:90]))
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
            update.update(snapshot(self.registry.current, self.values()))
        self.graph.update_state(self.config, update, as_node=REMEMBER_AS)

    def values(self) -> dict:
        return self.graph.get_state(self.config).values

    # ------------------------------------------------------------ slash commands

    def slash(self, line: str) -> bool:
        """Run one slash command; False means quit."""
        name, *rest = line[1:].split(maxsplit=1) if line[1:].strip() else ("help",)
        words = rest[0].split() if rest else []
        try:
            if name in ("quit", "exit", "q"):
                return False
            if name == "help":
                self.console.print(HELP)
                return True
            if name == "examples":
                examples = self.values().get("examples") or {}
                lines = [f"{label}: " + ", ".join(f"group {e['group_id']} {e['unit_ids']}" for e in examples.get(label, []))
                         for label in ("good", "bad") if examples.get(label)]
                self.say("\n".join(lines) or "no examples yet: say e.g. 'use group 3 as a good example and judge again'")
                return True
            result = self.command(name, rest[0].strip() if rest else "", words)
            if result is None:
                return True
        except KeyboardInterrupt:
            result = f"/{name} cancelled (Ctrl-C); what was finished is kept"
            self.say(result, "yellow")
        except SpikemergeError as exc:
            result = format_tool_error(exc)
            self.say(result, "red")
        except Exception as exc:  # noqa: BLE001 - a command never ends the chat
            result = format_tool_error(exc)
            self.say(result, "red")
        self.remember(line, result)
        return True

    def command(self, name: str, rest: str, words: list[str]) -> str | None:
        """The tool-backed commands; returns the text recorded in the conversation."""
        if name == "load":
            if not rest:
                raise SpikemergeError("/load needs a folder: /load path/to/analyzer")
            with self.console.status(f"loading {rest}"):
                result = run_tool(self.registry, "load_analyzer", {"path": rest})
        elif name == "find":
            args = {"min_similarity": _number(words[0], "/find", "a similarity between 0 and 1, e.g. /find 0.7")} if words else {}
            with self.console.status("finding candidate groups"):
                result = run_tool(self.registry, "find_candidates", args)
        elif name == "render":
            args = {"group_ids": _group_ids(words, "/render")} if words else {}
            with self.console.status("drawing figures"):
                result = run_tool(self.registry, "render_group", args)
        elif name == "judge":
            result = self.judge(_group_ids(words, "/judge") if words else None)
        elif name == "show":
            if len(words) != 1:
                raise SpikemergeError("/show needs one group number: /show 3")
            result = self.show(_group_ids(words, "/show")[0])
            return result if result else None
        elif name == "apply":
            result = self.apply(undo=False)
        elif name == "undo":
            result = self.apply(undo=True)
        elif name == "review":
            from .review.slash import review_command

            result = review_command(self.registry.require(), words)
        else:
            self.say(f"unknown command /{name}: type /help", "red")
            return None
        if name != "judge":
            self.say(result)
        return result

    def judge(self, group_ids) -> str:
        session = self.registry.require()
        total = len(group_ids) if group_ids else sum(1 for g in session.groups if g not in session.verdicts)
        judge = self.registry.judge or session.judge_used or MetricsJudge()
        with self.console.status(f"judging {total} group(s) with the {judge.name} judge (Ctrl-C cancels)") as status:
            def tick(event: dict) -> None:
                status.update(f"judged {event['done']}/{total} (Ctrl-C cancels)")
            try:
                result = run_tool(self.registry, "judge_group", {"group_ids": group_ids}, progress=tick)
            finally:
                self.verdict_table(group_ids)
        self.say(result.splitlines()[0])
        return result

    def show(self, group_id: int) -> str:
        session = self.registry.require()
        if group_id not in session.groups:
            raise SpikemergeError(f"no group {group_id}: the groups are {sorted(session.groups) or 'none yet (/find)'}")
        group, verdict = session.groups[group_id], session.verdicts.get(group_id)
        lines = [f"group {group_id}: units {group.unit_ids} (found by {group.found_by})"]
        lines.append(f"verdict: {verdict.decision} ({verdict.confidence:.2f}): {verdict.reasoning}" if verdict else "verdict: not judged yet")
        figures = session.images.get(group_id, {})
        lines += [f"{feature}: {path}" for feature, path in figures.items()] or [f"figures: none yet (/render {group_id})"]
        text = "\n".join(lines)
        self.say(text)
        return text

    def apply(self, undo: bool) -> str:
        session = self.registry.require()
        if undo:
            if nothing_to_undo(session):
                return f"nothing to undo: no merges were applied in {session.out}"
            if not self.confirm("Undo the last apply?"):
                return "declined: nothing changed"
            with self.console.status("undoing"):
                return run_tool(self.registry, "apply_merges", {"undo": True})
        if not session.plan_merges().groups:
            return "nothing to apply: no group is judged 'merge' (/judge first, or see /show N)"
        plan, digest = plan_of(self.registry)
        self.say(plan)
        if not self.confirm("Apply these merges?"):
            return "declined: nothing changed"
        with self.console.status("writing the merged analyzer"):
            return run_tool(self.registry, "apply_merges", {"confirm": True}, plan_hash_approved=digest)

    # ------------------------------------------------------------ the planner

    def turn(self, payload: Any) -> None:
        """Stream one planner turn; ask whenever the graph pauses for consent. Never raises."""
        while True:
            try:
                with ctrl_c_reaches_tools():
                    judged = self._stream(payload)
            except KeyboardInterrupt:
                self.console.print()
                self.say("turn cancelled (Ctrl-C); what was finished is kept, the chat goes on", "yellow")
                return
            except GraphRecursionError:
                self.say(recursion_message(self.graph.config.get("recursion_limit", 0)), "red")
                return
            except Exception as exc:  # noqa: BLE001 - a provider or tool fault ends the turn, not the chat
                self.console.print()
                self.say(f"{format_tool_error(exc)} (the turn stopped; the chat goes on)", "red")
                return
            self.console.print()
            if judged:
                self.verdict_table()
            pending = self.graph.get_state(self.config).interrupts
            if not pending:
                return
            question = pending[0].value
            self.say(str(question.get("plan", "")), "bold")
            yes = self.confirm(str(question.get("question", "Go ahead?")))
            payload = Command(resume={"approve": yes, "plan_hash": question.get("plan_hash")})

    def _stream(self, payload: Any) -> bool:
        """Show one graph run as it streams; True when judge_group ran."""
        judged = False
        for mode, chunk in self.graph.stream(payload, self.config, stream_mode=["messages", "updates", "custom"]):
            if mode == "messages":
                message, meta = chunk
                if meta.get("langgraph_node") == "model" and isinstance(message, AIMessageChunk) and message.content:
                    self.console.print(escape(str(message.content)), end="", highlight=False)
                    self.streamed = True
            elif mode == "custom" and isinstance(chunk, dict) and chunk.get("event") == "progress":
                done = f" {chunk['done']}/{chunk['total']}" if "done" in chunk else ""
                self.say(f"  … {chunk['tool']}{done} {chunk.get('text', '')}", "dim")
            elif mode == "updates":
                judged |= self.show_update(chunk)
        return judged

    def show_update(self, chunk: dict) -> bool:
        judged = False
        for node, update in chunk.items():
            if not isinstance(update, dict):
                continue
            if node == "model" and update.get("messages"):
                reply = update["messages"][-1]
                if isinstance(reply, AIMessage) and reply.content and not self.streamed:
                    self.say(str(reply.content))  # a reply that was not streamed (no chat model, retries given up)
                self.streamed = False
                for call in getattr(reply, "tool_calls", None) or []:
                    args = ", ".join(f"{k}={v}" for k, v in call["args"].items())
                    self.say(f"\n→ {call['name']}({args})", "cyan")
            elif node == "tools":
                for message in update.get("messages", []):
                    if isinstance(message, ToolMessage):
                        first = str(message.content).splitlines()[0] if message.content else ""
                        self.say(f"  {message.name}: {first}", "red" if message.status == "error" else "dim")
                        judged |= message.name == "judge_group" and message.status != "error"
            elif update.get("messages") and node.endswith("after_model"):
                last = update["messages"][-1]
                if isinstance(last, AIMessage) and last.content:
                    self.say(str(last.content), "yellow")  # a guard stopped the turn
        return judged


def _number(text: str, command: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise SpikemergeError(f"{command} takes {what}, not {text!r}") from None


def _group_ids(words: list[str], command: str) -> list[int]:
    try:
        return [int(w.strip(",")) for w in words]
    except ValueError:
        raise SpikemergeError(f"{command} takes group numbers, e.g. {command} 1 3 (not {' '.join(words)!r})") from None


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
    try:
        out_path = claim_output_folder(Path(out or DEFAULT_OUT).expanduser())
        ask = ask or readline_input(out_path / HISTORY_FILE)
        had_thread = (out_path / THREAD_FILE).exists()
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
        if resume and not state.get("messages"):
            console.print(f"[yellow]nothing to resume in {escape(str(out_path))}"
                          f"{'' if had_thread else ' (no earlier chat there)'}: starting a new conversation[/]")
        elif resume:
            with console.status("reopening the analyzer of this conversation"):
                registry.ensure(state)
            console.print(f"resumed conversation [bold]{config['configurable']['thread_id']}[/] "
                          f"({len(state.get('messages', []))} messages)")
        if analyzer and (registry.current is None or str(Path(analyzer).expanduser().resolve()) != str(registry.current.info.path)):
            with console.status(f"loading {analyzer}"):
                text = run_tool(registry, "load_analyzer", {"path": str(analyzer)})
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
            line = ask(PROMPT).strip()
        except EOFError:
            console.print()
            return 0
        except KeyboardInterrupt:  # Ctrl-C at the prompt clears the line, as in a shell
            console.print()
            continue
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
