"""``caper-edge replay BAG [--speed realtime|max|FACTOR] [--events FILE.jsonl] [--publish ENDPOINT]``:
run a recorded bag through the whole pipeline (the deterministic loop of caper_edge.replay) and
emit its basket events: journaled (in memory, so ``seq`` starts at 1 each replay), then written as
JSONL (``--events``, or standard output) and, with ``--publish``, on a ZeroMQ PUB socket.

At ``--speed max`` two replays of one bag give byte-identical JSONL. ``realtime`` or a factor
paces the bag by its timestamps; nothing is dropped either way (dropping is the live service's
policy). The receipt is printed to standard error at the end.
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
    from ..publish import EventOutlet, EventServer, JsonlSink
    from ..replay import Pipeline, load_catalog
    from ..sources import BagSource, parse_speed

    cfg = config.load(args.config)
    try:
        speed = parse_speed(args.speed)
    except ValueError as exc:
        raise CaperError(f"--speed: {exc}") from None
    if not args.bag.exists():
        raise CaperError(f"bag {args.bag} does not exist")
    vision = _vision(args.vision, cfg, args.bag)
    mode = {"vision-only": "vision_only", "weight-only": "weight_only"}.get(args.ablation, cfg.fusion.mode)
    if args.vision == "oracle":
        print("caper-edge replay: DIAGNOSTIC run: vision from ground-truth objects (--vision oracle)", file=sys.stderr)
    journal = Journal(":memory:")
    jsonl = JsonlSink(args.events if args.events else "/dev/stdout", mode="truncate")
    server = None
    try:
        if args.publish:
            server = EventServer(dataclasses.replace(cfg.publish, pub=args.publish), journal=journal)
        outlet = EventOutlet(journal, server=server, jsonl=jsonl)
        with BagSource(args.bag, speed="max" if speed is None else speed) as src:
            catalog = load_catalog(src.catalog, vision)
            pipe = Pipeline(cfg, catalog, vision, mode=mode)

            def commit(event) -> None:
                snap = pipe.basket.snapshot(0, event.t_ns, catalog=catalog, weight_g=pipe.last_weight_g)
                outlet.commit(event, snap)

            for msg in src:
                for ev in pipe.feed(msg):
                    commit(ev)
            for ev in pipe.finish():
                commit(ev)
    finally:
        if server is not None:
            server.close()
        else:
            jsonl.close()
        journal.close()
    if not args.quiet:
        print(pipe.basket.receipt(catalog).format(), file=sys.stderr)
        print(f"{pipe.stats.frames} frames, {pipe.stats.scale_samples} scale samples, {pipe.stats.events} events",
              file=sys.stderr)
    return 0


def _vision(kind: str, cfg, bag: Path):
    from ..catalog import Catalog
    from ..errors import InputError
    from ..replay import OracleVision, open_model_vision
    from ..sources import BagSource

    if kind == "models":
        return open_model_vision(cfg)
    with BagSource(bag) as src:
        if src.catalog is None:
            raise InputError(f"--vision oracle needs the bag's /catalog topic; {bag} has none")
        return OracleVision(Catalog.from_json(src.catalog, what=f"{bag} /catalog"))
