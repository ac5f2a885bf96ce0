"""The deterministic plain loop: one message at a time through every stage, no threads, no drops.

    frames:      source -> preprocess (letterbox) -> detector -> decode + NMS -> crops -> embedder
                 -> gallery similarities -> depth per box -> tracker -> zone transitions
    scale lines: decoder -> MCU clock mapping -> calibration -> weight-event detector
    both:        -> fusion -> basket -> events

:class:`Pipeline` is the composition; :func:`replay_bag` drives it from a
:class:`~caper_edge.sources.BagSource`. ``caper-edge replay`` and ``caper-edge eval`` use it as it
is; the live runtime runs the same stages in threads. Given the same bag and config, the same
events come out, byte for byte: every stage is a pure function of the messages and their order
(the scale clock is mapped from message times, never from the wall clock).

Vision comes from the committed models (:class:`ModelVision`) or, for debugging fusion only,
from the bag's ground-truth objects (:class:`OracleVision`, ``--vision oracle``): that mode is a
diagnostic, labelled as such in every output, and never the default.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .basket import Basket
from .catalog import Catalog
from .config import Config
from .errors import CaperError, InputError
from .events import Event
from .fusion import Fusion, VisionEvent, candidates_of, vision_events_from_tracks
from .fusion.inputs import GLIMPSE_GROUP, GLIMPSE_SKU, GLIMPSE_WEAK
from .sources.messages import Frame, GroundTruthEvent, ScaleLine

__all__ = ["ABLATIONS", "FrameTracks", "ModelVision", "Observations", "OracleVision", "Pipeline", "load_catalog", "open_model_vision",
           "open_vision"]

ITEM_CLASS, HAND_CLASS = 0, 1
_ORACLE_MIN_VISIBLE = 0.35   # what a detector can see (the tracker evaluation's threshold too)
_LOOK_CHANGE_FRAMES = 5      # a track's look must show another SKU this many frames in a row
_STEADY_FRAMES = 5           # a booked track must have been matched this long before it "vanishes"


def _without_nested(counted: list, xyxy: np.ndarray, min_ios: float) -> list:
    """The census's products without those counted twice: a resting box lying at least
    ``min_ios`` of its area inside a bigger one that looks like the same product or look-alike
    group (its family) is that product's other part -- a big box split in two by a product lying
    across it -- not a second unit. Entries (key, is_group, family, row of ``xyxy``); the
    biggest boxes are kept first."""
    from .evaluation.metrics import box_ioa

    boxes = xyxy[[e[3] for e in counted]]
    inside = box_ioa(boxes, boxes)   # [i, j]: the share of box i lying inside box j
    area = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)
    kept: list[int] = []
    for i in np.argsort(-area, kind="stable").tolist():
        if not any(counted[j][2] == counted[i][2] and inside[i, j] >= min_ios for j in kept):
            kept.append(i)
    return [counted[i] for i in kept]


@dataclass
class Observations:
    """One frame's detections in image pixels, with optional appearance.

    xyxy (n, 4) float32, score (n,) float32, class_id (n,) int32; embedding (n, D) float32 or None
    (all-zero rows: no appearance); sku_similarity (n, S) float32 or None, columns in
    :attr:`Vision.skus` order."""

    xyxy: np.ndarray
    score: np.ndarray
    class_id: np.ndarray
    embedding: np.ndarray | None = None
    sku_similarity: np.ndarray | None = None


@dataclass
class FrameTracks:
    """Per frame, the item tracks the tracker reported and the ground-truth items (if any)."""

    track_ids: np.ndarray
    xyxy: np.ndarray
    gt_ids: np.ndarray | None = None
    gt_xyxy: np.ndarray | None = None


# ---------------------------------------------------------------------------------------------
# Vision
# ---------------------------------------------------------------------------------------------


class ModelVision:
    """Detector + embedder + gallery (the product path)."""

    name = "models"

    def __init__(self, cfg: Config, detector: Any, embedder: Any, gallery: Any) -> None:
        from .embedding import Embedder

        self.cfg = cfg
        self.detector = detector
        self.embedder = embedder if isinstance(embedder, Embedder) else Embedder(embedder)
        self.gallery = gallery
        self.skus = [s.sku for s in gallery.skus]
        spec = detector.input()
        if len(spec.shape) != 4 or spec.shape[1] != 3:
            raise CaperError(f"detector {detector.path.name}: input {spec.describe()}, expected (1, 3, H, W)")
        h, w = spec.shape[2], spec.shape[3]
        self.size = (int(h), int(w)) if h and w else tuple(cfg.preprocess.size)
        self.input_name = spec.name
        self.output_name = detector.outputs[0].name
        classes = list(cfg.models.detector_classes)
        self.item_class = classes.index("item") if "item" in classes else 0
        self.hand_class = classes.index("hand") if "hand" in classes else -1

    def __call__(self, frame: Frame) -> Observations:
        from .detect import decode
        from .embedding import crop_box, turn_crops
        from .preprocess import letterbox, unletterbox

        p, d = self.cfg.preprocess, self.cfg.detect
        image = frame.decode()
        tensor, meta = letterbox(image, size=self.size, fmt="rgb8", scale=p.scale, mean=p.mean, std=p.std,
                                 pad_value=p.pad_value, dtype=np.dtype(p.dtype))
        raw = self.detector.run({self.input_name: tensor[None]})[self.output_name]
        dets = decode(raw, conf_threshold=d.conf_threshold, iou_threshold=d.iou_threshold,
                      max_detections=d.max_detections, class_agnostic=d.class_agnostic)
        xyxy = unletterbox(dets.xyxy, meta).astype(np.float32)
        # The tracker's classes: 0 item, 1 hand, whatever order the detector lists them in.
        cls = np.where(dets.class_id == self.item_class, ITEM_CLASS,
                       np.where(dets.class_id == self.hand_class, HAND_CLASS, 2)).astype(np.int32)
        n = len(xyxy)
        emb = sims = None
        items = np.flatnonzero(cls == ITEM_CLASS)
        crops, rows = [], []
        for i in items:
            crop = crop_box(image, xyxy[i])
            if crop is not None:
                crops.append(crop)
                rows.append(i)
        if crops:
            m = self.cfg.models
            if m.turn_cycle:
                # the frame's index, not a call count: the same turn whichever vision worker runs it
                crops = turn_crops(crops, frame.index)
            e = self.embedder.embed(crops, turns=m.embed_turns)
            emb = np.zeros((n, e.shape[1]), np.float32)
            emb[rows] = e
            sims = np.zeros((n, len(self.skus)), np.float32)
            sims[rows] = self.gallery.sku_scores(e)
        return Observations(xyxy, dets.score.astype(np.float32), cls, emb, sims)


class OracleVision:
    """DIAGNOSTIC ONLY: detections and SKU similarities made from the bag's ground-truth objects.

    Each object at least 35 % visible becomes a detection with its true box and a score that
    falls with occlusion; its SKU similarities are 0.9 for the true SKU, 0.86 for the true SKU's
    look-alikes and 0.3 for everything else, so look-alikes stay hard for vision. It isolates
    fusion and tracking from detector and embedder errors; numbers from it are not product numbers.
    """

    name = "oracle"

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.skus = list(catalog.skus)
        self._col = {s: i for i, s in enumerate(self.skus)}

    def __call__(self, frame: Frame) -> Observations:
        objs = [o for o in (frame.objects or []) if float(o.get("visible", 1.0)) >= _ORACLE_MIN_VISIBLE]
        n = len(objs)
        xyxy = np.array([o["xyxy"] for o in objs], np.float32).reshape(n, 4)
        vis = np.array([float(o.get("visible", 1.0)) for o in objs], np.float32)
        score = (0.45 + 0.5 * vis).astype(np.float32)
        cls = np.array([HAND_CLASS if _is_hand(o) else ITEM_CLASS for o in objs], np.int32)
        sims = np.full((n, len(self.skus)), 0.3, np.float32)
        for i, o in enumerate(objs):
            if cls[i] != ITEM_CLASS or o.get("sku") not in self._col:
                sims[i] = 0.0
                continue
            for other in self.catalog.lookalikes(o["sku"]):
                sims[i, self._col[other]] = 0.86
            sims[i, self._col[o["sku"]]] = 0.9
        return Observations(xyxy, score, cls, None, sims)


def _is_hand(obj: dict) -> bool:
    c = obj.get("class", 0)
    return c in ("hand", HAND_CLASS)


def open_model_vision(cfg: Config) -> ModelVision:
    """The configured (or packaged) detector, embedder and gallery; CaperError when missing."""
    from .engines import open_engine, packaged_model
    from .gallery import Gallery

    detector = open_engine(cfg, model="detector")
    embedder = open_engine(cfg, model="embedder")
    path = cfg.models.gallery or packaged_model("gallery")
    try:
        gallery = Gallery.load(path)
    except FileNotFoundError:
        raise InputError(f"gallery {path} does not exist") from None
    return ModelVision(cfg, detector, embedder, gallery)


#: ``--ablation`` choices of ``caper-edge replay`` / ``eval`` / ``demo`` -> fusion modes.
ABLATIONS = {"vision-only": "vision_only", "weight-only": "weight_only"}


def open_vision(kind: str, cfg: Config, bag: Any = None) -> ModelVision | OracleVision:
    """``"models"`` (the product path) or ``"oracle"`` (DIAGNOSTIC: needs ``bag``'s /catalog)."""
    if kind == "models":
        return open_model_vision(cfg)
    if kind != "oracle":
        raise InputError(f"vision = {kind!r}: expected 'models' or 'oracle'")
    from .sources import BagSource

    with BagSource(bag) as src:
        if src.catalog is None:
            raise InputError(f"--vision oracle needs the bag's /catalog topic; {bag} has none")
        return OracleVision(Catalog.from_json(src.catalog, what=f"{bag} /catalog"))


def load_catalog(bag_catalog: Any, vision: Any) -> Catalog:
    """The bag's ``/catalog`` when it has one, else the gallery's catalogue rows."""
    if bag_catalog is not None:
        return Catalog.from_json(bag_catalog, what="the bag's /catalog")
    gallery = getattr(vision, "gallery", None)
    if gallery is not None:
        return Catalog.from_gallery(gallery)
    raise InputError("no catalogue: the bag has no /catalog topic and the vision stage has no gallery")


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------


@dataclass
class PipelineStats:
    frames: int = 0
    scale_samples: int = 0
    weight_events: int = 0
    transitions: int = 0
    events: int = 0
    stage_s: dict[str, float] = field(default_factory=lambda: {"vision": 0.0, "tracker": 0.0, "scale": 0.0, "fusion": 0.0})


class Pipeline:
    """All stages for one stream. :meth:`feed` a message, get the draft events it decided.

    ``record_tracks`` keeps each frame's item tracks (and ground-truth items) for tracking metrics.
    """

    def __init__(self, cfg: Config, catalog: Catalog, vision: Callable[[Frame], Observations], *,
                 mode: str | None = None, basket: Basket | None = None, record_tracks: bool = False,
                 resume_weight_g: float | None = None) -> None:
        from .scale import ScaleDecoder, WeightEventDetector
        from .scale.clock import ClockMapper
        from .track import Tracker

        self.cfg = cfg
        self.catalog = catalog
        self.vision = vision
        self.skus = list(getattr(vision, "skus", []))
        self.tracker = Tracker.from_config(cfg)
        self.decoder = ScaleDecoder()
        self.clock = ClockMapper(cfg.scale.clock_window_s, cfg.scale.clock_max_drift_ppm)
        self.weights = WeightEventDetector.from_config(cfg.scale.events)
        self._offsets = np.asarray(cfg.scale.calibration.offsets, np.float64)
        self._gains = np.asarray(cfg.scale.calibration.gains, np.float64)
        self.fusion = Fusion(catalog, cfg.fusion, basket=basket, mode=mode)
        self.stats = PipelineStats()
        self.record_tracks = record_tracks
        self.tracks: list[FrameTracks] = []
        self._last_scale_t = -1
        self.last_weight_g: float | None = None
        # Where each track was first reported (box centre, pixels) and how far it has travelled
        # since (box diagonals): tells an item carried in from one found in place.
        self._first_centre: dict[int, tuple[float, float]] = {}
        self._travel: dict[int, float] = {}
        self._last_seen: dict[int, int] = {}
        self._floor: dict[int, tuple[float, float]] = {}  # last floor position of each track
        self._carried_path: dict[int, deque[tuple[int, tuple[float, float]]]] = {}  # undecided carried tracks' recent floor positions
        self._matched_run: dict[int, int] = {}   # consecutive frames each track was matched
        self._looks: dict[int, tuple[str, int, str, int]] = {}  # reported look SKU, frames it has differed, weak run
        self._look_memo: tuple[Any, dict[int, tuple[tuple[str, float], ...]]] = (None, {})  # this frame's looks by detection
        # After a restart: the weight journaled with the restored basket, checked against the
        # first baseline the weight detector learns (see _check_resume).
        self._resume_weight_g = resume_weight_g
        self.resume_delta_g: float | None = None

    @property
    def basket(self) -> Basket:
        return self.fusion.basket

    def feed(self, msg: Any) -> list[Event]:
        if isinstance(msg, Frame):
            return self._frame(msg)
        if isinstance(msg, ScaleLine):
            return self._scale(msg)
        if isinstance(msg, GroundTruthEvent):
            return []
        raise InputError(f"unexpected message {type(msg).__name__} from the source")

    def finish(self) -> list[Event]:
        """End of stream: every waiting decision is taken."""
        t0 = time.perf_counter()
        out = self.fusion.flush()
        self.stats.stage_s["fusion"] += time.perf_counter() - t0
        self.stats.events += len(out)
        return out

    # -- frames ------------------------------------------------------------------------------

    def _frame(self, frame: Frame) -> list[Event]:
        t0 = time.perf_counter()
        seen = self.observe(frame)
        self.stats.stage_s["vision"] += time.perf_counter() - t0
        return self.track(frame, seen)

    def observe(self, frame: Frame) -> tuple[Observations, np.ndarray | None] | None:
        """The vision half of a frame: detections, appearance and depth per box (None when
        vision is off). Touches no tracker or fusion state, so the runtime runs it on another
        thread, one frame ahead of :meth:`track`."""
        from .preprocess import median_depth

        if self.fusion.mode == "weight_only":  # vision off: no detector, no tracker
            return None
        obs = self.vision(frame)
        depth = None
        if frame.depth is not None and len(obs.xyxy):
            depth = np.asarray(median_depth(frame.depth, obs.xyxy, 0.001, 0.5), np.float32).reshape(-1)
        return obs, depth

    def track(self, frame: Frame, seen: tuple[Observations, np.ndarray | None] | None) -> list[Event]:
        """The rest of a frame, given :meth:`observe`'s result: tracker, zone transitions, fusion."""
        st = self.stats.stage_s
        if seen is None:
            self.stats.frames += 1
            out = self.fusion.tick(frame.t_ns)
            self.stats.events += len(out)
            return out
        obs, depth = seen
        t1 = time.perf_counter()
        tracks = self.tracker.update(obs.xyxy, obs.score, obs.class_id, embedding=obs.embedding, depth_m=depth,
                                     t_ns=frame.t_ns, sku_similarity=obs.sku_similarity)
        self._update_travel(tracks)
        self._update_floor(tracks, depth, frame)
        continuing = self.fusion.mode == "fusion" and self.cfg.fusion.continue_max_dist > 0
        if continuing:
            self._note_carried(tracks, frame.t_ns)
        pending = self.fusion.pending_track_ids()
        vis_events: list[VisionEvent] = []
        if tracks.transitions or pending:
            every = self.tracker.all_tracks()
            vis_events = vision_events_from_tracks(tracks, every, self.skus, self._travel,
                                                   self.cfg.fusion.in_place_max_travel, self._floor)
            if len(self._first_centre) > 4 * max(len(every), 16):  # forget tracks that are gone
                alive = {int(t) for t in every.track_id}
                self._first_centre = {k: v for k, v in self._first_centre.items() if k in alive}
                self._travel = {k: v for k, v in self._travel.items() if k in alive}
                self._last_seen = {k: v for k, v in self._last_seen.items() if k in alive}
                self._looks = {k: v for k, v in self._looks.items() if k in alive}
                self._floor = {k: v for k, v in self._floor.items() if k in alive}
        if self.fusion.mode == "fusion":  # the ablations take none
            if self.cfg.fusion.spare_hand_prior > 0:
                self.fusion.set_hands(frame.t_ns, self._hands(tracks))
            if self.cfg.fusion.census_units:
                self.fusion.set_census(frame.t_ns, *self._census(tracks, obs))
            if self.cfg.fusion.glimpse_units:
                self.fusion.add_glimpses(frame.t_ns, self._glimpses(tracks, obs))
        vis_events += self._refound(tracks, obs, frame.t_ns, {e.track_id for e in vis_events})
        vis_events += self._vanished(tracks, frame.t_ns)
        if continuing:
            vis_events = self._continuations(vis_events, tracks, frame.t_ns)
        t2 = time.perf_counter()
        out: list[Event] = []
        for ev in vis_events:
            out += self.fusion.on_vision(ev)
        if pending:
            rows = {int(t): i for i, t in enumerate(every.track_id)}
            for tid in sorted(pending):
                i = rows.get(tid)
                if i is not None and every.t_last_ns[i] == frame.t_ns:  # refreshed in this frame
                    out += self.fusion.update_candidates(tid, candidates_of(every.sku_ids[i], every.sku_prob[i], self.skus),
                                                         self._floor.get(tid))
        if self.fusion.mode == "fusion" and self.cfg.fusion.audit_window_s > 0:
            out += self._audit(tracks, frame.t_ns)
            out += self.fusion.audit_census()
        if self.cfg.fusion.entering_hold_s > 0:
            from .track import LOST, ZONE_ENTERING

            self.fusion.set_entering(tracks.track_id[(tracks.zone == ZONE_ENTERING) & (tracks.class_id == ITEM_CLASS)
                                                     & (tracks.state != LOST)].tolist())
        out += self.fusion.tick(frame.t_ns)
        t3 = time.perf_counter()
        st["tracker"] += t2 - t1
        st["fusion"] += t3 - t2
        self.stats.frames += 1
        self.stats.transitions += len(tracks.transitions)
        self.stats.events += len(out)
        if self.record_tracks:
            self._record(frame, tracks)
        return out

    def _audit(self, tracks: Any, t_ns: int) -> list[Event]:
        """Fusion's resting audit: the SKU posterior of each track whose add may still be revised
        (:meth:`Fusion.audit_look`), when it is matched in this frame inside the basket."""
        from .track import ZONE_INSIDE

        audited = self.fusion.audit_track_ids()
        if not audited:
            return []
        out: list[Event] = []
        for i, tid in enumerate(tracks.track_id.tolist()):
            if tid in audited and tracks.det_index[i] >= 0 and tracks.zone[i] == ZONE_INSIDE:
                out += self.fusion.audit_look(tid, t_ns, candidates_of(tracks.sku_ids[i], tracks.sku_prob[i], self.skus),
                                              self._floor.get(tid), at_rest=bool(tracks.at_rest[i]))
        return out

    def _refound(self, tracks: Any, obs: Observations, t_ns: int, skip: set[int]) -> list[VisionEvent]:
        """In-place entries for tracks inside the basket that are seen again after
        ``refound_gap_s`` unseen, or whose look changed to another SKU (for
        ``_LOOK_CHANGE_FRAMES`` frames in a row).

        Their candidates are what the matched detection looks like now, not the track's long
        SKU memory: when the tracker hands a new product the track of one it covered or stood
        beside, only the current look tells them apart."""
        from .track import ZONE_INSIDE

        gap = int(self.cfg.fusion.refound_gap_s * 1e9)
        out = []
        for i, tid in enumerate(tracks.track_id.tolist()):
            last = self._last_seen.get(tid)
            self._last_seen[tid] = t_ns
            if tracks.class_id[i] != ITEM_CLASS or tid in skip:
                continue
            look = self._look(obs, int(tracks.det_index[i]))
            changed = self._look_changed(tid, look)
            if tracks.zone[i] != ZONE_INSIDE:
                continue
            if (gap > 0 and last is not None and t_ns - last >= gap) or changed:
                cands = look or candidates_of(tracks.sku_ids[i], tracks.sku_prob[i], self.skus)
                out.append(VisionEvent("entered", tid, t_ns, t_ns, cands, in_place=True, floor_uv=self._floor.get(tid)))
        return out

    def _note_carried(self, tracks: Any, t_ns: int) -> None:
        """Each frame, where the products carried in whose entry fusion has not decided yet are
        (their floor positions over the last ``continue_max_gap_s``): where a new track found in
        place may continue one of them."""
        carried = self.fusion.pending_carried_ids()
        self._carried_path = {c: p for c, p in self._carried_path.items() if c in carried}
        if not carried:
            return
        horizon = t_ns - int(self.cfg.fusion.continue_max_gap_s * 1e9)
        for tid in tracks.track_id.tolist():
            pos = self._floor.get(tid)
            if tid in carried and pos is not None:
                path = self._carried_path.setdefault(tid, deque())
                if path and path[-1][1] == pos:
                    path[-1] = (t_ns, pos)  # still there: when it was last there is what ages out
                else:
                    path.append((t_ns, pos))
        for path in self._carried_path.values():
            while path and path[0][0] < horizon:
                path.popleft()

    def _continuations(self, events: list[VisionEvent], tracks: Any, t_ns: int) -> list[VisionEvent]:
        """Mark the in-place entry of each *new* track (one the tracker started at most
        ``continue_max_gap_s`` ago, not an older one found again) that lies within
        ``continue_max_dist`` of where a product carried in, its entry still undecided, was in
        the last ``continue_max_gap_s`` as continuing that track (the nearest; each carried
        track is continued once): the tracker lost the product, or slid its track onto the hand
        that put it down, and started a new track on it. Resting products the hand passed over
        keep their tracks (they are found again, not new), so they are not taken for it."""
        if not self._carried_path:
            return events
        fc = self.cfg.fusion
        born_after = t_ns - int(fc.continue_max_gap_s * 1e9)
        first = dict(zip(tracks.track_id.tolist(), tracks.t_first_ns.tolist()))  # the entries' tracks are matched now
        free = set(self._carried_path)
        out = []
        for e in events:
            if (e.kind == "entered" and e.in_place and e.floor_uv is not None and e.continues is None
                    and first.get(e.track_id, born_after - 1) >= born_after):
                best: tuple[float, int] | None = None
                for c in sorted(free - {e.track_id}):
                    d = min((math.hypot(u - e.floor_uv[0], v - e.floor_uv[1]) for _, (u, v) in self._carried_path[c]),
                            default=math.inf)
                    if d <= fc.continue_max_dist and (best is None or d < best[0]):
                        best = (d, c)
                if best is not None:
                    e = dataclasses.replace(e, continues=best[1])
                    free.discard(best[1])
            out.append(e)
        return out

    def _census(self, tracks: Any, obs: Observations) -> tuple[dict[str, int], dict[str, int], dict[int, Any]]:
        """The resting products inside the basket matched in this frame whose current look gives
        one SKU at least ``census_min_prob``, counted per SKU (fusion's census); and, with
        ``census_groups``, those whose look gives only their top SKU's look-alike group
        together at least ``census_group_min_prob``, counted per group
        (:meth:`Fusion.group_key`); a box lying ``census_nested_ios`` inside a bigger counted one
        of the same product or group counted once (:func:`_without_nested`); and, with
        ``census_resting_looks``, every such track's current look by track."""
        from .track import ZONE_INSIDE

        counts: dict[str, int] = {}
        groups: dict[str, int] = {}
        floor = self.cfg.fusion.census_min_prob
        by_group = self.cfg.fusion.census_groups
        group_floor = self.cfg.fusion.census_group_min_prob
        nested = self.cfg.fusion.census_nested_ios
        looks: dict[int, Any] = {}
        keep_looks = self.cfg.fusion.census_resting_looks
        counted: list[tuple[str, bool, str, int]] = []  # key, counted for a group, family, row
        for i in np.flatnonzero((tracks.zone == ZONE_INSIDE) & tracks.at_rest & (tracks.class_id == ITEM_CLASS)
                                & (tracks.det_index >= 0)):
            look = self._look(obs, int(tracks.det_index[i]))
            if not look:
                continue
            if keep_looks:
                looks[int(tracks.track_id[i])] = look
            top = look[0][0]
            group = self.fusion.group_key(top)
            if look[0][1] >= floor:
                counted.append((top, False, group or top, int(i)))
            elif by_group and group is not None and self._look_mass(look, top) >= group_floor:
                counted.append((group, True, group, int(i)))
        if nested > 0.0 and len(counted) > 1:
            counted = _without_nested(counted, np.asarray(tracks.xyxy, dtype=float), nested)
        for key, is_group, _, _ in counted:
            into = groups if is_group else counts
            into[key] = into.get(key, 0) + 1
        return counts, groups, looks

    def _hands(self, tracks: Any) -> int:
        """Fusion's hand count (``spare_hand_prior``): the confirmed hand tracks matched in this
        frame, wherever they are (a hand is not placed in the basket's zones)."""
        from .track import TRACKED

        return int(np.count_nonzero((tracks.class_id == HAND_CLASS) & (tracks.state == TRACKED)))

    def _glimpses(self, tracks: Any, obs: Observations) -> list[tuple[str, float, int, tuple[float, ...]]]:
        """The item detections of this frame that no confirmed track took, whose look gives one
        SKU at least ``glimpse_min_prob`` (with ``glimpse_groups``, or whose top SKU's look-alike
        group has that together: then the group's probability is reported; with
        ``glimpse_weak_min_prob``, or whose look reaches only that: a weak glimpse) and that
        overlap no live item track's box (matched in this frame or not: a resting product whose
        track missed a frame is no glimpse) by more than ``glimpse_max_iou`` -- or by at most
        ``glimpse_max_iou_other`` only tracks that look like another product: (top SKU,
        probability, kind, box) each, the kind ``GLIMPSE_SKU``, ``GLIMPSE_GROUP`` or
        ``GLIMPSE_WEAK``, the box the detection's (x0, y0, x1, y1) in pixels (fusion's glimpses)."""
        from .evaluation.metrics import box_iou

        f = self.cfg.fusion
        taken = {int(i) for i in tracks.det_index if i >= 0}
        looks = []
        for i in np.flatnonzero(obs.class_id == ITEM_CLASS):
            if int(i) not in taken:
                look = self._look(obs, int(i))
                if not look:
                    continue
                top, p = look[0]
                kind = GLIMPSE_SKU
                if p < f.glimpse_min_prob:
                    if f.glimpse_groups:
                        p = self._look_mass(look, top)  # look-alikes split a look among themselves
                    if p >= f.glimpse_min_prob:
                        kind = GLIMPSE_GROUP
                    elif 0 < f.glimpse_weak_min_prob <= p:
                        kind = GLIMPSE_WEAK
                    else:
                        continue
                box = tuple(float(x) for x in obs.xyxy[int(i)])
                looks.append((int(i), (top, p, kind, box)))
        if not looks:
            return []
        every = self.tracker.all_tracks()
        rows = np.flatnonzero(every.class_id == ITEM_CLASS)
        if not len(rows):
            return [look for _, look in looks]
        iou = box_iou(obs.xyxy[[i for i, _ in looks]], every.xyxy[rows])
        out = []
        for (_, look), overlap in zip(looks, iou):
            most = overlap.max()
            if most <= f.glimpse_max_iou or (most <= f.glimpse_max_iou_other
                                             and self._unlike_tracks(look[0], every, rows[overlap > f.glimpse_max_iou])):
                out.append(look)  # it overlaps no track, or only neighbours' boxes (no second box on one)
        return out

    def _unlike_tracks(self, sku: str, tracks: Any, rows: np.ndarray) -> bool:
        """True when every one of these tracks has a SKU posterior whose top SKU is neither
        ``sku`` nor one of its look-alikes: a detection overlapping them is another product."""
        alike = self._group(sku)
        for j in rows:
            cands = candidates_of(tracks.sku_ids[j], tracks.sku_prob[j], self.skus)
            if not cands or cands[0][0] in alike:
                return False
        return True

    def _look_changed(self, tid: int, look: tuple[tuple[str, float], ...]) -> bool:
        """True once when a track's current look has shown another SKU than its reported one for
        long enough; the new look is then the reported one. Either ``_LOOK_CHANGE_FRAMES``
        frames in a row whose top-1 is another SKU with probability >= ``look_change_min_prob``
        (with ``look_change_groups``, or whose top-1's look-alike group, not the reported SKU's,
        has that probability together: look-alikes split a look among themselves),
        or ``look_change_weak_frames`` frames in a row with the same other top-1 in which the
        reported SKU has fallen below ``look_change_max_old`` (a new product under an old track
        often looks like no SKU strongly, but steadily not like the old one)."""
        if not look:
            return False
        fc = self.cfg.fusion
        top, p_top = look[0]

        def confident() -> bool:  # the group's mass only when the top SKU alone falls short
            return p_top >= fc.look_change_min_prob or (
                fc.look_change_groups and self._look_mass(look, top) >= fc.look_change_min_prob)

        if tid not in self._looks and not confident():
            return False  # a track's first reported look is a confident one
        reported, streak, weak_top, weak_run = self._looks.get(tid, (top, 0, "", 0))
        if top == reported:
            self._looks[tid] = (reported, 0, "", 0)
            return False
        if p_top >= fc.look_change_min_prob or (top not in self.catalog.lookalikes(reported) and confident()):
            streak += 1
        p_old = next((p for s, p in look if s == reported), 0.0)
        if p_old < fc.look_change_max_old:
            weak_run = weak_run + 1 if top == weak_top else 1
            weak_top = top
        else:
            weak_top, weak_run = "", 0
        if streak >= _LOOK_CHANGE_FRAMES or weak_run >= fc.look_change_weak_frames:
            self._looks[tid] = (top, 0, "", 0)
            return True
        self._looks[tid] = (reported, streak, weak_top, weak_run)
        return False

    def _vanished(self, tracks: Any, t_ns: int) -> list[VisionEvent]:
        """In-place leaving events for booked items whose tracks had been matched for
        ``_STEADY_FRAMES`` frames in a row and are not in this one: a removal under the hand
        shows only as this. (A track that flickers in and out is not reported each time.) Each
        carries the track's SKU posterior, like the tracker's own transitions."""
        now = set(tracks.track_id.tolist())
        steady = {tid for tid, n in self._matched_run.items() if n >= _STEADY_FRAMES}
        gone = (steady & self.fusion.booked_track_ids()) - now
        self._matched_run = {tid: self._matched_run.get(tid, 0) + 1 for tid in now}
        if not gone:
            return []
        every = self.tracker.all_tracks()
        rows = {int(t): i for i, t in enumerate(every.track_id)}
        out = []
        for tid in sorted(gone):
            i = rows.get(tid)
            cands = candidates_of(every.sku_ids[i], every.sku_prob[i], self.skus) if i is not None else ()
            out.append(VisionEvent("left", tid, t_ns, t_ns, cands, in_place=True, floor_uv=self._floor.get(tid)))
        return out

    def _look_mass(self, look: tuple[tuple[str, float], ...], sku: str) -> float:
        """The probability a look gives ``sku`` and its look-alikes together: a product of a
        look-alike group looks like the group, split among its members."""
        group = self._group(sku)
        return sum(p for s, p in look if s in group)

    def _group(self, sku: str) -> set[str]:
        """``sku`` and its look-alikes."""
        return {sku, *self.catalog.lookalikes(sku)}

    def _look(self, obs: Observations, det: int) -> tuple[tuple[str, float], ...]:
        """Top-k SKUs of one detection: the softmax of its gallery similarities at the tracker's
        SKU temperature (the per-frame term of the track posterior). Computed once per detection
        and frame: the census and the look change both ask."""
        if det < 0 or obs.sku_similarity is None or not self.skus:
            return ()
        if self._look_memo[0] is not obs:
            self._look_memo = (obs, {})
        memo = self._look_memo[1]
        if det in memo:
            return memo[det]
        s = obs.sku_similarity[det].astype(np.float64) / self.cfg.tracker.sku_temperature
        look: tuple[tuple[str, float], ...] = ()
        if np.any(s):
            p = np.exp(s - s.max())
            p /= p.sum()
            top = np.argsort(-p, kind="stable")[: self.cfg.tracker.sku_top_k]
            look = tuple((self.skus[j], float(p[j])) for j in top if p[j] > 0)
        memo[det] = look
        return look

    def _update_floor(self, tracks: Any, depth: np.ndarray | None, frame: Frame) -> None:
        """Each matched item track's place on the normalised basket floor, from its box centre,
        its detection's depth and the camera intrinsics (needs [fusion] floor_half_mm): the
        frame of reference of the scale's centre of pressure (u left to right, v front (image
        bottom) to rear)."""
        half = self.cfg.fusion.floor_half_mm
        cam = frame.camera
        if not half or cam is None or depth is None:
            return
        for i, tid in enumerate(tracks.track_id.tolist()):
            det = int(tracks.det_index[i])
            if det < 0 or tracks.class_id[i] != ITEM_CLASS or not np.isfinite(depth[det]):
                continue
            x1, y1, x2, y2 = tracks.xyxy[i].tolist()
            d_mm = float(depth[det]) * 1000.0
            x_mm = (0.5 * (x1 + x2) - cam.cx) * d_mm / cam.fx
            y_mm = (0.5 * (y1 + y2) - cam.cy) * d_mm / cam.fy
            u = min(max((x_mm + half[0]) / (2 * half[0]), 0.0), 1.0)
            v = min(max((half[1] - y_mm) / (2 * half[1]), 0.0), 1.0)
            self._floor[tid] = (u, v)
            self.fusion.note_floor(tid, frame.t_ns, (u, v))   # kept for booked tracks only

    def _update_travel(self, tracks: Any) -> None:
        for tid, box in zip(tracks.track_id.tolist(), tracks.xyxy.tolist()):
            cx, cy = 0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3])
            first = self._first_centre.setdefault(tid, (cx, cy))
            diag = max(((box[2] - box[0]) ** 2 + (box[3] - box[1]) ** 2) ** 0.5, 1.0)
            moved = ((cx - first[0]) ** 2 + (cy - first[1]) ** 2) ** 0.5 / diag
            self._travel[tid] = max(self._travel.get(tid, 0.0), moved)

    def _record(self, frame: Frame, tracks: Any) -> None:
        keep = tracks.class_id == ITEM_CLASS
        rec = FrameTracks(np.asarray(tracks.track_id[keep], np.int64), np.asarray(tracks.xyxy[keep], np.float32))
        if frame.objects is not None:
            objs = [o for o in frame.objects if not _is_hand(o) and float(o.get("visible", 1.0)) >= _ORACLE_MIN_VISIBLE]
            rec.gt_ids = np.array([int(o["id"]) for o in objs], np.int64)
            rec.gt_xyxy = np.array([o["xyxy"] for o in objs], np.float32).reshape(len(objs), 4)
        self.tracks.append(rec)

    # -- scale -------------------------------------------------------------------------------

    def _scale(self, line: ScaleLine) -> list[Event]:
        t0 = time.perf_counter()
        out: list[Event] = []
        for s in self.decoder.feed(line.data):
            cells = (np.asarray(s.raw, np.float64) - self._offsets) * self._gains
            out += self._sample(self.clock.map(s.t_ms, line.t_ns), cells.tolist(), s.flags)
        self.stats.stage_s["scale"] += time.perf_counter() - t0
        self.stats.events += len(out)
        return out

    def feed_sample(self, sample: Any) -> list[Event]:
        """One calibrated sample from a live :class:`~caper_edge.scale.ScaleReader` (decoded,
        clock-mapped and calibrated on the reader's thread): weight events, then fusion."""
        t0 = time.perf_counter()
        out = self._sample(int(sample.t_ns), list(sample.cells), sample.flags)
        self.stats.stage_s["scale"] += time.perf_counter() - t0
        self.stats.events += len(out)
        return out

    def _sample(self, t: int, cells: list[float], flags: int) -> list[Event]:
        """One calibrated sample at host time ``t``: weight events, fusion, its clock."""
        t = max(t, self._last_scale_t + 1)  # the detector needs strictly increasing times
        self._last_scale_t = t
        self.stats.scale_samples += 1
        out: list[Event] = []
        for w in self.weights.push_cells(t, cells, flags):
            self.stats.weight_events += 1
            if w.kind == "settled":
                self.last_weight_g = w.level_g
            out += self.fusion.on_weight(w)
        if self._resume_weight_g is not None:
            out += self._check_resume(t)
        return out + self.fusion.tick(t)

    def _check_resume(self, t_ns: int) -> list[Event]:
        """Once the weight detector has its first baseline after a restart: a difference from
        the journaled weight beyond ``fusion.resume_tolerance_g`` happened while the service was
        down; fusion decides it as a settled change that no camera saw."""
        if self.weights.state == "bootstrap":
            return []
        from .fusion import WeightChange

        journaled, self._resume_weight_g = self._resume_weight_g, None
        level = float(self.weights.baseline_g)
        self.last_weight_g = level
        delta = level - journaled
        self.resume_delta_g = delta
        if abs(delta) < self.cfg.fusion.resume_tolerance_g:
            return []
        sigma = max(float(self.weights.noise_estimate_g), self.cfg.fusion.scale_noise_g)
        self.stats.weight_events += 1
        return self.fusion.on_weight(WeightChange("settled", t_ns, t_ns, t_ns, delta, sigma))


def run_messages(pipeline: Pipeline, messages: Iterable[Any], on_event: Callable[[Event], None],
                 on_message: Callable[[Any], None] | None = None) -> None:
    """Feed every message, then finish; ``on_event`` gets each draft event in decision order."""
    for msg in messages:
        if on_message is not None:
            on_message(msg)
        for ev in pipeline.feed(msg):
            on_event(ev)
    for ev in pipeline.finish():
        on_event(ev)

