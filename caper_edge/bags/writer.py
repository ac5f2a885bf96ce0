"""Write rosbag2 MCAP bags with the ``rosbags`` library, durably.

The bag is a rosbag2 directory ``PATH/`` holding ``PATH/<name>.mcap`` and ``metadata.yaml``, the
layout ``ros2 bag record -s mcap`` produces; the ``.mcap`` file alone also opens in Foxglove.

``rosbags`` buffers one chunk (at most 1 MiB) in memory and appends it to the file when full. We
add two things a recorder on a cart needs: the file is flushed (and optionally fsync'ed) after every
chunk, and a chunk is also closed once it spans ``chunk_seconds`` of message time, so a crash or a
power cut loses at most the chunk being filled. A file cut short that way has no MCAP footer; the
reader in :mod:`caper_edge.bags.reader` recovers every complete chunk of it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from rosbags.interfaces import Connection
from rosbags.rosbag2 import Writer, WriterError
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode, StoragePlugin
from rosbags.rosbag2.storage_mcap import McapWriter

from ..errors import InputError
from . import ros, topics

__all__ = ["BagWriter"]

#: rosbags closes a chunk once it holds more than this many bytes (hard-coded in the library).
ROSBAGS_CHUNK_BYTES = 1 << 20


class _DurableMcapWriter(McapWriter):
    """rosbags' MCAP storage writer that flushes every chunk and also closes chunks by time."""

    def __init__(self, path: Path, compression: CompressionMode, *, chunk_bytes: int, chunk_ns: int | None, fsync: bool):
        super().__init__(path, compression)
        self._chunk_bytes = chunk_bytes
        self._chunk_ns = chunk_ns
        self._fsync = fsync

    def write(self, connection: Connection, timestamp: int, data: bytes | memoryview) -> None:
        super().write(connection, timestamp, data)
        chunk = self.chunk
        if chunk.msgs and (
            chunk.bio.tell() >= self._chunk_bytes
            or (self._chunk_ns is not None and chunk.message_end_time - chunk.message_start_time >= self._chunk_ns)
        ):
            self.close_chunk()

    def close_chunk(self) -> None:
        super().close_chunk()
        # The chunk and its message indexes are complete records now: make them survive a crash.
        self.bio.flush()
        if self._fsync:
            os.fsync(self.bio.fileno())


class _Rosbag2Writer(Writer):
    """rosbags' rosbag2 writer using :class:`_DurableMcapWriter` as its storage."""

    def __init__(self, path: Path, **storage_options: Any):
        super().__init__(path, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP)
        self._storage_options = storage_options

    def open(self) -> None:
        try:
            self.path.mkdir(mode=0o755, parents=True)
        except FileExistsError:
            raise WriterError(f"{self.path} exists already, not overwriting.") from None
        self.storage = _DurableMcapWriter(self.path, self.compression_mode, **self._storage_options)


class BagWriter:
    """A rosbag2 MCAP bag being written; use as a context manager.

    Parameters
    ----------
    path:
        The bag directory to create; it must not exist.
    compression:
        ``"zstd"`` compresses each chunk (depth images shrink about 3x, JPEG frames do not);
        ``"none"`` writes plain chunks, faster to write and to seek in.
    chunk_bytes:
        Close a chunk once it holds this many bytes (at most 1 MiB, the ``rosbags`` limit).
        Smaller chunks lose less in a crash and seek faster but index more.
    chunk_seconds:
        Also close a chunk once it spans this much message time (``None``: size only), so a slow
        stream (the scale alone) still reaches the disk regularly.
    fsync:
        ``os.fsync`` after every chunk: survives a power cut, costs one disk sync per chunk.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        compression: Literal["zstd", "none"] = "zstd",
        chunk_bytes: int = ROSBAGS_CHUNK_BYTES,
        chunk_seconds: float | None = None,
        fsync: bool = False,
        custom_data: dict[str, str] | None = None,
    ):
        if compression not in ("zstd", "none"):
            raise ValueError(f"compression must be 'zstd' or 'none', got {compression!r}")
        if not 0 < chunk_bytes <= ROSBAGS_CHUNK_BYTES:
            raise ValueError(f"chunk_bytes must be in 1..{ROSBAGS_CHUNK_BYTES}, got {chunk_bytes}")
        if chunk_seconds is not None and chunk_seconds <= 0:
            raise ValueError(f"chunk_seconds must be positive or None, got {chunk_seconds}")
        self.path = Path(path)
        chunk_ns = None if chunk_seconds is None else int(chunk_seconds * 1e9)
        self._writer = _Rosbag2Writer(self.path, chunk_bytes=chunk_bytes, chunk_ns=chunk_ns, fsync=fsync)
        if compression == "zstd":
            self._writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        for key, value in (custom_data or {}).items():
            self._writer.set_custom_data(key, value)
        try:
            self._writer.open()
        except WriterError as exc:
            raise InputError(f"cannot create bag {self.path}: {exc}") from None
        except OSError as exc:
            raise InputError(f"cannot create bag {self.path}: {exc.strerror}") from None
        self._connections: dict[str, Connection] = {}
        self._closed = False
        self.messages_written = 0

    @property
    def mcap_path(self) -> Path:
        """The ``.mcap`` file inside the bag directory."""
        return self.path / f"{self.path.name}.mcap"

    @property
    def bytes_written(self) -> int:
        """Bytes in the ``.mcap`` file so far, including the chunk still buffered in memory."""
        storage = self._writer.storage
        if storage is None:
            return self.mcap_path.stat().st_size
        return storage.bio.tell() + storage.chunk.bio.tell()

    def add_topic(self, topic: str, msgtype: str | None = None) -> None:
        """Declare ``topic`` now (otherwise it is declared by its first message)."""
        self._connection(topic, msgtype or topics.TYPES[topic])

    def write(self, topic: str, t_ns: int, msg: Any, msgtype: str | None = None) -> None:
        """Serialize ``msg`` (a rosbags message object) as CDR and append it at log time ``t_ns``."""
        msgtype = msgtype or getattr(msg, "__msgtype__", None) or topics.TYPES[topic]
        self.write_raw(topic, msgtype, t_ns, ros.typestore().serialize_cdr(msg, msgtype))

    def write_raw(self, topic: str, msgtype: str, t_ns: int, data: bytes | memoryview) -> None:
        """Append already serialized CDR ``data``."""
        if self._closed:
            raise ValueError(f"bag {self.path} is closed")
        if t_ns < 0:
            raise ValueError(f"message time must be >= 0 ns, got {t_ns} on {topic}")
        self._writer.write(self._connection(topic, msgtype), int(t_ns), data)
        self.messages_written += 1

    def _connection(self, topic: str, msgtype: str) -> Connection:
        conn = self._connections.get(topic)
        if conn is None:
            conn = self._writer.add_connection(topic, msgtype, typestore=ros.typestore())
            self._connections[topic] = conn
        elif conn.msgtype != msgtype:
            raise ValueError(f"topic {topic} was declared as {conn.msgtype}, cannot write a {msgtype}")
        return conn

    def close(self) -> None:
        """Write the last chunk, the MCAP summary and footer, and ``metadata.yaml``."""
        if not self._closed:
            self._closed = True
            self._writer.close()

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        # Also on an exception: what was written stays a complete, readable bag.
        self.close()
