"""CurationSession: the five tools as methods over one analyzer and one output folder.

The session holds the prepared analyzer, the candidate groups, the evidence and the verdicts;
everything it decides is written to the output folder as it goes (decisions.csv, run.json,
the verdict journal), so a script, the CLI and the agent all leave the same files behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

from spikeinterface.core import SortingAnalyzer

from .. import __version__
from ..errors import SpikemergeError
from ..policies import get_policy
from . import curation as merges_tool
from .analyzer.load import REQUIRED_EXTENSIONS, AnalyzerInfo, describe, open_analyzer, prepare_analyzer
from .candidates import CandidateGroup, CandidateSearch, find_candidates
from .evidence.pairs import EvidenceContext, group_evidence, groups_evidence
from .evidence.params import DEFAULT_EVIDENCE_PARAMS
from .examples import load_example, save_example
from .judges import make_judge
from .judges.base import Judge
from .judges.metrics import MetricsJudge
from .judges.params import DEFAULT_JUDGE_PARAMS
from .outputs import append_jsonl, claim_output_folder, to_jsonable
from .judges.base import Example, JudgeRequest, Verdict
from .schemas import (
    DecisionRow, Provenance, RunRecord, read_journal, write_decisions, write_model,
)

log = logging.getLogger(__name__)

JOURNAL = "verdicts.jsonl"
OUTPUT_FILES = ("decisions.csv", "curation.json", "report.html", "run.json", JOURNAL)


STAGES = ("load", "find", "evidence", "render", "judge", "apply", "report")
"""The stages run.json times; together with ``other`` they cover the session's wall time."""


def peak_rss_bytes() -> dict[str, int]:
    """Peak resident memory of this process and of its largest finished child (e.g. a render worker).

    ``ru_maxrss`` is the kernel's high-water mark, so a peak between two samples is not missed.
    """
    import resource
    import sys

    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return {
        "self": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale),
        "largest_child": int(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale),
    }


@dataclass
class StageTimes:
    """Wall time per stage, each second counted once.

    Stages nest: evidence computed while judging or writing the report is evidence time, not
    judge or report time (the inner stage pauses the outer one). Whatever ran outside every
    stage is ``other``, so the stages plus ``other`` add up to the wall time since ``start``.
    """

    seconds: dict[str, float] = field(default_factory=dict)
    start: float = field(default_factory=time.perf_counter)
    rss_high_water: dict[str, int] = field(default_factory=dict)
    """Peak RSS (bytes) of this process when each stage last ended: the stage where it jumps is
    the one that set the peak."""
    _stack: list[list] = field(default_factory=list, repr=False)

    @contextmanager
    def measure(self, stage: str) -> Iterator[None]:
        now = time.perf_counter()
        if self._stack:  # pause the enclosing stage
            outer = self._stack[-1]
            self.seconds[outer[0]] = self.seconds.get(outer[0], 0.0) + now - outer[1]
        self._stack.append([stage, now])
        try:
            yield
        finally:
            end = time.perf_counter()
            name, since = self._stack.pop()
            self.seconds[name] = self.seconds.get(name, 0.0) + end - since
            self.rss_high_water[name] = peak_rss_bytes()["self"]
            if self._stack:  # resume it
                self._stack[-1][1] = end

    def record(self) -> dict[str, Any]:
        """Seconds per stage (every stage listed, 0 when it did not run), ``other`` and ``wall``."""
        now = time.perf_counter()
        seconds = dict(self.seconds)
        for name, since in self._stack:  # stages still open while this record is written
            seconds[name] = seconds.get(name, 0.0) + now - since
        wall = now - self.start
        stages = {name: round(seconds.get(name, 0.0), 3) for name in STAGES}
        stages.update({k: round(v, 3) for k, v in seconds.items() if k not in stages})
        return {"stage_seconds": stages, "other_seconds": round(max(0.0, wall - sum(seconds.values())), 3),
                "wall_seconds": round(wall, 3), "peak_rss_after_stage": dict(self.rss_high_water)}


def _hash_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _hash_json(value: Any) -> str:
    return hashlib.sha256(json.dumps(to_jsonable(value), sort_keys=True).encode()).hexdigest()


class CurationSession:
    """One curation: an analyzer, an output folder, candidate groups and their verdicts.

    Open one with ``CurationSession.open(path, out)`` (a folder) or
    ``CurationSession.from_analyzer(analyzer, out)`` (an analyzer already in memory).
    """

    def __init__(
        self,
        analyzer: SortingAnalyzer,
        info: AnalyzerInfo,
        out: str | Path,
        policy: str = "balanced",
        n_jobs: int = 1,
        progress: bool = True,
        times: StageTimes | None = None,
    ):
        self.analyzer = analyzer
        self.info = info
        self.out = claim_output_folder(Path(out))
        self.policy = get_policy(policy).name
        self.n_jobs = n_jobs
        self.progress = progress
        self.times = times or StageTimes()
        self.context = EvidenceContext(analyzer)
        self.search: CandidateSearch | None = None
        self.groups: dict[int, CandidateGroup] = {}
        self.images: dict[int, dict[str, Path]] = {}
        self.verdicts: dict[int, Verdict] = {}
        self.last_apply: merges_tool.ApplyResult | None = None
        self.judge_used: Judge | None = None
        self._evidence: dict[tuple, dict] = {}
        self._render_stats: dict[str, int] = {}
        self._render_thread: tuple | None = None
        self.background_seconds: dict[str, float] = {}
        """Wall time of work done in a background thread while the stages ran (see :meth:`start_render`)."""
        self.calibration: dict[str, Any] | None = None
        self.review_examples: tuple[list[str], list[str]] = ([], [])
        """(good, bad) example names the last collected review saved; the next judge_group learns from them."""

    # ------------------------------------------------------------ opening

    @classmethod
    def open(
        cls,
        path: str | Path,
        out: str | Path = "curation_out",
        *,
        recording=None,
        policy: str = "balanced",
        n_jobs: int = 1,
        progress: bool = True,
    ) -> "CurationSession":
        """load_analyzer: open the analyzer folder at ``path``; write results into ``out``.

        The folder is never modified: missing extensions are computed on an in-memory copy.
        """
        get_policy(policy)
        times = StageTimes()
        with times.measure("load"):
            original = open_analyzer(path)  # the cheap checks first, so a bad path fails before any work
            out_path = Path(out).expanduser()
            source = Path(path).expanduser().resolve()
            if out_path.resolve() == source or source in out_path.resolve().parents:
                raise SpikemergeError(f"output folder {out_path} is inside the analyzer folder: choose a folder outside it")
            claim_output_folder(out_path)
            analyzer, computed = prepare_analyzer(original, recording=recording, n_jobs=n_jobs, progress=progress)
        info = describe(original, analyzer, computed, str(source))
        return cls(analyzer, info, out_path, policy=policy, n_jobs=n_jobs, progress=progress, times=times)

    @classmethod
    def from_analyzer(
        cls, analyzer: SortingAnalyzer, out: str | Path = "curation_out", *, policy: str = "balanced",
        n_jobs: int = 1, progress: bool = True,
    ) -> "CurationSession":
        """A session over an analyzer in memory (its extensions are added on a copy)."""
        if analyzer.get_num_units() < 2:
            raise SpikemergeError(f"the analyzer has {analyzer.get_num_units()} unit(s): merging needs at least two")
        times = StageTimes()
        with times.measure("load"):
            work, computed = prepare_analyzer(analyzer, REQUIRED_EXTENSIONS, n_jobs=n_jobs, progress=progress)
        info = describe(analyzer, work, computed, "(in memory)")
        return cls(work, info, out, policy=policy, n_jobs=n_jobs, progress=progress, times=times)

    # ------------------------------------------------------------ find_candidates

    def find_candidates(
        self, min_similarity: float | None = None, preset: str | None = None, relax: bool = True, more: bool = False
    ) -> CandidateSearch:
        """Candidate groups; ``min_similarity`` defaults to the policy's. Replaces earlier groups.

        ``more`` asks for more candidates than the last search found: with ``relax`` the
        threshold walks down from the last one until the groups hold more units (or the floor
        is reached).
        """
        more_than = 0
        if more and self.search is not None:
            more_than = sum(len(g.unit_ids) for g in self.search.groups)
            if min_similarity is None:
                min_similarity = self.search.min_similarity
        if min_similarity is None:
            min_similarity = get_policy(self.policy).min_similarity
        if preset in ("none", ""):
            preset = None
        with self.times.measure("find"):
            search = find_candidates(self.context, min_similarity=min_similarity, preset=preset, relax=relax,
                                     more_than=more_than)
        self.search = search
        self.groups = {g.group_id: g for g in search.groups}
        self.images, self.verdicts = {}, {}
        self.save()
        return search

    def _require_groups(self, group_ids: Sequence[int] | None) -> list[int]:
        if self.search is None:
            raise SpikemergeError("no candidate groups yet: run find_candidates first")
        if group_ids is None:
            return sorted(self.groups)
        ids = [int(g) for g in group_ids]
        unknown = [g for g in ids if g not in self.groups]
        if unknown:
            known = f"1..{max(self.groups)}" if self.groups else "none"
            raise SpikemergeError(f"unknown group id(s) {unknown}: the groups are {known}")
        return ids

    def _evidence_key(self, group_id: int) -> tuple:
        group = self.groups[group_id]
        return tuple(group.unit_ids), tuple(tuple(c) for c in getattr(group, "chains", []) or [])

    def evidence(self, group_id: int) -> dict[str, Any]:
        """The numbers behind a group's figures, computed once."""
        self._require_groups([group_id])
        key = self._evidence_key(group_id)
        if key not in self._evidence:
            units, chains = key
            with self.times.measure("evidence"):
                self._evidence[key] = group_evidence(self.context, list(units), chains=[list(c) for c in chains])
        return self._evidence[key]

    def compute_evidence(self, group_ids: Sequence[int] | None = None, n_workers: int | str = 1) -> None:
        """Compute every group's evidence now (its own stage in run.json), instead of on first use.

        ``n_workers`` as in :func:`~spikemerge.tools.evidence.pairs.groups_evidence`: ``"auto"``
        spreads the groups over worker processes when there are enough pairs to pay for them
        (scripts that ask for it need an ``if __name__ == "__main__":`` guard). The numbers are
        the same either way.
        """
        todo = {}
        for g in self._require_groups(group_ids):
            key = self._evidence_key(g)
            if key not in self._evidence:
                todo[key] = key
        if not todo:
            return
        with self.times.measure("evidence"):
            for key, evidence in groups_evidence(self.context, todo, n_workers=n_workers):
                self._evidence[key] = evidence

    # ------------------------------------------------------------ render_group

    def render_group(self, group_ids: Sequence[int] | None = None, features: Sequence[str] | None = None,
                     n_workers: int | str = 1) -> dict[int, dict[str, Path]]:
        """Draw each group's figures into ``out/images``; returns paths per group and feature.

        ``n_workers`` as in :func:`spikemerge.tools.render.groups.render_groups` (``"auto"`` draws many
        groups in worker processes; scripts that ask for it need an ``if __name__ == "__main__":``
        guard).
        """
        from .render.groups import DEFAULT_FEATURES, render_groups

        ids = self._require_groups(group_ids)
        with self.times.measure("render"):
            drawn = render_groups(
                self.context, {g: self.groups[g].unit_ids for g in ids}, self.out / "images",
                features=tuple(features or DEFAULT_FEATURES), n_workers=n_workers, stats=self._render_stats,
            )
        for g, paths in drawn.items():
            self.images.setdefault(g, {}).update(paths)
        self.save()
        return {g: self.images[g] for g in ids}

    def start_render(self, group_ids: Sequence[int] | None = None, features: Sequence[str] | None = None,
                     n_workers: int | str = 1) -> None:
        """Start :meth:`render_group` in a background thread and return at once; :meth:`finish_render` waits for it.

        For a judge that reads numbers, not pictures (the metrics judge): computing evidence,
        judging and applying the merges go on while the figures are drawn (in worker processes
        with ``n_workers``), so the run takes about the longer of the two instead of their sum
        (``spikemerge run`` starts them as soon as the groups are found; the view's unit cache
        is shared between the two threads under a lock). The figures are those
        :meth:`render_group` draws. The thread's wall time goes into run.json's
        ``background_seconds``; the stages time what this thread does (waiting for the figures
        is ``render``), so they still add up to the wall time.
        """
        import threading

        from .render.groups import DEFAULT_FEATURES, check_features

        if self._render_thread is not None:
            raise SpikemergeError("figures are already being drawn: call finish_render first")
        ids = self._require_groups(group_ids)
        features = check_features(tuple(features or DEFAULT_FEATURES))
        groups = {g: self.groups[g].unit_ids for g in ids}
        outcome: dict[str, Any] = {}

        def draw() -> None:
            from .render.groups import render_groups

            start = time.perf_counter()
            try:
                outcome["drawn"] = render_groups(self.context, groups, self.out / "images", features=features,
                                                 n_workers=n_workers, stats=self._render_stats)
            except BaseException as error:  # handed to finish_render, which raises it in the caller's thread
                outcome["error"] = error
            finally:
                self.background_seconds["render"] = round(
                    self.background_seconds.get("render", 0.0) + time.perf_counter() - start, 3)

        thread = threading.Thread(target=draw, name="spikemerge-render", daemon=True)
        self._render_thread = (thread, outcome)
        thread.start()

    def finish_render(self) -> dict[int, dict[str, Path]]:
        """Wait for the figures :meth:`start_render` is drawing (the ``render`` stage); returns them as :meth:`render_group` does."""
        if self._render_thread is None:
            return {}
        thread, outcome = self._render_thread
        with self.times.measure("render"):
            thread.join()
        self._render_thread = None
        if "error" in outcome:
            raise outcome["error"]
        for g, paths in outcome["drawn"].items():
            self.images.setdefault(g, {}).update(paths)
        self.save()
        return {g: self.images[g] for g in outcome["drawn"]}

    # ------------------------------------------------------------ judge_group

    def _example(self, item: int | str | Example, label: str) -> Example:
        """A group id of this session, the name of a saved example, or an Example as it is."""
        if isinstance(item, Example):
            return item
        if isinstance(item, str) and not item.strip().isdigit():
            return load_example(item, label=label)
        group_id = self._require_groups([int(item)])[0]
        if group_id not in self.images:
            self.render_group([group_id])
        return Example(
            name=f"group {group_id}", label=label, unit_ids=tuple(self.groups[group_id].unit_ids),
            images=dict(self.images.get(group_id, {})), evidence=self.evidence(group_id), source=self.info.path,
        )

    def save_example(
        self, group_id: int, label: str, note: str = "", name: str | None = None, library: Path | None = None
    ) -> Path:
        """Save a group (figures, evidence, label, note) to the example library for other recordings."""
        if label not in ("good", "bad"):
            raise SpikemergeError(f"label must be 'good' or 'bad', not {label!r}")
        example = self._example(group_id, label)
        stem = Path(self.info.path).name.replace(" ", "_") or "analyzer"
        named = Example(name=name or f"{stem}-group{group_id}", label=label, unit_ids=example.unit_ids,
                        images=example.images, evidence=example.evidence, note=note, source=example.source)
        return save_example(named, library)

    def _request(self, group_id: int) -> JudgeRequest:
        return JudgeRequest(group_id=group_id, unit_ids=tuple(self.groups[group_id].unit_ids),
                            images=dict(self.images.get(group_id, {})), evidence=self.evidence(group_id),
                            source=self.info.path)

    def _cache_key(self, judge: Judge, policy: str, request: JudgeRequest, examples: Sequence[Example]) -> str:
        images = {k: _hash_file(p) for k, p in sorted(request.images.items())}
        shown = [(ex.name, ex.label, [str(u) for u in ex.unit_ids], {k: _hash_file(p) for k, p in sorted(ex.images.items())},
                  ex.note, _hash_json(ex.evidence)) for ex in examples]  # everything the prompt shows of an example
        return _hash_json([judge.fingerprint(), policy, list(request.unit_ids), _hash_json(request.evidence), images, shown])

    def judge_group(
        self,
        group_ids: Sequence[int] | None = None,
        judge: Judge | str | None = None,
        good_examples: Sequence[int | str | Example] = (),
        bad_examples: Sequence[int | str | Example] = (),
        policy: str | None = None,
        rejudge: bool = False,
    ) -> list[Verdict]:
        """Judge groups (default: all not yet judged). Example groups are shown, never judged.

        ``judge`` is a :class:`Judge` or its name as ``--judge`` takes it (``"metrics"``, a chat
        model id); by default the judge last used, else the offline metrics judge.
        Examples are group ids of this session, names of saved examples (see ``save_example``)
        or ``Example`` objects. Without any, the corrections of the last collected review
        (:meth:`collect_review`) are the examples, so a review is learnt from on the next call.
        Verdicts are appended to ``out/verdicts.jsonl`` as they arrive; a group whose evidence,
        figures, examples, policy and judge are unchanged reuses its journalled verdict.
        """
        if isinstance(judge, str):  # "metrics" or a chat model id, as on the command line
            judge = make_judge(judge)
        judge = judge or self.judge_used or MetricsJudge()
        if not good_examples and not bad_examples:
            good_examples, bad_examples = self.review_examples
        policy = get_policy(policy or self.policy).name
        self.policy = policy
        examples = [self._example(x, "good") for x in good_examples] + [self._example(x, "bad") for x in bad_examples]
        if group_ids is None:
            ids = [g for g in self._require_groups(None) if rejudge or examples or g not in self.verdicts]
        else:
            ids = self._require_groups(group_ids)
        ids = [g for g in ids if not any(ex.is_group(self._request(g)) for ex in examples)]
        if judge.name != "metrics":
            missing = [g for g in ids if g not in self.images]
            if missing:
                self.render_group(missing)
        journal = {line.key: line.verdict.model_dump() for line in read_journal(self.out / JOURNAL)
                   if line.verdict.decision != "error"}
        requests, keys, reused = [], {}, []
        with self.times.measure("judge"):
            for g in ids:
                request = self._request(g)
                key = self._cache_key(judge, policy, request, examples)
                if key in journal and not rejudge:
                    verdict = Verdict.from_dict({**journal[key], "group_id": g})
                    self.verdicts[g] = verdict
                    reused.append(verdict)
                else:
                    requests.append(request)
                    keys[g] = key

            def record(verdict: Verdict) -> None:
                self.verdicts[verdict.group_id] = verdict
                append_jsonl(self.out / JOURNAL, {"key": keys[verdict.group_id], "verdict": verdict.to_dict()})

            try:
                fresh = judge.judge_many(requests, examples=examples, policy=policy, on_verdict=record) if requests else []
            finally:  # an interrupted or failed run still leaves decisions.csv and run.json current
                self.judge_used = judge
                self.save()
        by_id = {v.group_id: v for v in reused + fresh}
        return [by_id[g] for g in ids if g in by_id]

    def calibrate(self, policy: str | None = None, seed: int = 0) -> dict[str, Any]:
        """Check the metrics judge on this recording: artificial splits of its well-isolated units
        (positives) and distinct neighbouring units (negatives); the result goes into run.json.

        See :func:`spikemerge.tools.judges.calibrate.calibrate_recording`.
        """
        from .judges.calibrate import calibrate_recording

        judge = self.judge_used if isinstance(self.judge_used, MetricsJudge) else MetricsJudge()
        with self.times.measure("calibrate"):
            self.calibration = calibrate_recording(self.context, judge, policy=policy or self.policy, seed=seed)
        self.save()
        return self.calibration

    # ------------------------------------------------------------ apply_merges

    def plan_merges(self, group_ids: Sequence[int] | None = None) -> merges_tool.MergePlan:
        """What ``apply_merges`` would do: the judged merges, without chaining unjudged pairs."""
        ids = self._require_groups(group_ids)
        unjudged = [g for g in ids if g not in self.verdicts]
        if group_ids is not None and unjudged:
            raise SpikemergeError(f"group(s) {unjudged} are not judged yet: run judge_group first")
        verdicts = [self.verdicts[g] for g in ids if g in self.verdicts]
        duplicates, lags = {}, {}
        for v in verdicts:
            if v.decision == "merge":
                members = set(v.merge_unit_ids)
                pairs = self.evidence(v.group_id)["pairs"]
                duplicates[v.group_id] = any(
                    p["duplicate_fraction"] >= DEFAULT_JUDGE_PARAMS.duplicate_fraction for p in pairs if {p["unit_a"], p["unit_b"]} <= members
                )
                for part in v.merge_groups:  # the same spikes twice, at the measured lag: the merge keeps one copy
                    lags.update(merges_tool.duplicate_lags(pairs, set(part), DEFAULT_JUDGE_PARAMS.duplicate_fraction,
                                                           DEFAULT_JUDGE_PARAMS.duplicate_excess))
        return merges_tool.plan_merges(verdicts, self.info.unit_ids, duplicates, duplicate_lags_ms=lags,
                                       jitter_ms=DEFAULT_EVIDENCE_PARAMS.duplicate_ms)

    def apply_merges(
        self, group_ids: Sequence[int] | None = None, confirm: bool = False, write_analyzer: bool = True
    ) -> merges_tool.ApplyResult | merges_tool.MergePlan:
        """Write curation.json and (with ``write_analyzer``) the merged analyzer in a new folder.

        Without ``confirm`` nothing is written and the plan is returned for review.
        """
        plan = self.plan_merges(group_ids)
        if not confirm:
            return plan
        with self.times.measure("apply"):
            result = merges_tool.apply_merges(
                self.analyzer, plan, self.out, self.provenance(), write_analyzer=write_analyzer, n_jobs=self.n_jobs,
            )
        self.last_apply = result
        self.save()
        return result

    def undo_last_apply(self) -> str:
        """Remove the merged analyzer and curation.json of the last apply in this output folder."""
        message = merges_tool.undo_last_apply(self.out)
        self.last_apply = None
        self.save()
        return message

    # ------------------------------------------------------------ outputs

    def provenance(self) -> dict[str, Any]:
        """The provenance block of curation.json (and run.json's settings), checked by :class:`Provenance`."""
        judge = self.judge_used
        prompt_hash = getattr(judge, "prompt_hash", None)
        return Provenance.model_validate(to_jsonable({
            "tool": "spikemerge",
            "version": __version__,
            "analyzer": self.info.path,
            "judge": judge.name if judge else None,
            "model": judge.model if judge else None,
            "prompt_hash": prompt_hash() if callable(prompt_hash) else None,
            "policy": self.policy,
            "preset": self.search.preset if self.search else None,
            "min_similarity": self.search.min_similarity if self.search else None,
            "thresholds_tried": self.search.levels if self.search else [],
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        })).model_dump(mode="json", exclude={"groups", "skipped", "apply"})

    def run_record(self) -> dict[str, Any]:
        """``run.json`` as a dict, validated against :class:`~spikemerge.tools.schemas.RunRecord`."""
        import numpy
        import spikeinterface

        decisions = [v.decision for v in self.verdicts.values()]
        usage = getattr(self.judge_used, "usage_summary", None)
        planned = sum(len(v.merge_groups) for v in self.verdicts.values() if v.decision == "merge")
        record = RunRecord(
            versions={"spikemerge": __version__, "spikeinterface": spikeinterface.__version__,
                      "numpy": numpy.__version__, "python": platform.python_version()},
            analyzer=to_jsonable(self.info.__dict__),
            settings={k: v for k, v in self.provenance().items() if k not in ("tool", "version", "time")},
            counts={
                "units": self.info.num_units,
                "groups": len(self.groups),
                "rendered_groups": len(self.images),
                "judged": len(decisions),
                "merge": decisions.count("merge"),
                "not_merge": decisions.count("not merge"),
                "abstain": decisions.count("abstain"),
                "error": decisions.count("error"),
                "merges_planned": planned,
                "units_after": self.last_apply.units_after if self.last_apply and self.last_apply.analyzer_folder else None,
            },
            **self.times.record(),
            background_seconds=dict(self.background_seconds),
            peak_rss_bytes={**peak_rss_bytes(),
                            "render_workers": self._render_stats.get("worker_peak_rss_bytes", 0)},
            usage=to_jsonable(usage()) if callable(usage) else {},
            apply=to_jsonable(self.last_apply.__dict__) if self.last_apply else None,
            calibration=to_jsonable(self.calibration) if self.calibration else None,
            learned_from_examples=to_jsonable(getattr(self.judge_used, "learned", None)),
            motion=self.motion_record(),
            outputs=self._outputs_present(),
        )
        return record.model_dump(mode="json")

    def motion_record(self) -> dict[str, Any] | None:
        """The probe's motion under the default evidence parameters (``Motion.record``), when
        candidate search or evidence registered it; None otherwise."""
        motion = self.context.registered_motion(DEFAULT_EVIDENCE_PARAMS)
        return motion.record() if motion is not None else None

    def _outputs_present(self) -> dict[str, str]:
        names = {name: name for name in OUTPUT_FILES if (self.out / name).exists()}
        folder = self.last_apply.analyzer_folder if self.last_apply else None
        if folder is not None:
            names["merged_analyzer"] = os.path.relpath(folder, self.out).replace(os.sep, "/")
        return names

    def save(self) -> None:
        """Write decisions.csv, run.json and (when figures or verdicts exist) report.html, each atomically.

        The report goes first so that run.json lists it among the outputs; all of it is the
        ``report`` stage of run.json.
        """
        with self.times.measure("report"):
            write_decisions(self.out / "decisions.csv",
                            [DecisionRow.from_verdict(self.verdicts[g]) for g in sorted(self.verdicts)])
            if self.images or self.verdicts:
                self.write_report()
            write_model(self.out / "run.json", RunRecord.model_validate(self.run_record()))
        log.debug("wrote decisions.csv (%d rows), run.json%s in %s", len(self.verdicts),
                  ", report.html" if self.images or self.verdicts else "", self.out)

    def write_report(self) -> Path | None:
        """report.html; figure paths are handed over absolute, so the page is right whatever the working folder."""
        from ..report import write_report

        rows = []
        for g in sorted(self.groups):
            if g not in self.images and g not in self.verdicts:
                continue
            verdict = self.verdicts.get(g)
            rows.append({
                "group_id": g, "unit_ids": self.groups[g].unit_ids,
                "images": {k: Path(p).resolve() for k, p in self.images.get(g, {}).items()},
                "evidence": self.evidence(g), "verdict": verdict.to_dict() if verdict else None,
            })
        return write_report(self.out, rows, (self.calibration or {}).get("summary"))

    def summary(self) -> str:
        """A few lines a person reads: the analyzer, the search, the verdicts by decision."""
        parts = [self.info.summary()]
        if self.search is not None:
            parts.append(self.search.summary())
        if self.verdicts:
            decisions = [v.decision for v in self.verdicts.values()]
            parts.append(f"verdicts: {decisions.count('merge')} merge, {decisions.count('not merge')} not merge, "
                         f"{decisions.count('abstain')} abstain (not enough evidence), {decisions.count('error')} error")
        if self.calibration:
            parts.append(self.calibration.get("summary", ""))
        return "\n".join(parts)

    # ------------------------------------------------------------ review (spikeinterface-gui)

    def review(self, port: int = 0, mode: str = "web", open_browser: bool = True, wait: bool = True):
        """Open spikeinterface-gui on this analyzer with the proposed merges preloaded; returns a ``ReviewServer``.

        The GUI runs in a child process (``spikemerge review OUT``); call ``.stop()`` on the
        result to end it (a new review, or the end of this Python process, stops it too). The proposals are ``out/curation.json``; when it does not exist yet it is
        written from the current verdicts (as ``apply_merges(confirm=True, write_analyzer=False)``).
        The analyzer folder is opened read-only: the curator's "Save curation" lands in
        ``out/review/saved_curation.json``, which :meth:`collect_review` reads.
        """
        from ..review.server import start_review
        from .curation import CURATION_FILE

        if not Path(self.info.path).is_dir():
            raise SpikemergeError(
                "the review opens an analyzer folder and this session's analyzer is in memory: "
                "save it with analyzer.save_as(folder=...) and open the session on that folder"
            )
        if not (self.out / CURATION_FILE).exists():
            if not self.verdicts:
                raise SpikemergeError("nothing to review yet: run judge_group first")
            self.apply_merges(confirm=True, write_analyzer=False)
        previous = getattr(self, "review_server", None)
        if previous is not None:
            previous.stop()
        self.review_server = start_review(self.out, port=port, mode=mode, open_browser=open_browser,
                                          analyzer=self.info.path, wait=wait)
        return self.review_server

    def collect_review(self, file: str | Path | None = None, library: str | Path | None = None, render: bool = True):
        """Read the curator's saved curation (or ``file``), compare it with the proposals, learn from it.

        Writes ``out/review.json`` and the final ``out/curation.json``, and saves each rejected
        proposal as a bad example and each added merge as a good one in the example library
        (``library``, default ``$SPIKEMERGE_EXAMPLES``). The next ``judge_group`` of this session
        learns from them unless it is given examples of its own. Returns a ``ReviewOutcome``.
        """
        from ..review.collect import collect

        outcome = collect(self, file=file, library=library, render=render)
        self.review_examples = (list(outcome.good_examples), list(outcome.bad_examples))
        return outcome
