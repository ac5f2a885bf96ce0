"""The worker process: runs one pipeline under the supervisor and reports on it.

The seam for the perception pipeline is :class:`Pipeline` and a factory
``factory(config, ctx) -> Pipeline`` named in ``[supervisor] pipeline = "module:callable"``.
The worker:

1. opens the journal and hands the pipeline a :class:`WorkerContext`: the config, the state to
   restore (:class:`~caper_edge.journal.Restored`), and :meth:`WorkerContext.commit`, the only way
   an event leaves the pipeline (durable journal commit, then a notice to the supervisor, which
   publishes it);
2. calls ``pipeline.start()``, which returns once sensors and engines are up, and tells the
   supervisor "ready" (systemd READY=1 follows);
3. every ``heartbeat_interval_s`` sends ``pipeline.status()`` (frame counter, sensor wait,
   the pipeline's health fields) — the supervisor feeds the watchdog only while frames advance;
4. obeys "stop" (SIGTERM path) and "reset" (REP ``reset``) requests.

Messages on the pipe are plain dicts (see :func:`worker_main`). A :class:`~caper_edge.errors.CaperError`
from the factory or ``start()`` (bad config, missing model) is *fatal*: restarting cannot fix it,
so the supervisor stops with that exit code. Anything else is a crash and is restarted.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Protocol

from .config import Config
from .errors import CaperError, ConfigError
from .events import Event
from .journal import Journal, JournalError, Restored

__all__ = ["Pipeline", "PipelineStatus", "WorkerContext", "PipelineFactory", "load_factory", "worker_main"]

log = logging.getLogger("caper_edge.worker")


@dataclass
class PipelineStatus:
    """What the pipeline reports at every heartbeat.

    frames : frames fully processed since start (a counter that only grows); the watchdog is fed
        only while it advances.
    waiting_for : e.g. "camera reconnecting": frames stopped for a known reason, so the worker is
        not treated as hung (the watchdog is still not fed).
    fatal : set when a pipeline thread died: the worker exits and is restarted.
    health : the pipeline's part of the health message (docs/events.md: stages, queues, drops,
        sensors, scale, drift).
    """

    frames: int
    waiting_for: str | None = None
    fatal: str | None = None
    health: dict[str, Any] = field(default_factory=dict)


class Pipeline(Protocol):
    def start(self) -> None:
        """Bring sensors and engines up; return when frames can flow (raise on failure)."""

    def status(self) -> PipelineStatus:
        """Cheap, thread-safe; called from the heartbeat thread."""

    def reset(self, reason: str) -> Event:
        """Empty the basket; return the journaled ``basket_reset`` event."""

    def stop(self) -> None:
        """Stop threads and release sensors; return when done."""


class WorkerContext:
    """What a pipeline gets from the worker."""

    def __init__(self, config: Config, journal: Journal, incarnation: int, notify: Callable[[dict[str, Any]], None]) -> None:
        self.config = config
        self.journal = journal
        self.incarnation = incarnation  # 0 for the first worker, +1 per restart
        self.restored: Restored = journal.restore()
        self.stop_requested = threading.Event()
        self._notify = notify

    def commit(self, event: Event, snapshot: Any = None) -> Event:
        """Journal ``event`` (a draft) and the basket snapshot after it, durably; then tell the
        supervisor to publish. Returns the sequenced event. Raises JournalError (e.g. disk full):
        the event did not happen as far as anyone else knows."""
        if snapshot is not None and hasattr(snapshot, "to_dict"):
            snapshot = snapshot.to_dict()
        committed = self.journal.append(event, snapshot)
        self._notify({"kind": "committed", "seq": committed.seq})
        return committed


PipelineFactory = Callable[[Config, WorkerContext], Pipeline]


def load_factory(spec: str) -> PipelineFactory:
    """Import ``"package.module:callable"``; ConfigError naming the spec when it is not there."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"config key supervisor.pipeline = {spec!r}: expected 'package.module:factory'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"config key supervisor.pipeline = {spec!r}: cannot import {module_name}: {exc}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ConfigError(f"config key supervisor.pipeline = {spec!r}: {module_name} has no callable {attr!r}")
    return factory


class _Link:
    """The pipe to the supervisor; sends from several threads are serialised."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._lock = threading.Lock()
        self.broken = threading.Event()

    def send(self, message: dict[str, Any]) -> None:
        if self.broken.is_set():
            return
        try:
            with self._lock:
                self.conn.send(message)
        except (OSError, EOFError, ValueError):
            self.broken.set()  # the supervisor is gone: the worker stops


def worker_main(conn: Connection, config: Config, journal_path: str, incarnation: int) -> None:
    """Entry point of the worker process (multiprocessing spawn target)."""
    # The supervisor alone talks to systemd; a child must not send READY or WATCHDOG.
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        os.environ.pop(name, None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the supervisor, which stops us
    from .logs import setup_logging

    setup_logging(config.log.level, config.log.format, role=f"worker[{incarnation}]")
    link = _Link(conn)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sys.exit(_run(link, stop, config, journal_path, incarnation))


def _run(link: _Link, stop: threading.Event, config: Config, journal_path: str, incarnation: int) -> int:
    link.send({"kind": "hello", "pid": os.getpid()})
    state: dict[str, Any] = {"pipeline": None, "phase": "starting"}
    heartbeat = threading.Thread(target=_heartbeat_loop, args=(link, stop, state, config), daemon=True, name="heartbeat")
    heartbeat.start()
    control = threading.Thread(target=_control_loop, args=(link, stop, state), daemon=True, name="control")
    control.start()
    journal = None
    try:
        journal = Journal(journal_path, synchronous=config.journal.synchronous,
                          max_size_bytes=config.journal.max_size_mb * 2**20)
        ctx = WorkerContext(config, journal, incarnation, link.send)
        pipeline = load_factory(config.supervisor.pipeline)(config, ctx)
        state["pipeline"] = pipeline
        pipeline.start()
    except CaperError as exc:
        if isinstance(exc, JournalError):
            log.error("%s", exc)
            return 1  # may heal (disk freed): restart with backoff
        link.send({"kind": "fatal", "error": str(exc), "exit_code": exc.exit_code})
        return exc.exit_code
    except Exception:
        log.error("pipeline failed to start:\n%s", traceback.format_exc().rstrip())
        return 1
    state["phase"] = "running"
    link.send({"kind": "ready"})
    while not stop.wait(0.1):
        if link.broken.is_set():
            log.warning("the supervisor is gone; stopping")
            break
        if state.get("fatal"):
            log.error("pipeline failed: %s", state["fatal"])
            return 1
    state["phase"] = "stopping"
    try:
        pipeline.stop()
    finally:
        journal.close()
    link.send({"kind": "stopped"})
    return 0


def _heartbeat_loop(link: _Link, stop: threading.Event, state: dict[str, Any], config: Config) -> None:
    interval = config.supervisor.heartbeat_interval_s
    while not stop.wait(interval):
        message: dict[str, Any] = {"kind": "heartbeat", "phase": state["phase"], "frames": 0}
        pipeline = state["pipeline"]
        if state["phase"] == "running" and pipeline is not None:
            try:
                status = pipeline.status()
            except Exception as exc:  # a broken status() is a broken pipeline
                status = PipelineStatus(frames=0, fatal=f"status() raised {type(exc).__name__}: {exc}")
            if status.fatal:
                state["fatal"] = status.fatal
            message.update(frames=status.frames, waiting_for=status.waiting_for, health=status.health)
        link.send(message)
        if link.broken.is_set():
            stop.set()


def _control_loop(link: _Link, stop: threading.Event, state: dict[str, Any]) -> None:
    while not stop.is_set():
        try:
            if not link.conn.poll(0.2):
                continue
            message = link.conn.recv()
        except (OSError, EOFError):
            link.broken.set()
            stop.set()
            return
        kind = message.get("kind") if isinstance(message, dict) else None
        if kind == "stop":
            stop.set()
        elif kind == "reset":
            _do_reset(link, state, message)


def _do_reset(link: _Link, state: dict[str, Any], message: dict[str, Any]) -> None:
    pipeline = state["pipeline"]
    reply: dict[str, Any] = {"kind": "reset_done", "id": message.get("id")}
    if pipeline is None or state["phase"] != "running":
        reply["error"] = "the pipeline is not running yet"
    else:
        try:
            reply["event"] = pipeline.reset(str(message.get("reason", "requested"))).to_dict()
        except Exception as exc:
            reply["error"] = f"reset failed: {type(exc).__name__}: {exc}"
    link.send(reply)
