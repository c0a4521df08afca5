"""load_analyzer: open a SortingAnalyzer folder lazily, validate it, compute what is missing on a copy;
AnalyzerView: the one per-unit reading of it that evidence and render share."""

from __future__ import annotations

from .load import (
    EXTENSION_PARAMS, READ_EXTENSIONS, REQUIRED_EXTENSIONS, AnalyzerInfo, attach_extensions, describe, load_analyzer,
    missing_extensions, open_analyzer, prepare_analyzer, present_extensions,
)
from .view import DEFAULT_VIEW_PARAMS, AnalyzerView, UnitArrays, ViewParams

__all__ = [
    "DEFAULT_VIEW_PARAMS", "EXTENSION_PARAMS", "READ_EXTENSIONS", "REQUIRED_EXTENSIONS", "AnalyzerInfo", "AnalyzerView",
    "UnitArrays", "ViewParams", "attach_extensions", "describe", "load_analyzer", "missing_extensions", "open_analyzer",
    "prepare_analyzer", "present_extensions",
]
