"""The replay loop's look-change rule (caper_edge.replay.Pipeline._look_changed): when a track
inside the basket starts to look like another product, that is an in-place entry of it (the
tracker may hand a new product the track of one it covered or stood beside); and the in-place
leaving of a booked track that vanished (Pipeline._vanished), which carries its look too."""
from __future__ import annotations

import pytest

from caper_edge import config
from caper_edge.catalog import Catalog, Product
from caper_edge.errors import ConfigError
from caper_edge.fusion.inputs import GLIMPSE_GROUP, GLIMPSE_SKU, GLIMPSE_WEAK
from caper_edge.replay import _LOOK_CHANGE_FRAMES, Pipeline


class _NoVision:
    skus = ["A", "B", "C"]


def _pipe(**fusion):
    env = {f"CAPER_EDGE__FUSION__{k.upper()}": str(v) for k, v in fusion.items()}
    return Pipeline(config.load(None, environ=env), Catalog(Product(s, s, 300.0, 5.0, 1.0) for s in _NoVision.skus), _NoVision())


OLD = (("A", 0.9), ("B", 0.05), ("C", 0.05))           # a confident look of A
NEW_WEAK = (("B", 0.4), ("C", 0.35), ("A", 0.01))      # not A, but no SKU strongly
NEW_STRONG = (("B", 0.8), ("C", 0.15), ("A", 0.05))
A_WEAK = (("C", 0.4), ("B", 0.35), ("A", 0.2))         # partly hidden A: A still plausible


def _changes(pipe, looks, tid=7):
    return [pipe._look_changed(tid, look) for look in looks]


def test_a_confident_other_look_for_5_frames_is_a_change_once():
    pipe = _pipe()
    assert _changes(pipe, [OLD]) == [False]
    got = _changes(pipe, [NEW_STRONG] * (_LOOK_CHANGE_FRAMES + 3))
    assert got == [False] * (_LOOK_CHANGE_FRAMES - 1) + [True] + [False] * 3


def test_weak_looks_change_nothing_unless_enabled():
    pipe = _pipe()  # look_change_max_old = 0: only confident looks count
    _changes(pipe, [OLD])
    assert not any(_changes(pipe, [NEW_WEAK] * 60))


def test_a_steady_weak_look_that_rules_out_the_old_sku_is_a_change():
    pipe = _pipe(look_change_max_old=0.05, look_change_weak_frames=15)
    _changes(pipe, [OLD])
    got = _changes(pipe, [NEW_WEAK] * 20)
    assert got.index(True) == 14 and got.count(True) == 1
    # the new look is now the reported one: A again is a change back only if confident
    assert not any(_changes(pipe, [A_WEAK] * 30))


def test_weak_looks_must_agree_and_rule_the_old_sku_out():
    pipe = _pipe(look_change_max_old=0.05, look_change_weak_frames=15)
    _changes(pipe, [OLD])
    # the old SKU still plausible (partly hidden): never a change
    assert not any(_changes(pipe, [A_WEAK] * 40))
    # alternating other top-1s: the run restarts every frame
    flip = (("C", 0.4), ("B", 0.35), ("A", 0.01))
    assert not any(_changes(pipe, [NEW_WEAK, flip] * 20))
    # a run broken by the old look starts over
    assert not any(_changes(pipe, [NEW_WEAK] * 10 + [OLD] + [NEW_WEAK] * 10))


def test_a_first_weak_look_is_not_reported():
    pipe = _pipe(look_change_max_old=0.05, look_change_weak_frames=2)
    assert not any(_changes(pipe, [NEW_WEAK] * 5))  # no confident look yet: nothing to change from
    assert _changes(pipe, [OLD]) == [False]


@pytest.mark.parametrize("key, value", [("look_change_max_old", 1.5), ("look_change_min_prob", -0.1),
                                        ("look_change_weak_frames", 0)])
def test_bad_look_change_settings_are_named(key, value):
    with pytest.raises(ConfigError, match=f"fusion.{key}"):
        _pipe(**{key: value})


def test_a_vanished_booked_track_leaves_with_what_it_looked_like():
    # A booked product's track that was matched steadily and is not in this frame is an in-place
    # leaving (a removal under the hand shows only as this); it carries the track's SKU posterior,
    # as the tracker's own transitions do, so a removal between weigh-alikes can follow the look.
    from types import SimpleNamespace

    import numpy as np

    from caper_edge.replay import _STEADY_FRAMES

    pipe = _pipe()
    pipe._matched_run = {7: _STEADY_FRAMES, 8: _STEADY_FRAMES, 9: 1}
    pipe.fusion.booked_track_ids = lambda: {7, 9}
    pipe.tracker = SimpleNamespace(all_tracks=lambda: SimpleNamespace(
        track_id=np.array([7, 8, 9]), sku_ids=np.array([[1, 0, -1], [0, 1, -1], [2, 0, -1]]),
        sku_prob=np.array([[0.7, 0.2, 0.0], [0.9, 0.1, 0.0], [0.6, 0.4, 0.0]])))
    out = pipe._vanished(SimpleNamespace(track_id=np.array([], dtype=np.int64)), 123)
    # 8 is not booked, 9 was not matched steadily: only 7 left
    assert [(e.kind, e.track_id, e.in_place, e.t_ns) for e in out] == [("left", 7, True, 123)]
    assert out[0].candidates == (("B", pytest.approx(0.7)), ("A", pytest.approx(0.2)))
    assert pipe._vanished(SimpleNamespace(track_id=np.array([7])), 124) == []


def _group_pipe(groups: bool):
    """Three tomato cans of one look-alike group (T1..T3) and two cereal boxes of another (K1, K2)."""
    skus = ["T1", "T2", "T3", "K1", "K2", "X"]
    vision = type("V", (), {"skus": skus})()
    products = [Product(s, s, 300.0 + 50 * i, 5.0, 1.0, look_group=("tomato" if s[0] == "T" else "cereal" if s[0] == "K" else None))
                for i, s in enumerate(skus)]
    env = {"CAPER_EDGE__FUSION__LOOK_CHANGE_GROUPS": str(groups).lower()}
    return Pipeline(config.load(None, environ=env), Catalog(products), vision)


CAN = (("T1", 0.3), ("T3", 0.3), ("T2", 0.28))           # a can of the group: each member ~0.3
CAN_FLIP = (("T2", 0.31), ("T1", 0.3), ("T3", 0.27))     # the same can, another member on top
BOX = (("K1", 0.41), ("K2", 0.4), ("X", 0.05))            # a box of the other group: 0.8 together


def test_a_lookalike_group_look_changes_to_another_group_only_when_counted_together():
    # Without groups: the can's track never had a confident look, so the box under it is never seen.
    pipe = _group_pipe(False)
    assert not any(_changes(pipe, [CAN] * 10 + [BOX] * 30))
    # With groups: the can's look (0.88 together) is reported; the box (0.81) replaces it once.
    pipe = _group_pipe(True)
    got = _changes(pipe, [CAN] * 10 + [BOX] * (_LOOK_CHANGE_FRAMES + 5))
    assert got.count(True) == 1 and got.index(True) == 10 + _LOOK_CHANGE_FRAMES - 1


def test_members_of_one_group_trading_places_are_no_change():
    pipe = _group_pipe(True)
    assert not any(_changes(pipe, [CAN, CAN_FLIP] * 40))
    # ... but one member confidently on top is, as without groups (a change within the group).
    t2 = (("T2", 0.7), ("T1", 0.2), ("T3", 0.1))
    assert _changes(pipe, [t2] * _LOOK_CHANGE_FRAMES)[-1] is True


def test_census_counts_confident_resting_products_inside_the_basket():
    """Pipeline._census (fusion's census): per SKU, the item tracks inside the basket, at rest,
    matched in this frame, whose look gives one SKU at least census_min_prob."""
    from types import SimpleNamespace

    import numpy as np

    from caper_edge.track import ZONE_ENTERING, ZONE_INSIDE

    pipe = _pipe()
    peaked = lambda j: [10.0 if k == j else 0.0 for k in range(3)]  # noqa: E731
    obs = SimpleNamespace(sku_similarity=np.array([peaked(0), peaked(0), peaked(1), [0.0, 0.0, 0.0], peaked(2), peaked(0)],
                                                  np.float32))
    inside, entering = ZONE_INSIDE, ZONE_ENTERING
    tracks = SimpleNamespace(
        zone=np.array([inside, inside, inside, inside, entering, inside, inside], np.uint8),
        at_rest=np.array([True, True, True, True, True, False, True]),
        class_id=np.array([0, 0, 0, 0, 0, 0, 1], np.int32),
        det_index=np.array([0, 1, 2, 3, 4, 5, -1], np.int32),
        xyxy=np.array([[60 * k, 0, 60 * k + 50, 50] for k in range(7)], np.float32))  # side by side
    tracks.track_id = np.array([10, 11, 12, 13, 14, 15, 16], np.int32)
    # rows: two resting A, one resting B, one with no look, C entering, A moving, a hand
    counts, groups, looks = pipe._census(tracks, obs)
    assert counts == {"A": 2, "B": 1} and groups == {}
    assert sorted(looks) == [10, 11, 12] and looks[12][0][0] == "B"  # every resting look (not the one with none)
    unsure = SimpleNamespace(sku_similarity=np.array([[0.01, 0.0, 0.0]] * 6, np.float32))
    assert pipe._census(tracks, unsure)[:2] == ({}, {})


@pytest.mark.parametrize("groups", [True, False])
def test_census_counts_a_resting_product_seen_only_as_its_look_alike_group(groups):
    """With census_groups, a resting product whose top SKU falls short of census_min_prob while
    its look-alike group reaches census_group_min_prob (0.6) together is counted for the group
    (named by its first member); a look split between unrelated SKUs counts for nothing."""
    from types import SimpleNamespace

    import numpy as np

    from caper_edge.track import ZONE_INSIDE

    env = {"CAPER_EDGE__FUSION__CENSUS_GROUPS": str(groups).lower()}
    pipe = _group_pipe(True)
    pipe = Pipeline(config.load(None, environ=env), pipe.catalog, pipe.vision)
    flat = (("K2", 0.33), ("K1", 0.32), ("X", 0.1))  # a two-member group's tempered look: 0.65
    looks = {0: BOX, 1: CAN, 2: (("K1", 0.45), ("X", 0.4), ("T1", 0.1)), 3: flat}
    pipe._look = lambda obs, det: looks[det]
    tracks = SimpleNamespace(zone=np.full(4, ZONE_INSIDE, np.uint8), at_rest=np.ones(4, bool),
                             class_id=np.zeros(4, np.int32), det_index=np.arange(4, dtype=np.int32),
                             track_id=np.array([4, 5, 6, 7], np.int32),
                             xyxy=np.array([[60 * k, 0, 60 * k + 50, 50] for k in range(4)], np.float32))
    counts, by_group, _looks = pipe._census(tracks, SimpleNamespace())
    assert counts == {}
    assert by_group == ({"K1": 2, "T1": 1} if groups else {})
    env["CAPER_EDGE__FUSION__CENSUS_GROUP_MIN_PROB"] = "0.7"
    strict = Pipeline(config.load(None, environ=env), pipe.catalog, pipe.vision)
    strict._look = pipe._look
    assert strict._census(tracks, SimpleNamespace())[1] == ({"K1": 1, "T1": 1} if groups else {})


@pytest.mark.parametrize("ios", [0.9, 0.0])
def test_census_counts_a_box_lying_inside_a_bigger_one_of_its_look_once(ios):
    """census_nested_ios: a resting box at least that share inside a bigger resting box that
    looks like the same product or look-alike group is that product's other part (a cereal box
    split by a can lying across it; unseen AK busy seed 6506), counted once; a box of another
    look inside it, and one of the same look beside it, still count. 0 turns the rule off."""
    from types import SimpleNamespace

    import numpy as np

    from caper_edge.track import ZONE_INSIDE

    env = {"CAPER_EDGE__FUSION__CENSUS_NESTED_IOS": str(ios)}
    base = _group_pipe(True)
    pipe = Pipeline(config.load(None, environ=env), base.catalog, base.vision)
    flat = (("K2", 0.33), ("K1", 0.32), ("X", 0.1))   # the cereal group's tempered look
    alone = (("X", 0.95), ("K1", 0.02), ("T1", 0.01))   # a product of no group, confident
    looks = {0: BOX, 1: flat, 2: CAN, 3: flat, 4: alone, 5: alone}
    pipe._look = lambda obs, det: looks[det]
    xyxy = np.array([[173, 180, 407, 358],   # the whole box
                     [280, 192, 399, 347],   # its part beside the can: inside it, same group
                     [300, 200, 360, 260],   # the can lying on it: inside it, another group
                     [420, 180, 560, 330],   # a second box beside the first
                     [0, 0, 100, 100],       # a product of no group ...
                     [5, 5, 90, 95]], np.float32)  # ... and its part
    tracks = SimpleNamespace(zone=np.full(6, ZONE_INSIDE, np.uint8), at_rest=np.ones(6, bool),
                             class_id=np.zeros(6, np.int32), det_index=np.arange(6, dtype=np.int32),
                             track_id=np.arange(20, 26, dtype=np.int32), xyxy=xyxy)
    counts, by_group, looks_by_track = pipe._census(tracks, SimpleNamespace())
    if ios:
        assert by_group == {"K1": 2, "T1": 1} and counts == {"X": 1}
    else:
        assert by_group == {"K1": 3, "T1": 1} and counts == {"X": 2}
    assert sorted(looks_by_track) == list(range(20, 26))   # the looks by track keep every part
    with pytest.raises(ConfigError, match="census_nested_ios"):
        config.load(None, environ={"CAPER_EDGE__FUSION__CENSUS_NESTED_IOS": "1.5"})


def test_hands_are_the_confirmed_hand_tracks_matched_in_the_frame():
    """Pipeline._hands (fusion's spare hand): hand tracks the tracker confirmed, not its
    tentative or lost ones, and no item track."""
    from types import SimpleNamespace

    import numpy as np

    from caper_edge.track import LOST, TENTATIVE, TRACKED

    tracks = SimpleNamespace(class_id=np.array([1, 1, 0, 1, 1], np.int32),
                             state=np.array([TRACKED, TRACKED, TRACKED, TENTATIVE, LOST], np.uint8))
    assert _pipe()._hands(tracks) == 2
    assert _pipe()._hands(SimpleNamespace(class_id=np.zeros(0, np.int32), state=np.zeros(0, np.uint8))) == 0


def test_the_resting_audit_gets_the_posteriors_of_audited_tracks_matched_inside_the_basket():
    """Pipeline._audit (fusion's resting audit): each track fusion audits (audit_track_ids),
    matched in this frame inside the basket, is passed with its SKU posterior, its floor place
    and whether it rests; other tracks, and audited ones unmatched or outside, are not."""
    from types import SimpleNamespace

    import numpy as np

    from caper_edge.track import ZONE_ENTERING, ZONE_INSIDE

    pipe = _pipe(audit_window_s=10.0)
    calls = []
    pipe.fusion.audit_track_ids = lambda: {3, 4, 5, 6}
    pipe.fusion.audit_look = lambda tid, t_ns, cands, uv, *, at_rest: calls.append((tid, t_ns, cands, uv, at_rest)) or []
    pipe._floor = {3: (0.2, 0.5)}
    inside = ZONE_INSIDE
    tracks = SimpleNamespace(
        track_id=np.array([2, 3, 4, 5, 6], np.int64),
        zone=np.array([inside, inside, inside, ZONE_ENTERING, inside], np.uint8),
        at_rest=np.array([True, True, False, True, True]),
        det_index=np.array([0, 1, 2, 3, -1], np.int32),
        sku_ids=np.array([[0, 1]] * 5, np.int32),
        sku_prob=np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [1.0, 0.0], [1.0, 0.0]], np.float32))
    # rows: not audited, audited at rest, audited moving, audited entering, audited unmatched
    assert pipe._audit(tracks, 123) == []
    assert [(c[0], c[1], [s for s, _ in c[2]], c[3], c[4]) for c in calls] == [
        (3, 123, ["A", "B"], (0.2, 0.5), True), (4, 123, ["A", "B"], None, False)]
    assert calls[0][2][1][1] == pytest.approx(0.8)  # fusion sorts them


@pytest.mark.parametrize("key, value", [("audit_window_s", -1.0), ("audit_min_s", -0.5), ("audit_min_prob", 1.2),
                                        ("audit_min_posterior", -0.1)])
def test_bad_audit_settings_are_named(key, value):
    with pytest.raises(ConfigError, match=f"fusion.{key}"):
        _pipe(**{key: value})


def test_glimpses_are_confident_item_detections_no_track_took_or_covers():
    """Pipeline._glimpses (fusion's glimpses): the item detections no confirmed track took this
    frame, whose look gives one SKU at least glimpse_min_prob, overlapping no live item track's
    box (matched this frame or lost) by more than glimpse_max_iou."""
    from types import SimpleNamespace

    import numpy as np

    pipe = _pipe()
    peaked = lambda j: [10.0 if k == j else 0.0 for k in range(3)]  # noqa: E731
    boxes = [[0, 0, 100, 100],      # 0: A, taken by track 1
             [300, 300, 380, 400],  # 1: B, free and far from every track: a glimpse
             [200, 0, 260, 80],     # 2: C, free, but where lost track 2 lies
             [400, 0, 500, 90],     # 3: a hand
             [0, 300, 90, 390],     # 4: free, but no SKU stands out
             [5, 5, 100, 100]]      # 5: A again, a second box on track 1's product
    obs = SimpleNamespace(xyxy=np.array(boxes, np.float32), class_id=np.array([0, 0, 0, 1, 0, 0], np.int32),
                          sku_similarity=np.array([peaked(0), peaked(1), peaked(2), [0.0] * 3, [0.01, 0.0, 0.0], peaked(0)],
                                                  np.float32))
    matched = SimpleNamespace(det_index=np.array([0, 3], np.int32), class_id=np.array([0, 1], np.int32),
                              xyxy=np.array([boxes[0], boxes[3]], np.float32))
    live = SimpleNamespace(xyxy=np.array([boxes[0], [198, 2, 262, 82], boxes[3]], np.float32),
                           class_id=np.array([0, 0, 1], np.int32))
    pipe.tracker = SimpleNamespace(all_tracks=lambda: live)
    got = pipe._glimpses(matched, obs)
    assert [sku for sku, *_ in got] == ["B"] and got[0][1] > 0.99 and got[0][2] == GLIMPSE_SKU
    # no track at all: every confident free item detection is a glimpse
    pipe.tracker = SimpleNamespace(all_tracks=lambda: SimpleNamespace(xyxy=np.zeros((0, 4), np.float32),
                                                                      class_id=np.zeros(0, np.int32)))
    none_taken = SimpleNamespace(det_index=np.zeros(0, np.int32))
    assert [sku for sku, *_ in pipe._glimpses(none_taken, obs)] == ["A", "B", "C", "A"]


def test_a_detection_split_between_lookalikes_is_a_glimpse_of_the_group():
    """With glimpse_groups (on by default) a free item detection whose top SKU falls short of
    glimpse_min_prob is a glimpse when its look-alike group reaches it together, reported as
    (top SKU, the group's probability, GLIMPSE_GROUP); off, or without look-alikes, it is only a weak
    glimpse (its top SKU's own ~0.5: glimpse_weak_min_prob), or none with weak glimpses off too."""
    from types import SimpleNamespace

    import numpy as np

    split = [[5.0, 5.0, 0.0]]  # A and B alike at ~0.5 each, C far below
    obs = SimpleNamespace(xyxy=np.array([[300, 300, 380, 400]], np.float32), class_id=np.array([0], np.int32),
                          sku_similarity=np.array(split, np.float32))
    none_taken = SimpleNamespace(det_index=np.zeros(0, np.int32))
    empty = SimpleNamespace(xyxy=np.zeros((0, 4), np.float32), class_id=np.zeros(0, np.int32))

    def glimpses(pipe):
        pipe.tracker = SimpleNamespace(all_tracks=lambda: empty)
        return pipe._glimpses(none_taken, obs)

    grouped = Catalog([Product("A", "A", 300.0, 5.0, 1.0, look_group="ab"), Product("B", "B", 600.0, 5.0, 1.0, look_group="ab"),
                       Product("C", "C", 300.0, 5.0, 1.0)])
    pipe = Pipeline(config.load(None, environ={}), grouped, _NoVision())
    got = glimpses(pipe)
    assert len(got) == 1 and got[0][0] in ("A", "B") and got[0][1] > 0.99 and got[0][2] == GLIMPSE_GROUP
    assert got[0][3] == (300.0, 300.0, 380.0, 400.0)  # the detection's box
    off = Pipeline(config.load(None, environ={"CAPER_EDGE__FUSION__GLIMPSE_GROUPS": "false"}), grouped, _NoVision())
    assert [(sku, kind) for sku, _, kind, _box in glimpses(off)] == [(got[0][0], GLIMPSE_WEAK)]
    assert [kind for _, _, kind, _box in glimpses(_pipe())] == [GLIMPSE_WEAK]  # no look-alike groups
    assert glimpses(_pipe(glimpse_weak_min_prob=0)) == []
    assert glimpses(_pipe(glimpse_weak_min_prob=0.6)) == []  # the top SKU's ~0.5 falls short


def test_a_detection_overlapping_only_a_neighbour_that_looks_different_is_a_glimpse():
    """A free detection overlapping an item track by more than glimpse_max_iou (0.3) but at most
    glimpse_max_iou_other (0.5) is still a glimpse when the track looks like another product
    (its top SKU neither the detection's nor a look-alike): unseen L simple seed 9402, a honey
    at rest beside a neighbour's track at IoU 0.33. A track that looks like it, or like a
    look-alike of it, or has no SKU yet, may be its own product: no glimpse; nor above 0.5."""
    from types import SimpleNamespace

    import numpy as np

    grouped = Catalog([Product("A", "A", 300.0, 5.0, 1.0), Product("B", "B", 600.0, 5.0, 1.0, look_group="bc"),
                       Product("C", "C", 300.0, 5.0, 1.0, look_group="bc")])
    obs = SimpleNamespace(xyxy=np.array([[0, 0, 100, 100]], np.float32), class_id=np.array([0], np.int32),
                          sku_similarity=np.array([[0.0, 10.0, 0.0]], np.float32))  # looks like B
    none_taken = SimpleNamespace(det_index=np.zeros(0, np.int32))

    def glimpses(track_box, track_col, **fusion):
        env = {f"CAPER_EDGE__FUSION__{k.upper()}": str(v) for k, v in fusion.items()}
        pipe = Pipeline(config.load(None, environ=env), grouped, _NoVision())
        track = SimpleNamespace(xyxy=np.array([track_box], np.float32), class_id=np.array([0], np.int32),
                                sku_ids=np.array([[track_col, -1]], np.int32),
                                sku_prob=np.array([[0.9 if track_col >= 0 else 0.0, 0.0]], np.float32))
        pipe.tracker = SimpleNamespace(all_tracks=lambda: track)
        return [sku for sku, *_ in pipe._glimpses(none_taken, obs)]

    beside, on_it = [40, 0, 140, 100], [20, 0, 120, 100]    # IoU 0.43 and 0.67
    assert glimpses(beside, 0) == ["B"]                      # the neighbour looks like A
    assert glimpses(beside, 1) == []                         # ... like B itself
    assert glimpses(beside, 2) == []                         # ... like C, B's look-alike
    assert glimpses(beside, -1) == []                        # ... like nothing yet
    assert glimpses(on_it, 0) == []                          # too much overlap
    assert glimpses(beside, 0, glimpse_max_iou_other=0.3) == []  # off
    assert glimpses([200, 0, 300, 100], 1) == ["B"]          # no overlap at all


def test_a_new_track_found_where_an_undecided_carried_product_was_continues_it():
    """Pipeline._note_carried / _continuations: the in-place entry of a track started in the
    last continue_max_gap_s, within continue_max_dist of where a product carried in (entry
    still undecided) lay in that time, continues the nearest such track, once; an older track
    found again there, one found elsewhere, and any after the gap do not."""
    from types import SimpleNamespace

    import numpy as np

    from caper_edge.fusion import VisionEvent

    s = 1_000_000_000
    pipe = _pipe(continue_max_dist=0.05, continue_max_gap_s=3.0)
    pipe.fusion.on_vision(VisionEvent("entered", 1, 1 * s, 1 * s, (("A", 0.9),)))      # carried in, undecided
    assert pipe.fusion.pending_carried_ids() == {1}
    pipe._floor[1] = (0.50, 0.30)
    pipe._note_carried(SimpleNamespace(track_id=np.array([1])), 2 * s)                 # it lay there at 2 s
    pipe._floor[1] = (0.30, 0.30)                                                       # then its track slid away
    pipe._note_carried(SimpleNamespace(track_id=np.array([1])), int(2.5 * s))
    matched = SimpleNamespace(track_id=np.array([2, 3, 4, 5]),                          # when each was first matched
                              t_first_ns=np.array([int(3.5 * s), int(3.5 * s), 0, int(3.6 * s)], np.int64))

    def found(tid, uv):
        return VisionEvent("entered", tid, 4 * s, 4 * s, (("B", 0.9),), in_place=True, floor_uv=uv)

    got = pipe._continuations([found(4, (0.50, 0.30)), found(3, (0.80, 0.80)), found(2, (0.52, 0.31)),
                               found(5, (0.51, 0.30))], matched, 4 * s)
    assert [e.continues for e in got] == [None, None, 1, None]   # 4: older; 3: elsewhere; 5: 1 is taken
    later = pipe._continuations([found(2, (0.52, 0.31))], matched, int(6.6 * s))
    assert later[0].continues is None                            # born more than 3 s before
    pipe._note_carried(SimpleNamespace(track_id=np.array([1])), int(6.0 * s))
    assert [(u, v) for _, (u, v) in pipe._carried_path[1]] == [(0.30, 0.30)]  # 2 s position forgotten
    off = _pipe(continue_max_dist=0.0)
    assert off.cfg.fusion.continue_max_dist == 0.0


def test_continuation_settings_are_checked():
    with pytest.raises(ConfigError, match="continue_max_dist"):
        _pipe(continue_max_dist=-0.1)
