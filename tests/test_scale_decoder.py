"""ScaleDecoder: exact decoding, resynchronisation, counters, and fuzzed streams.

The reference for every stream is how it was built: the list of valid lines put into it (and
their field values), and the byte count of everything else.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caper_edge.scale import ScaleDecoder, ScaleSample, encode_sample, encode_status
from caper_edge.scale.protocol import MAX_LINE_BYTES, checksum


def feed_chunked(decoder: ScaleDecoder, data: bytes, cuts: list[int]) -> list[ScaleSample]:
    out, pos = [], 0
    for cut in sorted(set(c for c in cuts if 0 < c < len(data))) + [len(data)]:
        out += decoder.feed(data[pos:cut])
        pos = cut
    return out


def framed(body: bytes) -> bytes:
    return b"$" + body + b"*%02X\r\n" % checksum(body)


def test_decodes_every_field():
    d = ScaleDecoder()
    line = b"$CW,65535,4294967295,-8388608,8388607,0,-1,07*%02X\r\n" % checksum(b"CW,65535,4294967295,-8388608,8388607,0,-1,07")
    (s,) = d.feed(line)
    assert (s.seq, s.t_ms, s.raw, s.flags) == (65535, 4294967295, (-8388608, 8388607, 0, -1), 7)
    assert d.stats.lines_ok == 1 and d.stats.bytes_discarded == 0


def test_lowercase_checksum_and_bare_newline_are_accepted():
    body = b"CW,1,2,3,4,5,6,0a"
    line = b"$" + body + b"*%02x\n" % checksum(body)
    (s,) = ScaleDecoder().feed(line)
    assert s.flags == 10


def test_status_line_is_kept_not_returned():
    d = ScaleDecoder()
    assert d.feed(encode_status("cw-1.4.2", 4, 80)) == []
    assert d.status.firmware == "cw-1.4.2" and d.status.cells == 4 and d.status.rate_hz == 80.0
    assert d.stats.status_lines == 1 and d.stats.lines_ok == 1


def test_byte_at_a_time():
    lines = [encode_sample(i, 10 * i, [i, -i, 2 * i, 3], i % 8) for i in range(50)]
    d = ScaleDecoder()
    out = [s for b in b"".join(lines) for s in d.feed(bytes([b]))]
    assert [s.seq for s in out] == list(range(50))


@pytest.mark.parametrize(
    "bad, counter",
    [
        (b"$CW,1,2,3,4,5,6,00*FF\r\n", "checksum_errors"),
        (framed(b"CW,1,2,3,4,5,00"), "malformed_lines"),                 # 7 fields
        (framed(b"CW,1,2,3,4,5,6,7,00"), "malformed_lines"),             # 9 fields
        (framed(b"CW,1,2,x3,4,5,6,00"), "malformed_lines"),              # not a number
        (framed(b"CW,1,2,+3,4,5,6,00"), "malformed_lines"),              # sign on a count
        (framed(b"CW,65536,2,3,4,5,6,00"), "malformed_lines"),           # seq out of range
        (framed(b"CW,1,4294967296,3,4,5,6,00"), "malformed_lines"),      # t_ms out of range
        (framed(b"CW,1,2,8388608,4,5,6,00"), "malformed_lines"),         # beyond 24 bits
        (framed(b"CW,1,2,3,4,5,6,0G"), "malformed_lines"),               # flags not hex
        (framed(b"CX,1,2,3,4,5,6,00"), "malformed_lines"),               # unknown sentence
        (framed(b"CS,fw,3,80"), "malformed_lines"),                      # not 4 cells
        (b"$CW,1,2,3,4,5,6,00\r\n", "malformed_lines"),                  # no checksum
        (b"$CW,1,2,3,4,5,6,00*1\r\n", "malformed_lines"),                # one hex digit
    ],
)
def test_bad_lines_are_counted_and_the_next_line_survives(bad, counter):
    good = encode_sample(9, 99, [1, 2, 3, 4], 0)
    d = ScaleDecoder()
    out = d.feed(bad + good)
    assert [s.seq for s in out] == [9]
    assert getattr(d.stats, counter) == 1
    assert d.stats.bytes_discarded == len(bad)


def test_garbage_with_dollar_never_swallows_the_next_line():
    good = encode_sample(1, 2, [3, 4, 5, 6], 0)
    for garbage in (b"$", b"$CW,1,2", b"xx$CW,1,2,3,4,5,6,00*", b"$\r", b"$$$$", good[:-2]):
        d = ScaleDecoder()
        assert [s.seq for s in d.feed(garbage + good)] == [1], garbage
        assert d.stats.bytes_discarded == len(garbage)


def test_oversized_line_is_dropped_and_buffer_stays_bounded():
    d = ScaleDecoder()
    d.feed(b"$" + b"7" * 5000)
    assert d.pending_bytes < MAX_LINE_BYTES
    assert d.stats.oversized_lines >= 1
    (s,) = d.feed(b"\r\n" + encode_sample(5, 6, [7, 8, 9, 10], 0))
    assert s.seq == 5
    d.reset_stream()
    assert d.stats.bytes_discarded == 5001 + 2


def test_sequence_gaps_and_lost_samples():
    seqs = [65533, 65534, 65535, 0, 1, 4, 5, 9, 40000]
    d = ScaleDecoder()
    d.feed(b"".join(encode_sample(s, 0, [0, 0, 0, 0]) for s in seqs))
    # gaps: 1 -> 4 (2 lost), 5 -> 9 (3 lost), 9 -> 40000 (a jump over half the range: a restart)
    assert d.stats.seq_gaps == 3
    assert d.stats.samples_lost == 5


def test_reset_stream_forgets_partial_line_and_seq():
    d = ScaleDecoder()
    d.feed(encode_sample(1, 0, [0, 0, 0, 0]) + b"$CW,2,0,")
    d.reset_stream()
    out = d.feed(encode_sample(50, 0, [0, 0, 0, 0]))
    assert [s.seq for s in out] == [50] and d.stats.seq_gaps == 0


def test_rejects_non_bytes():
    with pytest.raises(TypeError, match="bytes"):
        ScaleDecoder().feed("$CW")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Fuzzing
# ---------------------------------------------------------------------------------------------

raw_count = st.integers(-(2**23), 2**23 - 1)
valid_sample = st.tuples(st.integers(0, 65535), st.integers(0, 2**32 - 1), st.lists(raw_count, min_size=4, max_size=4),
                         st.integers(0, 255))


def _field_junk(junk: bytes) -> bytes:
    return junk.replace(b"\n", b"").replace(b"$", b"")


@st.composite
def bad_segment(draw) -> bytes:
    kind = draw(st.sampled_from(["garbage", "nul", "truncated", "oversized", "fields", "nonnumeric", "checksum"]))
    if kind == "garbage":
        return draw(st.binary(max_size=200))
    if kind == "nul":
        return b"\x00" * draw(st.integers(1, 50))
    seq, t_ms, raw, flags = draw(valid_sample)
    line = encode_sample(seq, t_ms, raw, flags)
    if kind == "truncated":
        return line[: draw(st.integers(1, len(line) - 1))]
    if kind == "oversized":
        return b"$CW," + b"1," * draw(st.integers(70, 300)) + b"*00\r\n"
    if kind == "fields":
        n = draw(st.sampled_from([0, 1, 5, 6, 8, 9, 12]))
        return framed(b"CW" + b"".join(b",%d" % draw(st.integers(0, 99)) for _ in range(n)))
    if kind == "nonnumeric":
        junk = _field_junk(draw(st.binary(max_size=6)))
        return framed(b"CW,1,2,z" + junk + b",4,5,6,00")
    # checksum: a valid line with one checksum digit changed
    bad = bytearray(line)
    star = bad.index(b"*")
    bad[star + 1] = ord("0") if bad[star + 1] != ord("0") else ord("1")
    return bytes(bad)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    segments=st.lists(st.one_of(valid_sample.map(lambda v: ("ok", v)), bad_segment().map(lambda b: ("bad", b))),
                      max_size=40),
    cuts=st.lists(st.integers(0, 10000), max_size=30),
)
def test_fuzzed_stream_never_crashes_and_loses_no_valid_line(segments, cuts):
    data, expected, bad_bytes = b"", [], 0
    for kind, value in segments:
        if kind == "ok":
            seq, t_ms, raw, flags = value
            data += encode_sample(seq, t_ms, raw, flags)
            expected.append((seq, t_ms, tuple(raw), flags))
        else:
            data += value
            bad_bytes += len(value)
    d = ScaleDecoder()
    out = feed_chunked(d, data, cuts)
    d.reset_stream()
    got = [(s.seq, s.t_ms, s.raw, s.flags) for s in out]
    # Every valid line comes out, in order. (Random garbage could by chance hold a complete
    # valid line, which is then rightly decoded too: hence "in order among", not "equal".)
    it = iter(got)
    assert all(any(g == e for g in it) for e in expected), (expected, got)
    assert d.pending_bytes == 0
    if len(got) == len(expected) and d.stats.status_lines == 0:
        # ... and every other byte is counted as discarded.
        assert d.stats.bytes_discarded == bad_bytes
        assert d.stats.lines_ok == len(expected)


def test_megabyte_of_random_bytes_interleaved_with_valid_lines(rng):
    n_lines = 4000
    garbage_sizes = rng.integers(0, 600, size=n_lines + 1)
    garbage = rng.integers(0, 256, size=int(garbage_sizes.sum()), dtype=np.uint8).tobytes()
    values = [(int(rng.integers(0, 65536)), int(rng.integers(0, 2**32)),
               tuple(int(v) for v in rng.integers(-(2**23), 2**23, size=4)), int(rng.integers(0, 256)))
              for _ in range(n_lines)]
    parts, pos = [], 0
    for i in range(n_lines + 1):
        parts.append(garbage[pos : pos + garbage_sizes[i]])
        pos += garbage_sizes[i]
        if i < n_lines:
            parts.append(encode_sample(*values[i]))
    stream = b"".join(parts)
    assert len(garbage) > 1_000_000
    cuts = np.cumsum(rng.integers(1, 4096, size=len(stream) // 1000)).tolist()

    d = ScaleDecoder()
    out = feed_chunked(d, stream, cuts)
    d.reset_stream()
    got = [(s.seq, s.t_ms, s.raw, s.flags) for s in out]
    assert got == values
    assert d.stats.lines_ok == n_lines
    assert d.stats.bytes_discarded == len(garbage)
    assert d.stats.bytes_in == len(stream)
    assert d.stats.truncated_lines + d.stats.malformed_lines + d.stats.checksum_errors > 0
