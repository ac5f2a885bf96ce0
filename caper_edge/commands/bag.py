"""``caper-edge bag info BAG``: topics, types, counts, duration, rates and gaps of a sensor bag."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bag_command", metavar="SUBCOMMAND", required=True)
    info = sub.add_parser("info", help="summarise a bag: topics, types, counts, duration, rates, gaps",
                          description="Summarise a bag (rosbag2 directory, .mcap, .db3, .bag, or a directory of bags).")
    info.add_argument("bag", type=Path, help="bag directory or file")
    info.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def run(args: argparse.Namespace) -> int:
    from ..bags.info import bag_info

    info = bag_info(args.bag)
    if args.json:
        print(json.dumps(info.to_json(), indent=2))
    else:
        _print_table(info)
    if info.damage:
        more = f" (+{len(info.damage) - 1} more)" if len(info.damage) > 1 else ""
        raise InputError(f"{info.damage[0]}{more}")
    return 0


def _print_table(info) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    start = info.start_ns
    console.print(f"[bold]{', '.join(info.paths)}[/bold]  storage {info.storage}  "
                  f"{info.size_bytes / 1e6:.1f} MB  {info.messages} messages  duration {info.duration_s:.3f} s"
                  + (f"  ({info.size_bytes / 1e6 / (info.duration_s / 60):.0f} MB/min)" if info.duration_s > 0 else ""))
    table = Table(show_lines=False)
    for col, justify in (("topic", "left"), ("type", "left"), ("count", "right"), ("first s", "right"), ("last s", "right"),
                         ("rate Hz", "right"), ("max gap s", "right"), ("gaps", "right"), ("MB", "right")):
        table.add_column(col, justify=justify)
    for t in info.topics:
        table.add_row(
            t.topic, t.msgtype, str(t.count),
            "-" if t.first_ns is None else f"{(t.first_ns - start) / 1e9:.3f}",
            "-" if t.last_ns is None else f"{(t.last_ns - start) / 1e9:.3f}",
            "-" if t.rate_hz is None else f"{t.rate_hz:.2f}",
            "-" if t.max_gap_s is None else f"{t.max_gap_s:.3f}",
            str(t.gaps), f"{t.bytes / 1e6:.2f}",
        )
    console.print(table)
    from rich.markup import escape

    for d in info.damage:
        console.print(f"[red]damaged:[/red] {escape(d)}")
