"""Review and learn: spikeinterface-gui with the proposals preloaded, and collecting what the curator changed."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from spikemerge.errors import SpikemergeError
from spikemerge.review import compare, load_proposals, load_review
from spikemerge.review.gui import gui_curation, unit_columns
from spikemerge.review.proposals import JudgedGroup, Proposal, Proposed
from spikemerge.review.slash import review_command
from spikemerge.tools.examples import list_examples, load_example
from spikemerge.tools.judges import MetricsJudge
from spikemerge.tools.session import CurationSession

from tests.helpers import folder_digest

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def reviewed_source(saved_truth_folder, tmp_path_factory):
    """An analyzer folder and a spikemerge output folder with proposals (metrics judge, no figures)."""
    root = tmp_path_factory.mktemp("review")
    analyzer = root / "analyzer"
    shutil.copytree(saved_truth_folder / "analyzer", analyzer)
    out = root / "out"
    session = CurationSession.open(analyzer, out, progress=False)
    session.find_candidates()
    session.judge_group(judge=MetricsJudge())
    session.apply_merges(confirm=True, write_analyzer=False)
    merges = json.loads((out / "curation.json").read_text())["merges"]
    assert len(merges) >= 2, "the small analyzer should give several proposals"
    return analyzer, out


@pytest.fixture
def review_out(reviewed_source, tmp_path, monkeypatch):
    """A private copy of the output folder, an empty example library in $SPIKEMERGE_EXAMPLES, and the analyzer's digest."""
    analyzer, out = reviewed_source
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    library = tmp_path / "library"
    monkeypatch.setenv("SPIKEMERGE_EXAMPLES", str(library))
    return analyzer, copy, library, folder_digest(analyzer)


def _curation_without(out: Path, drop: int, add: list | None = None) -> dict:
    """The proposals as a plain SpikeInterface curation (no provenance), minus merge ``drop``, plus ``add``."""
    proposed = json.loads((out / "curation.json").read_text())
    merges = [{"unit_ids": m["unit_ids"]} for i, m in enumerate(proposed["merges"]) if i != drop]
    if add:
        merges.append({"unit_ids": add})
    return {"format_version": "2", "unit_ids": proposed["unit_ids"], "merges": merges}


def _env(library: Path) -> dict:
    env = {**os.environ, "SPIKEMERGE_EXAMPLES": str(library)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


# ------------------------------------------------------------------ comparison (no analyzer)


def _proposed() -> Proposed:
    return Proposed(
        analyzer="/data/a", unit_ids=[1, 2, 3, 4, 5, 6, 7],
        merges=[Proposal(group_id=1, unit_ids=(1, 2), new_unit_id=8, confidence=0.9),
                Proposal(group_id=2, unit_ids=(3, 4, 5), new_unit_id=9, confidence=0.7)],
        groups=[JudgedGroup(1, (1, 2), "merge", 0.9), JudgedGroup(2, (3, 4, 5), "merge", 0.7),
                JudgedGroup(3, (6, 7), "not merge", 0.8)],
    )


def test_compare_sorts_merges_into_accepted_rejected_added():
    comparison = compare(_proposed(), [["2", "1"], [3, 4], [6, 7]])  # ids as text and reordered still match
    assert [p.group_id for p in comparison.accepted] == [1]
    assert [(p.group_id, replacement) for p, replacement in comparison.rejected] == [(2, [3, 4])]
    added = {frozenset(a.unit_ids): a for a in comparison.added}
    assert set(added) == {frozenset({3, 4}), frozenset({6, 7})}
    assert added[frozenset({6, 7})].group_id == 3 and added[frozenset({6, 7})].decision == "not merge"
    assert added[frozenset({6, 7})].confidence == 0.8
    assert added[frozenset({3, 4})].replaces == (2,)
    assert (comparison.groups_agreed, comparison.groups_judged) == (1, 3)
    assert comparison.summary().startswith("The curator kept 1 of 2 proposed merges (50 %), rejected 1, added 2")


def test_compare_full_agreement():
    comparison = compare(_proposed(), [[1, 2], [5, 4, 3]])
    assert len(comparison.accepted) == 2 and not comparison.rejected and not comparison.added
    assert comparison.groups_agreed == comparison.groups_judged == 3


def test_gui_inputs_hold_the_proposals():
    from spikeinterface.curation.curation_model import Curation

    proposed = _proposed()
    curation = gui_curation(proposed)
    Curation(**curation)  # spikeinterface-gui validates it the same way
    assert [m["unit_ids"] for m in curation["merges"]] == [[1, 2], [3, 4, 5]]
    saved = {"format_version": "2", "unit_ids": proposed.unit_ids, "merges": [{"unit_ids": [6, 7], "new_unit_id": None}],
             "removed": [5], "label_definitions": {"quality": {"name": "quality", "label_options": ["good", "noise"], "exclusive": True}}}
    resumed = gui_curation(proposed, saved)
    Curation(**resumed)
    assert [m["unit_ids"] for m in resumed["merges"]] == [[6, 7]] and resumed["removed"] == [5]
    assert resumed["manual_labels"] == [] and "name" not in resumed["label_definitions"]["quality"]
    columns = unit_columns(proposed, [1, 3, 6, 7, 99])
    assert list(columns["spikemerge"]) == ["g1 merge 1+2 (0.90)", "g2 merge 3+4+5 (0.70)", "g3 not merge (0.80)",
                                           "g3 not merge (0.80)", ""]
    assert set(columns) == {"spikemerge", "spikemerge_reasoning"}


# ------------------------------------------------------------------ collect


@pytest.mark.slow
def test_cli_collect_records_a_dropped_merge_as_rejected_and_learns_a_bad_example(review_out, tmp_path):
    analyzer, out, library, digest = review_out
    proposals = json.loads((out / "curation.json").read_text())
    dropped = proposals["merges"][0]["unit_ids"]
    dropped_group = proposals["provenance"]["groups"][0]["group_id"]
    curated = tmp_path / "curated.json"
    curated.write_text(json.dumps(_curation_without(out, drop=0)))

    done = subprocess.run([sys.executable, "-m", "spikemerge", "review", str(out), "--collect", str(curated)],
                          capture_output=True, text=True, env=_env(library), timeout=600)
    assert done.returncode == 0, done.stderr
    total = len(proposals["merges"])
    assert f"kept {total - 1} of {total} proposed merges" in done.stdout

    record = load_review(out / "review.json")
    assert [m.unit_ids for m in record.rejected] == [dropped]
    rejected = record.rejected[0]
    assert rejected.group_id == dropped_group and rejected.judge_decision == "merge"
    assert rejected.confidence is not None and 0 < rejected.confidence <= 1
    assert len(record.accepted) == total - 1 and not record.added
    assert all(m.confidence is not None for m in record.accepted)

    names = list_examples(library)
    assert len(names) == 1
    example = load_example(names[0], library)
    assert example.label == "bad" and sorted(example.unit_ids) == sorted(dropped)
    assert "review" in example.note and example.evidence["pairs"]
    assert example.images, "the example keeps its figures for a vision judge"

    final = json.loads((out / "curation.json").read_text())
    assert [m["unit_ids"] for m in final["merges"]] == [m["unit_ids"] for m in proposals["merges"][1:]]
    assert final["provenance"]["review"]["rejected"] == 1
    assert final["provenance"]["analyzer"] == proposals["provenance"]["analyzer"]
    from spikeinterface.curation import load_curation

    load_curation(out / "curation.json")
    assert folder_digest(analyzer) == digest


def test_collect_learns_a_good_example_from_an_added_merge_and_is_repeatable(review_out, tmp_path):
    analyzer, out, library, digest = review_out
    session = CurationSession.open(analyzer, out, progress=False)
    proposed = load_proposals(out)
    not_merged = [g for g in proposed.groups if g.decision == "not merge"]
    assert not_merged, "the small analyzer has a pair of twin neurons the judge keeps apart"
    group = not_merged[0]
    curated = tmp_path / "curated.json"
    curated.write_text(json.dumps(_curation_without(out, drop=-1, add=list(group.unit_ids))))

    outcome = session.collect_review(curated, render=False)
    assert [a.unit_ids for a in outcome.record.added] == [list(group.unit_ids)]
    assert outcome.record.added[0].group_id == group.group_id
    assert outcome.record.added[0].judge_decision == "not merge"
    assert outcome.record.added[0].confidence == pytest.approx(group.confidence)
    assert outcome.good_examples and not outcome.bad_examples
    example = load_example(outcome.good_examples[0], library)
    assert example.label == "good" and "not proposed" in example.note

    again = session.collect_review(curated, render=False)  # proposals come from the snapshot now
    assert again.good_examples == outcome.good_examples
    assert list_examples(library) == outcome.good_examples
    assert folder_digest(analyzer) == digest


def test_collect_errors_are_one_line(review_out, tmp_path):
    analyzer, out, library, _ = review_out
    session = CurationSession.open(analyzer, out, progress=False)
    with pytest.raises(SpikemergeError, match="press 'Save curation'"):
        session.collect_review()
    stranger = tmp_path / "stranger.json"
    stranger.write_text(json.dumps({"format_version": "2", "unit_ids": [1000, 1001], "merges": [{"unit_ids": [1000, 1001]}]}))
    with pytest.raises(SpikemergeError, match="does not have"):
        session.collect_review(stranger)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(SpikemergeError, match="not readable JSON"):
        session.collect_review(broken)
    assert not (out / "review.json").exists()
    empty = tmp_path / "empty_out"
    empty.mkdir()
    with pytest.raises(SpikemergeError, match="no curation.json"):
        load_proposals(empty)


def test_chat_slash_review_collects(review_out, tmp_path):
    analyzer, out, library, _ = review_out
    session = CurationSession.open(analyzer, out, progress=False)
    curated = tmp_path / "curated.json"
    curated.write_text(json.dumps(_curation_without(out, drop=0)))
    text = review_command(session, ["collect", str(curated)])
    assert "rejected 1" in text and (out / "review.json").exists()
    assert review_command(session, ["stop"]) == "no review GUI is running"
    assert review_command(session, ["now", "please"]).startswith("usage:")


# ------------------------------------------------------------------ the web GUI in a browser

SHADOW_TEXT = """(function text(node) {
  let s = '';
  if (node.shadowRoot) s += text(node.shadowRoot);
  for (const child of node.childNodes) s += child.nodeType === 3 ? child.textContent + ' ' : text(child);
  return s;
})(document.body || document)"""

CLICK = """(function find(node) {
  if (node.shadowRoot) { const hit = find(node.shadowRoot); if (hit) return hit; }
  for (const child of node.children || []) {
    if (child.tagName === 'BUTTON' && child.textContent.trim() === %s) { child.click(); return true; }
    const hit = find(child); if (hit) return hit;
  }
  return false;
})(document.body || document)"""


class Browser:
    """Headless Chromium driven over the DevTools protocol.

    ``chromium --headless --screenshot`` shoots at the page's load event, before a Panel app has
    drawn anything (it renders after its websocket delivers the document), so the test waits for
    the page's own text and then asks for the screenshot.
    """

    def __init__(self, binary: str, profile: Path):
        self.process = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1800,1000",
             f"--user-data-dir={profile}", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.profile, self.ws, self.calls = profile, None, 0

    async def connect(self, timeout: float = 30) -> None:
        from tornado.websocket import websocket_connect

        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.exists() and port_file.read_text().strip()):
            assert time.monotonic() < deadline, "chromium did not start"
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=10).read())
        page = next(t for t in targets if t["type"] == "page")
        self.ws = await websocket_connect(page["webSocketDebuggerUrl"], max_message_size=256 * 2**20)

    async def call(self, method: str, **params) -> dict:
        self.calls += 1
        ident = self.calls
        self.ws.write_message(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(await self.ws.read_message())
            if message.get("id") == ident:
                assert "error" not in message, message
                return message["result"]

    async def evaluate(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def wait_for_text(self, needle: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = await self.evaluate(SHADOW_TEXT) or ""
            if needle in text:
                return text
            await asyncio.sleep(0.5)
        raise AssertionError(f"the page never showed {needle!r}")

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.mark.slow
def test_web_review_shows_the_proposals_and_saves_into_the_output_folder(review_out, tmp_path):
    analyzer, out, library, digest = review_out
    session = CurationSession.open(analyzer, out, progress=False)
    proposals = load_proposals(out)
    started = time.monotonic()
    server = session.review(open_browser=False)  # runs `spikemerge review OUT --no-browser --port P`
    try:
        startup = time.monotonic() - started
        print(f"review GUI answered HTTP 200 after {startup:.1f} s at {server.url}")
        assert server.url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(server.url, timeout=30) as response:
            assert response.status == 200
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if chromium is None:
            pytest.skip("chromium is not installed: the GUI answered, no screenshot taken")
        first = proposals.merges[0]
        verdict = f"g{first.group_id} merge {'+'.join(map(str, first.unit_ids))}"
        screenshot = tmp_path / "review.png"

        async def drive() -> str:
            browser = Browser(chromium, Path(tempfile.mkdtemp(dir=tmp_path)))
            try:
                await browser.connect()
                await browser.call("Page.navigate", url=server.url)
                text = await browser.wait_for_text(verdict, timeout=120)
                await asyncio.sleep(2)  # let the plots finish drawing
                shot = await browser.call("Page.captureScreenshot", format="png")
                screenshot.write_bytes(base64.b64decode(shot["data"]))
                assert await browser.evaluate(CLICK % json.dumps("Save curation"))
                return text
            finally:
                browser.close()

        text = asyncio.run(drive())
        assert "Save curation" in text and "spikemerge_reasoning" in text
        from PIL import Image

        with Image.open(screenshot) as image:
            assert image.size[0] >= 1000 and len(image.convert("RGB").getcolors(2**20) or []) > 50  # not a blank page
        keep = os.environ.get("SPIKEMERGE_REVIEW_SCREENSHOT")
        if keep:
            shutil.copyfile(screenshot, keep)
        saved = out / "review" / "saved_curation.json"
        deadline = time.monotonic() + 30
        while not saved.exists() and time.monotonic() < deadline:
            time.sleep(0.25)
        assert saved.exists(), "the GUI's Save curation button writes into OUT/review"
    finally:
        code = server.stop()
    assert not server.running and code is not None
    outcome = session.collect_review(render=False)  # what the GUI saved: every proposal kept
    assert len(outcome.record.accepted) == len(proposals.merges) and not outcome.record.rejected
    assert folder_digest(analyzer) == digest
    assert not (analyzer / "spikeinterface_gui").exists()


# ------------------------------------------------------------------ learning from the corrections


@pytest.mark.slow
def test_rejudging_after_a_collect_changes_the_verdicts_the_corrections_speak_to_and_only_those(
        review_out, saved_truth_folder, tmp_path):
    """The curator rejects one proposed merge and merges a pair the judge kept apart.

    The same recording, opened from another folder, is judged again with the corrections as
    examples (an example is never judged itself, and these come from another folder, so every
    group is judged): the two corrected groups now read as the curator decided, and every other
    group keeps its decision.
    """
    analyzer, out, library, _ = review_out
    session = CurationSession.open(analyzer, out, progress=False)
    proposed = load_proposals(out)
    rejected = proposed.merges[0]
    kept_apart = next(g for g in proposed.groups if g.decision == "not merge")
    curated = tmp_path / "curated.json"
    curated.write_text(json.dumps(_curation_without(out, drop=0, add=list(kept_apart.unit_ids))))
    outcome = session.collect_review(curated, render=False)
    assert outcome.bad_examples and outcome.good_examples

    twin = tmp_path / "same_recording"
    shutil.copytree(saved_truth_folder / "analyzer", twin)
    fresh = CurationSession.open(twin, tmp_path / "fresh_out", progress=False)
    fresh.find_candidates()
    before = {tuple(map(str, v.unit_ids)): v.decision for v in fresh.judge_group(judge=MetricsJudge())}
    after = {tuple(map(str, v.unit_ids)): v.decision for v in fresh.judge_group(
        judge=MetricsJudge(), good_examples=outcome.good_examples, bad_examples=outcome.bad_examples, rejudge=True)}
    assert set(after) == set(before), "every group is judged again"
    spoken_to = {tuple(sorted(map(str, rejected.unit_ids))): "not merge",
                 tuple(sorted(map(str, kept_apart.unit_ids))): "merge"}
    for units, decision in after.items():
        key = tuple(sorted(units))
        if key in spoken_to:
            assert decision == spoken_to[key], f"group {units}: the correction was not learnt"
        else:
            assert decision == before[units], f"group {units} changed though no correction speaks to it"


def test_the_next_judge_group_of_the_session_learns_from_the_collected_review(review_out, tmp_path):
    """Without examples of its own, judge_group takes the corrections the last collect saved."""
    analyzer, out, library, _ = review_out
    session = CurationSession.open(analyzer, out, progress=False)
    session.find_candidates()
    curated = tmp_path / "curated.json"
    curated.write_text(json.dumps(_curation_without(out, drop=0)))
    outcome = session.collect_review(curated, render=False)
    assert session.review_examples == (outcome.good_examples, outcome.bad_examples) and outcome.bad_examples
    judge = MetricsJudge()
    session.judge_group(judge=judge, rejudge=True)
    assert judge.learned, "the review's corrections reached the judge"


# ------------------------------------------------------------------ bad input


def test_review_without_proposals_or_gui_fails_in_one_line(tmp_path, capsys):
    from spikemerge.cli import main

    empty = tmp_path / "not_an_output"
    empty.mkdir()
    assert main(["review", str(empty), "--no-browser"]) == 1
    assert main(["review", str(empty), "--collect"]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and all(e.startswith("spikemerge: error:") and "curation.json" in e for e in errors)
    assert main(["review", str(tmp_path / "missing")]) == 2  # usage errors, found before anything runs
    assert main(["review", str(empty), "--port", "70000"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and "is not a folder" in errors[0] and "not a TCP port" in errors[1]

    import importlib.util

    from spikemerge.review import gui

    if importlib.util.find_spec("pyqtgraph") is None:  # the desktop extra is not part of the test extra
        with pytest.raises(SpikemergeError, match=r"pip install 'spikemerge\[review-desktop\]'"):
            gui.serve(empty, mode="desktop")


def test_review_on_a_taken_port_fails_before_starting(review_out):
    import socket

    from spikemerge.review import gui

    _, out, _, _ = review_out
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SpikemergeError, match=f"port {port} on 127.0.0.1 is in use"):
            gui.serve(out, port=port, open_browser=False)


def test_session_review_needs_an_analyzer_folder(small_truth, tmp_path):
    session = CurationSession.from_analyzer(small_truth.analyzer, tmp_path / "out", progress=False)
    with pytest.raises(SpikemergeError, match="in memory"):
        session.review()
