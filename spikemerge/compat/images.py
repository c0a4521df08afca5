"""``create_merge_img_df``: one row per candidate group, one base64 PNG per feature, drawn by spikemerge.

The legacy feature names map onto the renderer's figures (``LEGACY_FEATURES``). Images are
drawn by ``spikemerge.tools.render.groups.render_groups``. With a ``save_folder`` they are also kept on
disk with an index that records, for every image, the analyzer's content fingerprint, the
group's unit ids, the feature and the image's sha256; ``load_if_exists=True`` reuses an image
only when all four match the request, so a cache written for other groups, other features or
another analyzer is never returned.

The returned DataFrame carries its provenance in ``df.attrs["spikemerge"]`` (unit ids per group,
features, analyzer fingerprint, and the numbers behind each group's figures), which
``run_vlm_merge`` checks and forwards to the judge.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Hashable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import SpikemergeError
from ..tools.outputs import write_text_atomic
from ..tools.render.groups import ALL_FEATURES, DEFAULT_SETTINGS, render_groups

LEGACY_FEATURES: dict[str, str] = {
    "waveform_single": "waveforms",
    "waveform_multi": "waveforms_multi",
    "crosscorrelograms": "crosscorrelograms",
    "spike_locations": "spike_locations",
    "amplitude_plot": "amplitudes",
    "pca_clustering": "pca",
}
"""Legacy feature name -> spikemerge figure name. spikemerge's own names are accepted too."""

MERGE_FEATURES: tuple[str, ...] = ("waveform_single", "amplitude_plot", "crosscorrelograms", "pca_clustering")
"""Default features: the legacy names of the renderer's default figures."""

CACHE_SUBFOLDER = "spikemerge_merge_images"
INDEX_NAME = "index.json"
INDEX_FORMAT = 1
ATTRS_KEY = "spikemerge"

_FINGERPRINT_EXTENSIONS = (
    "random_spikes", "waveforms", "templates", "spike_amplitudes", "spike_locations",
    "unit_locations", "principal_components", "noise_levels",
)


# ---------------------------------------------------------------------------------------------
# names


def feature_figure(name: str) -> str:
    """The renderer's figure name for a legacy or spikemerge feature name.

    Raises
    ------
    SpikemergeError
        The name is neither a legacy feature nor a spikemerge figure.
    """
    if name in LEGACY_FEATURES:
        return LEGACY_FEATURES[name]
    if name in ALL_FEATURES:
        return name
    raise SpikemergeError(
        f"unknown feature {name!r}: use {', '.join(LEGACY_FEATURES)} (or spikemerge's {', '.join(ALL_FEATURES)})"
    )


def _check_features(features: Sequence[str] | str) -> list[str]:
    if isinstance(features, str):
        features = [features]
    features = list(dict.fromkeys(features))
    if not features:
        raise SpikemergeError(f"no features asked for: choose from {', '.join(LEGACY_FEATURES)}")
    figures = [feature_figure(f) for f in features]
    clash = {fig for fig in figures if figures.count(fig) > 1}
    if clash:
        raise SpikemergeError(f"features {features} name the same figure twice ({', '.join(sorted(clash))}): keep one")
    return features


def plain_unit_id(unit_id: Any) -> Any:
    """A numpy scalar unit id as the Python value (``np.str_('3')`` -> ``'3'``)."""
    return unit_id.item() if isinstance(unit_id, np.generic) else unit_id


def normalise_groups(unit_groups: Sequence[Sequence[Hashable]]) -> list[tuple]:
    """Candidate groups as tuples of unit ids, checked non-empty."""
    if isinstance(unit_groups, (str, bytes)) or not isinstance(unit_groups, Sequence | np.ndarray):
        raise SpikemergeError("unit_groups must be a list of unit-id lists, e.g. [[1, 4], [2, 7]]")
    groups = []
    for gid, group in enumerate(unit_groups):
        if isinstance(group, (str, bytes)) or not hasattr(group, "__iter__"):
            raise SpikemergeError(f"group {gid} must be a list of unit ids, not {group!r}")
        units = tuple(group)
        if len(units) < 2:
            raise SpikemergeError(f"group {gid} has {len(units)} unit(s): a merge group needs at least two")
        groups.append(units)
    return groups


def units_key(units: Sequence[Hashable]) -> str:
    """A group's unit ids as text, the key for cached images and evidence: ``"3 7 12"``."""
    return " ".join(str(plain_unit_id(u)) for u in units)


# ---------------------------------------------------------------------------------------------
# analyzer identity


def _feed(h: Any, value: Any) -> None:
    if isinstance(value, np.ndarray):
        if value.dtype.names:  # structured: hash each field
            for name in value.dtype.names:
                h.update(name.encode())
                _feed(h, np.ascontiguousarray(value[name]))
            return
        h.update(f"{value.dtype.str}{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    else:
        h.update(json.dumps(value, sort_keys=True, default=str).encode())


def analyzer_fingerprint(analyzer: Any) -> str:
    """A content hash of everything the figures are drawn from.

    Covers unit and channel ids, sampling frequency, segment lengths, channel locations, every
    spike (sample, unit, segment), the sparsity mask, the average templates, the sampled spikes
    and the parameters of the extensions the figures read. Two analyzers with equal
    fingerprints draw identical figures for the same group.

    Parameters
    ----------
    analyzer : SortingAnalyzer

    Returns
    -------
    str
        sha256 hex digest.
    """
    h = hashlib.sha256()
    _feed(h, [str(u) for u in analyzer.unit_ids])
    _feed(h, [str(c) for c in analyzer.channel_ids])
    _feed(h, float(analyzer.sampling_frequency))
    _feed(h, [int(analyzer.get_num_samples(s)) for s in range(analyzer.get_num_segments())])
    _feed(h, np.asarray(analyzer.get_channel_locations(), dtype=float))
    _feed(h, analyzer.sorting.to_spike_vector())
    if analyzer.sparsity is not None:
        _feed(h, np.asarray(analyzer.sparsity.mask, dtype=bool))
    templates = analyzer.get_extension("templates")
    if templates is not None:
        _feed(h, np.asarray(templates.get_templates(operator="average"), dtype=np.float32))
    random_spikes = analyzer.get_extension("random_spikes")
    if random_spikes is not None:
        _feed(h, np.asarray(random_spikes.get_random_spikes()))
    params = {}
    for name in _FINGERPRINT_EXTENSIONS:
        ext = analyzer.get_extension(name)
        if ext is not None:
            params[name] = ext.params
    _feed(h, params)
    _feed(h, DEFAULT_SETTINGS.key())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# on-disk cache


def _entry_key(fingerprint: str, units: Sequence[Hashable], figure: str) -> str:
    return hashlib.sha256(json.dumps([fingerprint, units_key(units), figure]).encode()).hexdigest()


def _read_index(folder: Path) -> dict[str, Any]:
    path = folder / INDEX_NAME
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT or not isinstance(index.get("entries"), dict):
        return {}
    return index["entries"]


def _write_index(folder: Path, entries: Mapping[str, Any]) -> None:
    text = json.dumps({"format": INDEX_FORMAT, "entries": dict(entries)}, indent=1, sort_keys=True)
    write_text_atomic(folder / INDEX_NAME, text)


def _cached_b64(folder: Path, entries: Mapping[str, Any], key: str, fingerprint: str, units: Sequence[Hashable],
                figure: str) -> str | None:
    """The cached image for this exact request, or ``None`` (any mismatch or damage: not reused)."""
    entry = entries.get(key)
    if not isinstance(entry, dict):
        return None
    if (entry.get("analyzer"), entry.get("unit_ids"), entry.get("figure")) != (fingerprint, units_key(units), figure):
        return None
    path = folder / str(entry.get("file", ""))
    if path.parent != folder or not path.is_file():
        return None
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        path.unlink(missing_ok=True)  # damaged: removed so that the renderer draws it again
        return None
    return base64.b64encode(data).decode("ascii")


def _render_read(analyzer: Any, groups: Mapping[int, tuple], folder: Path, figures: tuple[str, ...],
                 n_workers: int) -> tuple[dict[int, dict[str, bytes]], dict[int, dict[str, str]]]:
    """Render (the renderer redraws any damaged cached file) and read back every figure.

    Returns ``(bytes, file names)`` per group and figure.
    """
    drawn = render_groups(analyzer, groups, folder, features=figures, n_workers=n_workers)
    out = {gid: {figure: Path(paths[figure]).read_bytes() for figure in figures} for gid, paths in drawn.items()}
    names = {gid: {figure: Path(paths[figure]).name for figure in figures} for gid, paths in drawn.items()}
    return out, names


# ---------------------------------------------------------------------------------------------
# evidence


def _group_evidence(analyzer: Any, groups: Sequence[tuple]) -> dict[str, Any]:
    """The numbers behind each group's figures, keyed by ``units_key``; ``{}`` when unavailable."""
    from ..tools.evidence.pairs import EvidenceContext, group_evidence

    needed = ("random_spikes", "waveforms", "templates", "spike_amplitudes")
    missing = [name for name in needed if not analyzer.has_extension(name)]
    if missing:
        warnings.warn(f"no numeric evidence for the judge: the analyzer lacks {', '.join(missing)}", UserWarning,
                      stacklevel=3)
        return {}
    ctx = EvidenceContext(analyzer)  # without unit_locations it uses the templates' centre of mass
    evidence: dict[str, Any] = {}
    try:
        for units in groups:
            key = units_key(units)
            if key not in evidence:
                evidence[key] = group_evidence(ctx, [plain_unit_id(u) for u in units])
    except Exception as exc:  # noqa: BLE001 - evidence is an aid; the figures still go to the judge
        warnings.warn(f"no numeric evidence for the judge: {exc}", UserWarning, stacklevel=3)
        return {}
    return evidence


# ---------------------------------------------------------------------------------------------
# the public function


def create_merge_img_df(
    analyzer: Any,
    unit_groups: Sequence[Sequence[Hashable]],
    features: Sequence[str] = MERGE_FEATURES,
    load_if_exists: bool = True,
    save_folder: str | os.PathLike | None = None,
    *,
    n_workers: int = 1,
    evidence: bool = True,
    **kwargs: Any,
) -> pd.DataFrame:
    """Draw every candidate group's figures as base64 PNGs, one row per group.

    Parameters
    ----------
    analyzer : SortingAnalyzer
        Needs ``random_spikes``, ``waveforms``, ``templates`` and ``spike_amplitudes``
        (``spike_locations``/``unit_locations`` are used when present).
    unit_groups : list of lists of unit ids
        Candidate groups, e.g. the output of ``compute_merge_unit_groups``. Row ``i`` of the
        result is ``unit_groups[i]``.
    features : list of str, default: ``MERGE_FEATURES``
        Legacy names (``waveform_single``, ``waveform_multi``, ``crosscorrelograms``,
        ``spike_locations``, ``amplitude_plot``, ``pca_clustering``) or spikemerge figure names.
        Column labels are the names as given.
    load_if_exists : bool, default: True
        Reuse images saved in ``save_folder`` by an earlier call, but only those drawn from an
        analyzer with the same content fingerprint for the same group unit ids and feature;
        everything else is drawn afresh.
    save_folder : str or Path, optional
        Images and their index go to ``save_folder/spikemerge_merge_images``. Without it they
        are drawn in a temporary folder and kept only in the DataFrame.
    n_workers : int, default: 1
        Processes drawing figures in parallel.
    evidence : bool, default: True
        Also compute the numbers behind each group's figures (given to the judge).
    **kwargs
        Options of the earlier tool that spikemerge's renderer does not use (``show_density``...)
        are accepted and ignored.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``group_id`` (0, 1, ...), one column per feature, each cell a base64 PNG.
        ``df.attrs["spikemerge"]`` holds the groups' unit ids, the feature -> figure map, the
        analyzer fingerprint and the evidence.

    Raises
    ------
    SpikemergeError
        Unknown feature, a group with fewer than two units, an unknown unit id, or an analyzer
        without the extensions the figures need.
    """
    features = _check_features(features)
    groups = normalise_groups(unit_groups)
    if n_workers < 1:
        raise SpikemergeError("n_workers must be at least 1")
    figures = {f: feature_figure(f) for f in features}
    fingerprint = analyzer_fingerprint(analyzer)

    with tempfile.TemporaryDirectory(prefix="spikemerge-img-") as scratch:
        folder = Path(save_folder) / CACHE_SUBFOLDER if save_folder is not None else Path(scratch)
        entries = _read_index(folder) if save_folder is not None else {}
        cells: dict[int, dict[str, str]] = {gid: {} for gid in range(len(groups))}
        todo: dict[int, list[str]] = {}
        for gid, units in enumerate(groups):
            for feature, figure in figures.items():
                cached = None
                if load_if_exists and save_folder is not None:
                    key = _entry_key(fingerprint, units, figure)
                    cached = _cached_b64(folder, entries, key, fingerprint, units, figure)
                if cached is None:
                    todo.setdefault(gid, []).append(feature)
                else:
                    cells[gid][feature] = cached
        # one renderer call per distinct set of missing figures (usually one call in all)
        by_figures: dict[tuple[str, ...], dict[int, tuple]] = {}
        for gid, missing in todo.items():
            by_figures.setdefault(tuple(figures[f] for f in missing), {})[gid] = groups[gid]
        for wanted, subset in by_figures.items():
            drawn, names = _render_read(analyzer, subset, folder, wanted, n_workers)
            for gid, images in drawn.items():
                for feature in todo[gid]:
                    figure = figures[feature]
                    data = images[figure]
                    cells[gid][feature] = base64.b64encode(data).decode("ascii")
                    entries[_entry_key(fingerprint, groups[gid], figure)] = {
                        "analyzer": fingerprint,
                        "unit_ids": units_key(groups[gid]),
                        "figure": figure,
                        "file": names[gid][figure],
                        "sha256": hashlib.sha256(data).hexdigest(),
                    }
        if save_folder is not None and todo:
            _write_index(folder, entries)

    df = pd.DataFrame([[cells[gid][f] for f in features] for gid in range(len(groups))],
                      columns=list(features), index=pd.RangeIndex(len(groups), name="group_id"))
    df.attrs[ATTRS_KEY] = {
        "unit_groups": {gid: [plain_unit_id(u) for u in units] for gid, units in enumerate(groups)},
        "figures": dict(figures),
        "analyzer": fingerprint,
        "evidence": _group_evidence(analyzer, groups) if evidence and groups else {},
    }
    return df


__all__ = [
    "LEGACY_FEATURES", "MERGE_FEATURES", "analyzer_fingerprint", "create_merge_img_df", "feature_figure",
]
