"""Read sensor bags: rosbag2 (MCAP or SQLite), ROS 1 ``.bag``, librealsense recordings.

A bag argument may be a rosbag2 directory (with ``metadata.yaml``), a single ``.mcap``, ``.db3``
or ``.bag`` file, or a directory of such bags (a recorder session, or a bag directory whose
``metadata.yaml`` was lost in a crash); several bags are merged in time order.

Reading is done by ``rosbags``. Damage is handled here, so that everything before it is still
read: an MCAP file without a footer (cut short) is scanned record by record
(:mod:`caper_edge.bags.mcap_salvage`); an error while iterating (corrupt SQLite page, broken chunk)
ends that file at the last good message; a message that does not deserialize is skipped and
counted. Each problem becomes a :class:`Damage` naming the file, the topic and the position, and
:meth:`BagReader.messages` raises :class:`~caper_edge.errors.InputError` with all of them once
everything readable has been yielded.
"""

from __future__ import annotations

import heapq
import itertools
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore

from ..errors import InputError
from . import db3_salvage, mcap_salvage

__all__ = ["BagMessage", "BagReader", "Damage", "TopicInfo", "expand_bag_paths"]

BAG_SUFFIXES = (".mcap", ".db3", ".bag")


@dataclass(frozen=True)
class TopicInfo:
    """One topic: its message type and message count (None while unknown)."""

    topic: str
    msgtype: str
    count: int | None


@dataclass(frozen=True)
class Damage:
    """Something in a bag that could not be read: where, on which topic, and why."""

    file: Path
    topic: str | None
    position: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.reason} [topic: {self.topic or 'unknown'}; position: {self.position}]"


class BagMessage:
    """One message: topic, type, log time (ns) and the serialized bytes; ``msg`` once decoded."""

    __slots__ = ("file", "index", "msg", "msgtype", "raw", "t_ns", "topic")

    def __init__(self, topic: str, msgtype: str, t_ns: int, raw: bytes, file: Path, index: int, msg: Any = None):
        self.topic = topic
        self.msgtype = msgtype
        self.t_ns = t_ns
        self.raw = raw
        self.file = file
        self.index = index
        self.msg = msg

    def __repr__(self) -> str:
        return f"BagMessage({self.topic!r}, {self.msgtype!r}, t_ns={self.t_ns}, {len(self.raw)} bytes)"


def expand_bag_paths(path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The bag files/directories a bag argument stands for (see the module docstring)."""
    if isinstance(path, (str, os.PathLike)):
        paths = [Path(path)]
    else:
        paths = [Path(p) for p in path]
    out: list[Path] = []
    for p in paths:
        if not p.exists():
            raise InputError(f"bag {p} does not exist")
        if p.is_file():
            if p.suffix not in BAG_SUFFIXES:
                raise InputError(f"bag {p}: unknown file type {p.suffix!r} (expected a rosbag2 directory, .mcap, .db3 or .bag)")
            out.append(p)
        elif (p / "metadata.yaml").exists():
            out.append(p)
        else:
            # A session of segments, or a bag directory whose metadata.yaml a crash never wrote.
            inner = sorted(c for c in p.iterdir() if (c.is_file() and c.suffix in BAG_SUFFIXES)
                           or (c.is_dir() and ((c / "metadata.yaml").exists() or any(c.glob("*.mcap")) or any(c.glob("*.db3")))))
            if not inner:
                raise InputError(f"bag {p}: directory holds no metadata.yaml and no .mcap/.db3/.bag files")
            out.extend(expand_bag_paths(inner))
    return out


# -----------------------------------------------------------------------------------------------
# One file (or rosbag2 directory)
# -----------------------------------------------------------------------------------------------


class _Part:
    """One bag file or rosbag2 directory, readable by rosbags or by the MCAP salvage scan."""

    def __init__(self, path: Path):
        self.path = path
        self.damage: list[Damage] = []
        self.topics: dict[str, TopicInfo] = {}
        self.start_ns: int | None = None
        self.end_ns: int | None = None
        self.storage = "ros1" if path.suffix == ".bag" else ("sqlite3" if path.suffix == ".db3" else "mcap")
        self._reader: AnyReader | None = None
        self._salvage_files: list[Path] = []
        self._salvage_store = None
        self._open()

    # Opening ------------------------------------------------------------------------------------

    def _open(self) -> None:
        default = get_typestore(Stores.ROS1_NOETIC if self.storage == "ros1" else Stores.ROS2_JAZZY)
        try:
            reader = AnyReader([self.path], default_typestore=default)
            reader.open()
        except Exception as exc:  # noqa: BLE001 - rosbags, apsw, yaml and OS errors alike
            reason = _reason(exc)
            mcaps = self._mcap_files()
            db3s = [self.path] if self.path.suffix == ".db3" else sorted(self.path.glob("*.db3")) if self.path.is_dir() else []
            if mcaps:
                self._start_salvage(mcaps, reason)
            elif db3s:
                self._start_db3_salvage(db3s, reason)
            else:
                raise InputError(f"bag {self.path} cannot be opened: {reason}") from None
            return
        self._reader = reader
        if self.path.is_dir():
            self.storage = _directory_storage(self.path)
        for topic, info in reader.topics.items():
            self.topics[topic] = TopicInfo(topic, info.msgtype or "", info.msgcount)
        if reader.message_count:
            self.start_ns, self.end_ns = reader.start_time, reader.end_time - 1

    def _mcap_files(self) -> list[Path]:
        if self.path.is_file():
            return [self.path] if self.path.suffix == ".mcap" else []
        return sorted(self.path.glob("*.mcap"))

    def _start_salvage(self, files: list[Path], reason: str) -> None:
        """rosbags cannot open it: scan the MCAP records once for topics, counts and times."""
        self.storage = "mcap (salvaged)"
        self._salvage_files = files
        self._salvage_store = get_typestore(Stores.ROS2_JAZZY)
        counts: dict[int, int] = {}
        for f in files:
            scan = mcap_salvage.McapScan(f)
            for cid, t, _ in mcap_salvage.scan_mcap(f, scan):
                counts[cid] = counts.get(cid, 0) + 1
                self.start_ns = t if self.start_ns is None else min(self.start_ns, t)
                self.end_ns = t if self.end_ns is None else max(self.end_ns, t)
            for cid, ch in scan.channels.items():
                self._register_salvaged_type(ch)
                prev = self.topics.get(ch.topic)
                n = counts.get(cid, 0) + (prev.count if prev else 0)
                self.topics[ch.topic] = TopicInfo(ch.topic, ch.msgtype, n)
            if not scan.channels and scan.damage:
                raise InputError(f"bag {f} cannot be opened ({reason}) and holds no readable MCAP records: {scan.damage}")
        self._open_reason = reason

    def _start_db3_salvage(self, files: list[Path], reason: str) -> None:
        """rosbags cannot open the SQLite bag: read its topics, then its rows until the damage."""
        self.storage = "sqlite3 (salvaged)"
        self._salvage_store = get_typestore(Stores.ROS2_JAZZY)
        self._open_reason = reason
        self._db3 = []
        for f in files:
            try:
                scan = db3_salvage.open_db3(f)
            except Exception as exc:  # noqa: BLE001 - sqlite3 raises several types for broken files
                raise InputError(f"bag {f} cannot be opened ({reason}) and its topic table is unreadable: {_reason(exc)}") from None
            self._db3.append(scan)
            for name, typ in scan.topics.values():
                self.topics.setdefault(name, TopicInfo(name, typ, None))
                enc, text = scan.definitions.get(typ, ("", ""))
                self._register_salvaged_type(mcap_salvage.SalvagedChannel(name, typ, "cdr", "ros2idl" if enc == "idl" else "ros2msg", text))

    # Iteration ----------------------------------------------------------------------------------

    def messages(self, topics: set[str] | None, start: int | None, stop: int | None) -> Iterator[tuple[int, str, str, bytes]]:
        if self._reader is not None:
            yield from self._rosbags_messages(topics, start, stop)
        elif getattr(self, "_db3", None):
            for scan in self._db3:
                yield from self._db3_messages(scan, topics, start, stop)
        else:
            for f in self._salvage_files:
                yield from self._salvaged_messages(f, topics, start, stop)

    def _db3_messages(self, scan, topics, start, stop) -> Iterator[tuple[int, str, str, bytes]]:
        count, last_t, last_topic = 0, None, None
        for tid, t, raw in db3_salvage.scan_db3(scan):
            name, typ = scan.topics.get(tid, (None, None))
            if name is None:
                continue
            if self.start_ns is None:
                self.start_ns = t
            self.end_ns = t if self.end_ns is None else max(self.end_ns, t)
            count, last_t, last_topic = count + 1, t, name
            if (topics is None or name in topics) and (start is None or t >= start) and (stop is None or t < stop):
                yield t, name, typ, raw
        if scan.damage:
            self.damage.append(Damage(scan.path, f"after {last_topic}" if last_topic else None,
                                      f"row {scan.damage_row}, after message {count} at t={self._rel(last_t)}",
                                      f"SQLite bag cannot be opened normally ({self._open_reason}): {scan.damage}; every message before it was read"))

    def _rosbags_messages(self, topics: set[str] | None, start: int | None, stop: int | None) -> Iterator[tuple[int, str, str, bytes]]:
        assert self._reader is not None
        conns = [c for c in self._reader.connections if topics is None or c.topic in topics]
        if not conns:
            return
        gen = self._reader.messages(connections=conns, start=start, stop=stop)
        count, last_t, last_topic = 0, None, None
        while True:
            try:
                conn, t, raw = next(gen)
            except StopIteration:
                return
            except Exception as exc:  # noqa: BLE001 - any storage error ends this file here
                after = f"after message {count} at t={self._rel(last_t)}" if count else "before the first message"
                self.damage.append(Damage(self.path, f"after {last_topic}" if last_topic else None, after,
                                          f"{self.storage} storage is damaged: {_reason(exc)}; every message before it was read"))
                return
            count, last_t, last_topic = count + 1, t, conn.topic
            yield t, conn.topic, conn.msgtype, raw

    def _salvaged_messages(self, f: Path, topics: set[str] | None, start: int | None, stop: int | None) -> Iterator[tuple[int, str, str, bytes]]:
        scan = mcap_salvage.McapScan(f)
        count, last_t = 0, None
        for cid, t, raw in mcap_salvage.scan_mcap(f, scan):
            ch = scan.channels.get(cid)
            if ch is None:
                self.damage.append(Damage(f, None, f"message {count + 1} (t={self._rel(t)})", f"message on unknown channel id {cid}"))
                continue
            count, last_t = count + 1, t
            if (topics is None or ch.topic in topics) and (start is None or t >= start) and (stop is None or t < stop):
                yield t, ch.topic, ch.msgtype, raw
        for offset, why in scan.bad_chunks:
            self.damage.append(Damage(f, None, f"byte {offset}", why))
        if scan.damage:
            names = sorted({c.topic for c in scan.channels.values()})
            self.damage.append(
                Damage(
                    f,
                    "any of " + ", ".join(names) if len(names) > 1 else (names[0] if names else None),
                    f"byte {scan.damage_offset}, after message {count} at t={self._rel(last_t)}",
                    f"MCAP cut short or damaged ({self._open_reason}): {scan.damage}; every message before it was read",
                )
            )

    def _register_salvaged_type(self, ch: mcap_salvage.SalvagedChannel) -> None:
        """Teach the salvage typestore a type from the file's own schema (unless it knows it)."""
        store = self._salvage_store
        if ch.msgtype in store.fielddefs or not ch.schema_data:
            return
        try:
            if ch.schema_encoding == "ros2idl":
                types = get_types_from_idl(ch.schema_data)
            else:
                types = get_types_from_msg(ch.schema_data, ch.msgtype)
            store.register({k: v for k, v in types.items() if k not in store.fielddefs})
        except Exception:  # noqa: BLE001 - an unreadable schema: its messages count as bad later
            pass

    # Deserialization ----------------------------------------------------------------------------

    def deserializer(self):
        """A function (raw, msgtype) -> message object for this part."""
        if self._reader is not None:
            return self._reader.deserialize
        return self._salvage_store.deserialize_cdr

    def _rel(self, t: int | None) -> str:
        if t is None or self.start_ns is None:
            return "?"
        return f"{(t - self.start_ns) / 1e9:.3f} s"

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


def _directory_storage(path: Path) -> str:
    files = [p.suffix for p in path.iterdir() if p.suffix in (".mcap", ".db3")]
    return {".mcap": "mcap", ".db3": "sqlite3"}.get(files[0], "rosbag2") if files else "rosbag2"


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.rstrip(".")


# -----------------------------------------------------------------------------------------------
# The reader
# -----------------------------------------------------------------------------------------------


class BagReader:
    """Time-ordered reading of one or several bags; use as a context manager.

    Parameters
    ----------
    path:
        A bag argument (see the module docstring) or a sequence of them.
    """

    def __init__(self, path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]):
        self.paths = expand_bag_paths(path)
        self.parts: list[_Part] = []
        try:
            for p in self.paths:
                self.parts.append(_Part(p))
        except BaseException:
            self.close()
            raise
        self.bad_messages = 0
        self.messages_read = 0

    # Summary ------------------------------------------------------------------------------------

    @property
    def topics(self) -> dict[str, TopicInfo]:
        """Every topic of every part, with summed message counts."""
        out: dict[str, TopicInfo] = {}
        for part in self.parts:
            for name, info in part.topics.items():
                if name in out:
                    prev = out[name]
                    count = None if prev.count is None or info.count is None else prev.count + info.count
                    out[name] = TopicInfo(name, prev.msgtype or info.msgtype, count)
                else:
                    out[name] = info
        return dict(sorted(out.items()))

    @property
    def start_ns(self) -> int | None:
        """Log time of the first message (ns), None for an empty bag."""
        times = [p.start_ns for p in self.parts if p.start_ns is not None]
        return min(times) if times else None

    @property
    def end_ns(self) -> int | None:
        """Log time of the last message (ns), None for an empty bag."""
        times = [p.end_ns for p in self.parts if p.end_ns is not None]
        return max(times) if times else None

    @property
    def storage(self) -> str:
        return ", ".join(sorted({p.storage for p in self.parts}))

    @property
    def damage(self) -> list[Damage]:
        return [d for p in self.parts for d in p.damage]

    def missing_topics(self, wanted: Iterable[str]) -> list[str]:
        have = self.topics
        return [t for t in wanted if t not in have]

    # Iteration ----------------------------------------------------------------------------------

    def messages(
        self,
        topics: Iterable[str] | None = None,
        *,
        start_ns: int | None = None,
        stop_ns: int | None = None,
        deserialize: bool = True,
        raise_on_damage: bool = True,
    ) -> Iterator[BagMessage]:
        """Messages of ``topics`` (all when None) with ``start_ns <= t < stop_ns``, in log-time order.

        With ``deserialize`` each message's ``msg`` holds the decoded object; one that does not
        decode is skipped and counted in ``bad_messages``. When everything readable has been
        yielded and anything was damaged, raises :class:`InputError` naming file, topic and
        position (unless ``raise_on_damage`` is False; then read ``damage``).
        """
        wanted = None if topics is None else set(topics)
        for part in self.parts:  # each pass reports its own damage
            part.damage = []
        self.bad_messages = self.messages_read = 0
        streams = [self._tagged(part, wanted, start_ns, stop_ns) for part in self.parts]
        merged = heapq.merge(*streams, key=lambda item: item[0]) if len(streams) > 1 else streams[0] if streams else iter(())
        counter = itertools.count()
        deserializers = {id(p): p.deserializer() for p in self.parts}
        for t, topic, msgtype, raw, part in merged:
            index = next(counter)
            msg = None
            if deserialize:
                try:
                    msg = deserializers[id(part)](raw, msgtype)
                except Exception as exc:  # noqa: BLE001 - corrupt CDR raises many types
                    self.bad_messages += 1
                    part.damage.append(
                        Damage(part.path, topic, f"message {index} at t={part._rel(t)}", f"{msgtype} does not deserialize: {_reason(exc)}")
                    )
                    continue
            self.messages_read += 1
            yield BagMessage(topic, msgtype, t, raw, part.path, index, msg)
        if raise_on_damage and self.damage:
            raise InputError(self.damage_summary())

    @staticmethod
    def _tagged(part: _Part, wanted, start, stop) -> Iterator[tuple[int, str, str, bytes, _Part]]:
        for t, topic, msgtype, raw in part.messages(wanted, start, stop):
            yield t, topic, msgtype, raw, part

    def damage_summary(self, extra: Sequence[Damage] = ()) -> str:
        """One line naming the first problem and counting the rest."""
        problems = [*self.damage, *extra]
        if not problems:
            return ""
        first = str(problems[0])
        more = f"; {len(problems) - 1} more problem(s)" if len(problems) > 1 else ""
        return f"{first}{more}; {self.messages_read} messages before and around the damage were read"

    def close(self) -> None:
        for part in self.parts:
            part.close()

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
