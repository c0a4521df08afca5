import json

import pandas as pd
import pytest
from spikeinterface.curation import apply_curation, load_curation

from spikemerge.errors import SpikemergeError
from spikemerge.tools.judges import MetricsJudge
from spikemerge.tools.curation import ApplyResult, MergePlan
from spikemerge.tools.schemas import DECISION_COLUMNS
from spikemerge.tools.session import CurationSession
from tests.helpers import folder_digest


class CountingJudge(MetricsJudge):
    """The metrics judge, counting the groups it is asked to judge."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def judge_many(self, requests, examples=(), policy="balanced", on_verdict=None):
        self.calls += len(requests)
        return super().judge_many(requests, examples, policy, on_verdict)


@pytest.fixture
def session(analyzer_folder, tmp_path):
    return CurationSession.open(analyzer_folder, tmp_path / "out", progress=False)


@pytest.mark.slow
def test_pipeline_end_to_end_keeps_the_input_identical(analyzer_folder, tmp_path, small_truth):
    before = folder_digest(analyzer_folder)
    session = CurationSession.open(analyzer_folder, tmp_path / "out", progress=False)
    search = session.find_candidates()
    assert search.groups
    session.render_group()
    verdicts = session.judge_group(judge=MetricsJudge())
    assert len(verdicts) == len(search.groups)
    result = session.apply_merges(confirm=True)
    assert isinstance(result, ApplyResult)
    out = tmp_path / "out"
    table = pd.read_csv(out / "decisions.csv")
    assert list(table.columns) == DECISION_COLUMNS
    assert len(table) == len(search.groups)
    run = json.loads((out / "run.json").read_text())
    assert {"load", "find", "render", "judge", "apply"} <= set(run["stage_seconds"])
    assert run["counts"]["groups"] == run["counts"]["rendered_groups"] == len(search.groups)
    assert run["versions"]["spikeinterface"]
    # the probe's motion the evidence registered: a static generated recording has none
    assert run["motion"]["source"] == "spikes" and run["motion"]["range_um"] == 0.0
    assert len(run["motion"]["bin_edges_s"]) == len(run["motion"]["displacement_um"]) + 1
    curation = load_curation(out / "curation.json")
    curated = apply_curation(small_truth.analyzer.sorting, curation)
    assert curated.get_num_units() == result.units_after
    assert result.units_after == small_truth.analyzer.get_num_units() - sum(
        len(g) - 1 for g in small_truth.true_groups)
    assert folder_digest(analyzer_folder) == before


def test_without_confirm_nothing_is_written(session):
    session.find_candidates()
    session.judge_group()
    plan = session.apply_merges()
    assert isinstance(plan, MergePlan) and plan.groups
    assert not (session.out / "curation.json").exists()


def test_the_judge_can_be_named_as_on_the_command_line(session):
    session.find_candidates()
    verdicts = session.judge_group(judge="metrics")
    assert verdicts and session.judge_used.name == "metrics"


@pytest.mark.slow
def test_journal_reuses_verdicts_and_a_new_session_resumes(analyzer_folder, tmp_path):
    first = CurationSession.open(analyzer_folder, tmp_path / "out", progress=False)
    first.find_candidates()
    judge = CountingJudge()
    first.judge_group(judge=judge)
    assert judge.calls == len(first.groups)
    journal_lines = (tmp_path / "out" / "verdicts.jsonl").read_text().splitlines()
    assert len(journal_lines) == len(first.groups)
    # same folder, new session: nothing is judged twice
    second = CurationSession.open(analyzer_folder, tmp_path / "out", progress=False)
    second.find_candidates()
    again = CountingJudge()
    verdicts = second.judge_group(judge=again)
    assert again.calls == 0
    assert [v.decision for v in verdicts] == [first.verdicts[g].decision for g in sorted(first.verdicts)]
    # another policy is another question
    second.judge_group(judge=again, policy="conservative", rejudge=False, group_ids=sorted(second.groups))
    assert again.calls == len(second.groups)


def test_examples_are_never_judged(session):
    session.find_candidates()
    session.judge_group()
    example = min(session.groups)
    judge = CountingJudge()
    verdicts = session.judge_group(judge=judge, bad_examples=[example], rejudge=True, group_ids=sorted(session.groups))
    assert example not in [v.group_id for v in verdicts]
    assert judge.calls == len(session.groups) - 1


def test_unknown_group_ids(session):
    session.find_candidates()
    with pytest.raises(SpikemergeError, match="unknown group id"):
        session.judge_group(group_ids=[999])


def test_steps_out_of_order(session):
    with pytest.raises(SpikemergeError, match="find_candidates first"):
        session.judge_group()


def test_output_folder_that_is_not_ours(analyzer_folder, tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.docx").write_text("precious")
    with pytest.raises(SpikemergeError, match="not made by spikemerge"):
        CurationSession.open(analyzer_folder, foreign, progress=False)
    assert [p.name for p in foreign.iterdir()] == ["thesis.docx"]


def test_output_inside_the_analyzer_is_refused(analyzer_folder):
    with pytest.raises(SpikemergeError, match="inside the analyzer"):
        CurationSession.open(analyzer_folder, analyzer_folder / "out", progress=False)


def test_unknown_policy(analyzer_folder, tmp_path):
    with pytest.raises(SpikemergeError, match="unknown policy"):
        CurationSession.open(analyzer_folder, tmp_path / "out", policy="yolo", progress=False)


def test_saved_example_is_reused_from_the_library(session, tmp_path):
    session.find_candidates()
    session.judge_group()
    group = min(session.groups)
    library = tmp_path / "library"
    folder = session.save_example(group, "good", note="a clean split", name="clean-split", library=library)
    assert (folder / "example.json").exists() and any(folder.glob("*.png"))
    from spikemerge.tools.examples import list_examples, load_example

    assert list_examples(library) == ["clean-split"]
    example = load_example("clean-split", library=library, label="bad")
    assert example.label == "bad" and example.note == "a clean split"
    assert all(p.exists() for p in example.images.values())
    # the same units from another recording are not this session's group
    from dataclasses import replace

    stranger = replace(example, source="/some/other/recording")
    judge = CountingJudge()
    session.judge_group(judge=judge, good_examples=[stranger], group_ids=sorted(session.groups), rejudge=True)
    assert judge.calls == len(session.groups)
    with pytest.raises(SpikemergeError, match="no saved example"):
        load_example("missing", library=library)


class _InterruptedJudge(MetricsJudge):
    """Judges the first group, then the person presses Ctrl-C."""

    def judge_many(self, requests, examples=(), policy="balanced", on_verdict=None):
        first = super().judge_many(requests[:1], examples=examples, policy=policy, on_verdict=on_verdict)
        assert first
        raise KeyboardInterrupt


def test_interrupted_judging_leaves_outputs_current(session, tmp_path):
    session.find_candidates()
    assert len(session.groups) >= 2
    with pytest.raises(KeyboardInterrupt):
        session.judge_group(judge=_InterruptedJudge())
    table = pd.read_csv(tmp_path / "out" / "decisions.csv")
    assert len(table) == 1 and table["decision"].iloc[0] in ("merge", "not merge")
    assert json.loads((tmp_path / "out" / "run.json").read_text())["counts"]["judged"] == 1
    resumed = session.judge_group(judge=MetricsJudge())  # the rest, without redoing the first
    assert len(resumed) == len(session.groups) - 1


def test_calibration_on_the_recording_lands_in_run_json(session, tmp_path):
    result = session.calibrate()
    assert result["positives"] and result["summary"].startswith("On your recording the offline judge")
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["calibration"]["summary"] == result["summary"]
    assert "abstain" in run["counts"]
    assert result["summary"] in session.summary()


def test_calibration_draws_no_neighbour_whose_unit_breaks_its_own_refractory_period(session, monkeypatch):
    """A unit that fills its own refractory window fills a neighbour pair's too: such a pair is no
    sure pair of two neurons (``CalibrationParams.negative_max_contamination``)."""
    from spikemerge.tools.evidence import pairs
    from spikemerge.tools.judges.calibrate import CalibrationParams, calibrate_recording

    real = pairs.unit_pair_evidence

    def contaminated(a, b, *args, **kwargs):
        e = real(a, b, *args, **kwargs)
        return {**e, "contamination_a": 0.8} if not str(a).endswith(("a", "b")) else e  # neighbours only

    judge, loose = MetricsJudge(), CalibrationParams(negative_max_contamination=1.0)
    drawn = calibrate_recording(session.context, judge, params=loose)
    monkeypatch.setattr(pairs, "unit_pair_evidence", contaminated)
    assert calibrate_recording(session.context, judge, params=loose)["negatives"]["n"] == drawn["negatives"]["n"] > 0
    assert calibrate_recording(session.context, judge)["negatives"]["n"] == 0


def test_examples_reach_the_offline_judge(session):
    session.find_candidates()
    groups = sorted(session.groups)
    first = session.judge_group(judge=MetricsJudge(), rejudge=True)
    judge = MetricsJudge()
    session.judge_group(judge=judge, bad_examples=[groups[0]], rejudge=True)
    assert judge.learned and judge.learned["bad"] > 0  # the example's pairs correct the judge around them
    assert groups[0] not in {v.group_id for v in session.judge_group(judge=judge, bad_examples=[groups[0]])}
    assert first


def test_asking_for_more_candidates_walks_the_threshold_down(session):
    first = session.find_candidates(min_similarity=0.97, relax=False)
    more = session.find_candidates(relax=True, more=True)
    assert more.levels[0]["min_similarity"] == pytest.approx(first.min_similarity)
    held = lambda search: sum(len(g.unit_ids) for g in search.groups)  # noqa: E731
    assert held(more) > held(first) or more.min_similarity < 0.5 + 0.05


def test_figures_drawn_in_the_background_are_the_figures_and_the_stages_still_add_up(analyzer_folder, tmp_path):
    session = CurationSession.open(analyzer_folder, tmp_path / "bg", progress=False)
    search = session.find_candidates()
    assert search.groups
    session.compute_evidence(n_workers=2)
    session.start_render()
    with pytest.raises(SpikemergeError, match="already being drawn"):
        session.start_render()
    session.judge_group(judge=MetricsJudge())  # the metrics judge reads numbers: it does not wait for figures
    session.apply_merges(confirm=True, write_analyzer=False)
    drawn = session.finish_render()
    assert set(drawn) == set(session.groups) and session.finish_render() == {}
    run = json.loads((tmp_path / "bg" / "run.json").read_text())
    assert run["counts"]["rendered_groups"] == len(search.groups)
    assert run["background_seconds"]["render"] > 0
    assert sum(run["stage_seconds"].values()) + run["other_seconds"] == pytest.approx(run["wall_seconds"], abs=0.01)

    # the same figures (by content: the file names carry each image's content hash) as drawn in the foreground
    other = CurationSession.open(analyzer_folder, tmp_path / "fg", progress=False)
    other.find_candidates()
    foreground = other.render_group()
    assert {g: {f: p.name for f, p in d.items()} for g, d in foreground.items()} == \
        {g: {f: p.name for f, p in d.items()} for g, d in drawn.items()}
    # and the same evidence as computed here, one group at a time
    assert all(other.evidence(g) == session.evidence(g) or str(other.evidence(g)) == str(session.evidence(g))
               for g in session.groups)


def test_a_failed_background_drawing_is_raised_by_finish_render(session, monkeypatch):
    import spikemerge.tools.render.groups as render_groups_module

    session.find_candidates()

    def broken(*args, **kwargs):
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(render_groups_module, "render_groups", broken)
    session.start_render()
    with pytest.raises(RuntimeError, match="disk is full"):
        session.finish_render()
    assert session.images == {}
