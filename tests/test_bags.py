"""Bag I/O: round trips checked by independent readers (rosbags alone, the mcap library, sqlite3,
OpenCV), every storage format, damaged files, and ``caper-edge bag info``."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.rosbag1 import Writer as Writer1
from rosbags.rosbag2 import Writer as Writer2
from rosbags.rosbag2.enums import StoragePlugin
from rosbags.typesys import Stores, get_typestore

from caper_edge.bags import BagReader, BagWriter, FrameDecodeError, decode_color, decode_depth, encode_jpeg, ros, topics
from caper_edge.bags.info import bag_info
from caper_edge.errors import InputError

T0 = 1_000_000_000
PERIOD = 33_333_333


def _write_bag(path: Path, n: int, rng: np.random.Generator, *, compression: str = "zstd", chunk_bytes: int = 1 << 20):
    """n colour frames (raw rgb8 and JPEG), depth every second frame, a scale line per frame."""
    colors, depths = [], []
    with BagWriter(path, compression=compression, chunk_bytes=chunk_bytes) as w:
        for i in range(n):
            t = T0 + i * PERIOD
            rgb = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
            colors.append(rgb)
            w.write(topics.COLOR_RAW, t, ros.image(t, "cam", rgb, "rgb8"))
            w.write(topics.COLOR_COMPRESSED, t, ros.compressed_image(t, "cam", encode_jpeg(rgb, 95), "jpeg"))
            if i % 2 == 0:
                d = rng.integers(0, 4000, (48, 64), dtype=np.uint16)
                depths.append(d)
                w.write(topics.DEPTH, t, ros.image(t, "cam", d, "16UC1"))
            w.write(topics.SCALE_RAW, t + 1, ros.string(f"$CW,{i},0,1,2,3,4,00*00\r\n"))
    return colors, depths


def test_round_trip_reads_back_with_rosbags_alone(tmp_path, rng):
    bag = tmp_path / "rt"
    colors, depths = _write_bag(bag, 12, rng)
    # rosbags alone, without caper_edge: standard types and embedded schemas are enough.
    with AnyReader([bag]) as reader:
        counts = {t: i.msgcount for t, i in reader.topics.items()}
        assert counts == {topics.COLOR_RAW: 12, topics.COLOR_COMPRESSED: 12, topics.DEPTH: 6, topics.SCALE_RAW: 12}
        assert {c.msgdef.data != "" for c in reader.connections} == {True}
        got_rgb, got_depth, got_jpeg = [], [], []
        for conn, t, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.topic == topics.COLOR_RAW:
                got_rgb.append(np.asarray(msg.data).reshape(msg.height, msg.width, 3))
            elif conn.topic == topics.DEPTH:
                got_depth.append(np.asarray(msg.data).view("<u2").reshape(msg.height, msg.width))
            elif conn.topic == topics.COLOR_COMPRESSED:
                got_jpeg.append(cv2.cvtColor(cv2.imdecode(np.asarray(msg.data), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))
    for a, b in zip(colors, got_rgb, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(depths, got_depth, strict=True):
        np.testing.assert_array_equal(a, b)
    # Our reader decodes the same messages to the same pixels as plain OpenCV.
    with BagReader(bag) as reader:
        ours = [decode_color(m.msg) for m in reader.messages([topics.COLOR_COMPRESSED])]
        raw = [decode_color(m.msg) for m in reader.messages([topics.COLOR_RAW])]
        dep = [decode_depth(m.msg) for m in reader.messages([topics.DEPTH])]
    for a, b in zip(got_jpeg, ours, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(colors, raw, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(depths, dep, strict=True):
        np.testing.assert_array_equal(a, b)


def test_mcap_library_reads_our_file(tmp_path, rng):
    mcap_reader = pytest.importorskip("mcap.reader")
    bag = tmp_path / "m"
    _write_bag(bag, 8, rng)
    with open(bag / "m.mcap", "rb") as f:
        reader = mcap_reader.make_reader(f)
        summary = reader.get_summary()
        schemas = {s.name: s.encoding for s in summary.schemas.values()}
        assert schemas == {ros.IMAGE: "ros2msg", ros.COMPRESSED_IMAGE: "ros2msg", ros.STRING: "ros2msg"}
        defs = {s.name: s.data.decode() for s in summary.schemas.values()}
        assert defs[ros.STRING].strip() == "string data"
        assert "MSG: std_msgs/Header" in defs[ros.IMAGE]  # full definitions, dependencies included
        assert {c.message_encoding for c in summary.channels.values()} == {"cdr"}
        assert sum(1 for _ in reader.iter_messages()) == summary.statistics.message_count == 8 + 8 + 4 + 8


def test_single_mcap_file_without_metadata(tmp_path, rng):
    bag = tmp_path / "b"
    colors, _ = _write_bag(bag, 5, rng)
    lone = tmp_path / "lone.mcap"
    shutil.copy(bag / "b.mcap", lone)
    with BagReader(lone) as reader:
        assert reader.topics[topics.COLOR_RAW].count == 5
        first = next(reader.messages([topics.COLOR_RAW]))
        np.testing.assert_array_equal(decode_color(first.msg), colors[0])


def test_time_order_topic_filter_and_seek(tmp_path, rng):
    bag = tmp_path / "o"
    _write_bag(bag, 10, rng)
    with BagReader(bag) as reader:
        times = [m.t_ns for m in reader.messages(deserialize=False)]
        assert times == sorted(times)
        only = {m.topic for m in reader.messages([topics.DEPTH, topics.SCALE_RAW])}
        assert only == {topics.DEPTH, topics.SCALE_RAW}
        start = T0 + 4 * PERIOD
        seeked = [m.t_ns for m in reader.messages([topics.COLOR_RAW], start_ns=start)]
        assert seeked == [T0 + i * PERIOD for i in range(4, 10)]


def test_db3_and_ros1_bags_are_read(tmp_path, rng):
    ts2 = get_typestore(Stores.ROS2_HUMBLE)
    ts1 = get_typestore(Stores.ROS1_NOETIC)
    frames = [rng.integers(0, 256, (6, 8, 3), dtype=np.uint8) for _ in range(4)]
    with Writer2(tmp_path / "s", version=9, storage_plugin=StoragePlugin.SQLITE3) as w:
        c = w.add_connection(topics.COLOR_RAW, ros.IMAGE, typestore=ts2)
        for i, f in enumerate(frames):
            w.write(c, T0 + i * PERIOD, ts2.serialize_cdr(ros.image(T0 + i * PERIOD, "c", f, "bgr8"), ros.IMAGE))
    with Writer1(tmp_path / "one.bag") as w:
        c = w.add_connection(topics.COLOR_RAW, ros.IMAGE, typestore=ts1)
        T = ts1.types
        for i, f in enumerate(frames):
            hdr = T["std_msgs/msg/Header"](seq=i, stamp=T["builtin_interfaces/msg/Time"](sec=1, nanosec=i), frame_id="c")
            msg = T[ros.IMAGE](header=hdr, height=6, width=8, encoding="rgb8", is_bigendian=0, step=24, data=f.reshape(-1))
            w.write(c, T0 + i * PERIOD, ts1.serialize_ros1(msg, ros.IMAGE))
    for path, as_rgb in ((tmp_path / "s", lambda f: f[..., ::-1]), (tmp_path / "s" / "s.db3", lambda f: f[..., ::-1]),
                         (tmp_path / "one.bag", lambda f: f)):
        with BagReader(path) as reader:
            got = [decode_color(m.msg) for m in reader.messages()]
        assert len(got) == 4, path
        for f, g in zip(frames, got, strict=True):
            np.testing.assert_array_equal(g, as_rgb(f))


def test_truncated_mcap_yields_what_precedes_the_cut(tmp_path, rng):
    stream_reader = pytest.importorskip("mcap.stream_reader")
    bag = tmp_path / "t"
    _write_bag(bag, 40, rng, chunk_bytes=20_000)  # many small chunks
    data = (bag / "t.mcap").read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    # Independent reference: the mcap library's streaming reader counts complete messages until it fails.
    expected = 0
    try:
        for record in stream_reader.StreamReader(io.BytesIO(cut.read_bytes()), skip_magic=False).records:
            expected += type(record).__name__ == "Message"
    except Exception:  # noqa: BLE001 - it raises EndOfFile at the cut
        pass
    assert expected > 10
    with BagReader(cut) as reader:
        got = []
        with pytest.raises(InputError) as err:
            for m in reader.messages():
                got.append(m)
    assert len(got) == expected
    with BagReader(bag) as full:
        reference = list(full.messages(deserialize=False))[: len(got)]
    assert [(m.topic, m.t_ns, bytes(m.raw)) for m in got] == [(m.topic, m.t_ns, bytes(m.raw)) for m in reference]
    text = str(err.value)
    assert "cut.mcap" in text and "byte" in text and "topic" in text and f"after message {expected}" in text


def test_corrupt_db3_stops_at_the_damage_with_file_topic_position(tmp_path, rng):
    ts = ros.typestore()
    strings = [f"line {i:04d} " + "x" * 400 for i in range(400)]
    with Writer2(tmp_path / "d", version=9, storage_plugin=StoragePlugin.SQLITE3) as w:
        c = w.add_connection(topics.SCALE_RAW, ros.STRING, typestore=ts)
        for i, s in enumerate(strings):
            w.write(c, T0 + i * 12_500_000, ts.serialize_cdr(ros.string(s), ros.STRING))
    db = tmp_path / "d" / "d.db3"
    for name, damage in (("cut", lambda b: b[: len(b) // 2]), ("garbled", lambda b: b[: len(b) // 2] + os.urandom(8192) + b[len(b) // 2 + 8192 :])):
        bad = tmp_path / f"{name}.db3"
        bad.write_bytes(damage(db.read_bytes()))
        got = []
        with BagReader(bad) as reader, pytest.raises(InputError) as err:
            for m in reader.messages():
                got.append(m.msg.data)
        assert 0 < len(got) < len(strings), name
        assert got == strings[: len(got)], name  # a clean prefix: nothing invented, nothing reordered
        text = str(err.value)
        assert f"{name}.db3" in text and topics.SCALE_RAW in text and f"after message {len(got)}" in text, text


def test_garbage_file_is_a_clean_error(tmp_path):
    junk = tmp_path / "junk.mcap"
    junk.write_bytes(b"not an mcap at all" * 10)
    with pytest.raises(InputError, match="junk.mcap"):
        BagReader(junk)
    with pytest.raises(InputError, match="does not exist"):
        BagReader(tmp_path / "missing.mcap")
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(InputError, match="unknown file type"):
        BagReader(tmp_path / "x.txt")


def test_decode_errors_name_the_problem():
    ts = ros.typestore()
    bad_jpeg = ros.compressed_image(0, "c", b"\xff\xd8garbage", "jpeg")
    with pytest.raises(FrameDecodeError, match="does not decode"):
        decode_color(bad_jpeg)
    with pytest.raises(FrameDecodeError, match="unknown compressed format"):
        decode_color(ros.compressed_image(0, "c", b"x", "webp"))
    with pytest.raises(FrameDecodeError, match="unknown colour encoding 'bayer_rggb8'"):
        decode_color(ros.image(0, "c", np.zeros((4, 4), np.uint8), "bayer_rggb8"))
    short = ros.image(0, "c", np.zeros((4, 4, 3), np.uint8), "rgb8")
    short = ts.types[ros.IMAGE](header=short.header, height=8, width=4, encoding="rgb8", is_bigendian=0, step=12, data=short.data)
    with pytest.raises(FrameDecodeError, match="needs"):
        decode_color(short)


def test_decode_encodings_against_opencv(rng):
    rgb = rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)
    bgra = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA)
    np.testing.assert_array_equal(decode_color(ros.image(0, "c", bgra, "bgra8")), rgb)
    yuyv = rng.integers(0, 256, (6, 10, 2), dtype=np.uint8)
    np.testing.assert_array_equal(decode_color(ros.image(0, "c", yuyv, "yuv422_yuy2")), cv2.cvtColor(yuyv, cv2.COLOR_YUV2RGB_YUYV))
    # Rows padded beyond width * bpp (step) are honoured.
    padded = np.zeros((6, 16, 3), np.uint8)
    padded[:, :10] = rgb
    msg = ros.image(0, "c", padded, "rgb8")
    msg = ros.typestore().types[ros.IMAGE](header=msg.header, height=6, width=10, encoding="rgb8", is_bigendian=0, step=48, data=msg.data)
    np.testing.assert_array_equal(decode_color(msg), rgb)
    # 32FC1 metres and librealsense's compressedDepth (12-byte header + 16-bit PNG).
    metres = np.array([[0.5, np.nan], [1.2345, 0.0]], np.float32)
    np.testing.assert_array_equal(decode_depth(ros.image(0, "d", metres, "32FC1")), [[500, 0], [1234, 0]])
    depth = rng.integers(0, 5000, (5, 7), dtype=np.uint16)
    ok, png = cv2.imencode(".png", depth)
    msg = ros.compressed_image(0, "d", b"\0" * 12 + png.tobytes(), "16UC1; compressedDepth png")
    np.testing.assert_array_equal(decode_depth(msg), depth)
    np.testing.assert_array_equal(decode_depth(msg, depth_unit_m=0.0001), np.rint(depth / 10.0).astype(np.uint16))


def test_bag_info_counts_rates_and_gaps(tmp_path, rng):
    bag = tmp_path / "i"
    with BagWriter(bag) as w:
        for i in list(range(30)) + list(range(40, 60)):  # a 10-frame hole
            t = T0 + i * PERIOD
            w.write(topics.SCALE_RAW, t, ros.string("x"))
    info = bag_info(bag)
    (stats,) = info.topics
    assert stats.count == 50
    assert stats.gaps == 1
    assert stats.max_gap_s == pytest.approx(11 * PERIOD / 1e9, abs=1e-6)
    assert stats.median_period_s == pytest.approx(PERIOD / 1e9, abs=1e-6)
    assert stats.rate_hz == pytest.approx(49 / (59 * PERIOD / 1e9), rel=1e-6)
    assert info.duration_s == pytest.approx(59 * PERIOD / 1e9, abs=1e-6)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "caper_edge", *args], capture_output=True, text=True, timeout=120)


def test_bag_info_cli(tmp_path, rng):
    bag = tmp_path / "c"
    _write_bag(bag, 6, rng, chunk_bytes=20_000)
    res = _cli("bag", "info", str(bag))
    assert res.returncode == 0, res.stderr
    for topic in (topics.COLOR_RAW, topics.DEPTH, topics.SCALE_RAW):
        assert topic in res.stdout
    res = _cli("bag", "info", "--json", str(bag))
    import json

    info = json.loads(res.stdout)
    assert {t["topic"]: t["count"] for t in info["topics"]}[topics.DEPTH] == 3
    cut = tmp_path / "cut.mcap"
    data = (bag / "c.mcap").read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    res = _cli("bag", "info", str(cut))
    assert res.returncode == 3
    assert "cut.mcap" in res.stderr and "byte" in res.stderr and "topic" in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = _cli("bag", "info", str(tmp_path / "nope"))
    assert res.returncode == 3 and "does not exist" in res.stderr
