"""The merged analyzer's sampled waveforms, written row block by row block.

Why not SpikeInterface's own soft merge of the ``waveforms`` extension: it copies the whole
array into memory (and, from a memory-mapped input, maps all of it too) before realigning the
merged units' rows, so a 1.5 GB ``waveforms.npy`` costs about 3 GB of resident memory during
apply. Here the rows are read a block at a time (positioned reads, see
``analyzer.rows.read_rows``), realigned the same way (a merged unit keeps the channels all its
parts share, in channel order, zero-padded), filtered by the same censoring mask, and appended
to the new ``waveforms.npy``. The result is the array SpikeInterface would have written (a test
checks it row for row); the extension's metadata files are written by SpikeInterface itself.
"""

from __future__ import annotations

import os
from copy import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..analyzer.rows import read_rows
from ..judges.base import UnitId


@dataclass(frozen=True)
class StreamParams:
    """Rows per block: a block is rows x samples x channels x 4 bytes (4096 rows: about 25 MB at 18 channels)."""

    block_rows: int = 4096


def carry_waveforms(source, merged_folder: Path, groups: Sequence[Sequence[UnitId]], new_unit_ids: Sequence[UnitId],
                    censor_ms: float | None, params: StreamParams = StreamParams()) -> None:
    """Write ``source``'s waveforms, merged as ``groups``, into the analyzer at ``merged_folder``.

    Parameters
    ----------
    source : SortingAnalyzer
        The analyzer being merged (holds ``waveforms`` and ``random_spikes``).
    merged_folder : Path
        The merged analyzer SpikeInterface just wrote (binary_folder, without ``waveforms``).
    groups, new_unit_ids : sequences
        The merges, as given to ``merge_units``.
    censor_ms : float or None
        As given to ``merge_units``: sampled spikes removed by censoring lose their rows.
    """
    from spikeinterface.core import load_sorting_analyzer
    from spikeinterface.core.sorting_tools import apply_merges_to_sorting

    ext = source.get_extension("waveforms")
    data = ext.data["waveforms"]
    random_spikes = source.get_extension("random_spikes")
    row_unit = np.asarray(random_spikes.get_random_spikes()["unit_index"])
    if censor_ms:
        _, keep_mask, _ = apply_merges_to_sorting(source.sorting, [list(g) for g in groups], new_unit_ids=list(new_unit_ids),
                                                  censor_ms=censor_ms, return_extra=True)
        valid = np.asarray(keep_mask)[np.asarray(random_spikes.data["random_spikes_indices"])]
    else:
        valid = np.ones(row_unit.size, dtype=bool)

    merged = load_sorting_analyzer(merged_folder, load_extensions=False)
    width = data.shape[2]
    keep_channels: dict[int, np.ndarray] = {}  # unit index -> which of its channels the merged unit keeps
    if source.sparsity is not None:
        mask = np.asarray(source.sparsity.mask, dtype=bool)
        for group in groups:
            indices = source.sorting.ids_to_indices(list(group))
            common = np.all(mask[indices], axis=0)
            for i in indices:
                keep_channels[int(i)] = common[mask[i]]
        width = min(width, int(merged.sparsity.mask.sum(axis=1).max()))

    new_ext = ext.__class__(merged)  # SpikeInterface writes params, provenance and run info
    new_ext.params = ext.params.copy()
    new_ext.run_info = copy(ext.run_info)
    new_ext.data = {"waveforms": np.zeros((0, data.shape[1], width), dtype=data.dtype)}
    new_ext.save()

    target = Path(merged_folder) / "extensions" / "waveforms" / "waveforms.npy"
    partial = target.with_name(".waveforms.npy.partial")
    shape = (int(valid.sum()), int(data.shape[1]), int(width))
    with open(partial, "wb") as handle:
        np.lib.format.write_array_header_1_0(
            handle, {"descr": np.lib.format.dtype_to_descr(np.dtype(data.dtype)), "fortran_order": False, "shape": shape})
        for start in range(0, data.shape[0], params.block_rows):
            rows = np.arange(start, min(start + params.block_rows, data.shape[0]))
            block = read_rows(data, rows)
            units = row_unit[rows]
            for i in np.unique(units):
                keep = keep_channels.get(int(i))
                if keep is None:
                    continue
                chosen = units == i
                moved = block[chosen][:, :, : keep.size][:, :, keep]
                block[chosen, :, : moved.shape[2]] = moved
                block[chosen, :, moved.shape[2]:] = 0
            handle.write(np.ascontiguousarray(block[valid[rows]][:, :, :width]).tobytes())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, target)
