"""``caper-edge keys OUTDIR``: CURVE key pairs for the server and one client (see caper_edge.curve)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("outdir", help="folder for the keys (created; existing keys are never overwritten)")
    parser.add_argument("--client", default="client",
                        help="name of the client key pair to add (default: client); run again with "
                             "another name to authorize another client")


def run(args: argparse.Namespace) -> int:
    from ..curve import make_keys

    made = make_keys(args.outdir, args.client)
    if "server_secret" in made:
        print(f"server key pair      {made['server_secret'].parent}  (stays on the cart: publish.curve_keys = {args.outdir})")
    print(f"client key pair      {made['client_dir']}  (give this folder to the client: listen --curve-keys)")
    print(f"authorized client    {made['authorized_key']}  (restart caper-edge to accept it)")
    return 0
