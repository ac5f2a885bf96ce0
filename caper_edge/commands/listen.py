"""``caper-edge listen``: watch a cart's basket events live (or print them as JSON lines).

The view recovers whatever the PUB socket missed (a reconnect, a slow terminal) through
``events_since``, so the event list is always complete and in ``seq`` order.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import deque
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("endpoint", nargs="?", default=None,
                        help="PUB endpoint, e.g. tcp://cart-17:5556 (same as --pub; REP then defaults to port + 1)")
    parser.add_argument("--pub", default=None, help="PUB endpoint (default: publish.pub of the config)")
    parser.add_argument("--rep", default=None, help="REP endpoint (default: publish.rep of the config)")
    parser.add_argument("--config", metavar="FILE", help="read the endpoints from this config")
    parser.add_argument("--curve-keys", metavar="DIR", help="client key folder from `caper-edge keys` (client-NAME/)")
    parser.add_argument("--json", action="store_true", help="print one canonical JSON line per event (for scripts)")
    parser.add_argument("--since", type=int, default=None, metavar="SEQ",
                        help="start after this seq (0: everything the journal holds); default: only new events")
    parser.add_argument("--max-events", type=int, default=None, metavar="N", help="exit after N events")
    parser.add_argument("--timeout", type=float, default=None, metavar="S", help="exit (code 1) after S seconds without an event")


def run(args: argparse.Namespace) -> int:
    from .. import config as config_mod
    from ..client import EventClient, EventFollower
    from ..curve import load_client_keys
    from ..errors import ConfigError

    cfg = config_mod.load(args.config).publish
    if args.since is not None and args.since < 0:
        raise ConfigError(f"--since {args.since}: expected a seq >= 0")
    keys = load_client_keys(args.curve_keys) if args.curve_keys else None
    pub, rep = _endpoints(args, cfg)
    client = EventClient(pub, rep, keys=keys)
    follower = EventFollower(client, since=args.since)
    try:
        if args.json:
            return _run_json(follower, args)
        return _run_live(follower, client, args)
    finally:
        client.close()


def _endpoints(args: argparse.Namespace, cfg: Any) -> tuple[str, str]:
    from ..errors import ConfigError

    if args.endpoint and args.pub and args.endpoint != args.pub:
        raise ConfigError(f"listen: ENDPOINT {args.endpoint!r} and --pub {args.pub!r} disagree; give one")
    pub = args.endpoint or args.pub or cfg.pub
    if args.rep:
        return pub, args.rep
    if args.endpoint or args.pub:
        base, _, port = pub.rpartition(":")
        if not pub.startswith("tcp://") or not port.isdigit():
            raise ConfigError(f"listen: cannot derive the REP endpoint from {pub!r}; give --rep")
        return pub, f"{base}:{int(port) + 1}"
    return pub, cfg.rep


def _run_json(follower: Any, args: argparse.Namespace) -> int:
    count = 0
    last_event = time.monotonic()
    while args.max_events is None or count < args.max_events:
        for update in follower.poll(0.5):
            if update.kind == "event":
                sys.stdout.write(update.event.to_json_line())
                sys.stdout.flush()
                count += 1
                last_event = time.monotonic()
                if args.max_events is not None and count >= args.max_events:
                    return 0
            elif update.kind == "resync":
                print("caper-edge listen: the server's journal was replaced; seq starts over", file=sys.stderr)
        if args.timeout is not None and time.monotonic() - last_event > args.timeout:
            print(f"caper-edge listen: no event for {args.timeout:g} s", file=sys.stderr)
            return 1
    return 0


class View:
    """What the live screen shows; :meth:`render` builds the rich renderable (testable offline)."""

    def __init__(self, endpoint: str, history: int = 15) -> None:
        self.endpoint = endpoint
        self.events: deque = deque(maxlen=history)
        self.basket: dict[str, Any] | None = None
        self.health: dict[str, Any] = {}
        self.recovered = 0
        self.connected = False

    def apply(self, update: Any) -> None:
        if update.kind == "event":
            self.events.append(update.event)
            self.recovered += update.recovered
        elif update.kind == "snapshot":
            self.basket = update.data
        elif update.kind == "resync":
            self.basket = (update.data or {}).get("snapshot")
        elif update.kind == "health":
            self.health = update.data or {}

    def render(self) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        basket = Table(title="basket", expand=True)
        for col, justify in (("sku", "left"), ("qty", "right"), ("name", "left")):
            basket.add_column(col, justify=justify)
        items = (self.basket or {}).get("items", [])
        for item in items:
            basket.add_row(str(item.get("sku")), str(item.get("qty")), str(item.get("name", "")))
        if self.basket:
            w, e = self.basket.get("weight_g"), self.basket.get("expected_weight_g")
            basket.caption = f"{sum(i.get('qty', 0) for i in items)} items · scale {_g(w)} · expected {_g(e)} · as of seq {self.basket.get('seq')}"
        events = Table(title="events", expand=True)
        for col, justify in (("seq", "right"), ("type", "left"), ("sku", "left"), ("qty", "right"),
                             ("Δ weight", "right"), ("conf", "right"), ("track", "right")):
            events.add_column(col, justify=justify)
        for ev in self.events:
            style = {"item_added": "green", "item_removed": "yellow", "basket_reset": "cyan"}.get(ev.type, "red")
            events.add_row(str(ev.seq), Text(ev.type, style=style), ev.sku or "—", str(ev.qty),
                           _g(ev.weight_delta_g), f"{ev.confidence:.2f}", "—" if ev.track_id is None else str(ev.track_id))
        worker = self.health.get("worker", {}) if isinstance(self.health, dict) else {}
        fps = worker.get("fps")
        status = (f"{self.endpoint} · {'connected' if self.connected else 'waiting for server'} · "
                  f"state {self.health.get('state', '?')} · fps {fps:.1f} · restarts {worker.get('restarts', 0)} · "
                  if isinstance(fps, (int, float)) else f"{self.endpoint} · {'connected' if self.connected else 'waiting for server'} · ")
        status += f"recovered {self.recovered} event(s) via events_since"
        return Group(basket, events, Text(status, style="dim"))


def _g(value: Any) -> str:
    return "—" if value is None else f"{value:+.1f} g" if isinstance(value, float) and value < 0 else f"{value:.1f} g"


def _run_live(follower: Any, client: Any, args: argparse.Namespace) -> int:
    from rich.live import Live

    from ..client import ServerUnavailable

    view = View(client.pub_endpoint)
    try:
        first = client.request("snapshot")
        view.basket = first.get("snapshot")
        view.connected = True
        if args.since is None and first.get("last_seq"):
            # Show recent history for context, then follow from the server's current seq.
            recent = client.request("events_since", seq=max(0, first["last_seq"] - view.events.maxlen))
            from ..events import Event

            for e in recent.get("events", []):
                view.events.append(Event.from_dict(e))
    except ServerUnavailable:
        view.connected = False
    count = 0
    last_event = time.monotonic()
    with Live(view.render(), refresh_per_second=4, screen=False) as live:
        while args.max_events is None or count < args.max_events:
            updates = follower.poll(0.25)
            view.connected = follower.connected or bool(updates)
            for update in updates:
                view.apply(update)
                if update.kind == "event":
                    count += 1
                    last_event = time.monotonic()
            live.update(view.render())
            if args.timeout is not None and time.monotonic() - last_event > args.timeout:
                return 1
    return 0
