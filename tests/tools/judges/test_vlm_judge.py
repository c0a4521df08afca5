"""The VLM judge with fake chat models: decisions, retries, failures, few-shot, keys, streaming."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from fakes import FakeChatModel, http_error, timeout_error
from spikemerge.errors import SpikemergeError
from spikemerge.policies import get_policy
from spikemerge.tools.judges.vlm import judge as vlm_judge
from spikemerge.tools.judges import Judge
from spikemerge.tools.judges.base import Example, JudgeRequest, Verdict
from spikemerge.tools.judges.vlm.cost import estimate_cost, price_of
from spikemerge.tools.judges.vlm.images import fit_to_tiles, openai_image_tokens
from spikemerge.tools.judges.vlm.judge import VLMJudge
from spikemerge.tools.judges.vlm.messages import HeadDecision

FEATURES = ("crosscorrelograms", "amplitudes", "waveforms", "pca")
SECRET = "sk-test-SECRETSECRET1234567890"


# -- helpers ---------------------------------------------------------------------------------


def make_figures(folder: Path, tag: str, size: tuple[int, int] = (800, 600)) -> dict[str, Path]:
    """Four tiny distinct PNGs standing in for the renderer's figures."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for i, feature in enumerate(FEATURES):
        path = folder / f"{tag}_{feature}.png"
        Image.new("RGB", size, (40 * i, 100, (hash(tag) % 200))).save(path)
        paths[feature] = path
    return paths


def make_request(tmp_path: Path, group_id: int, unit_ids: tuple = (1, 2)) -> JudgeRequest:
    return JudgeRequest(
        group_id=group_id,
        unit_ids=unit_ids,
        images=make_figures(tmp_path / "figs", f"g{group_id}"),
        evidence={"template_similarity": 0.93, "ccg_refractory_ratio": 0.12, "amplitude_overlap": 0.8},
    )


def text_of(messages) -> str:
    parts = []
    for message in messages:
        for block in message.content if isinstance(message.content, list) else [message.content]:
            parts.append(block if isinstance(block, str) else block.get("text", ""))
    return "\n".join(parts)


def images_of(messages) -> list[dict]:
    return [b for m in messages if isinstance(m.content, list) for b in m.content if b.get("type") == "image"]


def is_head(kwargs) -> bool:
    return bool(kwargs.get("tools"))


def group_of(messages) -> int:
    text = text_of(messages)
    found = re.search(r"## Group (\d+):", text) or re.search(r"\[group (\d+)\]", text)
    return int(found.group(1)) if found else -1


def merge_all(unit_ids=("1", "2"), confidence=0.9):
    return {"decision": "merge", "confidence": confidence, "merge_unit_ids": list(unit_ids), "reasoning": "refractory dip"}


def default_responder(decision=None):
    def respond(messages, kwargs):
        if is_head(kwargs):
            return decision or merge_all()
        return "The CCG shows a clear refractory trough."

    return respond


def judge_with(model: FakeChatModel, **kwargs) -> VLMJudge:
    kwargs.setdefault("retry_base_delay", 0.001)
    return VLMJudge(model, **kwargs)


# -- decisions -------------------------------------------------------------------------------


def test_two_stage_success_reports_usage_and_protocol(tmp_path):
    model = FakeChatModel(responder=default_responder())
    judge = judge_with(model)
    requests = [make_request(tmp_path, g) for g in (3, 1, 2)]

    verdicts = judge.judge_many(requests)

    assert isinstance(judge, Judge)
    assert [v.group_id for v in verdicts] == [3, 1, 2]
    for v in verdicts:
        assert v.decision == "merge" and v.merge_unit_ids == [1, 2] and v.confidence == pytest.approx(0.9)
        assert set(v.reports) == set(FEATURES) and all("refractory" in t for t in v.reports.values())
        assert v.usage["calls"] == 5 and v.usage["input_tokens"] == 5000
        assert v.judge == "vlm" and v.model == "fake-vlm"
    summary = judge.usage_summary()
    assert summary["calls"] == 15 and summary["output_tokens"] == 15 * 50 and len(summary["records"]) == 15
    # every report call got one standard image block: base64 PNG fitted to one 512-px tile
    report_calls = [m for m, kw in model.calls if not is_head(kw)]
    for messages in report_calls:
        (block,) = images_of(messages)
        assert block["mime_type"] == "image/png"
        with Image.open(io.BytesIO(base64.b64decode(block["base64"]))) as img:
            assert img.format == "PNG" and max(img.size) <= 512


def test_a_verdict_counts_only_its_own_run(tmp_path):
    judge = judge_with(FakeChatModel(responder=default_responder()))
    request = make_request(tmp_path, 0)
    first = judge.judge_many([request])[0]
    again = judge.judge_many([request])[0]  # re-judged by the same judge object
    assert first.usage["calls"] == again.usage["calls"] == 5
    assert judge.usage_summary()["calls"] == 10  # the judge's total still covers both runs


def test_merge_of_a_subset_of_units(tmp_path):
    model = FakeChatModel(responder=default_responder(merge_all(("1", "3"), 0.7)))
    (verdict,) = judge_with(model).judge_many([make_request(tmp_path, 0, (1, 2, 3))])
    assert verdict.decision == "merge" and verdict.merge_unit_ids == [1, 3]


def test_not_merge_has_no_units(tmp_path):
    decision = {"decision": "not merge", "confidence": 0.8, "merge_unit_ids": ["1", "2"], "reasoning": "flat CCG"}
    (verdict,) = judge_with(FakeChatModel(responder=default_responder(decision))).judge_many([make_request(tmp_path, 0)])
    assert verdict.decision == "not merge" and verdict.merge_unit_ids == []


def test_single_mode_one_call_with_all_figures(tmp_path):
    model = FakeChatModel(responder=default_responder())
    verdicts = judge_with(model, mode="single").judge_many([make_request(tmp_path, g) for g in range(3)])
    assert [v.decision for v in verdicts] == ["merge"] * 3
    assert len(model.calls) == 3 and all(is_head(kw) for _, kw in model.calls)
    assert all(len(images_of(m)) == 4 for m, _ in model.calls)
    assert all(v.reports == {} and v.usage["calls"] == 1 for v in verdicts)


def test_policy_text_reaches_the_head_prompt(tmp_path):
    model = FakeChatModel(responder=default_responder())
    (verdict,) = judge_with(model).judge_many([make_request(tmp_path, 0)], policy="conservative")
    head_text = text_of(next(m for m, kw in model.calls if is_head(kw)))
    assert get_policy("conservative").description in head_text
    assert verdict.policy == "conservative"


# -- faults ----------------------------------------------------------------------------------

FAULTS = {
    "429": lambda: http_error(429, "Rate limit reached"),
    "timeout": timeout_error,
    "500": lambda: http_error(500, "server error"),
    "malformed": lambda: {"decision": "maybe", "confidence": 0.5},
    "unknown unit": lambda: merge_all(("1", "99")),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_retryable_fault_recovers(tmp_path, fault):
    seen = {"head": 0}

    def respond(messages, kwargs):
        if not is_head(kwargs):
            return "report"
        seen["head"] += 1
        return FAULTS[fault]() if seen["head"] == 1 else merge_all()

    judge = judge_with(FakeChatModel(responder=respond))
    (verdict,) = judge.judge_many([make_request(tmp_path, 0)])
    assert verdict.decision == "merge"
    assert seen["head"] == 2
    assert any(r["stage"] == "head" and r["attempt"] == 1 for r in judge.usage_summary()["records"])


def test_report_call_faults_are_retried_too(tmp_path):
    seen = {"n": 0}

    def respond(messages, kwargs):
        if is_head(kwargs):
            return merge_all()
        seen["n"] += 1
        return http_error(503) if seen["n"] <= 2 else ""  if seen["n"] == 3 else "report"

    (verdict,) = judge_with(FakeChatModel(responder=respond)).judge_many([make_request(tmp_path, 0)])
    assert verdict.decision == "merge" and all(verdict.reports.values())


def test_retries_exhausted_gives_error_verdict_not_not_merge(tmp_path):
    def respond(messages, kwargs):
        return http_error(503, "overloaded") if is_head(kwargs) else "report"

    model = FakeChatModel(responder=respond)
    verdicts = judge_with(model, max_retries=2).judge_many([make_request(tmp_path, 0), make_request(tmp_path, 1)])
    for v in verdicts:
        assert v.decision == "error" and v.merge_unit_ids == []
        assert "503" in v.reasoning and "3 attempts" in v.reasoning
    assert sum(is_head(kw) for _, kw in model.calls) == 6


@pytest.mark.parametrize("status", [401, 403, 404, 400])
def test_auth_not_found_or_rejections_in_a_row_stop_the_run(tmp_path, status):
    def respond(messages, kwargs):
        return http_error(status, f"Incorrect API key provided: {SECRET}")

    model = FakeChatModel(responder=respond)
    delivered: list[Verdict] = []
    with pytest.raises(SpikemergeError) as info:
        judge_with(model, max_concurrency=2).judge_many(
            [make_request(tmp_path, g) for g in range(10)], on_verdict=delivered.append
        )
    message = str(info.value)
    assert SECRET not in message and "\n" not in message
    expected = {401: "refused the API key", 403: "refused the API key", 404: "rejected the request",
                400: "rejected 5 requests in a row"}[status]
    assert expected in message
    assert len(model.calls) < 10 * 5  # stopped early, not one failure per call
    assert len(delivered) < 10  # a 400 fails groups only until the breaker trips


def test_one_groups_bad_request_fails_that_group_only(tmp_path):
    """An image too large for one group is that group's fault: it errors, the others are judged."""

    def respond(messages, kwargs):
        if is_head(kwargs) and group_of(messages) == 2:
            return http_error(400, "Invalid image: image is too large")
        return merge_all() if is_head(kwargs) else "report"

    model = FakeChatModel(responder=respond)
    verdicts = judge_with(model, max_concurrency=2).judge_many([make_request(tmp_path, g) for g in range(6)])
    by_group = {v.group_id: v for v in verdicts}
    assert set(by_group) == set(range(6))
    assert by_group[2].decision == "error" and "400" in by_group[2].reasoning and "rejected" in by_group[2].reasoning
    assert all(by_group[g].decision == "merge" for g in (0, 1, 3, 4, 5))
    rejected = [kw for m, kw in model.calls if is_head(kw) and group_of(m) == 2]
    assert len(rejected) == 1  # a rejection is not retried


def test_the_head_answer_is_a_partition_with_several_merges(tmp_path):
    decision = {"decision": "merge", "confidence": 0.85, "merge_groups": [["1", "2"], ["3", "4"]],
                "reasoning": "two drifting neurons"}
    request = make_request(tmp_path, 0, unit_ids=(1, 2, 3, 4, 5))
    (verdict,) = judge_with(FakeChatModel(responder=default_responder(decision))).judge_many([request])
    assert verdict.decision == "merge" and verdict.merge_groups == [[1, 2], [3, 4]]
    assert verdict.merge_unit_ids == [1, 2, 3, 4] and verdict.blocks()[-1] == {"5"}


def test_abstain_merges_nothing_and_is_not_not_merge(tmp_path):
    decision = {"decision": "abstain", "confidence": 0.6, "merge_groups": [["1", "2"]], "reasoning": "12 spikes"}
    (verdict,) = judge_with(FakeChatModel(responder=default_responder(decision))).judge_many([make_request(tmp_path, 0)])
    assert verdict.decision == "abstain" and verdict.merge_groups == [] and verdict.merge_unit_ids == []


def test_parts_that_overlap_are_malformed_and_retried(tmp_path):
    answers = iter([
        {"decision": "merge", "confidence": 0.9, "merge_groups": [["1", "2"], ["2", "3"]], "reasoning": "chain"},
        {"decision": "merge", "confidence": 0.9, "merge_groups": [["1", "2", "3"]], "reasoning": "one neuron"},
    ])

    def respond(messages, kwargs):
        return next(answers) if is_head(kwargs) else "report"

    request = make_request(tmp_path, 0, unit_ids=(1, 2, 3))
    (verdict,) = judge_with(FakeChatModel(responder=respond)).judge_many([request])
    assert verdict.merge_groups == [[1, 2, 3]]


def test_out_of_quota_stops_the_run_instead_of_retrying(tmp_path):
    def respond(messages, kwargs):
        error = http_error(429, "You exceeded your current quota, please check your plan and billing details.")
        error.code = "insufficient_quota"  # as the OpenAI client sets it from the error body
        return error

    model = FakeChatModel(responder=respond)
    with pytest.raises(SpikemergeError, match="out of quota"):
        judge_with(model, max_concurrency=1).judge_many([make_request(tmp_path, g) for g in range(3)])
    assert len(model.calls) == 1  # no retry, and no call starts after the run is stopped


# -- few-shot --------------------------------------------------------------------------------


def test_few_shot_examples_reach_the_head_and_are_never_judged(tmp_path):
    good = Example("drift split", "good", (7, 8), make_figures(tmp_path / "ex", "good"), {"ccg_refractory_ratio": 0.1}, "drift")
    bad = Example("neighbours", "bad", (4, 5), make_figures(tmp_path / "ex", "bad"), {}, "two cells")
    model = FakeChatModel(responder=default_responder())
    requests = [make_request(tmp_path, 0), make_request(tmp_path, 1, (8, 7))]

    verdicts = judge_with(model).judge_many(requests, examples=[good, bad])

    assert verdicts[0].decision == "merge"
    assert verdicts[1].decision == "error" and "example" in verdicts[1].reasoning
    head_calls = [m for m, kw in model.calls if is_head(kw)]
    assert len(head_calls) == 1 and len(model.calls) == 5  # the example group cost nothing
    head = head_calls[0]
    assert len(images_of(head)) == 3  # one overview per example + the group's overview
    text = text_of(head)
    assert "drift split" in text and "neighbours" in text and "two cells" in text
    assert text.index("drift split") < text.index("## Group 0:")


def test_few_shot_in_single_mode(tmp_path):
    good = Example("dup", "good", (7, 8), make_figures(tmp_path / "ex", "dup"))
    model = FakeChatModel(responder=default_responder())
    judge_with(model, mode="single").judge_many([make_request(tmp_path, 0)], examples=[good])
    (messages, _), = model.calls
    assert len(images_of(messages)) == 5 and "dup" in text_of(messages)


# -- streaming, cancellation, loops ----------------------------------------------------------


def test_verdicts_stream_as_groups_finish(tmp_path):
    model = FakeChatModel(responder=default_responder())
    calls_at_delivery = []
    judge = judge_with(model, max_concurrency=1)
    verdicts = judge.judge_many(
        [make_request(tmp_path, g) for g in range(3)], on_verdict=lambda v: calls_at_delivery.append(len(model.calls))
    )
    # each group is delivered as soon as its head answers (at most one more call slips in)
    assert calls_at_delivery[0] <= 6 and calls_at_delivery[1] <= 11 and calls_at_delivery[2] == 15
    assert [v.group_id for v in verdicts] == [0, 1, 2]


def test_interrupt_cancels_pending_calls_and_keeps_delivered(tmp_path):
    model = FakeChatModel(responder=default_responder(), latency=0.01)
    delivered = []

    def on_verdict(v):
        delivered.append(v)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        judge_with(model, max_concurrency=2).judge_many([make_request(tmp_path, g) for g in range(20)], on_verdict=on_verdict)
    assert len(delivered) == 1
    calls = len(model.calls)
    asyncio.run(asyncio.sleep(0.05))
    assert len(model.calls) == calls < 100  # nothing kept running after the interrupt


def test_interrupt_inside_a_running_loop_stops_the_calls(tmp_path):
    """A notebook runs a loop: judge_many judges in a thread, and Ctrl-C must reach that thread."""
    model = FakeChatModel(responder=default_responder(), latency=0.02)
    judge = judge_with(model, max_concurrency=2)
    requests = [make_request(tmp_path, g) for g in range(30)]

    async def cell():
        main = threading.main_thread().ident  # Ctrl-C while judge_many blocks, once calls are flowing

        def press_ctrl_c() -> None:
            deadline = time.monotonic() + 30
            while not model.calls and time.monotonic() < deadline:  # a loaded machine prepares images slowly
                time.sleep(0.01)
            time.sleep(0.1)
            signal.pthread_kill(main, signal.SIGINT)

        threading.Thread(target=press_ctrl_c, daemon=True).start()
        return judge.judge_many(requests)

    loop = asyncio.new_event_loop()  # like a kernel's loop: no asyncio SIGINT handler
    # a kernel turns Ctrl-C into KeyboardInterrupt; a process started in the background by a
    # non-interactive shell (a CI script's `&`) inherits SIGINT ignored, and Python keeps it so
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(cell())
    finally:
        loop.close()
        signal.signal(signal.SIGINT, previous)
    calls = len(model.calls)
    time.sleep(0.2)
    assert 0 < len(model.calls) == calls < 30 * 5  # nothing kept running after the interrupt


def test_works_inside_a_running_loop(tmp_path):
    judge = judge_with(FakeChatModel(responder=default_responder()))

    async def main():
        return judge.judge_many([make_request(tmp_path, 0)])

    (verdict,) = asyncio.run(main())
    assert verdict.decision == "merge"


def test_missing_figures_is_an_error_verdict(tmp_path):
    model = FakeChatModel(responder=default_responder())
    (verdict,) = judge_with(model).judge_many([JudgeRequest(group_id=5, unit_ids=(1, 2))])
    assert verdict.decision == "error" and model.calls == []


# -- models, keys, provenance ----------------------------------------------------------------


@pytest.fixture
def no_keys(monkeypatch, tmp_path):
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env to find


@pytest.mark.parametrize(
    "model, env_var",
    [("openai:gpt-4o", "OPENAI_API_KEY"), ("anthropic:claude-sonnet-4-5", "ANTHROPIC_API_KEY"), ("gemini-2.5-flash", "GOOGLE_API_KEY")],
)
def test_missing_key_is_a_one_line_error_naming_the_variable(no_keys, model, env_var):
    with pytest.raises(SpikemergeError, match=env_var) as info:
        VLMJudge(model)
    assert "\n" not in str(info.value)


def test_key_from_dotenv_is_used(no_keys, tmp_path):
    (tmp_path / ".env").write_text(f"OPENAI_API_KEY={SECRET}\n")
    judge = VLMJudge("openai:gpt-4o")
    assert judge.model == "openai:gpt-4o"
    assert os.environ["OPENAI_API_KEY"] == SECRET
    os.environ.pop("OPENAI_API_KEY")


def test_text_only_model_is_refused(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with pytest.raises(SpikemergeError, match="does not take images"):
        VLMJudge("openai:gpt-3.5-turbo")


def test_keys_never_appear_in_outputs(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    explicit = "sk-explicit-ABCDEFGHIJKLMNOP"
    real = VLMJudge("openai:gpt-4o", api_key=explicit, temperature=0)
    for text in (repr(real), real.fingerprint(), str(real.usage_summary()), str(vars(real))):
        assert SECRET not in text and explicit not in text

    def respond(messages, kwargs):
        return http_error(500, f"upstream said key={SECRET}") if is_head(kwargs) else f"report mentioning {SECRET}"

    (verdict,) = judge_with(FakeChatModel(responder=respond), max_retries=1).judge_many([make_request(tmp_path, 0)])
    assert verdict.decision == "error"
    assert SECRET not in str(verdict.to_dict())


def test_fingerprint_tracks_model_mode_and_settings(monkeypatch):
    model = FakeChatModel(responder=default_responder())
    a = VLMJudge(model)
    assert a.fingerprint() == VLMJudge(model).fingerprint()
    assert a.fingerprint() != VLMJudge(model, mode="single").fingerprint()
    assert a.fingerprint() != VLMJudge(model, image_long_side=1024).fingerprint()
    assert a.fingerprint() == VLMJudge(model, image_workers=1).fingerprint()  # threads change nothing sent
    assert len(a.prompt_hash()) == 64
    # what the model is shown but is not a prompt file also counts: the answer schema, the image format
    before = (a.prompt_hash(), a.fingerprint())
    schema = HeadDecision.model_json_schema()
    schema["properties"]["confidence"]["description"] = "percent sure"
    monkeypatch.setattr(HeadDecision, "model_json_schema", classmethod(lambda cls, **kw: schema))
    assert a.prompt_hash() != before[0]
    monkeypatch.undo()
    monkeypatch.setattr(vlm_judge, "IMAGE_FORMAT", "jpeg")
    assert a.prompt_hash() == before[0] and a.fingerprint() != before[1]


# -- images and cost -------------------------------------------------------------------------


def test_openai_image_token_rule_and_tile_fitting():
    assert openai_image_tokens(1024, 1024) == 765
    assert openai_image_tokens(2048, 4096) == 1105
    assert openai_image_tokens(2400, 1800) == 765
    assert fit_to_tiles(800, 600, 768) == (512, 384)
    assert openai_image_tokens(*fit_to_tiles(800, 600, 768)) == 255
    assert fit_to_tiles(300, 200, 768) == (300, 200)  # never upscaled


def test_prices_by_longest_prefix():
    assert price_of("openai:gpt-4o-mini-2024-07-18") == (0.15, 0.60)
    assert price_of("openai:gpt-4o") == (2.50, 10.00)
    assert price_of("ollama:llava:13b") == (0.0, 0.0)
    assert estimate_cost("fake-vlm", 10, 10) is None
    assert estimate_cost("openai:gpt-4o", 1_000_000, 0) == pytest.approx(2.5)


# -- live ------------------------------------------------------------------------------------


@pytest.mark.live
@pytest.mark.skipif(not os.environ.get("OPENAI_API_KEY"), reason="needs OPENAI_API_KEY")
def test_live_openai_judges_one_group(tmp_path):
    judge = VLMJudge("openai:gpt-4o-mini", mode="single", max_retries=1)
    (verdict,) = judge.judge_many([make_request(tmp_path, 0)])
    assert verdict.decision in ("merge", "not merge")
    assert judge.usage_summary()["input_tokens"] > 0
