"""``caper-edge run --config FILE``: the cart service (supervisor + pipeline worker)."""

from __future__ import annotations

import argparse
import importlib.util


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML file overriding caper_edge/default.toml key by key")
    parser.add_argument("--events", metavar="FILE.jsonl",
                        help="also append every event to this JSONL file (overrides publish.events_jsonl)")


def run(args: argparse.Namespace) -> int:
    from .. import config as config_mod
    from ..errors import ConfigError
    from ..logs import setup_logging
    from ..supervisor import Supervisor

    cfg = config_mod.load(args.config)
    module = cfg.supervisor.pipeline.partition(":")[0]
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ConfigError(f"config key supervisor.pipeline = {cfg.supervisor.pipeline!r}: module {module} does not exist")
    setup_logging(cfg.log.level, cfg.log.format, role="supervisor")
    return Supervisor(cfg, jsonl_path=args.events).run()
