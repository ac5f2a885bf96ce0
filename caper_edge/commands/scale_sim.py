"""``caper-edge scale-sim``: a simulated scale MCU on a pty, so the stack runs without hardware.

It prints the pty's path (point ``[scale] port`` or ``--port`` of other commands at it) and then
speaks the protocol at 80 Hz in real time, either from a generated scenario
(:mod:`caper_edge.scale.scenarios`; the load-cell physics inverts the configured calibration, so
the reader turns the counts back into the intended grams) or from the ``/scale/raw`` topic of a
recorded bag. Weight changes of a scenario are printed as they happen.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Iterator
from pathlib import Path

from ..errors import CaperError, InputError

SCALE_TOPIC = "/scale/raw"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..scale.scenarios import SCENARIOS

    parser.add_argument("--config", type=Path, help="TOML config (the calibration the counts are made for)")
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--scenario", choices=sorted(SCENARIOS), default="steps",
                     help="generated load-cell scenario (default %(default)s)")
    src.add_argument("--bag", type=Path, help=f"replay the {SCALE_TOPIC} topic of this bag instead")
    parser.add_argument("--seed", type=int, default=0, help="scenario seed (default %(default)s)")
    parser.add_argument("--link", type=Path, help="also create this symlink to the pty (like udev's /dev/caper-scale)")
    parser.add_argument("--speed", type=float, default=1.0, help="factor of real time (default %(default)s)")
    parser.add_argument("--loop", action="store_true", help="repeat forever (scenarios: a new seed each pass)")
    parser.add_argument("--quiet", action="store_true", help="print only the pty path")


def run(args: argparse.Namespace) -> int:
    from .. import config
    from ..scale.ptysim import PtyScale

    cfg = config.load(args.config)
    if not args.speed > 0:
        raise CaperError(f"--speed {args.speed}: expected a positive factor of real time")
    lines = _bag_lines(args.bag, args.loop) if args.bag else _scenario_lines(args, cfg.scale.calibration)
    first = next(lines, None)             # open the bag / build the scenario now: errors surface here
    if first is None:
        raise InputError(f"nothing to send from {args.bag or args.scenario}")
    sim = PtyScale(itertools.chain([first], lines), link=args.link, speed=args.speed)
    source = f"bag {args.bag}" if args.bag else f"scenario {args.scenario}, seed {args.seed}"
    print(sim.path, flush=True)
    if not args.quiet:
        print(f"scale-sim: {source} on {sim.slave_path} at 80 Hz x{args.speed:g}; Ctrl-C to stop", file=sys.stderr)
    sim.start()
    try:
        while not sim.finished.wait(0.5):
            pass
    finally:
        sim.stop()
    if isinstance(sim.error, CaperError):
        raise sim.error
    if sim.error is not None:
        raise InputError(f"scale-sim source failed: {sim.error}")
    if not args.quiet:
        print(f"scale-sim: done, {sim.written_lines} lines written, {sim.dropped_lines} dropped "
              "(nobody reading)", file=sys.stderr)
    return 0


def _scenario_lines(args: argparse.Namespace, calibration) -> Iterator[tuple[int, bytes]]:
    from ..scale.scenarios import build

    offset_ns, samples, passes = 0, 0, 0
    while True:
        # Each pass continues the MCU's counters, as one long uptime would.
        sc = build(args.scenario, calibration, args.seed + passes,
                   seq0=samples % 65536, mcu_t0_ms=1000 + offset_ns // 1_000_000)
        pending = sorted(sc.changes, key=lambda e: e.t_start_ns)
        for t_ns, line in sc.model.lines(0, sc.duration_ns, chunk_s=0.5):
            while pending and pending[0].t_start_ns <= t_ns and not args.quiet:
                ev = pending.pop(0)
                where = "" if ev.pos is None else f" at ({ev.pos[0]:.2f}, {ev.pos[1]:.2f})"
                print(f"  t={(offset_ns + ev.t_start_ns) / 1e9:8.2f} s  {ev.kind:<6s} {ev.delta_g:+9.1f} g{where}",
                      file=sys.stderr, flush=True)
            samples += 1
            yield offset_ns + t_ns, line
        offset_ns += sc.duration_ns
        passes += 1
        if not args.loop:
            return


def _bag_lines(path: Path, loop: bool) -> Iterator[tuple[int, bytes]]:
    first = True
    offset_ns = 0
    while True:
        count, last_t = 0, 0
        for t_ns, text in _read_scale_topic(path):
            data = text.encode("ascii", errors="replace")
            if not data.endswith(b"\n"):
                data += b"\r\n"
            last_t = t_ns
            count += 1
            yield offset_ns + t_ns, data
        if first and count == 0:
            raise InputError(f"bag {path} has no messages on {SCALE_TOPIC}")
        first = False
        if not loop:
            return
        offset_ns += last_t + 12_500_000


def _read_scale_topic(path: Path) -> Iterator[tuple[int, str]]:
    """(log time ns, line) of every /scale/raw message, via caper_edge.bags when present."""
    try:
        from ..bags import BagReader
    except ImportError:
        BagReader = None  # noqa: N806 - the project's reader is optional here
    if BagReader is not None:
        with BagReader(path) as reader:
            if SCALE_TOPIC not in reader.topics:
                raise InputError(f"bag {path} has no {SCALE_TOPIC} topic (topics: {', '.join(reader.topics) or 'none'})")
            t0 = reader.start_ns or 0
            for m in reader.messages([SCALE_TOPIC]):
                yield m.t_ns - t0, m.msg.data
        return
    from rosbags.highlevel import AnyReader

    try:
        reader = AnyReader([path])
        reader.open()
    except Exception as exc:  # noqa: BLE001 - rosbags raises several types for unreadable bags
        raise InputError(f"bag {path} cannot be opened: {exc}") from None
    try:
        conns = [c for c in reader.connections if c.topic == SCALE_TOPIC]
        if not conns:
            raise InputError(f"bag {path} has no {SCALE_TOPIC} topic")
        t0 = reader.start_time
        for conn, t_ns, raw in reader.messages(connections=conns):
            yield t_ns - t0, reader.deserialize(raw, conn.msgtype).data
    finally:
        reader.close()
