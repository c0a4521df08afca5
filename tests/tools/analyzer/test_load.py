import shutil
import warnings

import numpy as np
import pytest
from spikeinterface.core import load_sorting_analyzer

from spikemerge.errors import SpikemergeError
from spikemerge.tools.analyzer.load import REQUIRED_EXTENSIONS, load_analyzer
from spikemerge.tools.analyzer.rows import file_map
from tests.helpers import folder_digest


def test_load_reports_units_channels_duration_and_extensions(analyzer_folder, small_truth):
    analyzer, info = load_analyzer(analyzer_folder, progress=False)
    assert info.num_units == small_truth.analyzer.get_num_units()
    assert info.num_channels == 32
    assert info.duration_s == pytest.approx(small_truth.spec.duration_s)
    assert info.format == "binary_folder"
    assert set(REQUIRED_EXTENSIONS) <= set(info.extensions_present)
    assert info.extensions_computed == []
    assert "units" in info.summary() and "channels" in info.summary()
    # nothing was missing: the folder itself is used, its arrays memory-mapped, not copied into memory
    assert analyzer.format == "binary_folder"
    # held as a plain view of the map (SpikeInterface cannot close it), still read from its file
    waveforms = analyzer.get_extension("waveforms").data["waveforms"]
    assert not isinstance(waveforms, np.memmap)
    assert file_map(waveforms) == (str(analyzer_folder / "extensions" / "waveforms" / "waveforms.npy"), 128)


@pytest.mark.slow
def test_missing_extensions_are_computed_on_a_copy_and_the_folder_stays_identical(analyzer_folder, small_truth):
    shutil.rmtree(analyzer_folder / "extensions" / "spike_amplitudes")
    shutil.rmtree(analyzer_folder / "extensions" / "unit_locations")
    before = folder_digest(analyzer_folder)
    analyzer, info = load_analyzer(analyzer_folder, recording=small_truth.analyzer.recording, progress=False)
    assert sorted(info.extensions_computed) == ["spike_amplitudes", "unit_locations"]
    assert analyzer.has_extension("spike_amplitudes")
    assert folder_digest(analyzer_folder) == before


def test_no_recording_and_missing_extension_names_what_is_missing(analyzer_folder):
    shutil.rmtree(analyzer_folder / "extensions" / "spike_amplitudes")
    with pytest.raises(SpikemergeError, match="spike_amplitudes") as err:
        load_analyzer(analyzer_folder, progress=False)
    assert "\n" not in str(err.value)


def test_no_recording_but_all_extensions_works(analyzer_folder):
    analyzer, info = load_analyzer(analyzer_folder, progress=False)
    assert not info.has_recording
    assert analyzer.get_num_units() == info.num_units


def test_zarr_analyzer_opens(small_truth, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small_truth.analyzer.save_as(format="zarr", folder=tmp_path / "analyzer.zarr")
    analyzer, info = load_analyzer(tmp_path / "analyzer.zarr", progress=False)
    assert info.format == "zarr"
    assert info.num_units == small_truth.analyzer.get_num_units()


@pytest.mark.parametrize("make, message", [
    (lambda tmp: tmp / "nope", "no such folder"),
    (lambda tmp: (tmp / "empty").mkdir() or tmp / "empty", "not a SortingAnalyzer folder"),
    (lambda tmp: (tmp / "file.txt").write_text("x") and tmp / "file.txt", "is a file"),
])
def test_bad_paths_get_one_line_errors(tmp_path, make, message):
    with pytest.raises(SpikemergeError, match=message) as err:
        load_analyzer(make(tmp_path), progress=False)
    assert "\n" not in str(err.value)


def test_truncated_analyzer_folder_is_reported(analyzer_folder):
    shutil.rmtree(analyzer_folder / "sorting")
    with pytest.raises(SpikemergeError, match="could not read the analyzer"):
        load_analyzer(analyzer_folder, progress=False)


def test_one_unit_is_refused(small_truth, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small_truth.analyzer.select_units(small_truth.analyzer.unit_ids[:1], format="binary_folder",
                                          folder=tmp_path / "one")
    assert load_sorting_analyzer(tmp_path / "one").get_num_units() == 1
    with pytest.raises(SpikemergeError, match="at least two"):
        load_analyzer(tmp_path / "one", progress=False)


_OUTLIVE_SCRIPT = """
import gc, shutil, sys, warnings
import numpy as np
warnings.simplefilter("ignore")
from spikemerge.tools.analyzer.load import load_analyzer, open_analyzer

folder = sys.argv[1]
# arrays handed out by an opened analyzer must stay readable after it is collected
opened = open_analyzer(folder)
held = {name: opened.get_extension(name).get_data() for name in ("templates", "spike_amplitudes", "noise_levels")}
del opened
gc.collect()
assert all(np.isfinite(np.asarray(a, dtype=float)).all() for a in held.values())
# the working copy made when an extension is missing shares the opened extensions' data: it must
# outlive the opened analyzer it was copied from
shutil.rmtree(f"{folder}/extensions/unit_locations")
work, info = load_analyzer(folder, progress=False)
assert info.extensions_computed == ["unit_locations"]
gc.collect()
for name in ("random_spikes", "waveforms", "templates", "noise_levels", "spike_amplitudes"):
    for key, value in work.get_extension(name).data.items():
        assert value is not None, (name, key)
        assert np.isfinite(np.asarray(value, dtype=float)).all(), (name, key)
# an analyzer the caller loaded with SpikeInterface's lazy=True (extensions saved, none loaded yet)
from spikeinterface.core import load_sorting_analyzer
from spikemerge.tools.session import CurationSession

lazy = load_sorting_analyzer(folder, lazy=True)
session = CurationSession.from_analyzer(lazy, folder + "-out", progress=False)
assert session.info.extensions_computed == ["unit_locations"]
del lazy
gc.collect()
for name in ("waveforms", "templates", "spike_amplitudes"):
    assert all(value is not None for value in session.analyzer.get_extension(name).data.values()), name
session.find_candidates()
print("readable")
"""


def test_arrays_outlive_the_opened_analyzer(analyzer_folder):
    """SpikeInterface closes a lazily loaded extension's memory maps (and empties its data, which a
    copy shares) when the extension or its analyzer is collected: before the fix, a segfault or None;
    and a caller's lazily loaded analyzer looked as if it held no extension at all."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _OUTLIVE_SCRIPT, str(analyzer_folder)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert "readable" in done.stdout
