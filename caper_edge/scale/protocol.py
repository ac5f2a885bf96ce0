"""The scale MCU's serial line protocol: constants, checksum and encoders.

Two kinds of ASCII line, NMEA-style so a person can read them in a terminal
(115200 8N1, about 80 lines per second)::

    $CW,<seq>,<t_ms>,<raw0>,<raw1>,<raw2>,<raw3>,<flags>*<CS>\\r\\n   one sample of the 4 load cells
    $CS,<firmware>,<cells>,<rate_hz>*<CS>\\r\\n                       status, on connect and every 10 s

- ``seq``: decimal 0..65535, +1 per sample, wraps to 0 (a jump means samples were lost).
- ``t_ms``: decimal MCU uptime in milliseconds, uint32, wraps after 2**32 ms (49.7 days).
- ``raw0..raw3``: decimal signed 24-bit ADC counts (-8388608..8388607) of cells 0..3.
- ``flags``: hex bitfield (the encoder writes two upper-case digits): :data:`FLAG_ADC_FAULT`,
  :data:`FLAG_OVERLOAD`, :data:`FLAG_MOTION`.
- ``CS``: two upper-case hex digits, the XOR of every byte strictly between ``$`` and ``*``.

The decoder lives in :mod:`caper_edge.scale.decoder`; docs/scale_protocol.md is the full
description with a worked checksum example.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "CELLS",
    "FLAG_ADC_FAULT",
    "FLAG_MOTION",
    "FLAG_OVERLOAD",
    "MAX_LINE_BYTES",
    "RAW_MAX",
    "RAW_MIN",
    "SEQ_MOD",
    "T_MS_MOD",
    "checksum",
    "encode_sample",
    "encode_status",
]

CELLS = 4                      # load cells per basket (corners)
SEQ_MOD = 1 << 16              # seq wraps at 65536
T_MS_MOD = 1 << 32             # t_ms is a uint32 millisecond counter
RAW_MIN = -(1 << 23)           # signed 24-bit ADC range (HX711 class)
RAW_MAX = (1 << 23) - 1
FLAG_ADC_FAULT = 0x01          # bit0: the ADC did not answer / returned a stuck value
FLAG_OVERLOAD = 0x02           # bit1: a cell is at or beyond its rated load
FLAG_MOTION = 0x04             # bit2: the MCU's accelerometer says the cart is moving or bumped
# The longest valid sample line is 64 bytes (seq 65535, t_ms 4294967295, four -8388608, flags FF);
# a line longer than this bound without a line end is garbage: it is dropped and counted.
MAX_LINE_BYTES = 128

_FORBIDDEN_IN_FIELD = frozenset(b"$*,\r\n")


def checksum(body: bytes) -> int:
    """XOR of every byte of ``body`` (the bytes strictly between ``$`` and ``*``), 0..255."""
    value = 0
    for byte in body:
        value ^= byte
    return value


def _frame(body: bytes) -> bytes:
    return b"$" + body + b"*" + b"%02X" % checksum(body) + b"\r\n"


def encode_sample(seq: int, t_ms: int, raw: Sequence[int], flags: int = 0) -> bytes:
    """One complete ``$CW,...*CS\\r\\n`` sample line.

    ``seq`` is taken modulo 65536 and ``t_ms`` modulo 2**32 (the MCU's counters wrap), so a
    simulator may pass ever-increasing integers. ``raw`` must be 4 integers in the signed 24-bit
    range and ``flags`` an integer in 0..255; anything else raises ValueError naming the value.
    """
    if len(raw) != CELLS:
        raise ValueError(f"raw must hold {CELLS} cell counts, got {len(raw)}: {list(raw)!r}")
    counts = []
    for i, value in enumerate(raw):
        if isinstance(value, bool) or int(value) != value:
            raise ValueError(f"raw[{i}] = {value!r}: expected an integer count")
        value = int(value)
        if not RAW_MIN <= value <= RAW_MAX:
            raise ValueError(f"raw[{i}] = {value}: expected a signed 24-bit count in {RAW_MIN}..{RAW_MAX}")
        counts.append(value)
    if not 0 <= int(flags) <= 0xFF:
        raise ValueError(f"flags = {flags!r}: expected an integer in 0..255")
    seq = int(seq) % SEQ_MOD
    t_ms = int(t_ms) % T_MS_MOD
    body = b"CW,%d,%d,%d,%d,%d,%d,%02X" % (seq, t_ms, *counts, int(flags))
    return _frame(body)


def encode_status(firmware: str, cells: int = CELLS, rate_hz: float = 80.0) -> bytes:
    """One complete ``$CS,<firmware>,<cells>,<rate_hz>*CS\\r\\n`` status line.

    ``firmware`` is printable ASCII without ``$ * ,`` (e.g. ``"cw-1.4.2"``); ``rate_hz`` is written
    without a fraction when it is whole (``80``) and with up to 3 decimals otherwise.
    """
    raw_fw = firmware.encode("ascii", errors="replace")
    if not raw_fw or any(b < 0x20 or b > 0x7E or b in _FORBIDDEN_IN_FIELD for b in raw_fw):
        raise ValueError(f"firmware = {firmware!r}: expected non-empty printable ASCII without '$', '*' or ','")
    if not 1 <= int(cells) <= 16:
        raise ValueError(f"cells = {cells!r}: expected an integer in 1..16")
    if not 0 < float(rate_hz) < 100000:
        raise ValueError(f"rate_hz = {rate_hz!r}: expected a positive rate in Hz")
    rate = float(rate_hz)
    rate_text = b"%d" % int(rate) if rate.is_integer() else (b"%.3f" % rate).rstrip(b"0")
    return _frame(b"CS," + raw_fw + b",%d," % int(cells) + rate_text)
