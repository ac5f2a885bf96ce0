"""Vision-weight fusion: basket events from zone transitions and weight changes (docs/fusion.md).

* :class:`Fusion` -- the decision engine (:mod:`.engine`);
* :class:`VisionEvent`, :class:`WeightChange` -- its inputs (:mod:`.inputs`), with
  :func:`vision_events_from_tracks` for the tracker's output;
* :func:`explain` -- the scored explanations of one weight change (:mod:`.explain`).
"""

from __future__ import annotations

from .engine import MODES, Fusion, default_fusion_config
from .explain import Explanation, Option, PoolItem, explain
from .inputs import ENTERED, LEFT, VisionEvent, WeightChange, candidates_of, vision_events_from_tracks, weight_change

__all__ = [
    "ENTERED",
    "LEFT",
    "MODES",
    "Explanation",
    "Fusion",
    "Option",
    "PoolItem",
    "VisionEvent",
    "WeightChange",
    "candidates_of",
    "default_fusion_config",
    "explain",
    "vision_events_from_tracks",
    "weight_change",
]
