"""Recover the messages of a damaged rosbag2 SQLite file (``.db3``) row by row.

``rosbags`` opens a ``.db3`` with summary queries (message counts per topic, time range) that
touch every page, so one bad page or a file cut short refuses the whole bag. Here the small
tables (topics, message definitions) are read first, then the messages table in row-id order
(the order a recorder inserted them, which is time order) in batches; at the first unreadable
batch the rows are tried one at a time to find exactly where the damage starts.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Db3Scan", "scan_db3"]

BATCH = 256


@dataclass
class Db3Scan:
    path: Path
    topics: dict[int, tuple[str, str]] = field(default_factory=dict)    # id -> (name, type)
    definitions: dict[str, tuple[str, str]] = field(default_factory=dict)  # type -> (encoding, text)
    damage: str | None = None
    damage_row: int | None = None


def _connect(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    # A file cut short is shorter than its header says; SQLite refuses such a file unless the
    # schema is "writable" (read-only here all the same: mode=ro).
    con.execute("PRAGMA writable_schema=ON")
    return con


def open_db3(path: Path) -> Db3Scan:
    """Read the topics (and message definitions when present); raises sqlite3.Error if even that fails."""
    scan = Db3Scan(path)
    con = _connect(path)
    try:
        for tid, name, typ in con.execute("SELECT id, name, type FROM topics ORDER BY id"):
            scan.topics[int(tid)] = (str(name), str(typ))
        try:
            for typ, enc, text in con.execute("SELECT topic_type, encoding, encoded_message_definition FROM message_definitions"):
                scan.definitions[str(typ)] = (str(enc), str(text))
        except sqlite3.Error:
            pass  # older schemas have no definitions table; the default types apply
    finally:
        con.close()
    return scan


def scan_db3(scan: Db3Scan) -> Iterator[tuple[int, int, bytes]]:
    """Yield ``(topic_id, timestamp_ns, cdr_bytes)`` in row-id order up to the first damaged row;
    ``scan.damage`` / ``scan.damage_row`` then say where and why it stopped."""
    con = _connect(scan.path)
    last = -1
    try:
        while True:
            try:
                rows = con.execute("SELECT id, topic_id, timestamp, data FROM messages WHERE id > ? ORDER BY id LIMIT ?", (last, BATCH)).fetchall()
            except sqlite3.Error as exc:
                yield from _one_by_one(con, scan, last, exc)
                return
            if not rows:
                return
            for rid, tid, t, data in rows:
                last = int(rid)
                yield int(tid), int(t), bytes(data)
    finally:
        con.close()


def _one_by_one(con: sqlite3.Connection, scan: Db3Scan, last: int, batch_error: Exception) -> Iterator[tuple[int, int, bytes]]:
    rid = last + 1
    for _ in range(BATCH):
        try:
            row = con.execute("SELECT topic_id, timestamp, data FROM messages WHERE id = ?", (rid,)).fetchone()
        except sqlite3.Error as exc:
            scan.damage, scan.damage_row = f"SQLite page damaged at message row {rid}: {exc}", rid
            return
        if row is not None:
            yield int(row[0]), int(row[1]), bytes(row[2])
        rid += 1
    scan.damage, scan.damage_row = f"SQLite damaged after message row {last}: {batch_error}", last + 1
