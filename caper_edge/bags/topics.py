"""Topic names of the sensor-bag contract (docs/bags.md, DESIGN.md "Sensor bags")."""

from __future__ import annotations

from . import ros

COLOR_RAW = "/camera/color/image_raw"
COLOR_COMPRESSED = "/camera/color/image_raw/compressed"
DEPTH = "/camera/aligned_depth_to_color/image_raw"
CAMERA_INFO = "/camera/color/camera_info"
SCALE_RAW = "/scale/raw"
GT_EVENTS = "/ground_truth/events"
GT_OBJECTS = "/ground_truth/objects"
CATALOG = "/catalog"

#: topic -> message type, for every topic of the contract.
TYPES: dict[str, str] = {
    COLOR_RAW: ros.IMAGE,
    COLOR_COMPRESSED: ros.COMPRESSED_IMAGE,
    DEPTH: ros.IMAGE,
    CAMERA_INFO: ros.CAMERA_INFO,
    SCALE_RAW: ros.STRING,
    GT_EVENTS: ros.STRING,
    GT_OBJECTS: ros.STRING,
    CATALOG: ros.STRING,
}

#: Optical frame id written in the headers of the camera topics.
COLOR_FRAME_ID = "camera_color_optical_frame"

__all__ = [
    "CAMERA_INFO",
    "CATALOG",
    "COLOR_COMPRESSED",
    "COLOR_FRAME_ID",
    "COLOR_RAW",
    "DEPTH",
    "GT_EVENTS",
    "GT_OBJECTS",
    "SCALE_RAW",
    "TYPES",
]
