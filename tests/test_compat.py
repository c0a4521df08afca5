"""spikemerge.compat: the earlier tool's API on spikemerge, and its two tutorials run as tests.

The tutorials are read from the seed folder (``../shared/seeds`` or ``$SPIKEMERGE_SEEDS``) and
their code cells executed in order in one namespace, as a notebook would, with only these
changes: import lines point at ``spikemerge.compat``, the analyzer placeholder path points at a
small synthetic analyzer, and ``get_model`` hands out a fake vision model. The tests skip when
the seeds are not there.
"""

from __future__ import annotations

import base64
import io
import os
import re
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from fakes import FakeChatModel, http_error  # noqa: E402
from spikemerge import compat  # noqa: E402
from spikemerge.compat import images as compat_images  # noqa: E402
from spikemerge.compat import models as compat_models  # noqa: E402
from spikemerge.errors import SpikemergeError  # noqa: E402

SEEDS = Path(os.environ.get("SPIKEMERGE_SEEDS", Path(__file__).resolve().parents[2] / "shared" / "seeds"))
FAKE_KEY = "sk-test-compat-0123456789abcdef"


# -- fakes -----------------------------------------------------------------------------------


def _text(messages) -> str:
    parts = []
    for message in messages:
        content = message.content if isinstance(message.content, list) else [message.content]
        parts += [b if isinstance(b, str) else b.get("text", "") for b in content]
    return "\n".join(parts)


def _group_units(messages) -> list[str]:
    found = re.search(r"## Group \d+: units ([^\n]+)", _text(messages))
    return re.findall(r"[\w.-]+", found.group(1)) if found else []


def vision_fake(merge_if=lambda units: True, fail_if=lambda units: False, **kwargs) -> FakeChatModel:
    """A fake VLM: per-figure reports, then a decision chosen from the group's unit ids."""

    def respond(messages, call_kwargs):
        units = _group_units(messages)
        if not call_kwargs.get("tools"):
            return "Report: the correlogram dips within 1 ms of zero lag."
        if fail_if(units):
            return http_error(503, "upstream overloaded")
        if merge_if(units):
            return {"decision": "merge", "confidence": 0.8, "merge_unit_ids": units, "reasoning": "shared refractory dip"}
        return {"decision": "not merge", "confidence": 0.7, "merge_unit_ids": [], "reasoning": "flat correlogram"}

    return FakeChatModel(responder=respond, **kwargs)


def png_b64(color=(200, 30, 30), size=(64, 48)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def tiny_img_df(groups, features=("crosscorrelograms", "amplitude_plot")) -> pd.DataFrame:
    """An image DataFrame without rendering: one tiny distinct PNG per cell."""
    rows = [[png_b64((20 * g % 255, 40 * i, 90)) for i, _ in enumerate(features)] for g in range(len(groups))]
    df = pd.DataFrame(rows, columns=list(features), index=pd.RangeIndex(len(groups), name="group_id"))
    df.attrs["spikemerge"] = {"unit_groups": {g: list(u) for g, u in enumerate(groups)}, "evidence": {}}
    return df


@pytest.fixture
def fake_provider(monkeypatch):
    """``get_model`` builds this fake instead of a provider model; a key is set so checks pass."""
    model = vision_fake(merge_if=lambda units: len(units) == 2 and int(units[-1]) % 2 == 0)
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.setattr(compat_models, "_build", lambda spec, kwargs: model)
    return model


@pytest.fixture(scope="module", autouse=True)
def _numpy_template_similarity():
    """SpikeInterface's numba similarity kernel compiles for ~40 s per process; its numpy twin is
    exact and instant at this size, and keeps this module well under a minute."""
    import spikeinterface.postprocessing.template_similarity as ts

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ts, "_compute_similarity_matrix", ts._compute_similarity_matrix_numpy)
        yield


@pytest.fixture(scope="module")
def small_analyzer():
    """4 units, 16 channels, 10 s, with the extensions the figures read (in memory)."""
    import spikeinterface as si

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        recording, sorting = si.generate_ground_truth_recording(
            durations=[10.0], num_channels=16, num_units=4, sampling_frequency=30000.0,
            noise_kwargs={"noise_levels": 5.0, "strategy": "on_the_fly"}, seed=42,
        )
        analyzer = si.create_sorting_analyzer(sorting=sorting, recording=recording, format="memory")
        analyzer.compute(["random_spikes", "waveforms", "templates", "spike_amplitudes"], progress_bar=False)
    return analyzer


# -- tutorial runner ---------------------------------------------------------------------------


def code_cells(path: Path) -> list[str]:
    """The code cells of a seed tutorial, in order (each follows an ``In [None]:`` line)."""
    if not path.exists():
        pytest.skip(f"seed tutorial {path} not available")
    cells, current = [], None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("In [None]:"):
            if current is not None:
                cells.append("\n".join(current).strip("\n"))
            current = []
        elif current is not None and line.startswith(("## ", "**")):  # the next markdown block
            cells.append("\n".join(current).strip("\n"))
            current = None
        elif current is not None:
            current.append(line)
    if current is not None:
        cells.append("\n".join(current).strip("\n"))
    return cells


IMPORT_CHANGES = [
    (r"^from spikeagent\.app\.tool\.si_custom import ", "from spikemerge.compat import "),
    (r"^from spikeagent\.curation\.vlm_merge import ", "from spikemerge.compat import "),
    (r"^from spikeagent\.app\.tool\.utils import ", "from spikemerge.compat import "),
    (r"^import tool\.si_custom as ", "import spikemerge.compat as "),
    (r"^from tool\.vlm_merge import ", "from spikemerge.compat import "),
    (r"^from tool\.utils import ", "from spikemerge.compat import "),
]


def port(cell: str, extra: list[tuple[str, str]] = ()) -> str:
    """The cell with its import lines pointed at spikemerge.compat (plus ``extra`` literal swaps)."""
    for pattern, repl in IMPORT_CHANGES:
        cell = re.sub(pattern, repl, cell, flags=re.M)
    for old, new in extra:
        assert old in cell, f"expected {old!r} in the tutorial cell"
        cell = cell.replace(old, new)
    assert "spikeagent" not in cell and not re.search(r"^\s*(import|from) tool\.", cell, flags=re.M)
    return cell


def run_cells(cells: list[str], namespace: dict) -> None:
    for cell in cells:
        exec(compile(cell, "<tutorial cell>", "exec"), namespace)  # noqa: S102 - the tutorial is the test


# -- the tutorials -----------------------------------------------------------------------------


def test_tutorial_vlm_merge_analysis(fake_provider, monkeypatch, tmp_path, capsys):
    cells = [port(c) for c in code_cells(SEEDS / "vlm_merge_analysis_tutorial.txt")]
    assert len(cells) == 9
    monkeypatch.chdir(tmp_path)
    ns: dict = {"__name__": "__tutorial__"}
    with warnings.catch_warnings(), threadpool_limits(1):  # 2 shared cores: no BLAS oversubscription
        warnings.simplefilter("ignore")
        run_cells(cells[:3], ns)  # imports, synthetic analyzer, extensions
        # step 3 as written: six distinct neurons, nothing is 20 % alike or closer
        run_cells(cells[3:4], ns)
        assert ns["potential_merge_groups"] == []
        # the same cell, re-run with a permissive threshold, so that the later steps have candidates
        run_cells([cells[3].replace('"template_diff_thresh": 0.2', '"template_diff_thresh": 0.6')], ns)
        groups = ns["potential_merge_groups"]
        assert 1 <= len(groups) <= 4
        run_cells(cells[4:], ns)  # images, verdicts, results, plots, merges

    img_df, results_df = ns["img_df"], ns["results_df"]
    assert list(img_df.columns) == ["waveform_single", "amplitude_plot", "crosscorrelograms", "pca_clustering"]
    assert list(img_df.index) == list(range(len(groups)))
    evidence = img_df.attrs["spikemerge"]["evidence"]  # numbers for the judge, unit_locations not needed
    assert set(evidence) == {" ".join(map(str, g)) for g in groups}
    assert all("template_similarity" in e["pairs"][0] for e in evidence.values())
    assert list(results_df.index) == list(range(len(groups)))
    expected = ["merge" if int(g[-1]) % 2 == 0 else "not merge" for g in groups]
    assert list(results_df["merge_type"]) == expected
    for gid, row in results_df.iterrows():
        assert row["reasoning"] and row["report"] and 0 <= row["confidence"] <= 1
        assert row["merge_units"] == (list(groups[gid]) if row["merge_type"] == "merge" else [])
    merged = ns.get("merged_analyzer")
    n_merges = sum(e == "merge" for e in expected)
    if n_merges:
        final = ns["final_merge_groups"]
        assert len(merged.unit_ids) == 6 - sum(len(g) - 1 for g in final)
    out = capsys.readouterr().out
    assert "VLM merge analysis complete!" in out and "Imports successful!" in out
    plt.close("all")


def test_tutorial_vlm_spike_curation(fake_provider, small_analyzer, monkeypatch, tmp_path):
    import spikeinterface as si
    from spikeinterface.curation.curation_tools import resolve_merging_graph

    folder = tmp_path / "analyzer"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small_analyzer.save_as(format="binary_folder", folder=folder)
    cells = code_cells(SEEDS / "vlm_spike_curation_tutorial.txt")
    cells = [port(c, [('"<path_to_analyzer_folder>"', repr(str(folder)))] if "<path_to_analyzer_folder>" in c else [])
             for c in cells]
    monkeypatch.chdir(tmp_path)  # the tutorial writes .env into the working directory
    saved_jobs = si.get_global_job_kwargs()
    ns: dict = {"__name__": "__tutorial__"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run_cells(cells, ns)
    finally:
        si.set_global_job_kwargs(**saved_jobs)

    groups = ns["potential_merge_groups"]
    assert len(groups) >= 3
    merge_img_df, results = ns["merge_img_df"], ns["merge_results_df"]
    assert len(merge_img_df) == len(groups)
    assert list(results.index) == list(range(2, len(groups)))  # groups 0 and 1 were the examples
    assert set(results["merge_type"]) <= {"merge", "not merge"}
    csv = pd.read_csv(folder / "vlm_merge_reasoning.csv", index_col="group_id")
    assert list(csv.index) == list(results.index)
    # examples were shown, never judged: every decision call carried the two labelled groups
    head_calls = [m for m, kw in fake_provider.calls if kw.get("tools")]
    assert len(head_calls) == len(groups) - 2
    assert all("Example 1 (group 1)" in _text(m) and "Example 2 (group 0)" in _text(m) for m in head_calls)
    # and the verdicts apply with SpikeInterface's own tools
    analyzer = ns["analyzer_to_merge"]
    pairs = [results.loc[g, "merge_units"] for g in results.index[results["merge_type"] == "merge"]]
    final = resolve_merging_graph(analyzer.sorting, pairs)
    if final:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            merged = analyzer.merge_units(merge_unit_groups=final, sparsity_overlap=0)
        assert len(merged.unit_ids) < len(analyzer.unit_ids)


# -- get_model -------------------------------------------------------------------------------


def test_unknown_model_name_lists_the_known_ones():
    with pytest.raises(SpikemergeError) as err:
        compat.get_model("gpt-9-vision-ultra")
    message = str(err.value)
    assert "gpt-9-vision-ultra" in message and "\n" not in message
    for name in ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "claude_4_sonnet", "claude_3_5_sonnet", "claude_3_haiku",
                 "gemini-2.5-pro", "gemini-1.5-flash"):
        assert name in message


def test_legacy_names_resolve_to_init_chat_model_ids():
    assert compat.resolve_model_name("gpt-4o") == "openai:gpt-4o"
    assert compat.resolve_model_name("GPT-4.1") == "openai:gpt-4.1"
    assert compat.resolve_model_name("anthropic:claude-sonnet-4-6") == "anthropic:claude-sonnet-4-6"
    with pytest.warns(UserWarning, match="retired"):
        assert compat.resolve_model_name("claude_3_5_sonnet").startswith("anthropic:claude-")
    with pytest.warns(UserWarning, match="claude-4-sonnet|claude_4_sonnet"):
        compat.resolve_model_name("claude-4-sonnet")  # '-' and '_' alike
    with pytest.raises(SpikemergeError, match="does not take images"):
        compat.resolve_model_name("gpt-3.5-turbo")
    assert all(":" in alias.target for alias in compat.MODEL_ALIASES.values())


@pytest.mark.parametrize(
    "name, variable",
    [("gpt-4o", "OPENAI_API_KEY"), ("claude_3_haiku", "ANTHROPIC_API_KEY"), ("gemini-2.5-pro", "GOOGLE_API_KEY")],
)
def test_missing_key_names_the_variable(name, variable, monkeypatch, tmp_path):
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env to find
    monkeypatch.setattr(compat_models, "_build", lambda spec, kwargs: pytest.fail("built without a key"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(SpikemergeError, match=variable):
            compat.get_model(name)


def test_get_model_builds_the_resolved_model(monkeypatch):
    built = []
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.setattr(compat_models, "_build", lambda spec, kwargs: built.append((spec, kwargs)) or vision_fake())
    model = compat.get_model("gpt-4o-mini", temperature=0)
    assert isinstance(model, FakeChatModel)
    assert built[0][0].id == "openai:gpt-4o-mini" and built[0][1] == {"temperature": 0}


# -- create_merge_img_df -----------------------------------------------------------------------


def test_images_cache_is_validated_against_the_request(small_analyzer, tmp_path, monkeypatch):
    units = [str(u) for u in small_analyzer.unit_ids]
    first = [[units[0], units[1]]]
    df1 = compat.create_merge_img_df(small_analyzer, first, features=["amplitude_plot"], load_if_exists=True,
                                     save_folder=tmp_path, evidence=False)
    assert list(df1.columns) == ["amplitude_plot"] and df1.index.name == "group_id"
    with Image.open(io.BytesIO(base64.b64decode(df1.iloc[0, 0]))) as img:
        assert img.format == "PNG"

    drawn = []
    real = compat_images.render_groups
    monkeypatch.setattr(compat_images, "render_groups",
                        lambda a, groups, out, features, n_workers: drawn.append((dict(groups), features))
                        or real(a, groups, out, features=features, n_workers=n_workers))

    # same request: served from the cache, nothing drawn
    again = compat.create_merge_img_df(small_analyzer, first, features=["amplitude_plot"], load_if_exists=True,
                                       save_folder=tmp_path, evidence=False)
    assert drawn == [] and again.iloc[0, 0] == df1.iloc[0, 0]

    # other groups, same folder: group 0 is now other units, so its cached image must not come back
    other = [[units[2], units[3]], [units[0], units[1]]]
    df2 = compat.create_merge_img_df(small_analyzer, other, features=["amplitude_plot"], load_if_exists=True,
                                     save_folder=tmp_path, evidence=False)
    assert drawn == [({0: tuple(other[0])}, ("amplitudes",))]
    assert df2.iloc[0, 0] != df1.iloc[0, 0] and df2.iloc[1, 0] == df1.iloc[0, 0]

    # another feature for the same group: drawn, never the amplitude image
    drawn.clear()
    df3 = compat.create_merge_img_df(small_analyzer, first, features=["crosscorrelograms"], load_if_exists=True,
                                     save_folder=tmp_path, evidence=False)
    assert drawn == [({0: tuple(first[0])}, ("crosscorrelograms",))]
    assert df3.iloc[0, 0] != df1.iloc[0, 0]

    # another analyzer (one unit dropped changes its content): nothing reused
    drawn.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fewer = small_analyzer.select_units(small_analyzer.unit_ids[:3])
    assert compat.analyzer_fingerprint(fewer) != compat.analyzer_fingerprint(small_analyzer)
    compat.create_merge_img_df(fewer, first, features=["amplitude_plot"], load_if_exists=True,
                               save_folder=tmp_path, evidence=False)
    assert len(drawn) == 1

    # a damaged cached file is redrawn, not returned
    drawn.clear()
    for png in (tmp_path / compat_images.CACHE_SUBFOLDER).glob("group0000_amplitudes_*.png"):
        png.write_bytes(b"not a png")
    healed = compat.create_merge_img_df(small_analyzer, first, features=["amplitude_plot"], load_if_exists=True,
                                        save_folder=tmp_path, evidence=False)
    assert len(drawn) == 1 and healed.iloc[0, 0] == df1.iloc[0, 0]

    # without the cache, a damaged file left in the folder is drawn again by the renderer, not returned
    drawn.clear()
    for png in (tmp_path / compat_images.CACHE_SUBFOLDER).glob("group0000_amplitudes_*.png"):
        png.write_bytes(b"")
    fresh = compat.create_merge_img_df(small_analyzer, first, features=["amplitude_plot"], load_if_exists=False,
                                       save_folder=tmp_path, evidence=False)
    assert len(drawn) == 1 and fresh.iloc[0, 0] == df1.iloc[0, 0]


def test_img_df_rejects_bad_requests(small_analyzer):
    unit = str(small_analyzer.unit_ids[0])
    with pytest.raises(SpikemergeError, match="unknown feature 'autocorr'"):
        compat.create_merge_img_df(small_analyzer, [[unit, "1"]], features=["autocorr"])
    with pytest.raises(SpikemergeError, match="at least two"):
        compat.create_merge_img_df(small_analyzer, [[unit]], features=["amplitude_plot"])
    with pytest.raises(SpikemergeError, match="same figure"):
        compat.create_merge_img_df(small_analyzer, [[unit, "1"]], features=["amplitude_plot", "amplitudes"])


# -- run_vlm_merge -----------------------------------------------------------------------------


GROUPS = [["0", "1"], ["2", "3"], ["4", "5"], ["6", "7"], ["8", "9"]]


def test_failed_groups_carry_an_explicit_error_marker():
    img_df = tiny_img_df(GROUPS)
    img_df.at[4, "amplitude_plot"] = ""  # a group whose image is missing
    model = vision_fake(merge_if=lambda u: u == ["0", "1"], fail_if=lambda u: u == ["2", "3"])
    results = compat.run_vlm_merge(model, GROUPS, img_df, features=["crosscorrelograms", "amplitude_plot"],
                                   num_workers=3, max_retries=1, retry_base_delay=0.001)
    assert list(results["merge_type"]) == ["merge", "error", "not merge", "not merge", "error"]
    failed = results[results["merge_type"] == compat.ERROR]
    assert failed["error"].str.len().gt(0).all() and failed["reasoning"].str.startswith("ERROR: ").all()
    assert "503" in failed.loc[1, "error"] and "amplitude_plot" in failed.loc[4, "error"]
    assert failed["merge_units"].map(len).eq(0).all() and failed["confidence"].isna().all()
    ok = results[results["merge_type"] != compat.ERROR]
    assert ok["error"].isna().all() and (ok["reasoning"] != "").all()
    assert results.loc[0, "merge_units"] == ["0", "1"]
    assert results.loc[0, "report_crosscorrelograms"].startswith("Report:")


@pytest.mark.parametrize("num_workers", [1, 2, 50])
def test_any_number_of_workers(num_workers):
    model = vision_fake(merge_if=lambda u: int(u[0]) < 4, latency=0.01)
    results = compat.run_vlm_merge(model, GROUPS, tiny_img_df(GROUPS), features=["crosscorrelograms"],
                                   good_merge_groups=[0], bad_merge_groups=[4], num_workers=num_workers)
    assert list(results.index) == [1, 2, 3]
    assert list(results["merge_type"]) == ["merge", "not merge", "not merge"]
    report_calls = [kw for _, kw in model.calls if not kw.get("tools")]
    assert len(report_calls) == 3  # examples are shown in the decision call, never judged


def test_run_vlm_merge_rejects_bad_arguments():
    model = vision_fake()
    img_df = tiny_img_df(GROUPS)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(SpikemergeError, match="num_workers"):
            compat.run_vlm_merge(model, GROUPS, img_df, num_workers=bad)
    with pytest.raises(SpikemergeError, match="both"):
        compat.run_vlm_merge(model, GROUPS, img_df, good_merge_groups=[1], bad_merge_groups=[1])
    with pytest.raises(SpikemergeError, match="no column for pca_clustering"):
        compat.run_vlm_merge(model, GROUPS, img_df, features=["pca_clustering"])
    with pytest.raises(SpikemergeError, match="groups are 0..4"):
        compat.run_vlm_merge(model, GROUPS, img_df, good_merge_groups=[7])
    # images drawn for other groups are refused rather than judged under the wrong units
    swapped = [GROUPS[1], GROUPS[0], *GROUPS[2:]]
    with pytest.raises(SpikemergeError, match="build img_df from the same merge_unit_groups"):
        compat.run_vlm_merge(model, swapped, img_df)
    with pytest.raises(SpikemergeError, match="no row for group"):
        compat.run_vlm_merge(model, GROUPS + [["10", "11"]], img_df)
    assert model.calls == []


def test_plot_merge_results_one_figure_per_group():
    img_df = tiny_img_df(GROUPS)
    results = compat.run_vlm_merge(vision_fake(fail_if=lambda u: u == ["8", "9"]), GROUPS, img_df, num_workers=2,
                                   max_retries=0, retry_base_delay=0.001)
    figures = compat.plot_merge_results(results, img_df)
    try:
        assert len(figures) == len(results)
        assert [len(f.axes) for f in figures] == [2] * len(results)
        titles = [f._suptitle.get_text() for f in figures]
        assert titles[0].startswith("Group 0: units 0, 1 | MERGE") and "ERROR" in titles[-1]
    finally:
        for fig in figures:
            plt.close(fig)
