"""The threaded runtime (caper_edge.pipeline): lossless = the plain loop byte for byte, live mode
drops the oldest frames and counts them, real ZeroMQ subscribers, the scale pty unplugged and
re-plugged under a running pipeline, kill -9 of the real worker, bad configs and missing models,
the demo command, and the soak test (short here, `long` behind the `slow` marker)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from caper_edge import config
from caper_edge.catalog import Catalog
from caper_edge.cli import main
from caper_edge.errors import CaperError, ConfigError
from caper_edge.events import Event
from caper_edge.journal import Journal, Restored
from caper_edge.pipeline import NewestWins, Runtime, restore_basket
from caper_edge.publish import EventOutlet, EventServer, JsonlSink
from caper_edge.replay import Observations, Pipeline, open_model_vision
from caper_edge.sources import BagSource
from caper_edge.sources.messages import Frame

from _service import Service, _ping, _wait  # noqa: E402

NS = 1_000_000_000


@pytest.fixture(scope="module")
def sim_cfg():
    return config.load("sim-cart")


@pytest.fixture(scope="module")
def vision(sim_cfg):
    return open_model_vision(sim_cfg)


@pytest.fixture(scope="module")
def catalog(sim_bag):
    with BagSource(sim_bag) as src:
        return Catalog.from_json(src.catalog)


def _plain_events(bag, cfg, vision, catalog):
    pipe = Pipeline(cfg, catalog, vision)
    out = []
    with BagSource(bag, speed="max") as src:
        for msg in src:
            out += pipe.feed(msg)
    return out + pipe.finish()


# -- queues -------------------------------------------------------------------------------------


def test_newest_wins_drops_the_oldest_and_counts():
    q = NewestWins(2)
    for i in range(5):
        q.put(i)
    assert q.dropped == 3 and q.qsize() == 2
    assert [q.get(0), q.get(0)] == [3, 4]
    with pytest.raises(Exception):
        q.get(0.01)
    q.put(9)
    q.close()
    assert q.get(0) == 9
    assert q.get(0) is not None and q.qsize() == 0   # the end marker once closed and empty
    with pytest.raises(ValueError, match="capacity"):
        NewestWins(0)


def test_restore_basket_from_snapshot_and_later_events():
    from caper_edge.basket import Basket

    before = Basket()
    before.add("A", 1, confidence=0.9, track_id=4, t_ns=1)
    before.add("A", 1, confidence=0.8, track_id=5, t_ns=2)
    snap = before.snapshot(3, 10).to_dict()
    later = [Event("item_added", 20, sku="B", qty=1, confidence=0.7, seq=4),
             Event("item_removed", 30, sku="A", qty=1, confidence=0.9, seq=5)]
    basket = restore_basket(Restored(5, snap, 3, later))
    assert basket.counts() == {"A": 1, "B": 1}
    assert all(u.track_id is None for line in basket for u in line.units)   # old track ids mean nothing now
    assert restore_basket(Restored(0, None, 0, [])).total_qty == 0


# -- lossless: the plain loop's output ---------------------------------------------------------


def test_lossless_runtime_gives_the_plain_loop_events_and_replays_are_byte_identical(sim_bag, sim_cfg, vision, catalog,
                                                                                       tmp_path):
    plain = _plain_events(sim_bag, sim_cfg, vision, catalog)
    assert any(e.type == "item_added" for e in plain)
    outs = []
    for name in ("a.jsonl", "b.jsonl"):
        out = tmp_path / name
        assert main(["replay", str(sim_bag), "--config", "sim-cart", "--events", str(out), "--quiet"]) == 0
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    lines = [json.loads(line) for line in outs[0].decode().splitlines()]
    assert [d["seq"] for d in lines] == list(range(1, len(plain) + 1))
    for d, e in zip(lines, plain):
        assert Event.from_dict(d) == dataclasses.replace(e, seq=d["seq"])


# -- live: newest frame wins ---------------------------------------------------------------------


class _SlowVision:
    """Detects nothing, slowly: the detector falling behind a fast source."""

    def __init__(self, skus, delay_s):
        self.skus, self.delay_s, self.seen = skus, delay_s, []

    def __call__(self, frame):
        self.seen.append(frame.index)
        time.sleep(self.delay_s)
        z = np.zeros((0, 4), np.float32)
        return Observations(z, np.zeros(0, np.float32), np.zeros(0, np.int32))


class _Camera:
    """Frames at ``fps`` on the host monotonic clock (a live camera), until closed or ``n`` made."""

    def __init__(self, fps=30.0, n=None, size=(480, 640)):
        self.period, self.n, self.size = 1.0 / fps, n, size
        self.closed = threading.Event()
        self.stats = None

    def __iter__(self):
        i = 0
        next_t = time.monotonic()
        while not self.closed.is_set() and (self.n is None or i < self.n):
            yield Frame(time.monotonic_ns(), i, np.zeros((*self.size, 3), np.uint8))
            i += 1
            next_t += self.period
            self.closed.wait(max(0.0, next_t - time.monotonic()))

    def close(self):
        self.closed.set()


def _collecting_runtime(cfg, catalog, vision, source, **kw):
    events = []
    pipe = Pipeline(cfg, catalog, vision)

    def commit(draft, snapshot):
        events.append(draft)
        return draft

    return Runtime(cfg, pipe, source, commit, **kw), pipe, events


def test_live_mode_the_newest_frame_wins_and_every_drop_is_counted(sim_cfg, catalog):
    vision = _SlowVision(list(catalog.skus), 0.03)
    rt, pipe, _ = _collecting_runtime(sim_cfg, catalog, vision, _Camera(fps=200.0, n=120), lossless=False,
                                      live_clock=True, source_kind="camera")
    rt.run()
    assert rt.frames_captured == 120
    assert rt.frames_dropped > 0
    assert rt.frames_done + rt.frames_dropped == 120       # every frame processed or counted as dropped
    assert vision.seen == sorted(vision.seen) and vision.seen[-1] == 119   # in order; the newest survives
    health = rt.status().health
    assert health["drops"]["frames"] == rt.frames_dropped
    assert health["stages"]["capture_to_publish"]["count"] == rt.frames_done
    assert rt.status().waiting_for == "camera ended"


def test_lossless_mode_never_drops(sim_cfg, catalog):
    vision = _SlowVision(list(catalog.skus), 0.005)
    rt, _, _ = _collecting_runtime(sim_cfg, catalog, vision, _Camera(fps=500.0, n=60), lossless=True)
    rt.run()
    assert rt.frames_done == 60 and rt.frames_dropped == 0 and vision.seen == list(range(60))


@pytest.mark.parametrize("lossless", [True, False])
def test_several_vision_workers_hand_frames_to_the_tracker_in_order(sim_cfg, catalog, lossless):
    vision = _SlowVision(list(catalog.skus), 0.004)
    rt, _, _ = _collecting_runtime(sim_cfg, catalog, vision, _Camera(fps=400.0, n=150), lossless=lossless,
                                   keep_latencies=True, vision_workers=3)
    rt.run()
    order = [x.index for x in rt.latencies]
    assert order == sorted(order) and len(set(order)) == len(order) == rt.frames_done
    assert rt.frames_done + rt.frames_dropped == 150 and (rt.frames_dropped == 0 if lossless else True)


def test_a_stage_exception_is_reported_not_swallowed(sim_cfg, catalog):
    def broken(frame):
        raise RuntimeError("engine fell over")

    broken.skus = list(catalog.skus)
    rt, _, _ = _collecting_runtime(sim_cfg, catalog, broken, _Camera(fps=100.0, n=10), lossless=True)
    with pytest.raises(RuntimeError, match="engine fell over"):
        rt.run()
    assert "vision stage" in rt.fatal and rt.status().fatal == rt.fatal


# -- ZeroMQ ---------------------------------------------------------------------------------------


def _sub(ctx, endpoint, **opts):
    s = ctx.socket(zmq.SUB)
    s.linger = 0
    for k, v in opts.items():
        setattr(s, k, v)
    s.subscribe(b"")
    s.connect(endpoint)
    return s


def test_subscribers_get_exactly_the_jsonl_and_a_stalled_one_costs_nothing(sim_bag, sim_cfg, vision, catalog, tmp_path):
    ctx = zmq.Context()
    journal = Journal(tmp_path / "j.sqlite3")
    jsonl_path = tmp_path / "events.jsonl"
    pub_cfg = dataclasses.replace(sim_cfg.publish, pub="tcp://127.0.0.1:*", rep="tcp://127.0.0.1:*", heartbeat_ivl_ms=0,
                                  send_hwm=4)
    server = EventServer(pub_cfg, journal=journal, context=ctx)
    live = _sub(ctx, server.pub_endpoint)
    stalled = _sub(ctx, server.pub_endpoint, rcvhwm=1, rcvbuf=4096)   # never read below
    try:
        for _ in range(200):   # PUB drops until the subscriptions arrive: probe with health
            server.publish_health({"probe": True})
            if live.poll(20):
                break
        while live.poll(100):
            live.recv_multipart()
        outlet = EventOutlet(journal, server=server, jsonl=JsonlSink(jsonl_path, mode="truncate"))
        received = []
        stop = threading.Event()

        def reader():
            while not stop.is_set():
                if live.poll(50):
                    topic, payload = live.recv_multipart()
                    if topic == b"basket.event":
                        received.append(payload)

        t = threading.Thread(target=reader)
        t.start()
        pipe = Pipeline(sim_cfg, catalog, vision)
        rt = Runtime(sim_cfg, pipe, lambda: BagSource(sim_bag, speed="max", decode=False), outlet.commit,
                     lossless=True, next_seq=lambda: journal.last_seq + 1)
        rt.run()
        deadline = time.monotonic() + 60   # a liveness bound: the equality below is the check
        while len(received) < journal.last_seq and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        t.join(5)
    finally:
        for s in (live, stalled):
            s.close(linger=0)
        server.close()
        ctx.term()
    lines = jsonl_path.read_text(encoding="utf-8").splitlines()
    assert journal.last_seq >= 1 and len(lines) == journal.last_seq
    with BagSource(sim_bag) as src:
        total = src.reader.topics[src.layout.color].count
    assert rt.frames_done == total and rt.frames_dropped == 0   # the stalled subscriber slowed nothing
    assert [Event.from_msgpack(p) for p in received] == [Event.from_json_line(line) for line in lines] == journal.events_since(0)
    journal.close()


# -- the scale on a pty, unplugged and re-plugged under the running pipeline ----------------------


def test_scale_pty_closed_and_reopened_while_the_pipeline_runs(sim_cfg, catalog, tmp_path):
    from caper_edge.scale import ScaleReader
    from caper_edge.scale.loadcell import LoadCellModel
    from caper_edge.scale.ptysim import PtyScale

    cal = sim_cfg.scale.calibration
    model = LoadCellModel(cal, seed=3, noise_g=1.0)
    model.preload(600.0, (0.4, 0.5))
    link = tmp_path / "caper-scale"
    scale_cfg = dataclasses.replace(sim_cfg.scale, port=str(link))
    vision = _SlowVision(list(catalog.skus), 0.0)
    camera = _Camera(fps=30.0)
    with PtyScale(model.lines(0, 600 * NS, chunk_s=0.25), link=link) as pty:
        rt, pipe, _ = _collecting_runtime(sim_cfg, catalog, vision, camera, lossless=False, live_clock=True,
                                          scale_reader=lambda cb: ScaleReader(scale_cfg, on_sample=cb),
                                          source_kind="camera")
        rt.start()
        try:
            # The waits below are liveness bounds (generous, for a loaded machine), not speed checks.
            assert _wait(lambda: pipe.stats.scale_samples >= 80, timeout=60)
            assert rt.status().health["sensors"]["scale"] == "connected"
            pty.unplug()
            assert _wait(lambda: rt.status().health["sensors"]["scale"] != "connected", timeout=60)
            frames_then, samples_then = rt.frames_done, pipe.stats.scale_samples
            # Frames keep flowing without the scale (15 frames = 0.5 s of camera), and no sample
            # arrives from an unplugged port meanwhile (a few may still be queued).
            assert _wait(lambda: rt.frames_done >= frames_then + 15, timeout=60)
            assert pipe.stats.scale_samples - samples_then < 5
            pty.replug()
            assert _wait(lambda: pipe.stats.scale_samples > samples_then + 40, timeout=60)
            health = rt.status().health
            assert health["sensors"]["scale"] == "connected"
            assert health["scale"]["reconnects"] >= 1 and health["drops"]["scale"] == 0
            assert rt.fatal is None and rt.status().waiting_for is None
        finally:
            rt.stop()


# -- the real worker under the supervisor ---------------------------------------------------------


def _service_config(bag: Path, extra: str = "") -> str:
    profile = config.profiles()["sim-cart"].read_text()
    return profile + f"""
[pipeline]
source = "bag"
bag = "{bag}"
loop = true
speed = "3"
{extra}
"""


def test_kill_9_of_the_real_pipeline_worker(sim_bag, tmp_path):
    svc = Service(tmp_path, pipeline="caper_edge.pipeline:create_pipeline", extra=_service_config(sim_bag))
    from caper_edge.client import EventClient

    client = EventClient(svc.pub, svc.rep, timeout_s=1.0)
    try:
        assert svc.systemd.wait_for(lambda ls: "READY=1" in ls or svc.proc.poll() is not None, timeout=120)
        assert "READY=1" in svc.systemd.lines(), svc.stderr
        with Journal(svc.journal) as j:
            assert _wait(lambda: j.last_seq >= 1, timeout=90), svc.stderr
        status = _wait(lambda: _ping(client))
        first = status["status"]["worker_pid"]
        os.kill(first, signal.SIGKILL)
        killed_at = time.monotonic()
        back = _wait(lambda: (p := _ping(client)) and p["status"]["worker_pid"] not in (None, first)
                     and p["status"]["ready"] and p, timeout=120, step=0.02)
        back_s = time.monotonic() - killed_at
        assert back, svc.stderr
        print(f"worker back (ready, frames flowing) {back_s:.2f} s after kill -9")
        with Journal(svc.journal) as j:
            seq_at_restart = j.last_seq
            assert _wait(lambda: j.last_seq > seq_at_restart, timeout=90), svc.stderr
    finally:
        client.close()
        code = svc.stop()
    assert code == 0, svc.stderr
    with Journal(svc.journal) as j:
        journaled = j.events_since(0)
    assert [e.seq for e in journaled] == list(range(1, len(journaled) + 1))
    assert svc.jsonl.read_text(encoding="utf-8") == "".join(e.to_json_line() for e in journaled)
    assert "killed by signal 9" in svc.stderr


def test_a_missing_model_file_is_fatal_and_named(sim_bag, tmp_path):
    svc = Service(tmp_path, pipeline="caper_edge.pipeline:create_pipeline",
                  extra=_service_config(sim_bag, '[models]\ndetector = "/nonexistent/detector.onnx"'))
    code = svc.proc.wait(120)
    svc.stop()
    assert code != 0
    assert "/nonexistent/detector.onnx" in svc.stderr
    assert "READY=1" not in svc.systemd.lines()


@pytest.mark.parametrize("text, fragment", [
    ('[pipeline]\nsource = "usb"', "pipeline.source = 'usb'"),
    ('[pipeline]\nsource = "bag"', "pipeline.bag = ''"),
    ('[pipeline]\nspeed = "fast"', "pipeline.speed = 'fast'"),
    ('[pipeline]\nframe_queue = 0', "pipeline.frame_queue = 0"),
    ('[pipeline]\ndrop_frames = "sometimes"', "pipeline.drop_frames = 'sometimes'"),
])
def test_malformed_pipeline_config_names_key_and_value(tmp_path, text, fragment):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert fragment in str(info.value)


def test_a_bag_source_that_does_not_exist_is_named(tmp_path):
    from caper_edge.pipeline import open_source

    cfg = config.load()
    cfg = dataclasses.replace(cfg, pipeline=dataclasses.replace(cfg.pipeline, source="bag", bag=str(tmp_path / "nope")))
    with pytest.raises(CaperError, match="nope"):
        open_source(cfg)


# -- the demo --------------------------------------------------------------------------------------


def test_demo_makes_caches_and_scores_a_session(tmp_path, capsys):
    args = ["demo", "--scenario", "simple", "--seed", "7", "--duration", "14", "--cache", str(tmp_path / "cache"),
            "--events", str(tmp_path / "ev.jsonl")]
    assert main(args) == 0
    first = capsys.readouterr().err
    assert "made now" in first and "TOTAL" in first and "receipt vs ground truth" in first and "FPS" in first
    assert main(args + ["--quiet"]) == 0
    second = capsys.readouterr().err
    assert "from the cache" in second
    lines = (tmp_path / "ev.jsonl").read_text().splitlines()
    assert lines and [json.loads(x)["seq"] for x in lines] == list(range(1, len(lines) + 1))
    # A damaged cache is made again, not trusted.
    bag = next((tmp_path / "cache").iterdir())
    for f in bag.iterdir():
        f.write_bytes(b"garbage")
    assert main(args + ["--quiet"]) == 0
    assert "made now" in capsys.readouterr().err


# -- soak -------------------------------------------------------------------------------------------


def _soak(sim_cfg, vision, seconds: float, every_s: float = 60.0):
    """Run the `long` scenario through the runtime (lossless) and sample the cart process's RSS
    each ``every_s`` seconds of session time; returns [(session_s, cart_rss_mb, simulator_rss_mb)].

    The simulator renders in a child process (ProcessSource), as `caper-edge run` with
    source = "sim" does: it stands in for the camera and the scale, which are devices, and its
    own sprite caches grow as new products and hands appear; the cart's process is measured alone.
    """
    from caper_edge.metrics import rss_mb
    from caper_edge.sources.process import ProcessSource
    from caper_edge.sources.simulator import SimulatorSource

    samples = []
    src = ProcessSource(SimulatorSource, "long", 1, seconds, speed="max", ground_truth=False)
    catalog = Catalog.from_json(src.catalog)
    pipe = Pipeline(sim_cfg, catalog, vision)
    next_sample = [every_s]

    def commit(draft, snapshot):
        return draft

    rt = Runtime(sim_cfg, pipe, src, commit, lossless=True, source_kind="simulator")

    def progress(_done):
        t = rt.last_message_t_ns / NS
        while t >= next_sample[0]:
            samples.append((next_sample[0], rss_mb(), rss_mb(src.pid)))
            next_sample[0] += every_s

    rt.run(progress, every_s=0.05)
    return samples, rt


def test_soak_short(sim_cfg, vision):
    """CI variant: 40 s of the `long` scenario, RSS every 10 s; it must not climb without bound."""
    samples, rt = _soak(sim_cfg, vision, 40.0, every_s=10.0)
    assert rt.fatal is None and rt.frames_done == 40 * 30
    assert len(samples) >= 3
    rss = [r for _, r, _ in samples]
    print("RSS MB (cart, simulator) by session second:", samples)
    assert rss[-1] < rss[1] * 1.10, samples


@pytest.mark.slow
@pytest.mark.timeout(4 * 3600)
def test_soak_long_scenario_rss_growth_below_5_percent(sim_cfg, vision):
    """The whole 30-minute `long` scenario: the cart's RSS grows < 5 % between minute 5 and 30."""
    samples, rt = _soak(sim_cfg, vision, 1800.0, every_s=60.0)
    by_minute = {int(t // 60): r for t, r, _ in samples}
    print("cart RSS MB by session minute:", by_minute)
    print("simulator RSS MB by session minute:", {int(t // 60): round(r, 1) for t, _, r in samples})
    assert rt.fatal is None
    assert by_minute[30] < by_minute[5] * 1.05, by_minute


# -- restart: a weight change while the service was down ------------------------------------------


class _Sample:
    """A calibrated scale sample (what ScaleReader hands the pipeline)."""

    def __init__(self, t_ns, grams):
        self.t_ns, self.flags = t_ns, 0
        self.cells = (grams / 4,) * 4


@pytest.mark.parametrize("now_g, expect", [(1010.0, "alarm"), (600.0, "removal"), (752.0, None)])
def test_a_change_while_the_service_was_down_is_decided_after_restart(sim_cfg, catalog, now_g, expect):
    """The journal says the basket held one 250 g-class product and weighed 750 g; after the
    restart the scale reads now_g: +260 g nobody saw is an alarm (possible shrink), -150 g takes
    a unit out unseen or alarms, +2 g is drift and says nothing."""
    from caper_edge.basket import Basket

    sku = next(p.sku for p in catalog if 140 < p.weight_g < 160)
    basket = Basket()
    basket.add(sku, 1, confidence=0.9, t_ns=1)
    vision = _SlowVision(list(catalog.skus), 0.0)
    pipe = Pipeline(sim_cfg, catalog, vision, basket=basket, resume_weight_g=750.0)
    rng = np.random.default_rng(3)
    events = []
    for i in range(80 * 6):   # 6 s at 80 Hz
        events += pipe.feed_sample(_Sample(10**9 + i * 12_500_000, now_g + rng.normal(0, 0.7)))
    events += pipe.finish()
    assert pipe.resume_delta_g == pytest.approx(now_g - 750.0, abs=2.0)
    if expect is None:
        assert events == []
        return
    assert len(events) >= 1
    e = events[0]
    assert e.weight_delta_g == pytest.approx(now_g - 750.0, abs=3.0)
    if expect == "alarm":
        assert e.type == "unexpected_weight"
    else:
        assert e.type in ("item_removed", "unexpected_weight")


def test_a_frame_that_does_not_decode_is_counted_and_skipped(sim_cfg, catalog):
    class Damaged(_Camera):
        def __iter__(self):
            for f in super().__iter__():
                if f.index % 10 == 3:   # garbage bytes where a JPEG should be
                    yield Frame(f.t_ns, f.index, None, encoded=("jpeg", b"\xff\xd8garbage"))
                else:
                    yield f

    vision = _SlowVision(list(catalog.skus), 0.0)
    rt, _, _ = _collecting_runtime(sim_cfg, catalog, vision, Damaged(fps=500.0, n=40), lossless=True)
    rt.run()
    assert rt.frames_bad == 4 and rt.frames_done == 36 and rt.fatal is None
    assert rt.status().health["drops"]["bad_frames"] == 4


def test_reset_empties_the_basket_with_one_committed_event(sim_cfg, catalog):
    vision = _SlowVision(list(catalog.skus), 0.0)
    rt, pipe, events = _collecting_runtime(sim_cfg, catalog, vision, _Camera(fps=200.0, n=5), lossless=True)
    sku = next(iter(catalog.skus))
    pipe.basket.add(sku, 2, confidence=0.9, t_ns=1)
    rt.run()
    e = rt.reset("shopper paid")
    assert e.type == "basket_reset" and e.qty == 2 and e.extras["reason"] == "shopper paid"
    assert pipe.basket.total_qty == 0 and events[-1] is e and rt.events_committed == len(events)


def test_single_threaded_blas_limits_numpy_blas_in_this_process():
    """The runtime with several vision workers keeps BLAS to one thread (oversubscription halved
    the pipelined FPS with a large gallery); checked in a fresh interpreter."""
    import subprocess
    import sys

    code = ("import numpy, threadpoolctl\n"
            "from caper_edge.pipeline import single_threaded_blas\n"
            "assert single_threaded_blas()\n"
            "blas = [i for i in threadpoolctl.threadpool_info() if i['user_api'] == 'blas']\n"
            "assert blas and all(i['num_threads'] == 1 for i in blas), blas\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd="/")
    assert done.returncode == 0, done.stderr
