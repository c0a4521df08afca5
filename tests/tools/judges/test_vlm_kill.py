"""A VLM judging run killed with SIGKILL, rerun in the same folder, pays no call twice.

Both runs are separate processes using only the public session API
(``CurationSession.open`` -> ``find_candidates`` -> ``judge_group(judge=VLMJudge(model))``)
with a fake vision model that logs every call it answers to a file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from spikemerge.tools.outputs import read_jsonl

TESTS = Path(__file__).resolve().parents[2]

RUN = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {tests!r})
    from fakes import FakeChatModel
    import spikemerge as sm
    from spikemerge.tools.judges.vlm.judge import VLMJudge

    log = open({calls!r}, "a")
    def respond(messages, kwargs):
        log.write("head\\n" if kwargs.get("tools") else "report\\n")
        log.flush()
        if kwargs.get("tools"):
            return {{"decision": "not merge", "confidence": 0.7, "merge_groups": [], "reasoning": "flat CCG"}}
        return "The correlogram is flat at zero lag."

    model = FakeChatModel(responder=respond, latency={latency}, model_name="fake-vlm")
    session = sm.CurationSession.open({analyzer!r}, {out!r}, progress=False)
    session.find_candidates(min_similarity=0.5)
    session.render_group()
    print("RENDERED", flush=True)
    verdicts = session.judge_group(judge=VLMJudge(model, max_concurrency=1, retry_base_delay=0.001))
    print(json.dumps({{"groups": len(session.groups), "decisions": [v.decision for v in session.verdicts.values()]}}))
""")


def _script(analyzer: Path, out: Path, calls: Path, latency: float) -> str:
    return RUN.format(tests=str(TESTS), calls=str(calls), analyzer=str(analyzer), out=str(out), latency=latency)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}


@pytest.mark.slow
def test_sigkill_then_rerun_pays_no_call_twice_and_judges_every_group(analyzer_folder, tmp_path):
    out, calls = tmp_path / "out", tmp_path / "calls.log"
    journal = out / "verdicts.jsonl"
    first = subprocess.Popen([sys.executable, "-c", _script(analyzer_folder, out, calls, 0.25)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=tmp_path)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and first.poll() is None and len(read_jsonl(journal)) < 1:
        time.sleep(0.02)
    assert first.poll() is None, first.stderr.read()[-2000:]  # still judging: kill it mid-run
    os.kill(first.pid, signal.SIGKILL)
    first.wait(30)
    journaled = {tuple(r["verdict"]["unit_ids"]) for r in read_jsonl(journal)}
    paid_before = calls.read_text().count("\n")
    assert journaled and paid_before >= 5 * len(journaled)

    second = subprocess.run([sys.executable, "-c", _script(analyzer_folder, out, calls, 0.0)],
                            capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    result = json.loads(second.stdout.strip().splitlines()[-1])
    assert result["groups"] > len(journaled)  # the kill came before the end
    assert result["decisions"] == ["not merge"] * result["groups"]  # every group judged, none an error
    paid_after = calls.read_text().count("\n") - paid_before
    assert paid_after == 5 * (result["groups"] - len(journaled))  # 4 reports + 1 head per group not journaled
    decisions = (out / "decisions.csv").read_text().splitlines()
    assert len(decisions) == 1 + result["groups"]
