"""The curation file: SpikeInterface curation format v2 plus our provenance block, validated before it is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from ...errors import SpikemergeError, one_line
from ..outputs import to_jsonable, write_json_atomic
from ..judges.base import UnitId
from .plan import MergePlan, _native

CURATION_FILE = "curation.json"


def _validate(curation: Mapping[str, Any]) -> None:
    from spikeinterface.curation.curation_model import Curation

    try:
        Curation(**dict(curation))
    except Exception as exc:  # pydantic ValidationError, ValueError
        raise SpikemergeError(
            f"the curation is not valid SpikeInterface curation format: {one_line(exc)}"
        ) from exc


def build_curation(
    unit_ids: Sequence[UnitId],
    plan: MergePlan,
    new_unit_ids: Sequence[UnitId],
    provenance: Mapping[str, Any],
) -> dict[str, Any]:
    """The plan as a SpikeInterface curation dict (format version "2") plus a provenance block.

    Parameters
    ----------
    unit_ids : sequence of UnitId
        All unit ids of the analyzer the curation applies to.
    plan : MergePlan
        The groups to merge.
    new_unit_ids : sequence of UnitId
        The id of each merged unit, aligned with ``plan.groups``.
    provenance : mapping
        Tool version, judge, model, prompt hash, thresholds, time... Stored under the top-level
        key ``"provenance"``, which SpikeInterface's ``Curation`` model ignores. The plan's group
        ids, duplicate flags and skipped verdicts are added under ``"groups"`` and ``"skipped"``
        unless the mapping already has those keys.

    Returns
    -------
    dict
        JSON-ready; validated with ``spikeinterface.curation.curation_model.Curation``.

    Raises
    ------
    SpikemergeError
        The ids do not fit (wrong count, a new id already used by another unit, overlapping groups).
    """
    if len(new_unit_ids) != len(plan.groups):
        raise SpikemergeError(
            f"{len(new_unit_ids)} new unit id(s) for {len(plan.groups)} merge group(s): give one per group"
        )
    groups_info = [
        {"group_id": gid, "unit_ids": list(units), "new_unit_id": new, "duplicate": dup}
        for gid, units, new, dup in zip(plan.source_group_ids, plan.groups, new_unit_ids, plan.duplicate_flags)
    ]
    block = dict(provenance)
    block.setdefault("groups", groups_info)
    block.setdefault("skipped", [{"group_id": gid, "reason": reason} for gid, reason in plan.skipped])
    curation = to_jsonable({
        "format_version": "2",
        "unit_ids": [_native(u) for u in unit_ids],
        "merges": [
            {"unit_ids": [_native(u) for u in units], "new_unit_id": _native(new)}
            for units, new in zip(plan.groups, new_unit_ids)
        ],
        "provenance": block,
    })
    _validate(curation)
    return curation


def write_curation(path: Path, curation: Mapping[str, Any]) -> Path:
    """Validate ``curation`` and write it atomically to ``path`` (loadable with ``load_curation``)."""
    data = to_jsonable(dict(curation))
    _validate(data)
    return write_json_atomic(Path(path), data)
