"""What a sorted-bench dataset is: the MEArec template library and recording, the scenarios, names.

Every field of :class:`RecordingSpec` is a MEArec parameter or maps straight onto one; a dataset
(:class:`DatasetSpec`) is a scenario, a seed, a sorter and the recording fields set apart from the
scenario's. Specs are hashed (:meth:`RecordingSpec.key`) into the names of the cached files.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

SORTERS = ("spykingcircus2", "tridesclous2")
"""The sorters a dataset or held-out batch is built with unless it names others: SpikeInterface's own."""
SORTER_SHORT_NAMES = {"spykingcircus2": "sc2", "tridesclous2": "tdc2", "kilosort4": "ks4"}
"""Every sorter the bench runs, by the short name its datasets carry; ``kilosort4`` needs the
``[kilosort]`` extra (Kilosort 4 and PyTorch) and sorts on the CPU."""

Log = Callable[[str], None]


def default_cache() -> Path:
    """``$SPIKEMERGE_CACHE`` or ``~/.cache/spikemerge/sorted_bench``."""
    env = os.environ.get("SPIKEMERGE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "spikemerge" / "sorted_bench"


@dataclass(frozen=True)
class TemplateSpec:
    """MEArec template library: one per probe and seed, simulated once and cached.

    Drifting templates (each EAP at ``drift_steps`` positions along a path of ``min_drift`` to
    ``max_drift`` µm) serve static recordings too: MEArec then uses one position.
    """

    probe: str = "Neuronexus-32"
    n_per_model: int = 10
    drifting: bool = True
    min_drift: float = 30.0
    max_drift: float = 60.0
    drift_steps: int = 16
    min_amp: float = 30.0
    seed: int = 0

    def key(self) -> str:
        return _hash(asdict(self))

    def mearec_params(self) -> dict:
        import MEArec as mr

        params = mr.get_default_templates_params()
        params.update(probe=self.probe, n=self.n_per_model, drifting=self.drifting, min_drift=self.min_drift,
                      max_drift=self.max_drift, drift_steps=self.drift_steps, min_amp=self.min_amp, seed=self.seed)
        return params


@dataclass(frozen=True)
class RecordingSpec:
    """One MEArec recording; every field is a MEArec parameter or maps straight onto one."""

    duration_s: float = 300.0
    n_exc: int = 12
    n_inh: int = 4
    f_exc: float = 5.0
    f_inh: float = 12.0
    min_amp: float = 50.0
    max_amp: float = 300.0
    min_dist: float = 25.0
    noise_level: float = 10.0
    noise_mode: str = "uncorrelated"
    drifting: bool = False
    drift_mode_speed: str = "slow"
    drift_mode_probe: str = "rigid"
    slow_drift_velocity: float = 10.0
    slow_drift_amplitude: float | None = None
    slow_drift_waveform: str = "triangluar"  # MEArec's spelling
    n_drifting: int | None = None
    angle_tol: float = 15.0
    bursting: bool = False
    n_bursting: int | None = None
    exp_decay: float = 0.2
    n_burst_spikes: int = 10
    max_burst_duration: float = 100.0
    shape_mod: bool = False
    process: str = "poisson"
    seed: int = 0
    templates: TemplateSpec = field(default_factory=TemplateSpec)

    def key(self) -> str:
        return _hash(asdict(self))

    def mearec_params(self) -> dict:
        import MEArec as mr

        params = mr.get_default_recordings_params()
        st = params["spiketrains"]
        st.update(n_exc=self.n_exc, n_inh=self.n_inh, f_exc=self.f_exc, f_inh=self.f_inh, duration=self.duration_s,
                  process=self.process)
        tp = params["templates"]
        tp.update(min_amp=self.min_amp, max_amp=self.max_amp, min_dist=self.min_dist)
        rec = params["recordings"]
        rec.update(noise_level=self.noise_level, noise_mode=self.noise_mode, filter=True, dtype="float32",
                   drifting=self.drifting, drift_mode_speed=self.drift_mode_speed,
                   drift_mode_probe=self.drift_mode_probe, slow_drift_velocity=self.slow_drift_velocity,
                   slow_drift_amplitude=self.slow_drift_amplitude, slow_drift_waveform=self.slow_drift_waveform,
                   n_drifting=self.n_drifting, angle_tol=self.angle_tol, bursting=self.bursting, n_bursting=self.n_bursting,
                   exp_decay=self.exp_decay, n_burst_spikes=self.n_burst_spikes,
                   max_burst_duration=self.max_burst_duration, shape_mod=self.shape_mod)
        s = self.seed
        params["seeds"] = {"spiketrains": 1000 + s, "templates": 2000 + s, "convolution": 3000 + s, "noise": 4000 + s}
        return params


SCENARIOS: dict[str, RecordingSpec] = {
    # slow rigid drift: every neuron moves 12 µm/min along the probe, up and down (triangle wave)
    "drift": RecordingSpec(duration_s=300.0, n_exc=10, n_inh=4, drifting=True, slow_drift_velocity=12.0,
                           min_amp=50.0, min_dist=20.0, angle_tol=45.0),
    # bursting cells: consecutive spikes within a burst lose amplitude (exp_decay) and stretch
    "burst": RecordingSpec(duration_s=240.0, n_exc=12, n_inh=4, f_exc=8.0, bursting=True, n_bursting=8,
                           exp_decay=0.25, n_burst_spikes=8, max_burst_duration=100.0, shape_mod=True,
                           min_amp=60.0),
    # static probe, units close to the noise floor
    "lowsnr": RecordingSpec(duration_s=300.0, n_exc=14, n_inh=4, min_amp=30.0, max_amp=120.0, noise_level=12.0),
}
"""Scenario name -> recording parameters (the seed is set per dataset)."""


TEMPLATES_PREFIX = "templates."
"""Overrides named ``templates.<field>`` set a :class:`TemplateSpec` field (another template library: its
seed, its probe), so a held-out set can draw its cells from EAPs no other set saw."""


def scenario(name: str, seed: int = 1, **overrides) -> RecordingSpec:
    """The recording spec of scenario ``name`` with ``seed`` and any field overridden (``templates.<field>``
    for the template library's)."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}: use {', '.join(SCENARIOS)}")
    base = SCENARIOS[name]
    library = {k[len(TEMPLATES_PREFIX):]: overrides.pop(k) for k in list(overrides) if k.startswith(TEMPLATES_PREFIX)}
    if library:
        overrides["templates"] = replace(base.templates, **library)
    return replace(base, seed=seed, **overrides)


def _hash(record: Mapping) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:12]


def dataset_name(scenario_name: str, sorter: str, seed: int) -> str:
    """``drift_sc2_s1``-style names."""
    return f"{scenario_name}_{SORTER_SHORT_NAMES[sorter]}_s{seed}"


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset: a scenario, a seed, a sorter and whether the sorter corrects motion."""

    scenario: str
    sorter: str
    seed: int = 1
    motion_correction: bool | None = None
    """None: the sorter's default (spykingcircus2 and kilosort4 correct motion, tridesclous2 does not)."""
    overrides: tuple[tuple[str, Any], ...] = ()
    """RecordingSpec fields set apart from the scenario's (held-out sets vary them); see :func:`parse_overrides`."""

    @property
    def name(self) -> str:
        return dataset_name(self.scenario, self.sorter, self.seed)

    def recording_spec(self) -> RecordingSpec:
        return scenario(self.scenario, self.seed, **dict(self.overrides))


DEFAULT_MOTION_CORRECTION = {"drift": False}
"""Scenarios whose datasets sort without motion correction, so drift cuts neurons into time fragments."""


def dataset_spec(scenario_name: str, sorter: str, seed: int) -> DatasetSpec:
    """The dataset of ``scenario_name`` sorted by ``sorter`` with ``seed`` (motion correction as the scenario says)."""
    scenario(scenario_name, seed)  # validates the name
    if sorter not in SORTER_SHORT_NAMES:
        raise ValueError(f"unknown sorter {sorter!r}: use {', '.join(SORTER_SHORT_NAMES)}")
    return DatasetSpec(scenario_name, sorter, seed, DEFAULT_MOTION_CORRECTION.get(scenario_name))


def parse_overrides(items: Iterable[str]) -> tuple[tuple[str, Any], ...]:
    """``["slow_drift_velocity=16", "n_bursting=10", "templates.seed=1"]`` -> RecordingSpec overrides (and the
    template library's, as ``templates.<field>``), typed by the field's default.

    ``none`` sets a field to None; booleans read ``true``/``false``. Unknown fields and the recording's
    seed (set by the dataset name) are refused, so a typo cannot silently build the default scenario.
    """
    defaults = {k: v for k, v in asdict(RecordingSpec()).items() if k not in ("seed", "templates")}
    defaults.update({TEMPLATES_PREFIX + k: v for k, v in asdict(TemplateSpec()).items()})
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key, text = key.strip(), text.strip()
        if not sep or key not in defaults:
            raise ValueError(f"not a recording override: {item!r} (expected key=value, key one of "
                             f"{', '.join(defaults)})")
        default = defaults[key]
        if text.lower() == "none":
            value: Any = None
        elif isinstance(default, bool):
            if text.lower() not in ("true", "false"):
                raise ValueError(f"{key} takes true or false, not {text!r}")
            value = text.lower() == "true"
        elif isinstance(default, str):
            value = text
        elif isinstance(default, int) or key in ("n_drifting", "n_bursting"):
            value = int(text)
        else:
            value = float(text)
        out[key] = value
    return tuple(sorted(out.items()))


def parse_dataset_name(name: str) -> DatasetSpec:
    """``drift_sc2_s1`` -> DatasetSpec('drift', 'spykingcircus2', 1)."""
    try:
        scenario_name, short, seed = name.rsplit("_", 2)
        sorter = {s: full for full, s in SORTER_SHORT_NAMES.items()}[short]
        if not seed.startswith("s"):
            raise ValueError
        return dataset_spec(scenario_name, sorter, int(seed[1:]))
    except (ValueError, KeyError):
        shorts = "|".join(SORTER_SHORT_NAMES.values())
        raise ValueError(f"not a dataset name: {name!r} (expected <scenario>_<{shorts}>_s<seed>, "
                         f"scenario one of {', '.join(SCENARIOS)})") from None


BENCH_SCENARIOS: dict[str, tuple[str, str]] = {
    "sorted_drift": ("drift", "spykingcircus2"),
    "sorted_burst": ("burst", "tridesclous2"),
    "sorted_lowsnr": ("lowsnr", "spykingcircus2"),
    "sorted_drift_tdc2": ("drift", "tridesclous2"),
    "sorted_burst_sc2": ("burst", "spykingcircus2"),
}
"""``spikemerge bench --scenarios`` name -> (scenario, sorter); the bench's seed picks the dataset."""

BENCH_SCENARIO_HELP: dict[str, str] = {
    name: f"MEArec {sc} recording sorted by {so} (final merge off); truth from the ground-truth comparison"
    for name, (sc, so) in BENCH_SCENARIOS.items()
}
