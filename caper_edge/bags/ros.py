"""ROS 2 message types used by caper_edge bags, and small builders for them.

All bags are written with the standard ``sensor_msgs``/``std_msgs`` definitions of ROS 2 Jazzy as
the ``rosbags`` library ships them, with the definitions embedded in the file, so Foxglove, the
ROS 2 tools and ``rosbags`` alone can open them without caper_edge.
"""

from __future__ import annotations

import functools

import numpy as np
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
STRING = "std_msgs/msg/String"

__all__ = [
    "CAMERA_INFO",
    "COMPRESSED_IMAGE",
    "IMAGE",
    "STRING",
    "camera_info",
    "compressed_image",
    "image",
    "string",
    "typestore",
]


@functools.cache
def typestore() -> Typestore:
    """The ROS 2 typestore every caper_edge bag is written with (message definitions of Jazzy)."""
    return get_typestore(Stores.ROS2_JAZZY)


def _header(t_ns: int, frame_id: str) -> object:
    ts = typestore()
    stamp = ts.types["builtin_interfaces/msg/Time"](sec=int(t_ns // 1_000_000_000), nanosec=int(t_ns % 1_000_000_000))
    return ts.types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)


def image(t_ns: int, frame_id: str, array: np.ndarray, encoding: str) -> object:
    """A ``sensor_msgs/msg/Image`` holding ``array`` (HxW or HxWxC, C-contiguous, little endian)."""
    array = np.ascontiguousarray(array)
    if array.dtype.byteorder == ">":
        raise ValueError(f"image array must be little endian, got dtype {array.dtype}")
    height, width = array.shape[:2]
    step = array.strides[0]
    return typestore().types[IMAGE](
        header=_header(t_ns, frame_id),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=step,
        data=array.reshape(-1).view(np.uint8),
    )


def compressed_image(t_ns: int, frame_id: str, data: bytes, fmt: str) -> object:
    """A ``sensor_msgs/msg/CompressedImage``; ``fmt`` is ``jpeg`` or ``png``."""
    return typestore().types[COMPRESSED_IMAGE](
        header=_header(t_ns, frame_id), format=fmt, data=np.frombuffer(data, dtype=np.uint8)
    )


def camera_info(
    t_ns: int,
    frame_id: str,
    width: int,
    height: int,
    k: tuple[float, float, float, float],
    distortion: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0),
    distortion_model: str = "plumb_bob",
) -> object:
    """A ``sensor_msgs/msg/CameraInfo`` for a pinhole camera; ``k`` = (fx, fy, cx, cy) in pixels."""
    ts = typestore()
    fx, fy, cx, cy = (float(v) for v in k)
    roi = ts.types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return ts.types[CAMERA_INFO](
        header=_header(t_ns, frame_id),
        height=height,
        width=width,
        distortion_model=distortion_model,
        d=np.asarray(distortion, dtype=np.float64),
        k=np.array([fx, 0, cx, 0, fy, cy, 0, 0, 1], dtype=np.float64),
        r=np.eye(3, dtype=np.float64).reshape(-1),
        p=np.array([fx, 0, cx, 0, 0, fy, cy, 0, 0, 0, 1, 0], dtype=np.float64),
        binning_x=0,
        binning_y=0,
        roi=roi,
    )


def string(text: str) -> object:
    """A ``std_msgs/msg/String``."""
    return typestore().types[STRING](data=text)
