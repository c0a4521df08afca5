"""The API of the earlier VLM merge tool, backed by spikemerge.

Notebooks written for that tool run by changing their import lines::

    from spikemerge.compat import create_merge_img_df, run_vlm_merge, plot_merge_results, get_model

``create_merge_img_df`` draws with spikemerge's renderer, ``run_vlm_merge`` judges with
``spikemerge.tools.judges.vlm.judge.VLMJudge`` and ``get_model`` maps the old model names to current
``init_chat_model`` ids. ``resolve_merging_graph`` and ``merge_units`` stay SpikeInterface's own.
"""

from __future__ import annotations

from .images import LEGACY_FEATURES, MERGE_FEATURES, analyzer_fingerprint, create_merge_img_df, feature_figure
from .merge import ERROR, RESULT_COLUMNS, run_vlm_merge
from .models import MODEL_ALIASES, get_model, known_model_names, resolve_model_name
from .plots import plot_merge_results

__all__ = [
    "ERROR",
    "LEGACY_FEATURES",
    "MERGE_FEATURES",
    "MODEL_ALIASES",
    "RESULT_COLUMNS",
    "analyzer_fingerprint",
    "create_merge_img_df",
    "feature_figure",
    "get_model",
    "known_model_names",
    "plot_merge_results",
    "resolve_model_name",
    "run_vlm_merge",
]
