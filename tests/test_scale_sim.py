"""`caper-edge scale-sim`: a reader on its pty receives exactly the scenario's (or the bag's) samples."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from caper_edge import config
from caper_edge.scale.loadcell import LoadCellModel
from caper_edge.scale.reader import ScaleReader
from caper_edge.scale.scenarios import build

NS = 1_000_000_000


def start_sim(*args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "caper_edge", "scale-sim", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    path = proc.stdout.readline().strip()
    if not path:
        proc.kill()
        pytest.fail(f"scale-sim printed no path: {proc.stderr.read()}")
    return proc, path


def collect(path: str, n: int, timeout: float = 20.0) -> list:
    cfg = config.load().scale
    got: list = []
    with ScaleReader(cfg, port=path) as reader:
        deadline = time.monotonic() + timeout
        while len(got) < n and time.monotonic() < deadline:
            s = reader.get(timeout=0.1)
            if s is not None:
                got.append(s)
    return got


def test_scenario_samples_arrive_as_the_model_made_them():
    proc, path = start_sim("--scenario", "steps", "--seed", "3", "--speed", "4", "--quiet")
    try:
        got = collect(path, 200)
    finally:
        proc.terminate()
        proc.wait(10)
    assert len(got) == 200
    sc = build("steps", config.load().scale.calibration, 3)
    b = sc.model.samples(0, sc.duration_ns)
    by_seq = {int(s): i for i, s in enumerate(b.seq)}
    for s in got:
        i = by_seq[s.seq]
        assert s.raw == tuple(int(v) for v in b.raw[i]) and s.t_ms == b.t_ms[i] and s.flags == b.flags[i]
    steps = np.diff([s.seq for s in got])
    # In order, never repeated; the simulated MCU drops lines nobody drained for ~100 ms (as a USB
    # port does), which a starved reader on a loaded 2-core machine can cause now and then.
    assert np.all(steps >= 1)
    assert np.mean(steps == 1) >= 0.95, steps


def test_bag_replay(tmp_path):
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    string = store.types["std_msgs/msg/String"]
    model = LoadCellModel(None, seed=8)
    model.preload(321.0)
    lines = list(model.lines(0, 2 * NS))
    bag = tmp_path / "scale_bag"
    with Writer(bag, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection("/scale/raw", string.__msgtype__, typestore=store)
        for t_ns, line in lines:
            data = store.serialize_cdr(string(data=line.decode("ascii")), string.__msgtype__)
            writer.write(conn, 10 * NS + t_ns, data)
    proc, path = start_sim("--bag", str(bag), "--speed", "2", "--quiet")
    try:
        got = collect(path, 100)
    finally:
        proc.terminate()
        proc.wait(10)
    b = model.samples(0, 2 * NS)
    start = int(np.flatnonzero(b.seq == got[0].seq)[0])
    assert [s.raw for s in got] == [tuple(int(v) for v in r) for r in b.raw[start : start + len(got)]]


def test_bag_without_scale_topic_is_an_error(tmp_path):
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    string = store.types["std_msgs/msg/String"]
    bag = tmp_path / "other_bag"
    with Writer(bag, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection("/catalog", string.__msgtype__, typestore=store)
        writer.write(conn, 1, store.serialize_cdr(string(data="{}"), string.__msgtype__))
    proc = subprocess.run([sys.executable, "-m", "caper_edge", "scale-sim", "--bag", str(bag), "--quiet"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "/scale/raw" in proc.stderr and "Traceback" not in proc.stderr
