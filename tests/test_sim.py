"""The cart simulator: geometry against hand computation, ground truth against the pixels and the
scale stream, scenarios, determinism, the CLI and the training-data generator."""

from __future__ import annotations

import filecmp
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from caper_edge import config
from caper_edge.bags import BagReader, topics
from caper_edge.scale import ScaleDecoder
from caper_edge.sim import DEFAULT_DURATION_S, SCENARIOS, Simulator, catalog, catalog_json, write_bag
from caper_edge.sim.catalog import by_id, distractors, lookup
from caper_edge.errors import InputError
from caper_edge.sim.dataset import generate
from caper_edge.sim.render import Effects, Placed, Renderer
from caper_edge.sim.scenarios import plan
from caper_edge.sim.world import NS, World
from caper_edge.sources import Frame, GroundTruthEvent, ScaleLine, SimulatorSource

# --------------------------------------------------------------------------------------------------
# Catalog
# --------------------------------------------------------------------------------------------------


def test_catalog_has_lookalikes_and_weighalikes():
    skus = catalog()
    assert len(skus) >= 40 and len({s.sku for s in skus}) == len(skus)
    looks: dict[str, list] = {}
    weights: dict[str, list] = {}
    for s in skus:
        assert s.shape in ("box", "cylinder", "bag") and all(v > 0 for v in s.size_mm) and s.weight_g > s.weight_std_g > 0
        if s.look_group:
            looks.setdefault(s.look_group, []).append(s)
        if s.weight_group:
            weights.setdefault(s.weight_group, []).append(s)
    assert len(looks) >= 5 and len(weights) >= 4
    for members in looks.values():
        assert len(members) >= 2 and len({m.design for m in members}) == 1 and len({m.colors for m in members}) == 1
        ws = sorted(m.weight_g for m in members)
        # Same look, but the scale separates every pair by many standard deviations.
        for a, b in zip(ws, ws[1:]):
            assert b - a > 5 * max(m.weight_std_g for m in members)
    for members in weights.values():
        assert len(members) >= 3 and len({m.design for m in members}) == len(members)
        ws = [m.weight_g for m in members]
        assert (max(ws) - min(ws)) / min(ws) < 0.03
    from caper_edge.catalog import Catalog  # the fusion side reads the /catalog JSON

    parsed = Catalog.from_json(catalog_json())
    assert parsed["SKU-0001"].weight_g == by_id()["SKU-0001"].weight_g


# --------------------------------------------------------------------------------------------------
# Geometry and ground truth against hand computation and the pixels
# --------------------------------------------------------------------------------------------------


def test_render_geometry_matches_projection_and_depth():
    r = Renderer(seed=0)
    g = r.geom
    empty = r.render(r.render_static([]), [], Effects(noise_sigma=0.0), want_depth=True)
    sku = by_id()["SKU-0018"]  # Sugar 500 g box, 140 x 90 x 55 mm, plain print
    from caper_edge.sim.packaging import sprite

    sp = sprite(sku.sku, "top")
    x, y = 60.0, -40.0
    obj = Placed(1, "item", sku.sku, sp, x, y, 0.0, 0.0)
    out = r.render(r.render_static([obj]), [], Effects(noise_sigma=0.0), want_depth=True)
    (gt,) = [o for o in out.objects if o["id"] == 1]
    # Hand-computed projection of the top face (z = 55 mm): centre and size.
    d_top = g.camera_height_mm - 55.0
    u = g.cx + g.fx * x / d_top
    v = g.cy + g.fy * y / d_top
    half_w, half_h = g.fx * 70.0 / d_top, g.fy * 45.0 / d_top
    x0, y0, x1, y1 = gt["xyxy"]
    assert abs((x0 + x1) / 2 - u) < 2.5 and abs((y0 + y1) / 2 - v) < 2.5
    assert abs((x1 - x0) - 2 * half_w) < 4 and abs((y1 - y0) - 2 * half_h) < 4
    # The box is exactly where the image differs from the empty basket (shadow aside).
    diff = np.abs(out.color.astype(int) - empty.color.astype(int)).max(axis=2) > 40
    rows, cols = np.nonzero(diff)
    assert abs(cols.min() - x0) <= 2 and abs(cols.max() + 1 - x1) <= 2 and abs(rows.min() - y0) <= 2 and abs(rows.max() + 1 - y1) <= 2
    # Depth: the top face at camera_height - 55 mm, the floor at camera_height (stereo noise ~2 mm).
    top = out.depth[int(v) - 5 : int(v) + 5, int(u) - 5 : int(u) + 5].astype(float)
    assert abs(np.median(top[top > 0]) - d_top) < 3
    floor = out.depth[int(g.cy) + 60 : int(g.cy) + 70, int(g.cx) - 100 : int(g.cx) - 90].astype(float)
    assert abs(np.median(floor[floor > 0]) - g.camera_height_mm) < 4
    assert (out.depth[:, :14] == 0).all() and 0.001 < np.mean(out.depth == 0) < 0.2


def _scripted(seed: int = 3) -> Simulator:
    """A simulator whose world we script by hand instead of a scenario."""
    sim = Simulator("simple", seed, 30.0)
    sim._planner = iter(())
    sim._planned_until = math.inf
    return sim


def test_hidden_item_never_appears_and_hand_conceals_it():
    sim = _scripted()
    w = sim.world
    bag = w.new_item(by_id()["SKU-0039"], "flat")  # kitchen towels: a big, tall bag
    bag.x, bag.y, bag.yaw, bag.z_base = 0.0, 0.0, 0.0, 0.0
    w.preload(bag)
    can = w.new_item(by_id()["SKU-0012"], "upright")  # small tomato can, 73 x 62 mm
    can.x, can.y, can.z_base = 5.0, -5.0, 0.0
    hand = w.plan_add(0.5, [can], side="front", conceal=True, hidden=True, shrink="hidden_item")
    (event,) = w.events
    assert event["visible"] is False and event["shrink"] == "hidden_item" and event["item_ids"] == [can.uid]
    seen_hand = 0
    for k, t in enumerate(np.arange(0.5, hand.t_end + 1.0, 1 / 30)):
        out = sim.render_at(float(t), want_depth=False, seed=k)
        ids = {o["id"] for o in out.objects}
        assert can.uid not in ids, f"hidden item visible at t={t:.2f}"
        seen_hand += hand.hand_id in ids
        assert bag.uid in ids
    assert seen_hand > 20  # the hand was in view; the item was not


def test_scale_stream_matches_ground_truth_weights():
    sim = Simulator("busy", seed=11, duration_s=14.0)
    cal = config.load().scale.calibration
    dec = ScaleDecoder()
    times, grams, events = [], [], []
    for m in sim.messages():
        if isinstance(m, ScaleLine):
            for s in dec.feed(m.data):
                times.append(m.t_ns)
                grams.append(sum((r - o) * g for r, o, g in zip(s.raw, cal.offsets, cal.gains)))
        elif isinstance(m, GroundTruthEvent):
            events.append(m.event)
    assert dec.stats.checksum_errors == 0 and dec.stats.seq_gaps == 0
    times, grams = np.array(times), np.array(grams)
    checked = 0
    for ev in events:
        if ev["t_settled_ns"] + 0.6 * NS > times[-1]:
            continue
        before = grams[(times > ev["t_start_ns"] - 1.1 * NS) & (times < ev["t_start_ns"] - 0.6 * NS)]
        after = grams[(times > ev["t_settled_ns"] + 0.1 * NS) & (times < ev["t_settled_ns"] + 0.6 * NS)]
        if before.size == 0 or any(o is not ev and abs(o["t_start_ns"] - ev["t_start_ns"]) < 3 * NS for o in events):
            continue  # another event overlaps this one's windows
        assert np.median(after) - np.median(before) == pytest.approx(ev["weight_g"], abs=max(6.0, 0.02 * abs(ev["weight_g"])))
        checked += 1
    assert checked >= 1, events


def test_objects_follow_events_and_stay_in_frame():
    with SimulatorSource("simple", seed=2, duration_s=8.0) as src:
        msgs = list(src)
    events = [m.event for m in msgs if isinstance(m, GroundTruthEvent)]
    frames = [m for m in msgs if isinstance(m, Frame)]
    assert events and events[0]["type"] == "item_added"
    ev = events[0]
    uid = ev["item_ids"][0]
    for f in frames:
        for o in f.objects:
            x0, y0, x1, y1 = o["xyxy"]
            assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 480 and 0 < o["visible"] <= 1
            assert (o["class"] == "hand") == (o["sku"] is None)
        ids = {o["id"]: o for o in f.objects}
        if f.t_ns > ev["t_rest_ns"] + 1.5 * NS:
            assert uid in ids and ids[uid]["sku"] == ev["sku"] and ids[uid]["in_basket"]
        if f.t_ns < ev["t_start_ns"] - 2 * NS:
            assert uid not in ids
    assert ev["t_start_ns"] < ev["t_rest_ns"] <= ev["t_settled_ns"]


# --------------------------------------------------------------------------------------------------
# Scenarios (planning only: cheap) and determinism
# --------------------------------------------------------------------------------------------------


def _planned(name: str, seed: int) -> World:
    w = World(seed)
    for _ in plan(name, w, DEFAULT_DURATION_S[name]):
        pass
    return w


def test_scenarios_plan_what_they_promise():
    assert set(SCENARIOS) == {"simple", "busy", "lookalike", "shrink", "bumpy", "long"}
    for seed in (1, 2):
        busy = _planned("busy", seed).events
        assert {e["type"] for e in busy} == {"item_added", "item_removed"}
        starts = sorted(e["t_start_ns"] for e in busy if e["type"] == "item_added")
        skus = [e["sku"] for e in busy if e["type"] == "item_added"]
        assert len(skus) > len(set(skus)) or any(e["qty"] == 2 for e in busy)  # repeats of one SKU
        assert any(b - a < 0.5 * NS for a, b in zip(starts, starts[1:])) or any(e["qty"] == 2 for e in busy)
        look = _planned("lookalike", seed).events
        assert sum(by_id()[e["sku"]].look_group is not None for e in look) >= len(look) // 2
        shrink = _planned("shrink", seed).events
        assert any(e["shrink"] == "hidden_item" and e["visible"] is False for e in shrink)
        swaps = [e for e in shrink if e["shrink"] == "swap"]
        assert {e["type"] for e in swaps} == {"item_added", "item_removed"}
        added = next(e for e in swaps if e["type"] == "item_added")
        removed = next(e for e in swaps if e["type"] == "item_removed")
        assert added["weight_g"] < -removed["weight_g"]  # swapped for a lighter one
        bumpy = _planned("bumpy", seed)
        assert bumpy.events == [] and bumpy.initial and bumpy._rolls and bumpy._bumps
        for events in (busy, look, shrink):
            assert all(e["t_start_ns"] <= e["t_rest_ns"] for e in events)


def test_long_scenario_is_planned_lazily_with_bounded_state():
    w = World(5)
    planner = plan("long", w, DEFAULT_DURATION_S["long"])
    assert DEFAULT_DURATION_S["long"] >= 1800
    sizes = []
    t = 0.0
    for t in planner:
        w.forget_before(t - 30.0)
        sizes.append(len(w.actions) + len(w.items))
    assert t > 1700 and len(w.events) > 60
    assert max(sizes) < 60  # what is past is forgotten: memory does not grow with the session


def test_a_change_begun_before_the_end_is_rendered_until_it_settles():
    """Shrink seed 7202 plans a swap near the end: its removal (lifted 1 s before the nominal
    end) settles after it. The session renders on until that change has settled and its item
    left, plus SETTLE_TAIL_S, so the weight change and its ground truth are both in the bag; a
    session whose changes all settled long before the end stops at its duration."""
    from caper_edge.sim.simulator import SETTLE_TAIL_S

    sim = Simulator("shrink", seed=7202)
    sim._plan_until(float("inf"))
    last = sim.world.events[-1]
    end_ns = sim.frame_time_ns(sim.frame_count)
    assert last["type"] == "item_removed" and last["t_start_ns"] < end_ns < last["t_settled_ns"]
    n = sim.frame_count
    while sim._overruns(n):
        n += 1
    assert sim.frame_time_ns(n) >= max(last["t_settled_ns"], last["t_rest_ns"]) + SETTLE_TAIL_S * 1e9 - 1e9 / sim.fps
    assert n - sim.frame_count < 3 * sim.fps
    quiet = Simulator("bumpy", seed=1, duration_s=6.0)  # no item events at all
    quiet._plan_until(float("inf"))
    assert not quiet._overruns(quiet.frame_count)


def test_same_seed_same_bytes(tmp_path):
    a = write_bag(tmp_path / "a" / "bag", "busy", 7, 1.5)
    b = write_bag(tmp_path / "b" / "bag", "busy", 7, 1.5)
    c = write_bag(tmp_path / "c" / "bag", "busy", 8, 1.5)
    assert a.frames == 45 and a.bytes > 0
    for name in ("bag.mcap", "metadata.yaml"):
        assert filecmp.cmp(a.path / name, b.path / name, shallow=False)
    assert not filecmp.cmp(a.path / "bag.mcap", c.path / "bag.mcap", shallow=False)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "caper_edge", *args], capture_output=True, text=True, timeout=300)


def test_sim_cli_writes_a_bag_with_the_contract_topics(tmp_path):
    out = tmp_path / "s"
    res = _cli("sim", str(out), "--scenario", "bumpy", "--seed", "3", "--duration", "1", "--quiet")
    assert res.returncode == 0, res.stderr
    assert "30 frames" in res.stdout and "MB/min" in res.stdout
    with BagReader(out) as reader:
        counts = {t: i.count for t, i in reader.topics.items()}
        catalog_msg = next(reader.messages([topics.CATALOG])).msg.data
        initial = [json.loads(m.msg.data) for m in reader.messages([topics.GT_EVENTS])]
    assert counts[topics.COLOR_COMPRESSED] == 30 and counts[topics.DEPTH] == 15 and counts[topics.GT_OBJECTS] == 30
    assert counts[topics.CAMERA_INFO] == 30 and 78 <= counts[topics.SCALE_RAW] <= 82
    assert json.loads(catalog_msg)["skus"][0]["sku"] == "SKU-0001"
    assert initial[0]["type"] == "basket_initial" and initial[0]["items"]
    res = _cli("sim", str(out), "--scenario", "bumpy", "--duration", "1")
    assert res.returncode == 3 and "exists" in res.stderr and "Traceback" not in res.stderr
    res = _cli("sim", str(tmp_path / "x"), "--scenario", "nope")
    assert res.returncode == 2 and "invalid choice" in res.stderr


# --------------------------------------------------------------------------------------------------
# Training data
# --------------------------------------------------------------------------------------------------


def test_dataset_generator_layout_and_labels(tmp_path):
    cv2 = pytest.importorskip("cv2")
    m = generate(tmp_path / "d", split="train", seed=4, frames=8)
    images = sorted((tmp_path / "d" / "images").glob("*.jpg"))
    assert len(images) == 8 and m["images"] == 8 and m["boxes"] > 8
    for img in images:
        assert cv2.imread(str(img)).shape == (480, 640, 3)
        lines = (tmp_path / "d" / "labels" / f"{img.stem}.txt").read_text().split()
        vals = np.array(lines, dtype=float).reshape(-1, 5)
        assert set(vals[:, 0]) <= {0.0, 1.0}
        assert (vals[:, 1:] >= 0).all() and (vals[:, 1:] <= 1).all() and (vals[:, 3:] > 0).all()
    rows = (tmp_path / "d" / "crops.csv").read_text().strip().split("\n")[1:]
    assert len(rows) == m["crops"] > 0
    for row in rows:
        path, sku, visible, carried, image = row.split(",")
        assert path.startswith(f"crops/{sku}/") and (tmp_path / "d" / path).exists() and float(visible) >= 0.35
        assert sku in by_id()
    assert "names:" in (tmp_path / "d" / "data.yaml").read_text()
    # Same seed and split -> same labels; another split -> other scenes.
    generate(tmp_path / "e", split="train", seed=4, frames=3)
    generate(tmp_path / "f", split="val", seed=4, frames=3)
    same = (tmp_path / "d" / "labels" / "train_000001.txt").read_text()
    assert (tmp_path / "e" / "labels" / "train_000001.txt").read_text() == same
    assert (tmp_path / "f" / "labels" / "val_000001.txt").read_text() != same


def test_dataset_with_distractor_products(tmp_path):
    # Distractors: products from outside the store, their own identities in crops/, deterministic,
    # and without them the generator writes exactly what it wrote before (same labels).
    a = distractors(20, seed=7)
    assert [s.sku for s in a] == [s.sku for s in distractors(20, seed=7)] and len({s.design for s in a}) == 20
    assert all(s.sku.startswith("RND-7-") and s.sku not in by_id() and lookup(s.sku) == s for s in a)
    assert {s.shape for s in a} == {"box", "cylinder", "bag"}
    with pytest.raises(KeyError, match="RND-9-99999"):
        lookup("RND-9-99999")
    m = generate(tmp_path / "d", split="train", seed=4, frames=6, distractors=20, distractor_share=0.6)
    assert m["distractors"] == 20 and m["distractor_share"] == 0.6
    folders = {p.name for p in (tmp_path / "d" / "crops").iterdir()}
    assert any(f.startswith("RND-4-") for f in folders) and any(f in by_id() for f in folders)
    plain = generate(tmp_path / "p", split="train", seed=4, frames=2)
    ref = generate(tmp_path / "q", split="train", seed=4, frames=2, distractors=0)
    assert plain["distractors"] == ref["distractors"] == 0
    assert (tmp_path / "p" / "labels" / "train_000001.txt").read_text() == (tmp_path / "q" / "labels" / "train_000001.txt").read_text()
    for bad in ({"distractors": -1}, {"distractor_share": 1.5}):
        with pytest.raises(InputError, match="distractor"):
            generate(tmp_path / "x", frames=1, **bad)


def test_dataset_cli_module(tmp_path):
    res = subprocess.run([sys.executable, "-m", "caper_edge.sim.dataset", str(tmp_path / "o"), "--frames", "2", "--seed", "1",
                          "--skus", "SKU-0001", "SKU-0002"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "o" / "manifest.json").read_text())["skus"] == ["SKU-0001", "SKU-0002"]
    res = subprocess.run([sys.executable, "-m", "caper_edge.sim.dataset", str(tmp_path / "o"), "--frames", "2"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 3 and "not empty" in res.stderr


@pytest.mark.slow
def test_long_session_streams_with_flat_memory():
    """Soak: 10 simulated minutes of the 30-minute scenario; RSS must not creep."""
    psutil = pytest.importorskip("psutil")
    proc = psutil.Process()
    rss = []
    with SimulatorSource("long", seed=1, duration_s=600.0) as src:
        for m in src:
            if isinstance(m, Frame) and m.index % 1800 == 0:
                rss.append(proc.memory_info().rss)
    assert len(rss) >= 9
    assert rss[-1] - rss[2] < 60e6
