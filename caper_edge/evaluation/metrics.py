"""Evaluation metrics of basket events against ground truth (formulas: docs/evaluation.md).

Every function is a pure function of plain records, so each is tested against hand-computed
examples (tests/test_eval_metrics.py):

* basket accuracy at checkpoints -- ``cAcc`` (exact match) and ``ACD`` (average count distance),
  as the RPC checkout benchmark defines them per checkout;
* receipt item precision / recall / F1 over multisets;
* time-gated event matching (AI City retail-checkout style) -> event F1, time-to-event, SKU confusions;
* shrink-alarm precision / recall;
* reliability of the ``confidence`` field (expected calibration error);
* tracking HOTA / IDF1 / MOTA through roboflow ``trackers.eval`` (TrackEval's definitions, the
  same library the tracker's own evaluation uses).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "ALARM_TYPES",
    "ITEM_TYPES",
    "GtEvent",
    "Matching",
    "PredEvent",
    "Reliability",
    "aggregate_tracking",
    "basket_at",
    "basket_checkpoints",
    "checkpoint_times",
    "count_distance",
    "f1",
    "match_events",
    "percentile",
    "receipt_counts",
    "reliability",
    "shrink_alarms",
    "tracking_metrics",
]

ITEM_TYPES = ("item_added", "item_removed")
#: Event types that are shrink alarms (money may be leaving the store).
ALARM_TYPES = ("unexpected_weight", "weight_mismatch")
_NS = 1_000_000_000


@dataclass(frozen=True)
class GtEvent:
    """A ground-truth event: ``type``, ``sku`` (None for some alarms), ``qty`` units, the time
    the interaction started and the time the item came to rest (int ns); ``shrink``: the GT
    marks it as a shrink case (alarm expected)."""

    type: str
    sku: str | None
    qty: int
    t_start_ns: int
    t_rest_ns: int
    shrink: bool = False

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> GtEvent:
        t_rest = d.get("t_rest_ns", d.get("t_start_ns"))
        t_start = d.get("t_start_ns", t_rest)
        if t_rest is None:
            raise ValueError(f"ground-truth event {d!r:.120}: needs t_rest_ns or t_start_ns")
        typ = str(d.get("type"))
        return cls(typ, d.get("sku"), int(d.get("qty", 1)), int(t_start), int(t_rest),
                   bool(d.get("shrink", False)) or typ in ALARM_TYPES)


@dataclass(frozen=True)
class PredEvent:
    """A predicted event: the contract fields evaluation needs, plus the decision time."""

    type: str
    sku: str | None
    qty: int
    t_ns: int
    t_decided_ns: int
    confidence: float = 1.0

    @classmethod
    def from_event(cls, e: Any) -> PredEvent:
        decided = e.extras.get("t_decided_ns", e.t_ns) if hasattr(e, "extras") else e.t_ns
        return cls(e.type, e.sku, int(e.qty), int(e.t_ns), int(decided), float(e.confidence))


# ---------------------------------------------------------------------------------------------
# Baskets
# ---------------------------------------------------------------------------------------------


def _known_at(e: GtEvent | PredEvent) -> int:
    """When an event is known: a prediction when decided, ground truth when its item rests."""
    return e.t_decided_ns if isinstance(e, PredEvent) else e.t_rest_ns


def basket_at(events: Iterable[GtEvent | PredEvent], t_ns: float = math.inf,
              initial: Counter[str] | None = None) -> Counter[str]:
    """The multiset after applying, in time order, the item events known by ``t_ns`` to
    ``initial``: predicted events count from their decision time, ground truth from its rest
    time. Removals never go below zero."""
    basket: Counter[str] = Counter(initial or {})
    for e in sorted(events, key=_known_at):
        if e.type not in ITEM_TYPES or e.sku is None:
            continue
        if _known_at(e) > t_ns:
            continue
        if e.type == "item_added":
            basket[e.sku] += e.qty
        else:
            basket[e.sku] = max(0, basket[e.sku] - e.qty)
    return +basket


def count_distance(pred: Counter[str], gt: Counter[str]) -> int:
    """sum over SKUs of |pred_k - gt_k|: the per-checkout term of RPC's ACD (0 <=> exact match)."""
    return sum(abs(pred.get(k, 0) - gt.get(k, 0)) for k in set(pred) | set(gt))


def checkpoint_times(gt: Sequence[GtEvent], end_ns: int, budget_s: float) -> list[int]:
    """When to compare baskets: ``budget_s`` after each ground-truth item event comes to rest,
    unless the next one comes to rest before that (then only after the later one), and at the end."""
    rests = sorted(e.t_rest_ns for e in gt if e.type in ITEM_TYPES)
    budget = int(budget_s * _NS)
    out = []
    for i, t in enumerate(rests):
        c = t + budget
        if (i + 1 < len(rests) and rests[i + 1] <= c) or c >= end_ns:
            continue
        out.append(c)
    out.append(end_ns)
    return out


def basket_checkpoints(pred: Sequence[PredEvent], gt: Sequence[GtEvent], end_ns: int, budget_s: float,
                       initial: Counter[str] | None = None) -> list[int]:
    """Count distance at every checkpoint (see :func:`checkpoint_times`); the last one is the final
    basket, compared after everything the bag produced (including decisions after its end).
    ``initial``: contents before the first event, in both baskets."""
    times = checkpoint_times(gt, end_ns, budget_s)
    out = [count_distance(basket_at(pred, t, initial), basket_at(gt, t, initial)) for t in times[:-1]]
    out.append(count_distance(basket_at(pred, initial=initial), basket_at(gt, initial=initial)))
    return out


def receipt_counts(pred: Counter[str], gt: Counter[str]) -> tuple[int, int, int]:
    """(true positives, predicted units, ground-truth units) of two multisets: TP = sum_k min(p_k, g_k)."""
    tp = sum(min(pred.get(k, 0), gt.get(k, 0)) for k in set(pred) | set(gt))
    return tp, sum(pred.values()), sum(gt.values())


def f1(tp: int, n_pred: int, n_gt: int) -> tuple[float, float, float]:
    """(precision, recall, F1). With no predictions precision is vacuously 1, with nothing to find
    recall is; F1 is then 1 only when both sides are empty."""
    precision = tp / n_pred if n_pred else 1.0
    recall = tp / n_gt if n_gt else 1.0
    f = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return precision, recall, f


# ---------------------------------------------------------------------------------------------
# Event matching
# ---------------------------------------------------------------------------------------------


@dataclass
class Matching:
    """One-to-one matches between predicted and ground-truth units (events expanded by qty)."""

    pairs: list[tuple[int, int]] = field(default_factory=list)     # (pred unit, gt unit)
    pred_units: list[PredEvent] = field(default_factory=list)
    gt_units: list[GtEvent] = field(default_factory=list)

    @property
    def tp(self) -> int:
        return len(self.pairs)

    def unmatched_pred(self) -> list[int]:
        used = {p for p, _ in self.pairs}
        return [i for i in range(len(self.pred_units)) if i not in used]

    def unmatched_gt(self) -> list[int]:
        used = {g for _, g in self.pairs}
        return [i for i in range(len(self.gt_units)) if i not in used]

    def latencies_s(self) -> list[float]:
        """Decision time of the prediction minus the ground truth's rest time, per match (s)."""
        return [(self.pred_units[p].t_decided_ns - self.gt_units[g].t_rest_ns) / _NS for p, g in self.pairs]


def _units(events: Iterable, types: Sequence[str]) -> list:
    out = []
    for e in events:
        if e.type in types:
            out.extend([e] * max(1, e.qty))
    return out


def _gap_ns(p: PredEvent, g: GtEvent) -> int:
    """How far the prediction's time lies outside the GT interval [t_start, t_rest] (0 inside)."""
    if p.t_ns < g.t_start_ns:
        return g.t_start_ns - p.t_ns
    return max(0, p.t_ns - g.t_rest_ns)


def match_events(pred: Sequence[PredEvent], gt: Sequence[GtEvent], window_s: float, *,
                 types: Sequence[str] = ITEM_TYPES, match_sku: bool = True, match_type: bool = True) -> Matching:
    """Maximum one-to-one matching of predicted and GT units of ``types``.

    A pair is allowed when the types agree (``match_type``), the SKUs agree (``match_sku``) and
    the prediction's ``t_ns`` lies within ``window_s`` of the GT interval
    ``[t_start_ns, t_rest_ns]``. Among maximum matchings the one with the smallest total time
    gap is chosen (optimal assignment: :func:`caper_edge.track.linear_assignment`, LAPJV with
    forbidden pairs). Events count once per unit of ``qty``, so "2 x A" matches two "1 x A" events.
    """
    from ..track import linear_assignment

    pu, gu = _units(pred, types), _units(gt, types)
    m = Matching(pred_units=pu, gt_units=gu)
    if not pu or not gu:
        return m
    window = int(window_s * _NS)
    big = 1e6  # any allowed pair beats leaving both unmatched: maximise the count first
    cost = np.full((len(pu), len(gu)), np.inf)
    for i, p in enumerate(pu):
        for j, g in enumerate(gu):
            if match_type and p.type != g.type:
                continue
            if match_sku and p.sku != g.sku:
                continue
            gap = _gap_ns(p, g)
            if gap <= window:
                cost[i, j] = gap / _NS - big
    finite = np.isfinite(cost)
    if not finite.any():
        return m
    rows, cols = linear_assignment(cost)
    m.pairs = sorted((int(r), int(c)) for r, c in zip(rows, cols) if finite[r, c])
    return m


def shrink_alarms(pred: Sequence[PredEvent], gt: Sequence[GtEvent], window_s: float) -> tuple[int, int, int, int]:
    """(matched predictions, predicted alarms, matched GT cases, GT shrink cases).

    Predicted alarms are events of :data:`ALARM_TYPES`; GT cases are events with ``shrink`` set
    (or of an alarm type). A prediction within ``window_s`` of a case's interval matches it,
    whatever the alarm type and SKU, one to one."""
    alarms = [e for e in pred if e.type in ALARM_TYPES]
    cases = [g for g in gt if g.shrink]
    as_pred = [PredEvent("alarm", None, 1, e.t_ns, e.t_decided_ns, e.confidence) for e in alarms]
    as_gt = [GtEvent("alarm", None, 1, g.t_start_ns, g.t_rest_ns, True) for g in cases]
    m = match_events(as_pred, as_gt, window_s, types=("alarm",), match_sku=False)
    return m.tp, len(alarms), m.tp, len(cases)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (numpy's linear interpolation); None for no values."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else None


# ---------------------------------------------------------------------------------------------
# Calibration
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reliability:
    """Confidence bins: ``edges`` (bins + 1,), per bin ``count``, ``mean_confidence``, ``accuracy``;
    ``ece`` = sum_b (n_b / n) |accuracy_b - confidence_b|."""

    edges: tuple[float, ...]
    count: tuple[int, ...]
    mean_confidence: tuple[float | None, ...]
    accuracy: tuple[float | None, ...]
    ece: float | None


def reliability(confidence: Sequence[float], correct: Sequence[bool], bins: int = 10) -> Reliability:
    """Reliability table of equal-width confidence bins over [0, 1] (the last bin includes 1)."""
    c = np.asarray(confidence, dtype=np.float64)
    k = np.asarray(correct, dtype=bool)
    if c.shape != k.shape:
        raise ValueError(f"confidence and correct must have the same length, got {c.shape} and {k.shape}")
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.searchsorted(edges, c, side="right") - 1, 0, bins - 1)
    count, conf, acc = [], [], []
    ece = 0.0
    for b in range(bins):
        sel = idx == b
        n = int(sel.sum())
        count.append(n)
        if n:
            conf.append(float(c[sel].mean()))
            acc.append(float(k[sel].mean()))
            ece += n / len(c) * abs(acc[-1] - conf[-1])
        else:
            conf.append(None)
            acc.append(None)
    return Reliability(tuple(float(e) for e in edges), tuple(count), tuple(conf), tuple(acc), ece if len(c) else None)


# ---------------------------------------------------------------------------------------------
# Tracking
# ---------------------------------------------------------------------------------------------


def _box_overlap(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, 4) x (m, 4) xyxy boxes -> ((n, m) intersection areas, (n,) areas of a, (m,) of b)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    return inter, area_a, area_b


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, 4) x (m, 4) xyxy boxes -> (n, m) IoU in float64; empty or degenerate pairs give 0.

    The one pairwise IoU shared by the evaluation, the tracker evaluation and models/.
    """
    inter, area_a, area_b = _box_overlap(a, b)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def box_ioa(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, 4) x (m, 4) xyxy boxes -> (n, m) share of each box of ``a`` lying inside each box of
    ``b`` (intersection over a's area) in float64; a degenerate box of ``a`` gives 0."""
    inter, area_a, _ = _box_overlap(a, b)
    return np.where(area_a[:, None] > 0, inter / np.maximum(area_a[:, None], 1e-12), 0.0)


def _dense_ids(per_frame: list[np.ndarray]) -> list[np.ndarray]:
    ids = [np.asarray(x, dtype=np.int64) for x in per_frame]
    uniq = np.unique(np.concatenate(ids)) if ids else np.zeros(0, np.int64)
    return [np.searchsorted(uniq, x).astype(np.intp) for x in ids]


def tracking_metrics(gt_frames: Sequence[tuple[Any, Any]], trk_frames: Sequence[tuple[Any, Any]]) -> dict[str, float] | None:
    """HOTA, IDF1 and MOTA of a tracker over one sequence.

    ``gt_frames`` / ``trk_frames``: per frame ``(ids (k,), xyxy (k, 4))``, same frame count.
    Similarity is box IoU. Returns None when roboflow ``trackers`` (the TrackEval port) is not
    installed or the sequence has no ground-truth objects.
    """
    if len(gt_frames) != len(trk_frames):
        raise ValueError(f"gt_frames has {len(gt_frames)} frames, trk_frames {len(trk_frames)}: expected the same")
    try:
        from trackers.eval import compute_clear_metrics, compute_hota_metrics, compute_identity_metrics
    except ImportError:
        return None
    if not any(len(ids) for ids, _ in gt_frames):
        return None
    sims = [box_iou(gb, tb)
            for (_, gb), (_, tb) in zip(gt_frames, trk_frames)]
    g = _dense_ids([ids for ids, _ in gt_frames])
    t = _dense_ids([ids for ids, _ in trk_frames])
    raw = (compute_hota_metrics(g, t, sims), compute_identity_metrics(g, t, sims), compute_clear_metrics(g, t, sims))
    return _tracking_summary(raw)


def aggregate_tracking(results: Sequence[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Several sequences' :func:`tracking_metrics` combined as TrackEval combines sequences
    (sums of the underlying counts, not a mean of the scores); None entries are skipped."""
    raws = [r["raw"] for r in results if r is not None]
    if not raws:
        return None
    from trackers.eval import aggregate_clear_metrics, aggregate_hota_metrics, aggregate_identity_metrics

    raw = (aggregate_hota_metrics([r[0] for r in raws]), aggregate_identity_metrics([r[1] for r in raws]),
           aggregate_clear_metrics([r[2] for r in raws]))
    return _tracking_summary(raw)


def _tracking_summary(raw: tuple[dict, dict, dict]) -> dict[str, Any]:
    hota, ident, clear = raw
    return {"hota": float(hota["HOTA"]), "idf1": float(ident["IDF1"]), "mota": float(clear["MOTA"]),
            "id_switches": int(clear["IDSW"]), "raw": raw}
