"""Tracking evaluation: generated cart sequences with ground truth, metrics (HOTA, IDF1, MOTA,
ID switches via roboflow ``trackers.eval``) and a side-by-side runner for our tracker and the
roboflow ``trackers`` peers. ``python -m benchmarks.track_eval`` prints the comparison table.

``trackers`` and ``supervision`` are test/benchmark dependencies (``pip install caper-edge[test]``);
only :mod:`.sequences` works without them.
"""

from .sequences import Frame, GroundTruthEvent, Occlusion, SceneConfig, Sequence, generate_sequence, generate_suite

__all__ = ["Frame", "GroundTruthEvent", "Occlusion", "SceneConfig", "Sequence", "generate_sequence", "generate_suite"]
