"""``caper-edge replay BAG [--speed realtime|max|FACTOR] [--events FILE.jsonl] [--publish ENDPOINT]``:
run a recorded bag through the whole pipeline (the runtime of caper_edge.pipeline) and emit its
basket events: journaled (in memory, so ``seq`` starts at 1 each replay), then written as
JSONL (``--events``, or standard output) and, with ``--publish``, on a ZeroMQ PUB socket.

At ``--speed max`` nothing is dropped and two replays of one bag give byte-identical JSONL.
``realtime`` or a factor paces the bag by its timestamps as a camera would deliver it: then, as
on the cart, the newest frame wins when the detector falls behind (``[pipeline] drop_frames =
"never"`` keeps every frame). The receipt is printed to standard error at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", type=Path, help="sensor bag (rosbag2 directory or .mcap/.db3/.bag file)")
    parser.add_argument("--speed", default="max", help="realtime, max (default) or a factor such as 2")
    parser.add_argument("--events", type=Path, metavar="FILE.jsonl",
                        help="write the events here, one JSON object per line (default: standard output)")
    parser.add_argument("--publish", metavar="ENDPOINT",
                        help="also publish on ZeroMQ PUB at ENDPOINT (e.g. tcp://127.0.0.1:5556); [publish] "
                             "rules apply (CURVE off loopback)")
    parser.add_argument("--vision", choices=("models", "oracle"), default="models",
                        help="models (default) or oracle: DIAGNOSTIC vision from the bag's ground-truth objects")
    parser.add_argument("--ablation", choices=("vision-only", "weight-only"), help="fusion with weight or vision off")
    parser.add_argument("--config", type=Path, help="TOML config file (partial; overrides the defaults)")
    parser.add_argument("--quiet", action="store_true", help="no receipt at the end")


def run(args: argparse.Namespace) -> int:
    from .. import config
    from ..errors import CaperError
    from ..journal import Journal
    from ..pipeline import Runtime, lossless_for, vision_workers_for
    from ..publish import EventOutlet, EventServer, JsonlSink
    from ..replay import ABLATIONS, Pipeline, load_catalog, open_vision
    from ..sources import BagSource, parse_speed

    cfg = config.load(args.config)
    try:
        speed = parse_speed(args.speed)
    except ValueError as exc:
        raise CaperError(f"--speed: {exc}") from None
    if not args.bag.exists():
        raise CaperError(f"bag {args.bag} does not exist")
    vision = open_vision(args.vision, cfg, args.bag)
    mode = ABLATIONS.get(args.ablation, cfg.fusion.mode)
    if args.vision == "oracle":
        print("caper-edge replay: DIAGNOSTIC run: vision from ground-truth objects (--vision oracle)", file=sys.stderr)
    with BagSource(args.bag, speed="max") as probe:
        catalog = load_catalog(probe.catalog, vision)
    pipe = Pipeline(cfg, catalog, vision, mode=mode)
    lossless = lossless_for(cfg, speed)
    journal = Journal(":memory:")
    jsonl = JsonlSink(args.events if args.events else "/dev/stdout", mode="truncate")
    server = None
    try:
        if args.publish:
            server = EventServer(dataclasses.replace(cfg.publish, pub=args.publish), journal=journal)
        outlet = EventOutlet(journal, server=server, jsonl=jsonl)
        runtime = Runtime(cfg, pipe, lambda: BagSource(args.bag, speed="max" if speed is None else speed, decode=False,
                                                       max_depth_gap_ms=cfg.camera.max_depth_gap_ms),
                          outlet.commit, lossless=lossless, next_seq=lambda: journal.last_seq + 1, source_kind="bag",
                          vision_workers=vision_workers_for(cfg, vision))
        runtime.run()
    finally:
        if server is not None:
            server.close()
        else:
            jsonl.close()
        journal.close()
    if not args.quiet:
        print(pipe.basket.receipt(catalog).format(), file=sys.stderr)
        lat = runtime.stage["capture_to_publish"].latency_ms.quantiles((0.5, 0.99))
        print(f"{runtime.frames_done} frames ({runtime.frames_dropped} dropped, newest frame wins)"
              if not lossless else f"{runtime.frames_done} frames",
              f"{pipe.stats.scale_samples} scale samples, {pipe.stats.events} events, "
              f"capture-to-publish p50 {lat[0] or 0:.1f} ms p99 {lat[1] or 0:.1f} ms", sep=", ", file=sys.stderr)
    return 0
