"""The five tools as LangChain tools: typed arguments in, compact text out.

Each tool is a thin wrapper over a :class:`CurationSession` method; the session comes from the
:class:`SessionRegistry` the tools are made for. Results are short text a planner can reason
about (counts, verdicts, file paths), never images. Errors are raised as they are; the graph's
tool node turns them into error messages for the planner (see :func:`format_tool_error`).

Use them without a graph::

    registry = SessionRegistry(judge=MetricsJudge())
    tools = {t.name: t for t in make_tools(registry)}
    tools["load_analyzer"].invoke({"path": "my_analyzer"})
    tools["find_candidates"].invoke({"min_similarity": 0.8})
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from ..errors import SpikemergeError
from ..tools.judges.metrics import MetricsJudge
from ..tools.curation import ApplyResult, MergePlan
from ..tools.judges.vlm.model import scrub

if TYPE_CHECKING:
    from ..tools.candidates import CandidateSearch
    from ..tools.session import CurationSession
    from ..tools.judges.base import Verdict
    from .context import SessionRegistry

TOOL_NAMES = ("load_analyzer", "find_candidates", "render_group", "judge_group", "apply_merges")
REASON_CHARS = 160
PolicyName = Literal["conservative", "balanced", "aggressive"]


# ---------------------------------------------------------------- argument schemas (the contract)


class LoadAnalyzerArgs(BaseModel):
    path: str = Field(description="Folder of a saved SpikeInterface SortingAnalyzer (binary_folder or zarr).")


class FindCandidatesArgs(BaseModel):
    min_similarity: float | None = Field(
        default=None, ge=0.0, le=1.0,
        description="Templates at least this alike (0.9 = 90 %). Lower it to find more groups. Default: the policy's.",
    )
    preset: str | None = Field(
        default=None,
        description="None for the similarity+distance gate, or a SpikeInterface preset: similarity_correlograms, "
                    "temporal_splits, x_contaminations, feature_neighbors, slay.",
    )
    relax: bool = Field(default=True, description="When nothing is found, lower min_similarity step by step to a floor.")


class RenderGroupArgs(BaseModel):
    group_ids: list[int] | None = Field(default=None, description="Groups to draw (default: all).")
    features: list[str] | None = Field(
        default=None, description="Figures: crosscorrelograms, amplitudes, waveforms, pca (default: these four)."
    )


class JudgeGroupArgs(BaseModel):
    group_ids: list[int] | None = Field(default=None, description="Groups to judge (default: all not yet judged).")
    good_examples: list[int] = Field(default_factory=list, description="Group ids to show as examples of a correct merge.")
    bad_examples: list[int] = Field(default_factory=list, description="Group ids to show as examples of units to keep apart.")
    policy: PolicyName | None = Field(
        default=None, description="conservative, balanced or aggressive (default: the session's, initially balanced)."
    )


class ApplyMergesArgs(BaseModel):
    group_ids: list[int] | None = Field(default=None, description="Groups to merge (default: all judged 'merge').")
    confirm: bool = Field(
        default=False, description="False: only show the plan, nothing is written. True: write (the person is asked first)."
    )
    undo: bool = Field(default=False, description="Undo the last apply instead (removes what it wrote; the person is asked first).")


# ---------------------------------------------------------------- compact text


def _units(units: Sequence[Any]) -> str:
    return "[" + ", ".join(str(u) for u in units) + "]"


def _short(text: str, limit: int = REASON_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_search(search: "CandidateSearch") -> str:
    """One line per group with the evidence that put it there."""
    lines = [search.summary()]
    for group in search.groups:
        best = max((p.get("template_similarity") or 0.0 for p in group.pairs), default=None)
        evidence = f"template similarity up to {best:.2f}" if best is not None else group.found_by
        lines.append(f"group {group.group_id}: units {_units(group.unit_ids)} ({evidence})")
    if not search.groups:
        lines.append("No candidate groups: try a lower min_similarity or another preset.")
    return "\n".join(lines)


def describe_verdict(v: "Verdict") -> str:
    head = f"group {v.group_id} {_units(v.unit_ids)}: {v.decision} (confidence {v.confidence:.2f})"
    if v.decision == "merge" and list(v.merge_unit_ids) != list(v.unit_ids):
        head += f", merge only {_units(v.merge_unit_ids)}"
    return f"{head}: {_short(v.reasoning)}"


def describe_verdicts(session: "CurationSession", verdicts: Sequence["Verdict"], policy: str) -> str:
    decisions = [v.decision for v in verdicts]
    judge = session.judge_used.name if session.judge_used is not None else "metrics"
    lines = [
        f"judged {len(verdicts)} group(s) with the {judge} judge, policy {policy}: "
        f"{decisions.count('merge')} merge, {decisions.count('not merge')} not merge, {decisions.count('error')} error"
    ]
    lines += [describe_verdict(v) for v in verdicts]
    lines.append(f"decisions: {session.out / 'decisions.csv'}")
    if (session.out / "report.html").exists():
        lines.append(f"report: {session.out / 'report.html'}")
    return "\n".join(lines)


def describe_plan(plan: MergePlan, units_before: int) -> str:
    """What an apply would do, written so a person can approve it."""
    after = units_before - sum(len(g) - 1 for g in plan.groups)
    lines = [f"{len(plan.groups)} merge(s), {units_before} -> {after} units"]
    for gid, units, dup in zip(plan.source_group_ids, plan.groups, plan.duplicate_flags):
        lines.append(f"  group {gid}: merge units {_units(units)}" + (" (duplicate spikes censored)" if dup else ""))
    for gid, reason in plan.skipped:
        lines.append(f"  group {gid} not applied: {reason}")
    return "\n".join(lines)


def format_tool_error(error: Exception) -> str:
    """The error text a planner sees instead of a crash (keys scrubbed, one line)."""
    if isinstance(error, SpikemergeError):
        return f"Error: {scrub(str(error))}"
    first = (str(error).strip().splitlines() or [""])[0]
    return f"Error ({type(error).__name__}): {scrub(first)}"


# ---------------------------------------------------------------- progress


def _writer() -> Callable[[dict], None]:
    """LangGraph's custom stream writer inside a graph run, a no-op outside one."""
    try:
        from langgraph.config import get_stream_writer

        return get_stream_writer()
    except Exception:
        return lambda _chunk: None


class ProgressJudge:
    """Wraps a judge so each verdict is also reported as a progress event."""

    def __init__(self, inner: Any, total: int, emit: Callable[[dict], None]) -> None:
        self._inner, self._total, self._emit, self._done = inner, total, emit, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def judge_many(self, requests, examples=(), policy="balanced", on_verdict=None):
        def report(verdict):
            if on_verdict is not None:
                on_verdict(verdict)
            self._done += 1
            self._emit({"event": "progress", "tool": "judge_group", "done": self._done,
                        "total": len(requests), "text": describe_verdict(verdict)})

        return self._inner.judge_many(requests, examples=examples, policy=policy, on_verdict=report)


# ---------------------------------------------------------------- the tools


def make_tools(registry: "SessionRegistry") -> list[BaseTool]:
    """The five tools over ``registry``'s current session, in contract order."""

    def load_analyzer(path: str) -> str:
        session = registry.open(path)
        return f"loaded {path}: {session.info.summary()}\noutput folder: {session.out}"

    def find_candidates(min_similarity: float | None = None, preset: str | None = None, relax: bool = True) -> str:
        session = registry.require()
        return describe_search(session.find_candidates(min_similarity=min_similarity, preset=preset, relax=relax))

    def render_group(group_ids: list[int] | None = None, features: list[str] | None = None) -> str:
        session = registry.require()
        emit = _writer()
        emit({"event": "progress", "tool": "render_group", "text": "drawing figures"})
        drawn = session.render_group(group_ids, features)
        lines = [f"rendered {len(drawn)} group(s) into {session.out / 'images'}"]
        for gid, paths in drawn.items():
            lines.append(f"group {gid}: " + ", ".join(f"{k} {p}" for k, p in paths.items()))
        if (session.out / "report.html").exists():
            lines.append(f"report: {session.out / 'report.html'}")
        return "\n".join(lines)

    def judge_group(
        group_ids: list[int] | None = None,
        good_examples: list[int] | None = None,
        bad_examples: list[int] | None = None,
        policy: PolicyName | None = None,
    ) -> str:
        session = registry.require()
        judge = registry.judge or session.judge_used or MetricsJudge()
        rejudge = policy is not None and any(v.policy != policy for v in session.verdicts.values())
        emit = _writer()
        pending = len(group_ids) if group_ids is not None else len(session.groups)
        judge = ProgressJudge(judge, pending, emit)
        verdicts = session.judge_group(
            group_ids, judge=judge, good_examples=good_examples or (), bad_examples=bad_examples or (),
            policy=policy, rejudge=rejudge,
        )
        if isinstance(session.judge_used, ProgressJudge):
            session.judge_used = session.judge_used._inner
        if not verdicts:
            return "nothing to judge: every group already has a verdict (name group_ids or change the policy to judge again)"
        return describe_verdicts(session, verdicts, session.policy)

    def apply_merges(group_ids: list[int] | None = None, confirm: bool = False, undo: bool = False) -> str:
        session = registry.require()
        if undo:
            return session.undo_last_apply()
        result = session.apply_merges(group_ids, confirm=confirm)
        if isinstance(result, ApplyResult):
            return result.summary()
        return "plan (nothing written yet): " + describe_plan(result, session.info.num_units) + \
            "\ncall apply_merges(confirm=true) to write it"

    specs = [
        (load_analyzer, LoadAnalyzerArgs,
         "Open a SortingAnalyzer folder and make it the current one; reports units, channels, duration, extensions."),
        (find_candidates, FindCandidatesArgs,
         "Find candidate groups of units that may be one neuron. Returns numbered groups and the thresholds tried."),
        (render_group, RenderGroupArgs,
         "Draw each group's figures (crosscorrelograms, amplitudes, waveforms, PCA) to files; returns their paths."),
        (judge_group, JudgeGroupArgs,
         "Judge groups: merge / not merge / error with confidence and reasoning. Examples are shown, never judged."),
        (apply_merges, ApplyMergesArgs,
         "Without confirm: show the merge plan. With confirm=true: write curation.json and a merged analyzer in a "
         "new folder (the person is asked first). With undo=true: undo the last apply."),
    ]
    return [
        StructuredTool.from_function(func=f, name=f.__name__, description=d, args_schema=schema)
        for f, schema, d in specs
    ]
