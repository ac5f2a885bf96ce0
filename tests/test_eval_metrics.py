"""Evaluation metrics against hand-computed examples (the arithmetic is in the comments)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from caper_edge.evaluation.metrics import (
    GtEvent,
    PredEvent,
    aggregate_tracking,
    basket_at,
    basket_checkpoints,
    checkpoint_times,
    count_distance,
    f1,
    match_events,
    percentile,
    receipt_counts,
    reliability,
    shrink_alarms,
    tracking_metrics,
)

S = 1_000_000_000


def gt(typ, sku, start, rest, qty=1, shrink=False):
    return GtEvent(typ, sku, qty, round(start * S), round(rest * S), shrink)


def pred(typ, sku, t, decided=None, qty=1, conf=1.0):
    return PredEvent(typ, sku, qty, round(t * S), round((t if decided is None else decided) * S), conf)


def test_count_distance_and_receipt_f1():
    p, g = Counter(A=2, B=1), Counter(A=1, C=1)
    # |2-1| + |1-0| + |0-1| = 3
    assert count_distance(p, g) == 3
    assert count_distance(g, g) == 0
    # TP = min(2,1) = 1 of 3 predicted and 2 true units: P = 1/3, R = 1/2, F1 = 2PR/(P+R) = 0.4
    tp, n_p, n_g = receipt_counts(p, g)
    assert (tp, n_p, n_g) == (1, 3, 2)
    prec, rec, f = f1(tp, n_p, n_g)
    assert (prec, rec, f) == pytest.approx((1 / 3, 1 / 2, 0.4))
    assert f1(0, 0, 0) == (1.0, 1.0, 1.0)       # nothing expected, nothing predicted
    assert f1(0, 2, 0) == (0.0, 1.0, 0.0)


def test_basket_at_uses_decision_and_rest_times():
    events = [pred("item_added", "A", 1, decided=2, qty=2), pred("item_removed", "A", 5, decided=6),
              pred("item_removed", "B", 7), pred("unexpected_weight", None, 8, qty=0)]
    assert basket_at(events, 1.5 * S) == Counter()
    assert basket_at(events, 2 * S) == Counter(A=2)
    assert basket_at(events) == Counter(A=1)   # removing an absent B does not go negative
    truth = [gt("item_added", "A", 0.5, 1.0), gt("item_added", "B", 3, 4)]
    assert basket_at(truth, 3.5 * S) == Counter(A=1)


def test_checkpoints_skip_events_that_overlap():
    truth = [gt("item_added", "A", 9, 10), gt("item_added", "B", 10.5, 11), gt("item_removed", "A", 19, 20)]
    # 10 + 1.5 = 11.5 is after B rests (11): merged into B's checkpoint 12.5; then 21.5; then the end.
    assert checkpoint_times(truth, 30 * S, 1.5) == [round(12.5 * S), round(21.5 * S), 30 * S]
    # Predictions: A decided at 10.6 (in time), B never, A removed at 20.4 (in time).
    preds = [pred("item_added", "A", 10.2, 10.6), pred("item_removed", "A", 20.1, 20.4)]
    # At 12.5: {A} vs {A, B} -> 1; at 21.5: {} vs {B} -> 1; final: {} vs {B} -> 1.
    assert basket_checkpoints(preds, truth, 30 * S, 1.5) == [1, 1, 1]
    preds.append(pred("item_added", "B", 11.0, 11.4))
    assert basket_checkpoints(preds, truth, 30 * S, 1.5) == [0, 0, 0]


def test_event_matching_is_time_gated_by_type_and_sku():
    truth = [gt("item_added", "A", 4, 5), gt("item_added", "B", 7, 8)]
    preds = [pred("item_added", "A", 5.2, 5.5),   # 0.2 s after A's interval: matches (window 0.5)
             pred("item_added", "A", 9.0),        # no A there: false positive
             pred("item_added", "B", 8.6),        # 0.6 s late: outside the window
             pred("item_removed", "A", 4.5)]      # wrong type
    m = match_events(preds, truth, 0.5)
    assert m.tp == 1 and m.pairs == [(0, 0)]
    assert f1(m.tp, len(m.pred_units), len(m.gt_units)) == pytest.approx((1 / 4, 1 / 2, 1 / 3))
    assert m.latencies_s() == pytest.approx([0.5])   # decided 5.5, rested 5.0
    assert m.unmatched_gt() == [1]


def test_event_units_count_quantities():
    truth = [gt("item_added", "A", 1, 2), gt("item_added", "A", 1.1, 2.1)]
    m = match_events([pred("item_added", "A", 2.0, qty=2)], truth, 1.0)
    assert m.tp == 2 and len(m.pred_units) == 2


def test_event_matching_is_optimal_not_greedy():
    # p1 (5.3) can match g1 [4.5, 5.0] (gap 0.3) or g2 [5.4, 5.5] (gap 0.1); p2 (5.9) only g2
    # (gap 0.4; g1 is 0.9 away). Greedy nearest-first takes p1-g2 and leaves p2 alone; the
    # optimal matching keeps both.
    truth = [gt("item_added", "A", 4.5, 5.0), gt("item_added", "A", 5.4, 5.5)]
    m = match_events([pred("item_added", "A", 5.3), pred("item_added", "A", 5.9)], truth, 0.5)
    assert m.pairs == [(0, 0), (1, 1)]


def test_confusion_matching_ignores_sku():
    truth = [gt("item_added", "A", 1, 2)]
    m = match_events([pred("item_added", "B", 2.1)], truth, 0.5, match_sku=False)
    assert m.tp == 1


def test_shrink_alarm_precision_recall():
    truth = [gt("item_added", "A", 1, 2), gt("item_added", "X", 9.5, 10, shrink=True),
             GtEvent.from_json({"type": "weight_mismatch", "sku": "C", "t_start_ns": 40 * S, "t_rest_ns": 41 * S})]
    preds = [pred("unexpected_weight", None, 10.4), pred("weight_mismatch", "A", 30), pred("item_added", "A", 2)]
    # 1 of 2 alarms matches a case (10.4 is 0.4 after [9.5, 10]); 1 of 2 cases found.
    assert shrink_alarms(preds, truth, 1.0) == (1, 2, 1, 2)


def test_percentiles_are_numpy_linear():
    # index q/100 * (n - 1): p50 -> 1.5 -> 2.5; p95 -> 2.85 -> 3 + 0.85 = 3.85
    assert percentile([4, 1, 3, 2], 50) == pytest.approx(2.5)
    assert percentile([4, 1, 3, 2], 95) == pytest.approx(3.85)
    assert percentile([], 50) is None


def test_reliability_and_ece():
    r = reliability([0.95, 0.95, 0.15, 0.55], [True, False, False, True], bins=10)
    # bin 9: 2 events, conf 0.95, acc 0.5 -> 2/4 * 0.45; bin 1: conf 0.15, acc 0 -> 1/4 * 0.15;
    # bin 5: conf 0.55, acc 1 -> 1/4 * 0.45. ECE = 0.225 + 0.0375 + 0.1125 = 0.375
    assert r.ece == pytest.approx(0.375)
    assert r.count[9] == 2 and r.accuracy[9] == 0.5 and r.count[0] == 0 and r.accuracy[0] is None
    assert reliability([1.0], [True]).count[9] == 1   # 1.0 falls in the last bin
    with pytest.raises(ValueError, match="same length"):
        reliability([0.5], [True, False])


def _box(x):
    return np.array([[x, 10.0, x + 20.0, 30.0]])


def test_tracking_perfect_and_one_id_switch():
    pytest.importorskip("trackers.eval")
    gt_frames = [(np.array([7]), _box(10 * i)) for i in range(4)]
    perfect = tracking_metrics(gt_frames, [(np.array([3]), _box(10 * i)) for i in range(4)])
    assert (perfect["hota"], perfect["idf1"], perfect["mota"]) == pytest.approx((1.0, 1.0, 1.0))
    switch = tracking_metrics(gt_frames, [(np.array([1 if i < 2 else 2]), _box(10 * i)) for i in range(4)])
    # IDF1 = 2 IDTP / (|gt| + |trk|) = 2*2 / 8 = 0.5; MOTA = 1 - IDSW/|gt| = 0.75;
    # HOTA = sqrt(DetA * AssA) = sqrt(1 * 0.5) (each match's association IoU is 2/4).
    assert switch["idf1"] == pytest.approx(0.5)
    assert switch["mota"] == pytest.approx(0.75) and switch["id_switches"] == 1
    assert switch["hota"] == pytest.approx(math.sqrt(0.5), abs=1e-6)
    both = aggregate_tracking([perfect, switch, None])
    # Combined counts: IDTP 4 + 2 over 8 + 8 boxes -> IDF1 = 12/16
    assert both["idf1"] == pytest.approx(0.75)
    assert tracking_metrics([(np.zeros(0), np.zeros((0, 4)))], [(np.zeros(0), np.zeros((0, 4)))]) is None
