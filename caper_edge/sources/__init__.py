"""Frame sources with one interface: iterate to get :class:`Frame`, :class:`ScaleLine` and
:class:`GroundTruthEvent` messages in time order; ``stats`` counts what happened; ``close()``.

* :class:`BagSource` replays a bag (``speed`` realtime, max or a factor; ``loop``).
* :class:`SimulatorSource` renders a simulated cart on the fly, without writing a bag.
* :class:`RealSenseSource` reads a live RealSense camera (pyrealsense2 imported lazily).
* :class:`~caper_edge.sources.process.ProcessSource` runs any of them in a child process.
* :class:`Recorder` writes what a source yields to MCAP bags with size or time rotation.
"""

from __future__ import annotations

from typing import Protocol

from .bag import BagSource
from .pacing import parse_speed
from .messages import CameraInfo, Frame, GroundTruthEvent, Message, ScaleLine, SourceStats
from .pairing import DepthPairer
from .recorder import Recorder

__all__ = [
    "BagSource",
    "CameraInfo",
    "DepthPairer",
    "Frame",
    "GroundTruthEvent",
    "Message",
    "RealSenseSource",
    "Recorder",
    "ScaleLine",
    "SimulatorSource",
    "Source",
    "SourceStats",
    "parse_speed",
]


class Source(Protocol):
    """What every source provides."""

    stats: SourceStats
    camera: CameraInfo | None

    def __iter__(self): ...

    def close(self) -> None: ...


def __getattr__(name: str):
    # Lazy: RealSenseSource needs pyrealsense2 (and libusb) only when used; the simulator
    # pulls in its renderer only when used.
    if name == "RealSenseSource":
        from .realsense import RealSenseSource

        return RealSenseSource
    if name == "SimulatorSource":
        from .simulator import SimulatorSource

        return SimulatorSource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
