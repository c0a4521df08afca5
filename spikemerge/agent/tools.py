"""The five tools: one implementation each, called by the planner and by the chat's slash commands.

Each operation (``load_analyzer_op`` ... ``apply_merges_op``) takes a :class:`SessionRegistry`
and typed arguments and returns compact text: counts, the first few groups or verdicts, and
where the full lists are (``decisions.csv``, ``report.html``). A planner that judged 300 groups
reads a dozen lines, not 20 000 tokens; the person reads the full table in the chat.

:func:`make_tools` wraps the operations as LangChain tools. A tool finds its session through
the run's ``ToolRuntime`` (``Context.registry``) and falls back to the registry it was made
for, so one set of tool objects serves every run and every embedding host.

Use them without a graph::

    registry = SessionRegistry(judge=MetricsJudge())
    tools = {t.name: t for t in make_tools(registry)}
    tools["load_analyzer"].invoke({"path": "my_analyzer"})
    run_tool(registry, "find_candidates", {"min_similarity": 0.8})
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence

from langchain.tools import ToolRuntime
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field, ValidationError

from ..errors import SpikemergeError
from ..tools.curation import ApplyResult, MergePlan
from ..tools.judges.metrics import MetricsJudge
from ..tools.secrets import scrub

if TYPE_CHECKING:
    from ..tools.candidates import CandidateSearch
    from ..tools.judges.base import Judge, Verdict
    from ..tools.session import CurationSession
    from .context import SessionRegistry

TOOL_NAMES = ("load_analyzer", "find_candidates", "render_group", "judge_group", "apply_merges")
FIRST_FEW = 5
"""Groups or verdicts listed by name in a tool result; the rest are counted and point to a file."""
REASON_CHARS = 160
PolicyName = Literal["conservative", "balanced", "aggressive"]
Progress = Callable[[dict], None]


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


SCHEMAS: dict[str, type[BaseModel]] = {
    "load_analyzer": LoadAnalyzerArgs, "find_candidates": FindCandidatesArgs, "render_group": RenderGroupArgs,
    "judge_group": JudgeGroupArgs, "apply_merges": ApplyMergesArgs,
}


# ---------------------------------------------------------------- compact text


def _units(units: Sequence[Any]) -> str:
    return "[" + ", ".join(str(u) for u in units) + "]"


def _short(text: str, limit: int = REASON_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _more(total: int, shown: int, where: str) -> list[str]:
    return [f"… and {total - shown} more ({where})"] if total > shown else []


def describe_search(search: "CandidateSearch", out: Any = None) -> str:
    """The search summary and the first few groups with the evidence that put them there."""
    lines = [search.summary()]
    for group in search.groups[:FIRST_FEW]:
        best = max((p.get("template_similarity") or 0.0 for p in group.pairs), default=None)
        evidence = f"template similarity up to {best:.2f}" if best is not None else group.found_by
        lines.append(f"group {group.group_id}: units {_units(group.unit_ids)} ({evidence})")
    lines += _more(len(search.groups), FIRST_FEW, "all groups: /show N or report.html after render_group")
    if not search.groups:
        lines.append("No candidate groups: try a lower min_similarity or another preset.")
    return "\n".join(lines)


def describe_verdict(v: "Verdict") -> str:
    head = f"group {v.group_id} {_units(v.unit_ids)}: {v.decision} (confidence {v.confidence:.2f})"
    if v.decision == "merge" and (len(v.merge_groups) > 1 or list(v.merge_unit_ids) != list(v.unit_ids)):
        head += ", merge " + " and ".join(_units(part) for part in v.merge_groups)
    return f"{head}: {_short(v.reasoning)}"


def count_decisions(verdicts: Sequence["Verdict"]) -> str:
    decisions = [v.decision for v in verdicts]
    return ", ".join(f"{decisions.count(d)} {d}" for d in ("merge", "not merge", "abstain", "error"))


def describe_verdicts(session: "CurationSession", verdicts: Sequence["Verdict"], judge_name: str) -> str:
    """Counts, the first few verdicts (errors and merges first) and where the full table is."""
    lines = [f"judged {len(verdicts)} group(s) with the {judge_name} judge, policy {session.policy}: "
             f"{count_decisions(verdicts)}"]
    order = {"error": 0, "merge": 1, "abstain": 2, "not merge": 3}
    shown = sorted(verdicts, key=lambda v: (order.get(v.decision, 4), v.group_id))[:FIRST_FEW]
    lines += [describe_verdict(v) for v in shown]
    lines += _more(len(verdicts), len(shown), "every verdict with its full reasoning is in decisions.csv")
    lines.append(f"decisions: {session.out / 'decisions.csv'}")
    if (session.out / "report.html").exists():
        lines.append(f"report: {session.out / 'report.html'}")
    return "\n".join(lines)


def plan_hash(plan: MergePlan) -> str:
    """A short hash of exactly what an apply would write (which units merge, from which groups)."""
    payload = {"groups": [[str(u) for u in g] for g in plan.groups], "from": list(plan.source_group_ids),
               "duplicate": list(plan.duplicate_flags)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def describe_plan(plan: MergePlan, units_before: int) -> str:
    """What an apply would do, written so a person can approve it (every merge is listed)."""
    after = units_before - sum(len(g) - 1 for g in plan.groups)
    lines = [f"{len(plan.groups)} merge(s), {units_before} -> {after} units (plan {plan_hash(plan)})"]
    for gid, units, dup in zip(plan.source_group_ids, plan.groups, plan.duplicate_flags):
        lines.append(f"  group {gid}: merge units {_units(units)}" + (" (duplicate spikes censored)" if dup else ""))
    for gid, reason in plan.skipped:
        lines.append(f"  group {gid} not applied: {reason}")
    return "\n".join(lines)


def format_tool_error(error: Exception, *_: Any) -> str:
    """The error text a planner or a person sees instead of a crash (keys scrubbed, one line)."""
    if isinstance(error, SpikemergeError):
        return f"Error: {scrub(str(error))}"
    first = (str(error).strip().splitlines() or [""])[0]
    return f"Error ({type(error).__name__}): {scrub(first)}"


def args_error(name: str, exc: ValidationError) -> SpikemergeError:
    """A pydantic error as one line that says what is valid (``/find 1.5``)."""
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err.get("loc", ())) or "arguments"
        ctx = err.get("ctx") or {}
        if err.get("type") in ("less_than_equal", "greater_than_equal") and field == "min_similarity":
            parts.append(f"min_similarity must be between 0 and 1 (0.8 = templates 80 % alike), not {err.get('input')}")
        elif "expected" in ctx:
            parts.append(f"{field} must be one of {ctx['expected']}, not {err.get('input')!r}")
        else:
            parts.append(f"{field}: {err.get('msg', 'invalid').lower()} (got {err.get('input')!r})")
    return SpikemergeError(f"{name}: " + "; ".join(parts))


# ---------------------------------------------------------------- the operations


def load_analyzer_op(registry: "SessionRegistry", path: str) -> str:
    session = registry.open(path)
    return f"loaded {path}: {session.info.summary()}\noutput folder: {session.out}"


def find_candidates_op(registry: "SessionRegistry", min_similarity: float | None = None, preset: str | None = None,
                       relax: bool = True) -> str:
    session = registry.require()
    return describe_search(session.find_candidates(min_similarity=min_similarity, preset=preset, relax=relax))


def render_group_op(registry: "SessionRegistry", group_ids: list[int] | None = None,
                    features: list[str] | None = None, progress: Progress | None = None) -> str:
    session = registry.require()
    if progress is not None:
        progress({"event": "progress", "tool": "render_group", "text": "drawing figures"})
    drawn = session.render_group(group_ids, features)
    kinds = sorted({k for paths in drawn.values() for k in paths})
    lines = [f"rendered {len(drawn)} group(s) ({', '.join(kinds) or 'no figures'}) into {session.out / 'images'}"]
    for gid in list(drawn)[:FIRST_FEW]:
        lines.append(f"group {gid}: " + ", ".join(str(p) for p in drawn[gid].values()))
    lines += _more(len(drawn), FIRST_FEW, "every figure is in the images folder and report.html")
    if (session.out / "report.html").exists():
        lines.append(f"report: {session.out / 'report.html'}")
    return "\n".join(lines)


class ProgressJudge:
    """Wraps a judge so each verdict is also reported as a progress event."""

    def __init__(self, inner: Any, total: int, emit: Progress) -> None:
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


def judge_group_op(
    registry: "SessionRegistry",
    group_ids: list[int] | None = None,
    good_examples: list[int] | None = None,
    bad_examples: list[int] | None = None,
    policy: PolicyName | None = None,
    *,
    judge: "Judge | None" = None,
    progress: Progress | None = None,
) -> str:
    session = registry.require()
    chosen = judge or registry.judge or session.judge_used or MetricsJudge()
    rejudge = policy is not None and any(v.policy != policy for v in session.verdicts.values())
    pending = len(group_ids) if group_ids is not None else sum(1 for g in session.groups if g not in session.verdicts)
    wrapped = ProgressJudge(chosen, pending, progress) if progress is not None else chosen
    try:
        verdicts = session.judge_group(group_ids, judge=wrapped, good_examples=good_examples or (),
                                       bad_examples=bad_examples or (), policy=policy, rejudge=rejudge)
    finally:
        session.judge_used = chosen  # never leave the progress wrapper behind (also on Ctrl-C)
    if not verdicts:
        return "nothing to judge: every group already has a verdict (name group_ids or change the policy to judge again)"
    return describe_verdicts(session, verdicts, chosen.name)


def plan_of(registry: "SessionRegistry", group_ids: list[int] | None = None) -> tuple[str, str]:
    """The plan an apply would write now, as text for the person and its hash."""
    session = registry.require()
    plan = session.plan_merges(group_ids)
    return describe_plan(plan, session.info.num_units), plan_hash(plan)


def apply_merges_op(registry: "SessionRegistry", group_ids: list[int] | None = None, confirm: bool = False,
                    undo: bool = False, plan_hash_approved: str | None = None) -> str:
    """Show the plan, write it (only the plan approved, when its hash is given), or undo."""
    session = registry.require()
    if undo:
        return session.undo_last_apply()
    if confirm and plan_hash_approved is not None:
        current = plan_hash(session.plan_merges(group_ids))
        if current != plan_hash_approved:
            return (f"Not done: the plan changed after it was approved (approved {plan_hash_approved}, now {current}); "
                    "show the new plan with apply_merges(confirm=false) and ask again")
    result = session.apply_merges(group_ids, confirm=confirm)
    if isinstance(result, ApplyResult):
        return result.summary()
    return "plan (nothing written yet): " + describe_plan(result, session.info.num_units) + \
        "\ncall apply_merges(confirm=true) to write it"


OPERATIONS: dict[str, Callable[..., str]] = {
    "load_analyzer": load_analyzer_op, "find_candidates": find_candidates_op, "render_group": render_group_op,
    "judge_group": judge_group_op, "apply_merges": apply_merges_op,
}


def validate_args(name: str, args: dict[str, Any]) -> dict[str, Any]:
    """Check ``args`` against the tool's schema; a bad value is one :class:`SpikemergeError` line."""
    try:
        return SCHEMAS[name].model_validate(args).model_dump()
    except ValidationError as exc:
        raise args_error(name, exc) from None


def run_tool(registry: "SessionRegistry", name: str, args: dict[str, Any], **extra: Any) -> str:
    """Run one tool's operation with validated arguments (what a slash command does)."""
    return OPERATIONS[name](registry, **validate_args(name, args), **extra)


# ---------------------------------------------------------------- LangChain tools


def registry_for(context: Any, default: "SessionRegistry | None") -> "SessionRegistry":
    """The run's registry (``Context.registry``), else ``default``, else a one-line error."""
    registry = getattr(context, "registry", None) or default
    if registry is None:
        raise SpikemergeError("no session registry: pass build_graph(registry=...) or Context(registry=...)")
    return registry


_JUDGES: dict[str, "Judge"] = {}


def judge_for(context: Any) -> "Judge | None":
    """The judge a run's Context names (built once per model id), or None to use the registry's."""
    spec = getattr(context, "judge", None)
    if spec is None or not isinstance(spec, str):
        return spec
    if spec not in _JUDGES:
        from ..tools.judges import make_judge

        _JUDGES[spec] = make_judge(spec)
    return _JUDGES[spec]


def _writer(runtime: ToolRuntime | None) -> Progress | None:
    writer = getattr(runtime, "stream_writer", None)
    return writer if callable(writer) else None


def make_tools(registry: "SessionRegistry | None" = None) -> list[BaseTool]:
    """The five tools, in contract order, over the run's registry (``Context.registry``) or ``registry``."""
    def session_registry(runtime: ToolRuntime | None) -> "SessionRegistry":
        reg = registry_for(getattr(runtime, "context", None), registry)
        state = getattr(runtime, "state", None)
        if isinstance(state, dict):
            reg.ensure(state)  # a resumed conversation: reopen its analyzer, groups and verdicts
        return reg

    def load_analyzer(path: str, runtime: ToolRuntime = None) -> str:  # type: ignore[assignment]
        return load_analyzer_op(registry_for(getattr(runtime, "context", None), registry), path)

    def find_candidates(min_similarity: float | None = None, preset: str | None = None, relax: bool = True,
                        runtime: ToolRuntime = None) -> str:  # type: ignore[assignment]
        return find_candidates_op(session_registry(runtime), min_similarity, preset, relax)

    def render_group(group_ids: list[int] | None = None, features: list[str] | None = None,
                     runtime: ToolRuntime = None) -> str:  # type: ignore[assignment]
        return render_group_op(session_registry(runtime), group_ids, features, progress=_writer(runtime))

    def judge_group(group_ids: list[int] | None = None, good_examples: list[int] | None = None,
                    bad_examples: list[int] | None = None, policy: PolicyName | None = None,
                    runtime: ToolRuntime = None) -> str:  # type: ignore[assignment]
        reg = session_registry(runtime)
        return judge_group_op(reg, group_ids, good_examples, bad_examples, policy,
                              judge=judge_for(getattr(runtime, "context", None)), progress=_writer(runtime))

    def apply_merges(group_ids: list[int] | None = None, confirm: bool = False, undo: bool = False,
                     runtime: ToolRuntime = None) -> str:  # type: ignore[assignment]
        return apply_merges_op(session_registry(runtime), group_ids, confirm, undo)

    specs = [
        (load_analyzer,
         "Open a SortingAnalyzer folder and make it the current one; reports units, channels, duration, extensions."),
        (find_candidates,
         "Find candidate groups of units that may be one neuron. Returns the count, the first groups and the thresholds tried."),
        (render_group,
         "Draw each group's figures (crosscorrelograms, amplitudes, waveforms, PCA) to files; returns where they are."),
        (judge_group,
         "Judge groups: merge (possibly several merges per group) / not merge / abstain / error, with confidence and "
         "reasoning. Returns counts and the first verdicts; decisions.csv has all. Examples are shown, never judged."),
        (apply_merges,
         "Without confirm: show the merge plan. With confirm=true: write curation.json and a merged analyzer in a "
         "new folder (the person is asked first). With undo=true: undo the last apply."),
    ]
    return [
        StructuredTool.from_function(func=f, name=f.__name__, description=d, args_schema=SCHEMAS[f.__name__])
        for f, d in specs
    ]
