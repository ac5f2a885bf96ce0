"""Deterministic load-cell physics of the cart basket, for simulators, tests and benchmarks.

The basket floor rests on four load cells at its corners. Positions on the floor are normalised
``(u, v)`` in [0, 1]^2: ``u`` runs left -> right, ``v`` front -> rear. Cells are numbered
0 front-left (0, 0), 1 front-right (1, 0), 2 rear-right (1, 1), 3 rear-left (0, 1), and a mass
``m`` at ``(u, v)`` loads them bilinearly (a rigid plate on four supports)::

    cell0 = m (1-u)(1-v)   cell1 = m u (1-v)   cell2 = m u v   cell3 = m (1-u) v

so the centre of pressure of per-cell grams ``w`` is ``u = (w1 + w2) / W``, ``v = (w2 + w3) / W``.

What the model produces per sample (80 Hz by default), in grams per cell before the calibration
is inverted into signed 24-bit ADC counts ``raw_i = round(offset_i + grams_i / gain_i)``:

- the static load of every item in the basket, split by its position;
- placing (:meth:`LoadCellModel.place`): the item's weight ramps in while the hand lowers it,
  the hand pushes it down (a half-sine of extra force) until release, then the basket rings:
  a damped oscillation whose envelope falls below the noise floor ``ring_s`` (0.3-1 s) after
  release; ``drop=True`` is a free fall: a step with an impact overshoot and a longer ring;
- removing (:meth:`LoadCellModel.remove`): the hand presses while gripping, the weight ramps
  out while lifting, and a smaller ring follows;
- cart bumps (:meth:`LoadCellModel.bump`) and rolling vibration (:meth:`LoadCellModel.roll`):
  vertical acceleration ``a`` scales the basket's dead load and contents by ``a/g`` and a tilt
  shifts load between front and rear cells; the MCU's accelerometer sets flag bit 2 (motion)
  while they last. They never change the static load;
- slow drift (temperature, creep): a linear term plus slow sinusoids per cell, and load-cell
  creep that follows each load change with a long time constant;
- white noise of ``noise_g`` grams (standard deviation of the 4-cell sum), then quantisation;
- ADC faults (:meth:`LoadCellModel.fault`, only when asked): flag bit 0 and frozen counts;
  overload (flag bit 1) when a cell leaves the 24-bit range (counts are clipped).

Everything is a pure function of the sample index and the schedule, with noise drawn per
fixed block of samples from ``seed``: the same model gives the same samples however
:meth:`LoadCellModel.samples` is chunked. Typical use by a simulator::

    model = LoadCellModel(config.load().scale.calibration, seed=7)
    ev = model.place(t_ns=2_000_000_000, mass_g=410.0, pos=(0.3, 0.6))   # ev.t_rest_ns: ring-down end
    model.bump(t_ns=5_000_000_000, accel_g=0.25)
    block = model.samples(0, 8_000_000_000)          # arrays: t_ns, seq, t_ms, raw (n, 4), flags ...
    for t_ns, line in model.lines(0, 8_000_000_000): # protocol lines, e.g. for /scale/raw
        ...
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .protocol import CELLS, FLAG_ADC_FAULT, FLAG_MOTION, FLAG_OVERLOAD, RAW_MAX, RAW_MIN, SEQ_MOD, T_MS_MOD, encode_sample

__all__ = ["LoadCellBlock", "LoadCellModel", "ScheduledEvent", "cell_split", "centre_of_pressure"]

G = 9.80665
_NOISE_BLOCK = 4096                      # samples per independently seeded noise block
_NS = 1_000_000_000


def cell_split(mass_g: float, pos: Sequence[float]) -> np.ndarray:
    """Grams on cells 0..3 of a mass at floor position ``pos = (u, v)`` in [0, 1]^2 (bilinear)."""
    u, v = _check_pos(pos)
    return mass_g * np.array([(1 - u) * (1 - v), u * (1 - v), u * v, (1 - u) * v])


def centre_of_pressure(cell_g: Sequence[float]) -> tuple[float, float]:
    """``(u, v)`` of per-cell grams (the inverse of :func:`cell_split`); NaNs when the sum is ~0."""
    w = np.asarray(cell_g, dtype=np.float64)
    total = float(w.sum())
    if abs(total) < 1e-9:
        return (math.nan, math.nan)
    return (float((w[1] + w[2]) / total), float((w[2] + w[3]) / total))


def _check_pos(pos: Sequence[float]) -> tuple[float, float]:
    if len(pos) != 2 or not all(0.0 <= float(p) <= 1.0 for p in pos):
        raise ValueError(f"pos = {tuple(pos)!r}: expected (u, v) with both in [0, 1] (basket floor, normalised)")
    return float(pos[0]), float(pos[1])


@dataclass(frozen=True)
class ScheduledEvent:
    """One scheduled physical event and its ground truth.

    ``t_start_ns``: first contact / start; ``t_release_ns``: the hand lets go (or the bump ends);
    ``t_rest_ns``: the ring-down has fallen below the noise floor. ``delta_g`` is the change of
    the static load (0 for bumps) and ``cell_delta_g`` its split over cells 0..3.
    """

    kind: str                          # "place", "drop", "remove", "bump", "roll", "fault"
    t_start_ns: int
    t_release_ns: int
    t_rest_ns: int
    delta_g: float
    pos: tuple[float, float] | None
    cell_delta_g: tuple[float, float, float, float]
    item: int | None = None            # handle of the item placed / removed


@dataclass
class LoadCellBlock:
    """Samples of one time range as parallel arrays (n samples).

    ``t_ns`` (n,) int64 host time of each sample; ``seq`` (n,) int64 wrapped to 0..65535;
    ``t_ms`` (n,) int64 MCU uptime wrapped to uint32; ``raw`` (n, 4) int32 counts; ``flags`` (n,)
    uint8; ``static_g`` (n,) float64: the true static load sum (what a perfect detector reports);
    ``cell_g`` (n, 4) float64: the noise-free grams per cell including dynamics and drift.
    """

    t_ns: np.ndarray
    seq: np.ndarray
    t_ms: np.ndarray
    raw: np.ndarray
    flags: np.ndarray
    static_g: np.ndarray
    cell_g: np.ndarray

    def __len__(self) -> int:
        return int(self.t_ns.size)

    def grams(self, offsets: Sequence[float], gains: Sequence[float]) -> np.ndarray:
        """(n,) calibrated total grams: sum_i (raw_i - offsets_i) * gains_i."""
        return ((self.raw - np.asarray(offsets, dtype=np.float64)) * np.asarray(gains, dtype=np.float64)).sum(axis=1)


@dataclass
class _Item:
    mass_g: float
    cells: np.ndarray
    t_on_ns: int                       # weight fully on (end of the ramp-in)
    ramp_on_s: float
    t_off_ns: int | None = None        # start of removal
    ramp_off_s: float = 0.2


@dataclass
class _Transient:
    """A force transient: envelope-shaped extra grams on the cells (push, ring, impact, bump)."""

    t0_ns: int
    t1_ns: int                         # support end (beyond it the transient is exactly zero)
    kind: str                          # "halfsine", "ring", "accel", "vibration"
    amp_g: float = 0.0
    cells: np.ndarray = field(default_factory=lambda: np.full(CELLS, 0.25))
    freq_hz: float = 0.0
    tau_s: float = 1.0
    phase: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class LoadCellModel:
    """Per-cell raw counts of the basket's four load cells over time; see the module docstring.

    Parameters
    ----------
    calibration
        Anything with ``offsets`` and ``gains`` (4 each; e.g. ``config.load().scale.calibration``)
        or a ``(offsets, gains)`` pair. The model inverts it: raw counts turn back into the
        simulated grams with the same calibration.
    seed
        Seed of every random draw (noise, per-event ring time, frequencies, phases).
    rate_hz
        Sample rate of the MCU (80 Hz).
    noise_g
        Standard deviation of the white noise of the 4-cell sum in grams (HX711 at 80 Hz: 1-3 g).
    drift_g_per_min
        Linear drift of the total reading in grams per minute (temperature ramp).
    wander_g
        Amplitude in grams of slow sinusoidal wander of each cell (periods 1-10 min).
    creep_fraction, creep_tau_s
        Load-cell creep: after a load change of ``d`` grams the reading creeps by
        ``creep_fraction * d`` with time constant ``creep_tau_s``.
    dead_load_g
        Mass of the basket itself (already in the calibration offsets); bumps accelerate it too.
    start_ns, mcu_t0_ms, seq0, clock_ppm
        Host time of sample 0, the MCU's uptime and sequence number at sample 0, and the MCU
        oscillator's error in parts per million (positive: its milliseconds run fast).
    """

    def __init__(
        self,
        calibration: Any = None,
        seed: int = 0,
        *,
        rate_hz: float = 80.0,
        noise_g: float = 1.5,
        drift_g_per_min: float = 0.0,
        wander_g: float = 0.0,
        creep_fraction: float = 0.0003,
        creep_tau_s: float = 60.0,
        dead_load_g: float = 1800.0,
        start_ns: int = 0,
        mcu_t0_ms: int = 1_000,
        seq0: int = 0,
        clock_ppm: float = 0.0,
    ) -> None:
        self.offsets, self.gains = _calibration_arrays(calibration)
        if not 1.0 <= rate_hz <= 10000.0:
            raise ValueError(f"rate_hz = {rate_hz!r}: expected a sample rate in 1..10000 Hz")
        if noise_g < 0 or dead_load_g < 0:
            raise ValueError(f"noise_g = {noise_g!r}, dead_load_g = {dead_load_g!r}: expected non-negative grams")
        self.seed = int(seed)
        self.rate_hz = float(rate_hz)
        self.noise_g = float(noise_g)
        self.drift_g_per_min = float(drift_g_per_min)
        self.wander_g = float(wander_g)
        self.creep_fraction = float(creep_fraction)
        self.creep_tau_s = float(creep_tau_s)
        self.dead_cells = np.full(CELLS, dead_load_g / CELLS)
        self.start_ns = int(start_ns)
        self.mcu_t0_ms = int(mcu_t0_ms)
        self.seq0 = int(seq0)
        self.clock_ppm = float(clock_ppm)
        self._items: list[_Item] = []
        self._transients: list[_Transient] = []
        self._motion: list[tuple[int, int]] = []
        self._faults: list[tuple[int, int]] = []
        self._creeps: list[tuple[int, np.ndarray]] = []
        self._events: list[ScheduledEvent] = []
        self._rng = np.random.default_rng([self.seed, 0xE7E7])
        wr = np.random.default_rng([self.seed, 0xD21F])
        self._wander_period_s = wr.uniform(60.0, 600.0, size=(CELLS, 2))
        self._wander_phase = wr.uniform(0, 2 * np.pi, size=(CELLS, 2))
        self._drift_split = wr.dirichlet(np.full(CELLS, 4.0))

    # -----------------------------------------------------------------------------------------
    # Scheduling
    # -----------------------------------------------------------------------------------------

    @property
    def events(self) -> list[ScheduledEvent]:
        """Every scheduled event with its ground truth, in scheduling order."""
        return list(self._events)

    def items_at(self, t_ns: int) -> list[int]:
        """Handles of the items whose weight is (at least partly) on the basket at ``t_ns``."""
        return [i for i, it in enumerate(self._items) if it.t_on_ns - _ns(it.ramp_on_s) <= t_ns
                and (it.t_off_ns is None or t_ns < it.t_off_ns + _ns(it.ramp_off_s))]

    def preload(self, mass_g: float, pos: Sequence[float] = (0.5, 0.5)) -> int:
        """An item already in the basket before any sample; returns its handle."""
        cells = cell_split(_positive(mass_g, "mass_g"), pos)
        self._items.append(_Item(float(mass_g), cells, t_on_ns=-(1 << 62), ramp_on_s=0.0))
        return len(self._items) - 1

    def place(
        self,
        t_ns: int,
        mass_g: float,
        pos: Sequence[float] = (0.5, 0.5),
        *,
        duration_s: float | None = None,
        push_g: float | None = None,
        ring_s: float | None = None,
        drop: bool = False,
    ) -> ScheduledEvent:
        """Put an item of ``mass_g`` at ``pos``, starting at ``t_ns``; returns its ground truth.

        A hand placement lasts ``duration_s`` (default 0.3-0.8 s): the weight ramps in over the
        first 40 % while the hand pushes with up to ``push_g`` extra grams (default
        8-25 % of the mass + 20-80 g) as a half-sine until release at ``t_start + duration``.
        ``drop=True`` is a free fall with no hand: an instant step with an impact overshoot.
        The ring after release lasts ``ring_s`` (default drawn in 0.3-1.0 s).
        """
        mass_g = _positive(mass_g, "mass_g")
        cells = cell_split(mass_g, pos)
        r = self._rng
        t_ns = int(t_ns)
        if drop:
            dur = 0.0
            push = 0.0
            ring_amp = mass_g * r.uniform(0.25, 0.5) + 20.0
        else:
            dur = float(duration_s) if duration_s is not None else float(r.uniform(0.3, 0.8))
            push = float(push_g) if push_g is not None else float(mass_g * r.uniform(0.08, 0.25) + r.uniform(20, 80))
            ring_amp = 0.4 * push + mass_g * r.uniform(0.02, 0.06) + 5.0
        ring = float(ring_s) if ring_s is not None else float(r.uniform(0.3, 1.0))
        ramp = 0.4 * dur
        t_release = t_ns + _ns(dur)
        self._items.append(_Item(mass_g, cells, t_on_ns=t_ns + _ns(ramp), ramp_on_s=ramp))
        handle = len(self._items) - 1
        if push > 0 and dur > 0:
            self._transients.append(_Transient(t_ns, t_release, "halfsine", amp_g=push, cells=cells / mass_g))
        t_rest = self._add_ring(t_release, ring_amp, ring, cells / mass_g)
        self._creeps.append((t_release, cells.copy()))
        ev = ScheduledEvent("drop" if drop else "place", t_ns, t_release, t_rest, mass_g, _pos(pos),
                            tuple(float(c) for c in cells), handle)
        self._events.append(ev)
        return ev

    def remove(
        self,
        t_ns: int,
        item: int,
        *,
        duration_s: float | None = None,
        grip_g: float | None = None,
        ring_s: float | None = None,
    ) -> ScheduledEvent:
        """Lift item ``item`` (a handle from :meth:`place` / :meth:`preload`) starting at ``t_ns``.

        The hand presses with ``grip_g`` (default 5-15 % of the mass + 10-40 g) while gripping
        for the first half of ``duration_s`` (default 0.3-0.7 s), then the weight ramps out
        over the second half; a ring of ``ring_s`` follows the lift-off.
        """
        if not 0 <= item < len(self._items) or self._items[item].t_off_ns is not None:
            raise ValueError(f"item = {item!r}: expected the handle of an item in the basket")
        it = self._items[item]
        r = self._rng
        t_ns = int(t_ns)
        dur = float(duration_s) if duration_s is not None else float(r.uniform(0.3, 0.7))
        grip = float(grip_g) if grip_g is not None else float(it.mass_g * r.uniform(0.05, 0.15) + r.uniform(10, 40))
        ring = float(ring_s) if ring_s is not None else float(r.uniform(0.3, 1.0))
        unit = it.cells / it.mass_g
        it.t_off_ns = t_ns + _ns(dur / 2)
        it.ramp_off_s = dur / 2
        t_release = t_ns + _ns(dur)
        if grip > 0 and dur > 0:
            self._transients.append(_Transient(t_ns, it.t_off_ns + _ns(dur / 4), "halfsine", amp_g=grip, cells=unit))
        t_rest = self._add_ring(t_release, 0.3 * grip + 0.02 * it.mass_g + 5.0, ring, unit)
        self._creeps.append((t_release, -it.cells))
        u = float(it.cells[1] + it.cells[2]) / it.mass_g
        v = float(it.cells[2] + it.cells[3]) / it.mass_g
        ev = ScheduledEvent("remove", t_ns, t_release, t_rest, -it.mass_g, (u, v),
                            tuple(float(-c) for c in it.cells), item)
        self._events.append(ev)
        return ev

    def bump(self, t_ns: int, accel_g: float = 0.3, *, duration_s: float = 0.6, freq_hz: float | None = None,
             tilt: float = 0.5, flagged: bool = True) -> ScheduledEvent:
        """A cart bump at ``t_ns``: vertical acceleration ``accel_g`` (in g) ringing at ``freq_hz``
        (default 3-9 Hz), decaying within ``duration_s``; ``tilt`` scales the front/rear load
        shift. The motion flag is set for ``duration_s`` when ``flagged``."""
        t_ns = int(t_ns)
        f = float(freq_hz) if freq_hz is not None else float(self._rng.uniform(3.0, 9.0))
        tr = _Transient(t_ns, t_ns + _ns(duration_s), "accel", amp_g=float(accel_g), freq_hz=f,
                        tau_s=duration_s / 5.0, phase=float(self._rng.uniform(0, 2 * np.pi)), extra={"tilt": tilt})
        self._transients.append(tr)
        if flagged:
            self._motion.append((t_ns, t_ns + _ns(duration_s)))
        ev = ScheduledEvent("bump", t_ns, tr.t1_ns, tr.t1_ns, 0.0, None, (0.0, 0.0, 0.0, 0.0))
        self._events.append(ev)
        return ev

    def roll(self, t0_ns: int, t1_ns: int, accel_rms_g: float = 0.04, *, flagged: bool = True) -> ScheduledEvent:
        """The cart rolls from ``t0_ns`` to ``t1_ns``: continuous vibration (2-15 Hz, RMS
        acceleration ``accel_rms_g`` in g); the motion flag is set throughout when ``flagged``."""
        t0_ns, t1_ns = int(t0_ns), int(t1_ns)
        if t1_ns <= t0_ns:
            raise ValueError(f"roll interval [{t0_ns}, {t1_ns}) ns is empty: expected t1_ns > t0_ns")
        k = 6
        freqs = self._rng.uniform(2.0, 15.0, size=k)
        phases = self._rng.uniform(0, 2 * np.pi, size=k)
        amps = self._rng.uniform(0.5, 1.0, size=k)
        amps *= accel_rms_g * math.sqrt(2.0) / math.sqrt(float((amps**2).sum()))
        self._transients.append(_Transient(t0_ns, t1_ns, "vibration", extra={"f": freqs, "p": phases, "a": amps}))
        if flagged:
            self._motion.append((t0_ns, t1_ns))
        ev = ScheduledEvent("roll", t0_ns, t1_ns, t1_ns, 0.0, None, (0.0, 0.0, 0.0, 0.0))
        self._events.append(ev)
        return ev

    def fault(self, t_ns: int, duration_s: float = 0.1) -> ScheduledEvent:
        """ADC fault from ``t_ns`` for ``duration_s``: flag bit 0 and counts frozen at the last good value."""
        t_ns = int(t_ns)
        self._faults.append((t_ns, t_ns + _ns(duration_s)))
        ev = ScheduledEvent("fault", t_ns, t_ns + _ns(duration_s), t_ns + _ns(duration_s), 0.0, None, (0.0,) * 4)
        self._events.append(ev)
        return ev

    def _add_ring(self, t_ns: int, amp_g: float, ring_s: float, unit_cells: np.ndarray) -> int:
        # The envelope amp * exp(-t / tau) reaches the noise floor (at least 0.5 g) at ring_s.
        floor = max(self.noise_g, 0.5)
        tau = ring_s / max(math.log(max(amp_g, floor * 1.01) / floor), 0.01)
        f = float(self._rng.uniform(4.0, 8.0))
        # Beyond 12 tau the ring is below 1e-5 of its start: end its support there (cheaper).
        self._transients.append(_Transient(t_ns, t_ns + _ns(12 * tau + ring_s), "ring", amp_g=amp_g,
                                           cells=unit_cells, freq_hz=f, tau_s=tau,
                                           phase=float(self._rng.uniform(0, 2 * np.pi))))
        return t_ns + _ns(ring_s)

    # -----------------------------------------------------------------------------------------
    # Rendering
    # -----------------------------------------------------------------------------------------

    def sample_index_range(self, t0_ns: int, t1_ns: int) -> tuple[int, int]:
        """Sample indices ``[k0, k1)`` whose host times lie in ``[t0_ns, t1_ns)``."""
        period = _NS / self.rate_hz
        k0 = max(0, math.ceil((int(t0_ns) - self.start_ns) / period - 1e-9))
        k1 = max(k0, math.ceil((int(t1_ns) - self.start_ns) / period - 1e-9))
        return k0, k1

    def samples(self, t0_ns: int, t1_ns: int) -> LoadCellBlock:
        """All samples with host time in ``[t0_ns, t1_ns)`` as a :class:`LoadCellBlock`."""
        return self._render(*self.sample_index_range(t0_ns, t1_ns), faults=True)

    def _render(self, k0: int, k1: int, *, faults: bool) -> LoadCellBlock:
        k = np.arange(k0, k1, dtype=np.int64)
        t_ns = self._t_ns(k)
        static = self._static_cells(t_ns)
        cells = static + self._dynamic_cells(t_ns, static) + self._drift_cells(t_ns)
        noisy = cells + self._noise(k0, k1) * (self.noise_g / 2.0)   # 4 cells: sum std = noise_g
        counts = np.round(self.offsets + noisy / self.gains)
        flags = np.zeros(k.size, dtype=np.uint8)
        over = ((counts < RAW_MIN) | (counts > RAW_MAX)).any(axis=1)
        flags[over] |= FLAG_OVERLOAD
        raw = np.clip(counts, RAW_MIN, RAW_MAX).astype(np.int32)
        for a, b in self._motion:
            flags[(t_ns >= a) & (t_ns < b)] |= FLAG_MOTION
        if faults:
            self._apply_faults(t_ns, raw, flags)
        ms = self.mcu_t0_ms + np.floor(k * (1000.0 / self.rate_hz) * (1.0 + self.clock_ppm * 1e-6)).astype(np.int64)
        return LoadCellBlock(t_ns=t_ns, seq=(self.seq0 + k) % SEQ_MOD, t_ms=ms % T_MS_MOD, raw=raw, flags=flags,
                             static_g=static.sum(axis=1), cell_g=cells)

    def _t_ns(self, k: np.ndarray) -> np.ndarray:
        return self.start_ns + np.round(k * (_NS / self.rate_hz)).astype(np.int64)

    def iter_samples(self, t0_ns: int, t1_ns: int, chunk_s: float = 10.0) -> Iterator[tuple[int, int, int, tuple[int, int, int, int], int]]:
        """Yield ``(t_ns, seq, t_ms, raw[4], flags)`` per sample in ``[t0_ns, t1_ns)``, rendered in chunks."""
        step = _ns(chunk_s)
        for a in range(int(t0_ns), int(t1_ns), step):
            b = self.samples(a, min(a + step, int(t1_ns)))
            for i in range(len(b)):
                yield (int(b.t_ns[i]), int(b.seq[i]), int(b.t_ms[i]), tuple(int(x) for x in b.raw[i]), int(b.flags[i]))

    def lines(self, t0_ns: int, t1_ns: int, chunk_s: float = 10.0) -> Iterator[tuple[int, bytes]]:
        """Yield ``(t_ns, protocol line)`` per sample in ``[t0_ns, t1_ns)``."""
        for t_ns, seq, t_ms, raw, flags in self.iter_samples(t0_ns, t1_ns, chunk_s):
            yield t_ns, encode_sample(seq, t_ms, raw, flags)

    def _static_cells(self, t_ns: np.ndarray) -> np.ndarray:
        out = np.zeros((t_ns.size, CELLS))
        for it in self._items:
            on = _ramp(t_ns, it.t_on_ns - _ns(it.ramp_on_s), it.ramp_on_s)
            if it.t_off_ns is not None:
                on = on * (1.0 - _ramp(t_ns, it.t_off_ns, it.ramp_off_s))
            out += on[:, None] * it.cells[None, :]
        return out

    def _dynamic_cells(self, t_ns: np.ndarray, static: np.ndarray) -> np.ndarray:
        out = np.zeros((t_ns.size, CELLS))
        # Front cells (0, 1) and rear cells (2, 3) trade load when the basket pitches.
        pitch = np.array([1.0, 1.0, -1.0, -1.0])
        for tr in self._transients:
            sel = (t_ns >= tr.t0_ns) & (t_ns < tr.t1_ns)
            if not sel.any():
                continue
            t = (t_ns[sel] - tr.t0_ns) * 1e-9
            if tr.kind == "halfsine":
                span = (tr.t1_ns - tr.t0_ns) * 1e-9
                out[sel] += (tr.amp_g * np.sin(np.pi * t / span))[:, None] * tr.cells[None, :]
            elif tr.kind == "ring":
                wave = tr.amp_g * np.exp(-t / tr.tau_s) * np.sin(2 * np.pi * tr.freq_hz * t + tr.phase)
                out[sel] += wave[:, None] * tr.cells[None, :]
            else:
                if tr.kind == "accel":
                    a = tr.amp_g * np.exp(-t / tr.tau_s) * np.sin(2 * np.pi * tr.freq_hz * t + tr.phase)
                    a *= 1.0 - np.clip((t - (tr.t1_ns - tr.t0_ns) * 1e-9 + 0.05) / 0.05, 0.0, 1.0)  # taper to 0
                    tilt = tr.extra["tilt"]
                else:
                    f, p, amp = tr.extra["f"], tr.extra["p"], tr.extra["a"]
                    a = (amp[None, :] * np.sin(2 * np.pi * t[:, None] * f[None, :] + p[None, :])).sum(axis=1)
                    tilt = 0.3
                load = static[sel] + self.dead_cells[None, :]
                total = load.sum(axis=1)
                out[sel] += a[:, None] * load + (tilt * a * total / CELLS)[:, None] * pitch[None, :] * 0.5
        return out

    def _drift_cells(self, t_ns: np.ndarray) -> np.ndarray:
        t_s = (t_ns - self.start_ns) * 1e-9
        out = (self.drift_g_per_min / 60.0 * t_s)[:, None] * self._drift_split[None, :]
        if self.wander_g:
            w = np.sin(2 * np.pi * t_s[:, None, None] / self._wander_period_s[None] + self._wander_phase[None])
            out += self.wander_g * 0.5 * w.sum(axis=2)
        for t0, cells in self._creeps:
            dt = np.maximum(t_ns - t0, 0) * 1e-9
            out += (self.creep_fraction * (1.0 - np.exp(-dt / self.creep_tau_s)))[:, None] * cells[None, :]
        return out

    def _noise(self, k0: int, k1: int) -> np.ndarray:
        # Per-block seeding makes sample k's noise independent of how samples() is chunked.
        if k1 <= k0:
            return np.zeros((0, CELLS))
        parts = []
        for b in range(k0 // _NOISE_BLOCK, (k1 - 1) // _NOISE_BLOCK + 1):
            block = np.random.default_rng([self.seed, 0x401E, b]).standard_normal((_NOISE_BLOCK, CELLS))
            lo = max(k0 - b * _NOISE_BLOCK, 0)
            hi = min(k1 - b * _NOISE_BLOCK, _NOISE_BLOCK)
            parts.append(block[lo:hi])
        return np.concatenate(parts)

    def _apply_faults(self, t_ns: np.ndarray, raw: np.ndarray, flags: np.ndarray) -> None:
        for a, b in self._faults:
            sel = np.flatnonzero((t_ns >= a) & (t_ns < b))
            if sel.size == 0:
                continue
            flags[sel] |= FLAG_ADC_FAULT
            # A stuck HX711 repeats its last good conversion: the sample just before the fault,
            # rendered from the schedule so that the result does not depend on the chunking.
            kf = self.sample_index_range(a, a + 1)[0]
            frozen = self._render(max(kf - 1, 0), max(kf, 1), faults=False).raw[0]
            raw[sel] = frozen


def _calibration_arrays(calibration: Any) -> tuple[np.ndarray, np.ndarray]:
    if calibration is None:
        from ..config import load

        calibration = load().scale.calibration
    if hasattr(calibration, "offsets") and hasattr(calibration, "gains"):
        offsets, gains = calibration.offsets, calibration.gains
    else:
        offsets, gains = calibration
    offsets = np.asarray(offsets, dtype=np.float64)
    gains = np.asarray(gains, dtype=np.float64)
    if offsets.shape != (CELLS,) or gains.shape != (CELLS,) or not (gains > 0).all():
        raise ValueError(f"calibration offsets {offsets.tolist()} / gains {gains.tolist()}: "
                         f"expected {CELLS} offsets (counts) and {CELLS} positive gains (grams per count)")
    return offsets, gains


def _ramp(t_ns: np.ndarray, t0_ns: int, span_s: float) -> np.ndarray:
    """0 before ``t0``, a smooth (raised-cosine) rise to 1 over ``span_s``, then 1."""
    if span_s <= 0:
        return (t_ns >= t0_ns).astype(np.float64)
    x = np.clip((t_ns - t0_ns) * 1e-9 / span_s, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * x)


def _ns(seconds: float) -> int:
    return int(round(float(seconds) * _NS))


def _positive(value: float, name: str) -> float:
    if not float(value) > 0:
        raise ValueError(f"{name} = {value!r}: expected positive grams")
    return float(value)


def _pos(pos: Sequence[float]) -> tuple[float, float]:
    return _check_pos(pos)
