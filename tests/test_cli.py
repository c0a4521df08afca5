"""The `spikemerge` command as a user meets it: outputs, exit codes, help, --json, --version, logging, progress."""

from __future__ import annotations

import argparse
import io
import json
import logging
import subprocess
import sys
from html.parser import HTMLParser
from importlib.metadata import version
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from rich.console import Console

from spikemerge.cli import build_parser, main
from spikemerge.progress import ProgressJudge, setup_logging
from spikemerge.tools.judges import MetricsJudge, Verdict
from spikemerge.tools.schemas import (
    RunSummary, read_curation, read_decisions, read_journal, read_manifest, read_run,
)
from spikemerge.tools.curation import MANIFEST_FILE
from tests.helpers import folder_digest


def test_run_offline_writes_valid_outputs_and_never_touches_the_input(analyzer_folder, tmp_path, capsys):
    before = folder_digest(analyzer_folder)
    code = main(["run", str(analyzer_folder), "--out", str(tmp_path / "out"), "--no-render", "--apply", "--quiet"])
    assert code == 0
    out = tmp_path / "out"
    run = read_run(out)
    rows = read_decisions(out / "decisions.csv")
    curation = read_curation(out / "curation.json")
    manifest = read_manifest(out / MANIFEST_FILE)
    assert run.counts.merge >= 1 and run.counts.units_after == run.counts.units - sum(
        len(m.unit_ids) - 1 for m in curation.merges)
    assert len(rows) == run.counts.judged == len(read_journal(out / "verdicts.jsonl"))
    assert manifest.applies[-1].status == "complete" and manifest.applies[-1].analyzer_folder == "merged_analyzer"
    assert (out / "merged_analyzer").is_dir()
    assert folder_digest(analyzer_folder) == before
    printed = capsys.readouterr().out
    assert "Verdicts" in printed and "applied" in printed and "planned" not in printed


def test_without_apply_merges_are_planned_not_applied(analyzer_folder, tmp_path, capsys):
    assert main(["run", str(analyzer_folder), "--out", str(tmp_path / "out"), "--no-render", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "merge(s) planned" in printed and "applied" not in printed and "add --apply" in printed
    assert not (tmp_path / "out" / "merged_analyzer").exists()
    assert read_run(tmp_path / "out").counts.units_after is None


def test_json_summary_is_the_only_stdout(analyzer_folder, tmp_path, capsys):
    assert main(["run", str(analyzer_folder), "--out", str(tmp_path / "out"), "--no-render", "--json"]) == 0
    captured = capsys.readouterr()
    summary = RunSummary.model_validate(json.loads(captured.out))
    assert summary.merges_planned >= 1 and summary.merges_applied == 0 and summary.merged_analyzer is None
    assert summary.decisions["merge"] >= 1 and summary.units_after < summary.units
    assert all(Path(p).is_absolute() and Path(p).exists() for p in summary.outputs.values())
    assert "Verdicts" in captured.err  # the human-readable part went to stderr



def test_calibrate_reports_on_the_recording_in_json_run_json_and_report(analyzer_folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", str(analyzer_folder), "--out", str(out), "--calibrate", "--json"]) == 0
    captured = capsys.readouterr()
    summary = RunSummary.model_validate(json.loads(captured.out))
    assert summary.calibration is not None and 0.0 <= summary.calibration["recovered_fraction"] <= 1.0
    assert "On your recording the offline judge" in captured.err
    run = json.loads((out / "run.json").read_text())
    assert set(run["calibration"]["per_policy"]) == {"conservative", "balanced", "aggressive"}
    assert "On your recording the offline judge" in (out / "report.html").read_text(encoding="utf-8")

@pytest.mark.parametrize("args, message", [
    (["run", "/no/such/folder", "--out", "{tmp}/o"], "no such folder"),
    (["run", "{analyzer}", "--out", "{tmp}/o", "--min-similarity", "3"], "--min-similarity must be in (0, 1]"),
    (["run", "{analyzer}", "--out", "{tmp}/o", "--min-similarity", "1.5"], "--min-similarity must be in (0, 1]"),
    (["run", "{analyzer}", "--out", "{tmp}/o", "--preset", "foo"], "unknown --preset 'foo'"),
    (["run", "{analyzer}", "--out", "{tmp}/o", "--jobs", "0"], "--jobs must be at least 1"),
    (["run", "{analyzer}", "--out", "{tmp}/o", "--judge", "openai:gpt-4o", "--no-render"], "--no-render works only"),
    (["run", "{analyzer}", "--out", "{foreign}"], "not made by spikemerge"),
    (["run", "{analyzer}", "--out", "{analyzer}/inside"], "inside the analyzer folder"),
    (["demo", "--out", "{tmp}/o", "--duration", "-1"], "--duration must be a positive"),
    (["bench", "--scenarios", "nope", "--out", "{tmp}/o"], "unknown scenario(s) nope"),
])
def test_usage_errors_exit_2_with_one_line_before_anything_is_written(args, message, analyzer_folder, tmp_path, capsys):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "data.bin").write_bytes(b"\0")
    args = [a.format(tmp=tmp_path, analyzer=analyzer_folder, foreign=foreign) for a in args]
    before = folder_digest(analyzer_folder)
    code = main(args + (["--quiet"] if args[0] != "bench" else []))
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "o").exists()  # checked before any folder was created
    assert sorted(p.name for p in foreign.iterdir()) == ["data.bin"]
    assert folder_digest(analyzer_folder) == before


def test_runtime_errors_exit_1_with_one_line(tmp_path, capsys):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "data.bin").write_bytes(b"\0")
    code = main(["run", str(foreign), "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert "not a SortingAnalyzer folder" in err and len(err.splitlines()) == 1


def test_argparse_usage_errors_exit_2():
    with pytest.raises(SystemExit) as exc:
        main(["run", "--policy", "reckless", "x", "--out", "y"])
    assert exc.value.code == 2


def test_version_from_the_installed_interpreter_and_console_script(tmp_path):
    expected = f"spikemerge {version('spikemerge')}"
    done = subprocess.run([sys.executable, "-m", "spikemerge", "--version"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == expected
    script = Path(sys.executable).parent / "spikemerge"
    if script.exists():  # the console script of the environment running the tests
        done = subprocess.run([str(script), "--version"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
        assert done.returncode == 0 and done.stdout.strip() == expected


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_option_of_every_command_has_help_and_shows_its_default():
    subparsers = _subparsers(build_parser())
    assert {"run", "demo", "bench", "chat"} <= set(subparsers)
    for name, parser in subparsers.items():
        text = parser.format_help()
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"{name} {action.dest} has no help"
            if action.option_strings and action.default not in (None, False, argparse.SUPPRESS) \
                    and not isinstance(action, argparse._CountAction):
                shown = f"(default: {action.default})"
                assert shown in " ".join(text.split()), f"{name} {action.option_strings[0]} does not show {shown}"


def test_verbose_logging_scrubs_keys(monkeypatch):
    key = "sk-" + "a1B2c3D4e5F6g7H8i9J0"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    stream = io.StringIO()
    setup_logging(1, stream)
    logger = logging.getLogger("spikemerge.tools.judges.vlm.calls")
    logger.info("calling with %s", key)
    logger.info(f"header Bearer {key}")
    logger.debug("hidden at -v")
    text = stream.getvalue()
    assert key not in text and text.count("spikemerge: INFO") == 2 and "hidden" not in text
    setup_logging(0, stream)
    logger.info("quiet by default")
    assert "quiet by default" not in stream.getvalue()


class _PricedJudge(MetricsJudge):
    """The metrics judge, with a pretend per-group usage, as a vision-model judge reports it."""

    name = "vlm"

    def judge_many(self, requests, examples=(), policy="balanced", on_verdict=None):
        verdicts = []
        for r in requests:
            v = Verdict(group_id=r.group_id, unit_ids=list(r.unit_ids), decision="not merge", confidence=0.6,
                        judge="vlm", usage={"calls": 5, "input_tokens": 1000, "output_tokens": 200, "cost_usd": 0.0125})
            if on_verdict:
                on_verdict(v)
            verdicts.append(v)
        return verdicts


def test_progress_bar_counts_groups_and_sums_cost():
    from spikemerge.tools.judges.base import JudgeRequest

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120, color_system=None)
    seen = []
    judge = ProgressJudge(_PricedJudge(), console)
    requests = [JudgeRequest(group_id=g, unit_ids=(g, g + 10)) for g in range(1, 4)]
    verdicts = judge.judge_many(requests, on_verdict=seen.append)
    assert [v.group_id for v in verdicts] == [v.group_id for v in seen] == [1, 2, 3]
    final = buffer.getvalue().splitlines()[-1] if buffer.getvalue() else ""
    text = buffer.getvalue()
    assert "3/3" in text and "$0.0375" in text and "3,600 tokens" in text, final
    assert judge.name == "vlm" and judge.fingerprint() == _PricedJudge().fingerprint()  # cache keys unchanged


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.links += [value for name, value in attrs if name in ("src", "href") and value]


@pytest.mark.parametrize("relative", [True, False], ids=["relative-out", "absolute-out"])
def test_every_link_in_the_report_resolves_from_another_working_folder(relative, analyzer_folder, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    out = Path("results/run1") if relative else tmp_path / "abs" / "run1"
    assert main(["run", str(analyzer_folder), "--out", str(out), "--quiet"]) == 0
    report = (elsewhere / out if relative else out) / "report.html"
    parser = _Links()
    parser.feed(report.read_text(encoding="utf-8"))
    files = [link for link in parser.links if not link.startswith("#")]
    images = [link for link in files if link.endswith(".png")]
    assert len(images) >= 4 and "decisions.csv" in files and "curation.json" in files
    for link in files:
        assert not urlparse(link).scheme and not link.startswith("/"), link  # relative, offline
        assert (report.parent / unquote(link)).is_file(), f"{link} does not resolve from {report.parent}"
    anchors = {link[1:] for link in parser.links if link.startswith("#")}
    assert all(f"id='{a}'" in report.read_text(encoding="utf-8") for a in anchors)


@pytest.mark.parametrize("argv, level", [
    (["run", "a", "--out", "o"], 0), (["-v", "run", "a", "--out", "o"], 1), (["run", "a", "--out", "o", "-vv"], 2),
])
def test_verbose_before_or_after_the_command(argv, level):
    assert build_parser().parse_args(argv).verbose == level
