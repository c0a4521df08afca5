"""``plot_merge_results``: one figure per judged group, its images side by side and its decision."""

from __future__ import annotations

import base64
import io
import textwrap
from typing import Any, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from ..errors import SpikemergeError
from .merge import ERROR

DECISION_COLORS = {"merge": "#1a7f37", "not merge": "#b42318", ERROR: "#9a6700"}


def _image(cell: Any) -> np.ndarray | None:
    if not isinstance(cell, str) or not cell:
        return None
    try:
        with Image.open(io.BytesIO(base64.b64decode(cell))) as img:
            return np.asarray(img.convert("RGB"))
    except Exception:  # noqa: BLE001 - a damaged cell is shown as missing
        return None


def _title(group_id: Any, row: pd.Series) -> tuple[str, str]:
    decision = str(row.get("merge_type", "?"))
    units = row.get("unit_ids")
    head = f"Group {group_id}" + (f": units {', '.join(map(str, units))}" if isinstance(units, list) else "")
    if decision == ERROR:
        return f"{head} | ERROR", DECISION_COLORS[ERROR]
    confidence = row.get("confidence")
    conf = f" (confidence {confidence:.2f})" if isinstance(confidence, float) and np.isfinite(confidence) else ""
    merged = row.get("merge_units")
    subset = ""
    if decision == "merge" and isinstance(merged, list) and isinstance(units, list) and len(merged) < len(units):
        subset = f" units {', '.join(map(str, merged))}"
    return f"{head} | {decision.upper()}{subset}{conf}", DECISION_COLORS.get(decision, "black")


def plot_merge_results(
    results_df: pd.DataFrame,
    img_df: pd.DataFrame,
    features: Sequence[str] | None = None,
    *,
    max_text_chars: int = 600,
    figure_width: float = 4.5,
) -> list[Any]:
    """Draw each judged group's images in a row, titled with the decision, reasoning below.

    Figures are created with pyplot (so a notebook shows them) but never shown or blocked on;
    close them with ``matplotlib.pyplot.close(fig)`` when done.

    Parameters
    ----------
    results_df : pandas.DataFrame
        From ``run_vlm_merge``.
    img_df : pandas.DataFrame
        From ``create_merge_img_df`` (same group ids).
    features : list of str, optional
        Image columns to show (default: every column of ``img_df``).
    max_text_chars : int, default: 600
        The reasoning (or error) is cut to this many characters.
    figure_width : float, default: 4.5
        Inches per image.

    Returns
    -------
    list of matplotlib.figure.Figure
        One per row of ``results_df``, in its order.
    """
    import matplotlib.pyplot as plt

    if not isinstance(results_df, pd.DataFrame) or "merge_type" not in results_df.columns:
        raise SpikemergeError("results_df must be the DataFrame returned by run_vlm_merge")
    columns = list(features) if features is not None else list(img_df.columns)
    missing = [c for c in columns if c not in img_df.columns]
    if missing:
        raise SpikemergeError(f"img_df has no column {', '.join(map(repr, missing))}")
    figures = []
    for group_id, row in results_df.iterrows():
        images = [_image(img_df.at[group_id, c]) if group_id in img_df.index else None for c in columns]
        n = max(1, len(columns))
        fig, axes = plt.subplots(1, n, figsize=(figure_width * n, figure_width * 0.75 + 1.6), squeeze=False)
        for ax, name, img in zip(axes[0], columns, images):
            if img is None:
                ax.text(0.5, 0.5, "no image", ha="center", va="center", transform=ax.transAxes)
            else:
                ax.imshow(img)
            ax.set_title(name, fontsize=9)
            ax.axis("off")
        title, color = _title(group_id, row)
        fig.suptitle(title, color=color, fontsize=12, fontweight="bold")
        text = str(row.get("error") if row.get("merge_type") == ERROR else row.get("reasoning", ""))
        if len(text) > max_text_chars:
            text = text[: max_text_chars - 1].rstrip() + "…"
        wrapped = "\n".join(textwrap.wrap(text, width=int(28 * figure_width * n / 4.5 + 20))[:6])
        fig.text(0.01, 0.01, wrapped, fontsize=8, va="bottom", ha="left", wrap=True)
        fig.subplots_adjust(top=0.85, bottom=0.28, wspace=0.05)
        figures.append(fig)
    return figures


__all__ = ["plot_merge_results"]
