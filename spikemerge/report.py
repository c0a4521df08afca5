"""report.html: every group's figures, evidence, verdict and reasoning on one offline page.

One self-contained HTML file (inline CSS, no script, no CDN) beside the ``images/`` folder;
images are referenced by paths relative to the report itself (never to the working folder the
command ran in), so the output folder can be opened, moved or zipped as a whole. Images are
lazy-loaded, so the page stays usable with hundreds of groups. Merged groups come first, then
not merged, abstained (not enough evidence), errors, and groups not judged yet.
"""

from __future__ import annotations

import html
import os
from urllib.parse import quote
from pathlib import Path
from typing import Any, Mapping, Sequence

from .tools.outputs import write_text_atomic
from .tools.secrets import scrub

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5rem;color:#1d2330;background:#fafbfc}
h1{font-size:1.4rem;margin:0 0 .3rem}
h2{font-size:1.1rem;margin:0}
table{border-collapse:collapse;font-size:.85rem}
th,td{border:1px solid #d7dbe2;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#eef1f5}
.summary td.num,.evidence td.num{text-align:right;font-variant-numeric:tabular-nums}
section{background:#fff;border:1px solid #d7dbe2;border-radius:6px;margin:1.2rem 0;padding:.8rem 1rem}
.head{display:flex;gap:1rem;align-items:baseline;flex-wrap:wrap}
.badge{padding:.1rem .5rem;border-radius:999px;font-size:.8rem;font-weight:600}
.merge{background:#d9f2e0;color:#14532d}.not-merge{background:#f1f2f4;color:#374151}
.error{background:#fde2e1;color:#7f1d1d}.unjudged{background:#fff4d6;color:#6b4e00}
.abstain{background:#e4ecfb;color:#1e3a6e;border:1px dashed #6b86c4}
nav.files{font-size:.85rem;margin:.3rem 0 .8rem}nav.files a{margin-right:1rem}
.reason{white-space:pre-wrap;margin:.5rem 0;font-size:.9rem}
.meta{color:#5b6472;font-size:.8rem}
details.evidence summary{font-size:.8rem;color:#5b6472;cursor:pointer}
details.evidence table{margin-top:.3rem}
.figs{display:flex;flex-wrap:wrap;gap:.6rem;margin-top:.6rem}
figure{margin:0}figcaption{font-size:.75rem;color:#5b6472}
figure img{width:384px;height:auto;border:1px solid #e3e6eb;background:#fff}
figure img.wide{width:576px}
a{color:#1f5fbf}
"""

_ORDER = {"merge": 0, "not merge": 1, "abstain": 2, "error": 3, "unjudged": 4}
_LABELS = {"abstain": "abstain: not enough evidence"}
"""Badge text where the decision word alone would mislead (abstain is not "not merge")."""
_LINKED_FILES = ("decisions.csv", "curation.json", "run.json", "review.json")
"""Outputs linked from the top of the page when they exist beside it."""


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _decision(row: Mapping) -> str:
    verdict = row.get("verdict") or None
    return str(verdict.get("decision", "unjudged")) if verdict else "unjudged"


def _badge_class(decision: str) -> str:
    return {"merge": "merge", "not merge": "not-merge", "abstain": "abstain", "error": "error"}.get(decision, "unjudged")


def _badge(decision: str) -> str:
    return f"<span class='badge {_badge_class(decision)}'>{_esc(_LABELS.get(decision, decision))}</span>"


def _merges(verdict: Mapping) -> str:
    """The merge parts as text: ``13, 15 | 68, 69`` (one part per neuron)."""
    parts = verdict.get("merge_groups") or ([verdict["merge_unit_ids"]] if verdict.get("merge_unit_ids") else [])
    return " | ".join(_units(p) for p in parts)


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return _esc(value)
    if isinstance(value, (int,)):
        return str(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return _esc(value)
    return f"{number:.3g}" if number == number else "–"


def _units(values: Any) -> str:
    return ", ".join(str(v) for v in (values or []))


def _relative(path: Any, out_dir: Path) -> str:
    """A path as the report must reference it: relative to the report's folder, forward slashes, URL-quoted.

    ``path`` is an ordinary path (absolute, or relative to the working folder, as Python reads
    it): resolving both sides first is what keeps a relative ``--out`` from doubling its prefix.
    """
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(out_dir)).replace(os.sep, "/")
    return _esc(quote(rel, safe="/._-~"))


def sort_rows(rows: Sequence[Mapping]) -> list[Mapping]:
    """Merged groups first, then not merged, errors, unjudged; by group id within each."""
    return sorted(rows, key=lambda r: (_ORDER.get(_decision(r), 4), str(type(r.get("group_id"))),
                                       r.get("group_id")))


def _summary(rows: list[Mapping]) -> str:
    lines = ["<table class='summary'><thead><tr><th>group</th><th>units</th><th>decision</th>"
             "<th>confidence</th><th>merge units</th><th>judge</th></tr></thead><tbody>"]
    for row in rows:
        verdict = row.get("verdict") or {}
        decision = _decision(row)
        gid = _esc(row.get("group_id"))
        lines.append(
            f"<tr><td><a href='#group-{gid}'>{gid}</a></td><td>{_esc(_units(row.get('unit_ids')))}</td>"
            f"<td>{_badge(decision)}</td>"
            f"<td class='num'>{_fmt(verdict.get('confidence')) if verdict else ''}</td>"
            f"<td>{_esc(_merges(verdict))}</td>"
            f"<td>{_esc(verdict.get('judge', ''))}</td></tr>"
        )
    lines.append("</tbody></table>")
    return "\n".join(lines)


def _pair_table(pairs: Sequence[Mapping]) -> str:
    """Per-pair evidence with one column per pair and one row per measure (few pairs, many measures)."""
    names = [f"{p.get('unit_a', '?')} × {p.get('unit_b', '?')}" for p in pairs]
    measures = [k for k in dict.fromkeys(k for p in pairs for k in p) if k not in ("unit_a", "unit_b")]
    head = "".join(f"<th>{_esc(n)}</th>" for n in names)
    rows = "".join(
        f"<tr><th>{_esc(m.replace('_', ' '))}</th>"
        + "".join(f"<td class='num'>{_fmt(p.get(m))}</td>" for p in pairs) + "</tr>"
        for m in measures
    )
    return f"<table class='evidence'><thead><tr><th>pair</th>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _evidence(evidence: Mapping) -> str:
    if not evidence:
        return "<p class='meta'>no evidence numbers</p>"
    parts, scalars = [], []
    for key, value in evidence.items():
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, Mapping) for v in value):
            parts.append(_pair_table(value))
        else:
            scalars.append(f"<tr><th>{_esc(str(key).replace('_', ' '))}</th><td class='num'>{_fmt(value)}</td></tr>")
    if scalars:
        parts.insert(0, f"<table class='evidence'>{''.join(scalars)}</table>")
    return f"<details class='evidence'><summary>evidence numbers</summary>{''.join(parts)}</details>"


def _figures(images: Mapping, out_dir: Path) -> str:
    parts = []
    for feature, path in (images or {}).items():
        src = _relative(path, out_dir)
        wide = " class='wide'" if feature == "composite" else ""
        parts.append(
            f"<figure><a href='{src}'><img src='{src}' loading='lazy' decoding='async'{wide} "
            f"alt='{_esc(feature)}'></a><figcaption>{_esc(feature)}</figcaption></figure>"
        )
    return f"<div class='figs'>{''.join(parts)}</div>" if parts else "<p class='meta'>no figures</p>"


def _section(row: Mapping, out_dir: Path) -> str:
    verdict = row.get("verdict") or None
    decision = _decision(row)
    gid = _esc(row.get("group_id"))
    head = (f"<div class='head'><h2>Group {gid}</h2><span>units {_esc(_units(row.get('unit_ids')))}</span>"
            f"{_badge(decision)}")
    if verdict:
        head += f"<span>confidence {_fmt(verdict.get('confidence'))}</span>"
        if _merges(verdict):
            head += f"<span>merge {_esc(_merges(verdict))}</span>"
    head += "</div>"
    body = [head]
    if verdict:
        body.append(f"<p class='reason'>{_esc(scrub(str(verdict.get('reasoning') or '')))}</p>")
        meta = ", ".join(f"{k}: {_esc(verdict.get(k))}" for k in ("judge", "model", "policy") if verdict.get(k))
        if meta:
            body.append(f"<p class='meta'>{meta}</p>")
    else:
        body.append("<p class='meta'>not judged yet</p>")
    body.append(_evidence(row.get("evidence") or {}))
    body.append(_figures(row.get("images") or {}, out_dir))
    return f"<section id='group-{gid}'>{''.join(body)}</section>"


def render_report_html(out_dir: Path, rows: Sequence[Mapping], calibration: str | None = None) -> str:
    """The report page as a string (see :func:`write_report`)."""
    out_dir = Path(out_dir)
    ordered = sort_rows(rows)
    counts: dict[str, int] = {}
    for row in ordered:
        counts[_decision(row)] = counts.get(_decision(row), 0) + 1
    tally = ", ".join(f"{n} {_esc(_LABELS.get(k, k))}" for k, n in sorted(counts.items(), key=lambda kv: _ORDER.get(kv[0], 4)))
    links = "".join(f"<a href='{_relative(out_dir / name, out_dir)}'>{_esc(name)}</a>"
                    for name in _LINKED_FILES if (out_dir / name).is_file())
    nav = f"<nav class='files'>{links}</nav>\n" if links else ""
    sections = "\n".join(_section(row, out_dir) for row in ordered)
    calibrated = f"<p class='calibration'><b>Calibration</b>: {_esc(scrub(calibration))}</p>\n" if calibration else ""
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>spikemerge report</title><style>{_CSS}</style></head><body>\n"
        f"<h1>spikemerge report</h1><p class='meta'>{len(ordered)} groups: {tally or 'none'}</p>\n"
        f"{nav}{calibrated}"
        f"{_summary(ordered)}\n{sections}\n</body></html>\n"
    )


def write_report(out_dir: Path, rows: Sequence[Mapping], calibration: str | None = None) -> Path:
    """Write ``out_dir/report.html`` atomically.

    Parameters
    ----------
    out_dir : Path
        The output folder; every path on the page is written relative to it.
    rows : Sequence[Mapping]
        One per group: ``group_id``, ``unit_ids``, ``images`` (feature -> path, absolute or
        relative to the working folder), ``evidence``
        (name -> number, may be empty) and ``verdict`` (decision, confidence, merge_unit_ids,
        merge_groups, reasoning, judge, model, policy) or None when not judged yet.
    calibration : str, optional
        The one-line result of the calibration on the recording, shown above the groups.

    Returns
    -------
    Path
        The report's path.
    """
    out_dir = Path(out_dir)
    return write_text_atomic(out_dir / "report.html", render_report_html(out_dir, rows, calibration))
