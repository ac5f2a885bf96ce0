"""Named, seeded load-cell scenarios on :class:`~caper_edge.scale.loadcell.LoadCellModel`.

Used by ``caper-edge scale-sim --scenario``, the detector tests and the benchmark. Each builder
returns a :class:`Scenario`: the model (already scheduled) and its duration. Ground truth is
``scenario.model.events``; weight changes are the events with ``delta_g != 0``.

- ``steps``: items of 5 g .. 5 kg (log-uniform) placed by hand or dropped and later removed,
  anywhere on the floor, with hand pushes and ring-downs; mild drift.
- ``bumpy``: the same while the cart is pushed around: rolling vibration and bumps between
  placements (motion flag set), heavier drift.
- ``drift``: nothing placed; temperature drift, wander and noise only.
- ``bumps``: nothing placed; bumps and rolling only (with a preloaded basket).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .loadcell import LoadCellModel, ScheduledEvent

__all__ = ["SCENARIOS", "Scenario", "Score", "build", "score", "weight_changes"]

_NS = 1_000_000_000


@dataclass
class Scenario:
    name: str
    model: LoadCellModel
    duration_ns: int

    @property
    def changes(self) -> list[ScheduledEvent]:
        return weight_changes(self.model)

    def calibrated(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The whole trace as the reader delivers it: ``t_ns`` (n,) int64, per-cell grams (n, 4)
        from the raw counts with the model's calibration, ``flags`` (n,) uint8."""
        b = self.model.samples(0, self.duration_ns)
        cells = (b.raw - self.model.offsets) * self.model.gains
        return b.t_ns, np.ascontiguousarray(cells), b.flags


def weight_changes(model: LoadCellModel) -> list[ScheduledEvent]:
    """The scheduled events that change the static load (place, drop, remove), by start time."""
    return sorted((e for e in model.events if e.delta_g != 0.0), key=lambda e: e.t_start_ns)


@dataclass
class Score:
    """Settled events matched to the ground truth of a scenario.

    Per matched change: ``error_g`` (event - truth), ``tolerance_g`` = max(2 g, 1 % of |truth|),
    ``latency_s`` = decision time - end of the ring-down (``t_rest_ns``). ``missed``: changes
    without an event; ``extra``: settled events matching no change.
    """

    error_g: np.ndarray
    tolerance_g: np.ndarray
    latency_s: np.ndarray
    missed: int
    extra: list[Any]

    @property
    def error_ratio(self) -> np.ndarray:
        """|error| / tolerance: at most 1 is within the accuracy target."""
        return np.abs(self.error_g) / self.tolerance_g

    def merge(self, other: Score) -> Score:
        return Score(np.concatenate([self.error_g, other.error_g]), np.concatenate([self.tolerance_g, other.tolerance_g]),
                     np.concatenate([self.latency_s, other.latency_s]), self.missed + other.missed,
                     self.extra + other.extra)

    @staticmethod
    def empty() -> Score:
        return Score(np.zeros(0), np.zeros(0), np.zeros(0), 0, [])


def score(changes: list[ScheduledEvent], events: list[Any], *, slack_s: float = 0.5) -> Score:
    """Match settled events (``kind == "settled"``) to the weight changes, in time order: a change
    takes the first unused event decided after it started (less ``slack_s``) whose activity began
    before the change's ring-down ended (plus ``slack_s``)."""
    settled = [e for e in events if e.kind == "settled"]
    used: set[int] = set()
    err, tol, lat, missed = [], [], [], 0
    slack = int(slack_s * _NS)
    for gt in sorted(changes, key=lambda e: e.t_start_ns):
        match = next((i for i, e in enumerate(settled) if i not in used and e.t_decided_ns >= gt.t_start_ns - slack
                      and e.t_start_ns <= gt.t_rest_ns + slack), None)
        if match is None:
            missed += 1
            continue
        used.add(match)
        e = settled[match]
        err.append(e.delta_g - gt.delta_g)
        tol.append(max(2.0, 0.01 * abs(gt.delta_g)))
        lat.append((e.t_decided_ns - gt.t_rest_ns) / _NS)
    extra = [e for i, e in enumerate(settled) if i not in used]
    return Score(np.array(err), np.array(tol), np.array(lat), missed, extra)


def _mass(r: np.random.Generator, lo: float = 5.0, hi: float = 5000.0) -> float:
    return float(math.exp(r.uniform(math.log(lo), math.log(hi))))


def _pos(r: np.random.Generator) -> tuple[float, float]:
    return (float(r.uniform(0.1, 0.9)), float(r.uniform(0.1, 0.9)))


def steps(calibration: Any = None, seed: int = 0, events: int = 20, **model_kw: Any) -> Scenario:
    """``events`` weight changes (placements, drops, removals), ~3-5 s apart."""
    r = np.random.default_rng([seed, 0x57E9])
    kw = {"drift_g_per_min": 0.5, "wander_g": 0.5, **model_kw}
    model = LoadCellModel(calibration, seed=seed, **kw)
    t = 2 * _NS
    present: list[int] = []
    for _ in range(events):
        if present and (r.random() < 0.4 or len(present) >= 6):
            ev = model.remove(t, present.pop(int(r.integers(len(present)))))
        else:
            ev = model.place(t, _mass(r), _pos(r), drop=bool(r.random() < 0.2))
            present.append(ev.item)
        t = ev.t_rest_ns + int(r.uniform(1.5, 3.0) * _NS)
    return Scenario("steps", model, t + 2 * _NS)


def bumpy(calibration: Any = None, seed: int = 0, events: int = 12, **model_kw: Any) -> Scenario:
    """Weight changes while the cart is stopped, with rolling and bumps in between."""
    r = np.random.default_rng([seed, 0xB0B0])
    kw = {"drift_g_per_min": 2.0, "wander_g": 1.0, **model_kw}
    model = LoadCellModel(calibration, seed=seed, **kw)
    model.preload(_mass(r, 200, 2000), _pos(r))
    t = 2 * _NS
    present: list[int] = []
    for _ in range(events):
        roll_s = float(r.uniform(1.0, 4.0))
        model.roll(t, t + int(roll_s * _NS), accel_rms_g=float(r.uniform(0.02, 0.08)))
        for _ in range(int(r.integers(0, 3))):
            model.bump(t + int(r.uniform(0.1, roll_s) * _NS), accel_g=float(r.uniform(0.1, 0.5)))
        t += int((roll_s + 1.0) * _NS)       # cart stops; the motion hold-off passes
        if present and r.random() < 0.35:
            ev = model.remove(t, present.pop(int(r.integers(len(present)))))
        else:
            ev = model.place(t, _mass(r), _pos(r), drop=bool(r.random() < 0.2))
            present.append(ev.item)
        t = ev.t_rest_ns + int(r.uniform(1.2, 2.5) * _NS)
    return Scenario("bumpy", model, t + 2 * _NS)


def drift(calibration: Any = None, seed: int = 0, duration_s: float = 300.0, **model_kw: Any) -> Scenario:
    """No weight change: strong temperature drift and wander only."""
    kw = {"drift_g_per_min": 3.0, "wander_g": 2.0, **model_kw}
    model = LoadCellModel(calibration, seed=seed, **kw)
    model.preload(1234.0, (0.4, 0.6))
    return Scenario("drift", model, int(duration_s * _NS))


def bumps(calibration: Any = None, seed: int = 0, duration_s: float = 60.0, flagged: bool = True,
          **model_kw: Any) -> Scenario:
    """No weight change: bumps (0.1-0.6 g) and rolling on a loaded basket; ``flagged=False``
    models an MCU without an accelerometer (no motion flag)."""
    r = np.random.default_rng([seed, 0xB3B3])
    kw = {"drift_g_per_min": 0.5, "wander_g": 0.5, **model_kw}
    model = LoadCellModel(calibration, seed=seed, **kw)
    model.preload(_mass(r, 100, 5000), _pos(r))
    t = 2 * _NS
    end = int(duration_s * _NS) - 2 * _NS
    while t < end:
        if r.random() < 0.3:
            span = int(r.uniform(1.0, 3.0) * _NS)
            model.roll(t, t + span, accel_rms_g=float(r.uniform(0.02, 0.08)), flagged=flagged)
            t += span
        else:
            model.bump(t, accel_g=float(r.uniform(0.1, 0.6)), flagged=flagged)
        t += int(r.uniform(0.8, 3.0) * _NS)
    return Scenario("bumps", model, int(duration_s * _NS))


SCENARIOS: dict[str, Callable[..., Scenario]] = {"steps": steps, "bumpy": bumpy, "drift": drift, "bumps": bumps}


def build(name: str, calibration: Any = None, seed: int = 0, **kw: Any) -> Scenario:
    """The scenario ``name`` (one of :data:`SCENARIOS`)."""
    if name not in SCENARIOS:
        raise ValueError(f"scenario {name!r} is unknown: expected one of {', '.join(SCENARIOS)}")
    return SCENARIOS[name](calibration, seed, **kw)
