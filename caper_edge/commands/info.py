"""``caper-edge info``: how the native core was built and which GPUs it sees."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from .. import __version__, build_info, cuda_device_count, cuda_device_name

    count, reason = cuda_device_count()
    facts = {"version": __version__, **build_info(), "cuda_devices": count}
    facts["gpus"] = [cuda_device_name(i) for i in range(count)]
    if reason:
        facts["cuda_reason"] = reason
    if args.json:
        print(json.dumps(facts))
    else:
        for key, value in facts.items():
            print(f"{key:20s} {value}")
    return 0
