"""The simulator as a live source: frames rendered on the fly, no bag written."""

from __future__ import annotations

import json
from collections.abc import Iterator

from ..sim.simulator import Simulator
from .messages import Frame, GroundTruthEvent, Message, ScaleLine, SourceStats
from .pacing import Pacer, parse_speed

__all__ = ["SimulatorSource"]


class SimulatorSource:
    """Frames, scale lines and ground-truth events of a simulated session, in time order.

    Parameters
    ----------
    scenario, seed, duration_s:
        See :class:`caper_edge.sim.Simulator`.
    speed:
        ``"max"`` (render as fast as consumed; deterministic), ``"realtime"`` or a factor.
    ground_truth:
        Include :class:`GroundTruthEvent` messages and per-frame objects.
    **options:
        Passed to :class:`~caper_edge.sim.Simulator` (fps, depth_every, noise_sigma, calibration).
    """

    def __init__(self, scenario: str = "simple", seed: int = 0, duration_s: float | None = None, *,
                 speed: str | float | None = "max", ground_truth: bool = True, **options):
        self.sim = Simulator(scenario, seed, duration_s, **options)
        self.speed = parse_speed(speed)
        self.ground_truth = ground_truth
        self.camera = self.sim.camera
        from ..sim import catalog_json

        self.catalog = json.loads(catalog_json())   # the parsed /catalog document, as BagSource gives it
        self.stats = SourceStats()
        self._closed = False

    def __iter__(self) -> Iterator[Message]:
        pacer = Pacer(self.speed)
        last_depth_t = None
        for msg in self.sim.messages():
            if self._closed:
                return
            if isinstance(msg, Frame):
                self.stats.frames += 1
                if msg.depth_t_ns != last_depth_t:
                    self.stats.depth_frames += 1
                    self.stats.depth_frames_used += 1
                    last_depth_t = msg.depth_t_ns
                if not self.ground_truth:
                    msg.objects = None
            elif isinstance(msg, ScaleLine):
                self.stats.scale_lines += 1
            elif isinstance(msg, GroundTruthEvent):
                if not self.ground_truth:
                    continue
                self.stats.ground_truth_events += 1
            pacer.wait(msg.t_ns)
            yield msg

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> SimulatorSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
