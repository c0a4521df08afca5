"""load_analyzer: open a SortingAnalyzer folder, validate it, compute what is missing on a copy."""

from __future__ import annotations

from .load import (
    EXTENSION_PARAMS, REQUIRED_EXTENSIONS, AnalyzerInfo, describe, load_analyzer, missing_extensions, open_analyzer,
    prepare_analyzer,
)

__all__ = [
    "EXTENSION_PARAMS", "REQUIRED_EXTENSIONS", "AnalyzerInfo", "describe", "load_analyzer", "missing_extensions",
    "open_analyzer", "prepare_analyzer",
]
