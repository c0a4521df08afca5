"""The schema of every file spikemerge writes, and the validated readers for them.

One pydantic model per file, so a reader (a script, the review GUI, ``spikemerge batch``, a rerun)
either gets a well-formed object or a one-line error naming the file and what to do; a file
damaged by hand or by an older version never flows silently into a curation.

- ``run.json``: :class:`RunRecord`, written by ``CurationSession.save``;
- ``verdicts.jsonl``: one :class:`JournalLine` per line, appended by ``CurationSession.judge_group``;
- ``decisions.csv``: one :class:`DecisionRow` per row, written by ``CurationSession.save``;
- ``curation.json``: :class:`CurationFile` (SpikeInterface's ``Curation`` plus our
  :class:`Provenance`), written by ``curation.apply_merges``;
- ``.spikemerge-merges.json``: :class:`UndoManifest`, the write-ahead log of ``curation.apply_merges``;
- ``review.json``: :class:`ReviewRecord`, the merges a person accepted, rejected and added;
- ``example.json``: :class:`ExampleRecord`, written by ``examples.save_example``;
- ``truth.json``: :class:`TruthRecord`, beside a synthetic analyzer (``bench.synthetic``, the demo);
- the stdout of ``run --json``: :class:`RunSummary`, from ``curate.run_summary``.

Records other components extend (run.json, provenance, manifest entries) accept extra keys, so
adding a field there never breaks reading an older file; the fields listed here are required
and typed. Row-shaped records (decisions rows, review merges) are strict.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Literal, Sequence, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from spikeinterface.curation.curation_model import Curation

from ..errors import SpikemergeError
from .judges.base import Decision
from .outputs import to_jsonable, write_json_atomic, write_text_atomic
from .secrets import scrub

UnitId = int | str
REPORT_KINDS: tuple[str, ...] = ("crosscorrelograms", "amplitudes", "waveforms", "pca")
PART_SEPARATOR = " | "
"""Between the merge parts of one group in a CSV cell: ``"13 15 | 68 69"``."""

Model = TypeVar("Model", bound=BaseModel)


class _Open(BaseModel):
    """A record other components may extend: unknown keys are kept, listed keys are checked."""

    model_config = ConfigDict(extra="allow")


class _Strict(BaseModel):
    """A row-shaped record: an unknown key is an error (a typo, or a file from elsewhere)."""

    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------ unit-id cells


def units_cell(unit_ids: Sequence[UnitId]) -> str:
    """Unit ids as one CSV cell: ``"3 7 12"``."""
    return " ".join(str(u) for u in unit_ids)


def parts_cell(parts: Sequence[Sequence[UnitId]]) -> str:
    """Merge parts as one CSV cell: ``"13 15 | 68 69"`` (empty when nothing merges)."""
    return PART_SEPARATOR.join(units_cell(p) for p in parts)


def parse_units_cell(text: str) -> list[UnitId]:
    """Inverse of :func:`units_cell`; numeric ids come back as ints."""
    return [int(t) if t.lstrip("-").isdigit() else t for t in str(text).split()]


def parse_parts_cell(text: str) -> list[list[UnitId]]:
    """Inverse of :func:`parts_cell`."""
    return [parse_units_cell(part) for part in str(text).split("|") if part.strip()]


# ------------------------------------------------------------------ verdicts.jsonl


class VerdictRecord(_Open):
    """One verdict as journalled: the fields of :class:`spikemerge.tools.judges.base.Verdict`.

    Open to extra keys: a field added to ``Verdict`` later must not make every journalled
    verdict unreadable (and re-judged at a model's price); a test keeps the two field lists equal.
    """

    group_id: int
    unit_ids: list[UnitId] = Field(min_length=2)
    decision: Decision
    confidence: float = Field(ge=0.0, le=1.0)
    merge_unit_ids: list[UnitId] = []
    reasoning: str = ""
    judge: str = ""
    model: str | None = None
    policy: str = "balanced"
    reports: dict[str, str] = {}
    usage: dict[str, Any] = {}
    merge_groups: list[list[UnitId]] = []

    @model_validator(mode="after")
    def _partition(self) -> "VerdictRecord":
        if self.decision != "merge" and (self.merge_unit_ids or self.merge_groups):
            raise ValueError(f"a {self.decision!r} verdict merges nothing, yet lists merge units")
        if self.decision == "merge" and not (self.merge_unit_ids or self.merge_groups):
            raise ValueError("a 'merge' verdict lists no units to merge")
        return self


class JournalLine(_Strict):
    """One line of ``verdicts.jsonl``: the cache key of the judged inputs and the verdict."""

    key: str = Field(min_length=1)
    verdict: VerdictRecord


def read_journal(path: Path) -> list[JournalLine]:
    """The valid lines of a verdict journal, in order.

    A line that is not valid (a last line cut short by a crash, a line from another version) is
    skipped rather than trusted: the rerun judges that group again, which costs a call but never
    reuses a verdict nobody can vouch for.
    """
    path = Path(path)
    if not path.exists():
        return []
    lines = []
    for text in path.read_text(encoding="utf-8").splitlines():
        try:
            lines.append(JournalLine.model_validate_json(text))
        except ValidationError:
            continue
    return lines


# ------------------------------------------------------------------ decisions.csv


class DecisionRow(_Strict):
    """One row of ``decisions.csv``: one judged group.

    ``unit_ids`` and ``merge_unit_ids`` are space-separated ids; ``merge_groups`` holds the merge
    parts separated by ``" | "`` (``"13 15 | 68 69"``: two merges judged in one group).
    """

    group_id: int
    unit_ids: str = Field(min_length=1)
    decision: Decision
    confidence: float = Field(ge=0.0, le=1.0)
    merge_unit_ids: str = ""
    merge_groups: str = ""
    reasoning: str = ""
    judge: str = ""
    model: str = ""
    policy: str = ""
    report_crosscorrelograms: str = ""
    report_amplitudes: str = ""
    report_waveforms: str = ""
    report_pca: str = ""

    @field_validator("unit_ids", "merge_unit_ids", "merge_groups", "reasoning", "judge", "model", "policy",
                     "report_crosscorrelograms", "report_amplitudes", "report_waveforms", "report_pca", mode="before")
    @classmethod
    def _blank(cls, value: Any) -> Any:
        return "" if value is None else value

    @model_validator(mode="after")
    def _consistent(self) -> "DecisionRow":
        parts = parse_parts_cell(self.merge_groups)
        flat = [str(u) for part in parts for u in part]
        if any(len(part) < 2 for part in parts) or len(set(flat)) != len(flat):
            raise ValueError(f"merge_groups {self.merge_groups!r} must be disjoint parts of at least two units each")
        if sorted(flat) != sorted(str(u) for u in parse_units_cell(self.merge_unit_ids)):
            raise ValueError(f"merge_groups {self.merge_groups!r} and merge_unit_ids {self.merge_unit_ids!r} disagree")
        if self.decision != "merge" and flat:
            raise ValueError(f"a {self.decision!r} row lists merge units")
        if not set(flat) <= {str(u) for u in parse_units_cell(self.unit_ids)}:
            raise ValueError(f"merge units {self.merge_unit_ids!r} are not all in the group's units {self.unit_ids!r}")
        return self

    @classmethod
    def from_verdict(cls, verdict: Any) -> "DecisionRow":
        """The row of a :class:`~spikemerge.tools.judges.base.Verdict`.

        The free text (reasoning, reports) is scrubbed of API keys: an error verdict's reasoning
        quotes the provider's message, which may echo the key.
        """
        return cls(
            group_id=verdict.group_id, unit_ids=units_cell(verdict.unit_ids), decision=verdict.decision,
            confidence=round(float(verdict.confidence), 4), merge_unit_ids=units_cell(verdict.merge_unit_ids),
            merge_groups=parts_cell(verdict.merge_groups), reasoning=scrub(verdict.reasoning), judge=verdict.judge,
            model=verdict.model or "", policy=verdict.policy,
            **{f"report_{k}": scrub(verdict.reports.get(k, "")) for k in REPORT_KINDS},
        )


DECISION_COLUMNS: list[str] = list(DecisionRow.model_fields)


def decisions_csv(rows: Sequence[DecisionRow]) -> str:
    """``decisions.csv`` as text: a header of :data:`DECISION_COLUMNS`, one line per row."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=DECISION_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row.model_dump())
    return buffer.getvalue()


def read_decisions(path: Path) -> list[DecisionRow]:
    """Read and validate ``decisions.csv``; a bad header or row is a one-line error naming it."""
    path = Path(path)
    text = _read_text(path, "decisions.csv")
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in DECISION_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise SpikemergeError(f"{path} lacks column(s) {', '.join(missing)}: write it again with spikemerge run")
    rows = []
    for number, record in enumerate(reader, start=2):
        try:
            rows.append(DecisionRow.model_validate(record))
        except ValidationError as exc:
            raise SpikemergeError(f"{path} line {number}: {_first_problem(exc)}; fix or rewrite the file") from None
    return rows


# ------------------------------------------------------------------ run.json


class RunSettings(_Open):
    analyzer: str
    judge: str | None = None
    model: str | None = None
    prompt_hash: str | None = None
    policy: str
    preset: str | None = None
    min_similarity: float | None = None
    thresholds_tried: list[Any] = []


class RunCounts(_Open):
    units: int = Field(ge=0)
    groups: int = Field(ge=0)
    rendered_groups: int = Field(ge=0)
    judged: int = Field(ge=0)
    merge: int = Field(ge=0)
    not_merge: int = Field(ge=0)
    abstain: int = Field(ge=0, default=0)
    error: int = Field(ge=0)
    merges_planned: int = Field(ge=0, default=0)
    units_after: int | None = None
    """Units in the written merged analyzer; None until one is written."""


class RunRecord(_Open):
    """``run.json``: versions, settings, counts, wall time per stage, peak memory, token usage."""

    format_version: Literal["1"] = "1"
    versions: dict[str, str]
    analyzer: dict[str, Any]
    settings: RunSettings
    counts: RunCounts
    stage_seconds: dict[str, float]
    """Seconds per stage (load, find, evidence, render, judge, apply, report; 0 when it did not run)."""
    other_seconds: float = 0.0
    """Wall time outside every stage."""
    wall_seconds: float | None = None
    background_seconds: dict[str, float] = {}
    """Wall time of work a background thread did while the stages ran (``render``: figures drawn
    while the metrics judge judged and the merges were applied). Not part of the stages, which
    time the main thread (waiting for those figures is ``render``) and add up to the wall time."""
    peak_rss_bytes: dict[str, int] = {}
    """High-water marks: this process, its largest finished child, the render workers."""
    peak_rss_after_stage: dict[str, int] = {}
    usage: dict[str, Any] = {}
    apply: dict[str, Any] | None = None
    calibration: dict[str, Any] | None = None
    """The metrics judge checked on this recording's own artificial splits and distinct neighbours."""
    learned_from_examples: Any = None
    motion: dict[str, Any] | None = None
    """The probe's motion the evidence registered (``Motion.record``); None when none was needed."""
    outputs: dict[str, str] = {}
    """File name -> path relative to the output folder, for each output that exists."""


class RunSummary(_Strict):
    """What ``spikemerge run --json`` prints on stdout (and ``batch --json`` once per analyzer).

    Paths are absolute, so a script can use them from any working folder.
    """

    format_version: Literal["1"] = "1"
    analyzer: str
    out: str
    units: int = Field(ge=0)
    groups: int = Field(ge=0)
    decisions: dict[Decision, int]
    merges_planned: int = Field(ge=0)
    merges_applied: int = Field(ge=0)
    units_after: int = Field(ge=0)
    merged_analyzer: str | None = None
    outputs: dict[str, str] = {}
    stage_seconds: dict[str, float] = {}
    usage: dict[str, Any] = {}
    calibration: dict[str, Any] | None = None
    """With ``--calibrate``: the recovered share of artificial splits, distinct neighbours merged, the suggested policy."""


# ------------------------------------------------------------------ curation.json


class Provenance(_Open):
    """Our block inside ``curation.json``: who decided what, with which settings, when."""

    tool: Literal["spikemerge"] = "spikemerge"
    version: str
    analyzer: str | None = None
    judge: str | None = None
    model: str | None = None
    prompt_hash: str | None = None
    policy: str | None = None
    preset: str | None = None
    min_similarity: float | None = None
    thresholds_tried: list[Any] = []
    time: str
    groups: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    apply: dict[str, Any] | None = None


class CurationFile(Curation):
    """``curation.json``: SpikeInterface's own ``Curation`` (format v2) plus ``provenance``.

    SpikeInterface reads the file with ``load_curation`` and ignores the extra key; we read it
    with :func:`read_curation` and get both halves validated, including SpikeInterface's checks
    (a unit in at most one merge, merged ids known).
    """

    provenance: Provenance | None = None


def curation_to_si(curation: CurationFile) -> Curation:
    """The SpikeInterface half alone, for ``apply_curation``."""
    return Curation(**curation.model_dump(exclude={"provenance", "supported_versions"}))


# ------------------------------------------------------------------ undo manifest


class ApplyEntry(_Open):
    """One apply recorded in the undo manifest.

    ``status`` is ``"pending"`` while an apply is writing (the write-ahead record: undo knows
    what to remove after a crash) and ``"complete"`` once every file is in place. Manifests
    written before the field existed recorded only finished applies, hence the default.
    """

    time: str | None = None
    analyzer_folder: str | None = None
    curation: str = "curation.json"
    previous_curation: str | None = None
    merges: int = Field(default=0, ge=0)
    units_before: int | None = Field(default=None, ge=0)
    units_after: int | None = Field(default=None, ge=0)
    curation_sha256: str | None = None
    status: Literal["pending", "complete"] = "complete"


class UndoManifest(_Open):
    """``.spikemerge-merges.json``: every apply in this output folder, oldest first."""

    applies: list[ApplyEntry] = []


# ------------------------------------------------------------------ review.json


class ReviewedMerge(_Strict):
    """A merge as a person reviewed it.

    ``group_id`` is the candidate group it came from (None for a merge the reviewer added
    outside any group); ``judge_decision`` and ``confidence`` are the judge's verdict on that
    group (``merge`` for a proposal; often ``not merge`` for a merge the reviewer added; None
    when no judged group holds the units).
    """

    group_id: int | None = None
    unit_ids: list[UnitId] = Field(min_length=2)
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    judge_decision: Decision | None = None
    replaced_by: list[UnitId] | None = None
    """For a rejected proposal: the reviewer's merge that overlaps it, if any."""
    replaces: list[int | None] = []
    """For an added merge: the groups of the rejected proposals it overlaps."""

    @field_validator("unit_ids")
    @classmethod
    def _distinct(cls, value: list[UnitId]) -> list[UnitId]:
        if len({str(u) for u in value}) != len(value):
            raise ValueError(f"unit ids {value} repeat a unit")
        return value


class ReviewAgreement(_Strict):
    """How much the reviewer agreed with the judge (``summary`` is the sentence the CLI prints)."""

    proposed: int = Field(ge=0)
    accepted: int = Field(ge=0)
    rejected: int = Field(ge=0)
    added: int = Field(ge=0)
    groups_judged: int = Field(ge=0)
    groups_agreed: int = Field(ge=0)
    summary: str


class LearntExample(_Strict):
    """An example saved to the example library from a review's corrections."""

    name: str
    label: Literal["good", "bad"]
    unit_ids: list[UnitId]
    path: str


class ReviewRecord(_Strict):
    """``review.json``: what a person kept, rejected and added after the judge's verdicts."""

    format_version: Literal["1"] = "1"
    analyzer: str
    time: str
    reviewer: str = ""
    curation_file: str = ""
    """The curation the reviewer saved, as it was read."""
    judge: str | None = None
    policy: str | None = None
    accepted: list[ReviewedMerge] = []
    rejected: list[ReviewedMerge] = []
    added: list[ReviewedMerge] = []
    agreement: ReviewAgreement | None = None
    examples: list[LearntExample] = []
    """The corrections saved to the example library (``library``)."""
    library: str = ""

    @model_validator(mode="after")
    def _one_merge_per_unit(self) -> "ReviewRecord":
        seen: dict[str, list[UnitId]] = {}
        for merge in self.accepted + self.added:
            for unit in merge.unit_ids:
                if str(unit) in seen:
                    raise ValueError(f"unit {unit} is in two kept merges: {seen[str(unit)]} and {merge.unit_ids}")
                seen[str(unit)] = merge.unit_ids
        return self

    def final_merges(self) -> list[list[UnitId]]:
        """The merges to apply after the review: accepted, then added."""
        return [list(m.unit_ids) for m in self.accepted + self.added]


# ------------------------------------------------------------------ example.json, truth.json


class ExampleRecord(_Strict):
    """``example.json``: one labelled example group in the example library."""

    format_version: Literal["1"] = "1"
    name: str
    label: Literal["good", "bad"]
    unit_ids: list[UnitId]
    note: str = ""
    source: str = ""
    images: dict[str, str]
    """Feature -> file name inside the example's folder."""
    evidence: dict[str, Any] = {}


class TruthRecord(_Open):
    """``truth.json`` beside a synthetic analyzer: which sorted unit came from which neuron."""

    spec: dict[str, Any]
    neuron_of_unit: dict[int, int]
    kinds: dict[int, str] = {}
    twin_pairs: list[tuple[int, int]] = []


# ------------------------------------------------------------------ bench.json


class BenchRecord(_Open):
    """``bench.json`` of ``spikemerge bench``: the judge, the scenarios and seeds, a summary row per
    (scenario, method) and every raw row. Summary and rows keep whatever columns the bench adds."""

    judge: dict[str, Any]
    scenarios: dict[str, Any]
    seeds: list[int]
    presets: list[str]
    quick: bool
    cache: str
    thresholds: dict[str, float | None]
    total_seconds: float = Field(ge=0)
    judge_usage: dict[str, Any] | None = None
    summary: list[dict[str, Any]]
    rows: list[dict[str, Any]]


# ------------------------------------------------------------------ batch.csv


class BatchRow(_Strict):
    """One analyzer of ``spikemerge batch``: a row of ``OUT/batch.csv`` (and of ``batch --json``).

    Numbers are empty in the CSV when the analyzer failed before they were known.
    """

    name: str = Field(min_length=1)
    analyzer: str
    status: Literal["ok", "error"]
    reason: str = ""
    units_before: int | None = Field(default=None, ge=0)
    units_after: int | None = Field(default=None, ge=0)
    merges: int | None = Field(default=None, ge=0)
    wall_seconds: float | None = Field(default=None, ge=0)
    recovered_splits: float | None = Field(default=None, ge=0, le=1)
    """With ``--calibrate``: the share of the recording's artificial splits the judge merged back."""
    neighbours: int | None = Field(default=None, ge=0)
    """... the distinct neighbouring pairs it judged ..."""
    neighbours_merged: int | None = Field(default=None, ge=0)
    """... and merged, under the batch's policy ..."""
    suggested_policy: str = ""
    """... and the policy the calibration supports (the batch's own unless it saw a reason to move;
    empty when every policy merged a neighbour, or without ``--calibrate``)."""

    @field_validator("units_before", "units_after", "merges", "wall_seconds", "recovered_splits", "neighbours",
                     "neighbours_merged", mode="before")
    @classmethod
    def _empty_cell(cls, value: Any) -> Any:
        return None if value == "" else value

    def cells(self) -> dict[str, Any]:
        """The row as CSV cells: unknown numbers as empty cells."""
        return {k: ("" if v is None else v) for k, v in self.model_dump().items()}


# ------------------------------------------------------------------ reading and writing


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error.get("loc", ())) or "file"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {error.get('msg', 'invalid')}{more}"


def _read_text(path: Path, what: str) -> str:
    if not path.is_file():
        raise SpikemergeError(f"no {what} at {path}: run spikemerge on that folder first")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpikemergeError(f"cannot read {path} ({type(exc).__name__}): check the file and its permissions") from None


def read_model(path: Path, model: type[Model]) -> Model:
    """Read a JSON file as ``model``; a missing, unparsable or invalid file is a one-line error.

    Parameters
    ----------
    path : Path
        The file.
    model : type of BaseModel
        One of this module's models.

    Raises
    ------
    SpikemergeError
        Naming the file and its first problem, and what to do.
    """
    path = Path(path)
    text = _read_text(path, path.name)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpikemergeError(f"{path} is not JSON (line {exc.lineno}): restore or rewrite it") from None
    try:
        return model.model_validate(data)
    except (ValidationError, ValueError) as exc:
        problem = _first_problem(exc) if isinstance(exc, ValidationError) else str(exc).splitlines()[0]
        raise SpikemergeError(f"{path} is not a valid {model.__name__} ({problem}): restore or rewrite it") from None


def write_model(path: Path, record: BaseModel) -> Path:
    """Validate ``record`` again (it may have been edited since it was built) and write it atomically."""
    checked = type(record).model_validate(record.model_dump())
    data = to_jsonable(checked.model_dump(mode="json", exclude={"supported_versions"} if isinstance(checked, Curation) else None))
    return write_json_atomic(Path(path), data)


def write_decisions(path: Path, rows: Sequence[DecisionRow]) -> Path:
    """Write ``decisions.csv`` atomically."""
    return write_text_atomic(Path(path), decisions_csv(rows))


def read_run(path: Path) -> RunRecord:
    """``run.json`` (a folder is read as its ``run.json``)."""
    path = Path(path)
    return read_model(path / "run.json" if path.is_dir() or path.suffix != ".json" else path, RunRecord)


def read_curation(path: Path) -> CurationFile:
    """``curation.json`` with both SpikeInterface's checks and ours."""
    return read_model(Path(path), CurationFile)


def read_manifest(path: Path) -> UndoManifest:
    """The undo manifest; an absent one is an empty history."""
    path = Path(path)
    return read_model(path, UndoManifest) if path.exists() else UndoManifest()


def read_bench(path: Path) -> BenchRecord:
    """``bench.json`` (a folder is read as its ``bench.json``)."""
    path = Path(path)
    return read_model(path / "bench.json" if path.is_dir() else path, BenchRecord)


def read_review(path: Path) -> ReviewRecord:
    return read_model(Path(path), ReviewRecord)


def read_truth(path: Path) -> TruthRecord:
    return read_model(Path(path), TruthRecord)

