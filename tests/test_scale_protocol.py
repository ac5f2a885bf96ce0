"""Scale protocol encoder and checksum against hand-computed lines."""

import functools
import operator

import pytest

from caper_edge.scale.protocol import MAX_LINE_BYTES, checksum, encode_sample, encode_status


def test_checksum_worked_example():
    # docs/scale_protocol.md folds this body byte by byte: 43 14 38 08 24 15 25 15 25 09 38 14
    # 26 0A 39 15 21 0D 3D 0D, so the checksum is 0x0D.
    body = b"CW,0,1000,1,2,3,4,00"
    assert checksum(body) == 0x0D == functools.reduce(operator.xor, body, 0)
    assert encode_sample(0, 1000, [1, 2, 3, 4], 0) == b"$CW,0,1000,1,2,3,4,00*0D\r\n"
    assert checksum(b"") == 0
    assert checksum(b"CS,cw-1.4.2,4,80") == 0x0E


def test_documented_example_line():
    assert encode_sample(4464, 5, [1, -2, 3, -8388608], 4) == b"$CW,4464,5,1,-2,3,-8388608,04*0E\r\n"


def test_counters_wrap():
    assert encode_sample(65536 + 7, 2**32 + 9, [0, 0, 0, 0]).startswith(b"$CW,7,9,")


def test_longest_line_fits_the_bound():
    line = encode_sample(65535, 2**32 - 1, [-(2**23)] * 4, 0xFF)
    assert len(line) == 64 <= MAX_LINE_BYTES


@pytest.mark.parametrize(
    "raw, flags, fragment",
    [
        ([0, 0, 0], 0, "raw must hold 4"),
        ([0, 0, 0, 2**23], 0, "raw[3] = 8388608"),
        ([0, -(2**23) - 1, 0, 0], 0, "raw[1] = -8388609"),
        ([0, 0, 1.5, 0], 0, "raw[2] = 1.5"),
        ([0, 0, 0, 0], 256, "flags = 256"),
    ],
)
def test_encoder_rejects_out_of_range(raw, flags, fragment):
    with pytest.raises(ValueError, match=None) as info:
        encode_sample(0, 0, raw, flags)
    assert fragment in str(info.value)


def test_status_line():
    assert encode_status("cw-1.4.2", 4, 80) == b"$CS,cw-1.4.2,4,80*0E\r\n"
    assert encode_status("x", 4, 80.5).startswith(b"$CS,x,4,80.5*")
    with pytest.raises(ValueError, match="firmware"):
        encode_status("a,b")
