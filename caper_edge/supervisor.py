"""``caper-edge run``: the supervisor process that systemd starts.

It owns everything that must outlive a pipeline crash — the PUB/REP sockets, the JSONL file,
the systemd conversation — and runs the pipeline in a worker process (:mod:`caper_edge.worker`,
multiprocessing *spawn*: a fresh interpreter, no inherited threads or CUDA state).

- READY=1 only after the worker says sensors and engines are up.
- WATCHDOG=1 (at half of ``WatchdogSec``) only while the worker's frame counter advanced within
  ``watchdog_stall_s``: a hung pipeline starves the watchdog even if every process is alive.
- A worker that crashes, exits, stops sending heartbeats, or stops processing frames (while not
  waiting for a sensor) for ``hang_timeout_s`` is killed and restarted after an exponential
  backoff (``backoff_initial_s`` doubling to ``backoff_max_s``), reset once a worker has run
  ``stable_after_s``. A worker that reports a fatal error (bad config, missing model) is not
  restarted: the supervisor exits with that error's code.
- Events: the worker commits to the journal and sends "committed up to N"; the supervisor
  publishes from the journal (:class:`~caper_edge.publish.JournalFollower`), and also polls the
  journal once a second, so an event committed just before a crash is still published.
- SIGTERM / SIGINT: STOPPING=1, the worker is asked to stop (killed after ``stop_timeout_s``),
  the last events are published, sockets are closed, exit 0.
- ``health`` on PUB every ``health_interval_s`` (schema in docs/events.md).
"""

from __future__ import annotations

import concurrent.futures
import itertools
import logging
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .config import Config
from .errors import CaperError
from .events import SCHEMA_VERSION, Event
from .journal import Journal, default_journal_path
from .metrics import ProcessCpu, RateMeter, cpu_temperature_c, gpu_temperature_c, rss_mb
from .publish import EventServer, JournalFollower, JsonlSink
from .sd_notify import Notifier
from .worker import worker_main

__all__ = ["Supervisor", "Backoff"]

log = logging.getLogger("caper_edge.supervisor")


class Backoff:
    """Restart delays: initial, 2x, 4x ... capped; back to initial after a stable run."""

    def __init__(self, initial_s: float, max_s: float, stable_after_s: float) -> None:
        self.initial_s, self.max_s, self.stable_after_s = initial_s, max_s, stable_after_s
        self.failures = 0

    def next_delay(self, ran_for_s: float) -> float:
        if ran_for_s >= self.stable_after_s:
            self.failures = 0
        delay = min(self.initial_s * 2**self.failures, self.max_s)
        self.failures += 1
        return delay


@dataclass
class _Worker:
    process: Any
    conn: Any
    incarnation: int
    started: float
    pid: int | None = None
    ready_at: float | None = None
    last_heartbeat: float = 0.0
    frames: int = 0
    last_progress: float = 0.0
    progress_seen: bool = False  # a frame was processed since ready
    waiting_for: str | None = None
    health: dict[str, Any] = field(default_factory=dict)
    fatal: dict[str, Any] | None = None
    kill_reason: str | None = None
    send_lock: threading.Lock = field(default_factory=threading.Lock)


class Supervisor:
    def __init__(self, config: Config, *, jsonl_path: str | None = None, environ: dict[str, str] | None = None) -> None:
        self.config = config
        self.sup = config.supervisor
        env = dict(os.environ if environ is None else environ)
        self.notifier = Notifier(env)
        self.journal_path = str(config.journal.path and os.path.expanduser(config.journal.path) or default_journal_path(env))
        self.jsonl_path = jsonl_path if jsonl_path is not None else config.publish.events_jsonl
        self._mp = multiprocessing.get_context("spawn")
        self._stop = threading.Event()
        self.worker: _Worker | None = None
        self.incarnations = 0
        self.restarts = 0
        self.last_exit: str | None = None
        self.next_start: float | None = 0.0
        self.backoff = Backoff(self.sup.backoff_initial_s, self.sup.backoff_max_s, self.sup.stable_after_s)
        self.ready_sent = False
        self.state = "starting"
        self.exit_code = 0
        self._status_text = ""
        self._resets: dict[int, concurrent.futures.Future] = {}
        self._reset_ids = itertools.count(1)
        self._frame_rate = RateMeter(5)
        self._cpu_self = ProcessCpu()
        self._cpu_worker: ProcessCpu | None = None
        self._health_seq = 0
        self._t0 = time.monotonic()

    # -- lifecycle ------------------------------------------------------------------------------

    def request_stop(self, *_: Any) -> None:
        self._stop.set()

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT or a fatal worker error; returns the exit code."""
        previous = {sig: signal.signal(sig, self.request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        self.journal = Journal(self.journal_path, synchronous=self.config.journal.synchronous,
                               max_size_bytes=self.config.journal.max_size_mb * 2**20)
        try:
            jsonl = None
            if self.jsonl_path:
                jsonl = JsonlSink(self.jsonl_path, fsync=self.config.publish.jsonl_fsync)
                jsonl.catch_up(self.journal)
            self.server = EventServer(self.config.publish, journal=self.journal, jsonl=jsonl,
                                      reset_handler=self._reset_via_worker, status_provider=self._status)
            try:
                self.follower = JournalFollower(self.journal, self.server)
                log.info("serving events on %s (PUB) and %s (REP); journal %s (last seq %d)",
                         self.server.pub_endpoint, self.server.rep_endpoint, self.journal_path, self.journal.last_seq,
                         extra={"fields": {"pub": self.server.pub_endpoint, "rep": self.server.rep_endpoint,
                                           "journal": self.journal_path, "last_seq": self.journal.last_seq}})
                self._loop()
                self._shutdown()
            finally:
                self.server.close()
        finally:
            self.journal.close()
            self.notifier.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self.exit_code

    def _loop(self) -> None:
        next_health = next_poll = next_watchdog = time.monotonic()
        watchdog_every = self.notifier.watchdog_interval_s
        while not self._stop.is_set():
            now = time.monotonic()
            if self.worker is None and self.next_start is not None and now >= self.next_start:
                self._start_worker()
            self._pump(0.05)
            if self.worker is not None:
                self._check_worker(time.monotonic())
            now = time.monotonic()
            self._update_status(now)
            if watchdog_every and now >= next_watchdog and self._frames_flowing(now):
                self.notifier.watchdog()
                next_watchdog = now + watchdog_every
            if now >= next_poll:
                if self.journal.reopen_if_replaced():
                    self.follower.published_seq = self.journal.last_seq
                self.follower.poll()
                if self.server.jsonl is not None and self.server.jsonl.behind:
                    self.server.jsonl.catch_up(self.journal)
                next_poll = now + 1.0
            if now >= next_health:
                self.server.publish_health(self._health(now))
                next_health = now + self.sup.health_interval_s

    def _start_worker(self) -> None:
        parent, child = self._mp.Pipe(duplex=True)
        incarnation = self.incarnations
        process = self._mp.Process(target=worker_main, args=(child, self.config, self.journal_path, incarnation),
                                   name=f"caper-edge-worker-{incarnation}")
        process.start()
        child.close()
        now = time.monotonic()
        self.worker = _Worker(process, parent, incarnation, started=now, pid=process.pid, last_heartbeat=now)
        self._cpu_worker = ProcessCpu(process.pid)
        self.incarnations += 1
        self.next_start = None
        self.state = "starting"
        log.info("worker %d started (pid %d)", incarnation, process.pid,
                 extra={"fields": {"worker_pid": process.pid, "incarnation": incarnation}})

    # -- messages from the worker ---------------------------------------------------------------

    def _pump(self, timeout_s: float) -> None:
        w = self.worker
        if w is None:
            self._stop.wait(timeout_s)
            return
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if not w.conn.poll(max(0.0, deadline - time.monotonic())):
                    return
                message = w.conn.recv()
            except (EOFError, OSError):
                self._stop.wait(max(0.0, deadline - time.monotonic()))  # it died; _check_worker sees it
                return
            self._on_message(w, message)

    def _on_message(self, w: _Worker, message: dict[str, Any]) -> None:
        kind = message.get("kind")
        now = time.monotonic()
        if kind == "heartbeat":
            w.last_heartbeat = now
            if message.get("phase") == "starting" and not self.ready_sent:
                # Sensors and engines may take long (engine deserialisation): ask systemd for time.
                self.notifier.extend_timeout(3 * self.sup.heartbeat_interval_s + 1)
            frames = int(message.get("frames", 0))
            if frames > w.frames:
                self._frame_rate.add(now, frames - w.frames)
                w.frames, w.last_progress = frames, now
                w.progress_seen = w.ready_at is not None
            w.waiting_for = message.get("waiting_for")
            w.health = message.get("health") or {}
        elif kind == "committed":
            self.follower.poll()
        elif kind == "ready":
            w.ready_at = w.last_progress = w.last_heartbeat = now
            self.state = "running"
            log.info("worker %d ready after %.2f s", w.incarnation, now - w.started)
            if not self.ready_sent:
                self.notifier.ready("running")
                self.ready_sent = True
        elif kind == "hello":
            w.pid = message.get("pid", w.pid)
        elif kind == "reset_done":
            future = self._resets.pop(message.get("id"), None)
            if future is not None and not future.done():
                future.set_result(message)
        elif kind == "fatal":
            w.fatal = message
        elif kind == "stopped":
            pass

    # -- liveness -------------------------------------------------------------------------------

    def _frames_flowing(self, now: float) -> bool:
        w = self.worker
        return (w is not None and w.ready_at is not None and w.progress_seen
                and now - w.last_progress <= self.sup.watchdog_stall_s)

    def _check_worker(self, now: float) -> None:
        w = self.worker
        assert w is not None
        if not w.process.is_alive():
            self._on_exit(w, now)
            return
        if w.ready_at is None and now - w.started > self.sup.start_timeout_s:
            self._kill(w, f"not ready after {self.sup.start_timeout_s:g} s")
        elif now - w.last_heartbeat > self.sup.hang_timeout_s:
            self._kill(w, f"no heartbeat for {now - w.last_heartbeat:.1f} s")
        elif w.ready_at is not None and not w.waiting_for and now - w.last_progress > self.sup.hang_timeout_s:
            self._kill(w, f"no frame processed for {now - w.last_progress:.1f} s")

    def _kill(self, w: _Worker, reason: str) -> None:
        log.error("worker %d (pid %s) is hung: %s; killing it", w.incarnation, w.pid, reason,
                  extra={"fields": {"worker_pid": w.pid, "reason": reason}})
        w.kill_reason = reason
        w.process.kill()
        w.process.join(5)

    def _on_exit(self, w: _Worker, now: float) -> None:
        w.process.join(1)
        try:  # what it said before dying (a fatal error, a last commit notice)
            while w.conn.poll(0):
                self._on_message(w, w.conn.recv())
        except (EOFError, OSError):
            pass
        code = w.process.exitcode
        w.conn.close()
        self.worker = None
        for future in self._resets.values():
            if not future.done():
                future.set_exception(CaperError("reset failed: the worker exited"))
        self._resets.clear()
        described = w.kill_reason or (f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}")
        self.last_exit = described
        self.follower.poll()  # whatever it committed before dying goes out now
        if w.fatal is not None:
            log.error("worker reported a fatal error, not restarting: %s", w.fatal.get("error"))
            self.exit_code = int(w.fatal.get("exit_code", 1)) or 1
            self.notifier.status(f"failed: {w.fatal.get('error')}")
            self._stop.set()
            return
        ran_for = now - (w.ready_at or w.started) if w.ready_at else 0.0
        delay = self.backoff.next_delay(ran_for)
        self.restarts += 1
        self.next_start = now + delay
        self.state = "restarting"
        log.error("worker %d (pid %s) stopped: %s; restart %d in %.2f s", w.incarnation, w.pid, described,
                  self.restarts, delay, extra={"fields": {"worker_pid": w.pid, "exit": described, "restart_in_s": delay}})

    # -- REP reset ------------------------------------------------------------------------------

    def _reset_via_worker(self, reason: str) -> Event:
        w = self.worker
        if w is None or w.ready_at is None:
            raise CaperError("reset is not available: the pipeline is not running (starting or restarting)")
        request_id = next(self._reset_ids)
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._resets[request_id] = future
        try:
            with w.send_lock:
                w.conn.send({"kind": "reset", "id": request_id, "reason": reason})
            reply = future.result(timeout=5.0)
        except concurrent.futures.TimeoutError:
            raise CaperError("reset failed: the pipeline did not answer within 5 s") from None
        except (OSError, EOFError):
            raise CaperError("reset failed: the worker is gone") from None
        finally:
            self._resets.pop(request_id, None)
        if reply.get("error"):
            raise CaperError(str(reply["error"]))
        return Event.from_dict(reply["event"])

    # -- reporting ------------------------------------------------------------------------------

    def _status(self) -> dict[str, Any]:
        w = self.worker
        return {"state": self.state, "worker_pid": w.pid if w else None, "restarts": self.restarts,
                "ready": bool(w and w.ready_at)}

    def _update_status(self, now: float) -> None:
        w = self.worker
        if self.state == "running" and w is not None and w.ready_at is not None:
            if w.waiting_for:
                text = f"waiting: {w.waiting_for}"
            elif not w.progress_seen:
                text = "ready, waiting for the first frame"
            elif not self._frames_flowing(now):
                text = f"stalled: no frame for more than {self.sup.watchdog_stall_s:g} s"
            else:
                text = "running"
        elif self.state == "restarting":
            text = f"restarting worker ({self.last_exit})"
        else:
            text = self.state
        if text != self._status_text:
            self._status_text = text
            self.notifier.status(text)
            if text.startswith(("stalled", "waiting")):
                log.warning("pipeline %s", text)

    def _health(self, now: float) -> dict[str, Any]:
        self._health_seq += 1
        w = self.worker
        worker = {
            "pid": w.pid if w else None,
            "incarnation": w.incarnation if w else None,
            "ready": bool(w and w.ready_at),
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "frames": w.frames if w else 0,
            "fps": self._frame_rate.rate(now),
            "last_frame_age_s": (now - w.last_progress) if (w and w.ready_at) else None,
            "waiting_for": w.waiting_for if w else None,
            "next_restart_in_s": max(0.0, self.next_start - now) if self.next_start is not None and not w else None,
        }
        return {
            "v": SCHEMA_VERSION,
            "seq": self._health_seq,
            "t_ns": time.monotonic_ns(),
            "wall_ns": time.time_ns(),
            "state": self.state,
            "uptime_s": now - self._t0,
            "worker": worker,
            "journal": {"last_seq": self.journal.last_seq, "journal_id": self.journal.journal_id,
                        "published_seq": self.follower.published_seq},
            "publish": self.server.stats(),
            "system": {
                "cpu_percent": {"supervisor": self._cpu_self.percent(),
                                "worker": self._cpu_worker.percent() if (w and self._cpu_worker) else None},
                "load_1m": os.getloadavg()[0],
                "cpu_temp_c": cpu_temperature_c(),
                "gpu_temp_c": gpu_temperature_c(),
                "rss_mb": {"supervisor": rss_mb(), "worker": rss_mb(w.pid) if w and w.pid else None},
            },
            "pipeline": (w.health if w else {}) or {},
        }

    # -- shutdown -------------------------------------------------------------------------------

    def _shutdown(self) -> None:
        self.state = "stopping"
        self.notifier.stopping("stopping")
        w = self.worker
        if w is not None:
            log.info("stopping worker %d (pid %s)", w.incarnation, w.pid)
            try:
                with w.send_lock:
                    w.conn.send({"kind": "stop"})
            except (OSError, EOFError, ValueError):
                pass
            deadline = time.monotonic() + self.sup.stop_timeout_s
            while w.process.is_alive() and time.monotonic() < deadline:
                try:
                    if w.conn.poll(0.1):
                        self._on_message(w, w.conn.recv())
                except (EOFError, OSError):
                    w.process.join(0.1)
            if w.process.is_alive():
                log.error("worker did not stop within %g s; killing it", self.sup.stop_timeout_s)
                w.process.kill()
            w.process.join(5)
            w.conn.close()
            self.worker = None
        self.follower.poll()
        log.info("stopped; last seq %d", self.journal.last_seq)
