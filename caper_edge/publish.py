"""Publishing basket events: ZeroMQ PUB + REP, and the JSONL sink (contract: docs/events.md).

- :class:`EventServer` owns the sockets: a PUB socket sending multipart ``[topic, msgpack]`` on
  ``basket.event``, ``basket.snapshot`` and ``health``, and a REP socket (:class:`RepServer`, its
  own thread) answering ``snapshot``, ``events_since``, ``reset`` and ``ping``.
- :class:`JsonlSink` appends each event as one canonical JSON line, flushed per event.
- :class:`JournalFollower` publishes whatever the journal holds beyond what was published: the
  supervisor uses it, since the worker process commits and this process publishes.

Order of every event: journal commit -> JSONL -> PUB. A slow or dead subscriber costs nothing:
sends never block (``NOBLOCK``, per-subscriber high-water mark); whatever a subscriber misses it
gets back from ``events_since``, which reads the journal.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import zmq

from .config import PublishConfig
from .curve import ServerKeys, endpoint_host, endpoint_is_local, load_server_keys
from .errors import CaperError, ConfigError, InputError
from .events import SCHEMA_VERSION, BasketSnapshot, Event, canonical_msgpack, decode_msgpack

__all__ = [
    "TOPIC_EVENT",
    "TOPIC_SNAPSHOT",
    "TOPIC_HEALTH",
    "EventServer",
    "RequestHandler",
    "RepServer",
    "JsonlSink",
    "JournalFollower",
    "EventOutlet",
]

log = logging.getLogger("caper_edge.publish")

TOPIC_EVENT = b"basket.event"
TOPIC_SNAPSHOT = b"basket.snapshot"
TOPIC_HEALTH = b"health"
ZAP_DOMAIN = b"caper-edge"

ResetHandler = Callable[[str], Event]
SnapshotProvider = Callable[[], "Mapping[str, Any] | None"]
StatusProvider = Callable[[], "Mapping[str, Any]"]


# ---------------------------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------------------------


class RequestError(ValueError):
    """A malformed or unanswerable request; becomes ``{"ok": false, "error": ...}``."""


class RequestHandler:
    """Turns one REP request (bytes) into one reply (bytes). Never raises.

    journal : a :class:`~caper_edge.journal.Journal` (read only here), or None
    snapshot_provider : the current basket as a snapshot table; default: the journal's latest
    reset_handler : clears the basket and returns the journaled ``basket_reset`` event; None when
        no basket is running (the reply then says so)
    status_provider : extra facts for ``ping`` (worker state, counters)
    """

    def __init__(
        self,
        journal: Any = None,
        *,
        snapshot_provider: SnapshotProvider | None = None,
        reset_handler: ResetHandler | None = None,
        status_provider: StatusProvider | None = None,
        events_since_max: int = 1000,
    ) -> None:
        self.journal = journal
        self.snapshot_provider = snapshot_provider
        self.reset_handler = reset_handler
        self.status_provider = status_provider
        self.events_since_max = events_since_max
        self.counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()

    def counts_snapshot(self) -> dict[str, int]:
        with self._counts_lock:
            return dict(self.counts)

    def _count(self, key: str) -> None:
        with self._counts_lock:
            self.counts[key] += 1

    def handle(self, frames: list[bytes]) -> bytes:
        request: dict[str, Any] = {}
        try:
            request = self._parse(frames)
            reply = self._dispatch(request)
            self._count(request["cmd"])
        except RequestError as exc:
            self._count("error")
            reply = {"ok": False, "error": str(exc)}
        except CaperError as exc:
            self._count("error")
            reply = {"ok": False, "error": str(exc)}
        except Exception as exc:  # the server must answer whatever happens
            self._count("error")
            log.exception("REP request %r failed", request.get("cmd"))
            reply = {"ok": False, "error": f"internal error: {type(exc).__name__}: {exc}"}
        if "id" in request and isinstance(request["id"], (int, str)) and not isinstance(request["id"], bool):
            reply["id"] = request["id"]
        return canonical_msgpack(reply)

    @staticmethod
    def _parse(frames: list[bytes]) -> dict[str, Any]:
        if len(frames) != 1:
            raise RequestError(f"request must be one msgpack frame, got {len(frames)} frames")
        try:
            request = decode_msgpack(frames[0], "request")
        except ValueError as exc:
            raise RequestError(str(exc)) from None
        cmd = request.get("cmd")
        if not isinstance(cmd, str):
            raise RequestError(f"request needs a string 'cmd' (snapshot, events_since, reset, ping), got {cmd!r}")
        return request

    def _dispatch(self, request: dict[str, Any]) -> dict[str, Any]:
        cmd = request["cmd"]
        if cmd == "ping":
            return self._ping()
        if cmd == "snapshot":
            return self._snapshot()
        if cmd == "events_since":
            return self._events_since(request)
        if cmd == "reset":
            return self._reset(request)
        raise RequestError(f"unknown cmd {cmd!r}: expected snapshot, events_since, reset or ping")

    def _journal_facts(self) -> dict[str, Any]:
        if self.journal is None:
            return {"last_seq": 0, "journal_id": ""}
        return {"last_seq": self.journal.last_seq, "journal_id": self.journal.journal_id}

    def _ping(self) -> dict[str, Any]:
        status = dict(self.status_provider()) if self.status_provider else {}
        return {"ok": True, "pong": True, "v": SCHEMA_VERSION, "t_ns": time.time_ns(), **self._journal_facts(), "status": status}

    def _snapshot(self) -> dict[str, Any]:
        if self.snapshot_provider is not None:
            snapshot = self.snapshot_provider()
        elif self.journal is not None:
            latest = self.journal.latest_snapshot()
            snapshot = None if latest is None else latest[1]
        else:
            snapshot = None
        return {"ok": True, "snapshot": None if snapshot is None else dict(snapshot), **self._journal_facts()}

    def _events_since(self, request: dict[str, Any]) -> dict[str, Any]:
        seq = request.get("seq")
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            raise RequestError(f"events_since needs 'seq', an integer >= 0 (the last seq you have), got {seq!r}")
        limit = request.get("limit", self.events_since_max)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise RequestError(f"events_since 'limit' must be an integer >= 1, got {limit!r}")
        limit = min(limit, self.events_since_max)
        if self.journal is None:
            raise RequestError("events_since is not available: this server has no journal")
        facts = self._journal_facts()
        first = self.journal.first_seq()
        events = self.journal.events_since(seq, limit + 1)
        more = len(events) > limit
        events = events[:limit]
        return {
            "ok": True,
            "events": [e.to_dict() for e in events],
            "more": more,
            # Events between seq+1 and first_seq-1 were pruned: take a snapshot to resync.
            "truncated": seq + 1 < first and first <= facts["last_seq"],
            "first_seq": first,
            **facts,
        }

    def _reset(self, request: dict[str, Any]) -> dict[str, Any]:
        reason = request.get("reason", "requested")
        if not isinstance(reason, str) or len(reason) > 200:
            raise RequestError(f"reset 'reason' must be a string of at most 200 characters, got {reason!r}")
        if self.reset_handler is None:
            raise RequestError("reset is not available: no basket is running")
        event = self.reset_handler(reason)
        return {"ok": True, "seq": event.seq, "event": event.to_dict()}


class RepServer:
    """The REP socket in its own thread; it owns the socket, so no other thread touches it."""

    def __init__(self, context: zmq.Context, endpoint: str, handler: RequestHandler, *, configure: Callable[[zmq.Socket], None]) -> None:
        self.endpoint = endpoint
        self.handler = handler
        self._socket = context.socket(zmq.REP)
        configure(self._socket)
        _bind(self._socket, endpoint, "publish.rep")
        self.endpoint = self._socket.last_endpoint.decode()  # resolves a wildcard port
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="caper-rep", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                if not poller.poll(100):
                    continue
                frames = self._socket.recv_multipart()
                self._socket.send(self.handler.handle(frames))
        except zmq.ZMQError as exc:
            if not self._stop.is_set():
                log.error("REP server on %s stopped: %s", self.endpoint, exc)
        finally:
            self._socket.close(linger=0)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


# ---------------------------------------------------------------------------------------------
# Sockets
# ---------------------------------------------------------------------------------------------


def _bind(socket: zmq.Socket, endpoint: str, key: str) -> None:
    if endpoint_host(endpoint).count(":") >= 1 or endpoint_host(endpoint).startswith("["):
        socket.ipv6 = True
    try:
        socket.bind(endpoint)
    except zmq.ZMQError as exc:
        socket.close(linger=0)
        raise ConfigError(f"config key {key} = {endpoint!r}: cannot bind: {exc}") from None


class EventServer:
    """PUB + REP sockets (and, when configured, the JSONL sink) of one process.

    ``publish_event`` must be called only with journaled (sequenced) events, from one thread
    at a time (a lock guards the PUB socket). ``close`` releases the sockets and the ports.
    """

    def __init__(
        self,
        cfg: PublishConfig,
        *,
        journal: Any = None,
        jsonl: JsonlSink | None = None,
        snapshot_provider: SnapshotProvider | None = None,
        reset_handler: ResetHandler | None = None,
        status_provider: StatusProvider | None = None,
        context: zmq.Context | None = None,
    ) -> None:
        self.cfg = cfg
        self.keys = self._server_keys(cfg)
        self._own_context = context is None
        self.context = zmq.Context() if context is None else context
        self._auth = None
        self._lock = threading.Lock()
        self.sent: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.jsonl = jsonl
        self.rep: RepServer | None = None
        self.pub: zmq.Socket | None = None
        try:
            if self.keys is not None:
                self._start_authenticator()
            self.pub = self.context.socket(zmq.PUB)
            self._configure(self.pub)
            self.pub.sndhwm = cfg.send_hwm
            self.pub.linger = 200  # ms: lets healthy subscribers get the last messages at close
            _bind(self.pub, cfg.pub, "publish.pub")
            self.pub_endpoint = self.pub.last_endpoint.decode()  # resolves a wildcard port
            self.handler = RequestHandler(
                journal,
                snapshot_provider=snapshot_provider,
                reset_handler=reset_handler,
                status_provider=status_provider,
                events_since_max=cfg.events_since_max,
            )
            self.rep = RepServer(self.context, cfg.rep, self.handler, configure=self._configure_rep)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _server_keys(cfg: PublishConfig) -> ServerKeys | None:
        off_loopback = [(k, e) for k, e in (("publish.pub", cfg.pub), ("publish.rep", cfg.rep)) if not endpoint_is_local(e)]
        if cfg.curve_keys:
            return load_server_keys(cfg.curve_keys)
        if off_loopback:
            key, endpoint = off_loopback[0]
            raise ConfigError(
                f"config key {key} = {endpoint!r} binds off loopback: CURVE keys are required; make them with "
                "`caper-edge keys DIR` and set publish.curve_keys = DIR"
            )
        if cfg.curve_on_loopback:
            raise ConfigError("config key publish.curve_on_loopback = true needs publish.curve_keys (a folder from `caper-edge keys`)")
        return None

    def _start_authenticator(self) -> None:
        from zmq.auth.thread import ThreadAuthenticator

        assert self.keys is not None
        self._auth = ThreadAuthenticator(self.context, log=logging.getLogger("caper_edge.publish.zap"))
        self._auth.start()
        # Loaded once: restart the service after adding a client key.
        self._auth.configure_curve(domain=ZAP_DOMAIN.decode(), location=str(self.keys.authorized_dir))

    def _configure(self, socket: zmq.Socket) -> None:
        if self.cfg.heartbeat_ivl_ms:
            socket.heartbeat_ivl = self.cfg.heartbeat_ivl_ms
            socket.heartbeat_timeout = 3 * self.cfg.heartbeat_ivl_ms
        if self.keys is not None:
            socket.zap_domain = ZAP_DOMAIN
            socket.curve_secretkey = self.keys.secret
            socket.curve_publickey = self.keys.public
            socket.curve_server = True

    def _configure_rep(self, socket: zmq.Socket) -> None:
        self._configure(socket)
        socket.maxmsgsize = self.cfg.max_request_bytes
        socket.linger = 0

    # -- sending ------------------------------------------------------------------------------

    def _send(self, topic: bytes, payload: bytes) -> bool:
        name = topic.decode()
        with self._lock:
            if self.pub is None:
                raise CaperError("event server is closed")
            try:
                self.pub.send_multipart([topic, payload], flags=zmq.NOBLOCK)
            except zmq.Again:
                self.dropped[name] += 1
                return False
            self.sent[name] += 1
        return True

    def publish_event(self, event: Event, snapshot: BasketSnapshot | Mapping[str, Any] | None = None) -> None:
        """JSONL (when configured) then PUB; then the snapshot, when given."""
        payload = event.to_msgpack()  # raises for a draft: only journaled events go out
        if self.jsonl is not None:
            self.jsonl.write(event)
        self._send(TOPIC_EVENT, payload)
        if snapshot is not None:
            self.publish_snapshot(snapshot)

    def publish_snapshot(self, snapshot: BasketSnapshot | Mapping[str, Any]) -> None:
        body = snapshot.to_dict() if isinstance(snapshot, BasketSnapshot) else dict(snapshot)
        self._send(TOPIC_SNAPSHOT, canonical_msgpack(body))

    def publish_health(self, health: Mapping[str, Any]) -> None:
        self._send(TOPIC_HEALTH, canonical_msgpack(dict(health)))

    @property
    def rep_endpoint(self) -> str:
        return self.rep.endpoint if self.rep else ""

    def stats(self) -> dict[str, Any]:
        with self._lock:
            sent, dropped = dict(self.sent), dict(self.dropped)
        return {
            "sent": sent,
            "dropped": dropped,
            "requests": self.handler.counts_snapshot() if self.rep else {},
            "jsonl_lines": self.jsonl.lines_written if self.jsonl else 0,
            "jsonl_behind": bool(self.jsonl and self.jsonl.behind),
        }

    def close(self) -> None:
        if self.rep is not None:
            self.rep.close()
            self.rep = None
        with self._lock:
            if self.pub is not None:
                self.pub.close()
                self.pub = None
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        if self.jsonl is not None:
            self.jsonl.close()
        if self._own_context:
            self.context.term()

    def __enter__(self) -> EventServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------
# JSONL
# ---------------------------------------------------------------------------------------------


class JsonlSink:
    """One canonical JSON event per line, flushed per event.

    mode "append" (the service): an existing file is continued. A line cut by a crash is
    removed, and :meth:`catch_up` writes the journaled events the file lacks, so the file ends
    up holding each event exactly once, in order. mode "truncate" (replay): the file starts empty.

    fsync "never": flush only; the journal is the durable record and the file is completed from
    it at the next start. "always": one fsync per event (a reader on another machine via NFS...).
    """

    def __init__(self, path: str | os.PathLike[str], *, mode: Literal["append", "truncate"] = "append",
                 fsync: Literal["never", "always"] = "never") -> None:
        if fsync not in ("never", "always"):
            raise ValueError(f"jsonl fsync = {fsync!r}: expected 'never' or 'always'")
        self.path = Path(path)
        self.fsync = fsync
        self.last_seq = 0
        self.lines_written = 0
        self.behind = False  # a write failed: events are skipped until catch_up()
        self.last_error: str | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if mode == "append" and self.path.exists():
                self.last_seq = self._repair_tail()
                self._file = open(self.path, "a", encoding="utf-8")
            elif mode in ("append", "truncate"):
                self._file = open(self.path, "w", encoding="utf-8")
            else:
                raise ValueError(f"jsonl mode = {mode!r}: expected 'append' or 'truncate'")
        except OSError as exc:
            raise InputError(f"events file {self.path} cannot be opened for writing: {exc}") from None

    def _repair_tail(self) -> int:
        """Drop a partial last line; return the seq of the last complete one (0: empty file)."""
        with open(self.path, "r+b") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return 0
            tail_start = max(0, size - 65536)
            f.seek(tail_start)
            tail = f.read()
            if not tail.endswith(b"\n"):
                cut = tail.rfind(b"\n")
                keep = tail_start + cut + 1 if cut >= 0 else tail_start
                if cut < 0 and tail_start > 0:
                    raise InputError(f"events file {self.path}: last line is longer than 64 KiB; not an events file?")
                log.warning("events file %s ended in a partial line (crash while writing); removed %d bytes",
                            self.path, size - keep)
                f.truncate(keep)
                tail = tail[: keep - tail_start]
            lines = tail.rstrip(b"\n").split(b"\n")
            last = lines[-1] if lines and lines[-1] else b""
        if not last:
            return 0
        try:
            return int(Event.from_json_line(last.decode("utf-8")).seq or 0)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"events file {self.path}: the last line is not an event ({exc}); move the file away") from None

    def catch_up(self, journal: Any) -> int:
        """Write the journaled events after the file's last seq; returns how many.

        Also how a sink that fell :attr:`behind` (a failed write, e.g. disk full) recovers: the
        cut line is removed and the missing events are written from the journal, in order.
        When the file is ahead of the journal, the journal was replaced (it was corrupt): the
        file is moved aside to ``<name>.before-<journal_id>`` and a new one is started.
        """
        if self.behind:
            try:
                self._file.close()
                self.last_seq = self._repair_tail()
                self._file = open(self.path, "a", encoding="utf-8")
            except OSError as exc:
                self.last_error = str(exc)
                return 0
            self.behind = False
        if self.last_seq > journal.last_seq:
            aside = self.path.with_name(f"{self.path.name}.before-{journal.journal_id}")
            self._file.close()
            os.replace(self.path, aside)
            log.error("events file %s is ahead of the journal (seq %d > %d): the journal was replaced; "
                      "moved the file to %s", self.path, self.last_seq, journal.last_seq, aside)
            self._file = open(self.path, "w", encoding="utf-8")
            self.last_seq = 0
        written = 0
        while True:
            batch = journal.events_since(self.last_seq, 1000)
            if not batch:
                return written
            for event in batch:
                if not self.write(event):
                    return written
                written += 1

    def write(self, event: Event) -> bool:
        """Append ``event`` unless the file already has it (seq not above the last); flush.

        A failed write (disk full, I/O error) never raises: it is logged, the sink is marked
        :attr:`behind` and skips events until :meth:`catch_up` fills the gap from the journal
        (the supervisor retries every second), so the file never has a hole. PUB goes on.
        """
        if event.seq is None or event.seq <= self.last_seq or self.behind:
            return False
        try:
            self._file.write(event.to_json_line())
            self._file.flush()
            if self.fsync == "always":
                os.fsync(self._file.fileno())
        except OSError as exc:
            self.behind = True
            self.last_error = f"cannot write event seq {event.seq}: {exc}"
            log.error("events file %s: %s; catching up from the journal once writable", self.path, self.last_error)
            return False
        self.last_seq = event.seq
        self.lines_written += 1
        return True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()


# ---------------------------------------------------------------------------------------------
# Journal -> publishers
# ---------------------------------------------------------------------------------------------


class JournalFollower:
    """Publishes what the journal holds beyond ``published_seq``, in order, each event once.

    Used where one process commits (the worker) and another publishes (the supervisor): the
    worker's "committed up to N" notice triggers :meth:`poll`, and a periodic poll covers a
    notice lost in a crash, so an event committed just before a crash still goes out.
    """

    def __init__(self, journal: Any, server: EventServer, *, start_seq: int | None = None) -> None:
        self.journal = journal
        self.server = server
        self.published_seq = journal.last_seq if start_seq is None else start_seq

    def poll(self) -> int:
        published = 0
        while True:
            batch = self.journal.events_since(self.published_seq, 500)
            if not batch:
                break
            for event in batch:
                self.server.publish_event(event)
                self.published_seq = event.seq
                published += 1
        if published:
            latest = self.journal.latest_snapshot()
            if latest is not None and latest[0] == self.published_seq:
                self.server.publish_snapshot(latest[1])
        return published


class EventOutlet:
    """The single-process path (replay, demo): journal, then JSONL, then PUB, in one call.

    ``commit(event, snapshot)`` has the same signature as :meth:`caper_edge.worker.WorkerContext.commit`,
    so fusion calls the same thing under the supervisor and in a replay.
    """

    def __init__(self, journal: Any, *, server: EventServer | None = None, jsonl: JsonlSink | None = None) -> None:
        if server is not None and jsonl is not None and server.jsonl is not None:
            raise ValueError("give the JSONL sink to the EventOutlet or to the EventServer, not both")
        self.journal = journal
        self.server = server
        self.jsonl = jsonl

    def commit(self, event: Event, snapshot: BasketSnapshot | Mapping[str, Any] | None = None) -> Event:
        body = snapshot.to_dict() if isinstance(snapshot, BasketSnapshot) else snapshot
        committed = self.journal.append(event, body)
        if body is not None and "seq" in body:
            body = {**body, "seq": committed.seq}
        if self.jsonl is not None:
            self.jsonl.write(committed)
        if self.server is not None:
            self.server.publish_event(committed, body)
        return committed
