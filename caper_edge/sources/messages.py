"""What a source yields: frames, raw scale lines and ground-truth events, in time order.

Every time is int64 nanoseconds on the host monotonic clock (in replay: the bag's log time).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..bags import ros

__all__ = ["CameraInfo", "Frame", "GroundTruthEvent", "Message", "ScaleLine", "SourceStats"]


@dataclass(frozen=True)
class CameraInfo:
    """Pinhole intrinsics of the colour camera (pixels); depth frames are aligned to it."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion_model: str = "plumb_bob"
    d: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)
    frame_id: str = "camera_color_optical_frame"

    @property
    def k(self) -> np.ndarray:
        """The 3x3 camera matrix."""
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], dtype=np.float64)

    @classmethod
    def from_msg(cls, msg: Any) -> CameraInfo:
        """From a ``sensor_msgs/msg/CameraInfo`` (ROS 2 ``k``/``d`` or ROS 1 ``K``/``D`` fields)."""
        k = np.asarray(getattr(msg, "k", None) if hasattr(msg, "k") else msg.K, dtype=np.float64).reshape(-1)
        d = getattr(msg, "d", None) if hasattr(msg, "d") else msg.D
        return cls(
            width=int(msg.width),
            height=int(msg.height),
            fx=float(k[0]),
            fy=float(k[4]),
            cx=float(k[2]),
            cy=float(k[5]),
            distortion_model=str(msg.distortion_model),
            d=tuple(float(x) for x in np.asarray(d, dtype=np.float64).reshape(-1)),
            frame_id=str(msg.header.frame_id),
        )

    def to_msg(self, t_ns: int) -> Any:
        return ros.camera_info(
            t_ns, self.frame_id, self.width, self.height, (self.fx, self.fy, self.cx, self.cy), self.d, self.distortion_model
        )


class Frame:
    """One colour frame with the nearest depth frame.

    Attributes
    ----------
    t_ns : int
        Capture time of the colour frame on the host clock (replay: bag log time).
    index : int
        0-based count of frames this source has yielded.
    color : (H, W, 3) uint8 RGB, or None when the source was asked not to decode (then
        ``encoded`` holds ``(format, bytes)`` and :meth:`decode` fills ``color``).
    depth : (H, W) uint16 millimetres aligned to ``color`` (0: no measurement), or None.
    depth_t_ns : int or None
        Capture time of the depth frame used (depth may run slower than colour).
    camera : CameraInfo or None
    objects : list of dict or None
        Ground-truth objects of this frame (simulator and simulator bags).
    """

    __slots__ = ("camera", "color", "depth", "depth_t_ns", "encoded", "index", "objects", "t_ns")

    def __init__(
        self,
        t_ns: int,
        index: int,
        color: np.ndarray | None,
        depth: np.ndarray | None = None,
        depth_t_ns: int | None = None,
        camera: CameraInfo | None = None,
        objects: list[dict] | None = None,
        encoded: tuple[str, bytes] | None = None,
    ):
        self.t_ns = t_ns
        self.index = index
        self.color = color
        self.depth = depth
        self.depth_t_ns = depth_t_ns
        self.camera = camera
        self.objects = objects
        self.encoded = encoded

    def decode(self) -> np.ndarray:
        """Decode ``encoded`` into ``color`` (RGB) if not done yet; raises FrameDecodeError."""
        if self.color is None:
            if self.encoded is None:
                raise ValueError(f"frame {self.index} has neither pixels nor encoded data")
            from ..bags.images import decode_color

            fmt, data = self.encoded
            self.color = decode_color(ros.compressed_image(0, "", data, fmt))
        return self.color

    def __repr__(self) -> str:
        shape = None if self.color is None else self.color.shape
        depth = None if self.depth is None else self.depth.shape
        return f"Frame(index={self.index}, t_ns={self.t_ns}, color={shape}, depth={depth})"


@dataclass(frozen=True)
class ScaleLine:
    """One line from the scale MCU, exactly as received (``$CW,...*CS\\r\\n``), host time of arrival."""

    t_ns: int
    data: bytes


@dataclass(frozen=True)
class GroundTruthEvent:
    """A ground-truth basket event: ``{"type", "sku", "qty", "t_start_ns", "t_rest_ns", ...}``."""

    t_ns: int
    event: dict


Message = Frame | ScaleLine | GroundTruthEvent


@dataclass
class SourceStats:
    """Counters every source keeps; ``problems`` holds one line per damage or bad frame kind."""

    frames: int = 0
    scale_lines: int = 0
    ground_truth_events: int = 0
    bad_frames: int = 0
    frames_without_depth: int = 0
    depth_frames: int = 0
    depth_frames_used: int = 0
    dropped_frames: int = 0
    reconnects: int = 0
    loops: int = 0
    problems: list[str] = field(default_factory=list)
