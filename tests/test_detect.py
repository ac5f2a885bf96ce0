"""caper_edge.detect against cv2.dnn.NMSBoxes and hand-computed cases.

The reference decode is the one an engineer writes by hand: numpy max/argmax over the class rows,
cx, cy, w, h -> x, y, w, h, then cv2.dnn.NMSBoxes per class (or once, class-agnostic) with the
score threshold left to OpenCV, merged by descending score (ties: lower column) and capped.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

import caper_edge
from caper_edge import detect
from caper_edge.detect import Detections

# ---------------------------------------------------------------------------------------------
# Reference and input generators
# ---------------------------------------------------------------------------------------------


def reference_decode(raw, conf, iou, max_det, agnostic):
    """Kept columns of `raw` ((4 + nc, N), NaN-free) per numpy + cv2.dnn.NMSBoxes, output order."""
    raw = np.asarray(raw).reshape(raw.shape[-2], raw.shape[-1]).astype(np.float32)
    cx, cy, w, h = raw[:4]
    scores = raw[4:]
    cls = scores.argmax(axis=0)
    best = scores.max(axis=0)
    boxes = np.stack([cx - w / 2, cy - h / 2, w, h], axis=1).astype(np.float64)
    groups = [np.arange(raw.shape[1])] if agnostic else [np.flatnonzero(cls == c) for c in np.unique(cls)]
    kept = []
    for idx in groups:
        if idx.size == 0:
            continue
        k = cv2.dnn.NMSBoxes(boxes[idx], best[idx].astype(np.float32), conf, iou)
        kept.extend(idx[np.asarray(k, dtype=np.int64).ravel()].tolist())
    kept = np.asarray(kept, dtype=np.int64)
    kept = kept[np.lexsort((kept, -best[kept].astype(np.float64)))] if kept.size else kept
    return kept[:max_det], cls, best


def expected_detections(raw, kept, cls, best):
    raw = np.asarray(raw).reshape(raw.shape[-2], raw.shape[-1]).astype(np.float32)
    cx, cy, w, h = (r[kept] for r in raw[:4])
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
    return xyxy, best[kept].astype(np.float32), cls[kept].astype(np.int32)


def assert_same(ours: Detections, raw, conf, iou, max_det, agnostic):
    kept, cls, best = reference_decode(raw, conf, iou, max_det, agnostic)
    xyxy, score, class_id = expected_detections(raw, kept, cls, best)
    assert len(ours) == len(kept), f"kept {len(ours)} boxes, OpenCV keeps {len(kept)}"
    np.testing.assert_array_equal(ours.score, score)
    np.testing.assert_array_equal(ours.class_id, class_id)
    np.testing.assert_array_equal(ours.xyxy, xyxy)


def make_raw(rng, nc, n, *, objects=None, quantize=None, degenerate=0.0, size=640.0):
    """A YOLO-like head: low-score background plus clusters of overlapping high-score boxes.

    quantize: round scores to multiples of 1/quantize (many exact ties). degenerate: fraction of
    boxes with zero width and/or height.
    """
    raw = np.empty((4 + nc, n), np.float32)
    raw[0] = rng.uniform(0, size, n)
    raw[1] = rng.uniform(0, size, n)
    raw[2] = rng.uniform(2, 150, n)
    raw[3] = rng.uniform(2, 150, n)
    raw[4:] = rng.uniform(0, 0.2, (nc, n))
    objects = max(1, n // 40) if objects is None else objects
    members = rng.choice(n, size=min(n, objects * 12), replace=False)
    for k, col in enumerate(members):
        obj = k % objects
        orng = np.random.default_rng(obj + 1000 * n)  # same object geometry for all its members
        ocx, ocy = orng.uniform(0, size, 2)
        ow, oh = orng.uniform(10, 200, 2)
        jitter = rng.normal(0, 0.12, 4)
        raw[0, col] = ocx + jitter[0] * ow
        raw[1, col] = ocy + jitter[1] * oh
        raw[2, col] = ow * np.exp(jitter[2])
        raw[3, col] = oh * np.exp(jitter[3])
        c = orng.integers(nc)
        raw[4 + c, col] = rng.uniform(0.2, 1.0)
        if nc > 1 and rng.random() < 0.3:  # class confusion: a second class close behind
            raw[4 + (c + 1) % nc, col] = raw[4 + c, col] * rng.uniform(0.8, 1.0)
    if quantize:
        raw[4:] = np.round(raw[4:] * quantize) / quantize
    if degenerate:
        pick = rng.random(n) < degenerate
        raw[2, pick & (rng.random(n) < 0.7)] = 0.0
        raw[3, pick & (rng.random(n) < 0.7)] = 0.0
    return raw


# ---------------------------------------------------------------------------------------------
# Agreement with cv2.dnn.NMSBoxes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("nc", [1, 80])
@pytest.mark.parametrize("n", [1, 10, 8400])
@pytest.mark.parametrize("agnostic", [False, True])
def test_matches_opencv_on_random_heads(nc, n, agnostic):
    for seed in range(3):
        rng = np.random.default_rng(seed * 7919 + n + nc)
        raw = make_raw(rng, nc, n)
        for conf, iou in [(0.25, 0.45), (0.1, 0.7), (0.5, 0.3)]:
            ours = detect.decode(raw[None], conf, iou, 300, agnostic)
            assert_same(ours, raw, conf, iou, 300, agnostic)


@pytest.mark.parametrize("agnostic", [False, True])
@pytest.mark.parametrize("iou", [0.0, 0.2, 1.0])
def test_matches_opencv_at_extreme_iou_thresholds(agnostic, iou):
    raw = make_raw(np.random.default_rng(3), 5, 600, objects=30)
    assert_same(detect.decode(raw, 0.2, iou, 1000, agnostic), raw, 0.2, iou, 1000, agnostic)


def test_matches_opencv_with_zero_threshold_and_everything_a_candidate():
    raw = make_raw(np.random.default_rng(4), 3, 2000)
    assert_same(detect.decode(raw, 0.0, 0.45, 5000), raw, 0.0, 0.45, 5000, False)


@pytest.mark.parametrize("agnostic", [False, True])
def test_tied_scores_keep_opencv_order(agnostic):
    # Scores on a 1/8 grid: hundreds of exact ties, resolved by column as OpenCV's stable sort does.
    rng = np.random.default_rng(5)
    raw = make_raw(rng, 4, 3000, quantize=8)
    assert_same(detect.decode(raw, 0.1, 0.5, 3000, agnostic), raw, 0.1, 0.5, 3000, agnostic)
    # Identical boxes with identical scores: the lowest column survives.
    raw = np.zeros((5, 6), np.float32)
    raw[:4] = np.array([50, 50, 20, 20], np.float32)[:, None]
    raw[4] = 0.75
    d = detect.decode(raw, 0.5, 0.5, 10, agnostic)
    assert len(d) == 1
    assert_same(d, raw, 0.5, 0.5, 10, agnostic)


@pytest.mark.parametrize("agnostic", [False, True])
def test_degenerate_boxes_follow_opencv(agnostic):
    # Zero-width / zero-height boxes: an empty box overlaps nothing, but two boxes whose areas sum
    # to zero count as identical in OpenCV; both rules must carry over.
    rng = np.random.default_rng(6)
    raw = make_raw(rng, 3, 1500, degenerate=0.3)
    assert_same(detect.decode(raw, 0.15, 0.45, 2000, agnostic), raw, 0.15, 0.45, 2000, agnostic)


def test_two_empty_boxes_suppress_each_other_but_not_a_real_box():
    raw = np.array(
        [
            [10, 300, 40],  # cx
            [10, 300, 40],  # cy
            [0, 0, 20],  # w
            [0, 5, 20],  # h
            [0.9, 0.8, 0.7],
        ],
        np.float32,
    )
    d = detect.decode(raw, 0.5, 0.5)
    np.testing.assert_array_equal(d.score, np.float32([0.9, 0.7]))  # 0.8 (also empty) suppressed by 0.9
    assert_same(d, raw, 0.5, 0.5, 300, False)


# ---------------------------------------------------------------------------------------------
# Hand-computed cases
# ---------------------------------------------------------------------------------------------


def hand_raw():
    # Columns: A, B (IoU(A, B) = 300 / 500 = 0.6), C = B's box in class 1, D far away, E at the threshold.
    return np.array(
        [
            [50, 55, 55, 300, 500],  # cx
            [50, 50, 50, 300, 500],  # cy
            [20, 20, 20, 10, 10],  # w
            [20, 20, 20, 30, 10],  # h
            [0.9, 0.8, 0.1, 0.1, 0.25],  # class 0
            [0.1, 0.1, 0.7, 0.3, 0.0],  # class 1
        ],
        np.float32,
    )


def test_hand_computed_class_aware():
    d = detect.decode(hand_raw(), conf_threshold=0.25, iou_threshold=0.45)
    # B goes (IoU 0.6 with A, same class); C stays (other class); E's 0.25 is not > 0.25.
    np.testing.assert_array_equal(d.score, np.float32([0.9, 0.7, 0.3]))
    np.testing.assert_array_equal(d.class_id, np.int32([0, 1, 1]))
    np.testing.assert_array_equal(d.xyxy, np.float32([[40, 40, 60, 60], [45, 40, 65, 60], [295, 285, 305, 315]]))


def test_hand_computed_class_agnostic():
    d = detect.decode(hand_raw(), conf_threshold=0.25, iou_threshold=0.45, class_agnostic=True)
    np.testing.assert_array_equal(d.score, np.float32([0.9, 0.3]))  # C now loses to A as well
    np.testing.assert_array_equal(d.class_id, np.int32([0, 1]))


def test_iou_equal_to_threshold_is_kept_and_no_plus_one_convention():
    # A = [0, 10] x [0, 10]; B = [0, 10] x [0, 5]: IoU exactly 50 / 100 = 0.5.
    raw = np.array([[5, 5], [5, 2.5], [10, 10], [10, 5], [0.9, 0.8]], np.float32)
    assert len(detect.decode(raw, 0.5, 0.5)) == 2  # kept while IoU <= threshold
    assert len(detect.decode(raw, 0.5, 0.4999)) == 1
    # A vs C = [5, 15] x [0, 10]: IoU 1/3 without "+1" pixels (0.375 with), so 0.35 keeps both.
    raw = np.array([[5, 10], [5, 5], [10, 10], [10, 10], [0.9, 0.8]], np.float32)
    assert len(detect.decode(raw, 0.5, 0.35)) == 2
    assert len(detect.decode(raw, 0.5, 0.33)) == 1


def test_score_must_be_strictly_above_threshold():
    raw = np.array([[5], [5], [10], [10], [0.5]], np.float32)
    assert len(detect.decode(raw, conf_threshold=0.5)) == 0
    assert len(detect.decode(raw, conf_threshold=np.nextafter(np.float32(0.5), np.float32(0)))) == 1


# ---------------------------------------------------------------------------------------------
# Layouts, dtypes, caps
# ---------------------------------------------------------------------------------------------


def test_batched_and_unbatched_layouts_agree():
    raw = make_raw(np.random.default_rng(7), 80, 8400)
    a, b = detect.decode(raw[None]), detect.decode(raw)
    for name in ("xyxy", "score", "class_id"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_non_contiguous_input_is_decoded_like_a_copy():
    raw = make_raw(np.random.default_rng(8), 4, 1000)
    wide = np.zeros((8, 2000), np.float32)
    wide[:, ::2] = raw
    view = wide[:, ::2]
    assert not view.flags.c_contiguous
    a, b = detect.decode(view), detect.decode(raw)
    np.testing.assert_array_equal(a.xyxy, b.xyxy)
    np.testing.assert_array_equal(a.score, b.score)


def test_float16_input_equals_its_float32_widening():
    raw16 = make_raw(np.random.default_rng(9), 80, 8400).astype(np.float16)
    for agnostic in (False, True):
        a = detect.decode(raw16[None], 0.25, 0.45, 300, agnostic)
        b = detect.decode(raw16.astype(np.float32), 0.25, 0.45, 300, agnostic)
        for name in ("xyxy", "score", "class_id"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert_same(a, raw16.astype(np.float32), 0.25, 0.45, 300, agnostic)


def test_every_float16_bit_pattern_converts_like_numpy():
    # Each column carries one of the 65536 half bit patterns as cx; zero-size boxes at iou 1.0
    # suppress nothing, so every finite pattern comes back as x1 = x2 = cx, in column order.
    bits = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    raw = np.zeros((5, bits.size), np.float16)
    raw[0] = bits.view(np.float16)
    raw[4] = 1.0
    d = detect.decode(raw, 0.5, 1.0, max_detections=bits.size)
    expected = bits.view(np.float16).astype(np.float32)
    expected = expected[np.isfinite(expected)]
    assert len(d) == expected.size
    np.testing.assert_array_equal(d.xyxy[:, 0].view(np.uint32), expected.view(np.uint32))  # keeps -0.0
    np.testing.assert_array_equal(d.xyxy[:, 2], expected)


@pytest.mark.parametrize("agnostic", [False, True])
@pytest.mark.parametrize("cap", [1, 7, 50])
def test_max_detections_keeps_the_best(agnostic, cap):
    raw = make_raw(np.random.default_rng(10), 80, 8400)
    d = detect.decode(raw, 0.2, 0.45, cap, agnostic)
    assert len(d) == cap
    assert_same(d, raw, 0.2, 0.45, cap, agnostic)


def test_empty_result_has_the_right_shapes():
    raw = np.zeros((84, 8400), np.float32)
    d = detect.decode(raw)
    assert len(d) == 0
    assert d.xyxy.shape == (0, 4) and d.xyxy.dtype == np.float32
    assert d.score.shape == (0,) and d.score.dtype == np.float32
    assert d.class_id.shape == (0,) and d.class_id.dtype == np.int32
    assert len(detect.decode(np.zeros((6, 0), np.float32))) == 0  # no candidates at all


def test_nan_scores_never_pass_and_nan_boxes_are_dropped():
    raw = np.array(
        [
            [10, 100, 200, 300],
            [10, 100, 200, np.nan],
            [5, 5, 5, 5],
            [5, 5, 5, 5],
            [np.nan, np.nan, 0.9, 0.9],  # class 0
            [np.nan, 0.8, np.nan, 0.9],  # class 1
        ],
        np.float32,
    )
    d = detect.decode(raw, 0.5, 0.5)
    # col 0: all NaN -> gone; col 1: NaN skipped, class 1 wins; col 2: class 0; col 3: NaN box -> gone.
    np.testing.assert_array_equal(d.score, np.float32([0.9, 0.8]))
    np.testing.assert_array_equal(d.class_id, np.int32([0, 1]))
    np.testing.assert_array_equal(d.xyxy[:, 0], np.float32([197.5, 97.5]))
    raw[0, 2] = np.inf
    assert len(detect.decode(raw, 0.5, 0.5)) == 1


def test_decode_from_threads_agrees():
    raws = [make_raw(np.random.default_rng(20 + i), 80, 8400) for i in range(4)]
    expected = [detect.decode(r) for r in raws]
    results: list = [None] * 4

    def work(i):
        for _ in range(5):
            results[i] = detect.decode(raws[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got.xyxy, want.xyxy)


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------

GOOD = np.zeros((6, 10), np.float32)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (np.zeros(10, np.float32), r"raw must be \(1, 4 \+ nc, N\) or \(4 \+ nc, N\), got 1-D shape \(10,\)"),
        (np.zeros((1, 1, 6, 10), np.float32), r"got 4-D shape \(1, 1, 6, 10\)"),
        (np.zeros((2, 6, 10), np.float32), r"raw batch size must be 1, got shape \(2, 6, 10\)"),
        (np.zeros((4, 10), np.float32), r"at least 5 rows .* got shape \(4, 10\)"),
        (np.zeros((1, 3, 10), np.float32), r"at least 5 rows .* got shape \(3, 10\)"),
        (np.zeros((6, 10), np.float64), r"raw must be float32 or float16, got float64"),
        (np.zeros((6, 10), np.int32), r"raw must be float32 or float16, got int32"),
        ([[0.0] * 10] * 6, r"raw must be a numpy.ndarray, got list"),
    ],
)
def test_bad_raw_is_refused_with_a_clear_message(raw, match):
    with pytest.raises(ValueError, match=match):
        detect.decode(raw)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"conf_threshold": -0.1}, r"conf_threshold must be a number in \[0, 1\], got -0.1"),
        ({"conf_threshold": 1.5}, r"conf_threshold must be a number in \[0, 1\], got 1.5"),
        ({"conf_threshold": float("nan")}, r"conf_threshold must be a number in \[0, 1\], got nan"),
        ({"conf_threshold": "0.5"}, r"conf_threshold must be a number in \[0, 1\], got '0.5'"),
        ({"iou_threshold": 2}, r"iou_threshold must be a number in \[0, 1\], got 2"),
        ({"iou_threshold": -1e-9}, r"iou_threshold must be a number in \[0, 1\]"),
        ({"max_detections": 0}, r"max_detections must be an integer >= 1, got 0"),
        ({"max_detections": -5}, r"max_detections must be an integer >= 1, got -5"),
        ({"max_detections": 2.5}, r"max_detections must be an integer >= 1, got 2.5"),
        ({"max_detections": True}, r"max_detections must be an integer >= 1, got True"),
    ],
)
def test_bad_parameters_are_refused_with_a_clear_message(kwargs, match):
    with pytest.raises(ValueError, match=match):
        detect.decode(GOOD, **kwargs)


def test_native_entry_point_checks_too():
    from caper_edge import _core

    with pytest.raises(ValueError, match="raw must be a C-contiguous float32 or float16 array, got float64"):
        _core.detect_decode(np.zeros((6, 10)), 0.25, 0.45, 300, False)
    with pytest.raises(ValueError, match="non-contiguous"):
        _core.detect_decode(np.zeros((6, 20), np.float32)[:, ::2], 0.25, 0.45, 300, False)
    with pytest.raises(ValueError, match=r"raw must be \(4 \+ nc, N\) with nc >= 1, got shape \(4, 10\)"):
        _core.detect_decode(np.zeros((4, 10), np.float32), 0.25, 0.45, 300, False)
    with pytest.raises(ValueError, match="max_detections must be >= 1, got 0"):
        _core.detect_decode(GOOD, 0.25, 0.45, 0, False)


# ---------------------------------------------------------------------------------------------
# Detections
# ---------------------------------------------------------------------------------------------


def three():
    xyxy = np.arange(12, dtype=np.float32).reshape(3, 4)
    return Detections(xyxy, np.float32([0.9, 0.5, 0.2]), np.int32([0, 1, 2]))


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((np.zeros((3, 5)), np.zeros(3, np.float32), np.zeros(3, np.int32)),
         r"xyxy must be \(n, 4\) float32, got \(3, 5\) float64"),
        ((np.zeros((3, 4), np.float32), np.zeros(2, np.float32), np.zeros(3, np.int32)),
         r"score must be \(n,\) float32 with n = 3 \(rows of xyxy\), got \(2,\) float32"),
        ((np.zeros((3, 4), np.float32), np.zeros(3, np.float64), np.zeros(3, np.int32)),
         r"score must be \(n,\) float32 .* got \(3,\) float64"),
        ((np.zeros((3, 4), np.float32), np.zeros(3, np.float32), np.zeros(3, np.int64)),
         r"class_id must be \(n,\) int32 with n = 3 \(rows of xyxy\), got \(3,\) int64"),
        ((np.zeros((3, 4), np.float32), np.zeros(3, np.float32), [0, 1, 2]),
         r"class_id must be \(n,\) int32 .* got list"),
        (([[0, 0, 1, 1]], np.zeros(1, np.float32), np.zeros(1, np.int32)), r"xyxy must be \(n, 4\) float32, got list"),
    ],
)
def test_detections_validate_on_construction(args, match):
    with pytest.raises(ValueError, match=match):
        Detections(*args)


def test_detections_indexing():
    d = three()
    assert len(d) == 3
    one = d[1]
    assert isinstance(one, Detections) and len(one) == 1 and one.xyxy.shape == (1, 4)
    np.testing.assert_array_equal(one.xyxy, [[4, 5, 6, 7]])
    np.testing.assert_array_equal(d[-1].class_id, [2])
    np.testing.assert_array_equal(d[1:].score, np.float32([0.5, 0.2]))
    np.testing.assert_array_equal(d[d.score > 0.4].class_id, [0, 1])
    np.testing.assert_array_equal(d[np.array([2, 0])].class_id, [2, 0])
    with pytest.raises(IndexError, match="detection index 3 out of range for 3 detections"):
        d[3]
    with pytest.raises(ValueError, match=r"boolean mask must be \(3,\) to match the detections, got \(2,\)"):
        d[np.array([True, False])]
    rows = list(d)
    assert rows[0][1] == pytest.approx(0.9) and rows[2][2] == 2


def test_detections_empty():
    e = Detections.empty()
    assert len(e) == 0 and e.xyxy.shape == (0, 4) and e.class_id.dtype == np.int32
    assert len(e[e.score > 0]) == 0


# ---------------------------------------------------------------------------------------------
# nms() on given boxes
# ---------------------------------------------------------------------------------------------


def reference_nms(xyxy, score, iou, class_id=None):
    xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1).astype(np.float64)
    groups = [np.arange(len(score))] if class_id is None else [np.flatnonzero(class_id == c) for c in np.unique(class_id)]
    kept = []
    for idx in groups:
        k = cv2.dnn.NMSBoxes(xywh[idx], score[idx], 0.0, iou)
        kept.extend(idx[np.asarray(k, dtype=np.int64).ravel()].tolist())
    kept = np.asarray(kept, dtype=np.int64)
    return kept[np.lexsort((kept, -score[kept].astype(np.float64)))] if kept.size else kept


@pytest.mark.parametrize("with_classes", [False, True])
def test_nms_matches_opencv(with_classes):
    rng = np.random.default_rng(11)
    for n in (1, 13, 500):
        raw = make_raw(rng, 6, n, quantize=16)
        xyxy = np.stack([raw[0] - raw[2] / 2, raw[1] - raw[3] / 2, raw[0] + raw[2] / 2, raw[1] + raw[3] / 2], 1)
        score = raw[4:].max(0) + np.float32(0.01)  # > 0: NMSBoxes' threshold 0 is strict
        classes = raw[4:].argmax(0).astype(np.int32) if with_classes else None
        for iou in (0.3, 0.5, 0.8):
            got = detect.nms(xyxy, score, iou, class_id=classes)
            np.testing.assert_array_equal(got, reference_nms(xyxy, score, iou, classes))


def test_nms_cap_classes_of_any_range_and_dropped_rows():
    xyxy = np.float32([[0, 0, 10, 10], [1, 0, 11, 10], [100, 100, 110, 110], [0, 0, 10, 10], [5, 5, 6, 6]])
    score = np.float32([0.5, 0.9, 0.7, np.nan, 0.6])
    np.testing.assert_array_equal(detect.nms(xyxy, score, 0.5), [1, 2, 4])
    np.testing.assert_array_equal(detect.nms(xyxy, score, 0.5, max_detections=2), [1, 2])
    # Huge, negative class ids: boxes 0 and 1 are different classes, so both stay.
    classes = np.array([-(2**31), 2**31 - 1, 0, 0, 7], np.int64)
    np.testing.assert_array_equal(detect.nms(xyxy, score, 0.5, class_id=classes), [1, 2, 4, 0])
    xyxy[4, 0] = np.inf
    np.testing.assert_array_equal(detect.nms(xyxy, score, 0.5), [1, 2])
    assert detect.nms(np.zeros((0, 4)), np.zeros(0), 0.5).shape == (0,)


def test_nms_bad_input():
    with pytest.raises(ValueError, match=r"xyxy must be \(n, 4\), got \(3, 3\) float64"):
        detect.nms(np.zeros((3, 3)), np.zeros(3), 0.5)
    with pytest.raises(ValueError, match=r"score must be \(n,\) with n = 3 \(rows of xyxy\), got \(4,\) float64"):
        detect.nms(np.zeros((3, 4)), np.zeros(4), 0.5)
    with pytest.raises(ValueError, match=r"class_id must be \(n,\) integers with n = 3 .* got \(3,\) float64"):
        detect.nms(np.zeros((3, 4)), np.zeros(3), 0.5, class_id=np.zeros(3))
    with pytest.raises(ValueError, match="class_id values must fit int32"):
        detect.nms(np.zeros((1, 4)), np.zeros(1), 0.5, class_id=np.array([2**40]))
    with pytest.raises(ValueError, match=r"iou_threshold must be a number in \[0, 1\], got 1.2"):
        detect.nms(np.zeros((3, 4)), np.zeros(3), 1.2)
    with pytest.raises(ValueError, match="max_detections must be an integer >= 1, got 0"):
        detect.nms(np.zeros((3, 4)), np.zeros(3), 0.5, max_detections=0)


# ---------------------------------------------------------------------------------------------
# CUDA
# ---------------------------------------------------------------------------------------------


def test_decode_cuda_without_a_gpu_says_why():
    count, reason = caper_edge.cuda_device_count()
    if count > 0:
        pytest.skip("a GPU is present: covered by the gpu tests")
    with pytest.raises(RuntimeError, match="decode_cuda needs a CUDA GPU: " + reason[:20]):
        detect.decode_cuda(GOOD)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("agnostic", [False, True])
def test_decode_cuda_equals_cpu_decode(dtype, agnostic):
    cp = pytest.importorskip("cupy")
    for nc, n in [(1, 1), (1, 8400), (80, 10), (80, 8400), (3, 33600)]:
        raw = make_raw(np.random.default_rng(nc + n), nc, n, quantize=64).astype(dtype)
        want = detect.decode(raw[None], 0.2, 0.45, 300, agnostic)
        got = detect.decode_cuda(cp.asarray(raw[None]), 0.2, 0.45, 300, agnostic)
        for name in ("xyxy", "score", "class_id"):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name))


@pytest.mark.gpu
def test_decode_cuda_many_survivors_and_streams():
    cp = pytest.importorskip("cupy")
    raw = make_raw(np.random.default_rng(12), 2, 50000)
    want = detect.decode(raw, 0.0, 0.45, 100000)  # every column survives the threshold
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        device_raw = cp.asarray(raw)
    got = detect.decode_cuda(device_raw, 0.0, 0.45, 100000, stream=stream)
    np.testing.assert_array_equal(got.xyxy, want.xyxy)
    got = detect.decode_cuda(device_raw, 0.0, 0.45, 100000, stream=stream.ptr)
    np.testing.assert_array_equal(got.score, want.score)


@pytest.mark.gpu
def test_decode_cuda_refuses_host_and_strided_arrays():
    cp = pytest.importorskip("cupy")
    with pytest.raises(ValueError, match="__cuda_array_interface__"):
        detect.decode_cuda(GOOD)
    with pytest.raises(ValueError, match="C-contiguous"):
        detect.decode_cuda(cp.zeros((6, 20), cp.float32)[:, ::2])
    with pytest.raises(ValueError, match="float32 or float16"):
        detect.decode_cuda(cp.zeros((6, 20), cp.float64))
