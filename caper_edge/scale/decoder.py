"""Incremental decoder of the scale MCU's line protocol (see :mod:`caper_edge.scale.protocol`).

Framing rules, chosen so that no valid line is ever lost to whatever came before it:

1. A line starts at *every* ``$``. A ``$`` inside an unfinished line abandons that line (it was
   truncated: the MCU reset or bytes were lost) and starts a new one, so garbage that happens to
   contain a ``$`` can never swallow the start of the valid line after it.
2. A line ends at ``\\n`` (an optional ``\\r`` before it is stripped). It is accepted when it is
   ``$<body>*<CS>`` with the checksum right and the body one of the two known sentences with
   every field in range; otherwise it is counted (checksum error, malformed) and discarded.
3. A line longer than :data:`~caper_edge.scale.protocol.MAX_LINE_BYTES` without a ``\\n`` is
   dropped as oversized; the decoder never buffers more than that bound.
4. Every byte that is not part of an accepted line is counted in ``bytes_discarded``.

The hot loop is one compiled regular expression that finds every ``$`` ... ``\n`` frame
without an inner ``$`` (``re.finditer``, i.e. C speed per byte), a second one that validates and
splits a sample line, and an XOR fold of the body as one big integer. At 80 lines per second
(about 5 KB/s) it uses well under 1 % of a core, and a 1 MB fuzz stream takes a fraction of a
second, so it stays in Python; the weight-event detector, which runs numeric windows per sample,
is the part in C++ (docs/scale_protocol.md, "Why the decoder is Python").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NamedTuple

from .protocol import CELLS, MAX_LINE_BYTES, RAW_MAX, RAW_MIN, SEQ_MOD

__all__ = ["DecoderStats", "ScaleDecoder", "ScaleSample", "ScaleStatus"]

# A frame: "$", then anything but "$" and "\n", then "\n". Excluding "$" makes every "$" a
# possible line start (resynchronisation); the length bound is checked after the match.
_FRAME = re.compile(rb"\$([^$\n]*)\n")
_SAMPLE_LINE = re.compile(
    rb"(CW,(\d{1,5}),(\d{1,10}),(-?\d{1,8}),(-?\d{1,8}),(-?\d{1,8}),(-?\d{1,8}),([0-9A-Fa-f]{1,2}))"
    rb"\*([0-9A-Fa-f]{2})\r?")
_STATUS = re.compile(rb"CS,([\x20-\x7e]{1,32}?),(\d{1,2}),(\d{1,5}(?:\.\d{1,6})?)")
_HEX = b"0123456789ABCDEFabcdef"


class ScaleSample(NamedTuple):
    """One decoded ``$CW`` line: ``seq`` 0..65535, ``t_ms`` MCU uptime (uint32),
    ``raw`` the 4 signed 24-bit cell counts, ``flags`` bit0 ADC fault, bit1 overload, bit2 motion."""

    seq: int
    t_ms: int
    raw: tuple[int, int, int, int]
    flags: int


@dataclass(frozen=True, slots=True)
class ScaleStatus:
    """One decoded ``$CS`` line: firmware version text, number of cells, sample rate in Hz."""

    firmware: str
    cells: int
    rate_hz: float


@dataclass
class DecoderStats:
    """Counters of a :class:`ScaleDecoder` (monotonic; never reset by the decoder itself).

    ``lines_ok`` counts every accepted line (samples + status). ``seq_gaps`` counts the places
    where a sample's ``seq`` is not the previous one + 1 (mod 65536) and ``samples_lost`` the
    samples missing there (a jump of half the range or more is taken as an MCU restart: counted
    as a gap, not as lost samples). ``truncated_lines`` are lines cut short by a new ``$``,
    ``oversized_lines`` lines over the length bound, ``malformed_lines`` lines with a right
    checksum but wrong fields.
    """

    lines_ok: int = 0
    samples: int = 0
    status_lines: int = 0
    checksum_errors: int = 0
    malformed_lines: int = 0
    truncated_lines: int = 0
    oversized_lines: int = 0
    seq_gaps: int = 0
    samples_lost: int = 0
    bytes_in: int = 0
    bytes_discarded: int = 0

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class ScaleDecoder:
    """Bytes in, :class:`ScaleSample` out; any chunking; see the module docstring for the rules.

    ``max_line_bytes`` bounds the bytes buffered for one line (raising it only helps firmware
    that sends longer lines; lowering it below 64 rejects valid samples). The last status line
    is kept in ``status``.
    """

    max_line_bytes: int = MAX_LINE_BYTES
    stats: DecoderStats = field(default_factory=DecoderStats)
    status: ScaleStatus | None = None
    _pending: bytes = b""            # an unfinished line, always starting with "$" (or empty)
    _last_seq: int | None = None

    def __post_init__(self) -> None:
        if not 16 <= self.max_line_bytes <= 4096:
            raise ValueError(f"max_line_bytes = {self.max_line_bytes!r}: expected 16..4096 bytes")

    def feed(self, data: bytes) -> list[ScaleSample]:
        """Decode ``data`` (the next bytes of the stream); returns the samples completed by it."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"feed() takes bytes, got {type(data).__name__}")
        data = bytes(data)
        stats = self.stats
        stats.bytes_in += len(data)
        buf = self._pending + data if self._pending else data
        self._pending = b""
        out: list[ScaleSample] = []
        limit = self.max_line_bytes
        pos = 0
        for m in _FRAME.finditer(buf):
            # 1. Bytes since the previous frame are garbage (possibly with cut-short lines in it).
            start, end = m.span()
            if start > pos:
                self._discard(buf, pos, start)
            pos = end
            # 2. A complete frame: bounded, then validated and decoded.
            if end - start > limit:
                stats.oversized_lines += 1
                stats.bytes_discarded += end - start
                continue
            sample = self._line(m[1], end - start)
            if sample is not None:
                out.append(sample)
        # 3. The tail: garbage up to its last "$", then an unfinished line to keep (bounded).
        last = buf.rfind(b"$", pos)
        if last < 0:
            stats.bytes_discarded += len(buf) - pos
        else:
            if last > pos:
                self._discard(buf, pos, last)
            if len(buf) - last >= limit:
                stats.oversized_lines += 1
                stats.bytes_discarded += len(buf) - last
            else:
                self._pending = buf[last:]
        return out

    def _discard(self, buf: bytes, lo: int, hi: int) -> None:
        """Count buf[lo:hi] as discarded, and classify each "$" in it: a line cut short by the next
        "$" (truncated) or one that ran past the length bound (oversized)."""
        stats = self.stats
        stats.bytes_discarded += hi - lo
        at = buf.find(b"$", lo, hi)
        while at >= 0:
            nxt = buf.find(b"$", at + 1, hi)
            run_end = hi if nxt < 0 else nxt
            nl = buf.find(b"\n", at + 1, run_end)
            if (nl if nl >= 0 else run_end) - at >= self.max_line_bytes:
                stats.oversized_lines += 1
            else:
                stats.truncated_lines += 1
            at = nxt

    @property
    def pending_bytes(self) -> int:
        """Bytes of the unfinished line held back (always < ``max_line_bytes``)."""
        return len(self._pending)

    def reset_stream(self) -> None:
        """Forget the unfinished line and the last ``seq`` (after a reconnect: a line must not be
        stitched across two connections, and the samples missed while unplugged are not gaps)."""
        self.stats.bytes_discarded += len(self._pending)
        self._pending = b""
        self._last_seq = None

    def _line(self, content: bytes, size: int) -> ScaleSample | None:
        """``content``: the bytes between "$" and "\n"; ``size``: the frame's length."""
        stats = self.stats
        m = _SAMPLE_LINE.fullmatch(content)
        if m is not None:                                    # the common case, in one match
            if _xor(m[1]) != int(m[9], 16):
                return self._reject("checksum_errors", size)
            seq, t_ms = int(m[2]), int(m[3])
            raw = (int(m[4]), int(m[5]), int(m[6]), int(m[7]))
            if seq >= SEQ_MOD or t_ms >= 1 << 32 or min(raw) < RAW_MIN or max(raw) > RAW_MAX:
                return self._reject("malformed_lines", size)
            stats.lines_ok += 1
            stats.samples += 1
            self._track_seq(seq)
            return ScaleSample(seq, t_ms, raw, int(m[8], 16))
        # Anything else: a checksum error, a status line, or a malformed line.
        end = len(content) - 1 if content.endswith(b"\r") else len(content)
        if end < 3 or content[end - 3] != 0x2A or content[end - 2] not in _HEX or content[end - 1] not in _HEX:
            return self._reject("malformed_lines", size)
        body = content[: end - 3]
        if _xor(body) != int(content[end - 2 : end], 16):
            return self._reject("checksum_errors", size)
        status = _parse_status(body)
        if status is None:
            return self._reject("malformed_lines", size)
        stats.lines_ok += 1
        stats.status_lines += 1
        self.status = status
        return None

    def _reject(self, counter: str, size: int) -> None:
        setattr(self.stats, counter, getattr(self.stats, counter) + 1)
        self.stats.bytes_discarded += size
        return None

    def _track_seq(self, seq: int) -> None:
        if self._last_seq is not None:
            missing = (seq - self._last_seq - 1) % SEQ_MOD
            if missing:
                self.stats.seq_gaps += 1
                if missing < SEQ_MOD // 2:
                    self.stats.samples_lost += missing
        self._last_seq = seq


def _xor(body: bytes) -> int:
    # Fold the body as one big integer: XOR-ing the upper half onto the lower keeps the XOR of
    # all bytes in the lowest byte; a handful of big-int operations beat a loop over the bytes.
    x = int.from_bytes(body, "little")
    if len(body) <= 64:                     # every valid line: six folds, unrolled
        x ^= x >> 256
        x ^= x >> 128
        x ^= x >> 64
        x ^= x >> 32
        x ^= x >> 16
        x ^= x >> 8
        return x & 0xFF
    shift = 8
    while shift < 8 * len(body):
        shift <<= 1
    while shift > 8:
        shift >>= 1
        x ^= x >> shift
    return x & 0xFF


def _parse_status(body: bytes) -> ScaleStatus | None:
    m = _STATUS.fullmatch(body)
    if m is None or b"," in m[1] or b"$" in m[1] or b"*" in m[1]:
        return None
    cells, rate = int(m[2]), float(m[3])
    if cells != CELLS or not rate > 0:
        return None
    return ScaleStatus(m[1].decode("ascii"), cells, rate)
