"""scripts/heldout_batch.py: the registry of held-out batches is checked as ``--set`` is, and a batch is
scored once only."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.helpers import load_script


def test_the_registry_parses_and_every_batch_has_new_seeds_and_both_scenarios():
    module = load_script("heldout_batch")
    batches = module.load_batches(module.REGISTRY)
    seeds = [s for b in batches.values() for s in b.seeds]
    assert len(seeds) == len(set(seeds)) and min(seeds) > 138  # seeds up to 138 were used by earlier batches
    for batch in batches.values():
        assert {s.name for s in batch.scenarios} == {"drift", "burst"}
        assert all(s.label and s.overrides for s in batch.scenarios)


def test_a_seed_used_twice_or_a_misspelt_parameter_is_refused(tmp_path):
    module = load_script("heldout_batch")
    twice = tmp_path / "twice.toml"
    twice.write_text('[[batch]]\nseeds = [1, 2]\n[batch.drift]\nlabel = "a"\n'
                     '[[batch]]\nseeds = [2, 3]\n[batch.drift]\nlabel = "b"\n')
    with pytest.raises(ValueError, match="a seed is used by two batches"):
        module.load_batches(twice)
    typo = tmp_path / "typo.toml"
    typo.write_text('[[batch]]\nseeds = [1, 2]\n[batch.drift]\nlabel = "a"\nset = { slow_drift_velocty = 9 }\n')
    with pytest.raises(ValueError, match="slow_drift_velocty"):
        module.load_batches(typo)


def test_a_batch_names_its_sorters_or_is_built_with_spikeinterfaces_two(tmp_path):
    module = load_script("heldout_batch")
    registry = tmp_path / "batches.toml"
    registry.write_text('[[batch]]\nseeds = [1, 2]\n[batch.drift]\nlabel = "a"\n'
                        '[[batch]]\nseeds = [3, 4]\nsorters = ["kilosort4"]\n[batch.drift]\nlabel = "b"\n')
    batches = module.load_batches(registry)
    assert batches["1-2"].sorters == ("spykingcircus2", "tridesclous2")
    assert batches["3-4"].sorters == ("kilosort4",) and [s.name for s in batches["3-4"].scenarios] == ["drift"]
    folders = module.dataset_folders(batches["3-4"], batches["3-4"].scenarios[0], tmp_path)
    assert [f.name for f in folders] == ["drift_ks4_s3", "drift_ks4_s4"]
    registry.write_text('[[batch]]\nseeds = [1, 2]\nsorters = ["kilosort2"]\n[batch.drift]\nlabel = "a"\n')
    with pytest.raises(ValueError, match="unknown sorter kilosort2"):
        module.load_batches(registry)


def test_a_batch_may_draw_its_cells_from_another_template_library(tmp_path):
    module = load_script("heldout_batch")
    registry = tmp_path / "batches.toml"  # both TOML spellings of a nested key read alike
    registry.write_text('[[batch]]\nseeds = [1, 2]\n[batch.drift]\nlabel = "a"\n'
                        'set = { n_exc = 14, templates = { seed = 5 } }\n'
                        '[[batch]]\nseeds = [3, 4]\n[batch.drift]\nlabel = "b"\n'
                        'set = { n_exc = 14, templates.seed = 6 }\n')
    batches = module.load_batches(registry)
    assert dict(batches["1-2"].scenarios[0].overrides) == {"n_exc": 14, "templates.seed": 5}
    assert dict(batches["3-4"].scenarios[0].overrides) == {"n_exc": 14, "templates.seed": 6}
    assert module.repeated_parameters(batches["3-4"], batches) == []  # another library is another batch


def test_a_batch_that_repeats_an_earlier_batchs_parameters_is_not_built(tmp_path, monkeypatch, capsys):
    module = load_script("heldout_batch")
    registry = tmp_path / "batches.toml"
    registry.write_text('[[batch]]\nseeds = [1, 2]\n[batch.drift]\nlabel = "a"\n'
                        'set = { slow_drift_velocity = 16, n_exc = 14 }\n'
                        '[[batch]]\nseeds = [3, 4]\n[batch.drift]\nlabel = "b"\n'
                        'set = { n_exc = 14, slow_drift_velocity = 16 }\n'
                        '[[batch]]\nseeds = [5, 6]\n[batch.drift]\nlabel = "c"\n'
                        'set = { slow_drift_velocity = 17, n_exc = 14 }\n')
    batches = module.load_batches(registry)
    assert module.repeated_parameters(batches["3-4"], batches) == ["drift as in 1-2"]
    assert module.repeated_parameters(batches["1-2"], batches) == []  # the earlier batch is not the repeat
    assert module.repeated_parameters(batches["5-6"], batches) == []
    monkeypatch.setattr(module, "REGISTRY", registry)
    monkeypatch.setattr(module, "build", lambda *args: pytest.fail("a repeated batch was built"))
    with pytest.raises(SystemExit) as exited:
        module.main(["build", "3-4", "--cache", str(tmp_path / "cache")])
    assert exited.value.code == 2 and "repeats recording parameters (drift as in 1-2)" in capsys.readouterr().err


def test_a_batch_scored_once_is_not_scored_again(tmp_path):
    module = load_script("heldout_batch")
    batch = replace(next(iter(module.load_batches(module.REGISTRY).values())), scored="")  # by the cache alone
    for scenario in batch.scenarios:
        for who in ("presets", "ours"):
            path = module.score_file(tmp_path, batch, scenario, who)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("{}\n")
    with pytest.raises(SystemExit, match="scored already"):
        module.score(batch, tmp_path, "v0", again=False)


def test_the_registry_keeps_a_batch_scored_when_its_cache_is_lost(tmp_path, capsys):
    """A new machine has no ``ours`` file: the registry's ``scored`` line still refuses a second score
    and lets the development tools read the sets; ``mark_scored`` writes it under the batch's seeds only."""
    from spikemerge.bench.heldout import held_out_error, load_batches, mark_scored

    module = load_script("heldout_batch")
    registry = tmp_path / "batches.toml"
    registry.write_text('[[batch]]\nseeds = [901, 902]\n[batch.drift]\nlabel = "d"\n'
                        '[[batch]]\nseeds = [903, 904]\n[batch.drift]\nlabel = "e"\n')
    dataset = tmp_path / "cache" / "drift_sc2_s901"
    assert held_out_error([dataset], registry) is not None
    mark_scored(registry, load_batches(registry)["901-902"], "metrics-v0")
    batches = load_batches(registry)
    assert (batches["901-902"].scored, batches["903-904"].scored) == ("metrics-v0", "")
    assert [s.name for s in batches["901-902"].scenarios] == ["drift"]
    assert held_out_error([dataset], registry) is None
    assert held_out_error([tmp_path / "cache" / "drift_sc2_s903"], registry) is not None
    with pytest.raises(ValueError, match="scored already, with metrics-v0"):
        mark_scored(registry, batches["901-902"], "metrics-v1")
    with pytest.raises(SystemExit, match="scored already with metrics-v0"):
        module.score(batches["901-902"], tmp_path / "empty", "metrics-v1", again=False, registry=registry)
    assert not list(tmp_path.glob(".*.tmp"))


def test_sets_of_a_batch_not_scored_yet_are_refused_by_the_development_tools(tmp_path, capsys):
    from spikemerge.bench.heldout import held_out_error, load_batches, score_file, unscored

    registry = tmp_path / "batches.toml"
    registry.write_text('[[batch]]\nseeds = [901, 902]\n[batch.drift]\nlabel = "d"\n[batch.burst]\nlabel = "b"\n')
    batch = load_batches(registry)["901-902"]
    cache = tmp_path / "cache"
    drift, burst, other = cache / "drift_sc2_s901", cache / "burst_tdc2_s902", cache / "drift_sc2_s7"
    assert unscored([drift, burst, other], {batch.name: batch}) == [drift, burst]
    score_file(cache, batch, batch.scenarios[0], "ours").parent.mkdir(parents=True)
    score_file(cache, batch, batch.scenarios[0], "ours").write_text("{}\n")  # drifting scored, bursting not
    assert unscored([drift, burst, other], {batch.name: batch}) == [burst]
    assert held_out_error([drift, other], registry) is None
    assert "burst_tdc2_s902: held out and not scored yet" in held_out_error([burst], registry)

    # explain_sorted.py refuses such a set in one line before reading anything, unless told to peek
    script = load_script("explain_sorted")
    script.HELD_OUT_REGISTRY = registry
    with pytest.raises(SystemExit) as refused:
        script.main([str(burst), "--cache", str(tmp_path / "ex")])
    assert refused.value.code == 2
    assert "held out and not scored yet" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # past the guard: the (missing) dataset is looked at
        script.main([str(burst), "--cache", str(tmp_path / "ex"), "--peek-held-out"])
    assert "burst_tdc2_s902: not a whole dataset" in capsys.readouterr().err


@pytest.mark.parametrize("name, folder, missing", [
    ("localization_check", "burst_tdc2_s902", "not a built sorted-bench set"),
    ("motion_check", "drift_sc2_s902", "not a built drifting set"),
])
def test_the_set_checks_refuse_a_set_held_out_and_not_scored(tmp_path, capsys, name, folder, missing):
    registry = tmp_path / "batches.toml"
    registry.write_text('[[batch]]\nseeds = [901, 902]\n[batch.drift]\nlabel = "d"\n[batch.burst]\nlabel = "b"\n')
    script = load_script(name)
    script.HELD_OUT_REGISTRY = registry
    held = tmp_path / "cache" / folder
    assert script.main([str(held)]) == 2
    assert "held out and not scored yet" in capsys.readouterr().err
    assert script.main([str(held), "--peek-held-out"]) == 2  # past the guard: no analyzer there
    assert missing in capsys.readouterr().err


def test_a_set_that_fails_to_build_is_marked_failed_not_left_empty(tmp_path, monkeypatch, capsys):
    """MEArec sometimes cannot place a recording's cells: the set's folder gets a FAILED file with the
    cause (STATUS.md lists it), the batch goes on and the build exits non-zero."""
    from spikemerge.bench.sorted import write_status

    module = load_script("heldout_batch")
    batch = next(iter(module.load_batches(module.REGISTRY).values()))

    def fail(spec, cache, log):
        raise RuntimeError("Templates could not be selected.")

    monkeypatch.setattr(module, "make_dataset", fail)
    monkeypatch.setattr(module, "ensure_venv_bin_on_path", lambda: None)
    monkeypatch.setattr(module, "run_eval", lambda folders, args, out: None)
    assert module.build(batch, tmp_path) == 1
    failed = sorted(p.parent.name for p in tmp_path.glob("*/FAILED"))
    assert len(failed) == 2 * 2 * len(batch.seeds)  # two scenarios, two sorters
    text = (tmp_path / failed[0] / "FAILED").read_text()
    assert text.startswith("RuntimeError: Templates could not be selected.") and "Traceback" in text
    assert f"{failed[0]}: FAILED RuntimeError" in capsys.readouterr().out
    assert f"{failed[0]}: RuntimeError: Templates could not be selected." in write_status(tmp_path).read_text()


def test_scoring_a_batch_keeps_its_sets_records_once_it_is_marked_scored(tmp_path, monkeypatch, capsys):
    """The records outlive the machine that built the sets (session 31's were lost with it): ``score``
    keeps every ready set's record after the registry says the batch is scored, since the development
    tools refuse sets still held out; a failure to keep leaves the scores standing and says how to retry."""
    import json
    import subprocess

    from spikemerge.bench.heldout import load_batches

    module = load_script("heldout_batch")
    registry = tmp_path / "batches.toml"
    registry.write_text('[[batch]]\nseeds = [901, 902]\n[batch.drift]\nlabel = "d"\n')
    batch = load_batches(registry)["901-902"]
    cache = tmp_path / "cache"
    ready = [f for f in module.dataset_folders(batch, batch.scenarios[0], cache) if not f.name.endswith("s902")]
    for folder in ready:
        folder.mkdir(parents=True)
        (folder / "READY").touch()
    line = {"true_pairs": 4, "tp": 4, "fp": 0, "fn": 0, "wrong_merges": 0, "f1": 1.0}
    presets = module.score_file(cache, batch, batch.scenarios[0], "presets")
    presets.parent.mkdir(parents=True)
    presets.write_text("\n".join(json.dumps({**line, "dataset": f.name, "method": "SI slay", "f1": 0.5})
                                 for f in ready))

    def scored(folders, args, out):
        out.write_text("\n".join(json.dumps({**line, "dataset": f.name, "method": "spikemerge (balanced)"})
                                 for f in folders if (f / "READY").exists()))

    kept_calls = []

    def keep(folders, kept):
        kept_calls.append((folders, kept, load_batches(registry)["901-902"].scored))

    monkeypatch.setattr(module, "run_eval", scored)
    monkeypatch.setattr(module, "keep_records", keep)
    assert module.score(batch, cache, "metrics-v0", again=False, registry=registry, kept=tmp_path / "kept") == 0
    assert kept_calls == [(ready, tmp_path / "kept", "metrics-v0")]  # the ready sets, after the batch is marked
    assert "Kept the sets' records" in capsys.readouterr().out

    def fail(folders, kept):
        raise subprocess.CalledProcessError(1, "explain_sorted.py")

    monkeypatch.setattr(module, "keep_records", fail)
    again = load_batches(registry)["901-902"]
    assert module.score(again, cache, "metrics-v0", again=True, registry=registry, kept=tmp_path / "kept") == 1
    err = capsys.readouterr().err
    assert "could not be kept (the scores stand)" in err and f"{ready[0]}" in err and "--keep" in err
    assert load_batches(registry)["901-902"].scored == "metrics-v0"


def test_batches_scored_side_by_side_all_stay_recorded(tmp_path):
    """Two ``heldout_batch.py score`` runs side by side each rewrite the registry: every ``scored`` line
    lands (the rewrite is serialised), and a writer holding a stale batch is still refused."""
    import threading

    from spikemerge.bench.heldout import load_batches, mark_scored

    registry = tmp_path / "batches.toml"
    seeds = [(901 + 2 * k, 902 + 2 * k) for k in range(8)]
    registry.write_text("".join(f'[[batch]]\nseeds = [{a}, {b}]\n[batch.drift]\nlabel = "d"\n' for a, b in seeds))
    batches = load_batches(registry)
    start = threading.Barrier(len(seeds))
    errors: list[BaseException] = []

    def score(name: str) -> None:
        start.wait()
        try:
            for _ in range(3):  # the same batch again, as a stale copy: refused, nothing written
                try:
                    mark_scored(registry, batches[name], f"v-{name}")
                except ValueError as exc:
                    assert "scored already" in str(exc)
        except BaseException as exc:  # reported by the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=score, args=(f"{a}-{b}",)) for a, b in seeds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    after = load_batches(registry)
    assert {name: batch.scored for name, batch in after.items()} == {f"{a}-{b}": f"v-{a}-{b}" for a, b in seeds}
    assert registry.read_text().count("scored = ") == len(seeds)
    assert not list(tmp_path.glob(".*.tmp"))
