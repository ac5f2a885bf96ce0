"""Seeded generator of cart tracking sequences: detections and ground truth, no images.

A top-down camera looks into the basket (default 640x480, basket opening = the tracker's
default polygon). Scripted episodes drive the scene:

* **add**: a hand (class 1) carries an item (class 0) in from an image edge, lowers it into the
  basket (depth goes from hand height to basket depth) and leaves; the item then rests.
* **cross**: two adds at once from opposite edges whose paths cross mid-image.
* **rummage**: a hand moves over a resting item and covers it for 10-90 frames (the item is not
  detected), sometimes nudging it a few pixels, then leaves.
* **remove**: a hand covers a resting item, lifts it and carries it out of the image.

Detections are derived from the true boxes: an item's visible fraction (hands and carried items
lie above it) decides whether it is missed (< 35 % visible), detected with a low score
(35-70 %) or a normal one; boxes are jittered, a few detections are dropped at random, and false
positives appear. Each SKU has a unit prototype embedding; detections carry the prototype plus
noise (more when occluded), and some SKU pairs are lookalikes (prototypes ~0.9 cosine apart).
``sku_similarity`` is the detections' cosine similarity to the gallery of prototypes.

Ground truth lists the objects at least 35 % visible in each frame (what a detector could see);
heavily occluded objects are absent from it, as they are from every tracker's output.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Frame", "GroundTruthEvent", "Occlusion", "SceneConfig", "Sequence", "generate_sequence", "generate_suite"]

ITEM, HAND = 0, 1


@dataclass(frozen=True)
class SceneConfig:
    """Knobs of the generated scene (pixels, seconds, metres)."""

    width: int = 640
    height: int = 480
    fps: float = 30.0
    n_frames: int = 900
    n_skus: int = 24
    embedding_dim: int = 64
    lookalike_pairs: int = 4
    lookalike_noise: float = 0.45          # prototype offset of a lookalike (cosine ~0.9)
    basket_polygon: tuple[tuple[float, float], ...] = ((48.0, 36.0), (592.0, 36.0), (592.0, 444.0), (48.0, 444.0))
    basket_depth_m: tuple[float, float] = (0.45, 0.72)   # resting items
    hand_depth_m: tuple[float, float] = (0.12, 0.22)     # items in a hand, above the rim
    item_size_px: tuple[float, float] = (42.0, 100.0)
    hand_size_px: tuple[float, float] = (88.0, 112.0)
    hand_speed_px_s: tuple[float, float] = (260.0, 520.0)
    max_items_in_basket: int = 7
    occlusion_frames: tuple[int, int] = (10, 90)
    nudge_px: float = 14.0                 # largest displacement of a rummaged item
    box_jitter: float = 0.02               # std of box edges, fraction of the box size
    miss_prob: float = 0.04                # random missed detections (visible objects)
    false_positives_per_frame: float = 0.12
    embedding_noise: float = 0.32          # std of the embedding noise (total, over all dims)
    occluded_visibility: float = 0.35      # below: missed and absent from ground truth
    partial_visibility: float = 0.70       # below: a low-score detection


@dataclass
class Frame:
    """One frame: detections (tracker input) and ground truth (evaluation)."""

    t_ns: int
    xyxy: np.ndarray            # (n, 4) float32
    score: np.ndarray           # (n,) float32
    class_id: np.ndarray        # (n,) int32
    embedding: np.ndarray       # (n, D) float32
    depth_m: np.ndarray         # (n,) float32
    sku_similarity: np.ndarray  # (n, S) float32
    det_gt_id: np.ndarray       # (n,) int64: the ground-truth object behind each detection, -1 = false positive
    gt_id: np.ndarray           # (m,) int64
    gt_xyxy: np.ndarray         # (m, 4) float32
    gt_class: np.ndarray        # (m,) int32
    gt_in_basket: np.ndarray    # (m,) bool


@dataclass(frozen=True)
class GroundTruthEvent:
    """entered_basket: the item comes to rest in the basket; left_basket: it is lifted out."""

    kind: str       # "entered_basket" or "left_basket"
    gt_id: int
    sku: int
    t_ns: int


@dataclass(frozen=True)
class Occlusion:
    """A resting item hidden by a hand: not detectable on frames [first, last]."""

    gt_id: int
    first: int
    last: int


@dataclass
class Sequence:
    name: str
    config: SceneConfig
    frames: list[Frame]
    gallery: np.ndarray                     # (S, D) float32 unit SKU prototypes
    sku_of: dict[int, int]                  # ground-truth item id -> SKU
    lookalikes: list[tuple[int, int]]
    events: list[GroundTruthEvent] = field(default_factory=list)
    occlusions: list[Occlusion] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Scene objects: piecewise-linear keyframe tracks
# ---------------------------------------------------------------------------------------------


@dataclass
class _Object:
    gt_id: int
    cls: int
    w: float
    h: float
    sku: int = -1
    keys: list[tuple[int, float, float, float]] = field(default_factory=list)  # frame, cx, cy, depth
    resting_from: list[tuple[int, int]] = field(default_factory=list)          # [start, end) frames at rest
    persist: bool = False  # stays at its last keyframe (an item in the basket) until removed

    def add_key(self, frame: int, cx: float, cy: float, depth: float) -> None:
        if self.keys and frame <= self.keys[-1][0]:
            frame = self.keys[-1][0] + 1
        self.keys.append((frame, cx, cy, depth))

    @property
    def first(self) -> int:
        return self.keys[0][0]

    @property
    def last(self) -> int:
        return self.keys[-1][0]

    def state(self, frame: int) -> tuple[float, float, float] | None:
        if not self.keys or frame < self.first or (frame > self.last and not self.persist):
            return None
        frames = [k[0] for k in self.keys]
        j = int(np.searchsorted(frames, frame, side="right")) - 1
        if j >= len(self.keys) - 1:
            return self.keys[-1][1:]
        (f0, *a), (f1, *b) = self.keys[j], self.keys[j + 1]
        u = (frame - f0) / (f1 - f0)
        return tuple(float(x + (y - x) * u) for x, y in zip(a, b))  # type: ignore[return-value]

    def at_rest(self, frame: int) -> bool:
        return any(s <= frame < e for s, e in self.resting_from)


class _Scene:
    def __init__(self, cfg: SceneConfig, rng: np.random.Generator) -> None:
        self.cfg = cfg
        self.rng = rng
        self.objects: list[_Object] = []
        self.next_id = 1
        self.events: list[tuple[str, int, int]] = []   # kind, gt_id, frame
        self.occlusions: list[Occlusion] = []
        poly = np.asarray(cfg.basket_polygon)
        self.inner = (poly[:, 0].min() + 20, poly[:, 1].min() + 20, poly[:, 0].max() - 20, poly[:, 1].max() - 20)

    # -- helpers -------------------------------------------------------------------------------
    def new(self, cls: int, w: float, h: float, sku: int = -1) -> _Object:
        obj = _Object(self.next_id, cls, w, h, sku)
        self.next_id += 1
        self.objects.append(obj)
        return obj

    def edge_point(self, side: int | None = None) -> tuple[float, float]:
        """A point just outside the image border (the hand enters from there)."""
        c, r = self.cfg, self.rng
        side = int(r.integers(4)) if side is None else side
        if side == 0:
            return -40.0, float(r.uniform(60, c.height - 60))
        if side == 1:
            return c.width + 40.0, float(r.uniform(60, c.height - 60))
        if side == 2:
            return float(r.uniform(80, c.width - 80)), -40.0
        return float(r.uniform(80, c.width - 80)), c.height + 40.0

    def travel_frames(self, a: tuple[float, float], b: tuple[float, float]) -> int:
        speed = self.rng.uniform(*self.cfg.hand_speed_px_s)
        return max(4, int(np.hypot(b[0] - a[0], b[1] - a[1]) / speed * self.cfg.fps))

    def rest_position(self, w: float, h: float, resting: list[_Object], frame: int) -> tuple[float, float] | None:
        x0, y0, x1, y1 = self.inner
        for _ in range(200):
            cx = self.rng.uniform(x0 + w / 2, x1 - w / 2)
            cy = self.rng.uniform(y0 + h / 2, y1 - h / 2)
            ok = True
            for o in resting:
                s = o.state(frame)
                if s is None:
                    continue
                if abs(s[0] - cx) < (o.w + w) / 2 + 6 and abs(s[1] - cy) < (o.h + h) / 2 + 6:
                    ok = False
                    break
            if ok:
                return cx, cy
        return None

    def hand(self) -> _Object:
        return self.new(HAND, self.rng.uniform(*self.cfg.hand_size_px), self.rng.uniform(*self.cfg.hand_size_px))

    # -- episodes ------------------------------------------------------------------------------
    def add(self, start: int, sku: int, resting: list[_Object], side: int | None = None,
            target: tuple[float, float] | None = None,
            size: tuple[float, float] | None = None) -> tuple[_Object, int] | None:
        """Hand carries a new item in and leaves; returns (item, frame the hand is gone)."""
        c, r = self.cfg, self.rng
        w, h = size or (r.uniform(*c.item_size_px), r.uniform(*c.item_size_px))
        rest = target or self.rest_position(w, h, resting, start + 200)
        if rest is None:
            return None
        item, hand = self.new(ITEM, w, h, sku), self.hand()
        entry = self.edge_point(side)
        grip = self.grip(item, hand)
        held = float(r.uniform(*c.hand_depth_m))
        rest_depth = float(r.uniform(*c.basket_depth_m))
        f = start
        t1 = self.travel_frames(entry, rest)
        mid = ((entry[0] + rest[0]) / 2 + r.normal(0, 40), (entry[1] + rest[1]) / 2 + r.normal(0, 40))
        item.add_key(f, *entry, held)
        item.add_key(f + t1 // 2, *mid, held)
        item.add_key(f + t1, *rest, held)
        for obj, off in ((hand, grip),):
            obj.add_key(f, entry[0] + off[0], entry[1] + off[1], held - 0.05)
            obj.add_key(f + t1 // 2, mid[0] + off[0], mid[1] + off[1], held - 0.05)
            obj.add_key(f + t1, rest[0] + off[0], rest[1] + off[1], held - 0.05)
        f += t1
        lower = int(r.integers(6, 11))
        item.add_key(f + lower, *rest, rest_depth)
        hand.add_key(f + lower, rest[0] + grip[0], rest[1] + grip[1], rest_depth - 0.08)
        f += lower
        item.resting_from.append((f, 10**9))
        item.persist = True
        self.events.append(("entered_basket", item.gt_id, f))
        exit_ = self.edge_point()
        t2 = self.travel_frames(rest, exit_)
        hand.add_key(f + t2, *exit_, held - 0.05)
        return item, f + t2

    def rummage(self, start: int, item: _Object) -> int:
        """Hand covers a resting item for 10-90 frames, maybe nudges it; returns the end frame."""
        c, r = self.cfg, self.rng
        s = item.state(start)
        assert s is not None
        hand = self.hand()
        entry = self.edge_point()
        t1 = self.travel_frames(entry, s[:2])
        depth = s[2] - 0.15
        hand.add_key(start, *entry, depth)
        hand.add_key(start + t1, s[0], s[1], depth)
        hover = int(r.integers(c.occlusion_frames[0], c.occlusion_frames[1] + 1))
        f = start + t1
        # Hands are smaller than the largest items: grow this hand so it really hides the item.
        hand.w, hand.h = max(hand.w, item.w * 1.15), max(hand.h, item.h * 1.15)
        hand.add_key(f + hover, s[0], s[1], depth)
        if r.random() < 0.5:
            dx, dy = r.uniform(-c.nudge_px, c.nudge_px, 2)
            mid = f + hover // 2
            self._hold(item, mid)
            item.add_key(mid + 3, s[0] + dx, s[1] + dy, s[2])
        exit_ = self.edge_point()
        t2 = self.travel_frames(s[:2], exit_)
        hand.add_key(f + hover + t2, *exit_, depth)
        return f + hover + t2

    def remove(self, start: int, item: _Object) -> int:
        """Hand covers a resting item, lifts it and carries it out; returns the end frame."""
        c, r = self.cfg, self.rng
        s = item.state(start)
        assert s is not None
        hand = self.hand()
        entry = self.edge_point()
        t1 = self.travel_frames(entry, s[:2])
        grip = self.grip(item, hand)
        held = float(r.uniform(*c.hand_depth_m))
        hand.add_key(start, *entry, held - 0.05)
        hand.add_key(start + t1, s[0] + grip[0], s[1] + grip[1], s[2] - 0.08)
        f = start + t1
        grab = int(r.integers(5, 20))
        self._hold(item, f + grab)
        hand.add_key(f + grab, s[0] + grip[0], s[1] + grip[1], s[2] - 0.08)
        f += grab
        item.resting_from[-1] = (item.resting_from[-1][0], f)
        item.persist = False
        lift = int(r.integers(6, 11))
        # The item leaves the basket when it is lifted (the scale sees it then), not when it
        # crosses the rim's outline in the image.
        self.events.append(("left_basket", item.gt_id, f))
        item.add_key(f + lift, s[0], s[1], held)
        hand.add_key(f + lift, s[0] + grip[0], s[1] + grip[1], held - 0.05)
        f += lift
        exit_ = self.edge_point()
        t2 = self.travel_frames(s[:2], exit_)
        item.add_key(f + t2, *exit_, held)
        hand.add_key(f + t2, exit_[0] + grip[0], exit_[1] + grip[1], held - 0.05)
        return f + t2

    def _hold(self, item: _Object, frame: int) -> None:
        """Pin a resting item's current position as a keyframe at `frame`."""
        s = item.state(frame)
        assert s is not None
        if item.keys[-1][0] < frame:
            item.add_key(frame, *s)

    @staticmethod
    def grip(item: _Object, hand: _Object) -> tuple[float, float]:
        """Offset of the hand's centre from the item's: the hand holds the item's top edge,
        covering about a sixth of it."""
        return 0.0, -(item.h / 2 + hand.h / 2) + 0.15 * item.h


# ---------------------------------------------------------------------------------------------
# Script and rendering
# ---------------------------------------------------------------------------------------------


def _catalog(cfg: SceneConfig, rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[int, int]]]:
    protos = rng.normal(size=(cfg.n_skus, cfg.embedding_dim))
    pairs = []
    for k in range(min(cfg.lookalike_pairs, cfg.n_skus // 2)):
        a, b = 2 * k, 2 * k + 1
        protos[b] = protos[a] / np.linalg.norm(protos[a]) + cfg.lookalike_noise * rng.normal(size=cfg.embedding_dim) / np.sqrt(cfg.embedding_dim)
        pairs.append((a, b))
    protos /= np.linalg.norm(protos, axis=1, keepdims=True)
    return protos.astype(np.float32), pairs


def _script(scene: _Scene, n_skus: int, lookalikes: list[tuple[int, int]]) -> None:
    """Episodes until the sequence is full: adds (some crossing), rummages, removals."""
    cfg, r = scene.cfg, scene.rng
    resting: list[_Object] = []
    f = int(r.integers(5, 20))
    end = cfg.n_frames - 10
    while f < end - 30:
        choice = r.random()
        n_rest = len(resting)
        if n_rest < 2 or (choice < 0.35 and n_rest < cfg.max_items_in_basket):
            sku = int(r.integers(n_skus))
            if lookalikes and r.random() < 0.3:
                # A lookalike of something already in the basket: appearance alone cannot separate them.
                a, b = lookalikes[int(r.integers(len(lookalikes)))]
                sku = b if any(o.sku == a for o in resting) else a
            out = scene.add(f, sku, resting)
            if out is None:
                f += 10
                continue
            resting.append(out[0])
            f = out[1] - int(r.integers(0, 15))
        elif choice < 0.50 and n_rest < cfg.max_items_in_basket - 1:
            # Two hands at once from opposite sides; each item lands on the far side, so their
            # paths cross in the middle.
            sizes = [tuple(r.uniform(*cfg.item_size_px, 2)) for _ in range(2)]
            first = scene.rest_position(*sizes[0], resting, f + 200)
            placeholder = scene.new(ITEM, *sizes[0])  # keeps the second target off the first
            if first is not None:
                placeholder.add_key(f, *first, 0.5)
                placeholder.persist = True
            second = scene.rest_position(*sizes[1], resting + [placeholder], f + 200)
            scene.objects.remove(placeholder)
            if first is None or second is None:
                f += 10
                continue
            (left, w_left), (right, w_right) = sorted([(first, sizes[0]), (second, sizes[1])], key=lambda p: p[0][0])
            outs = [scene.add(f, int(r.integers(n_skus)), resting, side=1, target=left, size=w_left),
                    scene.add(f + int(r.integers(0, 6)), int(r.integers(n_skus)), resting, side=0, target=right,
                              size=w_right)]
            done = [o for o in outs if o is not None]
            resting.extend(o[0] for o in done)
            f = max(o[1] for o in done) - int(r.integers(0, 10)) if done else f + 10
        elif choice < 0.85:
            item = resting[int(r.integers(n_rest))]
            f_end = scene.rummage(f, item)
            hidden = [g for g in range(f, f_end + 1) if _visibility(scene, item, g) < cfg.occluded_visibility]
            if hidden:
                scene.occlusions.append(Occlusion(item.gt_id, hidden[0], hidden[-1]))
            f = f_end - int(r.integers(0, 10))
        else:
            item = resting.pop(int(r.integers(n_rest)))
            f = scene.remove(f, item) - int(r.integers(0, 10))


def _box(obj: _Object, s: tuple[float, float, float]) -> np.ndarray:
    return np.array([s[0] - obj.w / 2, s[1] - obj.h / 2, s[0] + obj.w / 2, s[1] + obj.h / 2])


def _covered_fraction(box: np.ndarray, covers: list[np.ndarray]) -> float:
    """Fraction of `box` under the union of `covers` (sampled on a 16x16 grid of cell centres)."""
    if not covers:
        return 0.0
    xs = box[0] + (np.arange(16) + 0.5) * (box[2] - box[0]) / 16
    ys = box[1] + (np.arange(16) + 0.5) * (box[3] - box[1]) / 16
    gx, gy = np.meshgrid(xs, ys)
    hidden = np.zeros_like(gx, dtype=bool)
    for c in covers:
        hidden |= (gx >= c[0]) & (gx <= c[2]) & (gy >= c[1]) & (gy <= c[3])
    return float(hidden.mean())


def _in_image(box: np.ndarray, cfg: SceneConfig) -> float:
    w = max(0.0, min(box[2], cfg.width) - max(box[0], 0.0))
    h = max(0.0, min(box[3], cfg.height) - max(box[1], 0.0))
    return w * h / max((box[2] - box[0]) * (box[3] - box[1]), 1e-9)


def _visibility(scene: _Scene, obj: _Object, frame: int) -> float:
    s = obj.state(frame)
    if s is None:
        return 0.0
    box = _box(obj, s)
    covers = []
    for o in scene.objects:
        if o is obj:
            continue
        so = o.state(frame)
        if so is None or so[2] >= s[2]:  # only things nearer the camera hide it
            continue
        covers.append(_box(o, so))
    return _in_image(box, scene.cfg) * (1.0 - _covered_fraction(box, covers))


def _clip(box: np.ndarray, cfg: SceneConfig) -> np.ndarray:
    return np.array([max(box[0], 0), max(box[1], 0), min(box[2], cfg.width - 1), min(box[3], cfg.height - 1)])


def _render(scene: _Scene, gallery: np.ndarray, hand_proto: np.ndarray) -> list[Frame]:
    cfg, r = scene.cfg, scene.rng
    poly = np.asarray(cfg.basket_polygon)
    x0, y0 = poly.min(axis=0)
    x1, y1 = poly.max(axis=0)
    D = cfg.embedding_dim
    frames = []
    for f in range(cfg.n_frames):
        det_boxes, det_scores, det_cls, det_emb, det_depth, det_gt = [], [], [], [], [], []
        gt_ids, gt_boxes, gt_cls, gt_in = [], [], [], []
        for o in scene.objects:
            s = o.state(f)
            if s is None:
                continue
            vis = _visibility(scene, o, f)
            if vis < cfg.occluded_visibility:
                continue
            true_box = _clip(_box(o, s), cfg)
            gt_ids.append(o.gt_id)
            gt_boxes.append(true_box)
            gt_cls.append(o.cls)
            in_basket = o.cls == ITEM and o.at_rest(f) and x0 <= s[0] <= x1 and y0 <= s[1] <= y1
            gt_in.append(in_basket)
            if r.random() < cfg.miss_prob:
                continue
            size = np.array([o.w, o.h, o.w, o.h])
            box = _clip(true_box + r.normal(0, cfg.box_jitter, 4) * size, cfg)
            if box[2] <= box[0] + 2 or box[3] <= box[1] + 2:
                continue
            score = r.uniform(0.65, 0.95) if vis >= cfg.partial_visibility else r.uniform(0.2, 0.55)
            proto = gallery[o.sku] if o.cls == ITEM else hand_proto
            noise = cfg.embedding_noise * (1.0 + 2.0 * (1.0 - vis))
            emb = proto + noise * r.normal(size=D) / np.sqrt(D)
            det_boxes.append(box)
            det_scores.append(score)
            det_cls.append(o.cls)
            det_emb.append(emb / np.linalg.norm(emb))
            det_depth.append(s[2] + r.normal(0, 0.01))
            det_gt.append(o.gt_id)
        for _ in range(r.poisson(cfg.false_positives_per_frame)):
            w, h = r.uniform(25, 90, 2)
            cx, cy = r.uniform(0, cfg.width), r.uniform(0, cfg.height)
            box = _clip(np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]), cfg)
            if box[2] <= box[0] + 2 or box[3] <= box[1] + 2:
                continue
            emb = r.normal(size=D)
            det_boxes.append(box)
            det_scores.append(r.uniform(0.3, 0.75))
            det_cls.append(ITEM if r.random() < 0.8 else HAND)
            det_emb.append(emb / np.linalg.norm(emb))
            det_depth.append(r.uniform(0.1, 0.8))
            det_gt.append(-1)
        n = len(det_boxes)
        emb_arr = np.asarray(det_emb, np.float32).reshape(n, D)
        frames.append(Frame(
            t_ns=int(round(f * 1e9 / cfg.fps)),
            xyxy=np.asarray(det_boxes, np.float32).reshape(n, 4),
            score=np.asarray(det_scores, np.float32),
            class_id=np.asarray(det_cls, np.int32),
            embedding=emb_arr,
            depth_m=np.asarray(det_depth, np.float32),
            sku_similarity=(emb_arr @ gallery.T).astype(np.float32),
            det_gt_id=np.asarray(det_gt, np.int64),
            gt_id=np.asarray(gt_ids, np.int64),
            gt_xyxy=np.asarray(gt_boxes, np.float32).reshape(-1, 4),
            gt_class=np.asarray(gt_cls, np.int32),
            gt_in_basket=np.asarray(gt_in, bool),
        ))
    return frames


def generate_sequence(seed: int, config: SceneConfig | None = None, name: str | None = None) -> Sequence:
    """One deterministic sequence: the same seed and config give identical frames."""
    cfg = config or SceneConfig()
    rng = np.random.default_rng(seed)
    gallery, lookalikes = _catalog(cfg, rng)
    hand_proto = rng.normal(size=cfg.embedding_dim)
    hand_proto /= np.linalg.norm(hand_proto)
    scene = _Scene(cfg, rng)
    _script(scene, cfg.n_skus, lookalikes)
    frames = _render(scene, gallery, hand_proto)
    sku_of = {o.gt_id: o.sku for o in scene.objects if o.cls == ITEM}
    events = [GroundTruthEvent(kind, gid, sku_of[gid], frames[min(fr, len(frames) - 1)].t_ns)
              for kind, gid, fr in sorted(scene.events, key=lambda e: e[2]) if fr < cfg.n_frames]
    occlusions = [o for o in scene.occlusions if o.last < cfg.n_frames - 1]
    return Sequence(name or f"cart-{seed:04d}", cfg, frames, gallery, sku_of, lookalikes, events, occlusions)


HARSH = {"miss_prob": 0.12, "false_positives_per_frame": 0.6, "embedding_noise": 0.6, "box_jitter": 0.04}
"""Scene overrides for a worse detector: 3x the misses, 5x the false positives, noisier embeddings
and boxes (`python -m benchmarks.track_eval --harsh`)."""


def generate_suite(n_sequences: int, seed: int = 0, n_frames: int = 900, config: SceneConfig | None = None) -> list[Sequence]:
    """`n_sequences` sequences with seeds seed, seed+1, ... (`config` defaults to SceneConfig())."""
    cfg = dataclasses.replace(config or SceneConfig(), n_frames=n_frames)
    return [generate_sequence(seed + k, cfg) for k in range(n_sequences)]
