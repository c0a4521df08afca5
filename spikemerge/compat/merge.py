"""``run_vlm_merge``: judge every candidate group of an image DataFrame with spikemerge's VLM judge.

Each group's base64 images are written to a temporary folder as PNGs and handed to
``VLMJudge`` with the numbers ``create_merge_img_df`` computed. Groups named in
``good_merge_groups`` / ``bad_merge_groups`` are shown to the model as labelled examples and are
not judged. A group whose judgement fails gets ``merge_type == "error"`` and the cause in the
``error`` column; it is never reported as "not merge".
"""

from __future__ import annotations

import base64
import binascii
import io
import tempfile
from pathlib import Path
from typing import Any, Hashable, Sequence

import pandas as pd
from langchain_core.language_models import BaseChatModel
from PIL import Image

from ..errors import SpikemergeError
from ..tools.judges.base import Example, JudgeRequest, Verdict
from ..tools.judges.vlm.judge import VLMJudge
from .images import ATTRS_KEY, feature_figure, normalise_groups, plain_unit_id, units_key
from .models import get_model

RESULT_COLUMNS: tuple[str, ...] = (
    "unit_ids", "merge_type", "merge_units", "confidence", "reasoning", "report", "error", "model",
)
"""Columns of ``run_vlm_merge``'s result, before one ``report_<feature>`` column per feature."""

ERROR = "error"
"""``merge_type`` of a group whose judgement failed."""


def _image_features(img_df: pd.DataFrame, features: Sequence[str] | None) -> list[str]:
    if features is None:
        features = [c for c in img_df.columns if _is_feature(c)]
    elif isinstance(features, str):
        features = [features]
    features = list(dict.fromkeys(features))
    if not features:
        raise SpikemergeError("no features to judge: img_df has no feature columns; build it with create_merge_img_df")
    missing = [f for f in features if f not in img_df.columns]
    if missing:
        raise SpikemergeError(
            f"img_df has no column for {', '.join(missing)} (its columns: {', '.join(map(str, img_df.columns))}): "
            "pass features it holds, or build it again with create_merge_img_df(..., features=...)"
        )
    for f in features:
        feature_figure(f)
    return features


def _is_feature(name: Any) -> bool:
    try:
        feature_figure(str(name))
    except SpikemergeError:
        return False
    return True


def _check_img_df(img_df: pd.DataFrame, groups: list[tuple], wanted: Sequence[int]) -> dict[str, Any]:
    """Fail when img_df lacks a needed row or was drawn for other units; return its provenance."""
    if not isinstance(img_df, pd.DataFrame):
        raise SpikemergeError("img_df must be the DataFrame returned by create_merge_img_df")
    absent = [g for g in wanted if g not in img_df.index]
    if absent:
        raise SpikemergeError(
            f"img_df has no row for group(s) {absent}: build it with create_merge_img_df for the same merge_unit_groups"
        )
    meta = img_df.attrs.get(ATTRS_KEY) or {}
    drawn_for = meta.get("unit_groups") or {}
    for gid in wanted:
        if gid in drawn_for and units_key(drawn_for[gid]) != units_key(groups[gid]):
            raise SpikemergeError(
                f"img_df row {gid} shows units {units_key(drawn_for[gid])}, but merge_unit_groups[{gid}] is "
                f"{units_key(groups[gid])}: build img_df from the same merge_unit_groups"
            )
    return meta


def _decode_cell(value: Any) -> bytes:
    """PNG/JPEG bytes of one base64 cell; raises ``ValueError`` with the reason."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("no image")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.verify()
    except Exception:  # noqa: BLE001
        raise ValueError("not an image") from None
    return data


def _write_images(img_df: pd.DataFrame, gid: int, features: Sequence[str], folder: Path) -> dict[str, Path]:
    """The group's images as files keyed by figure name; ``ValueError`` names the bad cell."""
    paths: dict[str, Path] = {}
    for feature in features:
        try:
            data = _decode_cell(img_df.at[gid, feature])
        except ValueError as exc:
            raise ValueError(f"img_df cell [{gid}, {feature!r}]: {exc}") from None
        path = folder / f"group{gid}_{feature}.png"
        path.write_bytes(data)
        paths[feature_figure(feature)] = path
    return paths


def _example_ids(name: str, ids: Sequence[int] | None, n_groups: int) -> list[int]:
    if ids is None:
        return []
    if isinstance(ids, (int, str)):
        ids = [ids]
    out = []
    for g in ids:
        try:
            gid = int(g)
        except (TypeError, ValueError):
            raise SpikemergeError(f"{name} holds {g!r}: give group ids (row numbers of img_df)") from None
        if not 0 <= gid < n_groups:
            raise SpikemergeError(f"{name} holds group {gid}, but the groups are 0..{n_groups - 1}")
        out.append(gid)
    return list(dict.fromkeys(out))


def _judge_of(model: Any, figures: list[str], num_workers: int, mode: str, judge_kwargs: dict[str, Any]) -> VLMJudge:
    if isinstance(model, VLMJudge):
        return model
    if isinstance(model, str):
        model = get_model(model)
    if not isinstance(model, BaseChatModel):
        raise SpikemergeError(
            f"model must be a chat model (from get_model), a model name or a VLMJudge, not {type(model).__name__}"
        )
    return VLMJudge(model, mode=mode, features=figures, max_concurrency=num_workers, **judge_kwargs)  # type: ignore[arg-type]


def _row(verdict: Verdict, features: Sequence[str]) -> dict[str, Any]:
    by_figure = {feature_figure(f): f for f in features}
    reports = {by_figure.get(k, k): v for k, v in verdict.reports.items()}
    if verdict.decision == ERROR:
        cause = verdict.reasoning or "the judgement failed without a message"
        row = {
            "merge_type": ERROR, "merge_units": [], "confidence": float("nan"),
            "reasoning": f"ERROR: {cause}", "report": f"ERROR: {cause}", "error": cause,
        }
    else:
        report = "\n\n".join(f"[{f}] {text}" for f, text in reports.items()) or verdict.reasoning
        row = {
            "merge_type": verdict.decision, "merge_units": list(verdict.merge_unit_ids),
            "confidence": float(verdict.confidence), "reasoning": verdict.reasoning, "report": report, "error": None,
        }
    row.update(unit_ids=list(verdict.unit_ids), model=verdict.model)
    for f in features:
        row[f"report_{f}"] = reports.get(f, "")
    return row


def run_vlm_merge(
    model: BaseChatModel | str | VLMJudge,
    merge_unit_groups: Sequence[Sequence[Hashable]],
    img_df: pd.DataFrame,
    features: Sequence[str] | None = None,
    good_merge_groups: Sequence[int] | None = None,
    bad_merge_groups: Sequence[int] | None = None,
    num_workers: int = 8,
    *,
    policy: str = "balanced",
    mode: str = "two_stage",
    **judge_kwargs: Any,
) -> pd.DataFrame:
    """Decide, for every candidate group, whether its units are one neuron.

    Parameters
    ----------
    model : BaseChatModel, str or VLMJudge
        A vision chat model (``get_model("gpt-4o")``, any LangChain chat model instance), a
        legacy model name, or a configured ``VLMJudge``.
    merge_unit_groups : list of lists of unit ids
        The groups ``img_df`` was built from; group ``i`` is ``merge_unit_groups[i]``.
    img_df : pandas.DataFrame
        From ``create_merge_img_df``: row ``i`` holds group ``i``'s base64 images.
    features : list of str, optional
        Columns of ``img_df`` to show the model (default: all of its feature columns).
    good_merge_groups, bad_merge_groups : list of int, optional
        Group ids shown as labelled examples (one neuron / different neurons); they are not judged.
    num_workers : int, default: 8
        Model calls in flight at once (any value from 1).
    policy : {"conservative", "balanced", "aggressive"}, default: "balanced"
        How ambiguous groups are decided.
    mode : {"two_stage", "single"}, default: "two_stage"
        One report per figure then a decision, or one call per group.
    **judge_kwargs
        Passed to ``VLMJudge`` (``requests_per_second``, ``max_retries``, ...).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``group_id`` (example groups excluded), with ``unit_ids``, ``merge_type``
        (``"merge"``, ``"not merge"``, or ``"error"`` when the judgement failed), ``merge_units``
        (the units to merge, possibly a subset; empty unless merging), ``confidence`` (0-1, NaN
        on error), ``reasoning``, ``report`` (the per-figure reports), ``error`` (the cause, or
        None), ``model`` and one ``report_<feature>`` column per feature.

    Raises
    ------
    SpikemergeError
        Bad arguments, an ``img_df`` built for other groups, or a failure that would hit every
        group (authentication, a model without image input).
    """
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
        raise SpikemergeError(f"num_workers must be a whole number from 1, not {num_workers!r}")
    groups = normalise_groups(merge_unit_groups)
    good = _example_ids("good_merge_groups", good_merge_groups, len(groups))
    bad = _example_ids("bad_merge_groups", bad_merge_groups, len(groups))
    both = sorted(set(good) & set(bad))
    if both:
        raise SpikemergeError(f"group(s) {both} are in both good_merge_groups and bad_merge_groups: keep each in one")
    example_ids = set(good) | set(bad)
    judged = [g for g in range(len(groups)) if g not in example_ids]
    features = _image_features(img_df, features)
    meta = _check_img_df(img_df, groups, sorted(set(judged) | example_ids))
    evidence = meta.get("evidence") or {}
    figures = [feature_figure(f) for f in features]
    judge = _judge_of(model, figures, num_workers, mode, judge_kwargs)

    rows: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="spikemerge-vlm-") as scratch:
        folder = Path(scratch)
        examples = []
        for label, ids in (("good", good), ("bad", bad)):
            for gid in ids:
                try:
                    images = _write_images(img_df, gid, features, folder)
                except ValueError as exc:
                    raise SpikemergeError(f"example group {gid} cannot be shown: {exc}") from None
                examples.append(Example(name=f"group {gid}", label=label,  # type: ignore[arg-type]
                                        unit_ids=tuple(plain_unit_id(u) for u in groups[gid]),
                                        images=images, evidence=evidence.get(units_key(groups[gid]), {})))
        requests = []
        for gid in judged:
            units = tuple(plain_unit_id(u) for u in groups[gid])
            try:
                images = _write_images(img_df, gid, features, folder)
            except ValueError as exc:
                request = JudgeRequest(group_id=gid, unit_ids=units)
                rows[gid] = _row(Verdict.failed(request, str(exc), judge.name, judge.model, policy), features)
                continue
            requests.append(JudgeRequest(group_id=gid, unit_ids=units, images=images,
                                         evidence=evidence.get(units_key(units), {})))
        verdicts = judge.judge_many(requests, examples=examples, policy=policy) if requests else []
    for verdict in verdicts:
        rows[verdict.group_id] = _row(verdict, features)
    # map merged unit ids back to the caller's own objects (numpy ids stay numpy ids)
    for gid, row in rows.items():
        original = {str(plain_unit_id(u)): u for u in groups[gid]}
        row["unit_ids"] = [original.get(str(u), u) for u in row["unit_ids"]]
        row["merge_units"] = [original.get(str(u), u) for u in row["merge_units"]]

    columns = list(RESULT_COLUMNS) + [f"report_{f}" for f in features]
    ordered = [g for g in judged if g in rows]
    result = pd.DataFrame([rows[g] for g in ordered], columns=columns,
                          index=pd.Index(ordered, name="group_id", dtype="int64"))
    result.attrs[ATTRS_KEY] = {"examples": {"good": good, "bad": bad}, "policy": policy,
                               "judge": repr(judge), "usage": _usage(judge)}
    return result


def _usage(judge: VLMJudge) -> dict[str, Any]:
    summary = dict(judge.usage_summary())
    summary.pop("records", None)
    return summary


__all__ = ["ERROR", "RESULT_COLUMNS", "run_vlm_merge"]
