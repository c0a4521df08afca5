"""Feature-space evidence of a pair: is it one continuous cloud or two?

A sorter that splits one neuron cuts one cloud of spikes in two, so the parts are separated by
construction and a separation score (d′) cannot tell a split from two neurons. What tells them
apart is continuity: the spikes of one neuron, pooled, form one unimodal cloud along the axis
that best separates the parts; two neurons leave a valley between them. The test here is a
valley test on that axis: the density (a kernel estimate, each unit weighted by its real spike
count) at its lowest point between the two units' medians, against the lower of the two peaks
on either side; a Poisson test says whether the valley holds fewer spikes than a unimodal
density would put there. Hartigan's dip test asks the same question; this form also tells
where the valley is and needs no extra dependency. Gaussian-mixture BIC was not used: real
amplitude distributions are skewed and cut by the detection threshold, which BIC reads as two
components.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import poisson

from .params import DEFAULT_EVIDENCE_PARAMS, EvidenceParams


def _principal_axes(pooled: np.ndarray, k: int) -> np.ndarray:
    """Top ``k`` principal axes (features, k), from the smaller of the two Gram matrices.

    With a few hundred spikes and ~1600 features, the spikes' Gram matrix (spikes x spikes) and
    a partial eigendecomposition of it give the same axes as a thin SVD of the (spikes,
    features) matrix, 6x faster (measured, 500 x 1620, one thread: 0.035 s vs 0.23 s; an
    eigendecomposition of the features' covariance took 3.6 s). Axes are unit vectors; their
    signs are arbitrary, which the Fisher direction fitted on them absorbs.
    """
    return _centred_axes(pooled - pooled.mean(axis=0), k)


def _centred_axes(centred: np.ndarray, k: int) -> np.ndarray:
    """:func:`_principal_axes` of data already centred (the caller keeps the centred copy)."""
    n, d = centred.shape
    k = min(k, n, d)
    if n < d:
        values, vectors = _top_eigenvectors(centred, k, spikes=True)
        axes = centred.T @ vectors[:, np.argsort(values)[::-1]]
        norms = np.linalg.norm(axes, axis=0)
        return axes / np.where(norms > 0, norms, 1.0)
    values, vectors = _top_eigenvectors(centred, k, spikes=False)
    return vectors[:, np.argsort(values)[::-1]]


LANCZOS_MIN_SIZE = 100
"""Gram matrices at least this large get their top eigenvectors by Lanczos iteration (ARPACK),
smaller ones by a full LAPACK decomposition. For 500 spikes x 640 features and 5 axes: LAPACK on
the Gram matrix 7.4 ms plus 4 ms to form it; Lanczos on it 1.8 ms without forming it (each step
multiplies by the centred data twice); the vectors equal to 1e-15 (measured, one thread). Below
~100 the two cost about the same."""

LANCZOS_TOLERANCE = 1e-8
"""Relative accuracy ARPACK stops at. The axes it returns equal those at machine precision
(``tol=0``) to 1e-14 (largest ``1 - |cos|`` over 300 pairs of the lab-scale benchmark, 500
spikes x ~720 features, 5 axes: 4e-15 either way) in 2.0 ms per call instead of 2.9 ms
(measured, one thread): the last iterations only polish digits no term reads."""


def _top_eigenvectors(centred: np.ndarray, k: int, spikes: bool) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest eigenvalues and eigenvectors (columns) of ``C C^T`` (``spikes``) or ``C^T C``.

    Lanczos from a fixed start vector (not the ones vector: a centred Gram matrix sends it to
    zero), converged to ``LANCZOS_TOLERANCE``, with the matrix never formed; LAPACK on the formed
    matrix when it is small, when ``k`` is too close to its size for Lanczos, or when Lanczos
    does not converge.
    """
    from scipy.linalg import eigh

    size = centred.shape[0] if spikes else centred.shape[1]
    if size >= LANCZOS_MIN_SIZE and k < size - 1:
        from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, LinearOperator, eigsh

        transposed = centred.T  # a view: BLAS reads it as is (a contiguous copy cost more than it saved, measured)
        if spikes:
            def product(v):
                return centred @ (transposed @ v)
        else:
            def product(v):
                return transposed @ (centred @ v)
        operator = LinearOperator((size, size), matvec=product, dtype=np.float64)
        start = np.random.default_rng(size).standard_normal(size)
        try:
            return eigsh(operator, k=k, which="LA", v0=start, tol=LANCZOS_TOLERANCE)
        except (ArpackNoConvergence, ArpackError):
            pass
    matrix = centred @ centred.T if spikes else centred.T @ centred
    return eigh(matrix, subset_by_index=[size - k, size - 1])


def _fisher_direction(pa: np.ndarray, pb: np.ndarray) -> np.ndarray:
    k = pa.shape[1]
    cov = 0.5 * (np.cov(pa, rowvar=False).reshape(k, k) + np.cov(pb, rowvar=False).reshape(k, k))
    cov += 1e-6 * np.trace(cov) / k * np.eye(k) + 1e-12 * np.eye(k)
    direction = np.linalg.solve(cov, pb.mean(axis=0) - pa.mean(axis=0))
    spread = float(np.sqrt(direction @ cov @ direction))
    return direction / spread if spread > 0 else direction


def discriminant_projection(
    wa: np.ndarray, wb: np.ndarray, params: EvidenceParams = DEFAULT_EVIDENCE_PARAMS
) -> tuple[np.ndarray, np.ndarray, float]:
    """Both units' spikes on the axis that best separates them, cross-fitted, and their d′.

    Each half of the spikes is projected with the axis fitted on the other half (principal
    components of the pooled half, then Fisher's discriminant), so a cloud of noise is not
    read as separated because the axis was fitted to the very spikes it projects. The axis is
    scaled so that the within-unit spread is 1 and oriented so that B lies to the right.

    Parameters
    ----------
    wa, wb : ndarray (spikes, features)
        Flattened, aligned waveforms of each unit on the same channels.

    Returns
    -------
    xa, xb : ndarray
        Projections of every spike of A and of B.
    dprime : float
        Distance of the means over the within-unit spread (0 one cloud, above ~3 far apart).
    """
    rng = np.random.default_rng(params.seed)
    ia, ib = rng.permutation(len(wa)), rng.permutation(len(wb))
    halves_a, halves_b = np.array_split(ia, 2), np.array_split(ib, 2)
    xa, xb = np.empty(len(wa)), np.empty(len(wb))
    parts_a, parts_b = [wa[h] for h in halves_a], [wb[h] for h in halves_b]  # each half gathered once, used twice
    for fit, score in ((0, 1), (1, 0)):
        fa, fb = parts_a[fit], parts_b[fit]
        pooled = np.vstack([fa, fb]).astype(np.float64, copy=False)
        centre = pooled.mean(axis=0)  # each fold projects around its own centre, so the folds line up
        centred = pooled - centre  # the fold's spikes around it: its first rows are A's, the others B's
        axes = _centred_axes(centred, params.pca_components)
        direction = _fisher_direction(centred[: len(fa)] @ axes, centred[len(fa):] @ axes)
        xa[halves_a[score]] = (parts_a[score] - centre) @ axes @ direction
        xb[halves_b[score]] = (parts_b[score] - centre) @ axes @ direction
    spread = np.sqrt(0.5 * (xa.var() + xb.var()))
    dprime = float(abs(xb.mean() - xa.mean()) / spread) if spread > 0 else 0.0
    return xa, xb, dprime


KERNEL_BLOCK_ROWS = 16
"""Grid points per block of the kernel density: a block of 16 x 6000 spikes stays in cache,
where the whole 256 x 6000 table did not (2.2x faster, measured; the same bytes)."""

KERNEL_REACH = 38.7
"""Bandwidths beyond which a spike adds exactly nothing to the density in float64:
``exp(-0.5 * 38.7**2) = exp(-748.8)`` is below half the smallest subnormal (``exp(-744.4)``) and
rounds to 0.0 (38.61 already does). Not a tunable: leaving those spikes out changes no term, only
the order of the additions (numbers equal to ~1e-16 of the peak). Amplitude distributions have
long tails, so a 16-point block of the grid meets a few hundred of 6000 spikes: 4x faster on
the lab-scale benchmark's pairs (measured: 2.5 ms against 10.8 ms per amplitude density)."""


def _kernel_sums(grid: np.ndarray, x: np.ndarray, w: np.ndarray, h: float) -> np.ndarray:
    """``sum_i w_i exp(-((grid_j - x_i) / h)**2 / 2)`` for every grid point, block by block.

    Each block of grid points sums only the spikes within ``KERNEL_REACH`` bandwidths of it (the
    spikes sorted once, each block's span found by bisection): the others' terms are exact zeros.
    """
    order = np.argsort(x, kind="stable")
    xs, ws = x[order], w[order]
    out = np.empty(grid.size)
    buffer = np.empty(min(KERNEL_BLOCK_ROWS, grid.size) * x.size)
    reach = KERNEL_REACH * h
    for start in range(0, grid.size, KERNEL_BLOCK_ROWS):
        rows = grid[start:start + KERNEL_BLOCK_ROWS]
        lo = int(np.searchsorted(xs, rows.min() - reach, side="left"))
        hi = int(np.searchsorted(xs, rows.max() + reach, side="right"))
        block = buffer[: rows.size * (hi - lo)].reshape(rows.size, hi - lo)
        np.subtract(rows[:, None], xs[None, lo:hi], out=block)
        block /= h
        np.square(block, out=block)
        block *= -0.5
        np.exp(block, out=block)
        block *= ws[None, lo:hi]
        out[start:start + rows.size] = block.sum(axis=1)
    return out


def continuity(
    xa: np.ndarray, xb: np.ndarray, weight_a: float = 1.0, weight_b: float = 1.0,
    params: EvidenceParams = DEFAULT_EVIDENCE_PARAMS,
) -> dict[str, float]:
    """Valley test along one axis: one continuous cloud (ratio near 1) or two (a deep, significant valley).

    Parameters
    ----------
    xa, xb : ndarray
        Projections of the two units' spikes (B to the right of A).
    weight_a, weight_b : float
        Spikes each projected spike stands for (a unit's spike count over its sampled
        waveforms), so the pooled density is the merged unit's, not the sample's.

    Returns
    -------
    dict
        ``continuity_ratio``: density at the valley over the lower side peak (1 = no valley);
        ``continuity_gap_p``: Poisson chance that a density without a valley leaves so few
        spikes there (small = a real gap); ``continuity_expected``: spikes such a density
        would put in the valley window (below ~5 the test has no power).
    """
    if xa.size < 3 or xb.size < 3:
        return {"continuity_ratio": float("nan"), "continuity_gap_p": 1.0, "continuity_expected": 0.0}
    x = np.concatenate([xa, xb])
    n = x.size
    w = np.concatenate([np.full(xa.size, weight_a), np.full(xb.size, weight_b)])
    w = w * n / w.sum()  # weights sum to the sample size, so window sums are counts
    within = np.concatenate([xa - np.median(xa), xb - np.median(xb)])
    q75, q25 = np.percentile(within, [75, 25])
    sd = min(within.std(), (q75 - q25) / 1.349) or within.std() or 1.0
    h = 0.9 * sd * n ** (-0.2)
    grid = np.linspace(x.min() - 2 * h, x.max() + 2 * h, params.density_grid)
    density = _kernel_sums(grid, x, w, h)
    density /= n * h * np.sqrt(2 * np.pi)
    ma, mb = np.median(xa), np.median(xb)
    lo, hi = min(ma, mb), max(ma, mb)
    between = np.flatnonzero((grid >= lo) & (grid <= hi))
    if between.size == 0:
        return {"continuity_ratio": 1.0, "continuity_gap_p": 1.0, "continuity_expected": 0.0}
    valley = between[np.argmin(density[between])]
    peak = min(density[: valley + 1].max(), density[valley:].max())
    ratio = float(density[valley] / peak) if peak > 0 else 1.0
    near = np.abs(x - grid[valley]) <= h
    observed = float(w[near].sum())
    expected = float(peak * n * 2 * h)
    gap_p = float(poisson.cdf(np.floor(observed), expected)) if expected > 0 else 1.0
    return {"continuity_ratio": min(1.0, ratio), "continuity_gap_p": gap_p, "continuity_expected": expected}
