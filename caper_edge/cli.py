"""``caper-edge`` command line.

Each subcommand lives in ``caper_edge/commands/<name>.py`` and exposes ``add_arguments(parser)``
and ``run(args) -> int``. Every command module is imported to build the parser, so command
modules import their heavy or optional dependencies (pyrealsense2, tensorrt, rich, zmq) inside
``run``: a missing optional package then affects only the commands that need it.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import CaperError

# name -> (module under caper_edge.commands, one-line help). Keep sorted by workflow.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "the whole cart on a simulated session: live basket, receipt, accuracy vs ground truth"),
    "sim": ("sim", "simulate a cart session into a sensor bag (or --dataset: training images and labels)"),
    "bag": ("bag", "inspect sensor bags: bag info BAG"),
    "replay": ("replay", "replay a sensor bag through the pipeline; events to JSONL (and ZeroMQ)"),
    "eval": ("eval", "replay bags with ground truth and score basket accuracy, events, shrink alarms"),
    "info": ("info", "print build facts: compiler, SIMD, CUDA, GPUs"),
    "run": ("run", "run the cart service: pipeline worker under a supervisor, events on ZeroMQ"),
    "listen": ("listen", "watch basket events and the basket live (or --json lines), with gap recovery"),
    "keys": ("keys", "make CURVE key pairs for the event sockets (server + one client)"),
    "engine": ("engine", "build TensorRT engines offline into the cache; list the cache"),
    "gallery": ("gallery", "enroll SKUs into the gallery without retraining; show the gallery"),
    "scale-sim": ("scale_sim", "simulate the scale MCU on a pty (scenario or bag) to run without hardware"),
    "calibrate": ("calibrate", "tare and per-cell gains of the basket scale, written into the config"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="caper-edge", description="AI shopping cart perception runtime (RGB-D + weight fusion)."
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        _command_module(module).add_arguments(p)
    return parser


def _command_module(module: str):
    return importlib.import_module(f"caper_edge.commands.{module}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from . import __version__

        print(__version__)
        return 0
    if not args.command:
        parser.print_help()
        return 2
    try:
        return int(_command_module(args._module).run(args) or 0)
    except CaperError as exc:
        print(f"caper-edge {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"caper-edge {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
