"""What the VLM is sent: prompts from ``spikemerge/prompts``, evidence tables, message lists.

Prompts are data: each stage reads its markdown file, and ``prompt_hash`` covers them all so a
changed prompt changes the cache key and the provenance. Images arrive already encoded
(``vlm_images.prepare_group``), so building a message costs no image work.
"""

from __future__ import annotations

import hashlib
import json
import math
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, Field

from ....policies import Policy
from ..base import Example, JudgeRequest, UnitId
from .calls import MalformedOutput
from .images import EncodedImage, GroupImages

REPORT_PROMPTS = {
    "crosscorrelograms": "vlm_report_crosscorrelograms.md",
    "amplitudes": "vlm_report_amplitudes.md",
    "waveforms": "vlm_report_waveforms.md",
    "pca": "vlm_report_pca.md",
}
GENERIC_REPORT_PROMPT = "vlm_report_generic.md"
PROMPT_FILES = (
    "vlm_system.md", *REPORT_PROMPTS.values(), GENERIC_REPORT_PROMPT,
    "vlm_head.md", "vlm_single.md", "vlm_examples.md",
)


class HeadDecision(BaseModel):
    """The structured answer of the deciding stage: a partition of the group into neurons.

    ``merge_groups`` lists each set of units that is one neuron (several sets when the group
    holds the splits of several neurons). ``merge_unit_ids`` is the older single-set answer,
    still read when ``merge_groups`` is empty.
    """

    decision: Literal["merge", "not merge", "abstain"] = Field(
        description="'merge' if at least two units are one neuron; 'not merge' if every unit is a different "
        "neuron; 'abstain' if the evidence is too thin to tell (few spikes, few expected coincidences)"
    )
    confidence: float = Field(description="probability from 0 to 1 that the decision is right")
    merge_groups: list[list[str]] = Field(
        default_factory=list,
        description="for 'merge': each inner list is one neuron's units (at least two ids, all from the group, "
        "no id in two lists); units in no list stay as they are. Empty for 'not merge' and 'abstain'",
    )
    merge_unit_ids: list[str] = Field(
        default_factory=list, description="leave empty; use merge_groups"
    )
    reasoning: str = Field(description="a few sentences citing the evidence")


@lru_cache(maxsize=None)
def load_prompt(name: str) -> str:
    """The text of ``spikemerge/prompts/<name>``."""
    return resources.files("spikemerge").joinpath("prompts", name).read_text(encoding="utf-8").strip()


def prompt_hash() -> str:
    """sha256 over every VLM prompt file (name and content) and the answer schema the deciding
    call is given (its field descriptions are prompt text too), for provenance and cache keys."""
    digest = hashlib.sha256()
    for name in PROMPT_FILES:
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update(load_prompt(name).encode())
        digest.update(b"\0")
    digest.update(json.dumps(HeadDecision.model_json_schema(), sort_keys=True).encode())
    return digest.hexdigest()


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        items = [_fmt(v) for v in value[:8]]
        return "[" + ", ".join(items) + (", ..." if len(value) > 8 else "") + "]"
    try:  # numpy scalars and 0-d arrays
        return _fmt(value.item())
    except (AttributeError, ValueError):
        return str(value)[:60]


def _flatten(evidence: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in evidence.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows.extend(_flatten(value, f"{name}."))
        else:
            rows.append((name, value))
    return rows


def evidence_table(evidence: Mapping[str, Any]) -> str:
    """The numbers as a compact two-column markdown table (nested dicts flattened with dots)."""
    rows = _flatten(evidence)
    if not rows:
        return "(no numbers were computed for this group)"
    lines = ["| quantity | value |", "|---|---|"]
    lines += [f"| {name} | {_fmt(value)} |" for name, value in rows]
    return "\n".join(lines)


def units_text(unit_ids: Sequence[UnitId]) -> str:
    return ", ".join(str(u) for u in unit_ids)


def policy_text(policy: Policy) -> str:
    return (
        f"## Policy: {policy.name}\n{policy.description}\n"
        f"Decide 'merge' for a set of units only if your probability that they are one neuron is at least "
        f"{policy.merge_threshold:.2f}; decide 'not merge' when the evidence shows different neurons, and "
        f"'abstain' when it is too thin to tell either way."
    )


def report_messages(feature: str, image: EncodedImage, unit_ids: Sequence[UnitId]) -> list[BaseMessage]:
    """System prompt + one figure with what to look for in it (a per-modality report call)."""
    prompt = load_prompt(REPORT_PROMPTS.get(feature, GENERIC_REPORT_PROMPT))
    text = f"{prompt}\n\nUnits in this group: {units_text(unit_ids)} (figure: {feature})."
    return [
        SystemMessage(load_prompt("vlm_system.md")),
        HumanMessage(content_blocks=[{"type": "text", "text": text}, image.block()]),
    ]


def example_blocks(examples: Sequence[Example], overviews: Sequence[EncodedImage | None]) -> list[dict[str, Any]]:
    """The few-shot examples as content blocks: label, note, numbers and one overview image each."""
    if not examples:
        return []
    blocks: list[dict[str, Any]] = [{"type": "text", "text": load_prompt("vlm_examples.md")}]
    for i, (ex, overview) in enumerate(zip(examples, overviews, strict=True), 1):
        meaning = "one neuron, merged" if ex.label == "good" else "different neurons, not merged"
        text = (
            f"### Example {i} ({ex.name}): {ex.label} ({meaning})\nUnits: {units_text(ex.unit_ids)}\n"
            + (f"Curator's note: {ex.note}\n" if ex.note else "")
            + f"Numbers:\n{evidence_table(ex.evidence)}"
        )
        blocks.append({"type": "text", "text": text})
        if overview is not None:
            blocks.append(overview.block())
    blocks.append({"type": "text", "text": "### End of examples. The group to decide follows."})
    return blocks


def overview_paths(images: Mapping[str, Path], features: Sequence[str] | None) -> list[Path]:
    """The figures of one overview image: the rendered composite if shown, else the features."""
    if "composite" in images and (features is None or "composite" in features or len(images) == 1):
        return [Path(images["composite"])]
    keys = [k for k in (features or images) if k in images and k != "composite"]
    return [Path(images[k]) for k in keys]


def head_messages(
    request: JudgeRequest,
    reports: Mapping[str, str],
    examples: Sequence[Example],
    images: GroupImages,
    policy: Policy,
) -> list[BaseMessage]:
    """The deciding call of two-stage mode: examples, reports, numbers, one overview image."""
    report_text = "\n\n".join(f"### Report on {feature}\n{text}" for feature, text in reports.items())
    text = (
        f"{load_prompt('vlm_head.md')}\n\n{policy_text(policy)}\n\n"
        f"## Group {request.group_id}: units {units_text(request.unit_ids)}\n\n{report_text}\n\n"
        f"## Numbers\n{evidence_table(request.evidence)}\n\nThe overview image of this group's figures follows."
    )
    blocks = example_blocks(examples, images.examples) + [{"type": "text", "text": text}]
    if images.overview is not None:
        blocks.append(images.overview.block())
    return [SystemMessage(load_prompt("vlm_system.md")), HumanMessage(content_blocks=blocks)]


def single_messages(
    request: JudgeRequest,
    examples: Sequence[Example],
    images: GroupImages,
    policy: Policy,
) -> list[BaseMessage]:
    """The one call of single mode: examples, every figure (each fitted to tiles), numbers."""
    text = (
        f"{load_prompt('vlm_single.md')}\n\n{policy_text(policy)}\n\n"
        f"## Group {request.group_id}: units {units_text(request.unit_ids)}\n\n"
        f"## Numbers\n{evidence_table(request.evidence)}\n\nThe figures follow, each after its name."
    )
    blocks = example_blocks(examples, images.examples) + [{"type": "text", "text": text}]
    for feature, image in images.figures.items():
        blocks.append({"type": "text", "text": f"Figure: {feature}"})
        blocks.append(image.block())
    return [SystemMessage(load_prompt("vlm_system.md")), HumanMessage(content_blocks=blocks)]


def report_text(message: Any) -> str:
    """The text of a report reply; an empty reply is malformed (never read as a judgement)."""
    text = getattr(message, "text", None)
    if not isinstance(text, str):  # older langchain-core: text was a method
        text = text() if callable(text) else None
    if not isinstance(text, str) or not text.strip():
        raise MalformedOutput("the model returned an empty report")
    return str(text).strip()


def parse_decision(result: Any, unit_ids: Sequence[UnitId]) -> tuple[str, float, list[list[UnitId]], str]:
    """Validate a structured head answer against the group: decision, confidence, partition, reasoning.

    ``result`` is the ``include_raw=True`` dict (``raw``, ``parsed``, ``parsing_error``), a
    parsed ``HeadDecision`` or a dict of one. The merges come from ``merge_groups`` (several
    parts), else from an older single-set ``merge_unit_ids``; a merge naming no units merges
    the whole group. Unknown unit ids, a part of fewer than two units, a unit in two parts, or
    an unparsable answer raise ``MalformedOutput`` (retryable).
    """
    parsed = result.get("parsed") if isinstance(result, dict) and "parsed" in result else result
    if isinstance(parsed, dict):
        try:
            parsed = HeadDecision.model_validate(parsed)
        except Exception as exc:  # noqa: BLE001
            raise MalformedOutput(f"structured output did not match the schema: {exc}") from None
    if not isinstance(parsed, HeadDecision):
        error = result.get("parsing_error") if isinstance(result, dict) else None
        raise MalformedOutput(f"structured output could not be parsed: {str(error)[:200] if error else 'empty'}")
    by_text = {str(u): u for u in unit_ids}
    confidence = parsed.confidence
    if not 0.0 <= confidence <= 1.0:
        confidence = confidence / 100.0 if 1.0 < confidence <= 100.0 else float("nan")
    if math.isnan(confidence):
        raise MalformedOutput(f"confidence {parsed.confidence} is not a probability")
    if parsed.decision != "merge":
        return parsed.decision, confidence, [], parsed.reasoning
    parts = [[str(u).strip() for u in part] for part in parsed.merge_groups if part]
    if not parts:
        parts = [[str(u).strip() for u in parsed.merge_unit_ids] or list(by_text)]
    seen: set[str] = set()
    for part in parts:
        unknown = [u for u in part if u not in by_text]
        if unknown or len(set(part)) < 2 or seen & set(part):
            raise MalformedOutput(
                f"merge_groups {parts} must be disjoint sets of at least two of {list(by_text)}"
            )
        seen |= set(part)
    ordered = [[by_text[u] for u in by_text if u in set(part)] for part in parts]
    return "merge", confidence, ordered, parsed.reasoning
