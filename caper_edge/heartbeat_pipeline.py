"""A synthetic pipeline: counts "frames" at a fixed rate and commits synthetic basket events.

It exercises everything around the real pipeline — worker, journal, restore, supervisor,
watchdog, publishing, systemd — without sensors or models, so an installation can be checked
on the cart (``[supervisor] pipeline = "caper_edge.heartbeat_pipeline:create"``) and the
supervisor can be tested. It is never the default.

Behaviour knobs come from ``CAPER_EDGE_HEARTBEAT`` (comma-separated ``key=value``):

- ``fps`` (frames per second, default 30), ``event_every`` (frames between events, default 15;
  0 = none), ``start_delay_s`` (time "sensors and engines" take to come up, default 0.2);
- ``hang_after`` (frames): the frame loop stops (a stuck engine) while heartbeats go on;
- ``wait_after`` (frames): frames stop but the pipeline reports ``waiting_for`` a sensor;
- ``fail_start``: ``config`` raises a ConfigError from start() (fatal), ``crash`` a RuntimeError;
- ``only_first`` (default 1): the failure knobs apply to the first worker only, so a restarted
  worker runs normally.

Events alternate per SKU: a SKU not in the basket is added, one in it is removed, so the basket
stays small; each commit carries the basket snapshot, and a restarted worker continues from the
journal's snapshot (plus any events after it), as fusion will.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from .config import Config
from .errors import ConfigError
from .events import BasketItem, BasketSnapshot, Event
from .metrics import DriftMonitor, StageMetrics
from .worker import PipelineStatus, WorkerContext

__all__ = ["HeartbeatPipeline", "create", "parse_options"]

_DEFAULTS: dict[str, Any] = {
    "fps": 30.0, "event_every": 15, "start_delay_s": 0.2, "hang_after": 0, "wait_after": 0,
    "fail_start": "", "only_first": 1,
}
SKUS = ("SYN-0001", "SYN-0002", "SYN-0003")
UNIT_WEIGHT_G = {"SYN-0001": 250.0, "SYN-0002": 410.0, "SYN-0003": 95.5}


def parse_options(text: str) -> dict[str, Any]:
    options = dict(_DEFAULTS)
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, eq, value = part.partition("=")
        if not eq or key not in _DEFAULTS:
            raise ConfigError(f"CAPER_EDGE_HEARTBEAT item {part!r}: expected key=value with key in {', '.join(_DEFAULTS)}")
        kind = type(_DEFAULTS[key])
        try:
            options[key] = kind(value)
        except ValueError:
            raise ConfigError(f"CAPER_EDGE_HEARTBEAT {key} = {value!r}: expected a {kind.__name__}") from None
    if options["fps"] <= 0:
        raise ConfigError(f"CAPER_EDGE_HEARTBEAT fps = {options['fps']}: expected > 0")
    return options


class HeartbeatPipeline:
    def __init__(self, config: Config, ctx: WorkerContext, options: dict[str, Any]) -> None:
        self.ctx = ctx
        self.options = dict(options)
        if options["only_first"] and ctx.incarnation > 0:
            self.options.update(hang_after=0, wait_after=0, fail_start="")
        self._lock = threading.Lock()
        self._frames = 0
        self._waiting: str | None = None
        self._fatal: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="synthetic-frames", daemon=True)
        self.stage = StageMetrics()
        self.confidence = DriftMonitor(baseline_samples=50, recent=20)
        self.basket: dict[str, int] = {}
        self._restore()

    def _restore(self) -> None:
        restored = self.ctx.restored
        if restored.snapshot is not None:
            snap = BasketSnapshot.from_dict(restored.snapshot)
            self.basket = {item.sku: item.qty for item in snap.items}
        for event in restored.events_after:
            self._apply(event)

    def _apply(self, event: Event) -> None:
        if event.type == "item_added" and event.sku:
            self.basket[event.sku] = self.basket.get(event.sku, 0) + event.qty
        elif event.type == "item_removed" and event.sku:
            left = self.basket.get(event.sku, 0) - event.qty
            if left > 0:
                self.basket[event.sku] = left
            else:
                self.basket.pop(event.sku, None)
        elif event.type == "basket_reset":
            self.basket.clear()

    def _snapshot(self, seq: int, t_ns: int) -> BasketSnapshot:
        items = tuple(BasketItem(sku, qty, {"unit_weight_g": UNIT_WEIGHT_G[sku]}) for sku, qty in self.basket.items())
        weight = sum(UNIT_WEIGHT_G[sku] * qty for sku, qty in self.basket.items())
        return BasketSnapshot(seq, t_ns, items, weight_g=weight, expected_weight_g=weight)

    # -- Pipeline protocol ----------------------------------------------------------------------

    def start(self) -> None:
        time.sleep(self.options["start_delay_s"])
        if self.options["fail_start"] == "config":
            raise ConfigError("synthetic start failure: config key models.detector = 'missing.onnx' does not exist")
        if self.options["fail_start"] == "crash":
            raise RuntimeError("synthetic start crash")
        self._thread.start()

    def status(self) -> PipelineStatus:
        now = time.monotonic()
        with self._lock:
            frames, waiting, fatal = self._frames, self._waiting, self._fatal
        health = {
            "stages": {"synthetic": self.stage.snapshot(now)},
            "queues": {"frames": 0},
            "drops": {"frames": 0},
            "sensors": {"camera": "waiting" if waiting else "streaming", "scale": "streaming"},
            "drift": {"detector_confidence": self.confidence.snapshot()},
            "basket_items": sum(self.basket.values()),
        }
        return PipelineStatus(frames=frames, waiting_for=waiting, fatal=fatal, health=health)

    def reset(self, reason: str) -> Event:
        with self._lock:
            qty = sum(self.basket.values())
            self.basket.clear()
            t_ns = time.monotonic_ns()
            draft = Event("basket_reset", t_ns, qty=qty, confidence=1.0, extras={"reason": reason})
            return self.ctx.commit(draft, self._snapshot(self.ctx.journal.last_seq + 1, t_ns))

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    # -- frame loop -----------------------------------------------------------------------------

    def _loop(self) -> None:
        period = 1.0 / self.options["fps"]
        next_t = time.monotonic()
        try:
            while not self._stop.is_set():
                t0 = time.monotonic_ns()
                with self._lock:
                    frames = self._frames
                if self.options["hang_after"] and frames >= self.options["hang_after"]:
                    self._stop.wait()  # a stuck engine: no more frames, heartbeats go on
                    return
                if self.options["wait_after"] and frames >= self.options["wait_after"]:
                    with self._lock:
                        self._waiting = "camera reconnecting"
                    self._stop.wait(period)
                    continue
                with self._lock:
                    self._frames += 1
                    frames = self._frames
                    every = self.options["event_every"]
                    if every and frames % every == 0:
                        self._emit(frames)
                self.confidence.add(0.9 - 0.001 * (frames % 50))
                self.stage.record(time.monotonic_ns() - t0, time.monotonic())
                next_t += period
                self._stop.wait(max(0.0, next_t - time.monotonic()))
        except Exception as exc:  # reported through status(): the worker exits and is restarted
            with self._lock:
                self._fatal = f"{type(exc).__name__}: {exc}"

    def _emit(self, frames: int) -> None:
        sku = SKUS[(frames // self.options["event_every"]) % len(SKUS)]
        t_ns = time.monotonic_ns()
        if sku in self.basket:
            draft = Event("item_removed", t_ns, sku=sku, qty=1, confidence=0.95,
                          weight_delta_g=-UNIT_WEIGHT_G[sku], track_id=frames, extras={"evidence": {"frame": frames}})
        else:
            draft = Event("item_added", t_ns, sku=sku, qty=1, confidence=0.95,
                          weight_delta_g=UNIT_WEIGHT_G[sku], track_id=frames, extras={"evidence": {"frame": frames}})
        self._apply(draft)
        self.ctx.commit(draft, self._snapshot(self.ctx.journal.last_seq + 1, t_ns))


def create(config: Config, ctx: WorkerContext) -> HeartbeatPipeline:
    """Pipeline factory (``[supervisor] pipeline = "caper_edge.heartbeat_pipeline:create"``)."""
    return HeartbeatPipeline(config, ctx, parse_options(os.environ.get("CAPER_EDGE_HEARTBEAT", "")))
