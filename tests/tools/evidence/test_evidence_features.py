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
