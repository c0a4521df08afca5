import numpy as np

from spikemerge.tools.evidence.features import continuity, discriminant_projection


def _cloud(rng, n, centre, dims=12):
    cloud = rng.normal(0, 1, (n, dims)) + centre
    cloud[:, 0] *= 3.0  # amplitude: the largest source of spread in real waveforms
    return cloud


def test_an_amplitude_split_of_one_cloud_is_continuous_though_separated():
    rng = np.random.default_rng(0)
    cloud = _cloud(rng, 1500, 0.0)
    small = cloud[:, 0] < np.quantile(cloud[:, 0], 0.4)  # the sorter's cut, like an amplitude ratio of ~0.7
    xa, xb, dprime = discriminant_projection(cloud[small], cloud[~small])
    assert dprime > 1.5  # separated by construction ...
    result = continuity(xa, xb)
    assert result["continuity_ratio"] > 0.7  # ... yet one cloud
    assert result["continuity_gap_p"] > 0.01


def test_two_clusters_leave_a_significant_valley():
    rng = np.random.default_rng(1)
    a, b = _cloud(rng, 400, 0.0), _cloud(rng, 400, 0.0)
    b[:, :3] += 2.5
    xa, xb, dprime = discriminant_projection(a, b)
    result = continuity(xa, xb)
    assert result["continuity_ratio"] < 0.3
    assert result["continuity_gap_p"] < 1e-4


def test_spike_weights_make_the_merged_density_not_the_sample():
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, 4000)
    cut = np.quantile(x, 0.9)
    big, small = x[x < cut], x[x >= cut]
    sample_big = rng.choice(big, 300, replace=False)  # 300 sampled of 3600: each stands for 12 spikes
    unweighted = continuity(sample_big, small)
    weighted = continuity(sample_big, small, weight_a=big.size / 300, weight_b=1.0)
    assert weighted["continuity_ratio"] > 0.8
    assert weighted["continuity_ratio"] >= unweighted["continuity_ratio"]


def test_blocked_kernel_sums_are_the_one_table_numbers():
    from spikemerge.tools.evidence.features import KERNEL_BLOCK_ROWS, KERNEL_REACH, _kernel_sums

    rng = np.random.default_rng(3)
    # long tails and a far outlier: most blocks of the grid meet only a few of the spikes
    x = np.concatenate([rng.normal(0, 1, 5000), rng.normal(4, 1, 1000), rng.standard_cauchy(200), [60.0]])
    w = np.concatenate([np.full(5000, 2.0), np.full(1000, 0.5), np.full(201, 1.5)])
    h = 0.2
    for size in (256, KERNEL_BLOCK_ROWS + 3, 5):  # a last block shorter than the others, and one short block
        grid = np.linspace(x.min(), x.max(), size)
        terms = w[None, :] * np.exp(-0.5 * ((grid[:, None] - x[None, :]) / h) ** 2)
        # the spikes a block leaves out add exact zeros: only the order of the additions differs
        far = np.abs(grid[:, None] - x[None, :]) > KERNEL_REACH * h
        assert far.any() and not terms[far].any()
        table = terms.sum(axis=1)
        assert np.allclose(_kernel_sums(grid, x, w, h), table, rtol=1e-13, atol=1e-15 * table.max())


def test_lanczos_axes_span_the_lapack_axes():
    from scipy.linalg import eigh

    from spikemerge.tools.evidence.features import LANCZOS_MIN_SIZE, _principal_axes, _top_eigenvectors

    rng = np.random.default_rng(4)
    for n, d in ((500, 700), (300, 120), (LANCZOS_MIN_SIZE - 10, 400)):  # Gram of spikes, of features, small
        signal = rng.normal(0, 1, (n, 6)) @ rng.normal(0, 1, (6, d)) * np.arange(6, 0, -1)[:1].repeat(d)[None, :]
        pooled = signal + rng.normal(0, 1, (n, d))
        axes = _principal_axes(pooled, 5)
        centred = pooled - pooled.mean(axis=0)
        _, vectors = eigh(centred.T @ centred, subset_by_index=[d - 5, d - 1])
        # the same subspace: projecting LAPACK's axes onto ours loses nothing
        assert np.allclose(np.linalg.norm(axes.T @ vectors, axis=0), 1.0, atol=1e-9)
        assert np.allclose(np.linalg.norm(axes, axis=0), 1.0)
    # a centred Gram matrix sends the ones vector to zero: the start vector must not be it
    centred = rng.normal(0, 1, (200, 150))
    centred -= centred.mean(axis=0)
    for spikes in (True, False):
        values, vectors = _top_eigenvectors(centred, 5, spikes=spikes)
        matrix = centred @ centred.T if spikes else centred.T @ centred
        assert np.allclose(np.sort(values), np.linalg.eigvalsh(matrix)[-5:])
        assert np.allclose(matrix @ vectors, vectors * values[None, :])
