"""A person's view: drive the chat in tmux with slash commands and no planner key, read the screen.

The second test judges with the vision judge against a slow local OpenAI-compatible server
and presses Ctrl-C in the middle of ``/judge``: the command stops, the chat goes on.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from .test_resume import tiny_analyzer_folder  # noqa: F401  (the fixture)

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "tmux_chat_check.sh"
needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
DECISION = {"decision": "merge", "confidence": 0.8, "merge_groups": [], "reasoning": "refractory trough in the CCG"}


def _run(analyzer: Path, work: Path, **env: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(["bash", str(SCRIPT), str(analyzer), str(work), sys.executable], capture_output=True,
                          text=True, timeout=420, env={**os.environ, **env})


@needs_tmux
@pytest.mark.slow
def test_chat_in_tmux(tiny_analyzer_folder, tmp_path):  # noqa: F811
    done = _run(tiny_analyzer_folder, tmp_path)
    screen = done.stdout
    assert done.returncode == 0, done.stderr[-3000:]
    assert "no API key for anthropic:claude-sonnet-4-5" in screen and "slash commands work" in screen
    assert "candidate groups" in screen and "verdicts" in screen and "decisions" in screen
    assert "must be between 0 and 1" in screen and "nothing to undo" in screen
    assert "Apply these merges? [y/N]" in screen and "nothing changed" in screen
    assert "CHAT-EXITED" in screen and "Traceback" not in screen
    assert not (tmp_path / "out" / "curation.json").exists()


class _SlowVLM(BaseHTTPRequestHandler):
    """Chat Completions answered after a pause: reports as text, decisions as structured JSON."""

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests += 1
        time.sleep(self.server.delay)
        if body.get("response_format"):
            message = {"role": "assistant", "content": json.dumps(DECISION)}
        elif body.get("tools"):
            message = {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {
                "name": body["tools"][0]["function"]["name"], "arguments": json.dumps(DECISION)}}]}
        else:
            message = {"role": "assistant", "content": "The correlogram is flat at zero lag."}
        payload = {"id": "x", "object": "chat.completion", "created": 0, "model": "gpt-4o",
                   "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 900, "completion_tokens": 30, "total_tokens": 930}}
        data = json.dumps(payload).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client went away (Ctrl-C)
            pass

    def log_message(self, *args: Any) -> None:
        pass


@needs_tmux
@pytest.mark.slow
def test_ctrl_c_in_the_middle_of_judge_keeps_the_chat(tiny_analyzer_folder, tmp_path):  # noqa: F811
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _SlowVLM)
    httpd.requests, httpd.delay = 0, 1.5
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        done = _run(tiny_analyzer_folder, tmp_path, VLM_URL=f"http://127.0.0.1:{httpd.server_address[1]}/v1")
    finally:
        httpd.shutdown()
        httpd.server_close()
    screen = done.stdout
    assert done.returncode == 0, done.stderr[-3000:]
    cancelled = screen.split("--- after Ctrl-C in /judge")[1].split("-----")[0]
    assert "/judge cancelled (Ctrl-C)" in cancelled and "you>" in cancelled
    assert "verdicts" in screen and "verdict: merge (0.80)" in screen  # judged after the interrupt
    assert "Apply these merges? [y/N]" in screen and "nothing changed" in screen
    assert "CHAT-EXITED" in screen and "Traceback" not in screen
