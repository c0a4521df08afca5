"""Drift evidence: the probe's motion from the units alone, and positions with it removed."""

from dataclasses import replace

import numpy as np

from spikemerge.tools.evidence.motion import Motion, estimate_motion, gain_residual, motion_turns, trajectory_evidence
from tests.tools.evidence.drift import PITCH_UM, drifting_population, triangle

CENTRES = {"a": 3.5, "b": 5.0, "c": 7.5, "d": 10.0, "e": 12.5}


def _motion(units):
    ids = list(units)
    return estimate_motion([units[u].times_s for u in ids], np.array([units[u].location for u in ids]), 300.0)


def test_the_motion_of_a_back_and_forth_drift_is_recovered_from_units_pinned_to_rows():
    units, _ = drifting_population(np.random.default_rng(0), CENTRES)
    motion = _motion(units)
    centres = 0.5 * (motion.edges_s[1:] + motion.edges_s[:-1])
    truth = PITCH_UM * triangle(centres, 1.5, 150.0)
    assert np.corrcoef(motion.displacement_um, truth)[0, 1] > 0.9
    assert motion.range_um > 0.4 * np.ptp(truth)  # smaller than the truth (units that never move pull it in)


def test_a_static_probe_has_no_motion():
    units, _ = drifting_population(np.random.default_rng(1), CENTRES, amplitude=0.0)
    assert _motion(units).range_um < 1.0


def test_fragments_sit_together_and_neighbours_apart_once_the_motion_is_removed():
    units, neuron_of = drifting_population(np.random.default_rng(2), CENTRES)
    motion = _motion(units)

    def drift(x, y):
        return trajectory_evidence(units[x].times_s, units[x].location, units[y].times_s, units[y].location, motion)

    same = [drift(x, y) for x in units for y in units if x < y and neuron_of[x] == neuron_of[y] == "b"]
    assert len(same) >= 3 and all(abs(r["drift_displacement_um"]) > 6 for r in same)
    # whether the probe moved is the evidence's call, from its one threshold
    assert all(r["drift_moved"] and r["drift_motion_registered"] for r in same)
    # "a" at its upper rows and "b" at its lower ones share a row of the probe, at different times
    shared = sorted(set(u[1:] for u in units if neuron_of[u] == "a") & set(u[1:] for u in units if neuron_of[u] == "b"))
    assert shared
    across = drift("a" + shared[0], "b" + shared[0])
    assert abs(across["drift_raw_shift_um"]) < 10.0  # at the same place on the probe ...
    assert across["drift_z"] > 2 * max(r["drift_z"] for r in same if r["drift_z"] < 1.5)  # ... not once corrected
    assert np.median([r["drift_separation_um"] for r in same]) < across["drift_separation_um"]


def test_units_of_one_neuron_cut_by_depth_take_turns_with_the_motion_and_a_steady_neuron_does_not():
    from tests.tools.evidence.spikes import neuron_train

    rng = np.random.default_rng(4)
    units, neuron_of = drifting_population(rng, CENTRES)
    motion = _motion(units)
    same = [motion_turns(units[x].times_s, units[y].times_s, motion)
            for x in units for y in units if x < y and neuron_of[x] == neuron_of[y]]
    assert len(same) >= 5 and min(same) > 0.95
    # a neuron that fires whatever the probe does (seen on one unit the whole time): only a slice at
    # an end of the motion stands apart from it (the judge then asks whether they share a trajectory)
    steady = neuron_train(rng, rate_hz=10, duration_s=300.0)
    other = [motion_turns(units[x].times_s, steady, motion) for x in units]
    assert max(other) < 0.95 < min(same) and min(other) < 0.55
    # a static probe: nothing to take turns with
    flat = Motion(np.linspace(0.0, 300.0, 21), np.zeros(20))
    assert motion_turns(units[next(iter(units))].times_s, steady, flat) == 0.5
    assert np.isnan(motion_turns(np.array([]), steady, motion))


def test_templates_carried_by_the_motion_match_for_one_neuron_not_for_its_neighbour():
    from probeinterface import Probe

    from spikemerge.tools.evidence.motion import moved_template_similarity
    from spikemerge.tools.evidence.waveforms import template_lag

    units, neuron_of = drifting_population(np.random.default_rng(3), CENTRES)
    motion = _motion(units)
    channels = 16
    probe = Probe(ndim=2)
    probe.set_contacts(positions=np.c_[np.zeros(channels), PITCH_UM * np.arange(channels)], shapes="circle",
                       shape_params={"radius": 5})

    def compare(x, y):
        d = trajectory_evidence(units[x].times_s, units[x].location, units[y].times_s, units[y].location,
                                motion)["drift_displacement_um"]
        raw = template_lag(units[x].template, units[y].template, 60)[1]
        return raw, moved_template_similarity(units[x].template, units[y].template, np.arange(channels), d,
                                            probe.contact_positions, 60)

    rows_b = sorted((u for u in units if neuron_of[u] == "b"), key=lambda u: int(u[1:]))
    raw, moved = compare(rows_b[0], rows_b[-1])  # the far ends of b's drift
    assert moved > 0.9 and moved > raw + 0.2
    shared = sorted(set(u[1:] for u in units if neuron_of[u] == "a") & set(u[1:] for u in units if neuron_of[u] == "b"))
    raw, moved = compare("a" + shared[0], "b" + shared[0])  # a neighbour at the same row, at other times
    assert raw > 0.9 and moved < min(0.9, raw - 0.1)


def test_an_empty_unit_without_a_location_does_not_break_the_motion():
    from spikemerge.tools.evidence.motion import estimate_motion

    rng = np.random.default_rng(0)
    trains = [np.sort(rng.uniform(0, 300, 500)) for _ in range(6)] + [np.array([])]
    positions = np.c_[np.zeros(7), np.r_[np.arange(6) * 25.0, np.nan]]
    motion = estimate_motion(trains, positions, 300.0)
    assert np.all(np.isfinite(motion.displacement_um))


def test_a_neuron_drifting_further_than_the_registered_motion_is_not_separated_decisively():
    """The registered motion comes out smaller than a neuron's own drift: a fragment that moved
    2.2 times the registered displacement is far from its corrected place (strict ratio decisive)
    but within the gain allowance; a shift against the motion or far beyond it is not."""
    motion = Motion(np.linspace(0.0, 300.0, 21), np.r_[np.full(10, -10.0), np.full(10, 10.0)])
    early, late = np.linspace(0.0, 130.0, 300), np.linspace(170.0, 300.0, 300)

    def drift(shift_um):
        return trajectory_evidence(early, np.array([0.0, 100.0]), late, np.array([0.0, 100.0 + shift_um]), motion)

    moved = drift(0.0)["drift_displacement_um"]
    assert 15.0 < moved <= 20.0
    further = drift(2.2 * moved)
    assert further["drift_log_ratio"] < -3.0 and further["drift_gain_separation_um"] == 0.0
    assert further["drift_gain_log_ratio"] > 0.0
    assert drift(-10.0)["drift_gain_log_ratio"] < -3.0  # against the motion
    assert drift(4.0 * moved)["drift_gain_log_ratio"] < -3.0  # beyond any neuron's own drift
    assert gain_residual(20.0, 10.0, 2.5) == 0.0 and gain_residual(30.0, 10.0, 2.5) == 5.0
    assert gain_residual(-5.0, 10.0, 2.5) == 15.0 and gain_residual(-30.0, -10.0, 2.5) == 5.0


def _one_column(channels: int = 16) -> np.ndarray:
    return np.c_[np.zeros(channels), PITCH_UM * np.arange(channels)]


def _offsets(units, fs: float = 30000.0):
    from spikemerge.tools.evidence.motion import spike_offsets

    return [(units[u].waveform_times_s, spike_offsets(units[u].template, units[u].channels, units[u].waveforms,
                                                      _one_column(), fs)) for u in units]


def test_each_spike_is_placed_where_the_template_carried_over_the_probe_fits_it():
    """Spikes made at known depths around the template's: their offsets come back unshrunk."""
    from spikemerge.tools.evidence.motion import spike_offsets
    from tests.tools.evidence.spikes import unit_arrays

    rng = np.random.default_rng(4)
    depth = rng.uniform(-0.5, 0.5, 400)  # channels (20 µm each) around channel 8
    unit = unit_arrays(rng, np.sort(rng.uniform(0, 300, 400)), np.ones(400), centre=8.0 + depth, channels=16,
                       n_waveforms=400)
    found = spike_offsets(unit.template, unit.channels, unit.waveforms, _one_column(), 30000.0)
    made = PITCH_UM * depth  # the times are sorted and every spike is sampled: rows are the spikes in order
    assert found.shape == (400,)
    slope = np.polyfit(made, found, 1)[0]
    assert 0.85 < slope < 1.15 and np.corrcoef(made, found)[0, 1] > 0.95


def test_offsets_register_the_whole_motion_where_fixed_unit_positions_register_a_fraction():
    units, _ = drifting_population(np.random.default_rng(0), CENTRES)
    ids = list(units)
    trains = [units[u].times_s for u in ids]
    positions = np.array([units[u].location for u in ids])
    with_offsets = estimate_motion(trains, positions, 300.0, offsets=_offsets(units))
    without = estimate_motion(trains, positions, 300.0)
    centres = 0.5 * (with_offsets.edges_s[1:] + with_offsets.edges_s[:-1])
    truth = PITCH_UM * triangle(centres, 1.5, 150.0)
    assert np.corrcoef(with_offsets.displacement_um, truth)[0, 1] > 0.95
    assert 0.75 * np.ptp(truth) < with_offsets.range_um < 1.35 * np.ptp(truth)
    assert with_offsets.range_um > without.range_um


def test_offsets_of_a_static_probe_register_no_motion():
    units, _ = drifting_population(np.random.default_rng(1), CENTRES, amplitude=0.0)
    ids = list(units)
    motion = estimate_motion([units[u].times_s for u in ids], np.array([units[u].location for u in ids]), 300.0,
                             offsets=_offsets(units))
    assert motion.range_um == 0.0


def test_carrying_a_template_by_weights_gives_the_values_of_carrying_it_sample_by_sample():
    from scipy.interpolate import CloughTocher2DInterpolator

    from spikemerge.tools.evidence.motion import carried_templates

    rng = np.random.default_rng(5)
    contacts = np.c_[np.tile([0.0, 32.0], 8), 20.0 * np.repeat(np.arange(8), 2) + np.tile([0.0, 10.0], 8)]
    template = rng.normal(0, 1, (30, 16))
    carried = carried_templates(template, contacts, np.array([-7.0, 0.0, 12.5]), np.arange(16))
    for k, d in enumerate((-7.0, 0.0, 12.5)):
        direct = np.nan_to_num(CloughTocher2DInterpolator(contacts, template.T, fill_value=0.0)(
            contacts - np.array([0.0, d])).T)
        assert np.allclose(carried[k], direct, atol=1e-3 * np.abs(template).max())


def test_carrying_in_blocks_of_channels_on_a_long_probe_gives_the_whole_probes_values():
    from scipy.interpolate import CloughTocher2DInterpolator

    from spikemerge.tools.evidence.motion import carried_templates

    # four staggered columns of 48 contacts: several blocks, each with only the contacts near it
    contacts = np.c_[np.tile([0.0, 16.0, 32.0, 48.0], 48),
                     20.0 * np.repeat(np.arange(48), 4) + np.tile([0, 10, 0, 10], 48)]
    footprint = np.exp(-0.5 * ((contacts[:, 1] - 450.0) ** 2 + (contacts[:, 0] - 24.0) ** 2) / 40.0 ** 2)
    template = np.sin(np.linspace(0.0, 3.0, 40))[:, None] * footprint[None, :]
    channels = np.flatnonzero(np.abs(contacts[:, 1] - 450.0) < 150.0)
    assert channels.size > 48
    displacements = np.array([-30.0, -5.0, 0.0, 17.0])
    carried = carried_templates(template, contacts, displacements, channels)
    whole = CloughTocher2DInterpolator(contacts, template.T, fill_value=0.0)
    for k, d in enumerate(displacements):
        direct = np.nan_to_num(whole(contacts[channels] - np.array([0.0, d])).T)
        assert np.abs(carried[k] - direct).max() < 1e-4 * np.abs(template).max()


def test_the_hand_overs_gain_is_their_depth_shift_over_the_registered_displacement():
    """Three hand-overs that moved 3 times the registered displacement read 3; one that moved
    against it does not pull the median; hand-overs without motion between them say nothing, and
    too few say nothing either."""
    from spikemerge.tools.evidence.motion import handover_gain
    from spikemerge.tools.evidence.params import EvidenceParams

    motion = Motion(np.linspace(0.0, 300.0, 21), np.linspace(-10.0, 10.0, 20))
    early, late = np.linspace(0.0, 100.0, 50), np.linspace(200.0, 300.0, 50)
    moved = float(np.mean(motion.at(late)) - np.mean(motion.at(early)))
    handovers = [(early, 0.0, late, 3.0 * moved), (early, 100.0, late, 100.0 + 3.0 * moved),
                 (early, 50.0, late, 50.0 + 3.1 * moved), (early, 10.0, late, 10.0 - moved)]
    still = (early, 0.0, early + 0.5, 40.0)  # the probe did not move between them: no ratio
    params = EvidenceParams(motion_handover_min_links=3)
    gain, used = handover_gain(handovers + [still], motion, params)
    assert used == 4 and 2.9 < gain < 3.1
    gain, used = handover_gain(handovers[:2] + [still], motion, params)
    assert used == 2 and np.isnan(gain)


def _fragmented_neurons(rng, drift_channels: float = 3.0):
    """Three neurons, each drifting ``drift_channels`` rows down the probe over 300 s at its own depth,
    cut by a sorter into three fragments that follow one another (0-100, 100-200, 200-300 s)."""
    from tests.tools.evidence.spikes import neuron_train, unit_arrays

    units = {}
    for name, start in (("a", 1.0), ("b", 9.0), ("c", 17.0)):
        times = neuron_train(rng, rate_hz=10, duration_s=300.0)
        where = start + drift_channels * times / 300.0
        for k in range(3):
            sel = (times >= 100.0 * k) & (times < 100.0 * (k + 1))
            units[f"{name}{k}"] = unit_arrays(rng, times[sel], np.ones(sel.sum()), centre=where[sel], channels=24)
    return units


def test_a_motion_registered_at_a_third_of_its_size_is_sized_by_the_hand_overs():
    """The registration found the course (a steady descent) at a third of its size: the fragments'
    hand-overs moved three times as far, and the motion is set to their size; registered at its
    size, it is left as it is (and the sizing can be switched off). Hand-overs at 1.7 times resize
    only a motion the depth profiles left at about the offsets' course (``motion_unsized_*``)."""
    from types import SimpleNamespace

    from spikemerge.tools.analyzer.view import pairwise_distances
    from spikemerge.tools.evidence.pairs import EvidenceContext
    from spikemerge.tools.evidence.params import EvidenceParams
    from tests.tools.evidence.spikes import FS

    units = _fragmented_neurons(np.random.default_rng(7))
    ids = list(units)
    places = np.array([units[u].location for u in ids])
    ctx = SimpleNamespace(unit_ids=ids, unit=units.__getitem__, times_s=lambda u: units[u].times_s,
                          locations=places, duration_s=300.0, fs=FS,
                          pair_distances=pairwise_distances(places))
    ctx.places = lambda a, b, params: (units[a].location, units[b].location)
    ctx.handover_gain = lambda motion, params: EvidenceContext.handover_gain(ctx, motion, params)
    edges = np.linspace(0.0, 300.0, 21)
    true = PITCH_UM * 3.0 * (0.5 * (edges[1:] + edges[:-1]) / 300.0 - 0.5)
    sized = EvidenceContext.sized_by_handovers(ctx, Motion(edges, true / 3.0, source="spikes"))
    assert 2.6 < sized.gain < 3.4 and 2.6 < sized.range_um / (np.ptp(true) / 3.0) < 3.4
    assert sized.record()["gain"] == round(sized.gain, 3)
    whole = Motion(edges, true, source="spikes")
    assert EvidenceContext.sized_by_handovers(ctx, whole) is whole
    off = EvidenceParams(motion_handover_min_gain=0.0)
    assert EvidenceContext.sized_by_handovers(ctx, Motion(edges, true / 3.0), off).gain == 1.0
    # at 1.7 times: too little to resize a motion the depth profiles sized, enough where they did not
    sized_by_profiles = Motion(edges, true / 1.7, source="spikes", profile_scale=2.4)
    assert EvidenceContext.sized_by_handovers(ctx, sized_by_profiles) is sized_by_profiles
    unsized = EvidenceContext.sized_by_handovers(ctx, replace(sized_by_profiles, profile_scale=1.0))
    assert 1.5 < unsized.gain < 1.9 and unsized.record()["profile_scale"] == 1.0
