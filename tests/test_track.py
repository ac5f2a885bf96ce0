"""caper_edge.track.Tracker: behaviour cases, zones, lifetimes, SKU posterior, bad input, and a
CI-sized evaluation against the roboflow `trackers` peers."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from caper_edge import config
from caper_edge.errors import ConfigError
from caper_edge.track import (
    ENTERED_BASKET,
    EXPIRED_IN_BASKET,
    LEFT_BASKET,
    LOST,
    TENTATIVE,
    TRACKED,
    ZONE_ENTERING,
    ZONE_INSIDE,
    ZONE_OUTSIDE,
    Tracker,
)

FPS = 30.0
NS = int(1e9 / FPS)
ITEM, HAND = 0, 1


def box(cx: float, cy: float, w: float = 60.0, h: float = 60.0) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def unit(rng: np.random.Generator, dim: int = 32) -> np.ndarray:
    v = rng.normal(size=dim)
    return (v / np.linalg.norm(v)).astype(np.float32)


class Scene:
    """Feeds frames to a tracker; `objects` maps a name to (box, score, class, embedding, depth)."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.frame = 0
        self.ids: dict[str, list[int | None]] = {}

    def step(self, objects: dict[str, tuple], sku: np.ndarray | None = None):
        names = list(objects)
        xyxy = np.array([objects[k][0] for k in names], np.float32).reshape(-1, 4)
        score = np.array([objects[k][1] for k in names], np.float32)
        cls = np.array([objects[k][2] for k in names], np.int32)
        emb = None
        if names and all(objects[k][3] is not None for k in names):
            emb = np.stack([objects[k][3] for k in names])
        depth = np.array([objects[k][4] if len(objects[k]) > 4 else np.nan for k in names], np.float32)
        out = self.tracker.update(xyxy, score, cls, embedding=emb, depth_m=depth, t_ns=self.frame * NS,
                                  sku_similarity=sku)
        for name in set(self.ids) | set(names):
            hit = np.flatnonzero(out.det_index == names.index(name)) if name in names else []
            self.ids.setdefault(name, [None] * self.frame).append(int(out.track_id[hit[0]]) if len(hit) else None)
        self.frame += 1
        return out

    def track_ids(self, name: str) -> set[int]:
        return {i for i in self.ids.get(name, []) if i is not None}


# ---------------------------------------------------------------------------------------------
# Basics
# ---------------------------------------------------------------------------------------------


def test_moving_item_keeps_one_id_and_follows_the_box():
    s = Scene(Tracker())
    for f in range(60):
        out = s.step({"a": (box(100 + 3 * f, 200), 0.9, ITEM, None)})
        assert out.track_id.tolist() == [1]
        np.testing.assert_allclose(out.xyxy[0], box(100 + 3 * f, 200), atol=3.0)
        assert out.state[0] == TRACKED


def test_new_track_is_tentative_until_confirmed():
    tracker = Tracker(confirm_hits=3)
    s = Scene(tracker)
    s.step({})
    for f in range(2):
        out = s.step({"a": (box(300, 200), 0.9, ITEM, None)})
        assert len(out) == 0
        tentative = tracker.all_tracks(include_tentative=True)
        assert tentative.state.tolist() == [TENTATIVE] and tentative.track_id.tolist() == [-1]
        assert len(tracker.all_tracks()) == 0
    out = s.step({"a": (box(300, 200), 0.9, ITEM, None)})
    assert out.track_id.tolist() == [1]


def test_low_score_detections_extend_tracks_but_never_start_them():
    s = Scene(Tracker())
    for f in range(10):
        s.step({"a": (box(200 + 2 * f, 200), 0.9, ITEM, None)})
    for f in range(10, 20):
        out = s.step({"a": (box(200 + 2 * f, 200), 0.3, ITEM, None), "ghost": (box(500, 300), 0.3, ITEM, None)})
        assert out.track_id.tolist() == [1]
        assert out.score[0] == pytest.approx(0.3)
    assert s.track_ids("ghost") == set()


def test_lost_tracks_are_listed_by_all_tracks():
    tracker = Tracker()
    s = Scene(tracker)
    for _ in range(5):
        s.step({"a": (box(300, 200), 0.9, ITEM, None)})
    out = s.step({})
    assert len(out) == 0
    everything = tracker.all_tracks()
    assert everything.track_id.tolist() == [1] and everything.state.tolist() == [LOST]
    assert everything.det_index.tolist() == [-1]


# ---------------------------------------------------------------------------------------------
# Identity through occlusion and crossings
# ---------------------------------------------------------------------------------------------


def rest_then_hide(s: Scene, start: tuple, emb, hidden_frames: int, back: tuple, back_emb, hand: bool = False):
    for _ in range(45):  # 1.5 s at rest inside the basket
        s.step({"item": (box(*start), 0.9, ITEM, emb, 0.5)})
    for f in range(hidden_frames):
        objects = {"hand": (box(start[0] + 5, start[1] + 3, 90, 95), 0.9, HAND, None, 0.3)} if hand else {}
        s.step(objects)
    for _ in range(10):
        s.step({"item": (box(*back), 0.9, ITEM, back_emb, 0.5)})


def test_reidentification_after_occlusion_by_appearance(rng):
    look = unit(rng)
    # Moved 72 px (more than its size: no overlap) while hidden, same appearance: same ID.
    s = Scene(Tracker())
    rest_then_hide(s, (300, 240), look, 60, (372, 240), look)
    assert s.track_ids("item") == {1}
    # Same geometry, a different product: a new ID.
    s = Scene(Tracker())
    rest_then_hide(s, (300, 240), look, 60, (372, 240), unit(rng))
    assert len(s.track_ids("item")) == 2
    # No embeddings: nothing links the far-away detection to the old track.
    s = Scene(Tracker())
    rest_then_hide(s, (300, 240), None, 60, (372, 240), None)
    assert len(s.track_ids("item")) == 2


@pytest.mark.parametrize("hidden_frames", [10, 45, 90])
@pytest.mark.parametrize("with_appearance", [True, False])
def test_resting_item_keeps_id_through_hand_occlusion(rng, hidden_frames, with_appearance):
    look = unit(rng) if with_appearance else None
    s = Scene(Tracker())
    rest_then_hide(s, (320, 240), look, hidden_frames, (324, 243), look, hand=True)
    assert s.track_ids("item") == {1}
    assert 1 not in s.track_ids("hand")



def at_distance(rng, look: np.ndarray, d: float) -> np.ndarray:
    """A unit vector at cosine distance ``d`` from ``look``."""
    other = unit(rng, look.size)
    other = other - (other @ look) * look
    other /= np.linalg.norm(other)
    c = 1.0 - d
    return (c * look + np.sqrt(1.0 - c * c) * other).astype(np.float32)


@pytest.mark.parametrize("score", [0.9, 0.3])  # first-stage and low-score-stage detection
@pytest.mark.parametrize("gate, continues", [(2.0, True), (0.3, False)])
def test_rest_gate_stops_a_new_product_put_down_over_a_resting_one(rng, score, gate, continues):
    """A hand covers a resting product and leaves a different one (cosine distance 0.35: inside
    the general gate 0.4) on top of it, first seen with a high or a low score. Without the rest
    gate the resting product's track continues on the new product (the low-score stage looks at
    IoU only); with rest_appearance_gate 0.3 it does not, and the new product starts its own
    track once it scores high enough."""
    look = unit(rng)
    new = at_distance(rng, look, 0.35)
    s = Scene(Tracker(rest_appearance_gate=gate))
    for _ in range(45):
        s.step({"item": (box(320, 240), 0.9, ITEM, look, 0.5)})
    for _ in range(10):
        s.step({"hand": (box(325, 243, 90, 95), 0.9, HAND, None, 0.3)})
    for _ in range(5):
        s.step({"new": (box(326, 236, 64, 66), score, ITEM, new, 0.45)})
    for _ in range(10):
        s.step({"new": (box(326, 236, 64, 66), 0.9, ITEM, new, 0.45)})
    ids = s.track_ids("new")
    assert (ids == {1}) == continues
    if not continues:
        assert len(ids) == 1 and 1 not in ids
        lost = s.tracker.all_tracks()
        assert 1 in lost.track_id.tolist()  # the hidden product's track waits, lost at rest


def test_rest_gate_leaves_moving_tracks_and_the_same_product_alone(rng):
    """Only tracks at rest are held to the rest gate: a product carried in keeps its track
    through a look change inside the general gate, and a resting product seen again with its
    own look keeps its ID."""
    look = unit(rng)
    s = Scene(Tracker(rest_appearance_gate=0.2))
    for f in range(20):  # moving: never at rest
        s.step({"a": (box(150 + 8 * f, 240), 0.9, ITEM, look if f < 10 else at_distance(rng, look, 0.3), 0.5)})
    assert s.track_ids("a") == {1}
    s = Scene(Tracker(rest_appearance_gate=0.2))
    rest_then_hide(s, (320, 240), look, 30, (323, 242), at_distance(rng, look, 0.1), hand=True)
    assert s.track_ids("item") == {1}

def test_moving_item_outside_the_basket_expires_fast():
    # The same 45-frame gap outside the basket (moving, zone outside): the track is gone
    # (outside_lost_timeout_s = 0.5 s) and the item comes back with a new ID.
    s = Scene(Tracker())
    for f in range(30):
        s.step({"a": (box(20 + 2 * f, 240), 0.9, ITEM, None, 0.5)})
    for _ in range(45):
        s.step({})
    for f in range(5):
        s.step({"a": (box(80 + 2 * f, 240), 0.9, ITEM, None, 0.5)})
    assert len(s.track_ids("a")) == 2


def test_rest_timeout_expires_and_is_reported():
    tracker = Tracker(rest_lost_timeout_s=2.0)
    s = Scene(tracker)
    for _ in range(45):
        s.step({"item": (box(320, 240), 0.9, ITEM, None, 0.5)})
    seen = []
    for _ in range(70):  # 2.33 s hidden
        seen += s.step({}).transitions
    expired = [t for t in seen if t.kind == EXPIRED_IN_BASKET]
    assert len(expired) == 1 and expired[0].track_id == 1
    assert expired[0].t_ns == 44 * NS  # last seen
    assert expired[0].decided_t_ns - expired[0].t_ns > 2.0e9
    assert len(tracker.all_tracks()) == 0


@pytest.mark.parametrize("with_appearance", [True, False])
def test_crossing_items_do_not_swap(rng, with_appearance):
    looks = (unit(rng), unit(rng)) if with_appearance else (None, None)
    s = Scene(Tracker())
    for f in range(70):
        a = (100 + 7 * f, 230)
        b = (580 - 7 * f, 250)
        objects = {"a": (box(*a), 0.9, ITEM, looks[0]), "b": (box(*b), 0.9, ITEM, looks[1])}
        if abs(a[0] - b[0]) < 40:  # at the crossing the lower item is hidden under the other
            del objects["b"]
        s.step(objects)
    ids_a, ids_b = s.track_ids("a"), s.track_ids("b")
    assert len(ids_a) == 1 and len(ids_b) == 1 and ids_a != ids_b


def test_class_gating_keeps_hands_off_item_tracks():
    def run(gating: bool) -> Scene:
        s = Scene(Tracker(class_gating=gating))
        for _ in range(20):
            s.step({"item": (box(300, 240), 0.9, ITEM, None, 0.5)})
        for _ in range(5):
            s.step({"hand": (box(302, 241), 0.9, HAND, None, 0.3)})
        return s

    assert run(True).track_ids("hand") == {2}
    assert run(False).track_ids("hand") == {1}  # without the gate the hand takes the item's ID


@pytest.mark.parametrize("same_look", [True, False])
def test_duplicate_of_a_lost_track_is_merged_into_the_older_identity(rng, same_look):
    # A moves right and vanishes; its prediction keeps moving. B appears too far away to be
    # re-identified (135 px > 1.5 diagonals) and gets a new ID. When A's prediction runs onto B,
    # the two are duplicates: B's observations continue under A's older ID -- unless they look
    # different (two items, not one).
    look = unit(rng, 8)
    look_b = look if same_look else unit(rng, 8)
    s = Scene(Tracker())
    for f in range(20):
        s.step({"a": (box(100 + 5 * f, 240), 0.9, ITEM, look)})
    for _ in range(2):
        s.step({})
    for _ in range(38):
        s.step({"b": (box(330, 240), 0.9, ITEM, look_b)})
    assert s.ids["b"][22] is None and s.ids["b"][23] == 2  # tentative, then its own ID
    if same_look:
        assert s.ids["b"][-1] == 1
        assert s.tracker.all_tracks().track_id.tolist() == [1]
    else:
        assert s.ids["b"][-1] == 2


# ---------------------------------------------------------------------------------------------
# Basket zone
# ---------------------------------------------------------------------------------------------


def test_zone_transitions_commit_after_dwell_with_their_crossing_time():
    tracker = Tracker(zone_enter_dwell_s=0.3, zone_leave_dwell_s=0.3, zone_min_frames=3)
    s = Scene(tracker)
    events, zones = [], []
    # Enter from the left image edge (the polygon starts at x = 48), rest, then leave.
    path = [20 + 6 * f for f in range(40)] + [260] * 30 + [260 - 10 * f for f in range(1, 24)] + [20] * 20
    for f, x in enumerate(path):
        out = s.step({"a": (box(x, 240), 0.9, ITEM, None, 0.5)})
        events += [(f, t) for t in out.transitions]
        zones.append(int(out.zone[0]) if len(out) else None)
    first_inside = next(f for f, x in enumerate(path) if x >= 48)
    first_outside = next(f for f, x in enumerate(path) if f > 40 and x < 48)
    assert [t.kind for _, t in events] == [ENTERED_BASKET, LEFT_BASKET]
    (f_in, entered), (f_out, left) = events
    assert entered.track_id == left.track_id == 1
    assert entered.t_ns == first_inside * NS
    assert entered.decided_t_ns == f_in * NS and entered.decided_t_ns - entered.t_ns >= 0.3e9
    assert f_in - first_inside + 1 >= 3
    assert zones[first_inside] == ZONE_ENTERING and zones[f_in] == ZONE_INSIDE
    assert left.t_ns == first_outside * NS and left.decided_t_ns - left.t_ns >= 0.3e9
    assert zones[-1] == ZONE_OUTSIDE


def test_short_excursions_do_not_commit():
    s = Scene(Tracker(zone_enter_dwell_s=0.3))
    transitions = []
    # Outside, a 5-frame (0.17 s) dip across the rim, and back out: no event.
    for f in range(40):
        x = 60 if 10 <= f < 15 else 30
        transitions += s.step({"a": (box(x, 240, 40, 40), 0.9, ITEM, None, 0.5)}).transitions
    assert transitions == []


def test_depth_decides_inside_when_given():
    s = Scene(Tracker())
    transitions = []
    for f in range(30):  # inside the polygon but held above the rim (nearer than 0.25 m)
        transitions += s.step({"a": (box(300, 240), 0.9, ITEM, None, 0.15)}).transitions
    assert transitions == []
    for f in range(30):  # lowered into the basket
        transitions += s.step({"a": (box(300, 240), 0.9, ITEM, None, 0.55)}).transitions
    assert [t.kind for t in transitions] == [ENTERED_BASKET]


def test_hands_have_no_zone_events():
    s = Scene(Tracker())
    transitions = []
    for f in range(60):
        transitions += s.step({"h": (box(20 + 8 * f, 240), 0.9, HAND, None, 0.5)}).transitions
    assert transitions == []


# ---------------------------------------------------------------------------------------------
# SKU posterior
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("span", [0.0, 3.0])
def test_sku_posterior_matches_hand_computation(rng, span):
    """Unbounded (span 0) and bounded: a SKU more than ``span`` behind the leader keeps the span
    plus the log of the rest of its deficit."""
    temperature, half_life = 0.1, 0.5
    tracker = Tracker(sku_temperature=temperature, sku_half_life_s=half_life, sku_top_k=3, sku_evidence_span=span)
    s = Scene(tracker)
    n_sku = 6
    evidence = np.zeros(n_sku)
    last_t = None
    out = None
    for f in range(40):
        sim = rng.uniform(-0.2, 0.6, n_sku).astype(np.float32)
        sim[4] += 0.15  # SKU 4 is usually the best match
        score = 0.3 if f % 7 == 3 else 0.9  # low-score frames bring no evidence
        out = s.step({"a": (box(300, 240), score, ITEM, None)}, sku=sim[None, :])
        if score >= 0.6:
            t = f * NS / 1e9
            decay = 0.0 if last_t is None else 0.5 ** ((t - last_t) / half_life)
            z = sim.astype(np.float64) / temperature
            evidence = decay * evidence + (z - z.max() - np.log(np.exp(z - z.max()).sum()))
            if span > 0:
                floor = evidence.max() - span
                evidence = np.where(evidence < floor, floor - np.log1p(np.maximum(floor - evidence, 0)), evidence)
            last_t = t
    p = np.exp(evidence - evidence.max())
    p /= p.sum()
    order = np.argsort(-p)[:3]
    assert out.sku_ids[0].tolist() == order.tolist()
    np.testing.assert_allclose(out.sku_prob[0], p[order], rtol=1e-4, atol=1e-6)
    if span == 0:
        assert out.sku_ids[0, 0] == 4
    else:  # the runners-up keep their order, none far below e^-span of the leader
        assert out.sku_prob[0, -1] >= out.sku_prob[0, 0] * np.exp(-span - 4)


def test_a_bounded_span_lets_a_product_taking_over_a_track_overturn_it_quickly():
    """Ten seconds of one product, then another in its box (a hand-over): unbounded, the old
    product's correlated frames keep the posterior for seconds; with a span of 10 nats the new
    product leads within a few frames."""
    old, new = np.full(4, 0.7, np.float32), np.full(4, 0.7, np.float32)
    old[0], new[1] = 0.95, 0.95

    def frames_to_overturn(span):
        s = Scene(Tracker(sku_temperature=0.05, sku_half_life_s=30.0, sku_evidence_span=span))
        for _ in range(300):
            s.step({"a": (box(300, 240), 0.9, ITEM, None)}, sku=old[None, :])
        for f in range(300):
            out = s.step({"a": (box(300, 240), 0.9, ITEM, None)}, sku=new[None, :])
            if out.sku_ids[0, 0] == 1:
                return f + 1
        return None

    assert frames_to_overturn(10.0) <= 4
    unbounded = frames_to_overturn(0.0)
    assert unbounded is None or unbounded > 100


def test_tracks_without_sku_evidence_report_none():
    out = Scene(Tracker()).step({"a": (box(300, 240), 0.9, ITEM, None)})
    assert out.sku_ids.tolist() == [[-1, -1, -1]] and out.sku_prob.tolist() == [[0.0, 0.0, 0.0]]


# ---------------------------------------------------------------------------------------------
# Configuration and bad input
# ---------------------------------------------------------------------------------------------


def test_configuration_paths(tmp_path):
    assert Tracker().config == config.load().tracker
    assert Tracker(min_iou=0.3).config.min_iou == 0.3
    assert Tracker(basket_polygon=np.array([[0, 0], [10, 0], [10, 10]])).config.basket_polygon == (
        (0.0, 0.0), (10.0, 0.0), (10.0, 10.0))
    f = tmp_path / "c.toml"
    f.write_text("[tracker]\nrest_lost_timeout_s = 30.0\n")
    cfg = config.load(f)
    assert Tracker.from_config(cfg).config.rest_lost_timeout_s == 30.0
    assert Tracker.from_config(cfg.tracker).config == cfg.tracker


@pytest.mark.parametrize(
    "params, fragment",
    [
        ({"min_iuo": 0.3}, "unknown tracker parameter 'min_iuo'"),
        ({"min_iou": 2.0}, "tracker.min_iou = 2.0"),
        ({"rest_appearance_gate": 3.0}, "tracker.rest_appearance_gate = 3.0"),
        ({"low_score_threshold": 0.9}, "tracker.low_score_threshold"),
        ({"confirm_hits": 0}, "tracker.confirm_hits = 0"),
        ({"basket_polygon": [[0, 0], [1, 1]]}, "tracker.basket_polygon"),
        ({"basket_depth_range_m": [0.9, 0.2]}, "tracker.basket_depth_range_m"),
        ({"sku_temperature": "hot"}, "tracker.sku_temperature = 'hot'"),
        ({"sku_evidence_span": -1.0}, "tracker.sku_evidence_span = -1.0"),
    ],
)
def test_bad_parameters_name_key_and_value(params, fragment):
    with pytest.raises(ConfigError) as info:
        Tracker(**params)
    assert fragment in str(info.value)


GOOD = (np.array([box(100, 100), box(300, 300)], np.float32), np.array([0.9, 0.8], np.float32), np.array([0, 0], np.int32))


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"score": np.array([0.9], np.float32)}, "score must have shape (2,)"),
        ({"class_id": np.zeros(3, np.int32)}, "class_id must have shape (2,)"),
        ({"xyxy": np.zeros((2, 5), np.float32)}, "xyxy must have shape (n, 4)"),
        ({"xyxy": np.array([box(100, 100), [1, 2, np.nan, 4]], np.float32)}, "xyxy[1] = (1, 2, nan, 4)"),
        ({"xyxy": np.array([box(100, 100), [50, 2, 40, 4]], np.float32)}, "negative width or height"),
        ({"score": np.array([0.9, np.nan], np.float32)}, "score[1] = nan"),
        ({"depth_m": np.array([0.5, -1.0], np.float32)}, "depth_m[1] = -1"),
        ({"embedding": np.ones((2, 16), np.float32)}, "embedding has dimension 16: expected 8"),
        ({"embedding": np.ones((3, 8), np.float32)}, "embedding must have shape (2, D)"),
        ({"sku_similarity": np.ones((2, 5), np.float32)}, "sku_similarity has 5 columns: expected 4"),
        ({"t_ns": 5}, "t_ns = 5: expected a time after the previous frame's 10"),
        ({"xyxy": "boxes"}, "xyxy must be convertible"),
    ],
)
def test_bad_input_is_rejected_and_leaves_the_tracker_unchanged(kwargs, fragment):
    tracker = Tracker()
    tracker.update(*GOOD, embedding=np.ones((2, 8), np.float32), sku_similarity=np.ones((2, 4), np.float32), t_ns=10)
    before = tracker.all_tracks()
    args = dict(zip(("xyxy", "score", "class_id"), GOOD))
    args.update(kwargs)
    with pytest.raises(ValueError) as info:
        tracker.update(**args)
    assert fragment in str(info.value)
    assert tracker.frame_count == 1
    after = tracker.all_tracks()
    assert after.track_id.tolist() == before.track_id.tolist()
    np.testing.assert_array_equal(after.xyxy, before.xyxy)
    assert len(tracker.update(*GOOD, t_ns=20)) == 2  # still works


def test_empty_frames_and_python_lists():
    tracker = Tracker()
    assert len(tracker.update([], [], [])) == 0
    assert len(tracker.update([box(100, 100)], [0.9], [0])) == 0  # tentative: not the first frame
    out = tracker.update([box(101, 100)], [0.9], [0])
    assert out.track_id.tolist() == [1]
    assert out.xyxy.dtype == np.float32 and out.track_id.dtype == np.int64


def test_deterministic_and_thread_safe(rng):
    frames = []
    for f in range(80):
        n = 12
        centres = np.stack([np.linspace(50, 590, n) + 2 * f * (np.arange(n) % 2 * 2 - 1), np.full(n, 240.0)], 1)
        xyxy = np.hstack([centres - 20, centres + 20]).astype(np.float32)
        frames.append((xyxy + rng.normal(0, 1, xyxy.shape).astype(np.float32), np.full(n, 0.9, np.float32),
                       np.zeros(n, np.int32)))

    def run() -> list[list[int]]:
        tracker = Tracker()
        return [tracker.update(*fr).track_id.tolist() for fr in frames]

    serial = run()
    results: list = [None] * 4

    def work(k: int) -> None:
        results[k] = run()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r == serial for r in results)


# ---------------------------------------------------------------------------------------------
# Evaluation on generated cart sequences (CI-sized; `python -m benchmarks.track_eval` runs more)
# ---------------------------------------------------------------------------------------------


def test_matches_or_beats_peers_on_cart_sequences():
    pytest.importorskip("trackers")
    from caper_edge.track_eval import generate_suite
    from caper_edge.track_eval.evaluate import evaluate, format_table, ours_factory, peer_factories

    sequences = generate_suite(3, seed=11, n_frames=600)
    results = evaluate(sequences, {"ours": ours_factory(), **peer_factories()})
    table = format_table(results)
    ours, peers = results[0], results[1:]
    assert ours.hota >= max(p.hota for p in peers), table
    assert ours.idf1 >= max(p.idf1 for p in peers), table
    assert ours.id_switches <= min(p.id_switches for p in peers), table
    # Every hand occlusion of a resting item in these sequences keeps the item's ID.
    assert ours.occlusions > 0 and ours.occlusions_kept == ours.occlusions, table
    # Zone transitions agree with the ground-truth basket events (same item, within 1 s).
    assert ours.events is not None and ours.events["tp"] > 5, ours.events
    assert ours.events["precision"] >= 0.9 and ours.events["recall"] >= 0.9, ours.events
