"""Benchmarks of the VLM judge, offline: wall time under concurrency, image tokens per group.

(1) Wall time for N groups with a fake model of fixed latency at a given concurrency, against
    the ideal bound calls / concurrency x latency (goal: at most 1.2x), with the process CPU
    time. "cold": the figures are read, fitted and encoded during the run (what a user sees);
    "warm": a second run over the same files, encodings cached.
(2) Image tokens per group under OpenAI's published high-detail rule (85 + 170 per 512-px tile
    after fitting 2048 px and a 768-px shortest side), for the images the judge actually sends,
    against four full-resolution 300 dpi JPEGs sent separately plus a concatenated one
    (goal: at most 1/3), at the renderer's default figure size and at 2400 x 1800.

The figures are stand-ins made like the renderer's (``render_draw.figure_to_png``): line art at
the renderer's default size, anti-aliased, a 64-colour palette PNG. The machine may be shared:
every row prints the load average (1/5/15 min), and before/after comparisons belong in one run.

Usage::

    python scripts/bench_vlm.py [--groups 100] [--latency 0.5] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import base64
import io
import math
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fakes import FakeChatModel  # noqa: E402

from spikemerge.tools.render.draw import RenderSettings  # noqa: E402
from spikemerge.tools.judges.base import JudgeRequest  # noqa: E402
from spikemerge.tools.judges.vlm.images import openai_image_tokens  # noqa: E402
from spikemerge.tools.judges.vlm.judge import VLMJudge  # noqa: E402

FEATURES = ("crosscorrelograms", "amplitudes", "waveforms", "pca")
DECISION = {"decision": "merge", "confidence": 0.8, "merge_unit_ids": ["1", "2"], "reasoning": "dip"}
COLORS = ((31, 119, 180), (214, 39, 40), (44, 160, 44))
SUPERSAMPLE = 2


def _axes(draw: ImageDraw.ImageDraw, box: tuple[float, float, float, float], title: str, font, color) -> None:
    """A matplotlib-like axes frame: left/bottom spines, ticks with labels, a title."""
    x0, y0, x1, y1 = box
    s = SUPERSAMPLE
    draw.line([(x0, y0), (x0, y1), (x1, y1)], fill="black", width=s)
    for i in range(5):
        x = x0 + (x1 - x0) * i / 4
        y = y1 - (y1 - y0) * i / 4
        draw.line([(x, y1), (x, y1 + 4 * s)], fill="black", width=s)
        draw.line([(x0 - 4 * s, y), (x0, y)], fill="black", width=s)
        draw.text((x - 8 * s, y1 + 6 * s), f"{(i - 2) * 20}", fill="black", font=font)
        draw.text((x0 - 22 * s, y - 5 * s), f"{i}", fill="black", font=font)
    draw.text((x0 + (x1 - x0) * 0.3, y0 - 16 * s), title, fill=color, font=font)


def figure(path: Path, feature: str, seed: int, size: tuple[int, int] = (768, 512), colors: int = 64) -> None:
    """A stand-in for one rendered figure, made the way the renderer makes its figures.

    Line art drawn at twice the size and shrunk (anti-aliased like Agg), quantised to a
    ``colors`` palette without dithering and saved as a PNG at zlib level 6, 768 x 512 by
    default: thin histogram bars (correlograms), small dots (amplitudes, PCA), overlapping
    thin traces (waveforms), axes with tick labels and titles.
    """
    rng = random.Random(f"{feature}:{seed}")
    s = SUPERSAMPLE
    w, h = size[0] * s, size[1] * s
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=9 * s)
    draw.text((w * 0.3, 8 * s), f"{feature} of group {seed}: stand-in figure", fill="black", font=font)
    panels = 3 if feature == "crosscorrelograms" else 2 if feature in ("waveforms", "amplitudes") else 1
    for k in range(panels):
        x0 = w * (0.08 + k * 0.92 / panels)
        box = (x0, h * 0.12, x0 + w * (0.92 / panels - 0.06), h * 0.88)
        color = COLORS[k % len(COLORS)] if k < 2 else (0, 0, 0)
        _axes(draw, box, f"{feature} panel {k} (n={rng.randint(200, 900)})", font, color)
        bx0, by0, bx1, by1 = box
        bw, bh = bx1 - bx0, by1 - by0
        if feature == "crosscorrelograms":
            draw.rectangle([bx0 + bw * 0.48, by0, bx0 + bw * 0.52, by1], fill=(250, 224, 170))
            for b in range(160):
                top = by1 - bh * rng.random() ** 2 * 0.9
                x = bx0 + bw * b / 160
                draw.line([(x, by1), (x, top)], fill=color, width=s)
        elif feature in ("amplitudes", "pca"):
            for unit in range(2):
                cx, cy = bx0 + bw * (0.35 + 0.3 * unit), by0 + bh * (0.45 + 0.1 * unit)
                for _ in range(700):
                    x = cx + rng.gauss(0, bw * 0.15)
                    y = cy + rng.gauss(0, bh * 0.12)
                    draw.ellipse([x - s, y - s, x + s, y + s], fill=COLORS[unit])
        else:
            for unit in range(2):
                for _ in range(12):
                    amp = rng.uniform(0.2, 0.35) * bh
                    pts = [
                        (bx0 + bw * i / 60, by0 + bh * 0.5 - amp * math.sin(i / 9 + unit) * math.exp(-((i - 25) / 12) ** 2))
                        for i in range(61)
                    ]
                    draw.line(pts, fill=tuple(c + (255 - c) * 2 // 3 for c in COLORS[unit]), width=s)
                draw.line(pts, fill=COLORS[unit], width=2 * s)
    img = img.resize(size, Image.Resampling.LANCZOS)
    img = img.quantize(colors, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    img.save(path, format="PNG", compress_level=6)


def make_requests(folder: Path, groups: int, size: tuple[int, int], colors: int = 64) -> list[JudgeRequest]:
    requests = []
    for g in range(groups):
        images = {}
        for feature in FEATURES:
            path = folder / f"g{g}_{feature}.png"
            figure(path, feature, g, size, colors)
            images[feature] = path
        requests.append(JudgeRequest(group_id=g, unit_ids=(1, 2), images=images, evidence={"template_similarity": 0.9}))
    return requests


def load() -> str:
    return "load average " + "/".join(f"{v:.2f}" for v in os.getloadavg())


def responder(messages, kwargs):
    return DECISION if kwargs.get("tools") else "A refractory trough within 1 ms of zero."


def bench_wall_time(requests: list[JudgeRequest], latency: float, concurrency: int, mode: str) -> None:
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
            f"[wall] mode={mode} ({state} images) groups={len(requests)} calls={calls} concurrency={concurrency} "
            f"latency={latency}s: wall {wall:.2f} s, ideal {ideal:.2f} s, ratio {wall / ideal:.3f} "
            f"(goal <= 1.2); process CPU {cpu:.2f} s; {load()}",
            flush=True,
        )


def sent_image_tokens(model: FakeChatModel) -> tuple[int, int]:
    """Image tokens and base64 characters of every image the fake model received."""
    total, chars = 0, 0
    for messages, _ in model.calls:
        for message in messages:
            for block in message.content if isinstance(message.content, list) else []:
                if block.get("type") == "image":
                    chars += len(block["base64"])
                    with Image.open(io.BytesIO(base64.b64decode(block["base64"]))) as img:
                        total += openai_image_tokens(*img.size)
    return total, chars


def bench_image_tokens(folder: Path, source_size: tuple[int, int], colors: int) -> None:
    per_jpeg = openai_image_tokens(2400, 1800)
    concatenated = openai_image_tokens(2 * 2400, 2 * 1800)
    baseline = 4 * per_jpeg + concatenated
    print(
        f"[tokens] baseline: 4 x 2400x1800 JPEG ({per_jpeg} each) + 4800x3600 concatenated ({concatenated}) "
        f"= {baseline} image tokens per group"
    )
    requests = make_requests(folder, 1, source_size, colors)
    sizes = [os.path.getsize(p) for p in requests[0].images.values()]
    print(f"[tokens] figures {source_size[0]}x{source_size[1]} {colors}-colour PNG, {min(sizes) // 1000}-{max(sizes) // 1000} KB each")
    for mode in ("two_stage", "single"):
        model = FakeChatModel(responder=responder)
        VLMJudge(model, mode=mode).judge_many(requests)
        tokens, sent = sent_image_tokens(model)
        print(
            f"[tokens] spikemerge {mode} (figures {source_size[0]}x{source_size[1]}, image_long_side=768): "
            f"{tokens} image tokens per group = {tokens / baseline:.3f} of baseline (goal <= 0.333); "
            f"{sent // 1000} KB of base64 sent per group"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    print(f"[host] cpus={os.cpu_count()} {load()}", flush=True)
    default = RenderSettings()
    default_size = (default.width_px, default.height_px)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "two_stage").mkdir()
        requests = make_requests(folder / "two_stage", args.groups, default_size)
        bench_wall_time(requests, args.latency, args.concurrency, "two_stage")
        # the same figures under new names: cold again for the image cache
        shutil.copytree(folder / "two_stage", folder / "single")
        requests = [
            JudgeRequest(group_id=r.group_id, unit_ids=r.unit_ids, evidence=r.evidence,
                         images={k: folder / "single" / Path(p).name for k, p in r.images.items()})
            for r in requests
        ]
        bench_wall_time(requests, args.latency, args.concurrency, "single")
        # the renderer's default size, then figures drawn at 300 dpi
        for size, colors in ((default_size, default.palette_colors or 256), ((2400, 1800), 64)):
            sub = folder / f"tokens_{size[0]}"
            sub.mkdir()
            bench_image_tokens(sub, size, colors)


if __name__ == "__main__":
    main()
