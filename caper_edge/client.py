"""Subscriber side of the basket-event contract: what ``caper-edge listen`` is built on.

:class:`EventClient` holds a SUB socket and a REQ socket. :class:`EventFollower` turns them into a
gap-free stream: every event exactly once, in ``seq`` order. It notices a gap from the next
event's ``seq`` or from the journal's ``last_seq`` in the 1 Hz ``health`` message (so even a lost
*final* event is noticed), and fills it with ``events_since`` from the journal. A cart UI in
Python can use these classes as they are; docs/events.md describes the same algorithm for others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import zmq

from .curve import ClientKeys, endpoint_host
from .errors import CaperError
from .events import Event, canonical_msgpack, decode_msgpack
from .publish import TOPIC_EVENT, TOPIC_HEALTH, TOPIC_SNAPSHOT

__all__ = ["EventClient", "EventFollower", "Update", "ServerUnavailable"]

log = logging.getLogger("caper_edge.client")


class ServerUnavailable(CaperError):
    """The REP endpoint did not answer in time."""


class EventClient:
    """SUB + REQ sockets to one caper-edge server. Not thread-safe: use from one thread."""

    def __init__(
        self,
        pub: str,
        rep: str,
        *,
        keys: ClientKeys | None = None,
        topics: Iterable[bytes] = (TOPIC_EVENT, TOPIC_SNAPSHOT, TOPIC_HEALTH),
        timeout_s: float = 2.0,
        context: zmq.Context | None = None,
    ) -> None:
        self.pub_endpoint, self.rep_endpoint = pub, rep
        self.keys = keys
        self.timeout_s = timeout_s
        self._own_context = context is None
        self.context = zmq.Context() if context is None else context
        self.sub = self._socket(zmq.SUB, pub)
        for topic in topics:
            self.sub.setsockopt(zmq.SUBSCRIBE, topic)
        self.req = self._socket(zmq.REQ, rep)

    def _socket(self, kind: int, endpoint: str) -> zmq.Socket:
        socket = self.context.socket(kind)
        socket.linger = 0
        if ":" in endpoint_host(endpoint):
            socket.ipv6 = True
        if self.keys is not None:
            socket.curve_secretkey = self.keys.secret
            socket.curve_publickey = self.keys.public
            socket.curve_serverkey = self.keys.server_public
        socket.connect(endpoint)
        return socket

    def request(self, cmd: str, **fields: Any) -> dict[str, Any]:
        """Send one request, return the reply; :class:`ServerUnavailable` after ``timeout_s``."""
        timeout_ms = int(self.timeout_s * 1000)
        # A REQ socket whose peer never completed the handshake (server down, CURVE refused)
        # blocks in send, not in recv: bound both.
        self.req.sndtimeo = timeout_ms
        try:
            self.req.send(canonical_msgpack({"cmd": cmd, **fields}))
            answered = bool(self.req.poll(timeout_ms))
        except zmq.Again:
            answered = False
        if not answered:
            # A REQ socket that sent and got no reply cannot send again: start a new one.
            self.req.close(linger=0)
            self.req = self._socket(zmq.REQ, self.rep_endpoint)
            raise ServerUnavailable(f"no reply from {self.rep_endpoint} to {cmd!r} within {self.timeout_s:g} s")
        return decode_msgpack(self.req.recv(), "reply")

    def recv(self, timeout_s: float) -> tuple[bytes, dict[str, Any]] | None:
        """One (topic, payload) from the SUB socket, or None after ``timeout_s``."""
        if not self.sub.poll(int(timeout_s * 1000)):
            return None
        frames = self.sub.recv_multipart()
        if len(frames) != 2:
            log.warning("ignoring a %d-frame message on %s", len(frames), self.pub_endpoint)
            return None
        try:
            return frames[0], decode_msgpack(frames[1], f"{frames[0].decode(errors='replace')} payload")
        except ValueError as exc:
            log.warning("ignoring a bad message: %s", exc)
            return None

    def close(self) -> None:
        self.sub.close(linger=0)
        self.req.close(linger=0)
        if self._own_context:
            self.context.term()

    def __enter__(self) -> EventClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Update:
    """One thing the follower delivers: kind is "event", "snapshot", "health" or "resync"."""

    kind: str
    event: Event | None = None
    data: dict[str, Any] | None = None
    recovered: bool = False  # an event fetched with events_since rather than received on PUB


class EventFollower:
    """Every event exactly once, in seq order, whatever the PUB socket dropped.

    since : deliver events after this seq; None: only events after the server's current last_seq.
    A "resync" update (data: the new snapshot reply) tells that the server's journal was replaced
    (journal_id changed): the basket must be taken from the snapshot, seq starts over.
    """

    def __init__(self, client: EventClient, *, since: int | None = None) -> None:
        self.client = client
        self.last_seq: int | None = since
        self.journal_id: str | None = None
        self.recovered = 0
        self.connected = False
        self._pending: list[Update] = []

    def _sync(self) -> None:
        """Learn the server's journal and catch up; quiet when the server is down."""
        try:
            reply = self.client.request("ping")
        except ServerUnavailable:
            self.connected = False
            return
        self.connected = True
        self._check_journal(reply.get("journal_id", ""), reply.get("last_seq", 0))

    def _check_journal(self, journal_id: str, last_seq: int) -> None:
        if self.journal_id is None:
            self.journal_id = journal_id
            if self.last_seq is None:
                self.last_seq = last_seq
        elif journal_id and journal_id != self.journal_id:
            self.journal_id = journal_id
            snap = self._try("snapshot")
            self.last_seq = 0 if snap is None else snap.get("last_seq", 0)
            self._pending.append(Update("resync", data=snap))
            return
        if self.last_seq is not None and last_seq > self.last_seq:
            self._recover(last_seq)

    def _try(self, cmd: str, **fields: Any) -> dict[str, Any] | None:
        try:
            reply = self.client.request(cmd, **fields)
        except ServerUnavailable:
            self.connected = False
            return None
        self.connected = True
        return reply if reply.get("ok") else None

    def _recover(self, upto: int) -> None:
        """Fetch events (last_seq, upto] from the journal."""
        assert self.last_seq is not None
        while self.last_seq < upto:
            reply = self._try("events_since", seq=self.last_seq)
            if reply is None:
                return
            if reply.get("truncated"):
                log.warning("events after seq %d were pruned from the journal; taking a snapshot", self.last_seq)
                self._pending.append(Update("resync", data=self._try("snapshot")))
            events = [Event.from_dict(e) for e in reply.get("events", [])]
            for event in events:
                self._deliver(event, recovered=True)
            if not events or not reply.get("more"):
                return

    def _deliver(self, event: Event, *, recovered: bool = False) -> None:
        assert event.seq is not None
        if self.last_seq is not None and event.seq <= self.last_seq:
            return  # already delivered
        self.last_seq = event.seq
        self.recovered += recovered
        self._pending.append(Update("event", event=event, recovered=recovered))

    def poll(self, timeout_s: float = 0.5) -> list[Update]:
        """Whatever arrived within ``timeout_s`` (or was recovered), in order."""
        if self.journal_id is None:
            self._sync()
        deadline = time.monotonic() + timeout_s
        while not self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            message = self.client.recv(remaining)
            if message is None:
                continue
            self._handle(*message)
            if self._pending:
                # Drain whatever else is already queued without waiting.
                while (message := self.client.recv(0)) is not None:
                    self._handle(*message)
        out, self._pending = self._pending, []
        return out

    def _handle(self, topic: bytes, payload: dict[str, Any]) -> None:
        if topic == TOPIC_EVENT:
            try:
                event = Event.from_dict(payload)
            except ValueError as exc:
                log.warning("ignoring an invalid event: %s", exc)
                return
            if self.journal_id is None:
                self._sync()
            if self.last_seq is not None and event.seq is not None and event.seq > self.last_seq + 1:
                self._recover(event.seq - 1)
            self._deliver(event)
        elif topic == TOPIC_SNAPSHOT:
            self._pending.append(Update("snapshot", data=payload))
        elif topic == TOPIC_HEALTH:
            journal = payload.get("journal") or {}
            if isinstance(journal, dict) and isinstance(journal.get("last_seq"), int):
                self._check_journal(str(journal.get("journal_id", "")), journal["last_seq"])
            self._pending.append(Update("health", data=payload))
