"""Recover the messages of a damaged MCAP file by scanning its records from the start.

``rosbags`` reads MCAP through the summary and footer at the end of the file, so a file cut short
(a crash while recording, an interrupted copy) does not open at all. This scanner walks the
records front to back, as the MCAP specification allows for unindexed reading, and yields every
message of every complete chunk (or loose message record) before the damage. It then reports the
byte offset and the reason where it stopped, so the caller can say exactly what was lost.

Record layout (MCAP v0): 8-byte magic, then records ``opcode:u8, length:u64, body[length]``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rosbags.rosbag2.errors import ReaderError
from rosbags.rosbag2.storage_mcap import decompress

__all__ = ["McapScan", "SalvagedChannel", "scan_mcap"]

MAGIC = b"\x89MCAP0\r\n"
OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK, OP_FOOTER, OP_DATA_END = 0x03, 0x04, 0x05, 0x06, 0x02, 0x0F
_U16, _U32, _U64 = struct.Struct("<H"), struct.Struct("<I"), struct.Struct("<Q")
_MESSAGE_HEAD = struct.Struct("<HIQQ")  # channel id, sequence, log time, publish time
_CHUNK_HEAD = struct.Struct("<QQQI")    # start time, end time, uncompressed size, crc32


@dataclass
class SalvagedChannel:
    topic: str
    msgtype: str
    encoding: str          # message encoding, "cdr" for ROS 2
    schema_encoding: str   # "ros2msg" / "ros2idl" / "" when the schema is missing
    schema_data: str


@dataclass
class McapScan:
    """What a scan found: channels, and where and why it stopped (``damage`` None: clean end)."""

    path: Path
    channels: dict[int, SalvagedChannel] = field(default_factory=dict)
    schemas: dict[int, tuple[str, str, str]] = field(default_factory=dict)
    messages: int = 0
    damage: str | None = None
    damage_offset: int | None = None
    bad_chunks: list[tuple[int, str]] = field(default_factory=list)
    reached_footer: bool = False


def _string(body: memoryview, pos: int) -> tuple[str, int]:
    (n,) = _U32.unpack_from(body, pos)
    pos += 4
    if pos + n > len(body):
        raise ValueError("string runs past the end of its record")
    return bytes(body[pos : pos + n]).decode("utf-8"), pos + n


def _parse_schema(body: memoryview, scan: McapScan) -> None:
    (sid,) = _U16.unpack_from(body, 0)
    name, pos = _string(body, 2)
    encoding, pos = _string(body, pos)
    (n,) = _U32.unpack_from(body, pos)
    data = bytes(body[pos + 4 : pos + 4 + n]).decode("utf-8", errors="replace")
    scan.schemas[sid] = (name, encoding, data)


def _parse_channel(body: memoryview, scan: McapScan) -> None:
    cid, sid = struct.unpack_from("<HH", body, 0)
    topic, pos = _string(body, 4)
    encoding, pos = _string(body, pos)
    name, schema_encoding, data = scan.schemas.get(sid, ("", "", ""))
    scan.channels[cid] = SalvagedChannel(topic, name, encoding, schema_encoding, data)


class _CutRecord(ValueError):
    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.offset = offset


def _records(buf: memoryview, base: int) -> Iterator[tuple[int, int, memoryview]]:
    """(offset, opcode, body) of each record in ``buf``; raises _CutRecord on a cut record."""
    pos = 0
    while pos < len(buf):
        if pos + 9 > len(buf):
            raise _CutRecord(f"record header cut short at byte {base + pos}", base + pos)
        op = buf[pos]
        (length,) = _U64.unpack_from(buf, pos + 1)
        start = pos + 9
        if start + length > len(buf):
            raise _CutRecord(
                f"record (opcode 0x{op:02x}) of {length} bytes at byte {base + pos} runs past the end of the data",
                base + pos,
            )
        yield base + pos, op, buf[start : start + length]
        pos = start + length


def scan_mcap(path: Path, scan: McapScan | None = None) -> Iterator[tuple[int, int, bytes]]:
    """Yield ``(channel_id, log_time_ns, cdr_bytes)`` of every recoverable message, in file order.

    Messages inside one chunk come sorted by log time. ``scan`` (filled as the generator runs)
    tells the channels and, once exhausted, where and why the scan stopped.
    """
    scan = scan if scan is not None else McapScan(path)
    data = memoryview(path.read_bytes())
    if bytes(data[:8]) != MAGIC:
        scan.damage, scan.damage_offset = "the file does not start with the MCAP magic", 0
        return
    offset = 8
    try:
        for offset, op, body in _records(data[8:], 8):
            if op == OP_FOOTER:
                scan.reached_footer = True
                return
            if op == OP_DATA_END:
                continue
            yield from _handle(op, body, offset, scan)
    except _CutRecord as exc:
        scan.damage, scan.damage_offset = str(exc), exc.offset
        return
    except (ValueError, struct.error) as exc:
        scan.damage, scan.damage_offset = f"record at byte {offset} is malformed: {exc}", offset
        return
    scan.damage = f"file ends at byte {len(data)} without the MCAP footer (truncated)"
    scan.damage_offset = len(data)


def _handle(op: int, body: memoryview, offset: int, scan: McapScan) -> Iterator[tuple[int, int, bytes]]:
    if op == OP_SCHEMA:
        _parse_schema(body, scan)
    elif op == OP_CHANNEL:
        _parse_channel(body, scan)
    elif op == OP_MESSAGE:
        cid, _, log_time, _ = _MESSAGE_HEAD.unpack_from(body, 0)
        scan.messages += 1
        yield cid, log_time, bytes(body[_MESSAGE_HEAD.size :])
    elif op == OP_CHUNK:
        yield from _chunk(body, offset, scan)


def _chunk(body: memoryview, offset: int, scan: McapScan) -> Iterator[tuple[int, int, bytes]]:
    _, _, size, crc = _CHUNK_HEAD.unpack_from(body, 0)
    compression, pos = _string(body, _CHUNK_HEAD.size)
    (n,) = _U64.unpack_from(body, pos)
    pos += 8
    if pos + n > len(body):
        raise ValueError(f"chunk at byte {offset} declares more data than its record holds")
    try:
        raw = decompress(bytes(body[pos : pos + n]), compression, size, crc)
    except (ReaderError, Exception) as exc:  # noqa: BLE001 - zstd/lz4 raise their own types
        # The record framing is intact, so the scan can go on after this chunk.
        scan.bad_chunks.append((offset, f"chunk at byte {offset} does not decompress: {exc}"))
        return
    messages = []
    try:
        for _, op, rec in _records(memoryview(raw), 0):
            if op == OP_MESSAGE:
                cid, _, log_time, _ = _MESSAGE_HEAD.unpack_from(rec, 0)
                messages.append((log_time, len(messages), cid, bytes(rec[_MESSAGE_HEAD.size :])))
            else:
                list(_handle(op, rec, offset, scan))
    except (ValueError, struct.error) as exc:
        scan.bad_chunks.append((offset, f"chunk at byte {offset} holds a broken record: {exc}"))
    messages.sort()
    for log_time, _, cid, payload in messages:
        scan.messages += 1
        yield cid, log_time, payload
