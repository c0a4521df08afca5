"""report.html: every group listed, merged first, text escaped, offline, lazy images."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from spikemerge.report import write_report


def _image(path: Path, color: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (768, 512), color).save(path)
    return path


def _rows(out: Path) -> list[dict]:
    images = out / "images"
    return [
        {"group_id": 1, "unit_ids": [3, 4], "images": {"crosscorrelograms": _image(images / "g1_ccg.png", "white")},
         "evidence": {"ccg_dip": 0.12, "amplitude_overlap": 0.8},
         "verdict": {"decision": "not merge", "confidence": 0.7, "merge_unit_ids": [], "reasoning": "flat CCG",
                     "judge": "metrics", "model": None, "policy": "balanced"}},
        {"group_id": 2, "unit_ids": ["<b>x</b>", 7], "images": {"pca": _image(images / "g2 pca.png", "grey")}, "evidence": {},
         "verdict": {"decision": "merge", "confidence": 0.93, "merge_unit_ids": ["<b>x</b>", 7],
                     "reasoning": "dip <script>alert(1)</script> & same shape", "judge": "vlm",
                     "model": "openai:gpt-4o", "policy": "conservative"}},
        {"group_id": 3, "unit_ids": [8, 9], "images": {}, "evidence": {}, "verdict": None},
        {"group_id": 4, "unit_ids": [10, 11], "images": {}, "evidence": {},
         "verdict": {"decision": "abstain", "confidence": 0.5, "merge_unit_ids": [], "merge_groups": [],
                     "reasoning": "2 expected coincidences", "judge": "metrics", "model": None, "policy": "balanced"}},
        {"group_id": 5, "unit_ids": [13, 15, 68, 69], "images": {}, "evidence": {},
         "verdict": {"decision": "merge", "confidence": 0.9, "merge_unit_ids": [13, 15, 68, 69],
                     "merge_groups": [[13, 15], [68, 69]], "reasoning": "two neurons, each split",
                     "judge": "metrics", "model": None, "policy": "balanced"}},
    ]


def test_report_lists_every_group_merged_first_and_escapes(tmp_path):
    rows = _rows(tmp_path)
    path = write_report(tmp_path, rows)
    assert path == tmp_path / "report.html"
    text = path.read_text(encoding="utf-8")
    for gid in (1, 2, 3, 4, 5):
        assert f"id='group-{gid}'" in text and f"href='#group-{gid}'" in text
    sections = re.findall(r"<section id='group-(\d+)'", text)
    assert sections == ["2", "5", "1", "4", "3"]  # merged, not merged, abstained, unjudged
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<b>x</b>" not in text and "&lt;b&gt;x&lt;/b&gt;" in text
    assert "not judged yet" in text


def test_abstain_is_shown_as_not_enough_evidence_and_several_merges_as_parts(tmp_path):
    text = write_report(tmp_path, _rows(tmp_path)).read_text(encoding="utf-8")
    abstain = text[text.index("<section id='group-4'"):]
    abstain = abstain[: abstain.index("</section>")]
    assert "<span class='badge abstain'>abstain: not enough evidence</span>" in abstain
    assert "not-merge" not in abstain
    assert "1 abstain: not enough evidence" in text  # the tally at the top
    assert "merge 13, 15 | 68, 69" in text


def test_report_links_the_outputs_beside_it(tmp_path, monkeypatch):
    (tmp_path / "decisions.csv").write_text("group_id\n")
    (tmp_path / "run.json").write_text("{}")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # a working folder that is not the report's
    out = Path("..")
    text = write_report(out, _rows(tmp_path)).read_text(encoding="utf-8")
    assert "<nav class='files'><a href='decisions.csv'>decisions.csv</a><a href='run.json'>run.json</a></nav>" in text
    assert re.findall(r"<img src='([^']+)'", text) == ["images/g2%20pca.png", "images/g1_ccg.png"]


def test_report_images_are_relative_lazy_and_offline(tmp_path):
    write_report(tmp_path, _rows(tmp_path))
    text = (tmp_path / "report.html").read_text(encoding="utf-8")
    sources = re.findall(r"<img src='([^']+)'", text)
    assert sources == ["images/g2%20pca.png", "images/g1_ccg.png"]  # URL-quoted, relative to the report
    assert text.count("loading='lazy'") == len(sources)
    assert "http://" not in text and "https://" not in text
    assert not list(tmp_path.glob(".report.html.*"))  # written through a temporary file


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_report_renders_in_headless_chromium(tmp_path):
    write_report(tmp_path, _rows(tmp_path))
    shot = tmp_path / "shot.png"
    profile = tmp_path / "profile"
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
         f"--screenshot={shot}", "--window-size=1280,1000", (tmp_path / "report.html").as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    with Image.open(shot) as image:
        assert image.size == (1280, 1000)
        colors = image.convert("RGB").getcolors(maxcolors=1 << 16)
        assert colors is None or len(colors) > 10  # text and badges drawn, not a blank page


def test_pair_evidence_is_a_table_with_one_column_per_pair(tmp_path):
    pairs = [{"unit_a": 3, "unit_b": 4, "template_similarity": 0.98765, "ccg_refractory_count": 0},
             {"unit_a": 3, "unit_b": 5, "template_similarity": 0.5, "ccg_refractory_count": 12}]
    rows = [{"group_id": 1, "unit_ids": [3, 4, 5], "images": {}, "evidence": {"pairs": pairs}, "verdict": None}]
    text = write_report(tmp_path, rows).read_text(encoding="utf-8")
    assert "<th>3 × 4</th><th>3 × 5</th>" in text
    assert "<th>template similarity</th><td class='num'>0.988</td><td class='num'>0.5</td>" in text
    assert "{'unit_a'" not in text  # no Python reprs on the page


def test_report_never_shows_an_api_key(tmp_path, monkeypatch):
    key = "sk-" + "Qw3Er4Ty5Ui6Op7As8Df"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    rows = [{"group_id": 1, "unit_ids": [1, 2], "images": {}, "evidence": {},
             "verdict": {"decision": "error", "confidence": 0.0, "merge_unit_ids": [],
                         "reasoning": f"401 Incorrect API key provided: {key}", "judge": "vlm", "model": "openai:gpt-4o"}}]
    text = write_report(tmp_path, rows).read_text(encoding="utf-8")
    assert key not in text and "Incorrect API key provided: ***" in text


def test_report_shows_the_calibration_escaped_and_scrubbed(tmp_path):
    key = "sk-" + "a1B2c3D4" * 6
    text = write_report(tmp_path, _rows(tmp_path), calibration=f"recovers 90 % <b>x</b> {key}").read_text(encoding="utf-8")
    assert "Calibration" in text and "recovers 90 %" in text
    assert "<b>x</b>" not in text and key not in text
