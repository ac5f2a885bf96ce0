"""ScaleReader over a pty (with unplug / re-plug), loop:// and socket://."""

from __future__ import annotations

import dataclasses
import socket
import threading
import time

import numpy as np
import pytest
import serial

from caper_edge import config
from caper_edge.scale import encode_sample
from caper_edge.scale.loadcell import LoadCellModel
from caper_edge.scale.ptysim import PtyScale
from caper_edge.scale.reader import ScaleReader

NS = 1_000_000_000


@pytest.fixture
def cfg():
    return config.load().scale


def wait_for(predicate, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False


def sim_lines(cal, seconds: float = 120.0):
    model = LoadCellModel(cal, seed=11, noise_g=1.0)
    model.preload(812.0, (0.3, 0.6))
    return model.lines(0, int(seconds * NS), chunk_s=0.25)


def test_pty_samples_are_calibrated_and_time_mapped(cfg):
    # The status line is re-sent every 0.5 s: the one sent as the reader opened the port can be
    # flushed with the input buffer when the machine is loaded (a CI run lost it once).
    with (PtyScale(sim_lines(cfg.calibration), status_every_s=0.5) as sim,
          ScaleReader(cfg, port=sim.path) as reader):
        assert wait_for(lambda: reader.counters["samples"] >= 60 and reader.health()["firmware"] is not None)
        samples = reader.drain()
        now = time.monotonic_ns()
    raw = np.array([s.raw for s in samples], dtype=np.float64)
    cells = (raw - np.array(cfg.calibration.offsets)) * np.array(cfg.calibration.gains)   # independent numpy
    np.testing.assert_allclose([s.cells for s in samples], cells, rtol=1e-12)
    np.testing.assert_allclose([s.grams for s in samples], cells.sum(axis=1), rtol=1e-12)
    assert abs(np.mean([s.grams for s in samples]) - 812.0) < 2.0
    t = np.array([s.t_ns for s in samples])
    assert (np.diff(t) > 0).all()
    assert 0 <= now - t[-1] < 0.5 * NS                             # on the host monotonic clock
    # consecutive samples are 12.5 ms apart on the MCU clock and so on the host clock
    assert np.median(np.diff(t)) == pytest.approx(12_500_000, abs=1_000_000)
    assert reader.state == "stopped" and reader.health()["firmware"] == "caper-sim-1.0"


def test_unplug_and_replug_resume_within_two_seconds(cfg, tmp_path):
    link = tmp_path / "caper-scale"                   # what udev's symlink would be
    with PtyScale(sim_lines(cfg.calibration), link=link) as sim, ScaleReader(cfg, port=str(link)) as reader:
        assert wait_for(lambda: reader.counters["samples"] > 20)
        sim.unplug()
        assert wait_for(lambda: reader.state == "reconnecting", timeout=1.0)
        time.sleep(0.7)                                # unplugged for a while: open attempts fail
        assert reader.counters["open_failures"] >= 1
        before = reader.counters["samples"]
        sim.replug()
        # No wall-clock assertion (CI machines stall): the 2 s bound follows from the backoff cap,
        # which the reader never exceeds between reopen attempts; here we check it resumes at all,
        # in place, without a restart.
        assert cfg.reconnect_max_s <= 1.0
        assert wait_for(lambda: reader.counters["samples"] > before, timeout=10.0), reader.health()
        assert reader.state == "connected" and reader.counters["reconnects"] == 1
        assert wait_for(lambda: reader.counters["samples"] > before + 20)


def test_silent_link_is_reopened(cfg):
    quiet = dataclasses.replace(cfg, stale_after_s=0.2)
    with PtyScale(iter(())) as sim, ScaleReader(quiet, port=sim.path) as reader:   # open but mute
        assert wait_for(lambda: reader.counters["stale_links"] >= 1, timeout=2.0)
        # reopened, or backing off before it: waited for, as the reader's thread may be between
        # closing the mute port and either (a loaded machine saw neither at once)
        assert wait_for(lambda: reader.counters["connects"] >= 2 or reader.state == "reconnecting", timeout=2.0)


def test_missing_device_backs_off_and_reports(cfg, tmp_path):
    fast = dataclasses.replace(cfg, reconnect_initial_s=0.01, reconnect_max_s=0.08)
    with ScaleReader(fast, port=str(tmp_path / "nope")) as reader:
        time.sleep(0.5)
        h = reader.health()
    # backoff 10, 20, 40, 80, 80 ... ms: about 8 tries in 0.5 s, not hundreds
    assert 3 <= h["open_failures"] <= 12
    assert h["state"] == "reconnecting" and "nope" in h["last_error"]


def test_loop_url_and_bounded_queue(cfg):
    small = dataclasses.replace(cfg, queue_size=10)
    port = serial.serial_for_url("loop://", timeout=0.05)
    reader = ScaleReader(small, port="loop://", open_port=lambda *a, **k: port)
    reader.start()
    try:
        assert wait_for(lambda: reader.state == "connected")
        port.write(b"".join(encode_sample(i, 1000 + 12 * i, [i, 0, 0, 0], 0) for i in range(30)))
        assert wait_for(lambda: reader.counters["samples"] == 30)
        kept = reader.drain()
    finally:
        reader.stop()
    assert [s.seq for s in kept] == list(range(20, 30))          # newest win
    assert reader.counters["dropped"] == 20


def test_socket_url_reconnects_after_peer_hangs_up(cfg):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(2)
    host, port = server.getsockname()
    sessions = []

    def serve():
        for k in range(2):
            conn, _ = server.accept()
            time.sleep(0.1)          # pyserial drains what arrives while it opens a socket:// port
            conn.sendall(b"".join(encode_sample(100 * k + i, 10 * i, [k, 0, 0, 0], 0) for i in range(10)))
            time.sleep(0.1)
            conn.close()                                 # the peer hangs up: EOF on the reader
            sessions.append(k)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    fast = dataclasses.replace(cfg, reconnect_initial_s=0.02)
    with ScaleReader(fast, port=f"socket://{host}:{port}") as reader:
        assert wait_for(lambda: reader.counters["samples"] >= 20, timeout=3.0), reader.health()
        seqs = [s.seq for s in reader.drain()]
    server.close()
    assert seqs == list(range(10)) + list(range(100, 110))
    assert reader.counters["reconnects"] >= 1


def test_callback_errors_do_not_kill_the_link(cfg):
    got = []

    def callback(sample):
        got.append(sample.seq)
        if sample.seq % 2:
            raise RuntimeError("consumer bug")

    port = serial.serial_for_url("loop://", timeout=0.05)
    with ScaleReader(cfg, on_sample=callback, open_port=lambda *a, **k: port) as reader:
        assert wait_for(lambda: reader.state == "connected")
        port.write(b"".join(encode_sample(i, i, [0, 0, 0, 0], 0) for i in range(6)))
        assert wait_for(lambda: len(got) == 6)
    assert reader.counters["callback_errors"] == 3
