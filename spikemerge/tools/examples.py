"""A small on-disk library of labelled example groups, reusable across recordings (few-shot).

Each example is a folder: ``example.json`` (label, note, unit ids, evidence, source analyzer)
and copies of its figures, so the library survives the output folder it was made in.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from pydantic import ValidationError

from ..errors import SpikemergeError
from .outputs import staged_folder, to_jsonable, write_json_atomic
from .judges.base import Example
from .schemas import ExampleRecord

EXAMPLE_FILE = "example.json"


def default_library() -> Path:
    """``$SPIKEMERGE_EXAMPLES``, else ``~/.local/share/spikemerge/examples``."""
    return Path(os.environ.get("SPIKEMERGE_EXAMPLES", Path.home() / ".local" / "share" / "spikemerge" / "examples"))


def _safe_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
        raise SpikemergeError(f"example name {name!r}: use letters, digits, '-', '_' or '.' (at most 64)")
    return name


def save_example(example: Example, library: Path | None = None, overwrite: bool = False) -> Path:
    """Copy ``example`` (figures included) into ``library/<name>``; returns its folder."""
    library = Path(library or default_library())
    folder = library / _safe_name(example.name)
    if folder.exists():
        if not overwrite:
            raise SpikemergeError(f"an example named {example.name!r} exists in {library}: choose another name")
        shutil.rmtree(folder)
    record = ExampleRecord(
        name=example.name, label=example.label, unit_ids=list(example.unit_ids), note=example.note,
        source=example.source, images={k: f"{k}{Path(p).suffix}" for k, p in example.images.items()},
        evidence=to_jsonable(dict(example.evidence)),
    )
    with staged_folder(folder) as staging:
        for feature, path in example.images.items():
            shutil.copyfile(path, staging / record.images[feature])
        write_json_atomic(staging / EXAMPLE_FILE, record.model_dump())
    return folder


def load_example(name: str, library: Path | None = None, label: str | None = None) -> Example:
    """Read a saved example; ``label`` overrides the saved one (a good example reused as bad)."""
    library = Path(library or default_library())
    path = library / _safe_name(name) / EXAMPLE_FILE
    if not path.exists():
        known = ", ".join(list_examples(library)) or "none saved yet"
        raise SpikemergeError(f"no saved example {name!r} in {library} (known: {known})")
    try:
        record = ExampleRecord.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise SpikemergeError(f"example {name!r} in {library} is not valid ({exc.error_count()} problems): save it again") from None
    return Example(
        name=record.name, label=label or record.label, unit_ids=tuple(record.unit_ids),
        images={k: confined_image(path.parent, v, name) for k, v in record.images.items()}, evidence=record.evidence,
        note=record.note, source=record.source,
    )


def confined_image(folder: Path, image: str, name: str = "") -> Path:
    """The path of ``image`` inside an example's ``folder``, refusing anything that leaves it.

    A shared library is untrusted input: an ``example.json`` naming ``../../secret.png`` or an
    absolute path would otherwise be read and sent to a model. Only a plain file name (or a
    relative path that stays inside the folder, symlinks resolved) is accepted.

    Raises
    ------
    SpikemergeError
        The name is absolute, climbs out of the folder, or resolves outside it.
    """
    label = f"example {name!r}" if name else f"the example in {folder}"
    candidate = Path(image)
    root = Path(folder).resolve()
    if not image or candidate.is_absolute() or candidate.drive or ".." in candidate.parts:
        raise SpikemergeError(f"{label} names image {image!r} outside its folder: fix example.json or delete the example")
    resolved = (root / candidate).resolve()
    if resolved != root and root not in resolved.parents:
        raise SpikemergeError(f"{label} names image {image!r} outside its folder: fix example.json or delete the example")
    return resolved


def list_examples(library: Path | None = None) -> list[str]:
    library = Path(library or default_library())
    if not library.is_dir():
        return []
    return sorted(p.name for p in library.iterdir() if (p / EXAMPLE_FILE).exists())
