"""How one run is set up: the :class:`Context` of run settings and the registry of live sessions.

A ``SortingAnalyzer`` cannot be checkpointed, so the session that holds it lives in a
:class:`SessionRegistry`, handed to ``build_graph(registry=...)`` or passed per run with
``graph.invoke(..., context=Context(registry=...))``; tools reach it through their
``ToolRuntime``. When a conversation resumes in a new process the registry is empty:
:meth:`SessionRegistry.ensure` reopens the analyzer named in the checkpointed state, puts the
candidate groups back, and reads the full verdicts (reasoning, per-figure reports) from the
output folder's ``verdicts.jsonl``, so outputs written after a resume lose nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..errors import SpikemergeError
from ..policies import get_policy
from ..tools.candidates import CandidateGroup, CandidateSearch
from ..tools.judges.base import Judge, Verdict
from ..tools.schemas import read_journal
from ..tools.session import JOURNAL, CurationSession

DEFAULT_OUT = "curation_out"


def _env(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


def _env_int(name: str, default: int) -> int:
    try:
        return int(_env(name, str(default)))
    except ValueError:
        raise SpikemergeError(f"{name} must be a whole number, not {os.environ.get(name)!r}") from None


@dataclass(kw_only=True)
class Context:
    """Run settings: ``build_graph(context=...)`` for defaults, ``graph.invoke(..., context=...)`` per run.

    Every field has a default read from the environment when the Context is made, as in the
    LangGraph agent template. Per run, ``registry``, ``judge`` and ``auto_approve`` take
    effect; ``model``, ``policy`` and ``out`` (for the registry ``build_graph`` makes) and the
    limits are read when the graph is built.
    """

    registry: "SessionRegistry | None" = field(default=None, metadata={"description": "Live sessions for this run."})
    model: str = field(
        default_factory=lambda: _env("SPIKEMERGE_MODEL", "openai:gpt-4o-mini"),
        metadata={"description": "The planner, as 'provider:model' ($SPIKEMERGE_MODEL)."},
    )
    judge: "str | Judge | None" = field(
        default_factory=lambda: os.environ.get("SPIKEMERGE_JUDGE", "").strip() or None,
        metadata={"description": "judge_group's judge: 'metrics', a model id or a Judge ($SPIKEMERGE_JUDGE)."},
    )
    policy: str = field(
        default_factory=lambda: _env("SPIKEMERGE_POLICY", "balanced"),
        metadata={"description": "conservative, balanced or aggressive ($SPIKEMERGE_POLICY)."},
    )
    out: str = field(
        default_factory=lambda: _env("SPIKEMERGE_OUT", DEFAULT_OUT),
        metadata={"description": "Output folder of sessions opened by load_analyzer ($SPIKEMERGE_OUT)."},
    )
    auto_approve: bool | None = field(
        default=None, metadata={"description": "Apply merges without asking the person (the --yes flag)."}
    )
    max_tool_calls_per_turn: int = field(
        default_factory=lambda: _env_int("SPIKEMERGE_MAX_TOOL_CALLS", 12),
        metadata={"description": "Tool calls allowed between two messages of the person ($SPIKEMERGE_MAX_TOOL_CALLS)."},
    )
    recursion_limit: int = field(
        default_factory=lambda: _env_int("SPIKEMERGE_RECURSION_LIMIT", 150),
        metadata={"description": "Graph steps per invocation ($SPIKEMERGE_RECURSION_LIMIT)."},
    )


class SessionRegistry:
    """Holds the current :class:`CurationSession` (and its analyzer) outside the graph state.

    Parameters
    ----------
    session
        A session already open (e.g. ``CurationSession.from_analyzer(...)`` in a notebook).
    judge
        The judge ``judge_group`` uses (default: the offline metrics judge).
    out
        Output folder for sessions opened by ``load_analyzer`` (default ``curation_out``).
    policy
        Policy for newly opened sessions.
    n_jobs, progress
        Passed to :meth:`CurationSession.open`.
    """

    def __init__(
        self,
        session: CurationSession | None = None,
        *,
        judge: Judge | None = None,
        out: str | Path | None = None,
        policy: str = "balanced",
        n_jobs: int = 1,
        progress: bool = False,
    ) -> None:
        self.current = session
        self.judge = judge
        self.out = Path(out) if out is not None else None
        self.policy = get_policy(policy).name
        self.n_jobs = n_jobs
        self.progress = progress

    def open(self, path: str | Path) -> CurationSession:
        """Open ``path`` as the current session (the previous one is dropped)."""
        out = self.out if self.out is not None else Path(DEFAULT_OUT)
        self.current = CurationSession.open(path, out, policy=self.policy, n_jobs=self.n_jobs, progress=self.progress)
        return self.current

    def require(self) -> CurationSession:
        """The current session, or a one-line error telling the planner to load one."""
        if self.current is None:
            raise SpikemergeError("no analyzer loaded: call load_analyzer(path) first (/load PATH in the chat)")
        return self.current

    def ensure(self, state: Mapping[str, Any]) -> CurationSession | None:
        """Rebuild the session from checkpointed ``state`` when this registry has none."""
        if self.current is not None or not state.get("analyzer_path"):
            return self.current
        self.current = restore_session(state, n_jobs=self.n_jobs, progress=self.progress)
        return self.current


def journal_verdicts(out: Path, compact: list[Mapping[str, Any]]) -> dict[int, Verdict]:
    """The full verdicts behind the state's compact ones, read from ``out/verdicts.jsonl``.

    A compact verdict names its group, units, decision and policy; the journal holds every
    verdict ever written in the folder with its full reasoning and per-figure reports. The
    latest journal record with the same units, decision, policy and judge is the one; a
    compact verdict with no such record is kept as it is.
    """
    records = [line.verdict.model_dump() for line in read_journal(Path(out) / JOURNAL)]  # validated lines only
    full: dict[int, Verdict] = {}
    for v in compact:
        units = [str(u) for u in v.get("unit_ids", [])]
        match = next((r for r in reversed(records)
                      if [str(u) for u in r.get("unit_ids", [])] == units and r.get("decision") == v.get("decision")
                      and r.get("policy") == v.get("policy") and r.get("judge") == v.get("judge")), None)
        data = {**match, "group_id": v["group_id"]} if match is not None else dict(v)
        full[int(v["group_id"])] = Verdict.from_dict(data)
    return full


def restore_session(state: Mapping[str, Any], *, n_jobs: int = 1, progress: bool = False) -> CurationSession:
    """Reopen the analyzer named in ``state`` and put its groups and full verdicts back.

    Raises
    ------
    SpikemergeError
        The analyzer was only in memory, or its folder cannot be opened any more.
    """
    path = str(state["analyzer_path"])
    if path.startswith("("):
        raise SpikemergeError("the analyzer of this conversation was in memory: load it again with load_analyzer")
    session = CurationSession.open(
        path, state.get("out") or DEFAULT_OUT, policy=state.get("policy") or "balanced", n_jobs=n_jobs, progress=progress
    )
    search = state.get("search")
    if search is not None:
        groups = [CandidateGroup(**g) for g in state.get("groups") or []]
        session.search = CandidateSearch(
            groups=groups, preset=search.get("preset"), min_similarity=search["min_similarity"], levels=search.get("levels", [])
        )
        session.groups = {g.group_id: g for g in groups}
        session.verdicts = journal_verdicts(session.out, state.get("verdicts") or [])
        session.images = {int(g): {k: Path(p) for k, p in paths.items()}
                          for g, paths in (state.get("images") or {}).items() if int(g) in session.groups}
    return session
