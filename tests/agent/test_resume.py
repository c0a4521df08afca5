"""The agent over a real analyzer: relax, SQLite checkpoints, and a resume in a new process."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.sqlite import SqliteSaver

from spikemerge.agent import SessionRegistry, build_graph
from spikemerge.bench.synthetic import ScenarioSpec, make_ground_truth, save_ground_truth

from .conftest import ask, call, planner

TINY = ScenarioSpec(num_neurons=4, duration_s=20.0, num_twin_pairs=0, num_random_splits_2=1, num_random_splits_3=0,
                    num_time_splits=0, num_duplicates=1, firing_rates=(10.0, 20.0), seed=3)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_analyzer_folder(tmp_path_factory) -> Path:
    """Four neurons damaged into six units (one split, one duplicate), saved without recording."""
    folder = tmp_path_factory.mktemp("tiny")
    save_ground_truth(make_ground_truth(TINY), folder)
    return folder / "analyzer"


@pytest.mark.slow
def test_resume_from_sqlite_in_a_new_process(tiny_analyzer_folder, tmp_path):
    db, out = tmp_path / "chat.sqlite", tmp_path / "out"
    config = {"configurable": {"thread_id": "resume-me"}}
    saver = SqliteSaver(sqlite3.connect(str(db), check_same_thread=False))
    graph = build_graph(
        model=planner(ask(call("load_analyzer", path=str(tiny_analyzer_folder)), call("find_candidates"),
                          call("judge_group", group_ids=[1])), "Group 1 judged.",
                      ask(call("apply_merges", confirm=True))),
        registry=SessionRegistry(out=out), checkpointer=saver,
    )
    graph.invoke({"messages": [HumanMessage("judge group 1")]}, config)
    paused = graph.invoke({"messages": [HumanMessage("apply it")]}, config)
    assert paused["__interrupt__"] and not (out / "curation.json").exists()
    journal_lines = (out / "verdicts.jsonl").read_text().count("\n")

    script = textwrap.dedent(f"""
        import json, sqlite3, sys
        sys.path.insert(0, {str(ROOT / 'tests')!r})
        from fakes import FakeChatModel
        from langgraph.checkpoint.sqlite import SqliteSaver
        from langgraph.types import Command
        from spikemerge.agent import SessionRegistry, build_graph
        saver = SqliteSaver(sqlite3.connect({str(db)!r}, check_same_thread=False))
        graph = build_graph(model=FakeChatModel.scripted("Applied."), registry=SessionRegistry(), checkpointer=saver)
        state = graph.invoke(Command(resume="yes"), {config!r})
        print(json.dumps({{"last_apply": state["last_apply"], "reply": state["messages"][-1].content}}))
    """)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["reply"] == "Applied." and result["last_apply"]["units_after"] < result["last_apply"]["units_before"]
    assert (out / "curation.json").exists()
    assert (out / "verdicts.jsonl").read_text().count("\n") == journal_lines  # nothing judged again


class WordyJudge:
    """A judge whose reasoning and per-figure reports are long (as a VLM's are)."""

    name, model = "wordy", "wordy-1"

    def fingerprint(self) -> str:
        return "wordy-1"

    def judge_many(self, requests, examples=(), policy="balanced", on_verdict=None):
        from spikemerge.tools.judges.base import Verdict

        out = []
        for r in requests:
            v = Verdict(group_id=r.group_id, unit_ids=list(r.unit_ids), decision="merge", confidence=0.9,
                        merge_unit_ids=list(r.unit_ids), reasoning="R" * 900 + " END-OF-REASONING", judge=self.name,
                        model=self.model, policy=policy, reports={"crosscorrelograms": "C" * 600 + " END-OF-CCG"})
            if on_verdict is not None:
                on_verdict(v)
            out.append(v)
        return out


def test_after_resume_outputs_keep_full_reasoning_and_reports(tiny_analyzer_folder, tmp_path):
    db, out = tmp_path / "chat.sqlite", tmp_path / "out"
    config = {"configurable": {"thread_id": "wordy"}}
    first = build_graph(
        model=planner(ask(call("load_analyzer", path=str(tiny_analyzer_folder)), call("find_candidates"),
                          call("judge_group", group_ids=[1])), "judged"),
        registry=SessionRegistry(out=out, judge=WordyJudge()),
        checkpointer=SqliteSaver(sqlite3.connect(str(db), check_same_thread=False)),
    )
    state = first.invoke({"messages": [HumanMessage("judge group 1")]}, config)
    assert "reasoning" not in state["verdicts"][0]  # the checkpoint keeps verdicts compact

    resumed = build_graph(  # a new registry, as in a new process: the session is rebuilt from the state
        model=planner(ask(call("apply_merges", confirm=True)), "applied"), registry=SessionRegistry(),
        checkpointer=SqliteSaver(sqlite3.connect(str(db), check_same_thread=False)), auto_approve=True,
    )
    resumed.invoke({"messages": [HumanMessage("apply it")]}, config)
    decisions = (out / "decisions.csv").read_text()
    assert "END-OF-REASONING" in decisions and "END-OF-CCG" in decisions and "R" * 900 in decisions
    report = (out / "report.html").read_text()
    assert "END-OF-REASONING" in report
