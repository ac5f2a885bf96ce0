"""The event journal: SQLite in WAL mode, the durable record of every basket event.

An event is committed here *before* anybody else sees it (PUB, REP, JSONL); ``seq`` is assigned
here, strictly increasing and continuing across restarts. Fusion's basket snapshot can be
committed in the same transaction as the event that produced it, so a restart restores a basket
that is exactly consistent with the last journaled event (:meth:`Journal.restore`).

The journal is generic: it stores events (canonical JSON text, readable with the ``sqlite3``
shell) and opaque snapshot tables (whatever mapping fusion gives, usually
``BasketSnapshot.to_dict()``). It knows nothing of basket rules.

Durability: ``synchronous = FULL`` (the default) fsyncs the WAL at every commit, so an event
reported committed survives a power cut; ``NORMAL`` survives a crash of the process but may lose
the last commits on power loss. A cart loses power abruptly and events are a few per minute, so
one fsync per event costs nothing that matters: FULL is the default.

Failures:
- a full disk (or the optional size cap) raises :class:`JournalFullError`; the failed event is not
  journaled, nothing committed before is lost, and ``seq`` does not advance;
- a corrupt file found at open is moved aside (``<name>.corrupt-<UTC time>``, with its -wal/-shm),
  logged at ERROR with both paths, and a new journal is started holding every event and the
  latest snapshot that could still be read from the damaged one, so ``seq`` continues after them.
  The new journal gets a new ``journal_id`` so that clients know to refetch the basket.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .errors import CaperError
from .events import Event, canonical_json

__all__ = [
    "Journal",
    "Restored",
    "JournalError",
    "JournalFullError",
    "JournalCorruptError",
    "default_journal_path",
]

log = logging.getLogger("caper_edge.journal")

SCHEMA_VERSION = 1
_KEEP_SNAPSHOTS = 4  # older snapshots serve nobody once a newer one is committed

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY, t_ns INTEGER NOT NULL, type TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS snapshots (
    seq INTEGER PRIMARY KEY, t_ns INTEGER NOT NULL, body TEXT NOT NULL);
"""


class JournalError(CaperError):
    """The journal cannot be opened, read or written."""


class JournalFullError(JournalError):
    """The disk (or the configured size cap) is full; the event was not journaled."""


class JournalCorruptError(JournalError):
    """The journal file went bad while running; the next open moves it aside."""


@dataclass(frozen=True)
class Restored:
    """What a restarting process needs: the latest snapshot and the events after it."""

    last_seq: int
    snapshot: dict[str, Any] | None  # the opaque table given to append()/put_snapshot()
    snapshot_seq: int  # the seq the snapshot reflects (0 when there is none)
    events_after: list[Event]  # events with seq > snapshot_seq, in order


def default_journal_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$STATE_DIRECTORY`` (systemd's StateDirectory=) or the XDG state dir, + journal.sqlite3."""
    env = os.environ if environ is None else environ
    state = env.get("STATE_DIRECTORY", "").split(":")[0]
    if state:
        return Path(state) / "journal.sqlite3"
    xdg = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".local" / "state")
    return Path(xdg) / "caper-edge" / "journal.sqlite3"


def _errorname(exc: BaseException) -> str:
    return getattr(exc, "sqlite_errorname", "") or ""


def _is_full(exc: BaseException) -> bool:
    return _errorname(exc) == "SQLITE_FULL" or "database or disk is full" in str(exc)


def _is_corrupt(exc: BaseException) -> bool:
    name = _errorname(exc)
    if name:
        return name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)


class Journal:
    """One journal file. Thread-safe (one connection behind a lock); several processes may open
    the same file (WAL), but only one should append at a time (the worker); others read.
    ``path = ":memory:"`` gives a private in-memory journal (replay: seq starts at 1 each run)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        max_size_bytes: int = 0,
    ) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"journal synchronous = {synchronous!r}: expected 'FULL' or 'NORMAL'")
        if max_size_bytes < 0:
            raise ValueError(f"journal max_size_bytes = {max_size_bytes}: expected >= 0 (0: no cap)")
        self.path = Path(path)
        self._synchronous = synchronous
        self._max_size_bytes = max_size_bytes
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = self._open_or_recover()
        self._inode = self._current_inode()
        self.journal_id: str = self._meta("journal_id") or ""

    def _current_inode(self) -> int:
        if self.in_memory:
            return -1
        try:
            return os.stat(self.path).st_ino
        except OSError:
            return -1

    def reopen_if_replaced(self) -> bool:
        """Reopen when another process moved the file aside and started a new one (a reader in
        another process keeps reading the old inode otherwise). Returns True when reopened."""
        inode = self._current_inode()
        if inode == self._inode or inode == -1:
            return False
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
            self._conn = self._open_or_recover()
        self._inode = self._current_inode()
        self.journal_id = self._meta("journal_id") or ""
        log.warning("journal %s was replaced by another process; reopened (journal_id %s)", self.path, self.journal_id)
        return True

    # -- opening ------------------------------------------------------------------------------

    @property
    def in_memory(self) -> bool:
        return str(self.path) == ":memory:"

    def _open_or_recover(self) -> sqlite3.Connection:
        if self.in_memory:  # replay / tests: one process, nothing to survive
            return self._open_checked()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(f"journal directory {self.path.parent} cannot be created: {exc}") from None
        try:
            return self._open_checked()
        except sqlite3.DatabaseError as exc:
            if not _is_corrupt(exc):
                raise JournalError(f"journal {self.path} cannot be opened: {exc}") from None
            reason = str(exc)
        aside = self._move_aside(reason)
        conn = self._open_checked()
        self._salvage_into(conn, aside)
        return conn

    def _open_checked(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != ("memory" if self.in_memory else "wal"):
                raise JournalError(f"journal {self.path}: the filesystem does not support WAL mode (got {mode})")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {check}")
            if self._max_size_bytes:
                page_size = conn.execute("PRAGMA page_size").fetchone()[0]
                conn.execute(f"PRAGMA max_page_count={max(1, self._max_size_bytes // page_size)}")
            self._init_schema(conn)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.DatabaseError) and _is_full(exc):
                raise JournalFullError(f"journal {self.path}: disk full while creating the journal") from None
            raise
        return conn

    @staticmethod
    def _init_schema(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(statement)
            conn.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('journal_id', ?), ('last_seq', '0'), "
                "('created_ns', ?)",
                (uuid.uuid4().hex, str(time.time_ns())),
            )
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise

    def _move_aside(self, reason: str) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while aside.exists():
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
            n += 1
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                os.replace(src, f"{aside}{suffix}")
        log.error(
            "journal %s is corrupt (%s); moved it aside to %s and starting a new journal with what "
            "can still be read from it",
            self.path,
            reason,
            aside,
            extra={"fields": {"journal": str(self.path), "moved_to": str(aside), "reason": reason}},
        )
        return aside

    def _salvage_into(self, conn: sqlite3.Connection, aside: Path) -> None:
        """Copy every readable event and the latest readable snapshot of ``aside`` into ``conn``."""
        events, snapshot, last_seq = _read_salvageable(aside)
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("INSERT INTO events(seq, t_ns, type, body) VALUES (?, ?, ?, ?)", events)
            if snapshot is not None:
                conn.execute("INSERT INTO snapshots(seq, t_ns, body) VALUES (?, ?, ?)", snapshot)
            top = max([last_seq] + [row[0] for row in events])
            conn.execute("UPDATE meta SET value = ? WHERE key = 'last_seq'", (str(top),))
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        log.error(
            "journal %s: recovered %d event(s) up to seq %d%s from %s",
            self.path,
            len(events),
            top,
            " and the latest snapshot" if snapshot is not None else "",
            aside,
            extra={"fields": {"journal": str(self.path), "recovered_events": len(events), "last_seq": top}},
        )

    # -- internals ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self, action: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise self._translate(exc, action) from None
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def _reading(self, action: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._connection()
            except sqlite3.Error as exc:
                raise self._translate(exc, action) from None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise JournalError(f"journal {self.path} is closed")
        return self._conn

    def _translate(self, exc: sqlite3.Error, action: str) -> JournalError:
        if _is_full(exc):
            cap = f" (size cap {self._max_size_bytes} bytes)" if self._max_size_bytes else ""
            return JournalFullError(
                f"journal {self.path}: disk full{cap} while {action}; that was not journaled, every "
                f"event committed before is intact; free space on {self.path.parent}"
            )
        if _is_corrupt(exc):
            return JournalCorruptError(f"journal {self.path} is corrupt ({exc}) while {action}")
        return JournalError(f"journal {self.path}: {exc} while {action}")

    def _meta(self, key: str) -> str | None:
        with self._reading(f"reading {key}") as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    # -- writing ------------------------------------------------------------------------------

    def append(self, event: Event, snapshot: Mapping[str, Any] | None = None) -> Event:
        """Commit ``event`` (a draft) with the next ``seq``, and optionally the basket ``snapshot``
        it leads to, in one durable transaction. Returns the sequenced event.

        ``snapshot`` is stored as given (canonical JSON) with its ``seq`` set to the event's.
        """
        if not isinstance(event, Event):
            raise TypeError(f"journal append takes an Event, got {type(event).__name__}")
        with self._transaction(f"appending a {event.type} event") as conn:
            last = int(conn.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()[0])
            sequenced = event.with_seq(last + 1)
            conn.execute(
                "INSERT INTO events(seq, t_ns, type, body) VALUES (?, ?, ?, ?)",
                (sequenced.seq, sequenced.t_ns, sequenced.type, canonical_json(sequenced.to_dict())),
            )
            conn.execute("UPDATE meta SET value = ? WHERE key = 'last_seq'", (str(sequenced.seq),))
            if snapshot is not None:
                self._insert_snapshot(conn, sequenced.seq, sequenced.t_ns, snapshot)
        return sequenced

    def put_snapshot(self, snapshot: Mapping[str, Any], *, t_ns: int) -> int:
        """Commit a snapshot reflecting every event journaled so far; returns that seq."""
        with self._transaction("writing a snapshot") as conn:
            last = int(conn.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()[0])
            self._insert_snapshot(conn, last, t_ns, snapshot)
        return last

    @staticmethod
    def _insert_snapshot(conn: sqlite3.Connection, seq: int, t_ns: int, snapshot: Mapping[str, Any]) -> None:
        body = dict(snapshot)
        if "seq" in body:
            body["seq"] = seq
        conn.execute("INSERT OR REPLACE INTO snapshots(seq, t_ns, body) VALUES (?, ?, ?)", (seq, t_ns, canonical_json(body)))
        conn.execute(
            "DELETE FROM snapshots WHERE seq NOT IN (SELECT seq FROM snapshots ORDER BY seq DESC LIMIT ?)",
            (_KEEP_SNAPSHOTS,),
        )

    def prune(self, retain_events: int) -> int:
        """Delete events older than both the latest snapshot and the newest ``retain_events``;
        returns how many were deleted. ``seq`` never goes back (it lives in ``meta``)."""
        if retain_events < 0:
            raise ValueError(f"retain_events = {retain_events}: expected >= 0")
        with self._transaction("pruning old events") as conn:
            last = int(conn.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()[0])
            snap = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM snapshots").fetchone()[0]
            cutoff = min(snap, last - retain_events)
            cur = conn.execute("DELETE FROM events WHERE seq <= ?", (cutoff,))
            return cur.rowcount

    # -- reading ------------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """The seq of the newest committed event (0 when none ever was); read from the file, so
        it is current in a process that only reads."""
        return int(self._meta("last_seq") or 0)

    def first_seq(self) -> int:
        """The oldest seq still held (pruning removes older ones); last_seq + 1 when empty."""
        with self._reading("reading the oldest event") as conn:
            row = conn.execute("SELECT MIN(seq) FROM events").fetchone()
        return self.last_seq + 1 if row[0] is None else int(row[0])

    def events_since(self, seq: int, limit: int | None = None) -> list[Event]:
        """Events with ``seq`` greater than ``seq``, oldest first, at most ``limit``."""
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            raise ValueError(f"events_since seq = {seq!r}: expected an integer >= 0")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValueError(f"events_since limit = {limit!r}: expected an integer >= 1")
        with self._reading(f"reading events after seq {seq}") as conn:
            rows = conn.execute(
                "SELECT body FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (seq, -1 if limit is None else limit)
            ).fetchall()
        return [Event.from_json_line(body) for (body,) in rows]

    def latest_snapshot(self) -> tuple[int, dict[str, Any]] | None:
        """(seq it reflects, the snapshot table) or None when none was committed."""
        with self._reading("reading the latest snapshot") as conn:
            row = conn.execute("SELECT seq, body FROM snapshots ORDER BY seq DESC LIMIT 1").fetchone()
        return None if row is None else (int(row[0]), json.loads(row[1]))

    def restore(self) -> Restored:
        """The latest snapshot and the events after it: what fusion replays on restart."""
        latest = self.latest_snapshot()
        snap_seq, snapshot = (0, None) if latest is None else latest
        return Restored(self.last_seq, snapshot, snap_seq, self.events_since(snap_seq))

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
                self._conn = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_salvageable(path: Path) -> tuple[list[tuple[int, int, str, str]], tuple[int, int, str] | None, int]:
    """Whatever rows of a damaged journal can still be read: events, latest snapshot, last_seq."""
    events: list[tuple[int, int, str, str]] = []
    snapshot = None
    last_seq = 0
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return events, snapshot, last_seq
    try:
        with contextlib.suppress(sqlite3.Error, ValueError):
            last_seq = int(conn.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()[0])
        top = last_seq
        with contextlib.suppress(sqlite3.Error, TypeError):
            top = max(top, int(conn.execute("SELECT MAX(seq) FROM events").fetchone()[0]))
        # Read in chunks; a chunk that hits a damaged page is re-read row by row, so only the
        # rows stored on damaged pages are lost.
        chunk = 256
        for start in range(1, top + 1, chunk):
            query = "SELECT seq, t_ns, type, body FROM events WHERE seq BETWEEN ? AND ? ORDER BY seq"
            try:
                rows = conn.execute(query, (start, start + chunk - 1)).fetchall()
            except sqlite3.Error:
                rows = []
                for seq in range(start, start + chunk):
                    with contextlib.suppress(sqlite3.Error):
                        rows += conn.execute(query, (seq, seq)).fetchall()
            for row in rows:
                try:
                    Event.from_json_line(row[3])
                except (ValueError, TypeError):
                    continue  # a damaged body is not worth keeping
                events.append((int(row[0]), int(row[1]), str(row[2]), str(row[3])))
        with contextlib.suppress(sqlite3.Error, TypeError):
            row = conn.execute("SELECT seq, t_ns, body FROM snapshots ORDER BY seq DESC LIMIT 1").fetchone()
            if row is not None:
                snapshot = (int(row[0]), int(row[1]), str(row[2]))
    finally:
        conn.close()
    return events, snapshot, last_seq
