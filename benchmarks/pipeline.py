"""The whole cart on one simulated session: throughput at ``--speed max`` and capture-to-publish
latency in real time, ours (caper_edge.pipeline.Runtime: capture / vision / commit threads)
against the plain sequential loop (caper_edge.replay.Pipeline, one message at a time), both
measured in this run on the same bag, models (the packaged ONNX models on ONNX Runtime, CPU) and
config (the sim-cart profile).

    python -m benchmarks.pipeline                 # the 60 s `busy` session, seed 5
    python -m benchmarks.pipeline --quick         # 20 s of it (what CI runs)
    python -m benchmarks.pipeline --json out.json --scenario simple --seed 7

Cases:

* **max**: every frame processed as fast as possible (nothing dropped; the events are
  byte-identical to the plain loop's, which the report checks). FPS = frames / wall time.
* **realtime**: the bag paced at its own 30 FPS, as a camera delivers it. Capture-to-publish
  latency per frame: from the moment the frame is released by the pacer (its capture) to the
  moment its last event is journaled and published. Ours drops the oldest waiting frame when
  the detector is behind (counted); the plain loop cannot drop, so when it is slower than the
  camera its latency grows without bound (the backlog). Per-stage p50 / p99 for ours.

Figures are medians and ratios from one machine that may be shared: compare the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from .harness import environment, pin_single_thread


def _bag(folder: Path, scenario: str, seed: int, duration: float | None, cfg) -> Path:
    from caper_edge.commands.demo import demo_bag

    return demo_bag(folder, scenario, seed, cfg, duration_s=duration)[0]


def _ours(bag: Path, cfg, vision, catalog, speed: str) -> dict:
    from caper_edge.pipeline import Runtime, vision_workers_for
    from caper_edge.replay import Pipeline
    from caper_edge.sources import BagSource

    events = []
    pipe = Pipeline(cfg, catalog, vision)

    def commit(draft, _snapshot):
        events.append(draft)
        return draft

    rt = Runtime(cfg, pipe, lambda: BagSource(bag, speed=speed, decode=False), commit, lossless=speed == "max",
                 keep_latencies=True, source_kind="bag", vision_workers=vision_workers_for(cfg, vision))
    t0 = time.perf_counter()
    rt.run()
    wall = time.perf_counter() - t0
    lat = rt.latencies or []

    def q(values):
        a = np.asarray(values, np.float64)
        return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
                "max_ms": float(a.max())} if a.size else {}

    return {
        "vision_workers": rt.vision_workers, "frames": rt.frames_done, "captured": rt.frames_captured, "dropped": rt.frames_dropped, "wall_s": wall,
        "fps": rt.frames_done / wall, "events": list(events),
        "capture_to_publish": q([x.total_ms for x in lat]),
        "stages": {"queue": q([x.queue_ms for x in lat]), "vision": q([x.vision_ms for x in lat]),
                   "track+fusion": q([x.track_ms for x in lat]), "commit": q([x.commit_ms for x in lat])},
    }


def _plain(bag: Path, cfg, vision, catalog, *, paced: bool) -> dict:
    """The sequential loop: decode, vision, tracker, fusion, one message at a time. Paced, each
    message waits for its due time on a camera's schedule (t0 + its offset in the bag), and a
    frame's latency is when the loop finishes it minus that time, backlog included; unpaced it
    runs flat out (FPS)."""
    from caper_edge.replay import Pipeline
    from caper_edge.sources import BagSource
    from caper_edge.sources.messages import Frame

    pipe = Pipeline(cfg, catalog, vision)
    events, lat = [], []
    first = None
    t0 = time.perf_counter()
    with BagSource(bag, speed="max", decode=False) as src:
        for msg in src:
            first = msg.t_ns if first is None else first
            due = t0 + (msg.t_ns - first) / 1e9 if paced else time.perf_counter()
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            if isinstance(msg, Frame):
                msg.decode()
            events += pipe.feed(msg)
            if isinstance(msg, Frame):
                lat.append((time.perf_counter() - due) * 1e3)
    events += pipe.finish()
    wall = time.perf_counter() - t0
    a = np.asarray(lat)
    return {"frames": pipe.stats.frames, "wall_s": wall, "fps": pipe.stats.frames / wall, "events": events,
            "capture_to_publish": {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
                                   "max_ms": float(a.max())}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20 s of the session instead of 60 s")
    parser.add_argument("--scenario", default="busy")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--cache", type=Path, default=Path("benchmarks/out/bags"), help="where the session bag is kept")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/out/pipeline.json"))
    args = parser.parse_args(argv)

    pin_single_thread()
    from caper_edge import config
    from caper_edge.replay import load_catalog, open_model_vision
    from caper_edge.sources import BagSource

    cfg = config.load("sim-cart")
    bag = _bag(args.cache, args.scenario, args.seed, 20.0 if args.quick else None, cfg)
    vision = open_model_vision(cfg)
    with BagSource(bag) as src:
        catalog = load_catalog(src.catalog, vision)
        size = (src.camera.width, src.camera.height) if src.camera else None
    print(f"bag {bag} ({size[0]}x{size[1]}), {os.cpu_count()} CPUs, ONNX Runtime {cfg.engines.intra_op_threads} "
          f"intra-op thread(s)", flush=True)

    ours_max = _ours(bag, cfg, vision, catalog, "max")
    plain_max = _plain(bag, cfg, vision, catalog, paced=False)
    same = ours_max["events"] == plain_max["events"]
    print(f"max       ours {ours_max['fps']:6.1f} FPS ({ours_max['frames']} frames, {ours_max['dropped']} dropped, "
          f"{ours_max['vision_workers']} vision workers) | "
          f"plain loop {plain_max['fps']:6.1f} FPS | ratio {ours_max['fps'] / plain_max['fps']:.2f}x | "
          f"events identical: {same}", flush=True)

    ours_rt = _ours(bag, cfg, vision, catalog, "realtime")
    plain_rt = {k: v for k, v in _plain(bag, cfg, vision, catalog, paced=True).items() if k != "events"}
    c, p = ours_rt["capture_to_publish"], plain_rt["capture_to_publish"]
    print(f"realtime  ours capture-to-publish p50 {c['p50_ms']:6.1f} ms p99 {c['p99_ms']:6.1f} ms, "
          f"{ours_rt['dropped']} of {ours_rt['captured']} frames dropped | plain loop p50 {p['p50_ms']:6.1f} ms "
          f"p99 {p['p99_ms']:6.1f} ms | p99 ratio {p['p99_ms'] / c['p99_ms']:.2f}x", flush=True)
    for name, s in ours_rt["stages"].items():
        print(f"          stage {name:<13} p50 {s['p50_ms']:6.2f} ms  p99 {s['p99_ms']:6.2f} ms")
    report = {
        "created_unix": time.time(), "bag": str(bag), "quick": args.quick, "environment": environment(),
        "max": {"ours": {k: v for k, v in ours_max.items() if k != "events"},
                "plain_loop": {k: v for k, v in plain_max.items() if k != "events"},
                "fps_ratio": ours_max["fps"] / plain_max["fps"], "events_identical": same,
                "events": len(ours_max["events"])},
        "realtime": {"ours": {k: v for k, v in ours_rt.items() if k != "events"}, "plain_loop": plain_rt,
                     "p99_ratio": p["p99_ms"] / c["p99_ms"]},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
