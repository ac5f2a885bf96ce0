"""Run trackers on generated sequences and score them (HOTA, IDF1, MOTA, ID switches).

The metrics come from roboflow ``trackers.eval`` (a port of TrackEval's HOTA, CLEAR and
Identity code; ``trackers`` >= 2.6). Only items (class 0) are scored: hands are tracked too,
but the cart cares about items. Peers (``trackers.ByteTrackTracker``, ``trackers.OCSORTTracker``)
are class-agnostic, so each class gets its own peer instance (what a careful integrator
would do: a hand box can then never continue an item's track); their reported time per frame
covers every instance plus building the ``supervision.Detections`` their API takes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..evaluation.metrics import box_iou
from ..track import Tracker
from .sequences import ITEM, Frame, Sequence

__all__ = ["MethodResult", "Output", "evaluate", "format_table", "ours_factory", "peer_factories", "run_method",
           "zone_event_counts"]

# One frame's tracker output restricted to items: (track_ids (k,), xyxy (k, 4)).
Output = tuple[np.ndarray, np.ndarray]
StepFn = Callable[[Frame], Output]


@dataclass
class MethodResult:
    name: str
    hota: float
    idf1: float
    mota: float
    id_switches: int
    ms_per_frame: float
    occlusions_kept: int
    occlusions: int
    per_sequence: list[dict[str, Any]] = field(default_factory=list)
    events: dict[str, float] | None = None  # zone-event precision / recall / F1, when reported

    def row(self) -> dict[str, Any]:
        return {"method": self.name, "HOTA": self.hota, "IDF1": self.idf1, "MOTA": self.mota,
                "IDsw": self.id_switches, "ms/frame": self.ms_per_frame,
                "occlusions kept": f"{self.occlusions_kept}/{self.occlusions}"}


# ---------------------------------------------------------------------------------------------
# Methods: a factory makes a fresh per-sequence step function
# ---------------------------------------------------------------------------------------------


def ours_factory(use_appearance: bool = True, use_depth: bool = True, **params: Any) -> Callable[[Sequence], StepFn]:
    def make(seq: Sequence) -> StepFn:
        tracker = Tracker(basket_polygon=seq.config.basket_polygon, frame_period_s=1.0 / seq.config.fps, **params)
        transitions: list = []

        def step(f: Frame) -> Output:
            out = tracker.update(f.xyxy, f.score, f.class_id,
                                 embedding=f.embedding if use_appearance else None,
                                 depth_m=f.depth_m if use_depth else None, t_ns=f.t_ns,
                                 sku_similarity=f.sku_similarity if use_appearance else None)
            transitions.extend(out.transitions)
            keep = out.class_id == ITEM
            return out.track_id[keep], out.xyxy[keep]

        step.transitions = transitions  # type: ignore[attr-defined]
        return step

    return make


def peer_factories(**overrides: Any) -> dict[str, Callable[[Sequence], StepFn]]:
    """ByteTrack and OC-SORT from roboflow ``trackers`` at their defaults (``overrides`` apply to both)."""
    import supervision as sv
    import trackers

    def factory(cls: type) -> Callable[[Sequence], StepFn]:
        def make(seq: Sequence) -> StepFn:
            per_class: dict[int, Any] = {}

            def step(f: Frame) -> Output:
                ids, boxes = [], []
                for c in np.unique(f.class_id).tolist() + [k for k in per_class if k not in f.class_id]:
                    tracker = per_class.get(c)
                    if tracker is None:
                        tracker = per_class[c] = cls(frame_rate=seq.config.fps, **overrides)
                    m = f.class_id == c
                    dets = sv.Detections(xyxy=f.xyxy[m].astype(np.float64), confidence=f.score[m].astype(np.float64),
                                         class_id=f.class_id[m].astype(int))
                    res = tracker.update(dets)
                    if c != ITEM or len(res) == 0:
                        continue
                    ok = res.tracker_id >= 0
                    ids.append(np.asarray(res.tracker_id[ok], np.int64))
                    boxes.append(np.asarray(res.xyxy[ok], np.float32))
                if not ids:
                    return np.zeros(0, np.int64), np.zeros((0, 4), np.float32)
                return np.concatenate(ids), np.concatenate(boxes)

            return step

        return make

    return {"ByteTrack (trackers)": factory(trackers.ByteTrackTracker),
            "OC-SORT (trackers)": factory(trackers.OCSORTTracker)}


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------


def _remap(per_frame: list[np.ndarray]) -> list[np.ndarray]:
    """IDs to 0..K-1 over the whole sequence (what trackers.eval expects)."""
    uniq = np.unique(np.concatenate(per_frame)) if per_frame else np.zeros(0, np.int64)
    return [np.searchsorted(uniq, ids).astype(np.intp) for ids in per_frame]


def _matched_ids(gt_box: np.ndarray, trk_ids: np.ndarray, trk_boxes: np.ndarray) -> int | None:
    iou = box_iou(gt_box[None], trk_boxes)[0]
    if iou.size == 0 or iou.max() < 0.5:
        return None
    return int(trk_ids[int(iou.argmax())])


def occlusions_kept(seq: Sequence, outputs: list[Output], before: int = 15, after: int = 45) -> tuple[int, int]:
    """Resting items hidden by a hand: how many carry the same track ID after as before."""
    kept = 0
    for occ in seq.occlusions:
        ids = []
        for frames in (range(occ.first - 1, max(occ.first - 1 - before, -1), -1),
                       range(occ.last + 1, min(occ.last + 1 + after, len(seq.frames)))):
            found = None
            for g in frames:
                f = seq.frames[g]
                hit = np.flatnonzero(f.gt_id == occ.gt_id)
                if hit.size:
                    found = _matched_ids(f.gt_xyxy[hit[0]], *outputs[g])
                    if found is not None:
                        break
            ids.append(found)
        kept += ids[0] is not None and ids[0] == ids[1]
    return kept, len(seq.occlusions)


def track_to_ground_truth(seq: Sequence, outputs: list[Output]) -> dict[int, int]:
    """Each track ID -> the ground-truth item it overlapped (IoU >= 0.5) in most frames."""
    votes: dict[int, dict[int, int]] = {}
    for f, (ids, boxes) in zip(seq.frames, outputs):
        items = np.flatnonzero(f.gt_class == ITEM)
        if not len(ids) or not len(items):
            continue
        iou = box_iou(f.gt_xyxy[items], boxes)
        for t in range(len(ids)):
            g = int(iou[:, t].argmax())
            if iou[g, t] >= 0.5:
                v = votes.setdefault(int(ids[t]), {})
                v[int(f.gt_id[items[g]])] = v.get(int(f.gt_id[items[g]]), 0) + 1
    return {t: max(v, key=v.get) for t, v in votes.items()}


def zone_event_counts(seq: Sequence, outputs: list[Output], transitions: list, tolerance_s: float = 1.0) -> dict[str, Any]:
    """Tracker zone transitions (entered_basket / left_basket) against the ground-truth events:
    a transition matches an event of the same kind and item whose time is within tolerance_s
    of the transition's t_ns (each event matched once). Returns tp, fp, fn and the decision
    latencies (decided_t_ns - ground-truth time, seconds) of the matches."""
    owner = track_to_ground_truth(seq, outputs)
    unmatched = list(seq.events)
    tp, fp, latency = 0, 0, []
    for tr in transitions:
        if tr.kind not in ("entered_basket", "left_basket"):
            continue
        gid = owner.get(tr.track_id)
        hit = next((e for e in unmatched if e.kind == tr.kind and e.gt_id == gid
                    and abs(e.t_ns - tr.t_ns) <= tolerance_s * 1e9), None)
        if hit is None:
            fp += 1
            continue
        unmatched.remove(hit)
        tp += 1
        latency.append((tr.decided_t_ns - hit.t_ns) / 1e9)
    return {"tp": tp, "fp": fp, "fn": len(unmatched), "latency_s": latency}


def score_sequence(seq: Sequence, outputs: list[Output]) -> dict[str, Any]:
    from trackers.eval import compute_clear_metrics, compute_hota_metrics, compute_identity_metrics

    gt_ids, trk_ids, sims = [], [], []
    for f, (ids, boxes) in zip(seq.frames, outputs):
        items = f.gt_class == ITEM
        gt_ids.append(f.gt_id[items])
        trk_ids.append(np.asarray(ids, np.int64))
        sims.append(box_iou(f.gt_xyxy[items], boxes))
    gt_ids, trk_ids = _remap(gt_ids), _remap(trk_ids)
    return {
        "HOTA": compute_hota_metrics(gt_ids, trk_ids, sims),
        "Identity": compute_identity_metrics(gt_ids, trk_ids, sims),
        "CLEAR": compute_clear_metrics(gt_ids, trk_ids, sims),
    }


def run_method(name: str, factory: Callable[[Sequence], StepFn], sequences: Iterable[Sequence]) -> MethodResult:
    from trackers.eval import aggregate_clear_metrics, aggregate_hota_metrics, aggregate_identity_metrics

    per_seq, total_ns, total_frames, kept, occl = [], 0, 0, 0, 0
    event_counts: list[dict[str, Any]] = []
    for seq in sequences:
        step = factory(seq)
        outputs: list[Output] = []
        for f in seq.frames:
            t0 = time.perf_counter_ns()
            outputs.append(step(f))
            total_ns += time.perf_counter_ns() - t0
        total_frames += len(seq.frames)
        k, n = occlusions_kept(seq, outputs)
        kept, occl = kept + k, occl + n
        scores = score_sequence(seq, outputs)
        scores["name"] = seq.name
        scores["occlusions_kept"] = (k, n)
        transitions = getattr(step, "transitions", None)
        if transitions is not None:
            scores["events"] = zone_event_counts(seq, outputs, transitions)
            event_counts.append(scores["events"])
        per_seq.append(scores)
    hota = aggregate_hota_metrics([s["HOTA"] for s in per_seq])
    ident = aggregate_identity_metrics([s["Identity"] for s in per_seq])
    clear = aggregate_clear_metrics([s["CLEAR"] for s in per_seq])
    events = None
    if event_counts:
        tp, fp, fn = (sum(e[k] for e in event_counts) for k in ("tp", "fp", "fn"))
        lat = [x for e in event_counts for x in e["latency_s"]]
        precision, recall = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
        events = {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall,
                  "f1": 2 * precision * recall / max(precision + recall, 1e-12),
                  "latency_p50_s": float(np.median(lat)) if lat else float("nan"),
                  "latency_p95_s": float(np.percentile(lat, 95)) if lat else float("nan")}
    return MethodResult(name, float(hota["HOTA"]), float(ident["IDF1"]), float(clear["MOTA"]), int(clear["IDSW"]),
                        total_ns / 1e6 / max(total_frames, 1), kept, occl, per_seq, events)


def evaluate(sequences: list[Sequence], methods: dict[str, Callable[[Sequence], StepFn]]) -> list[MethodResult]:
    return [run_method(name, factory, sequences) for name, factory in methods.items()]


def format_table(results: list[MethodResult]) -> str:
    head = f"| {'method':<30s} | {'HOTA':>6s} | {'IDF1':>6s} | {'MOTA':>6s} | {'IDsw':>5s} | {'ms/frame':>8s} | {'occlusions kept':>15s} |"
    rule = "|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|"
    lines = [head, rule]
    for r in results:
        lines.append(f"| {r.name:<30s} | {100 * r.hota:6.2f} | {100 * r.idf1:6.2f} | {100 * r.mota:6.2f} | "
                     f"{r.id_switches:5d} | {r.ms_per_frame:8.3f} | {f'{r.occlusions_kept}/{r.occlusions}':>15s} |")
    return "\n".join(lines)

