"""``caper-edge calibrate``: tare and per-cell gains of the basket scale, written to the config.

Interactive, one prompt per line on stdout, answers read line by line from stdin (so a script or
a test can drive it):

1. Empty the basket, keep the cart still, press Enter: ``--seconds`` of raw counts per cell are
   averaged into the offsets (after ``--settle-s`` for the basket to stop moving).
2. The known mass in grams (or ``--mass-g``).
3. The mass at the centre, then on each corner (cells 0..3), Enter each time: mean counts per
   placement. Per-cell gains are solved by least squares over the five placements
   (:func:`caper_edge.scale.calibration.solve_gains`; docs/scale_protocol.md has the maths).
4. Offsets and gains go into ``[scale.calibration]`` of ``--config`` (created when missing),
   keeping its comments and other keys; the residual of each placement is printed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from ..errors import CaperError, InputError

PLACEMENTS = (
    ("centre", "in the centre of the basket floor"),
    ("cell 0", "on the front-left corner (cell 0), as close to the corner as it fits"),
    ("cell 1", "on the front-right corner (cell 1)"),
    ("cell 2", "on the rear-right corner (cell 2)"),
    ("cell 3", "on the rear-left corner (cell 3)"),
)
# Most samples of a step must arrive, without the motion flag, for its mean to be trusted.
_MIN_FRACTION = 0.5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True,
                        help="TOML config to read the port from and write [scale.calibration] into (created if missing)")
    parser.add_argument("--port", help="serial port or pyserial URL (default: [scale] port of the config)")
    parser.add_argument("--mass-g", type=float, help="the known mass in grams (otherwise asked)")
    parser.add_argument("--seconds", type=float, default=3.0, help="averaging time per step (default %(default)s s)")
    parser.add_argument("--settle-s", type=float, default=1.0,
                        help="wait after each Enter before averaging (default %(default)s s)")
    parser.add_argument("--connect-timeout-s", type=float, default=5.0,
                        help="give up when no sample arrives within this time (default %(default)s s)")


def run(args: argparse.Namespace) -> int:
    from .. import config
    from ..scale.calibration import solve_gains, tare, write_calibration
    from ..scale.reader import ScaleReader

    if not args.seconds > 0 or args.settle_s < 0:
        raise CaperError(f"--seconds {args.seconds} / --settle-s {args.settle_s}: expected > 0 and >= 0 seconds")
    if args.mass_g is not None and not args.mass_g > 0:
        raise CaperError(f"--mass-g {args.mass_g}: expected a positive mass in grams")
    cfg = config.load(args.config if args.config.exists() else None).scale
    reader = ScaleReader(cfg, port=args.port or cfg.port).start()
    try:
        _wait_for_samples(reader, args.connect_timeout_s)
        step = _Stepper(reader, args.seconds, args.settle_s, rate_hz=cfg.events.sample_rate_hz)
        total = 2 + len(PLACEMENTS)

        _prompt(f"step 1/{total}: empty the basket, keep the cart still, then press Enter")
        offsets = tare(step.collect("empty basket"))
        print(f"  offsets (counts): {_fmt(offsets, 1)}", flush=True)

        mass = args.mass_g if args.mass_g is not None else _ask_mass(total)
        means = []
        for i, (name, where) in enumerate(PLACEMENTS):
            _prompt(f"step {3 + i}/{total}: put the {mass:g} g mass {where}, then press Enter")
            means.append(step.collect(name).mean(axis=0))
        print("measured: the mass can come out of the basket", flush=True)

        sol = solve_gains(np.array(means), [mass] * len(PLACEMENTS), offsets)
        write_calibration(args.config, offsets, sol.gains)
    finally:
        reader.stop()
    print(f"  gains (g/count): {_fmt(sol.gains, 6)}   condition number {sol.condition:.1f}")
    tolerance = max(2.0, 0.01 * mass)
    for (name, _), res in zip(PLACEMENTS, sol.residuals_g):
        flag = "" if abs(res) <= tolerance else f"   <- more than {tolerance:g} g: misplaced mass or a faulty cell?"
        print(f"  {name:7s} reads {mass + res:10.2f} g (residual {res:+.2f} g){flag}")
    print(f"wrote [scale.calibration] to {args.config}")
    return 0


class _Stepper:
    """Collects the raw counts of one step from the reader's queue."""

    def __init__(self, reader, seconds: float, settle_s: float, rate_hz: float) -> None:
        self.reader, self.seconds, self.settle_s, self.rate_hz = reader, seconds, settle_s, rate_hz

    def collect(self, what: str) -> np.ndarray:
        from ..scale.protocol import FLAG_ADC_FAULT, FLAG_MOTION, FLAG_OVERLOAD

        time.sleep(self.settle_s)
        self.reader.drain()
        time.sleep(self.seconds)
        samples = self.reader.drain()
        bad = FLAG_ADC_FAULT | FLAG_OVERLOAD | FLAG_MOTION
        good = [s.raw for s in samples if not s.flags & bad]
        expected = self.seconds * self.rate_hz
        if len(good) < _MIN_FRACTION * expected:
            raise InputError(
                f"{what}: only {len(good)} usable samples in {self.seconds:g} s (expected about {expected:.0f}; "
                f"{len(samples) - len(good)} flagged motion/overload/fault, reader {self.reader.state}: "
                f"{self.reader.last_error or 'no error'}); keep the cart still and retry")
        return np.array(good, dtype=np.float64)


def _wait_for_samples(reader, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if reader.counters["samples"] > 0:
            return
        time.sleep(0.05)
    raise InputError(f"no scale samples from {reader.port} within {timeout_s:g} s "
                     f"(reader {reader.state}: {reader.last_error or 'no data'})")


def _prompt(text: str) -> None:
    print(text, flush=True)
    if not sys.stdin.readline():
        raise CaperError("calibration aborted: stdin closed before the answer")


def _ask_mass(total: int) -> float:
    print(f"step 2/{total}: the known mass in grams (e.g. 2000), then press Enter", flush=True)
    line = sys.stdin.readline()
    if not line:
        raise CaperError("calibration aborted: stdin closed before the mass was given")
    try:
        mass = float(line.strip())
    except ValueError:
        raise CaperError(f"mass {line.strip()!r}: expected a number of grams") from None
    if not mass > 0:
        raise CaperError(f"mass {mass:g}: expected a positive number of grams")
    return mass


def _fmt(values, digits: int) -> str:
    return "[" + ", ".join(f"{v:.{digits}f}" for v in values) + "]"
