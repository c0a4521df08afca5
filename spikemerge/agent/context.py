"""How one run is set up: the registry that holds live sessions, and the runtime context.

A ``SortingAnalyzer`` cannot be checkpointed, so the session that holds it lives in a
:class:`SessionRegistry`, handed to ``build_graph(registry=...)`` or passed per run with
``graph.invoke(..., context=Context(registry=...))``. When a conversation resumes in a new
process the registry is empty; :meth:`SessionRegistry.ensure` rebuilds the session from the
checkpointed state (paths, groups, verdicts) without recomputing any of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ..errors import SpikemergeError
from ..policies import get_policy
from ..tools.candidates import CandidateGroup, CandidateSearch
from ..tools.judges.base import Judge
from ..tools.session import CurationSession
from ..tools.judges.base import Verdict

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

DEFAULT_OUT = "curation_out"


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

    @cached_property
    def tools(self) -> list["BaseTool"]:
        """The five tools bound to this registry."""
        from .tools import make_tools

        return make_tools(self)

    @cached_property
    def tools_by_name(self) -> dict[str, "BaseTool"]:
        return {t.name: t for t in self.tools}

    def open(self, path: str | Path) -> CurationSession:
        """Open ``path`` as the current session (the previous one is dropped)."""
        out = self.out if self.out is not None else Path(DEFAULT_OUT)
        self.current = CurationSession.open(path, out, policy=self.policy, n_jobs=self.n_jobs, progress=self.progress)
        return self.current

    def require(self) -> CurationSession:
        """The current session, or a one-line error telling the planner to load one."""
        if self.current is None:
            raise SpikemergeError("no analyzer loaded: call load_analyzer(path) first")
        return self.current

    def ensure(self, state: Mapping[str, Any]) -> CurationSession | None:
        """Rebuild the session from checkpointed ``state`` when this registry has none."""
        if self.current is not None or not state.get("analyzer_path"):
            return self.current
        self.current = restore_session(state, n_jobs=self.n_jobs, progress=self.progress)
        return self.current


def restore_session(state: Mapping[str, Any], *, n_jobs: int = 1, progress: bool = False) -> CurationSession:
    """Reopen the analyzer named in ``state`` and put its groups and verdicts back.

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
        session.verdicts = {int(v["group_id"]): Verdict.from_dict(v) for v in state.get("verdicts") or []}
    return session


@dataclass(kw_only=True)
class Context:
    """Per-run settings (``graph.invoke(..., context=Context(...))``); None means the build-time value."""

    registry: SessionRegistry | None = field(default=None, metadata={"description": "Sessions for this run."})
    auto_approve: bool | None = field(
        default=None, metadata={"description": "Apply merges without asking the person (the --yes flag)."}
    )
