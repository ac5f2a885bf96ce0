"""Sources: BagSource (pairing, pacing, loop, bad input), librealsense recordings and the live
RealSenseSource via pyrealsense2's software_device, SimulatorSource, the clock mapper and the
depth-to-colour alignment against per-pixel reference implementations."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from caper_edge import config
from caper_edge.bags import BagWriter, encode_jpeg, ros, topics
from caper_edge.errors import InputError
from caper_edge.sources import BagSource, CameraInfo, DepthPairer, Frame, GroundTruthEvent, ScaleLine, SimulatorSource
from caper_edge.sources.align import align_depth_to_color
from caper_edge.sources.clock import ClockMapper
from caper_edge.sources.pacing import Pacer, parse_speed

T0 = 5_000_000_000
PERIOD = 33_333_333


def _bag(path, n=20, *, depth_every=2, depth_offset_ns=0, bad=(), encoding="jpeg", objects=False):
    with BagWriter(path) as w:
        for i in range(n):
            t = T0 + i * PERIOD
            rgb = np.full((24, 32, 3), i, np.uint8)
            if i in bad:
                w.write(topics.COLOR_COMPRESSED, t, ros.compressed_image(t, "c", b"\xff\xd8broken", "jpeg"))
            elif encoding == "jpeg":
                w.write(topics.COLOR_COMPRESSED, t, ros.compressed_image(t, "c", encode_jpeg(rgb, 95), "jpeg"))
            else:
                w.write(topics.COLOR_RAW, t, ros.image(t, "c", rgb, encoding))
            if objects:
                w.write(topics.GT_OBJECTS, t, ros.string(f'[{{"id": {i}}}]'))
            if i % depth_every == 0:
                td = t + depth_offset_ns
                w.write(topics.DEPTH, td, ros.image(td, "c", np.full((24, 32), 100 + i, np.uint16), "16UC1"))
            for k in range(3):
                w.write(topics.SCALE_RAW, t + k * 11_000_000 + 1, ros.string(f"line {i}.{k}\r\n"))
        w.write(topics.CAMERA_INFO, T0, ros.camera_info(T0, "c", 32, 24, (30, 30, 16, 12)))
        w.write(topics.GT_EVENTS, T0 + 3 * PERIOD, ros.string('{"type": "item_added", "sku": "A", "qty": 1}'))


# --------------------------------------------------------------------------------------------------
# Pairing
# --------------------------------------------------------------------------------------------------


def test_depth_pairer_matches_brute_force_nearest(rng):
    for _ in range(30):
        color_t = np.cumsum(rng.integers(25, 45, 40)) * 1_000_000
        depth_t = np.sort(rng.choice(np.arange(0, color_t[-1] + 50_000_000, 1_000_000), 18, replace=False))
        max_gap = int(rng.integers(5, 60)) * 1_000_000
        stream = sorted([(int(t), 1, "c") for t in color_t] + [(int(t), 0, "d") for t in depth_t])
        pairer = DepthPairer(max_gap)
        out = []
        for t, _, kind in stream:
            out += pairer.push_color(t, t) if kind == "c" else pairer.push_depth(t, t)
        out += pairer.finish()
        assert [p.t_ns for p in out] == sorted(int(t) for t in color_t)
        for p in out:
            gaps = np.abs(depth_t - p.t_ns)
            best = int(np.argmin(gaps))  # ties: argmin takes the earlier one, as the pairer does
            want = int(depth_t[best]) if gaps[best] <= max_gap else None
            assert (p.depth[0] if p.depth else None) == want


def test_bag_source_pairs_depth_and_keeps_time_order(tmp_path):
    _bag(tmp_path / "b", 20, depth_every=2, depth_offset_ns=3_000_000)
    with BagSource(tmp_path / "b") as src:
        msgs = list(src)
    times = [m.t_ns for m in msgs]
    assert times == sorted(times)
    frames = [m for m in msgs if isinstance(m, Frame)]
    assert [f.color[0, 0, 0] for f in frames] == list(range(20))  # JPEG of a flat colour decodes exactly
    for f in frames:
        i = f.index
        # Depth frame k sits at T0 + k*PERIOD + 3 ms: frame i pairs with depth i (even) or i-1/i+1.
        want = i if i % 2 == 0 else i - 1
        assert f.depth_t_ns == T0 + want * PERIOD + 3_000_000
        assert f.depth[0, 0] == 100 + want
        assert f.camera == CameraInfo(32, 24, 30.0, 30.0, 16.0, 12.0, frame_id="c")
    assert src.stats.frames == 20 and src.stats.depth_frames == 10 and src.stats.depth_frames_used == 10
    assert sum(isinstance(m, ScaleLine) for m in msgs) == 60
    assert [m.event["type"] for m in msgs if isinstance(m, GroundTruthEvent)] == ["item_added"]
    assert msgs[[isinstance(m, ScaleLine) for m in msgs].index(True)].data == b"line 0.0\r\n"


def test_ground_truth_objects_join_their_frame(tmp_path):
    _bag(tmp_path / "g", 6, objects=True)
    with BagSource(tmp_path / "g") as src:
        frames = [m for m in src if isinstance(m, Frame)]
    assert [f.objects for f in frames] == [[{"id": i}] for i in range(6)]
    with BagSource(tmp_path / "g", ground_truth=False, scale=False) as src:
        assert all(isinstance(m, Frame) and m.objects is None for m in src)


def test_no_depth_topic_and_raw_colour(tmp_path):
    with BagWriter(tmp_path / "r") as w:
        for i in range(5):
            t = T0 + i * PERIOD
            w.write(topics.COLOR_RAW, t, ros.image(t, "c", np.full((4, 6, 3), [i, 2 * i, 3 * i], np.uint8), "bgr8"))
    with BagSource(tmp_path / "r") as src:
        frames = list(src)
    assert [tuple(f.color[0, 0]) for f in frames] == [(3 * i, 2 * i, i) for i in range(5)]
    assert all(f.depth is None for f in frames) and src.stats.frames_without_depth == 5


def test_seek_loop_and_decode_false(tmp_path):
    _bag(tmp_path / "l", 10)
    with BagSource(tmp_path / "l", start_s=5 * PERIOD / 1e9, scale=False, ground_truth=False) as src:
        assert [f.color[0, 0, 0] for f in src] == [5, 6, 7, 8, 9]
    with BagSource(tmp_path / "l", loop=True, scale=False, ground_truth=False) as src:
        frames = []
        for f in src:
            frames.append(f)
            if len(frames) == 25:
                break
    assert [f.index for f in frames] == list(range(25))
    assert np.all(np.diff([f.t_ns for f in frames]) > 0)
    assert [f.color[0, 0, 0] for f in frames] == [i % 10 for i in range(25)]
    assert src.stats.loops == 2
    with BagSource(tmp_path / "l", decode=False, scale=False) as src:
        f = next(iter(src))
    assert f.color is None and f.encoded[0] == "jpeg"
    assert f.decode()[0, 0, 0] == 0


def test_realtime_pacing_with_a_fake_clock(tmp_path, monkeypatch):
    _bag(tmp_path / "p", 10)
    now = [0]
    slept = []

    def fake_sleep(s):
        slept.append(s)
        now[0] += int(s * 1e9)

    monkeypatch.setattr(Pacer, "clock", staticmethod(lambda: now[0]))
    monkeypatch.setattr(Pacer, "sleep", staticmethod(fake_sleep))
    for speed, factor in (("realtime", 1.0), (4.0, 4.0)):
        now[0], slept[:] = 0, []
        with BagSource(tmp_path / "p", speed=speed) as src:
            msgs = list(src)
        span = (msgs[-1].t_ns - msgs[0].t_ns) / 1e9
        assert sum(slept) == pytest.approx(span / factor, rel=1e-6)
    assert parse_speed("max") is None and parse_speed("2.5") == 2.5
    for bad in ("fast", "0", "-1", "nan", "inf"):
        with pytest.raises(ValueError, match="speed"):
            parse_speed(bad)


def test_bad_frames_are_counted_and_reported_after_the_rest(tmp_path):
    _bag(tmp_path / "x", 12, bad=(4, 7))
    got = []
    with BagSource(tmp_path / "x") as src, pytest.raises(InputError) as err:
        for m in src:
            if isinstance(m, Frame):
                got.append(m.color[0, 0, 0])
    assert got == [i for i in range(12) if i not in (4, 7)]
    assert src.stats.bad_frames == 2
    text = str(err.value)
    assert "x" in text and topics.COLOR_COMPRESSED in text and "message" in text and "t=" in text
    with BagSource(tmp_path / "x", strict=False) as src:
        assert sum(isinstance(m, Frame) for m in src) == 10
        assert len(src.stats.problems) == 2


def test_unknown_encoding_and_missing_colour_topic(tmp_path):
    _bag(tmp_path / "u", 4, encoding="bayer_rggb8")
    with BagSource(tmp_path / "u") as src, pytest.raises(InputError, match="unknown colour encoding 'bayer_rggb8'"):
        list(src)
    with BagWriter(tmp_path / "s") as w:
        w.write(topics.SCALE_RAW, T0, ros.string("x"))
    with pytest.raises(InputError, match=r"no colour image topic.*topics in the bag: /scale/raw"):
        BagSource(tmp_path / "s")


# --------------------------------------------------------------------------------------------------
# librealsense and the live camera (pyrealsense2 software_device: no hardware)
# --------------------------------------------------------------------------------------------------


class SoftCamera:
    """A software_device with a colour and a depth sensor, fed from a thread at 30/15 FPS."""

    W, H = 64, 48

    def __init__(self, rs):
        self.rs = rs
        self.dev = rs.software_device()
        self.dev.register_info(rs.camera_info.name, "Soft D4xx")
        self.dev.register_info(rs.camera_info.serial_number, "0001")
        self.cs = self.dev.add_sensor("RGB Camera")
        self.ds = self.dev.add_sensor("Stereo Module")
        intr = rs.intrinsics()
        intr.width, intr.height, intr.ppx, intr.ppy, intr.fx, intr.fy = self.W, self.H, 32.0, 24.0, 50.0, 50.0
        intr.model, intr.coeffs = rs.distortion.none, [0.0] * 5
        self.cp = self.cs.add_video_stream(self._stream(rs.stream.color, 0, 30, 3, rs.format.rgb8, intr))
        self.dp = self.ds.add_video_stream(self._stream(rs.stream.depth, 1, 15, 2, rs.format.z16, intr))
        self.ds.add_read_only_option(rs.option.depth_units, 0.001)
        ext = rs.extrinsics()
        ext.rotation, ext.translation = [1, 0, 0, 0, 1, 0, 0, 0, 1], [0, 0, 0]
        self.dp.register_extrinsics_to(self.cp, ext)
        self.pushed_color, self.pushed_depth = [], []
        self.paused = threading.Event()
        self._stop = False

    def _stream(self, kind, uid, fps, bpp, fmt, intr):
        s = self.rs.video_stream()
        s.type, s.index, s.uid, s.width, s.height, s.fps, s.bpp, s.fmt, s.intrinsics = kind, 0, uid, self.W, self.H, fps, bpp, fmt, intr
        return s

    def push(self, i: int) -> None:
        rs = self.rs
        t = i * 1000.0 / 30
        img = np.zeros((self.H, self.W, 3), np.uint8)
        img[..., 0], img[..., 1], img[..., 2] = i % 256, 7, 200
        f = rs.software_video_frame()
        f.pixels, f.bpp, f.stride, f.timestamp, f.domain, f.frame_number = img, 3, self.W * 3, t, rs.timestamp_domain.hardware_clock, i
        f.profile = self.cp.as_video_stream_profile()
        self.cs.on_video_frame(f)
        self.pushed_color.append(i % 256)
        if i % 2 == 0:
            d = np.full((self.H, self.W), 400 + i, np.uint16)
            f = rs.software_video_frame()
            f.pixels, f.bpp, f.stride, f.timestamp, f.domain, f.frame_number = d, 2, self.W * 2, t, rs.timestamp_domain.hardware_clock, i // 2
            f.profile = self.dp.as_video_stream_profile()
            self.ds.on_video_frame(f)
            self.pushed_depth.append(400 + i)

    def feed(self, n: int | None = None, period: float = 1 / 30):
        def run():
            i = 0
            while not self._stop and (n is None or i < n):
                if not self.paused.is_set():
                    self.push(i)
                    i += 1
                time.sleep(period)

        th = threading.Thread(target=run, daemon=True)
        th.start()
        return th

    def stop(self):
        self._stop = True


def test_librealsense_recording_replays_with_every_frame(tmp_path):
    rs = pytest.importorskip("pyrealsense2", reason="pyrealsense2 (with libusb) is not importable", exc_type=ImportError)
    cam = SoftCamera(rs)
    path = tmp_path / "rs_recording.db3"  # librealsense >= 2.57 writes rosbag2 SQLite
    recorder = rs.recorder(str(path), cam.dev)
    queue = rs.frame_queue(200)
    cam.cs.open(cam.cp)
    cam.ds.open(cam.dp)
    cam.cs.start(queue)
    cam.ds.start(queue)
    cam.feed(12, period=1 / 30).join()
    time.sleep(0.2)
    for s in (cam.cs, cam.ds):
        s.stop()
        s.close()
    del recorder  # librealsense closes the file when the recorder goes away
    import gc

    gc.collect()
    with BagSource(path) as src:
        assert src.layout.kind == "librealsense"
        frames = [m for m in src if isinstance(m, Frame)]
    assert src.stats.bad_frames == 0 and not src.stats.problems
    assert len(frames) == len(cam.pushed_color) == 12
    assert [int(f.color[0, 0, 0]) for f in frames] == cam.pushed_color  # PNG: lossless, RGB order kept
    assert all(tuple(f.color[5, 5, 1:]) == (7, 200) for f in frames)
    assert src.stats.depth_frames == len(cam.pushed_depth) == 6
    assert src.stats.depth_frames_used == 6
    assert {int(f.depth[0, 0]) for f in frames if f.depth is not None} == set(cam.pushed_depth)
    assert frames[0].camera.fx == 50.0 and frames[0].camera.width == SoftCamera.W


def test_realsense_source_software_device_aligns_maps_and_reconnects():
    rs = pytest.importorskip("pyrealsense2", reason="pyrealsense2 (with libusb) is not importable", exc_type=ImportError)
    from caper_edge.sources import RealSenseSource

    cam = SoftCamera(rs)
    # option_range(min, max, default, step)
    cam.cs.add_option(rs.option.enable_auto_exposure, rs.option_range(0, 1, 1, 1), True)
    cam.cs.add_option(rs.option.exposure, rs.option_range(1, 10000, 100, 1), True)
    cam.cs.add_option(rs.option.gain, rs.option_range(0, 128, 16, 1), True)
    cfg = dataclasses.replace(config.load().camera, width=SoftCamera.W, height=SoftCamera.H, auto_exposure=False,
                              exposure_us=3000, gain=40, frame_timeout_ms=300, reconnect_min_s=0.05, reconnect_max_s=0.2)
    src = RealSenseSource(cfg, device_factory=lambda: cam.dev)
    cam.feed()
    frames, reconnected_at = [], None
    try:
        for f in src:
            frames.append((f, time.monotonic_ns()))
            if len(frames) == 12:
                cam.paused.set()  # "unplug": nothing arrives for longer than frame_timeout_ms
                threading.Timer(0.9, cam.paused.clear).start()
            if src.stats.reconnects and reconnected_at is None:
                reconnected_at = len(frames)
            if len(frames) == 24:
                break
    finally:
        cam.stop()
        src.close()
    assert src.stats.reconnects >= 1 and reconnected_at is not None
    assert cam.cs.get_option(rs.option.exposure) == 3000 and cam.cs.get_option(rs.option.gain) == 40
    assert cam.cs.get_option(rs.option.enable_auto_exposure) == 0
    values = [int(f.color[0, 0, 0]) for f, _ in frames]
    assert values == sorted(values) and len(set(values)) == len(values)  # in order, none twice
    for f, received in frames:
        assert f.t_ns <= received  # mapped onto the host clock, never into the future
        assert tuple(f.color[3, 3, 1:]) == (7, 200)
        if f.depth is not None:
            k = int(f.color[0, 0, 0])
            assert int(f.depth[0, 0]) in (400 + k, 400 + k - 1)  # the aligned depth of this or the previous frame
            assert f.depth.shape == (SoftCamera.H, SoftCamera.W)
    assert f.camera.fx == 50.0


def test_package_works_without_pyrealsense2():
    code = (
        "import sys; sys.modules['pyrealsense2'] = None\n"
        "import caper_edge.sources as s\n"
        "from caper_edge.errors import InputError\n"
        "try:\n    s.RealSenseSource()\nexcept InputError as e:\n    print('OK', e)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("OK") and "pyrealsense2" in res.stdout


# --------------------------------------------------------------------------------------------------
# Clock mapping and alignment against references
# --------------------------------------------------------------------------------------------------


def test_clock_mapper_recovers_offset_and_drift(rng):
    n = 3000
    device = np.arange(n) * 33_333_333
    drift = 40e-6
    offset = 7_000_000_000
    true_host = offset + device * (1 + drift)
    delay = (1_000_000 + rng.exponential(2_000_000, n)).astype(np.int64)
    arrival = (true_host + delay).astype(np.int64)
    m = ClockMapper(window=300)
    mapped = np.array([m.map(int(d), int(a)) for d, a in zip(device, arrival)])
    err = mapped[300:] - true_host[300:]
    # The least-delayed message in a 10 s window is within ~1 ms of the truth; drift adds at
    # most 40 ppm x 10 s = 0.4 ms of lag.
    assert np.percentile(np.abs(err - 1_000_000), 95) < 800_000
    assert np.all(mapped <= arrival) and np.all(np.diff(mapped) >= 0)
    # A device clock jump (camera reset) restarts the estimate instead of mapping into the past.
    later = m.map(0, int(arrival[-1]) + 50_000_000)
    assert m.resets == 1 and later >= mapped[-1]


def _align_reference(depth, dcam, ccam, r, t):
    out = np.zeros((ccam.height, ccam.width), np.uint16)
    for v in range(depth.shape[0]):
        for u in range(depth.shape[1]):
            z = depth[v, u] / 1000.0
            if z == 0:
                continue
            p = np.array([(u - dcam.cx) / dcam.fx * z, (v - dcam.cy) / dcam.fy * z, z])
            q = r @ p + t
            uc = int(np.rint(q[0] / q[2] * ccam.fx + ccam.cx))
            vc = int(np.rint(q[1] / q[2] * ccam.fy + ccam.cy))
            if 0 <= uc < ccam.width and 0 <= vc < ccam.height:
                mm = int(np.clip(np.rint(q[2] * 1000), 1, 65535))
                if out[vc, uc] == 0 or mm < out[vc, uc]:
                    out[vc, uc] = mm
    return out


def test_align_depth_to_color_matches_reference(rng):
    dcam = CameraInfo(13, 11, 12.0, 12.5, 6.2, 5.1)
    ccam = CameraInfo(17, 13, 15.0, 15.0, 8.4, 6.3)
    depth = rng.integers(300, 1500, (11, 13)).astype(np.uint16)
    depth[rng.random((11, 13)) < 0.2] = 0
    angle = 0.03
    r = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    t = np.array([0.015, -0.002, 0.001])
    np.testing.assert_array_equal(align_depth_to_color(depth, dcam, ccam, r, t), _align_reference(depth, dcam, ccam, r, t))
    same = CameraInfo(13, 11, 12.0, 12.5, 6.2, 5.1)
    assert align_depth_to_color(depth, dcam, same) is depth  # identity: no copy


# --------------------------------------------------------------------------------------------------
# Simulator source
# --------------------------------------------------------------------------------------------------


def test_simulator_source_streams_in_time_order():
    with SimulatorSource("busy", seed=4, duration_s=2.0) as src:
        msgs = list(src)
    times = [m.t_ns for m in msgs]
    assert times == sorted(times)
    frames = [m for m in msgs if isinstance(m, Frame)]
    assert len(frames) == 60 and src.stats.frames == 60 and src.stats.depth_frames == 30
    assert all(f.color.shape == (480, 640, 3) and f.depth.shape == (480, 640) and f.objects is not None for f in frames)
    lines = [m for m in msgs if isinstance(m, ScaleLine)]
    assert 155 <= len(lines) <= 165  # 80 Hz plus a status line
    from caper_edge.scale import ScaleDecoder

    dec = ScaleDecoder()
    samples = dec.feed(b"".join(m.data for m in lines))
    assert len(samples) == len(lines) - 1 and dec.stats.checksum_errors == 0
    skus = src.catalog["skus"]   # the same /catalog document a simulated bag carries
    assert skus and {"sku", "weight_g", "weight_std_g", "price"} <= set(skus[0])


# -- ProcessSource: any source in a child process ---------------------------------------------


def _same_messages(a, b):
    from caper_edge.sources import Frame, ScaleLine

    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert type(x) is type(y) and x.t_ns == y.t_ns
        if isinstance(x, Frame):
            assert x.index == y.index and x.depth_t_ns == y.depth_t_ns
            np.testing.assert_array_equal(x.color, y.color)
            np.testing.assert_array_equal(x.depth, y.depth)
        elif isinstance(x, ScaleLine):
            assert x.data == y.data


def test_process_source_streams_what_the_source_yields():
    from caper_edge.sources.process import ProcessSource
    from caper_edge.sources.simulator import SimulatorSource

    here = SimulatorSource("simple", 4, 2.0, speed="max", ground_truth=True)
    want = list(here)
    with ProcessSource(SimulatorSource, "simple", 4, 2.0, speed="max", ground_truth=True) as there:
        assert there.pid != os.getpid()
        assert there.catalog == here.catalog and there.camera == here.camera
        got = list(there)
        assert there.stats.frames == here.stats.frames == 60
        assert there.stats.scale_lines == here.stats.scale_lines > 0
        assert there.wait_exit(10.0), "the child must exit once its stream ended"
    _same_messages(got, want)


def test_process_source_names_a_source_that_cannot_start():
    from caper_edge.errors import InputError
    from caper_edge.sources.process import ProcessSource
    from caper_edge.sources.simulator import SimulatorSource

    with pytest.raises(InputError, match=r"SimulatorSource in a child process failed to start: .*nope"):
        ProcessSource(SimulatorSource, "nope", 1, 1.0)


def test_process_source_reports_a_killed_child_and_close_stops_a_running_one():
    import signal
    import threading

    from caper_edge.errors import InputError
    from caper_edge.sources.process import ProcessSource
    from caper_edge.sources.simulator import SimulatorSource

    src = ProcessSource(SimulatorSource, "long", 1, 600.0, speed="max", ground_truth=False)
    it = iter(src)
    for _ in range(5):
        next(it)
    os.kill(src.pid, signal.SIGKILL)
    with pytest.raises(InputError, match=r"child process \(pid \d+\) ended without finishing its stream: exit code -9"):
        for _ in it:
            pass
    src.close()

    # close() from another thread (the runtime's stop) ends the iteration and the child.
    src = ProcessSource(SimulatorSource, "long", 1, 600.0, speed="realtime", ground_truth=False)
    seen = []

    def consume():
        for msg in src:
            seen.append(msg)

    t = threading.Thread(target=consume)
    t.start()
    deadline = time.monotonic() + 30
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    src.close()
    t.join(10)
    assert seen and not t.is_alive()
    assert src.wait_exit(5.0)
