"""``caper-edge eval``: replay bags with ground truth through the pipeline and score them.

Per bag, :func:`evaluate_bag` runs the deterministic loop (:mod:`caper_edge.replay`) on the
runtime's threads (:mod:`caper_edge.pipeline`, lossless) at full speed, collects the ground truth on ``/ground_truth/events`` and ``/ground_truth/objects``, and
keeps the raw counts of every metric (:class:`BagResult`), so that :func:`summarise` can pool
any set of bags (overall, per scenario) the way each metric pools: sums of counts, never means
of per-bag ratios. Definitions: docs/evaluation.md.

What the ground truth expects (docs/evaluation.md, "Ground truth"):

* item events with ``visible: false`` (an item slipped in where the camera cannot see it) are
  *shrink cases*, not receipt lines: the cart cannot charge an item it never saw, it must alarm;
* events carrying ``shrink`` are shrink cases; the two halves of a swap (same hand, same label)
  are one case;
* ``basket_initial`` (products in the basket before the recording) seeds both the ground-truth
  basket and the cart's basket, as the journal's snapshot would after a restart.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Config
from ..sources import BagSource
from ..sources.messages import GroundTruthEvent
from . import metrics as M

__all__ = ["BagResult", "EvalOptions", "bag_scenario", "evaluate_bag", "summarise"]


@dataclass(frozen=True)
class EvalOptions:
    """Matching windows: ``event_window_s`` (time gate of event matching, s), ``checkpoint_s``
    (basket compared this long after each ground-truth item event comes to rest, s)."""

    event_window_s: float = 1.0
    checkpoint_s: float = 1.5


@dataclass
class BagResult:
    """Raw counts of one bag (see :func:`summarise` for the ratios)."""

    bag: str
    scenario: str
    seed: str
    frames: int = 0
    wall_s: float = 0.0
    checkpoint_distances: list[int] = field(default_factory=list)
    final_exact: bool = False
    receipt: tuple[int, int, int] = (0, 0, 0)
    events: tuple[int, int, int] = (0, 0, 0)
    latencies_s: list[float] = field(default_factory=list)
    alarms: tuple[int, int, int, int] = (0, 0, 0, 0)
    confidence: list[tuple[float, bool]] = field(default_factory=list)
    confusion: list[tuple[str, str]] = field(default_factory=list)
    event_counts: dict[str, int] = field(default_factory=dict)
    tracking: dict[str, Any] | None = None
    final_basket: dict[str, int] = field(default_factory=dict)
    gt_basket: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        out = summarise([self])
        out.update(bag=self.bag, scenario=self.scenario, seed=self.seed, final_basket=self.final_basket,
                   gt_basket=self.gt_basket)
        return out


def bag_scenario(path: str | Path) -> tuple[str, str]:
    """(scenario, seed) recorded by the simulator in the bag's metadata.yaml; ("unknown", "")."""
    p = Path(path)
    meta = p / "metadata.yaml" if p.is_dir() else p.parent / "metadata.yaml"
    if meta.is_file():
        try:
            from ruamel.yaml import YAML

            data = YAML(typ="safe").load(meta.read_text(encoding="utf-8")) or {}
            custom = (data.get("rosbag2_bagfile_information") or {}).get("custom_data") or {}
            return str(custom.get("caper_edge.scenario", "unknown")), str(custom.get("caper_edge.seed", ""))
        except Exception:  # a metadata file we cannot parse only loses the label
            pass
    return "unknown", ""


def _shrink_cases(raw: list[dict]) -> list[M.GtEvent]:
    """Shrink cases from the raw GT events: hidden items and labelled events; a swap's two halves
    (same label, same hand) are one case spanning both."""
    groups: dict[tuple, list[dict]] = {}
    for i, d in enumerate(raw):
        hidden = d.get("visible") is False
        label = d.get("shrink") or ("hidden_item" if hidden else None)
        if not label:
            continue
        key = (label, d.get("hand_id", f"#{i}"))
        groups.setdefault(key, []).append(d)
    cases = []
    for (label, _), ds in groups.items():
        start = min(int(d["t_start_ns"]) for d in ds)
        rest = max(int(d["t_rest_ns"]) for d in ds)
        cases.append(M.GtEvent(str(label), None, 1, start, rest, True))
    return sorted(cases, key=lambda g: g.t_start_ns)


def evaluate_bag(path: str | Path, cfg: Config, vision: Any, *, mode: str | None = None,
                 options: EvalOptions = EvalOptions(), progress: Callable[[int, int], None] | None = None,
                 on_event: Callable[[Any], None] | None = None,
                 commit: Callable[[Any, Any], Any] | None = None, next_seq: Callable[[], int] = lambda: 0,
                 runtime_out: list | None = None, speed: str = "max") -> BagResult:
    """Replay one bag through the runtime (:class:`caper_edge.pipeline.Runtime`, lossless, so
    the events are the plain loop's) and score it. ``vision`` is a
    :class:`~caper_edge.replay.ModelVision` or :class:`~caper_edge.replay.OracleVision`;
    ``progress(frames_done, frames_total)``; ``on_event(event)`` for each decided event, after
    ``commit(draft, snapshot) -> event`` (e.g. a journal + JSONL outlet; default: none, drafts);
    ``runtime_out`` receives the :class:`~caper_edge.pipeline.Runtime` (for its latency figures);
    ``speed`` other than "max" paces the bag like a camera, with ``[pipeline] drop_frames``."""
    from ..pipeline import Runtime, lossless_for, vision_workers_for
    from ..replay import Pipeline, load_catalog

    scenario, seed = bag_scenario(path)
    with BagSource(path, speed="max") as probe:
        total = probe.reader.topics[probe.layout.color].count or 0
        catalog = load_catalog(probe.catalog, vision)
    pipe = Pipeline(cfg, catalog, vision, mode=mode, record_tracks=True)
    raw_gt: list[dict] = []
    initial: Counter[str] = Counter()
    events: list[Any] = []

    def ground_truth(msg: GroundTruthEvent) -> None:   # on the commit thread, in bag order
        d = msg.event
        if d.get("type") == "basket_initial":
            for item in d.get("items", []):
                initial[item["sku"]] += int(item["qty"])
                pipe.basket.add(item["sku"], int(item["qty"]), confidence=1.0, t_ns=msg.t_ns)
        else:
            raw_gt.append(d)

    def decided(draft: Any, snapshot: Any) -> Any:
        event = commit(draft, snapshot) if commit is not None else draft
        events.append(event)
        if on_event is not None:
            on_event(event)
        return event

    lossless = speed == "max" or lossless_for(cfg, speed)   # eval at speed max is always deterministic
    runtime = Runtime(cfg, pipe, lambda: BagSource(path, speed=speed, decode=False), decided, lossless=lossless,
                      next_seq=next_seq, on_ground_truth=ground_truth, source_kind="bag",
                      vision_workers=vision_workers_for(cfg, vision))
    if runtime_out is not None:
        runtime_out.append(runtime)
    t0 = time.perf_counter()
    runtime.run(None if progress is None else (lambda done: progress(done, total)))
    wall = time.perf_counter() - t0
    return _score(str(path), scenario, seed, pipe, events, raw_gt, initial, runtime.last_message_t_ns, wall, options)


def _score(bag: str, scenario: str, seed: str, pipe: Any, events: list, raw_gt: list[dict], initial: Counter[str],
           end_ns: int, wall: float, options: EvalOptions) -> BagResult:
    pred = [M.PredEvent.from_event(e) for e in events]
    gt_items = [M.GtEvent.from_json(d) for d in raw_gt if d.get("type") in M.ITEM_TYPES and d.get("visible") is not False]
    cases = _shrink_cases(raw_gt)
    r = BagResult(bag, scenario, seed, frames=pipe.stats.frames, wall_s=wall)
    r.checkpoint_distances = M.basket_checkpoints(pred, gt_items, end_ns, options.checkpoint_s, initial)
    final_pred, final_gt = M.basket_at(pred, initial=initial), M.basket_at(gt_items, initial=initial)
    r.final_basket, r.gt_basket = dict(sorted(final_pred.items())), dict(sorted(final_gt.items()))
    r.final_exact = final_pred == final_gt
    r.receipt = M.receipt_counts(final_pred, final_gt)
    m = M.match_events(pred, gt_items, options.event_window_s)
    r.events = (m.tp, len(m.pred_units), len(m.gt_units))
    r.latencies_s = m.latencies_s()
    matched = {p for p, _ in m.pairs}
    r.confidence = [(u.confidence, i in matched) for i, u in enumerate(m.pred_units)]
    r.confusion = [(m.gt_units[g].sku, m.pred_units[p].sku) for p, g in m.pairs]
    # SKU confusions: the units left over, matched by type and time only.
    left_p = [m.pred_units[i] for i in m.unmatched_pred()]
    left_g = [m.gt_units[i] for i in m.unmatched_gt()]
    m2 = M.match_events(left_p, left_g, options.event_window_s, match_sku=False)
    r.confusion += [(m2.gt_units[g].sku, m2.pred_units[p].sku) for p, g in m2.pairs]
    r.alarms = M.shrink_alarms(pred, cases, options.event_window_s)
    r.event_counts = dict(sorted(Counter(e.type for e in events).items()))
    if any(f.gt_ids is not None and len(f.gt_ids) for f in pipe.tracks):
        gt_frames = [(f.gt_ids if f.gt_ids is not None else [], f.gt_xyxy if f.gt_xyxy is not None else [])
                     for f in pipe.tracks]
        r.tracking = M.tracking_metrics(gt_frames, [(f.track_ids, f.xyxy) for f in pipe.tracks])
    return r


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def summarise(results: Sequence[BagResult]) -> dict[str, Any]:
    """The contract's metrics pooled over ``results`` (sums of counts), plus diagnostics."""
    dist = [d for r in results for d in r.checkpoint_distances]
    rec = [sum(x) for x in zip(*(r.receipt for r in results))] or [0, 0, 0]
    ev = [sum(x) for x in zip(*(r.events for r in results))] or [0, 0, 0]
    al = [sum(x) for x in zip(*(r.alarms for r in results))] or [0, 0, 0, 0]
    lat = [x for r in results for x in r.latencies_s]
    conf = [c for r in results for c in r.confidence]
    frames = sum(r.frames for r in results)
    wall = sum(r.wall_s for r in results)
    ip, ir, if1 = M.f1(*rec)
    _, _, ef1 = M.f1(*ev)
    rel = M.reliability([c for c, _ in conf], [k for _, k in conf]) if conf else None
    counts: Counter[str] = Counter()
    for r in results:
        counts.update(r.event_counts)
    out: dict[str, Any] = {
        "n_bags": len(results),
        "basket_exact_match": _ratio(sum(d == 0 for d in dist), len(dist)),
        "acd": _ratio(sum(dist), len(dist)),
        "final_basket_exact_match": _ratio(sum(r.final_exact for r in results), len(results)),
        "checkpoints": len(dist),
        "item_precision": ip,
        "item_recall": ir,
        "item_f1": if1,
        "event_precision": M.f1(*ev)[0],
        "event_recall": M.f1(*ev)[1],
        "event_f1": ef1,
        "shrink_alarm_precision": _ratio(al[0], al[1]),
        "shrink_alarm_recall": _ratio(al[2], al[3]),
        "shrink_alarms": al[1],
        "shrink_cases": al[3],
        "time_to_event_p50_s": M.percentile(lat, 50),
        "time_to_event_p95_s": M.percentile(lat, 95),
        "frames": frames,
        "fps": _ratio(frames, wall),
        "events": sum(counts.values()),
        "events_by_type": dict(sorted(counts.items())),
        "confidence_ece": rel.ece if rel else None,
    }
    tracking = M.aggregate_tracking([r.tracking for r in results]) if any(r.tracking for r in results) else None
    for key in ("hota", "idf1", "mota"):
        out[key] = tracking[key] if tracking else None
    return out


def reliability_of(results: Sequence[BagResult]) -> M.Reliability | None:
    conf = [c for r in results for c in r.confidence]
    return M.reliability([c for c, _ in conf], [k for _, k in conf]) if conf else None
