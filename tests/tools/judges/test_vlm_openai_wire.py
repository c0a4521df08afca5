"""The VLM judge through the real langchain-openai client, against a local OpenAI-compatible server.

No provider is reachable from the test machines, so a small HTTP server on 127.0.0.1 answers
the Chat Completions API the way OpenAI and vLLM do. This checks what fake chat models cannot:
the image blocks as they go over the wire, structured output parsed from a real response,
usage metadata from the provider's own field, HTTP status codes classified by the real client
exceptions, and the API key kept out of every error message.
"""

from __future__ import annotations

import base64
import io
import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Callable

import pytest
from PIL import Image

from spikemerge.errors import SpikemergeError
from spikemerge.tools.judges.base import JudgeRequest
from spikemerge.tools.judges.vlm.judge import VLMJudge
from tests.helpers import local_http_server, send_body

pytest.importorskip("langchain_openai")

SECRET = "sk-wire-SECRETSECRET0987654321"
FEATURES = ("crosscorrelograms", "amplitudes", "waveforms", "pca")
Script = Callable[[dict, int], tuple[int, dict]]


def _completion(body: dict, content: str | None = None, tool: tuple[str, dict] | None = None) -> dict:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool is not None:
        message["tool_calls"] = [{"id": "call_1", "type": "function",
                                  "function": {"name": tool[0], "arguments": json.dumps(tool[1])}}]
    return {
        "id": "chatcmpl-wire", "object": "chat.completion", "created": 0, "model": body.get("model", "?"),
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool else "stop"}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 40, "total_tokens": 1040},
    }


def answer(body: dict, decision: dict) -> dict:
    """A report (plain text) or a head decision, in whichever structured form the client asked for."""
    if body.get("response_format"):
        return _completion(body, content=json.dumps(decision))
    if body.get("tools"):
        return _completion(body, tool=(body["tools"][0]["function"]["name"], decision))
    return _completion(body, content="The correlogram has a clear refractory trough within 1.5 ms of zero.")


MERGE = {"decision": "merge", "confidence": 0.9, "merge_unit_ids": ["1", "2"], "reasoning": "shared refractory dip"}


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.requests.append({"path": self.path, "body": body})
            n = len(self.server.requests)
        status, payload = self.server.script(body, n)
        send_body(self, status, json.dumps(payload).encode())

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server():
    """Start a local Chat Completions endpoint; set ``server.script`` to decide each answer."""
    with local_http_server(_Handler) as httpd:
        httpd.script = lambda body, n: (200, answer(body, MERGE))
        yield httpd


def request(tmp_path: Path, group_id: int = 1) -> JudgeRequest:
    images = {}
    for i, feature in enumerate(FEATURES):
        path = tmp_path / f"g{group_id}_{feature}.png"
        Image.new("RGB", (768, 512), (30 * i, 120, 200)).save(path)
        images[feature] = path
    return JudgeRequest(group_id=group_id, unit_ids=(1, 2), images=images,
                        evidence={"template_similarity": 0.95, "ccg_refractory_count": 0})


def judge_for(server, **kwargs) -> VLMJudge:
    settings = {"max_concurrency": 2, "retry_base_delay": 0.01, "max_retries": 2, "call_timeout": 20.0}
    settings.update(kwargs)
    return VLMJudge("openai:gpt-4o", base_url=server.url, api_key=SECRET, **settings)


def _image_parts(body: dict) -> list[dict]:
    return [part for message in body["messages"] if isinstance(message.get("content"), list)
            for part in message["content"] if part.get("type") == "image_url"]


def test_two_stage_sends_png_data_urls_and_parses_the_decision(server, tmp_path):
    judge = judge_for(server)
    (verdict,) = judge.judge_many([request(tmp_path)])
    assert verdict.decision == "merge" and verdict.confidence == pytest.approx(0.9)
    assert [str(u) for u in verdict.merge_unit_ids] == ["1", "2"]
    bodies = [r["body"] for r in server.requests]
    assert len(bodies) == len(FEATURES) + 1 and all(r["path"] == "/v1/chat/completions" for r in server.requests)
    assert all(b["model"] == "gpt-4o" for b in bodies)
    heads = [b for b in bodies if b.get("response_format") or b.get("tools")]
    assert len(heads) == 1
    for body in bodies:
        parts = _image_parts(body)
        assert parts, "every call shows the model at least one figure"
        for part in parts:
            url = part["image_url"]["url"]
            assert url.startswith("data:image/png;base64,")
            with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as image:
                assert image.format == "PNG" and max(image.size) <= 768
    usage = judge.usage_summary()
    assert usage["input_tokens"] == 1000 * len(bodies) and usage["output_tokens"] == 40 * len(bodies)


def test_single_mode_is_one_call_per_group(server, tmp_path):
    judge = judge_for(server, mode="single")
    verdicts = judge.judge_many([request(tmp_path, 1), request(tmp_path, 2)])
    assert [v.decision for v in verdicts] == ["merge", "merge"]
    assert len(server.requests) == 2


def test_rate_limit_is_retried_then_succeeds(server, tmp_path):
    def script(body: dict, n: int) -> tuple[int, dict]:
        if n == 1:
            return 429, {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}
        return 200, answer(body, MERGE)

    server.script = script
    (verdict,) = judge_for(server, max_concurrency=1).judge_many([request(tmp_path)])
    assert verdict.decision == "merge"
    assert len(server.requests) == len(FEATURES) + 2  # one call sent twice


def test_server_errors_that_persist_give_an_error_verdict_not_a_no(server, tmp_path):
    server.script = lambda body, n: (503, {"error": {"message": "overloaded", "type": "server_error"}})
    (verdict,) = judge_for(server, max_retries=1).judge_many([request(tmp_path)])
    assert verdict.decision == "error" and SECRET not in verdict.reasoning


def test_authentication_failure_stops_with_a_clear_message_and_no_key(server, tmp_path):
    server.script = lambda body, n: (401, {"error": {"message": f"Incorrect API key provided: {SECRET}",
                                                     "type": "invalid_request_error", "code": "invalid_api_key"}})
    with pytest.raises(SpikemergeError) as info:
        judge_for(server).judge_many([request(tmp_path)])
    message = str(info.value)
    assert SECRET not in message and "\n" not in message
    assert len(server.requests) <= 2  # not retried call after call
