"""``caper-edge sim OUT --scenario NAME --seed N [--duration S]``: write a simulated session as a
sensor bag; with ``--dataset``, write training images and labels instead (see caper_edge.sim.dataset)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..sim.scenarios import DEFAULT_DURATION_S

    parser.add_argument("out", type=Path, help="bag directory to create (or the dataset folder with --dataset)")
    parser.add_argument("--scenario", default="simple", choices=sorted(DEFAULT_DURATION_S),
                        help="what happens (default %(default)s); see docs/simulator.md")
    parser.add_argument("--seed", type=int, default=0, help="seed of everything (default %(default)s)")
    parser.add_argument("--duration", type=float, help="seconds (default: the scenario's own length)")
    parser.add_argument("--config", type=Path, help="TOML config file (partial; overrides the defaults)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it is an existing bag")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    group = parser.add_argument_group("training data (--dataset)")
    group.add_argument("--dataset", action="store_true", help="write images + YOLO labels + SKU crops, no bag")
    group.add_argument("--split", default="train", help="split name for --dataset (default %(default)s)")
    group.add_argument("--frames", type=int, default=1000, help="images for --dataset (default %(default)s)")
    group.add_argument("--distractors", type=int, default=0,
                       help="add this many products from outside the store to --dataset (embedder training identities)")
    group.add_argument("--distractor-share", type=float, default=0.5,
                       help="probability that an item is a distractor (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    from .. import config
    from ..errors import InputError

    full = config.load(args.config)
    cfg = full.sim
    if args.seed < 0:
        raise InputError(f"--seed {args.seed}: expected an integer >= 0")
    if args.duration is not None and not args.duration > 0:
        raise InputError(f"--duration {args.duration}: expected positive seconds")
    if args.dataset:
        from ..sim.dataset import generate

        stats = generate(args.out, split=args.split, seed=args.seed, frames=args.frames, overwrite=args.overwrite,
                         distractors=args.distractors, distractor_share=args.distractor_share,
                         progress=None if args.quiet else _progress)
        _done()
        print(f"wrote {stats['images']} images, {stats['boxes']} boxes, {stats['crops']} crops to {args.out}")
        return 0
    from ..sim.bagio import write_bag

    stats = write_bag(args.out, args.scenario, args.seed, args.duration, jpeg_quality=cfg.jpeg_quality,
                      compression=cfg.compression, overwrite=args.overwrite, fps=cfg.fps, depth_every=cfg.depth_every,
                      noise_sigma=cfg.color_noise, calibration=full.scale.calibration,
                      progress=None if args.quiet else _progress)
    if not args.quiet:
        _done()
    print(f"wrote {stats.path}: {stats.frames} frames, {stats.events} ground-truth events, {stats.duration_s:g} s, "
          f"{stats.bytes / 1e6:.1f} MB ({stats.mb_per_minute:.0f} MB/min) in {stats.wall_s:.1f} s")
    return 0


def _progress(done: int, total: int) -> None:
    if done == total or done % 30 == 0:
        sys.stderr.write(f"\rsim: {done}/{total} frames")
        sys.stderr.flush()


def _done() -> None:
    sys.stderr.write("\n")
