"""Tracking quality on generated cart sequences: ours against roboflow `trackers` peers.

    python -m benchmarks.track_eval                 # 8 sequences x 1800 frames (60 s each at 30 FPS)
    python -m benchmarks.track_eval --quick         # 3 x 600 (what the CI test runs)
    python -m benchmarks.track_eval --json out.json
    python -m benchmarks.track_eval --harsh         # a worse detector (more misses and false positives)

Prints HOTA, IDF1, MOTA, ID switches, ms/frame and how many hand occlusions of a resting item
kept the item's ID, for: ours; ours without appearance (motion, depth and zones only); ours
without depth (the basket zone from the image polygon alone);
trackers.ByteTrackTracker and trackers.OCSORTTracker at their defaults; and both peers with
lost_track_buffer=150 (5 s), the best a peer can do about long occlusions by configuration.
Items (class 0) are scored; metrics are trackers.eval's (TrackEval-equivalent). See
caper_edge/track_eval for the generator and docs/tracker.md for the reading.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from importlib.metadata import version
from pathlib import Path

from caper_edge.track_eval import SceneConfig, generate_suite
from caper_edge.track_eval.sequences import HARSH
from caper_edge.track_eval.evaluate import evaluate, format_table, ours_factory, peer_factories

from .harness import pin_single_thread


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.track_eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequences", type=int, default=8, help="number of sequences (default %(default)s)")
    parser.add_argument("--frames", type=int, default=1800, help="frames per sequence (default %(default)s)")
    parser.add_argument("--seed", type=int, default=1000, help="seed of the first sequence (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="3 sequences x 600 frames, seed 11")
    parser.add_argument("--no-tuned", action="store_true", help="skip the peers with a 5 s lost-track buffer")
    parser.add_argument("--harsh", action="store_true",
                        help="a worse detector: 12%% misses, 0.6 false positives per frame, noisier embeddings and boxes")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.sequences, args.frames, args.seed = 3, 600, 11

    pin_single_thread()

    t0 = time.perf_counter()
    scene = dataclasses.replace(SceneConfig(), **HARSH) if args.harsh else SceneConfig()
    sequences = generate_suite(args.sequences, seed=args.seed, n_frames=args.frames, config=scene)
    n_frames = sum(len(s.frames) for s in sequences)
    n_occl = sum(len(s.occlusions) for s in sequences)
    print(f"{len(sequences)} sequences, {n_frames} frames, {n_occl} hand occlusions of resting items "
          f"(generated in {time.perf_counter() - t0:.1f} s; seeds {args.seed}..{args.seed + args.sequences - 1})")
    methods = {"ours": ours_factory(), "ours (no appearance)": ours_factory(use_appearance=False),
               "ours (no depth)": ours_factory(use_depth=False)}
    methods.update(peer_factories())
    if not args.no_tuned:
        tuned = peer_factories(lost_track_buffer=150)
        methods.update({f"{k[:-11]}, buffer 5 s": v for k, v in tuned.items()})
    results = evaluate(sequences, methods)
    print(format_table(results))
    print("zone events (entered_basket / left_basket vs ground truth, same item, within 1 s):")
    for r in results:
        if r.events:
            e = r.events
            print(f"  {r.name:<22s} precision {e['precision']:.3f} recall {e['recall']:.3f} F1 {e['f1']:.3f} "
                  f"(tp {e['tp']}, fp {e['fp']}, fn {e['fn']}); decided {e['latency_p50_s']:+.2f} s "
                  f"(p95 {e['latency_p95_s']:+.2f} s) after the ground-truth moment")
    ours = results[0]
    for r in results[3:]:
        print(f"speed: ours {ours.ms_per_frame:.3f} ms/frame vs {r.name} {r.ms_per_frame:.3f} ms/frame "
              f"({r.ms_per_frame / ours.ms_per_frame:.0f}x)")
    print(f"python {platform.python_version()}, trackers {version('trackers')}, supervision {version('supervision')}, "
          f"{platform.machine()}; times include each method's Python wrapper, single thread")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "sequences": args.sequences, "frames": args.frames, "seed": args.seed, "harsh": args.harsh,
            "results": [{**r.row(), "zone_events": r.events} for r in results],
        }, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
