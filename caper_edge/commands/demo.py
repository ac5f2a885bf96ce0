"""``caper-edge demo [--scenario NAME] [--seed N] [--speed max|realtime|F] [--events FILE.jsonl]
[--publish ENDPOINT]``: the whole cart on a simulated shopping session.

Makes the demo bag with the simulator (or reuses it from the cache: ``--cache``, default
``$XDG_CACHE_HOME/caper-edge/demo``), runs it through the full pipeline (capture, detector,
embedder, tracker, scale, fusion, basket, journal; :mod:`caper_edge.pipeline`) with the packaged
models and the simulator's cart profile (``sim-cart``), prints every basket event as it is
decided, and ends with the receipt and its accuracy against the session's ground truth.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
from pathlib import Path

DEMO_VERSION = 1   # bump when the simulator's output changes: old cached bags are not reused


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..sim.scenarios import DEFAULT_DURATION_S

    parser.add_argument("--scenario", default="busy", choices=sorted(s for s in DEFAULT_DURATION_S if s != "long"),
                        help="what the shopper does (default %(default)s); see docs/simulator.md")
    parser.add_argument("--seed", type=int, default=5, help="seed of the session (default %(default)s)")
    parser.add_argument("--duration", type=float, help="seconds of the session (default: the scenario's own length)")
    parser.add_argument("--speed", default="max",
                        help="max (default: as fast as the pipeline goes, nothing dropped) or realtime / a "
                             "factor (paced like a camera; the newest frame wins when the detector is behind)")
    parser.add_argument("--cache", type=Path, help="folder of demo bags (default $XDG_CACHE_HOME/caper-edge/demo)")
    parser.add_argument("--events", type=Path, metavar="FILE.jsonl", help="also write the events as JSONL")
    parser.add_argument("--publish", metavar="ENDPOINT",
                        help="also publish on ZeroMQ PUB (e.g. tcp://127.0.0.1:5556; watch with caper-edge listen)")
    parser.add_argument("--config", help="TOML config (default: the packaged sim-cart profile)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or live events; receipt and accuracy only")


def cache_dir(explicit: Path | None = None) -> Path:
    if explicit is not None:
        return explicit
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "caper-edge" / "demo"


def demo_bag(folder: Path, scenario: str, seed: int, cfg, progress=None, duration_s: float | None = None) -> tuple[Path, bool]:
    """The cached bag for (scenario, seed, duration), written first if missing or damaged; (path, made)."""
    from ..errors import CaperError
    from ..sim.bagio import write_bag
    from ..sources import BagSource

    length = "" if duration_s is None else f"_{duration_s:g}s"
    path = folder / f"{scenario}_s{seed}{length}_v{DEMO_VERSION}"
    if path.exists():
        try:
            with BagSource(path) as src:
                if src.reader.topics[src.layout.color].count:
                    return path, False
        except Exception:   # a cache left half-written or damaged: make it again
            pass
        shutil.rmtree(path, ignore_errors=True)
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_bag(tmp, scenario, seed, duration_s, jpeg_quality=cfg.sim.jpeg_quality, compression=cfg.sim.compression,
                  fps=cfg.sim.fps, depth_every=cfg.sim.depth_every, noise_sigma=cfg.sim.color_noise,
                  calibration=cfg.scale.calibration, progress=progress)
        os.replace(tmp, path)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CaperError(f"cannot write the demo bag under {folder}: {exc}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path, True


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .. import config
    from ..errors import CaperError
    from ..evaluation.harness import EvalOptions, evaluate_bag, summarise
    from ..journal import Journal
    from ..publish import EventOutlet, EventServer, JsonlSink
    from ..replay import open_model_vision
    from ..sources import parse_speed

    if args.seed < 0:
        raise CaperError(f"--seed {args.seed}: expected an integer >= 0")
    if args.duration is not None and not args.duration > 0:
        raise CaperError(f"--duration {args.duration}: expected positive seconds")
    try:
        speed = parse_speed(args.speed)
    except ValueError as exc:
        raise CaperError(f"--speed: {exc}") from None
    cfg = config.load(args.config or "sim-cart")
    if speed is not None:
        cfg = dataclasses.replace(cfg, pipeline=dataclasses.replace(cfg.pipeline, speed=args.speed))
    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("frames"), TimeElapsedColumn())
    with Progress(*columns, console=console, disable=args.quiet, transient=True) as bar:
        task = bar.add_task(f"simulating {args.scenario} seed {args.seed}", total=None)
        bag, made = demo_bag(cache_dir(args.cache), args.scenario, args.seed, cfg,
                             progress=lambda done, total: bar.update(task, completed=done, total=total),
                             duration_s=args.duration)
    console.print(f"demo bag: {bag} ({'made now' if made else 'from the cache'})")
    vision = open_model_vision(cfg)
    journal = Journal(":memory:")
    jsonl = JsonlSink(args.events, mode="truncate") if args.events else None
    server = EventServer(dataclasses.replace(cfg.publish, pub=args.publish), journal=journal) if args.publish else None
    outlet = EventOutlet(journal, server=server, jsonl=jsonl)
    runtimes: list = []
    try:
        with Progress(*columns, console=console, disable=args.quiet, transient=True) as bar:
            task = bar.add_task("cart", total=None)

            def show(event) -> None:
                if not args.quiet:
                    bar.console.print(_describe(event, runtimes[0] if runtimes else None))

            result = evaluate_bag(bag, cfg, vision, options=EvalOptions(), on_event=show,
                                  progress=lambda done, total: bar.update(task, completed=done, total=total or None),
                                  commit=outlet.commit, next_seq=lambda: journal.last_seq + 1,
                                  runtime_out=runtimes, speed=args.speed)
    finally:
        if server is not None:
            server.close()
        elif jsonl is not None:
            jsonl.close()
        journal.close()
    runtime = runtimes[0]
    catalog = runtime.catalog
    console.print()
    console.print(runtime.pipeline.basket.receipt(catalog).format())
    _accuracy(console, result, summarise([result]), runtime)
    return 0


def _describe(event, runtime) -> str:
    cat = runtime.catalog if runtime is not None else None
    p = cat.get(event.sku) if (cat is not None and event.sku) else None
    name = p.name if p else (event.sku or "")
    basket = runtime.pipeline.basket.total_qty if runtime is not None else "?"
    kind = {"item_added": "[green]+ added  [/green]", "item_removed": "[yellow]- removed[/yellow]"}.get(
        event.type, f"[red]! {event.type.replace('_', ' ')}[/red]")
    what = f"{event.qty} x {name}" if event.sku else ""
    delta = f"{event.weight_delta_g:+.0f} g" if event.weight_delta_g is not None else ""
    t0 = (runtime.first_message_t_ns or 0) if runtime is not None else 0
    return f"{(event.t_ns - t0) / 1e9:6.1f}s {kind} {what:<30.30} {delta:>8} conf {event.confidence:.2f} [dim]basket {basket}[/dim]"


def _accuracy(console, result, summary: dict, runtime) -> None:
    gt, pred = result.gt_basket, result.final_basket
    verdict = "[green]exact[/green]" if result.final_exact else "[red]differs[/red]"
    console.print(f"\nreceipt vs ground truth: {verdict}")
    for sku in sorted(set(gt) | set(pred)):
        if gt.get(sku, 0) != pred.get(sku, 0):
            p = runtime.catalog.get(sku)
            console.print(f"  {sku} {p.name if p else ''}: cart {pred.get(sku, 0)}, shopper {gt.get(sku, 0)}")

    def f(key: str, fmt: str = "{:.3f}") -> str:
        v = summary.get(key)
        return "-" if v is None else fmt.format(v)

    lat = runtime.stage["capture_to_publish"].latency_ms.quantiles((0.5, 0.99))
    console.print(f"basket accuracy (cAcc, checkpoints) {f('basket_exact_match')}, item precision {f('item_precision')}, "
                  f"recall {f('item_recall')}, F1 {f('item_f1')}; event F1 {f('event_f1')}; "
                  f"time to event p95 {f('time_to_event_p95_s', '{:.2f}')} s")
    note = (" (at speed max frames wait in the queue behind the detector: the real-time figure comes from --speed realtime)"
            if runtime.lossless else "")
    console.print(f"{result.frames} frames at {result.frames / max(result.wall_s, 1e-9):.1f} FPS, "
                  f"{runtime.frames_dropped} dropped; capture-to-publish p50 {lat[0] or 0:.0f} ms, p99 {lat[1] or 0:.0f} ms"
                  + note)
