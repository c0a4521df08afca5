"""Benchmarks of the VLM judge, offline: wall time under concurrency, image tokens per group.

(1) Wall time for N groups with a fake model of fixed latency at a given concurrency, against
    the ideal bound calls / concurrency x latency (goal: at most 1.2x).
(2) Image tokens per group under OpenAI's published high-detail rule (85 + 170 per 512-px tile
    after fitting 2048 px and a 768-px shortest side), for the images the judge actually sends,
    against four full-resolution 300 dpi JPEGs sent separately plus a concatenated one
    (goal: at most 1/3).

Usage::

    python scripts/bench_vlm.py [--groups 100] [--latency 0.5] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import base64
import io
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fakes import FakeChatModel  # noqa: E402

from spikemerge.tools.verdict import JudgeRequest  # noqa: E402
from spikemerge.tools.vlm_images import openai_image_tokens  # noqa: E402
from spikemerge.tools.vlm_judge import VLMJudge  # noqa: E402

FEATURES = ("crosscorrelograms", "amplitudes", "waveforms", "pca")
DECISION = {"decision": "merge", "confidence": 0.8, "merge_unit_ids": ["1", "2"], "reasoning": "dip"}


def figure(path: Path, size: tuple[int, int], seed: int) -> None:
    """A line-art stand-in for a rendered figure (axes and a curve), saved as PNG."""
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    w, h = size
    draw.rectangle([w * 0.1, h * 0.1, w * 0.95, h * 0.9], outline="black", width=2)
    points = [(w * 0.1 + i * w * 0.0085, h * 0.5 + ((i * 37 + seed * 11) % 90 - 45) * h / 300) for i in range(100)]
    draw.line(points, fill=(30, 90, 200), width=2)
    draw.text((w * 0.4, h * 0.02), f"group {seed}", fill="black")
    img.save(path)


def make_requests(folder: Path, groups: int, size: tuple[int, int]) -> list[JudgeRequest]:
    requests = []
    for g in range(groups):
        images = {}
        for feature in FEATURES:
            path = folder / f"g{g}_{feature}.png"
            figure(path, size, g)
            images[feature] = path
        requests.append(JudgeRequest(group_id=g, unit_ids=(1, 2), images=images, evidence={"template_similarity": 0.9}))
    return requests


def responder(messages, kwargs):
    return DECISION if kwargs.get("tools") else "A refractory trough within 1 ms of zero."


def bench_wall_time(folder: Path, groups: int, latency: float, concurrency: int, mode: str) -> None:
    requests = make_requests(folder, groups, (800, 600))
    # cold: figures are read, resized and encoded during the run; warm: encodings are cached,
    # so the second pass measures scheduling and LangChain overhead alone
    for state in ("cold", "warm"):
        model = FakeChatModel(responder=responder, latency=latency)
        judge = VLMJudge(model, mode=mode, max_concurrency=concurrency)
        started, cpu = time.perf_counter(), time.process_time()
        verdicts = judge.judge_many(requests)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        calls = len(model.calls)
        ideal = calls / concurrency * latency
        assert all(v.decision == "merge" for v in verdicts)
        print(
            f"[wall] mode={mode} ({state} images) groups={groups} calls={calls} concurrency={concurrency} "
            f"latency={latency}s: wall {wall:.2f} s, ideal {ideal:.2f} s, ratio {wall / ideal:.3f} "
            f"(goal <= 1.2); process CPU {cpu:.2f} s"
        )


def sent_image_tokens(model: FakeChatModel) -> int:
    total = 0
    for messages, _ in model.calls:
        for message in messages:
            for block in message.content if isinstance(message.content, list) else []:
                if block.get("type") == "image":
                    with Image.open(io.BytesIO(base64.b64decode(block["base64"]))) as img:
                        total += openai_image_tokens(*img.size)
    return total


def bench_image_tokens(folder: Path, source_size: tuple[int, int]) -> None:
    per_jpeg = openai_image_tokens(2400, 1800)
    concatenated = openai_image_tokens(2 * 2400, 2 * 1800)
    baseline = 4 * per_jpeg + concatenated
    print(
        f"[tokens] baseline: 4 x 2400x1800 JPEG ({per_jpeg} each) + 4800x3600 concatenated ({concatenated}) "
        f"= {baseline} image tokens per group"
    )
    requests = make_requests(folder, 1, source_size)
    for mode in ("two_stage", "single"):
        model = FakeChatModel(responder=responder)
        VLMJudge(model, mode=mode).judge_many(requests)
        tokens = sent_image_tokens(model)
        print(
            f"[tokens] spikemerge {mode} (figures {source_size[0]}x{source_size[1]}, image_long_side=768): "
            f"{tokens} image tokens per group = {tokens / baseline:.3f} of baseline (goal <= 0.333)"
        )


def main() -> None:
    import os

    print(f"[host] cpus={os.cpu_count()} load average={os.getloadavg()[0]:.2f}")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for mode in ("two_stage", "single"):
            sub = folder / mode
            sub.mkdir()
            bench_wall_time(sub, args.groups, args.latency, args.concurrency, mode)
        for size in ((800, 600), (2400, 1800)):
            sub = folder / f"tokens_{size[0]}"
            sub.mkdir()
            bench_image_tokens(sub, size)


if __name__ == "__main__":
    main()
