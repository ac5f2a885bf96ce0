"""Which topics of a bag hold colour, depth, intrinsics, scale lines and ground truth.

Three layouts are recognised, in this order:

* the caper_edge contract (``/camera/color/image_raw[/compressed]``, ``/camera/aligned_depth_to_color/image_raw``, ...);
* recordings written by librealsense itself (``rs2::recorder``, the RealSense Viewer):
  ``/device_0/sensor_<i>/Color_0/image/data`` (ROS 1 ``.bag``, raw ``sensor_msgs/Image``) or
  ``.../image/data/compressed`` and ``.../Depth_0/image/data/compressedDepth`` (ROS 2 ``.db3``
  of librealsense >= 2.57, PNG-compressed), with ``camera_info`` and the ``Depth_Units`` option;
* any other camera bag whose topic names end like the ``realsense-ros`` driver's
  (``.../color/image_raw``, ``.../aligned_depth_to_color/image_raw``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from . import ros, topics
from .reader import TopicInfo

__all__ = ["Layout", "discover"]

_RS = r"/device_\d+/sensor_\d+/"
_RS_COLOR = re.compile(_RS + r"Color_\d+/image/data(/compressed)?$")
_RS_DEPTH = re.compile(_RS + r"Depth_\d+/image/data(/compressedDepth|/compressed)?$")
_RS_COLOR_INFO = re.compile(_RS + r"Color_\d+/(image|info)/camera_info$")
_RS_DEPTH_INFO = re.compile(_RS + r"Depth_\d+/(image|info)/camera_info$")
_RS_DEPTH_UNITS = re.compile(_RS + r"option/Depth_Units/value$")
_RS_COLOR_TF = re.compile(_RS + r"Color_\d+/tf/.+$")
_RS_DEPTH_TF = re.compile(_RS + r"Depth_\d+/tf/.+$")


@dataclass(frozen=True)
class Layout:
    kind: str  # "caper_edge", "librealsense" or "generic"
    color: str | None
    depth: str | None
    camera_info: str | None
    depth_camera_info: str | None = None  # only when depth is not aligned to colour
    depth_units: str | None = None
    color_tf: str | None = None
    depth_tf: str | None = None
    scale: str | None = None
    gt_events: str | None = None
    gt_objects: str | None = None
    catalog: str | None = None

    @property
    def depth_aligned(self) -> bool:
        return self.depth_camera_info is None


def _first(names: Mapping[str, TopicInfo], pattern: re.Pattern[str], types: tuple[str, ...]) -> str | None:
    for name, info in names.items():
        if pattern.search(name) and (not info.msgtype or _short(info.msgtype) in {_short(t) for t in types}):
            return name
    return None


def _short(msgtype: str) -> str:
    # ROS 1 spells types "sensor_msgs/Image", ROS 2 "sensor_msgs/msg/Image".
    return msgtype.replace("/msg/", "/")


def discover(names: Mapping[str, TopicInfo]) -> Layout:
    """The layout of a bag from its topics (name -> TopicInfo)."""
    extras = {
        "scale": topics.SCALE_RAW if topics.SCALE_RAW in names else None,
        "gt_events": topics.GT_EVENTS if topics.GT_EVENTS in names else None,
        "gt_objects": topics.GT_OBJECTS if topics.GT_OBJECTS in names else None,
        "catalog": topics.CATALOG if topics.CATALOG in names else None,
    }
    image_types = (ros.IMAGE, ros.COMPRESSED_IMAGE)
    if topics.COLOR_COMPRESSED in names or topics.COLOR_RAW in names:
        return Layout(
            "caper_edge",
            topics.COLOR_COMPRESSED if topics.COLOR_COMPRESSED in names else topics.COLOR_RAW,
            topics.DEPTH if topics.DEPTH in names else None,
            topics.CAMERA_INFO if topics.CAMERA_INFO in names else None,
            **extras,
        )
    color = _first(names, _RS_COLOR, image_types)
    if color is not None:
        return Layout(
            "librealsense",
            color,
            _first(names, _RS_DEPTH, image_types),
            _first(names, _RS_COLOR_INFO, (ros.CAMERA_INFO,)),
            depth_camera_info=_first(names, _RS_DEPTH_INFO, (ros.CAMERA_INFO,)),
            depth_units=_first(names, _RS_DEPTH_UNITS, (ros.STRING, "std_msgs/msg/Float32")),
            color_tf=_first(names, _RS_COLOR_TF, (ros.STRING, "geometry_msgs/msg/Transform")),
            depth_tf=_first(names, _RS_DEPTH_TF, (ros.STRING, "geometry_msgs/msg/Transform")),
            **extras,
        )
    color = _first(names, re.compile(r"color/image_raw(/compressed)?$"), image_types)
    return Layout(
        "generic",
        color,
        _first(names, re.compile(r"aligned_depth_to_color/image_raw$"), (ros.IMAGE,)),
        _first(names, re.compile(r"color/camera_info$"), (ros.CAMERA_INFO,)),
        **extras,
    )
