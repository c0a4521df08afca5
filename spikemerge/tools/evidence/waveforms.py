"""Template evidence of a pair: the lag between two templates and their similarity against noise.

Functions of plain (samples, channels) arrays. The similarity is a cosine with zero padding,
so a large shift is paid for by the part of the templates it pushes out of the window; the
noise-aware version removes the noise the spike counts leave in each template (an average of
``n`` spikes keeps a noise variance ``σ²/n`` per sample), so a low-amplitude or sparse unit's
noisy template is not read as a different shape.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np


def _overlap(template_a: np.ndarray, template_b: np.ndarray, shift: int) -> tuple[np.ndarray, np.ndarray]:
    """Parts of A and B that meet when B is read ``shift`` samples later (``b[k] ≈ a[k + shift]``)."""
    n = template_a.shape[0]
    if shift >= 0:
        return template_a[shift:], template_b[: n - shift]
    return template_a[: n + shift], template_b[-shift:]


def template_lag(template_a: np.ndarray, template_b: np.ndarray, max_shift: int) -> tuple[int, float]:
    """The shift (samples) that best aligns B on A, and the zero-padded cosine there.

    A positive lag means ``template_b[k] ≈ template_a[k + lag]``: B's waveform sits earlier
    in its window, so B's spike times are ``lag`` samples later than A's for the same spike.
    """
    norm = float(np.linalg.norm(template_a) * np.linalg.norm(template_b))
    if norm == 0:
        return 0, 0.0
    max_shift = min(max_shift, template_a.shape[0] - 1)
    best, best_shift = -np.inf, 0
    for shift in range(-max_shift, max_shift + 1):
        a, b = _overlap(template_a, template_b, shift)
        value = float((a * b).sum()) / norm  # the method, not np.sum: the same sum without its dispatch (121 shifts a pair)
        if value > best or (value == best and abs(shift) < abs(best_shift)):
            best, best_shift = value, shift
    return best_shift, best


def overlap_similarity(template_a: np.ndarray, template_b: np.ndarray, shift: int) -> float:
    """Cosine of the parts of two templates that one window holds when B is read ``shift`` later.

    For a duplicate misaligned by a large lag, each window has cut off a part of the waveform
    the other holds; on the part both hold, the same spikes give the same shape.
    """
    a, b = _overlap(np.asarray(template_a, float), np.asarray(template_b, float), shift)
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.sum(a * b) / denom) if denom > 0 else 0.0


def noise_aware_similarity(
    template_a: np.ndarray,
    template_b: np.ndarray,
    noise_sd: np.ndarray,
    n_a: int,
    n_b: int,
    shift: int = 0,
) -> dict[str, float]:
    """Similarity of two templates once the noise their spike counts imply is accounted for.

    Parameters
    ----------
    template_a, template_b : ndarray (samples, channels)
        Average waveforms on the same channels.
    noise_sd : ndarray (channels,)
        Noise standard deviation per channel (the ``noise_levels`` extension).
    n_a, n_b : int
        Spikes averaged into each template.
    shift : int
        Lag from :func:`template_lag`.

    Returns
    -------
    dict
        ``template_similarity_denoised``: the cosine divided by the templates' signal norms
        (their squared norms minus the expected noise energy ``Σσ²·samples/n``), a classic
        correction for attenuation; ``template_difference_chi2``: the squared difference of
        the scale-matched templates over its noise expectation ``Σσ²·samples·(1/n_a + 1/n_b)``,
        per degree of freedom (about 1 when the two differ by noise only).
    """
    a, b = _overlap(np.asarray(template_a, float), np.asarray(template_b, float), shift)
    sd2 = np.asarray(noise_sd, float) ** 2
    full = np.asarray(template_a).shape[0]
    noise_a = float(sd2.sum()) * full / max(1, n_a)
    noise_b = float(sd2.sum()) * full / max(1, n_b)
    energy_a = max(float(np.sum(template_a ** 2)) - noise_a, 1e-12)
    energy_b = max(float(np.sum(template_b ** 2)) - noise_b, 1e-12)
    denoised = float(np.sum(a * b)) / math.sqrt(energy_a * energy_b)
    # scale B onto A (amplitude splits differ by a factor, not by shape), then compare with noise
    scale = float(np.sum(a * b) / energy_b)  # on B's signal energy: noise would shrink the factor
    scale = min(max(scale, 0.0), 10.0)
    residual = a - scale * b
    noise_diff = float(sd2.sum()) * a.shape[0] * (1.0 / max(1, n_a) + scale ** 2 / max(1, n_b))
    chi2 = float(np.sum(residual ** 2) / max(noise_diff, 1e-12))
    return {
        "template_similarity_denoised": float(min(1.0, denoised)),
        "template_difference_chi2": chi2,
    }


def amplitude_ratio(template_a: np.ndarray, template_b: np.ndarray) -> float:
    """Peak-to-peak amplitude of the smaller template over the larger one (1 = same size)."""
    pa, pb = float(np.ptp(template_a, axis=0).max()), float(np.ptp(template_b, axis=0).max())
    return float(min(pa, pb) / max(pa, pb)) if max(pa, pb) > 0 else 1.0


def _lag_size(n: int, max_shift: int) -> tuple[int, int]:
    """The shift searched (at most ``n - 1``) and an FFT length with no wrap-around within it."""
    max_shift = min(max_shift, n - 1)
    return max_shift, 1 << int(np.ceil(np.log2(n + max_shift + 1)))


def _lag_scores_against(a: np.ndarray, b_spectrum: np.ndarray, max_shift: int, size: int) -> np.ndarray:
    """:func:`lag_scores` of ``a`` against a ``b`` given as ``conj(rfft(b, size))`` (reused across many ``a``)."""
    spectrum = np.fft.rfft(a, size, axis=0) * b_spectrum
    circular = np.fft.irfft(spectrum.sum(axis=1), size)  # circular[s] = Σ a[k + s]·b[k]
    return circular[np.arange(-max_shift, max_shift + 1) % size]


def lag_scores(template_a: np.ndarray, template_b: np.ndarray, max_shift: int) -> np.ndarray:
    """``Σ a[k + shift] · b[k]`` for every shift in ``-max_shift..max_shift`` (zero padding), in one pass.

    The same products :func:`template_lag` takes one shift at a time, as one FFT
    cross-correlation summed over channels, so a search over many stretched copies of a
    template stays cheap (0.13 ms vs 0.29 ms for a sliding window on 90 x 32 templates, measured).
    """
    a, b = np.asarray(template_a, float), np.asarray(template_b, float)
    max_shift, size = _lag_size(a.shape[0], max_shift)
    return _lag_scores_against(a, np.conj(np.fft.rfft(b, size, axis=0)), max_shift, size)


@lru_cache(maxsize=256)
def _stretch_weights(n: int, centre: int, factor: float) -> np.ndarray:
    """The (samples x samples) linear-interpolation matrix that widens by ``factor`` around ``centre``.

    It depends on the window length, the peak sample and the factor only, so it is built once
    for every template sharing them (candidate search widens thousands of templates by the same
    eleven factors, and the peaks sit on a handful of samples): read-only, shared.
    """
    where = centre + (np.arange(n) - centre) / factor
    lo = np.floor(where).astype(int)
    frac = where - lo
    weights = np.zeros((n, n))
    rows = np.arange(n)
    for k, w in ((lo, 1.0 - frac), (lo + 1, frac)):
        inside = (k >= 0) & (k < n) & (where >= 0) & (where <= n - 1)
        weights[rows[inside], k[inside]] += w[inside]
    weights.flags.writeable = False
    return weights


def stretched(template: np.ndarray, factor: float) -> np.ndarray:
    """The template widened in time by ``factor`` around its largest sample (linear interpolation)."""
    t = np.asarray(template, float)
    centre = int(np.argmax(np.abs(t).max(axis=1)))
    # linear interpolation as one (samples x samples) weight matrix, shared by every channel
    return _stretch_weights(t.shape[0], centre, float(factor)) @ t


def stretch_similarity(
    template_a: np.ndarray,
    template_b: np.ndarray,
    max_shift: int,
    stretches: np.ndarray,
    noise_sd: np.ndarray | None = None,
    n_a: int = 0,
    n_b: int = 0,
) -> dict[str, float]:
    """Similarity of two templates once the larger one is widened to the smaller one's width.

    A bursting neuron's later spikes are smaller *and* wider (the membrane has not recovered:
    amplitude decrement and spike broadening within a complex-spike burst), and a sorter that
    cuts such a cell by amplitude gives its small unit a wider template: the same neuron, at
    another point of its burst. The larger template is widened by each factor of
    ``stretches`` (>= 1: only the direction the physiology allows, so a free fit cannot make
    any two shapes alike) and compared with the smaller one at the best lag. With
    ``noise_sd`` and spike counts, each template's norm is reduced to its signal part as in
    :func:`noise_aware_similarity` (the share of the larger template's energy that is signal
    is kept through the widening).

    Returns
    -------
    dict
        ``template_similarity_stretch``: the best cosine (noise-corrected when noise is
        given); ``template_stretch``: the widening factor at which it was found (1 = none).
    """
    a, b = np.asarray(template_a, float), np.asarray(template_b, float)
    big, small = (a, b) if np.ptp(a, axis=0).max() >= np.ptp(b, axis=0).max() else (b, a)
    n_big, n_small = (n_a, n_b) if big is a else (n_b, n_a)
    big_energy, small_energy = float(np.sum(big ** 2)), float(np.sum(small ** 2))
    if big_energy == 0 or small_energy == 0:
        return {"template_similarity_stretch": 0.0, "template_stretch": 1.0}
    signal_big, signal_small = 1.0, 1.0
    if noise_sd is not None:
        noise = float(np.sum(np.asarray(noise_sd, float) ** 2)) * big.shape[0]
        signal_big = max(1.0 - noise / max(1, n_big) / big_energy, 1e-6)
        signal_small = max(1.0 - noise / max(1, n_small) / small_energy, 1e-6)
    best, best_factor = -np.inf, 1.0
    max_shift, size = _lag_size(big.shape[0], max_shift)
    small_spectrum = np.conj(np.fft.rfft(small, size, axis=0))  # the same for every factor
    for factor in stretches:
        wide = stretched(big, float(factor)) if factor != 1.0 else big
        norm = np.sqrt(float(np.sum(wide ** 2)) * signal_big * small_energy * signal_small)
        value = float(_lag_scores_against(wide, small_spectrum, max_shift, size).max()) / norm if norm > 0 else 0.0
        if value > best + 1e-9:
            best, best_factor = value, float(factor)
    return {"template_similarity_stretch": float(min(1.0, best)), "template_stretch": best_factor}


def footprint_similarity(template_a: np.ndarray, template_b: np.ndarray) -> float:
    """Cosine of the two templates' per-channel peak-to-peak amplitudes: where on the probe each unit is seen.

    One neuron's spikes keep their spatial footprint whatever their size or width (the cell does
    not move between the spikes of a burst), so a sorter's amplitude slices of it have the same
    footprint up to scale; distinct neighbours, even with time courses alike, are seen in other
    proportions across channels. Measured on sorter-made splits of bursting cells: 0.98-1.0 for
    slices of one cell, at most 0.94 for distinct neighbours whose widened templates matched.
    """
    pa = np.ptp(np.asarray(template_a, float), axis=0)
    pb = np.ptp(np.asarray(template_b, float), axis=0)
    denom = float(np.linalg.norm(pa) * np.linalg.norm(pb))
    return float(pa @ pb / denom) if denom > 0 else 0.0
