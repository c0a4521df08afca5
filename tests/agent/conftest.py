"""Fast stand-ins for the agent tests: a fake curation session and a scripted planner.

``FakeSession`` has the methods and attributes of ``CurationSession`` that the tools use and
returns the real value types (``CandidateSearch``, ``Verdict``, ``MergePlan``, ``ApplyResult``),
so the graph's behaviour is tested in milliseconds; ``tests/agent/test_resume.py`` runs the
real session on a real analyzer.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fakes import FakeChatModel  # noqa: E402
from spikemerge.agent import SessionRegistry  # noqa: E402
from spikemerge.errors import SpikemergeError  # noqa: E402
from spikemerge.policies import get_policy  # noqa: E402
from spikemerge.tools import curation as merges_tool  # noqa: E402
from spikemerge.tools.analyzer.load import AnalyzerInfo  # noqa: E402
from spikemerge.tools.candidates import CandidateGroup, CandidateSearch  # noqa: E402
from spikemerge.tools.judges.base import Verdict  # noqa: E402

PAIRS = {(1, 2): 0.95, (3, 4): 0.75, (5, 6): 0.62}
"""Unit pairs of the fake analyzer and their template similarity."""
SAME_NEURON = {(1, 2): 0.97, (3, 4): 0.7, (5, 6): 0.1}
"""The fake judge's merge probability per pair."""


class FakeSession:
    """A ``CurationSession`` look-alike over six units; records every call."""

    def __init__(self, out: Path, policy: str = "balanced") -> None:
        self.info = AnalyzerInfo(path="/data/fake_analyzer", format="binary_folder", unit_ids=[1, 2, 3, 4, 5, 6],
                                 num_channels=32, duration_s=60.0, sampling_frequency=30000.0,
                                 has_recording=False, sparse=True)
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.policy = policy
        self.search: CandidateSearch | None = None
        self.groups: dict[int, CandidateGroup] = {}
        self.verdicts: dict[int, Verdict] = {}
        self.images: dict[int, dict[str, Path]] = {}
        self.judge_used = None
        self.last_apply = None
        self.calls: list[tuple[str, dict]] = []
        self.applies: list[Path] = []

    def find_candidates(self, min_similarity=None, preset=None, relax=True):
        self.calls.append(("find_candidates", {"min_similarity": min_similarity, "relax": relax}))
        level = min_similarity if min_similarity is not None else get_policy(self.policy).min_similarity
        levels = []
        while True:
            pairs = [p for p, s in PAIRS.items() if s >= level - 1e-9]
            levels.append({"min_similarity": round(level, 2), "num_groups": len(pairs)})
            if pairs or not relax or level <= 0.5:
                break
            level -= 0.05
        groups = [CandidateGroup(i + 1, list(p), "similarity", [{"unit_a": p[0], "unit_b": p[1],
                  "template_similarity": PAIRS[p], "distance_um": 10.0}]) for i, p in enumerate(pairs)]
        self.search = CandidateSearch(groups, preset, round(level, 2), levels)
        self.groups = {g.group_id: g for g in groups}
        self.verdicts = {}
        return self.search

    def _ids(self, group_ids):
        if self.search is None:
            raise SpikemergeError("no candidate groups yet: run find_candidates first")
        ids = sorted(self.groups) if group_ids is None else [int(g) for g in group_ids]
        unknown = [g for g in ids if g not in self.groups]
        if unknown:
            raise SpikemergeError(f"unknown group id(s) {unknown}")
        return ids

    def render_group(self, group_ids=None, features=None):
        self.calls.append(("render_group", {"group_ids": group_ids}))
        for g in self._ids(group_ids):
            self.images[g] = {f: self.out / "images" / f"group{g}_{f}.png" for f in (features or ["crosscorrelograms"])}
        return {g: self.images[g] for g in self._ids(group_ids)}

    def judge_group(self, group_ids=None, judge=None, good_examples=(), bad_examples=(), policy=None, rejudge=False):
        policy = get_policy(policy or self.policy).name
        self.policy = policy
        self.calls.append(("judge_group", {"group_ids": group_ids, "good": list(good_examples),
                                           "bad": list(bad_examples), "policy": policy}))
        examples = set(good_examples) | set(bad_examples)
        ids = [g for g in self._ids(group_ids) if g not in examples
               and (group_ids is not None or rejudge or examples or g not in self.verdicts)]
        threshold = get_policy(policy).merge_threshold
        out = []
        for g in ids:
            units = self.groups[g].unit_ids
            p = SAME_NEURON[tuple(units)] + (0.2 if good_examples else 0.0)
            decision = "merge" if p >= threshold else "not merge"
            v = Verdict(group_id=g, unit_ids=list(units), decision=decision, confidence=min(1.0, max(p, 1 - p)),
                        merge_unit_ids=list(units) if decision == "merge" else [], reasoning=f"p={p:.2f}",
                        judge="metrics", policy=policy)
            self.verdicts[g] = v
            out.append(v)
        return out

    def plan_merges(self, group_ids=None):
        ids = self._ids(group_ids)
        return merges_tool.plan_merges([self.verdicts[g] for g in ids if g in self.verdicts], self.info.unit_ids, {})

    def apply_merges(self, group_ids=None, confirm=False, write_analyzer=True):
        plan = self.plan_merges(group_ids)
        self.calls.append(("apply_merges", {"confirm": confirm}))
        if not confirm:
            return plan
        path = self.out / "curation.json"
        path.write_text(json.dumps({"merges": plan.groups}))
        self.applies.append(path)
        self.last_apply = merges_tool.ApplyResult(None, path, 6, 6 - sum(len(g) - 1 for g in plan.groups))
        return self.last_apply

    def undo_last_apply(self):
        self.calls.append(("undo", {}))
        if not self.applies:
            raise SpikemergeError("nothing to undo: no merges were applied")
        self.applies.pop().unlink()
        self.last_apply = None
        return "undid the last apply: removed curation.json"


def call(name: str, **args: Any) -> dict:
    """A tool call for a scripted planner reply."""
    call.counter += 1
    return {"name": name, "args": args, "id": f"t{call.counter}", "type": "tool_call"}


call.counter = 0


def ask(*calls: dict, text: str = "") -> AIMessage:
    """A planner reply that calls tools."""
    return AIMessage(content=text, tool_calls=list(calls))


def last_tool_text(messages) -> str:
    tools = [m for m in messages if isinstance(m, ToolMessage)]
    return tools[-1].content if tools else ""


def planner(*replies: Any) -> FakeChatModel:
    return FakeChatModel.scripted(*replies, model_name="fake-planner")


def reactive_planner(rule: Callable[[list], Any]) -> FakeChatModel:
    """A planner that answers from the conversation (``rule(messages) -> reply``)."""
    return FakeChatModel(responder=lambda messages, kwargs: rule(messages), model_name="fake-planner")


def user(text: str) -> dict:
    return {"messages": [HumanMessage(content=text)]}


@pytest.fixture
def fake_session(tmp_path) -> FakeSession:
    return FakeSession(tmp_path / "out")


@pytest.fixture
def registry(fake_session) -> SessionRegistry:
    return SessionRegistry(fake_session)


@pytest.fixture
def thread() -> dict:
    return {"configurable": {"thread_id": "t1"}}
