"""The chat against a local OpenAI-compatible server that fails the planner with 429s and 500s.

The planner is the real langchain-openai client, built by the chat from ``openai:gpt-4o-mini``
with ``OPENAI_BASE_URL`` pointing at a server on 127.0.0.1; nothing leaves the machine.
"""

from __future__ import annotations

import io
import json
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from rich.console import Console

from spikemerge.chat import chat_main
from tests.helpers import local_http_server, send_body

pytest.importorskip("langchain_openai")

KEY = "sk-chatwire-SECRET1234567890"


def _completion(content: str | None = None, tool: tuple[str, dict] | None = None) -> dict:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool is not None:
        message["tool_calls"] = [{"id": "call_find", "type": "function",
                                  "function": {"name": tool[0], "arguments": json.dumps(tool[1])}}]
    return {"id": "chatcmpl-chat", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool else "stop"}],
            "usage": {"prompt_tokens": 300, "completion_tokens": 20, "total_tokens": 320}}


def _error(status: int, kind: str) -> dict:
    return {"error": {"message": f"injected {status}", "type": kind, "code": None, "param": None}}


SCRIPT = [
    (429, _error(429, "rate_limit_exceeded")),
    (500, _error(500, "server_error")),
    (200, _completion(tool=("find_candidates", {"min_similarity": 0.7}))),
    (503, _error(503, "server_error")),
    (200, _completion(content="I need an analyzer first: load one with /load PATH.")),
]


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.requests.append({"body": body, "auth": self.headers.get("Authorization", "")})
            n = len(self.server.requests)
        status, payload = SCRIPT[n - 1] if n <= len(SCRIPT) else (500, _error(500, "server_error"))
        if status == 200 and body.get("stream"):
            return self._stream(payload)
        send_body(self, status, json.dumps(payload).encode())

    def _stream(self, payload: dict) -> None:
        """The same answer as server-sent events, as the API streams it (the chat streams the planner)."""
        message = payload["choices"][0]["message"]
        delta: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
        if message.get("tool_calls"):
            delta["tool_calls"] = [{"index": 0, **call} for call in message["tool_calls"]]
        base = {k: payload[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
        events = [
            {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
            {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": payload["choices"][0]["finish_reason"]}]},
            {**base, "choices": [], "usage": payload["usage"]},
        ]
        data = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        send_body(self, 200, data.encode(), "text/event-stream")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server():
    with local_http_server(_Handler) as httpd:
        yield httpd


def test_the_chat_rides_out_429s_and_500s_from_the_planner(server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_API_BASE", raising=False)
    lines = iter(["find candidates to merge", "/quit"])
    console = Console(file=io.StringIO(), width=160, record=True, color_system=None)
    code = chat_main(None, out=tmp_path / "out", model="openai:gpt-4o-mini", console=console,
                     ask=lambda prompt: next(lines))
    screen = console.export_text()
    assert code == 0, screen
    assert "I need an analyzer first" in screen and "Traceback" not in screen and KEY not in screen
    assert "find_candidates: Error: no analyzer loaded" in screen
    assert len(server.requests) == 5 and all(r["auth"] == f"Bearer {KEY}" for r in server.requests)
    after_tool = server.requests[3]["body"]["messages"]
    assert [m["role"] for m in after_tool][-2:] == ["assistant", "tool"]  # the tool result went back
    assert after_tool[-1]["tool_call_id"] == "call_find"
