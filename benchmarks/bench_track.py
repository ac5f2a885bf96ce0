"""Tracking: linear_assignment against scipy and lap, Tracker.update against roboflow `trackers`.

* linear_assignment, called from Python on uniform random square matrices (10, 50, 200), against
  scipy.optimize.linear_sum_assignment and lap.lapjv; plus the cost-limited form against
  lap.lapjv(extend_cost=True, cost_limit=...). Each call takes the next of 32 pre-made matrices,
  the same sequence for both sides.
* Tracker.update with 50 moving objects per frame (jittered boxes, 3 % missed detections)
  against trackers.ByteTrackTracker and trackers.OCSORTTracker on the same frames. The peers get
  pre-built supervision.Detections (their construction is not timed: the most favourable
  reading for them). A second case gives ours 128-d embeddings as well (appearance on).
Quality (HOTA, IDF1, ...) is in `python -m benchmarks.track_eval`.
"""

from __future__ import annotations

import itertools

import numpy as np

from caper_edge.track import Tracker, linear_assignment

from .harness import Case


def _cycler(items: list):
    it = itertools.cycle(items)
    return lambda: next(it)


def assignment_cases(quick: bool) -> list[Case]:
    import lap
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(7)
    cases = []
    for n in (10, 50, 200):
        mats = [rng.random((n, n)) for _ in range(32)]
        ours, scipy_next, lap_next = _cycler(mats), _cycler(mats), _cycler(mats)
        cases.append(Case("track", f"linear_assignment {n}x{n}", lambda o=ours: linear_assignment(o()),
                          lambda s=scipy_next: linear_sum_assignment(s()), "scipy linear_sum_assignment",
                          items=n, item_unit="rows"))
        cases.append(Case("track", f"linear_assignment {n}x{n} (vs lap)", lambda o=_cycler(mats): linear_assignment(o()),
                          lambda s=lap_next: lap.lapjv(s()), "lap.lapjv", items=n, item_unit="rows"))
        if n <= 50:
            limit = 0.05 if n == 50 else 0.2  # about half the rows stay unassigned
            cases.append(Case(
                "track", f"linear_assignment {n}x{n} cost_limit", lambda o=_cycler(mats), L=limit: linear_assignment(o(), L),
                lambda s=_cycler(mats), L=limit: lap.lapjv(s(), extend_cost=True, cost_limit=L),
                "lap.lapjv extend_cost", items=n, item_unit="rows"))
    return cases


def moving_objects(n_objects: int, n_frames: int, seed: int = 3, dim: int = 0):
    """Frames of `n_objects` boxes drifting across a 1280x720 image, bouncing off its edges."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform([0, 0], [1200, 660], (n_objects, 2))
    vel = rng.normal(0, 3, (n_objects, 2))
    size = rng.uniform(30, 80, (n_objects, 2))
    looks = rng.normal(size=(n_objects, max(dim, 1)))
    frames = []
    for _ in range(n_frames):
        pos += vel
        bounce = (pos < 0) | (pos > [1200, 660])
        vel[bounce] *= -1
        keep = rng.random(n_objects) > 0.03
        centre = pos[keep] + rng.normal(0, 1.0, (keep.sum(), 2))
        xyxy = np.hstack([centre - size[keep] / 2, centre + size[keep] / 2]).astype(np.float32)
        score = rng.uniform(0.5, 0.95, keep.sum()).astype(np.float32)
        cls = np.zeros(keep.sum(), np.int32)
        emb = (looks[keep] + 0.3 * rng.normal(size=looks[keep].shape)).astype(np.float32) if dim else None
        frames.append((xyxy, score, cls, emb))
    return frames


def tracker_cases(quick: bool) -> list[Case]:
    import supervision as sv
    import trackers

    frames = moving_objects(50, 600 if quick else 3000)
    dets = [sv.Detections(xyxy=x.astype(np.float64), confidence=s.astype(np.float64), class_id=c.astype(int))
            for x, s, c, _ in frames]
    emb_frames = moving_objects(50, 600 if quick else 3000, dim=128)

    def ours_step(frames_list, **kwargs):
        tracker = Tracker(basket_polygon=[], **kwargs)
        it = itertools.cycle(frames_list)

        def step():
            x, s, c, e = next(it)
            return tracker.update(x, s, c, embedding=e)

        return step

    def peer_step(cls):
        tracker = cls()
        it = itertools.cycle(dets)
        return lambda: tracker.update(next(it))

    return [
        Case("track", "Tracker.update 50 objects", ours_step(frames), peer_step(trackers.ByteTrackTracker),
             "trackers.ByteTrackTracker", items=50, item_unit="objects"),
        Case("track", "Tracker.update 50 objects (vs OC-SORT)", ours_step(frames), peer_step(trackers.OCSORTTracker),
             "trackers.OCSORTTracker", items=50, item_unit="objects"),
        Case("track", "Tracker.update 50 objects + 128-d embeddings", ours_step(emb_frames),
             peer_step(trackers.ByteTrackTracker), "trackers.ByteTrackTracker (no appearance)",
             items=50, item_unit="objects",
             notes="ours also fuses appearance (cosine distance, EMA embeddings); the peer does not"),
    ]


def cases(quick: bool) -> list[Case]:
    return assignment_cases(quick) + tracker_cases(quick)
