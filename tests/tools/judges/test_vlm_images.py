"""Images the VLM judge sends: fitted and encoded once, prepared in threads, small and faithful."""

from __future__ import annotations

import base64
import io
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from fakes import FakeChatModel
from spikemerge.tools.judges.vlm import images as vlm_images
from spikemerge.tools.judges.base import Example, JudgeRequest
from spikemerge.tools.judges.vlm.images import (
    encode_figure,
    encode_image,
    encode_overview,
    fit_image,
    load_figure,
    prepare_group,
    tile_sheet,
)
from spikemerge.tools.judges.vlm.judge import VLMJudge

FEATURES = ("crosscorrelograms", "amplitudes", "waveforms", "pca")
DECISION = {"decision": "merge", "confidence": 0.9, "merge_unit_ids": ["1", "2"], "reasoning": "refractory dip"}


def line_art(path: Path, seed: int, size: tuple[int, int] = (768, 512)) -> Path:
    """A figure like the renderer's: thin coloured lines and text, 64-colour palette PNG."""
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    w, h = size
    draw.line([(60, 40), (60, h - 40), (w - 20, h - 40)], fill="black", width=1)
    for k, color in enumerate(((31, 119, 180), (214, 39, 40))):
        points = [(60 + i * (w - 80) / 120, h / 2 + ((i * (37 + seed) + 11 * k) % 90 - 45) * 2) for i in range(121)]
        draw.line(points, fill=color, width=1)
    for i in range(6):
        draw.text((50 + i * (w - 80) / 5, h - 32), f"{(i - 3) * 10 + seed}", fill="black")
    draw.text((w / 3, 10), f"figure {seed}", fill="black")
    img.quantize(64, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(path, compress_level=6)
    return path


def figures(folder: Path, tag: str, seed: int) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return {f: line_art(folder / f"{tag}_{f}.png", seed + i) for i, f in enumerate(FEATURES)}


def request(folder: Path, group_id: int) -> JudgeRequest:
    return JudgeRequest(group_id=group_id, unit_ids=(1, 2), images=figures(folder, f"g{group_id}", 10 * group_id),
                        evidence={"template_similarity": 0.9})


def respond(messages, kwargs):
    return DECISION if kwargs.get("tools") else "A refractory trough within 1 ms of zero."


def image_blocks(model: FakeChatModel) -> list[list[str]]:
    """Per call, in call order of groups and stages, the base64 of every image sent."""
    calls = []
    for messages, kwargs in model.calls:
        text = "".join(b.get("text", "") for m in messages if isinstance(m.content, list) for b in m.content)
        images = [b["base64"] for m in messages if isinstance(m.content, list) for b in m.content if b.get("type") == "image"]
        calls.append((bool(kwargs.get("tools")), text, images))
    return [images for _, _, images in sorted(calls)]


@pytest.fixture(autouse=True)
def cold_cache():
    vlm_images.clear_cache()
    yield
    vlm_images.clear_cache()


@pytest.fixture
def counted(monkeypatch):
    """Counts of figure reads (per file) and PNG encodings, and the threads that did them."""
    reads: dict[str, int] = {}
    threads: set[str] = set()
    encodings = {"n": 0}
    lock = threading.Lock()
    real_load, real_encode = vlm_images.load_figure, vlm_images.encode_image

    def load(path):
        with lock:
            reads[Path(path).name] = reads.get(Path(path).name, 0) + 1
            threads.add(threading.current_thread().name)
        return real_load(path)

    def encode(img):
        with lock:
            encodings["n"] += 1
        return real_encode(img)

    monkeypatch.setattr(vlm_images, "load_figure", load)
    monkeypatch.setattr(vlm_images, "encode_image", encode)
    return reads, encodings, threads


# -- once per figure ---------------------------------------------------------------------------


def test_each_figure_is_read_fitted_and_encoded_once_per_run(tmp_path, counted):
    reads, encodings, threads = counted
    good = Example("drift split", "good", (7, 8), figures(tmp_path / "ex", "good", 100), {})
    bad = Example("neighbours", "bad", (4, 5), figures(tmp_path / "ex", "bad", 200), {})
    requests = [request(tmp_path / "figs", g) for g in range(3)]
    model = FakeChatModel(responder=respond)

    verdicts = VLMJudge(model, max_concurrency=4).judge_many(requests, examples=[good, bad])

    assert [v.decision for v in verdicts] == ["merge"] * 3
    assert len(model.calls) == 3 * 5
    # each group figure feeds a report and the overview; each example figure feeds 3 head calls
    assert set(reads.values()) == {1} and len(reads) == 3 * 4 + 2 * 4
    assert encodings["n"] == 3 * 4 + 3 + 2  # figures, group overviews, example overviews
    assert threads and all(name.startswith("vlm-images") for name in threads)  # never on the event loop

    # a second run over the same files reads nothing again
    reads.clear()
    VLMJudge(FakeChatModel(responder=respond)).judge_many(requests, examples=[good, bad])
    assert reads == {}


def test_single_mode_sends_each_figure_once_encoded(tmp_path, counted):
    reads, encodings, _ = counted
    model = FakeChatModel(responder=respond)
    VLMJudge(model, mode="single").judge_many([request(tmp_path, g) for g in range(2)])
    assert len(model.calls) == 2 and all(len(images) == 4 for images in image_blocks(model))
    assert set(reads.values()) == {1} and len(reads) == 8
    assert encodings["n"] == 8  # no overview is made for single mode


def test_overview_is_tiled_from_the_fitted_figures(tmp_path, counted):
    reads, _, _ = counted
    paths = figures(tmp_path, "g", 3)
    prepared = prepare_group(paths, list(paths.values()), [], 768)

    fitted = [fit_image(Image.open(p), 768) for p in paths.values()]
    expected = encode_image(fit_image(tile_sheet(fitted), 768))
    assert prepared.overview == expected
    assert prepared.overview.size == (512, 341)  # one 512-px tile for the whole sheet
    assert set(reads.values()) == {1}  # the overview re-used the figures fitted for the reports
    assert prepared.figures == {f: encode_figure(p, 768) for f, p in paths.items()}


def test_cache_follows_the_file_version(tmp_path):
    path = line_art(tmp_path / "a.png", 1)
    first = encode_figure(path, 768)
    assert encode_figure(path, 768) is first  # cached
    time.sleep(0.01)
    line_art(path, 2)  # the renderer redrew it
    assert encode_figure(path, 768) != first
    assert encode_figure(path, 1024) is not encode_figure(path, 768)


def test_calls_keep_group_order_when_a_later_group_is_prepared_first(tmp_path, monkeypatch):
    real = vlm_images.load_figure

    def slow_first_group(path):
        if Path(path).name.startswith("g0_"):
            time.sleep(0.1)
        return real(path)

    monkeypatch.setattr(vlm_images, "load_figure", slow_first_group)
    requests = [
        JudgeRequest(group_id=g, unit_ids=(100 + g, 200 + g), images=figures(tmp_path, f"g{g}", g), evidence={})
        for g in range(3)
    ]

    def answer(messages, kwargs):
        return {**DECISION, "merge_unit_ids": []} if kwargs.get("tools") else "report"

    model = FakeChatModel(responder=answer)
    VLMJudge(model, max_concurrency=1, image_workers=2).judge_many(requests)

    def group_of(messages):
        text = "".join(b.get("text", "") for m in messages if isinstance(m.content, list) for b in m.content)
        return next(g for g in range(3) if f"{100 + g}, {200 + g}" in text)

    order = [(group_of(m), "head" if kw.get("tools") else "report") for m, kw in model.calls]
    # one slot: each group's four reports, then its head straight away (the slot is handed over)
    assert order == [(g, stage) for g in range(3) for stage in ["report"] * 4 + ["head"]]


def test_unreadable_figure_gives_an_error_verdict_and_the_run_goes_on(tmp_path):
    broken = request(tmp_path, 1)
    broken.images["pca"].write_bytes(b"not a png")
    model = FakeChatModel(responder=respond)
    verdicts = VLMJudge(model).judge_many([request(tmp_path, 0), broken, request(tmp_path, 2)])
    assert [v.decision for v in verdicts] == ["merge", "error", "merge"]
    assert "cannot read a figure" in verdicts[1].reasoning and "UnidentifiedImageError" in verdicts[1].reasoning
    assert len(model.calls) == 10  # the broken group made no call


# -- same bytes however prepared -------------------------------------------------------------


def test_threads_do_not_change_what_is_sent(tmp_path):
    good = Example("dup", "good", (7, 8), figures(tmp_path / "ex", "dup", 50), {})
    requests = [request(tmp_path / "figs", g) for g in range(4)]
    sent = []
    for workers in (1, 4):
        vlm_images.clear_cache()
        model = FakeChatModel(responder=respond)
        VLMJudge(model, image_workers=workers, max_concurrency=3).judge_many(requests, examples=[good])
        sent.append(image_blocks(model))
    assert sent[0] == sent[1]
    # and the same as encoding in this thread, from a copy of the files under other names
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "figs", copy)
    direct = [encode_figure(copy / Path(p).name, 768).data for p in requests[0].images.values()]
    assert all(data in {d for call in sent[0] for d in call} for data in direct)


def test_the_cache_computes_a_key_once_under_concurrency():
    cache = vlm_images._OnceCache(maxsize=4)
    calls = {"n": 0}
    start = threading.Barrier(8)

    def slow():
        calls["n"] += 1
        time.sleep(0.05)
        return "value"

    results = []

    def ask():
        start.wait()
        results.append(cache.get("k", slow))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["value"] * 8 and calls["n"] == 1

    def boom():
        raise OSError("gone")

    with pytest.raises(OSError):
        cache.get("bad", boom)
    assert cache.get("bad", lambda: "fixed") == "fixed"  # a failure is not remembered
    for i in range(10):
        cache.get(i, lambda i=i: i)
    assert len(cache) == 4


# -- what is sent ------------------------------------------------------------------------------


def test_palette_png_is_small_and_faithful(tmp_path):
    path = line_art(tmp_path / "a.png", 7)
    sent = encode_figure(path, 768)
    png = base64.b64decode(sent.data)
    with Image.open(io.BytesIO(png)) as img:
        assert img.format == "PNG" and img.mode == "P" and img.size == sent.size == (512, 341)
        palette = np.asarray(img.convert("RGB"), dtype=float)
    rgb = Image.open(path).convert("RGB").resize((512, 341), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    rgb.save(buf, format="PNG", compress_level=3)
    assert len(png) < len(buf.getvalue()) / 2
    assert np.sqrt(np.mean((palette - np.asarray(rgb, dtype=float)) ** 2)) < 2.0  # of 255 levels


def test_small_palette_figure_is_sent_as_is(tmp_path):
    path = line_art(tmp_path / "small.png", 1, size=(400, 300))
    sent = encode_figure(path, 768)
    with Image.open(io.BytesIO(base64.b64decode(sent.data))) as img, Image.open(path) as original:
        assert img.size == (400, 300)
        assert np.array_equal(np.asarray(img.convert("RGB")), np.asarray(original.convert("RGB")))


def test_transparent_figure_is_flattened_on_white(tmp_path):
    path = tmp_path / "clear.png"
    img = Image.new("RGBA", (800, 600), (0, 0, 0, 0))
    ImageDraw.Draw(img).line([(0, 300), (800, 300)], fill=(214, 39, 40, 255), width=3)
    img.save(path)
    assert load_figure(path).getpixel((5, 5)) == (255, 255, 255)
    sent = encode_figure(path, 768)
    with Image.open(io.BytesIO(base64.b64decode(sent.data))) as out:
        assert min(out.convert("RGB").getpixel((5, 5))) >= 250  # white (the palette may round it down)


def test_single_figure_overview_is_that_figure(tmp_path):
    path = line_art(tmp_path / "composite.png", 4, size=(1152, 768))
    assert encode_overview([path], 768) == encode_figure(path, 768)
