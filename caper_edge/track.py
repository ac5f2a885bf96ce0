"""Basket tracking: optimal assignment, a Kalman box filter and the basket tracker.

The work happens in C++ (``caper_edge._core``); this module converts and validates inputs,
wraps results in :class:`Tracks`, and builds the tracker from configuration.

* :func:`linear_assignment` -- LAPJV for dense rectangular costs, ``inf`` = forbidden pair,
  optional ``cost_limit`` with ``lap.lapjv(extend_cost=True)`` semantics.
* :class:`KalmanBoxFilter` -- constant-velocity filter on (cx, cy, w, h), size-scaled noise.
* :class:`Tracker` -- ByteTrack's two-stage association plus appearance, rest-aware lifetimes,
  basket zones with hysteresis and a per-track SKU posterior (docs/tracker.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _core
from .config import Config, TrackerConfig, default_table, from_table
from .errors import ConfigError

__all__ = [
    "EXPIRED_IN_BASKET",
    "ENTERED_BASKET",
    "LEFT_BASKET",
    "LOST",
    "STATE_NAMES",
    "TENTATIVE",
    "TRACKED",
    "ZONE_ENTERING",
    "ZONE_INSIDE",
    "ZONE_LEAVING",
    "ZONE_NAMES",
    "ZONE_OUTSIDE",
    "KalmanBoxFilter",
    "Tracker",
    "Tracks",
    "ZoneTransition",
    "linear_assignment",
]

linear_assignment = _core.linear_assignment
KalmanBoxFilter = _core.KalmanBoxFilter

# Track states (Tracks.state)
TENTATIVE, TRACKED, LOST = 0, 1, 2
STATE_NAMES = ("tentative", "tracked", "lost")
# Basket zones (Tracks.zone)
ZONE_OUTSIDE, ZONE_ENTERING, ZONE_INSIDE, ZONE_LEAVING = 0, 1, 2, 3
ZONE_NAMES = ("outside", "entering", "inside", "leaving")
# Zone transition kinds (ZoneTransition.kind)
ENTERED_BASKET = "entered_basket"
LEFT_BASKET = "left_basket"
EXPIRED_IN_BASKET = "expired_in_basket"
_TRANSITION_KINDS = (ENTERED_BASKET, LEFT_BASKET, EXPIRED_IN_BASKET)


@dataclass(frozen=True)
class ZoneTransition:
    """A committed basket-zone change of one track.

    ``t_ns`` is the first observation in the new zone (when the item crossed); ``decided_t_ns``
    the observation at which the hysteresis committed. For ``expired_in_basket`` (a track
    removed while in the basket) ``t_ns`` is the track's last observation and ``decided_t_ns``
    the removal time.
    """

    kind: str
    track_id: int
    class_id: int
    t_ns: int
    decided_t_ns: int


class Tracks:
    """Parallel arrays, one row per track (``len(tracks)`` rows).

    Attributes
    ----------
    track_id : (k,) int64          IDs, >= 1, stable over the track's life.
    xyxy : (k, 4) float32          Kalman box x1, y1, x2, y2 in pixels.
    score : (k,) float32           score of the last matched detection.
    class_id : (k,) int32
    state : (k,) uint8             TENTATIVE, TRACKED or LOST.
    zone : (k,) uint8              ZONE_OUTSIDE, ZONE_ENTERING, ZONE_INSIDE or ZONE_LEAVING.
    at_rest : (k,) bool            slow for at least rest_min_duration_s.
    det_index : (k,) int32         row of this frame's detection input, -1 when not matched.
    sku_ids : (k, top_k) int32     most probable SKU columns, -1 when no evidence.
    sku_prob : (k, top_k) float32  their posterior probabilities.
    t_first_ns, t_last_ns : (k,) int64  first and last matched frame times.
    transitions : list[ZoneTransition]  decided in this update (empty for all_tracks()).
    """

    __slots__ = ("track_id", "xyxy", "score", "class_id", "state", "zone", "at_rest", "det_index",
                 "sku_ids", "sku_prob", "t_first_ns", "t_last_ns", "transitions")

    def __init__(self, columns: tuple, transitions: list[ZoneTransition] | None = None) -> None:
        (self.track_id, self.xyxy, self.score, self.class_id, self.state, self.zone, self.at_rest,
         self.det_index, self.sku_ids, self.sku_prob, self.t_first_ns, self.t_last_ns) = columns
        self.transitions = transitions if transitions is not None else []

    def __len__(self) -> int:
        return len(self.track_id)

    def __repr__(self) -> str:
        return f"Tracks(n={len(self)}, track_id={self.track_id.tolist()}, transitions={self.transitions})"


def _as_array(value: Any, dtype: type, name: str) -> np.ndarray:
    try:
        return np.ascontiguousarray(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be convertible to a {np.dtype(dtype).name} array, got {type(value).__name__}: {exc}") from None


def _params_from(cfg: TrackerConfig) -> _core.TrackerParams:
    p = _core.TrackerParams()
    for field in dataclasses.fields(cfg):
        value = getattr(cfg, field.name)
        if field.name == "basket_polygon":
            p.basket_polygon = [float(c) for vertex in value for c in vertex]
        elif field.name == "basket_depth_range_m":
            p.basket_depth_min_m, p.basket_depth_max_m = value
        else:
            setattr(p, field.name, value)
    return p


def _plain(value: Any) -> Any:
    """Tuples and arrays to lists, as TOML would give them to the config checker."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


class Tracker:
    """The basket tracker.

    ``Tracker(**params)`` starts from default.toml's ``[tracker]`` section and overrides the
    given keys; ``Tracker(config)`` or :meth:`from_config` takes a whole
    :class:`~caper_edge.config.TrackerConfig`. Every parameter and its trade-off is documented
    on TrackerConfig and in docs/tracker.md. Bad parameters raise ConfigError (a ValueError)
    naming the key, the value and what was expected.

    Not thread-safe for concurrent updates from several threads (calls are serialised by a lock).
    """

    def __init__(self, config: TrackerConfig | None = None, **params: Any) -> None:
        if config is None:
            table = dict(default_table()["tracker"])
            for key, value in params.items():
                if key not in table:
                    known = ", ".join(sorted(table))
                    raise ConfigError(f"unknown tracker parameter {key!r} (known: {known})")
                table[key] = _plain(value)
            config = from_table(TrackerConfig, table, prefix="tracker.")
        elif params:
            config = dataclasses.replace(config, **params)
        if not isinstance(config, TrackerConfig):
            raise ConfigError(f"config must be a TrackerConfig, got {type(config).__name__}")
        self.config = config
        try:
            self._core = _core.Tracker(_params_from(config))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    @classmethod
    def from_config(cls, cfg: Config | TrackerConfig) -> Tracker:
        """Tracker from a loaded :class:`~caper_edge.config.Config` (its ``tracker`` section) or a
        :class:`~caper_edge.config.TrackerConfig`."""
        return cls(cfg.tracker if isinstance(cfg, Config) else cfg)

    def update(
        self,
        xyxy: Any,
        score: Any,
        class_id: Any,
        embedding: Any = None,
        depth_m: Any = None,
        t_ns: int | None = None,
        sku_similarity: Any = None,
    ) -> Tracks:
        """Process one frame of detections; returns the confirmed tracks matched in it.

        Parameters
        ----------
        xyxy : (n, 4) boxes x1, y1, x2, y2 in pixels (finite; x2 >= x1, y2 >= y1).
        score : (n,) detection scores in [0, 1].
        class_id : (n,) integer classes (the packaged detector: 0 item, 1 hand).
        embedding : (n, D) appearance vectors, any scale (normalised inside), or None.
            D is fixed by the first frame that has embeddings.
        depth_m : (n,) depth of each detection in metres (NaN: unknown), or None.
        t_ns : frame time in int64 nanoseconds, strictly increasing; None: previous + frame_period_s.
        sku_similarity : (n, S) gallery similarities per detection (e.g. cosine), or None.

        Inputs that are already C-contiguous float32 (int32 for class_id) are read in place.
        Raises ValueError naming the input, the row and the value on malformed input; the
        tracker is left unchanged then.
        """
        xyxy = _as_array(xyxy, np.float32, "xyxy")
        if xyxy.size == 0 and xyxy.ndim != 2:
            xyxy = xyxy.reshape(0, 4)
        score = _as_array(score, np.float32, "score")
        class_id = _as_array(class_id, np.int32, "class_id")
        if embedding is not None:
            embedding = _as_array(embedding, np.float32, "embedding")
        if depth_m is not None:
            depth_m = _as_array(depth_m, np.float32, "depth_m")
        if sku_similarity is not None:
            sku_similarity = _as_array(sku_similarity, np.float32, "sku_similarity")
        if t_ns is not None:
            t_ns = int(t_ns)
        columns, raw = self._core.update(xyxy, score, class_id, embedding, depth_m, t_ns, sku_similarity)
        transitions = [ZoneTransition(_TRANSITION_KINDS[k], tid, cid, t, d) for k, tid, cid, t, d in raw] if raw else []
        return Tracks(columns, transitions)

    def all_tracks(self, include_tentative: bool = False) -> Tracks:
        """Every live confirmed track, tracked and lost (tentative ones too if asked)."""
        return Tracks(self._core.all_tracks(include_tentative))

    def reset(self) -> None:
        """Forget every track; IDs start again at 1."""
        self._core.reset()

    @property
    def frame_count(self) -> int:
        """Frames processed since creation or the last reset()."""
        return self._core.frame_count
