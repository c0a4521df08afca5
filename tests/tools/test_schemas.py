"""Every file spikemerge writes has a schema, the files a session writes pass it, and damaged files are refused in one line."""

from __future__ import annotations

import dataclasses
import json

import pytest
from pydantic import ValidationError
from spikeinterface.curation import apply_curation, load_curation

from spikemerge.errors import SpikemergeError
from spikemerge.tools import examples
from spikemerge.tools.curation import MANIFEST_FILE
from spikemerge.tools.judges import Verdict
from spikemerge.tools.schemas import (
    DECISION_COLUMNS, ApplyEntry, CurationFile, DecisionRow, ExampleRecord, JournalLine, ReviewRecord, RunRecord,
    UndoManifest, VerdictRecord, curation_to_si, decisions_csv, parse_parts_cell, read_curation, read_decisions,
    read_journal, read_manifest, read_model, read_review, read_run, read_truth, write_model,
)
from spikemerge.tools.session import CurationSession


@pytest.fixture(scope="module")
def written(saved_truth_folder, tmp_path_factory):
    """An output folder a real session wrote: candidates, verdicts, curation.json and a merged analyzer."""
    out = tmp_path_factory.mktemp("schemas") / "out"
    session = CurationSession.open(saved_truth_folder / "analyzer", out, progress=False)
    session.find_candidates()
    session.judge_group()
    session.apply_merges(confirm=True)
    return out, session


def test_every_file_a_session_writes_validates(written, saved_truth_folder):
    out, session = written
    run = read_run(out / "run.json")
    assert run.counts.judged == len(session.verdicts) and run.counts.merges_planned >= 1
    assert run.counts.units_after == session.last_apply.units_after
    assert run.outputs["merged_analyzer"] == "merged_analyzer" and run.outputs["curation.json"] == "curation.json"
    assert run.peak_rss_bytes["self"] > 10 * 2**20
    rows = read_decisions(out / "decisions.csv")
    assert [r.group_id for r in rows] == sorted(session.verdicts)
    journal = read_journal(out / "verdicts.jsonl")
    assert {line.verdict.group_id for line in journal} == set(session.verdicts)
    curation = read_curation(out / "curation.json")
    assert curation.provenance.version and curation.provenance.policy == "balanced"
    assert len(curation.merges) == len(session.last_apply.merges)
    manifest = read_manifest(out / MANIFEST_FILE)
    assert manifest.applies[-1].status == "complete" and manifest.applies[-1].curation_sha256
    truth = read_truth(saved_truth_folder / "truth.json")
    assert set(truth.neuron_of_unit) == {int(u) for u in session.info.unit_ids}


def test_curation_file_is_still_spikeinterface_curation(written, small_truth):
    out, session = written
    ours = read_curation(out / "curation.json")
    theirs = load_curation(out / "curation.json")
    assert [m.unit_ids for m in curation_to_si(ours).merges] == [m.unit_ids for m in theirs.merges]
    curated = apply_curation(small_truth.analyzer.sorting, curation_to_si(ours))
    assert curated.get_num_units() == session.last_apply.units_after


def test_verdict_record_has_exactly_the_verdict_fields():
    assert set(VerdictRecord.model_fields) == {f.name for f in dataclasses.fields(Verdict)}


def test_decisions_row_holds_several_merges_of_one_group():
    verdict = Verdict(group_id=4, unit_ids=[13, 15, 68, 69], decision="merge", confidence=0.9,
                      merge_groups=[[13, 15], [68, 69]], reasoning='two, "quoted", neurons\nsplit', judge="metrics")
    row = DecisionRow.from_verdict(verdict)
    assert row.merge_groups == "13 15 | 68 69" and row.merge_unit_ids == "13 15 68 69"
    assert parse_parts_cell(row.merge_groups) == [[13, 15], [68, 69]]
    text = decisions_csv([row])
    assert text.splitlines()[0] == ",".join(DECISION_COLUMNS)
    assert "merge_groups" in DECISION_COLUMNS


def test_a_verdicts_parts_are_listed_in_the_groups_order_whatever_order_the_judge_named_them():
    # the metrics judge names a part in the order it joined the units; curation.json lists them in
    # the analyzer's (the group's) order, and the table and decisions.csv should read the same
    verdict = Verdict(group_id=2, unit_ids=[51, 53, 56, 68, 80], decision="merge", confidence=0.9,
                      merge_groups=[[80, 68], [53, 51, 56]])
    assert verdict.merge_groups == [[51, 53, 56], [68, 80]]
    assert verdict.merge_unit_ids == [51, 53, 56, 68, 80]
    row = DecisionRow.from_verdict(verdict)
    assert row.merge_groups == "51 53 56 | 68 80"
    assert Verdict(group_id=3, unit_ids=["b", "a", "c"], decision="merge", confidence=0.8,
                   merge_unit_ids=["c", "b"]).merge_unit_ids == ["b", "c"]


def test_decisions_csv_round_trips_and_bad_rows_are_refused(tmp_path):
    rows = [DecisionRow.from_verdict(Verdict(group_id=1, unit_ids=[1, 2], decision="abstain", confidence=0.5,
                                             reasoning="3 expected coincidences, 0 seen")),
            DecisionRow.from_verdict(Verdict(group_id=2, unit_ids=["a", "b"], decision="merge", confidence=1.0,
                                             merge_unit_ids=["a", "b"], reasoning="x,\ny"))]
    path = tmp_path / "decisions.csv"
    path.write_text(decisions_csv(rows))
    assert read_decisions(path) == rows
    path.write_text(decisions_csv(rows).replace(",abstain,", ",maybe,"))
    with pytest.raises(SpikemergeError, match=r"decisions.csv line 2: decision") as exc:
        read_decisions(path)
    assert "\n" not in str(exc.value)
    path.write_text("group_id,unit_ids\n1,2 3\n")
    with pytest.raises(SpikemergeError, match="lacks column"):
        read_decisions(path)


@pytest.mark.parametrize("row, problem", [
    ({"decision": "not merge", "merge_unit_ids": "1 2", "merge_groups": "1 2"}, "lists merge units"),
    ({"decision": "merge", "merge_unit_ids": "1 2", "merge_groups": "1 | 2"}, "at least two units each"),
    ({"decision": "merge", "merge_unit_ids": "1 2 1 3", "merge_groups": "1 2 | 1 3"}, "disjoint"),
    ({"decision": "merge", "merge_unit_ids": "1 9", "merge_groups": "1 9"}, "not all in the group"),
    ({"decision": "merge", "merge_unit_ids": "1 2", "merge_groups": "2 3"}, "disagree"),
    ({"confidence": 1.5}, "less than or equal"),
])
def test_decision_rows_that_contradict_themselves_are_refused(row, problem):
    base = {"group_id": 1, "unit_ids": "1 2 3", "decision": "merge", "confidence": 0.8,
            "merge_unit_ids": "1 2", "merge_groups": "1 2"}
    with pytest.raises(ValidationError, match=problem):
        DecisionRow.model_validate({**base, **row})


def test_journal_skips_lines_it_cannot_vouch_for(tmp_path):
    good = {"key": "k1", "verdict": Verdict(group_id=1, unit_ids=[1, 2], decision="not merge", confidence=0.7).to_dict()}
    lines = [json.dumps(good),
             json.dumps({"key": "k2", "verdict": {**good["verdict"], "decision": "merge"}}),  # merge with no units
             json.dumps({"key": "k3"}),
             '{"key": "k4", "verdict": {"group_id": 1, "unit_ids": [1, 2], "deci']  # cut short by a crash
    path = tmp_path / "verdicts.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert [line.key for line in read_journal(path)] == ["k1"]
    assert read_journal(tmp_path / "absent.jsonl") == []


def test_run_record_requires_its_sections_and_keeps_extensions(tmp_path):
    with pytest.raises(SpikemergeError, match=r"run.json is not a valid RunRecord \(versions: Field required"):
        (tmp_path / "run.json").write_text("{}")
        read_run(tmp_path)
    (tmp_path / "run.json").write_text("[1,")
    with pytest.raises(SpikemergeError, match="is not JSON"):
        read_run(tmp_path)
    with pytest.raises(SpikemergeError, match="no run.json"):
        read_run(tmp_path / "nowhere")


def test_manifest_old_entries_read_as_complete_and_pending_is_kept(tmp_path):
    path = tmp_path / MANIFEST_FILE
    assert read_manifest(path).applies == []
    old = {"time": "2026-11-30T10:00:00+00:00", "analyzer_folder": "merged_analyzer", "curation": "curation.json",
           "previous_curation": None, "merges": 2, "units_before": 12, "units_after": 10, "curation_sha256": "ab"}
    path.write_text(json.dumps({"applies": [old, {**old, "status": "pending", "curation_sha256": None}]}))
    manifest = read_manifest(path)
    assert [e.status for e in manifest.applies] == ["complete", "pending"]
    path.write_text(json.dumps({"applies": [{**old, "status": "done"}]}))
    with pytest.raises(SpikemergeError, match="status"):
        read_manifest(path)
    write_model(path, UndoManifest(applies=[ApplyEntry(**old)]))
    assert read_manifest(path).applies[0].units_after == 10


def test_review_record_refuses_a_unit_in_two_kept_merges(tmp_path):
    review = ReviewRecord(analyzer="/data/a", time="2026-11-30T12:00:00+00:00",
                          accepted=[{"group_id": 1, "unit_ids": [3, 4], "confidence": 0.9}],
                          rejected=[{"group_id": 2, "unit_ids": [5, 6], "confidence": 0.55}],
                          added=[{"unit_ids": [7, 8]}])
    write_model(tmp_path / "review.json", review)
    assert read_review(tmp_path / "review.json").final_merges() == [[3, 4], [7, 8]]
    with pytest.raises(ValidationError, match="unit 4 is in two kept merges"):
        ReviewRecord(analyzer="a", time="t", accepted=[{"group_id": 1, "unit_ids": [3, 4]}],
                     added=[{"unit_ids": [4, 9]}])
    with pytest.raises(ValidationError, match="at least 2"):
        ReviewRecord(analyzer="a", time="t", added=[{"unit_ids": [4]}])


def test_curation_file_runs_spikeinterface_checks_too(tmp_path):
    base = {"format_version": "2", "unit_ids": [1, 2, 3, 4], "merges": [{"unit_ids": [1, 2], "new_unit_id": 5}],
            "provenance": {"version": "0.1.0", "time": "2026-11-30T12:00:00+00:00"}}
    assert CurationFile.model_validate(base).provenance.tool == "spikemerge"
    with pytest.raises(ValidationError):
        CurationFile.model_validate({**base, "merges": [{"unit_ids": [1, 2]}, {"unit_ids": [2, 3]}]})
    path = tmp_path / "curation.json"
    path.write_text(json.dumps({**base, "unit_ids": "not a list"}))
    with pytest.raises(SpikemergeError, match="not a valid CurationFile"):
        read_curation(path)


def test_example_schema_lives_in_schemas():
    assert examples.ExampleRecord is ExampleRecord
    with pytest.raises(ValidationError):
        ExampleRecord(name="x", label="maybe", unit_ids=[1, 2], images={})


def test_write_model_validates_again_before_writing(tmp_path):
    record = JournalLine(key="k", verdict=VerdictRecord(group_id=1, unit_ids=[1, 2], decision="not merge", confidence=0.5))
    record.verdict.confidence = 7.0  # edited after it was built (pydantic does not check assignments)
    with pytest.raises(ValidationError):
        write_model(tmp_path / "line.json", record)
    assert not (tmp_path / "line.json").exists()
    record.verdict.confidence = 0.5
    write_model(tmp_path / "line.json", record)
    assert read_model(tmp_path / "line.json", JournalLine) == record
    assert RunRecord.model_fields["outputs"].default == {}


def test_decision_rows_never_carry_an_api_key(monkeypatch):
    key = "sk-proj-" + "Zy9xW8vU7tS6rQ5pO4nM"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    verdict = Verdict(group_id=1, unit_ids=[1, 2], decision="error", confidence=0.0,
                      reasoning=f"AuthenticationError: Incorrect API key provided: {key}",
                      reports={"pca": f"echo {key}"})
    row = DecisionRow.from_verdict(verdict)
    assert key not in decisions_csv([row]) and "***" in row.reasoning and "***" in row.report_pca
