"""``caper-edge eval BAG... --json report.json [--by-scenario] [--markdown report.md] [--png fig.png]
[--ablation vision-only|weight-only] [--vision models|oracle]``: replay bags with ground truth
through the full pipeline at full speed and report the contract's metrics per bag and overall
(docs/evaluation.md)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bags", nargs="+", type=Path, help="sensor bags with ground truth (directories or files)")
    parser.add_argument("--json", type=Path, required=True, help="write the report here (JSON)")
    parser.add_argument("--markdown", type=Path, help="also write a markdown summary")
    parser.add_argument("--png", type=Path, help="also write a figure: SKU confusion, time to event, reliability")
    parser.add_argument("--by-scenario", action="store_true", help="add a table per simulator scenario")
    parser.add_argument("--ablation", choices=("vision-only", "weight-only"),
                        help="weight off (vision-only) or vision off (weight-only), to measure what fusion adds")
    parser.add_argument("--vision", choices=("models", "oracle"), default="models",
                        help="models (default: the product path) or oracle: DIAGNOSTIC vision from the bag's "
                             "ground-truth objects, for debugging fusion; never product numbers")
    parser.add_argument("--event-window", type=float, default=1.0, metavar="S",
                        help="time gate of event matching in seconds (default %(default)s)")
    parser.add_argument("--checkpoint", type=float, default=1.5, metavar="S",
                        help="compare baskets this long after each item comes to rest (default %(default)s)")
    parser.add_argument("--config", type=Path, help="TOML config file (partial; overrides the defaults)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from .. import config
    from ..errors import CaperError
    from ..evaluation.harness import EvalOptions
    from ..evaluation.report import build_report, markdown, write_png
    from ..replay import ABLATIONS, open_vision

    cfg = config.load(args.config)
    for bag in args.bags:
        if not bag.exists():
            raise CaperError(f"bag {bag} does not exist")
    if args.event_window <= 0 or args.checkpoint <= 0:
        raise CaperError(f"--event-window {args.event_window} / --checkpoint {args.checkpoint}: expected positive seconds")
    mode = ABLATIONS[args.ablation] if args.ablation else cfg.fusion.mode
    vision = open_vision(args.vision, cfg, args.bags[0])
    if args.vision == "oracle":
        print("caper-edge eval: DIAGNOSTIC run: vision is made from ground-truth objects (--vision oracle); "
              "the numbers are not product numbers", file=sys.stderr)
    options = EvalOptions(event_window_s=args.event_window, checkpoint_s=args.checkpoint)
    results = _run_all(args.bags, cfg, vision, mode, options, args.quiet)
    settings = {"event_window_s": options.event_window_s, "checkpoint_s": options.checkpoint_s,
                **{f"fusion.{k}": v for k, v in dataclasses.asdict(cfg.fusion).items()}}
    settings["fusion.mode"] = mode
    report = build_report(results, vision=args.vision, mode=mode, by_scenario=args.by_scenario, settings=settings)
    _write(args.json, json.dumps(report, indent=2, sort_keys=False) + "\n")
    if args.markdown:
        _write(args.markdown, markdown(report))
    if args.png:
        write_png(args.png, results, report)
    _print_summary(report)
    return 0


def _run_all(bags, cfg, vision, mode, options, quiet):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..evaluation.harness import evaluate_bag

    results = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("frames"),
               TimeRemainingColumn())
    with Progress(*columns, disable=quiet, transient=False, redirect_stdout=False) as progress:
        overall = progress.add_task(f"{len(bags)} bags", total=len(bags))
        for bag in bags:
            task = progress.add_task(f"{bag.name}", total=None)

            def tick(done: int, total: int, task=task) -> None:
                if done % 15 == 0 or done == total:
                    progress.update(task, completed=done, total=total or None)

            results.append(evaluate_bag(bag, cfg, vision, mode=mode, options=options, progress=tick))
            progress.update(overall, advance=1)
    return results


def _write(path: Path, text: str) -> None:
    from ..atomic import atomic_write_bytes
    from ..errors import CaperError

    try:
        atomic_write_bytes(path, text.encode("utf-8"))
    except OSError as exc:
        raise CaperError(f"cannot write {path}: {exc}") from None


def _print_summary(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"caper-edge eval (vision {report['vision']}, mode {report['mode']})")
    rows = [("all", report)] + sorted(report.get("by_scenario", {}).items())
    cols = [("cAcc", "basket_exact_match", "{:.3f}"), ("ACD", "acd", "{:.2f}"), ("item F1", "item_f1", "{:.3f}"),
            ("event F1", "event_f1", "{:.3f}"), ("shrink P", "shrink_alarm_precision", "{:.2f}"),
            ("shrink R", "shrink_alarm_recall", "{:.2f}"), ("p95 s", "time_to_event_p95_s", "{:.2f}"),
            ("events", "events", "{}"), ("HOTA", "hota", "{:.3f}"), ("FPS", "fps", "{:.1f}")]
    table.add_column("set")
    for name, _, _ in cols:
        table.add_column(name, justify="right")
    for name, m in rows:
        table.add_row(name, *("-" if m.get(k) is None else f.format(m[k]) for _, k, f in cols))
    Console(stderr=True).print(table)
