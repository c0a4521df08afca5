"""Example libraries are untrusted: image names in example.json stay inside the example's folder."""

from __future__ import annotations

import json
import os

import pytest

from spikemerge.errors import SpikemergeError
from spikemerge.tools.examples import EXAMPLE_FILE, load_example, save_example
from spikemerge.tools.judges.base import Example


@pytest.fixture
def library(tmp_path):
    figure = tmp_path / "ccg.png"
    figure.write_bytes(b"\x89PNG fake")
    save_example(Example(name="ok", label="good", unit_ids=(1, 2), images={"crosscorrelograms": figure}), tmp_path / "lib")
    (tmp_path / "secret.png").write_bytes(b"not for the model")
    return tmp_path / "lib"


def _retarget(library, image: str) -> None:
    path = library / "ok" / EXAMPLE_FILE
    record = json.loads(path.read_text())
    record["images"]["crosscorrelograms"] = image
    path.write_text(json.dumps(record))


def test_a_saved_example_loads_with_its_images_inside_its_folder(library):
    example = load_example("ok", library)
    image = example.images["crosscorrelograms"]
    assert image.parent == (library / "ok").resolve() and image.read_bytes() == b"\x89PNG fake"


@pytest.mark.parametrize("image", ["../../secret.png", "../ok/../../secret.png", "sub/../../secret.png"])
def test_a_name_climbing_out_is_refused_in_one_line(library, image):
    _retarget(library, image)
    with pytest.raises(SpikemergeError) as err:
        load_example("ok", library)
    assert "outside its folder" in str(err.value) and "\n" not in str(err.value)


def test_an_absolute_name_is_refused(library, tmp_path):
    _retarget(library, str(tmp_path / "secret.png"))
    with pytest.raises(SpikemergeError, match="outside its folder"):
        load_example("ok", library)


def test_a_symlink_pointing_out_is_refused(library, tmp_path):
    os.symlink(tmp_path / "secret.png", library / "ok" / "link.png")
    _retarget(library, "link.png")
    with pytest.raises(SpikemergeError, match="outside its folder"):
        load_example("ok", library)
