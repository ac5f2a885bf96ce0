"""The running cart: the stages of :mod:`caper_edge.replay` on three threads with bounded queues.

::

    capture ──frames──▶ vision ──results──▶ track + fuse + commit ──▶ journal ──▶ PUB / JSONL
    (source, decode)    (letterbox, detector,  (tracker, zones, scale
                         crops, embedder,        events, fusion, basket)
                         gallery, depth)
    scale reader (serial) ─────samples────────▶┘

* **Live** (a camera, or a bag / the simulator paced in real time): the frame queue holds
  ``[pipeline] frame_queue`` frames; when the detector falls behind, the newest frame wins and
  every older waiting frame is dropped and counted (``drops.frames`` in the health message).
  Scale samples are never dropped on purpose; they bypass the detector, so a slow model never
  delays weight.
* **Lossless** (``speed = "max"``, or ``drop_frames = "never"``): every message, frames and scale
  lines alike, travels in source order through both queues and blocking ``put`` applies back
  pressure to the source. The stage functions are exactly the plain loop's
  (:meth:`caper_edge.replay.Pipeline.observe` then :meth:`~caper_edge.replay.Pipeline.track`), so
  the events are the plain loop's, byte for byte, run after run.

Every frame is timed: queue wait, vision, tracker + fusion, commit (journal + publish) and the
whole capture-to-publish latency, with quantiles in :meth:`Runtime.status` and, when asked for,
every frame's figures in :attr:`Runtime.latencies`.

:func:`create_pipeline` is the supervisor's factory (``[supervisor] pipeline``); ``caper-edge
replay`` and ``caper-edge demo`` use :class:`Runtime` directly with an in-memory journal.
Privacy: frames live only in these queues; nothing here stores or sends a pixel.
"""

from __future__ import annotations

import heapq
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .basket import Basket, Unit
from .catalog import Catalog
from .config import Config
from .errors import CaperError, InputError
from .events import Event
from .metrics import DriftMonitor, StageMetrics
from .replay import Pipeline, load_catalog, open_model_vision
from .bags.images import FrameDecodeError
from .sources.messages import Frame, GroundTruthEvent, ScaleLine

__all__ = ["FrameLatency", "NewestWins", "Runtime", "create_pipeline", "lossless_for", "restore_basket", "single_threaded_blas",
           "vision_workers_for"]

log = logging.getLogger("caper_edge.pipeline")

_END = object()  # end of the source: travels through both queues behind the last message
STAGES = ("queue", "vision", "track", "commit", "capture_to_publish")


@dataclass(frozen=True, slots=True)
class FrameLatency:
    """One frame's timings in milliseconds (``Runtime.latencies`` when ``keep_latencies``)."""

    index: int
    queue_ms: float
    vision_ms: float
    track_ms: float
    commit_ms: float
    total_ms: float   # capture to publish: the frame's last event (if any) is published


def single_threaded_blas() -> bool:
    """Limit the BLAS library (OpenBLAS / MKL behind NumPy's matmul) to one thread in this process.

    The runtime's parallelism is its vision workers; a BLAS call inside each (the gallery's
    similarity matmul, 8 crops x ~3000 views) would otherwise start a BLAS thread per core in
    every worker and the workers fight over the cores: on the 2-core benchmark machine the
    pipelined runtime fell from ~97 to ~62 FPS with a 2894-view gallery. ONNX Runtime's own
    thread pools are not affected. Returns False when threadpoolctl is not installed."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a runtime dependency; degrade, do not fail
        log.warning("threadpoolctl is not installed: BLAS may oversubscribe the cores next to the vision workers")
        return False
    threadpool_limits(limits=1, user_api="blas")
    return True


class NewestWins:
    """A bounded buffer whose ``put`` never blocks: when full, the oldest waiting item is dropped
    (and counted). ``close()`` lets the consumer drain what is left, then ``get`` returns _END."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"NewestWins capacity = {capacity}: expected >= 1")
        self._items: deque[Any] = deque()
        self._capacity = capacity
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0

    def put(self, item: Any) -> None:
        with self._cond:
            if len(self._items) >= self._capacity:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._cond.notify()

    def get(self, timeout: float | None = None) -> Any:
        """The oldest waiting item; _END once closed and empty; queue.Empty after ``timeout``."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._items or self._closed, timeout):
                raise queue.Empty
            return self._items.popleft() if self._items else _END

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def qsize(self) -> int:
        with self._cond:
            return len(self._items)


@dataclass(slots=True)
class _Captured:
    frame: Frame
    capture_ns: int


@dataclass(slots=True)
class _Observed:
    frame: Frame
    seen: Any
    capture_ns: int
    vision_start_ns: int
    vision_end_ns: int


def restore_basket(restored: Any) -> Basket:
    """The basket a restarting worker continues from: the journal's latest snapshot plus the
    events after it. Units lose their track ids: the tracker starts again with new ones."""
    basket = Basket.from_snapshot(restored.snapshot) if restored.snapshot is not None else Basket()
    for event in restored.events_after:
        if event.type == "item_added" and event.sku:
            basket.add(event.sku, event.qty, confidence=event.confidence, t_ns=event.t_ns)
        elif event.type == "item_removed" and event.sku and basket.qty(event.sku):
            basket.remove(event.sku, min(event.qty, basket.qty(event.sku)))
        elif event.type == "basket_reset":
            basket.clear()
    for line in basket:
        line.units = [Unit(u.confidence, None, u.t_ns) for u in line.units]
    return basket


class Runtime:
    """Sources, stages and threads for one cart; see the module docstring.

    Parameters
    ----------
    cfg:
        The configuration.
    pipeline:
        The stage composition (:class:`caper_edge.replay.Pipeline`).
    source:
        Iterable of :class:`Frame` / :class:`ScaleLine` / :class:`GroundTruthEvent`, opened by
        :meth:`start` when it is a callable returning one; closed by :meth:`stop` if it has
        ``close()``.
    commit:
        ``commit(draft_event, snapshot) -> Event``: journal, then publish (the worker's
        :meth:`~caper_edge.worker.WorkerContext.commit` or an
        :class:`~caper_edge.publish.EventOutlet`'s).
    lossless:
        True: nothing is dropped, everything travels in source order (``speed = "max"``).
    live_clock:
        True when frame times are on this host's monotonic clock (a camera): capture-to-publish
        is measured from the frame's own timestamp; otherwise from when the source yielded it.
    next_seq:
        The seq the next committed event will get (for the snapshot committed with it).
    scale_reader:
        ``factory(on_sample) -> ScaleReader`` for a live scale (started by :meth:`start`); its
        samples join the results queue. Without one, the source's scale lines are used
        (``use_source_scale``).
    on_event, on_ground_truth:
        Called on the commit thread with each committed event / each ground-truth message.
    keep_latencies:
        Keep every frame's :class:`FrameLatency` in :attr:`latencies` (benchmarks).
    """

    def __init__(self, cfg: Config, pipeline: Pipeline, source: Any, commit: Callable[[Event, Any], Event], *,
                 lossless: bool, live_clock: bool = False, next_seq: Callable[[], int] = lambda: 0,
                 scale_reader: Any = None, use_source_scale: bool = True,
                 on_event: Callable[[Event], None] | None = None,
                 on_ground_truth: Callable[[GroundTruthEvent], None] | None = None,
                 keep_latencies: bool = False, source_kind: str = "source", vision_workers: int = 1) -> None:
        pc = cfg.pipeline
        self.cfg = cfg
        self.pipeline = pipeline
        self.catalog: Catalog = pipeline.catalog
        self._source_spec = source
        self.source: Any = None
        self.source_kind = source_kind
        self._commit = commit
        self.lossless = lossless
        self.live_clock = live_clock
        self._next_seq = next_seq
        self.scale_reader = scale_reader(self.on_scale_sample) if scale_reader is not None else None
        self.use_source_scale = use_source_scale and scale_reader is None
        self.on_event = on_event
        self.on_ground_truth = on_ground_truth
        if lossless:
            self._frames: Any = queue.Queue(maxsize=pc.frame_queue)
        else:
            self._frames = NewestWins(pc.frame_queue)
        self._results: queue.Queue[Any] = queue.Queue(maxsize=pc.result_queue)
        self._stop = threading.Event()
        self._lock = threading.Lock()   # the tracker / fusion / basket state: commit thread vs reset()
        self._threads: list[threading.Thread] = []
        if vision_workers < 1:
            raise ValueError(f"vision_workers = {vision_workers}: expected >= 1")
        self.vision_workers = vision_workers
        self._take_lock = threading.Lock()   # dequeue + numbering: the order the commit stage restores
        self._taken = 0
        self._drift_lock = threading.Lock()
        self.stage = {name: StageMetrics(window=pc.health_window) for name in STAGES}
        self.detector_confidence = DriftMonitor(baseline_samples=300, recent=60)
        self.gallery_similarity = DriftMonitor(baseline_samples=300, recent=60)
        self.latencies: list[FrameLatency] | None = [] if keep_latencies else None
        self.frames_captured = 0
        self.frames_bad = 0   # frames that did not decode (skipped)
        self.frames_done = 0
        self.scale_dropped = 0
        self.events_committed = 0
        self.fatal: str | None = None
        self.ended = threading.Event()   # the source is used up and every decision is committed
        self.started = False
        self._last_frame_mono: float | None = None
        self.last_message_t_ns = 0   # the latest time of anything the commit stage took
        self.first_message_t_ns: int | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Open the source, start the threads (and the scale reader)."""
        if self.started:
            return
        self.source = self._source_spec() if callable(self._source_spec) else self._source_spec
        if self.vision_workers > 1:
            single_threaded_blas()
        specs = [("capture", self._capture_loop), ("commit", self._commit_loop)]
        specs += [(f"vision{i}" if self.vision_workers > 1 else "vision", self._vision_loop)
                  for i in range(self.vision_workers)]
        self._threads = [threading.Thread(target=self._guard, args=(name, fn), name=f"pipeline-{name}", daemon=True)
                         for name, fn in specs]
        for t in self._threads:
            t.start()
        if self.scale_reader is not None:
            self.scale_reader.start()
        self.started = True

    def wait_first_frame(self, timeout: float) -> None:
        """Block until a frame went through every stage (or the source ended); raise the capture
        error (e.g. no camera) or a CaperError after ``timeout`` seconds."""
        end = time.monotonic() + timeout
        while self.frames_done == 0 and not self.ended.is_set():
            if self.fatal:
                raise self._fatal_exc or CaperError(self.fatal)
            if time.monotonic() > end:
                raise CaperError(f"no frame went through the pipeline within {timeout:.0f} s of start ({self.source_kind})")
            time.sleep(0.01)

    def run(self, progress: Callable[[int], None] | None = None, every_s: float = 0.2) -> None:
        """Start, process the whole source, stop; ``progress(frames_done)`` every ``every_s``
        seconds on the calling thread. Raises what a stage raised."""
        self.start()
        try:
            while not self.ended.wait(every_s) and self.fatal is None:
                if progress is not None:
                    progress(self.frames_done)
            if progress is not None and self.fatal is None:
                progress(self.frames_done)
        finally:
            self.stop()
        if self.fatal:
            raise self._fatal_exc or CaperError(self.fatal)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every thread and close the source and the scale reader."""
        self._stop.set()
        if self.scale_reader is not None:
            self.scale_reader.stop()
        close = getattr(self.source, "close", None)
        if close is not None:
            try:
                close()
            except Exception as exc:  # closing a broken device must not hide why we stop
                log.warning("closing the source: %s", exc)
        if isinstance(self._frames, NewestWins):
            self._frames.close()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
            if t.is_alive():
                log.warning("thread %s did not stop within %.0f s", t.name, timeout)

    # -- the threads --------------------------------------------------------------------------

    _fatal_exc: BaseException | None = None

    def _guard(self, name: str, fn: Callable[[], None]) -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - reported through status(): the worker restarts
            if self._stop.is_set() and not isinstance(exc, CaperError):
                return
            self._fatal_exc = exc
            self.fatal = f"{name} stage: {type(exc).__name__}: {exc}"
            log.error("pipeline %s stage failed: %s", name, exc, exc_info=not isinstance(exc, CaperError))
            self._stop.set()
            if isinstance(self._frames, NewestWins):
                self._frames.close()

    def _put(self, q: queue.Queue, item: Any) -> bool:
        """Blocking put that gives up when the pipeline stops."""
        while not self._stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _capture_loop(self) -> None:
        lossless = self.lossless
        try:
            for msg in self.source:
                if self._stop.is_set():
                    return
                if isinstance(msg, Frame):
                    now = time.monotonic_ns()
                    capture_ns = msg.t_ns if self.live_clock else now
                    if msg.color is None:
                        try:   # the capture stage decodes (JPEG from bags): not the detector's time
                            msg.decode()
                        except FrameDecodeError as exc:   # a damaged frame is counted and skipped
                            self.frames_bad += 1
                            if self.frames_bad == 1 or self.frames_bad % 100 == 0:
                                log.warning("frame %d does not decode (%d so far): %s", msg.index, self.frames_bad, exc)
                            continue
                    self.frames_captured += 1
                    self._last_frame_mono = time.monotonic()
                    item = _Captured(msg, capture_ns)
                    if lossless:
                        if not self._put(self._frames, item):
                            return
                    else:
                        self._frames.put(item)
                elif isinstance(msg, ScaleLine):
                    if not self.use_source_scale:
                        continue
                    if not self._put(self._frames if lossless else self._results, msg):
                        return
                elif isinstance(msg, GroundTruthEvent):
                    if self.on_ground_truth is not None and not self._put(self._frames if lossless else self._results, msg):
                        return
                else:
                    raise InputError(f"unexpected message {type(msg).__name__} from the {self.source_kind}")
        finally:
            if not self._stop.is_set():
                if lossless:
                    self._put(self._frames, _END)
                else:
                    self._frames.close()

    def _vision_loop(self) -> None:
        """One vision worker. Items are numbered as they are taken, under a lock, so the commit
        stage can put them back in source order whatever the number of workers."""
        pipe = self.pipeline
        while not self._stop.is_set():
            with self._take_lock:
                try:
                    item = self._frames.get(timeout=0.1)
                except queue.Empty:
                    continue
                n = self._taken
                self._taken += 1
            if item is _END:
                if not isinstance(self._frames, NewestWins):
                    self._put(self._frames, _END)   # for the other workers
                self._put(self._results, (n, _END))
                return
            if not isinstance(item, _Captured):   # lossless: scale lines and ground truth in order
                if not self._put(self._results, (n, item)):
                    return
                continue
            t0 = time.monotonic_ns()
            seen = pipe.observe(item.frame)
            t1 = time.monotonic_ns()
            if seen is not None:
                self._drift(seen[0])
            if not self._put(self._results, (n, _Observed(item.frame, seen, item.capture_ns, t0, t1))):
                return

    def _drift(self, obs: Any) -> None:
        with self._drift_lock:
            if len(obs.score):
                self.detector_confidence.add(float(np.mean(obs.score)))
            if obs.sku_similarity is not None and len(obs.sku_similarity):
                rows = obs.sku_similarity[np.any(obs.sku_similarity != 0, axis=1)]
                if len(rows):
                    self.gallery_similarity.add(float(np.mean(rows.max(axis=1))))

    def on_scale_sample(self, sample: Any) -> None:
        """ScaleReader callback (reader thread): never blocks the serial reader."""
        try:
            self._results.put_nowait(sample)
        except queue.Full:
            self.scale_dropped += 1

    def _commit_loop(self) -> None:
        """Vision results and (lossless) scale lines arrive numbered, possibly out of order from
        several workers: a small heap restores the order. Live scale samples arrive bare and
        are used at once."""
        waiting: list[tuple[int, int, Any]] = []
        expect = 0
        tie = 0
        while not self._stop.is_set():
            try:
                got = self._results.get(timeout=0.1)
            except queue.Empty:
                continue
            if not isinstance(got, tuple):
                self._consume(got)
                continue
            tie += 1
            heapq.heappush(waiting, (got[0], tie, got[1]))
            while waiting and waiting[0][0] == expect:
                _, _, item = heapq.heappop(waiting)
                expect += 1
                if item is _END:
                    with self._lock:
                        self._publish(self.pipeline.finish())
                    self.ended.set()
                    return
                self._consume(item)

    def _consume(self, item: Any) -> None:
        pipe = self.pipeline
        t_item = item.frame.t_ns if isinstance(item, _Observed) else int(getattr(item, "t_ns", 0) or 0)
        self.last_message_t_ns = max(self.last_message_t_ns, t_item)
        if self.first_message_t_ns is None and t_item:
            self.first_message_t_ns = t_item
        with self._lock:
            if isinstance(item, _Observed):
                t2 = time.monotonic_ns()
                events = pipe.track(item.frame, item.seen)
                t3 = time.monotonic_ns()
                self._publish(events)
                t4 = time.monotonic_ns()
                self._record(item, t2, t3, t4)
            elif isinstance(item, ScaleLine):
                self._publish(pipe.feed(item))
            elif isinstance(item, GroundTruthEvent):
                if self.on_ground_truth is not None:
                    self.on_ground_truth(item)
            else:   # a CalibratedSample from the serial reader
                self._publish(pipe.feed_sample(item))

    def _publish(self, events: Iterable[Event]) -> None:
        for draft in events:
            self._publish_one(draft)

    def _publish_one(self, draft: Event) -> Event:
        """Commit one draft with the basket snapshot after it (journal, then publish)."""
        snap = self.pipeline.basket.snapshot(self._next_seq(), draft.t_ns, catalog=self.catalog,
                                             weight_g=self.pipeline.last_weight_g)
        committed = self._commit(draft, snap)
        self.events_committed += 1
        if self.on_event is not None:
            self.on_event(committed)
        return committed

    def _record(self, item: _Observed, t2: int, t3: int, t4: int) -> None:
        now_s = time.monotonic()
        st = self.stage
        queue_ns = max(0, item.vision_start_ns - item.capture_ns)
        total_ns = max(0, t4 - item.capture_ns)
        st["queue"].record(queue_ns, now_s)
        st["vision"].record(item.vision_end_ns - item.vision_start_ns, now_s)
        st["track"].record(t3 - t2, now_s)
        st["commit"].record(t4 - t3, now_s)
        st["capture_to_publish"].record(total_ns, now_s)
        self.frames_done += 1
        if self.latencies is not None:
            self.latencies.append(FrameLatency(item.frame.index, queue_ns / 1e6, (item.vision_end_ns - item.vision_start_ns) / 1e6,
                                               (t3 - t2) / 1e6, (t4 - t3) / 1e6, total_ns / 1e6))

    # -- the worker's Pipeline protocol -------------------------------------------------------

    @property
    def frames_dropped(self) -> int:
        return self._frames.dropped if isinstance(self._frames, NewestWins) else 0

    def waiting_for(self) -> str | None:
        if self.ended.is_set():
            return f"{self.source_kind} ended"
        last = self._last_frame_mono
        timeout_s = self.cfg.camera.frame_timeout_ms / 1000.0
        if self.source_kind == "camera" and (last is None or time.monotonic() - last > timeout_s):
            return "camera reconnecting"
        return None

    def health(self) -> dict[str, Any]:
        now = time.monotonic()
        src_stats = getattr(self.source, "stats", None)
        sensors: dict[str, Any] = {self.source_kind: "ended" if self.ended.is_set() else
                                   ("waiting" if self.waiting_for() else "streaming")}
        if self.scale_reader is not None:
            sensors["scale"] = self.scale_reader.state
        elif self.use_source_scale:
            sensors["scale"] = self.source_kind
        health: dict[str, Any] = {
            "mode": "lossless" if self.lossless else "newest_frame_wins",
            "vision_workers": self.vision_workers,
            "stages": {name: m.snapshot(now) for name, m in self.stage.items()},
            "queues": {"frames": self._frames.qsize(), "results": self._results.qsize()},
            "drops": {"frames": self.frames_dropped, "scale": self.scale_dropped, "bad_frames": self.frames_bad},
            "sensors": sensors,
            "counts": {"captured": self.frames_captured, "processed": self.frames_done,
                       "events": self.events_committed, "scale_samples": self.pipeline.stats.scale_samples,
                       "weight_events": self.pipeline.stats.weight_events},
            "drift": {"detector_confidence": self.detector_confidence.snapshot(),
                      "gallery_similarity": self.gallery_similarity.snapshot()},
            "basket_items": self.pipeline.basket.total_qty,
            "weight_g": self.pipeline.last_weight_g,
        }
        if self.scale_reader is not None:
            health["scale"] = self.scale_reader.health()
        if src_stats is not None and hasattr(src_stats, "problems"):
            health["source"] = {"reconnects": getattr(src_stats, "reconnects", 0),
                                "problems": list(getattr(src_stats, "problems", []))[:10]}
        return health

    def status(self) -> Any:
        from .worker import PipelineStatus

        return PipelineStatus(frames=self.frames_done, waiting_for=self.waiting_for(), fatal=self.fatal,
                              health=self.health())

    def reset(self, reason: str) -> Event:
        """Empty the basket (REP ``reset``): one journaled ``basket_reset`` event."""
        with self._lock:
            qty = self.pipeline.fusion.reset()
            draft = Event("basket_reset", self.last_message_t_ns, qty=qty, confidence=1.0, extras={"reason": reason})
            return self._publish_one(draft)


# ---------------------------------------------------------------------------------------------
# Sources from the configuration, and the supervisor's factory
# ---------------------------------------------------------------------------------------------


def open_source(cfg: Config, *, speed: str | None = None, bag: str | None = None, ground_truth: bool = False) -> tuple[Callable[[], Any], str, Any]:
    """``(opener, kind, catalog_json)`` for ``[pipeline] source``: kind is "camera", "bag" or
    "simulator"; catalog_json is the bag's / simulator's catalogue (None for a camera)."""
    pc = cfg.pipeline
    speed = speed or pc.speed
    if pc.source == "realsense" and bag is None:
        from .sources.realsense import RealSenseSource, import_pyrealsense2

        import_pyrealsense2()   # a clear error now, not in the capture thread
        return (lambda: RealSenseSource(cfg.camera)), "camera", None
    if pc.source == "bag" or bag is not None:
        from pathlib import Path

        from .sources import BagSource

        path = bag or pc.bag
        if not Path(path).exists():
            raise InputError(f"config key pipeline.bag = {path!r}: no such file or directory")
        probe = BagSource(path, speed="max")
        catalog = probe.catalog
        probe.close()
        opener = lambda: BagSource(path, speed=speed, loop=pc.loop, decode=False, ground_truth=ground_truth,  # noqa: E731
                                   max_depth_gap_ms=cfg.camera.max_depth_gap_ms, strict=False)
        return opener, "bag", catalog
    from .sources.process import ProcessSource
    from .sources.simulator import SimulatorSource

    # The simulator stands in for the camera and the scale, devices outside the cart's process:
    # it renders in a child process, so its CPU, GIL time and sprite caches are not the cart's.
    options = dict(fps=cfg.sim.fps, depth_every=cfg.sim.depth_every)
    sim = ProcessSource(SimulatorSource, pc.sim_scenario, pc.sim_seed, speed=speed, ground_truth=ground_truth,
                        **options)
    return (lambda: sim), "simulator", sim.catalog


def lossless_for(cfg: Config, speed: str | float | None, *, camera: bool = False) -> bool:
    """``[pipeline] drop_frames``: "never" -> lossless, "newest" -> live, "auto" -> lossless only
    for a bag or the simulator at speed max (``speed`` "max" or None)."""
    mode = cfg.pipeline.drop_frames
    if mode != "auto":
        return mode == "never"
    return speed in (None, "max") and not camera


def vision_workers_for(cfg: Config, vision: Any) -> int:
    """``[pipeline] vision_workers``, or for 0 (auto): one per core (at most 4) when every engine
    of ``vision`` allows concurrent runs, else 1."""
    if cfg.pipeline.vision_workers:
        return cfg.pipeline.vision_workers
    engines = [getattr(vision, "detector", None), getattr(getattr(vision, "embedder", None), "engine", None)]
    engines = [e for e in engines if e is not None]
    if not engines or not all(getattr(e, "concurrent_runs_safe", False) for e in engines):
        return 1
    return max(1, min(4, os.cpu_count() or 1))


def create_pipeline(cfg: Config, ctx: Any) -> Any:
    """The supervisor's factory (``[supervisor] pipeline = "caper_edge.pipeline:create_pipeline"``):
    models and gallery, the configured source, the scale, the basket restored from the journal."""
    return _ServicePipeline(cfg, ctx)


class _ServicePipeline:
    """The worker's view of a :class:`Runtime`: start() returns once a frame went through."""

    def __init__(self, cfg: Config, ctx: Any) -> None:
        pc = cfg.pipeline
        vision = open_model_vision(cfg)   # missing / wrong models: a CaperError, fatal
        opener, kind, catalog_json = open_source(cfg)
        catalog = load_catalog(catalog_json, vision)
        basket = restore_basket(ctx.restored)
        snapshot = ctx.restored.snapshot or {}
        resume_g = snapshot.get("weight_g") if ctx.restored.last_seq else None
        pipe = Pipeline(cfg, catalog, vision, basket=basket, resume_weight_g=resume_g)
        scale_mode = pc.scale if pc.scale != "auto" else ("serial" if kind == "camera" else "source")
        reader = None
        if scale_mode == "serial":
            from .scale import ScaleReader

            reader = lambda on_sample: ScaleReader(cfg.scale, on_sample=on_sample)  # noqa: E731
        lossless = lossless_for(cfg, pc.speed, camera=kind == "camera")
        self.runtime = Runtime(cfg, pipe, opener, ctx.commit, lossless=lossless, live_clock=kind == "camera",
                               next_seq=lambda: ctx.journal.last_seq + 1, scale_reader=reader,
                               use_source_scale=scale_mode == "source", source_kind=kind,
                               vision_workers=vision_workers_for(cfg, vision))
        self.start_timeout_s = cfg.supervisor.start_timeout_s
        log.info("pipeline: %s source, scale %s, %s, %d SKUs, basket restored with %d items (journal seq %d)",
                 kind, scale_mode, "lossless" if lossless else "newest frame wins", len(catalog),
                 basket.total_qty, ctx.restored.last_seq)

    def start(self) -> None:
        self.runtime.start()
        self.runtime.wait_first_frame(0.9 * self.start_timeout_s)

    def status(self) -> Any:
        return self.runtime.status()

    def reset(self, reason: str) -> Event:
        return self.runtime.reset(reason)

    def stop(self) -> None:
        self.runtime.stop()

