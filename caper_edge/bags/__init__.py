"""Sensor bags: rosbag2 MCAP writing, reading of MCAP / SQLite / ROS 1 / librealsense recordings.

See docs/bags.md for the topics, message types and encodings, and for what happens to damaged
files. The frame-level view (colour paired with depth, scale lines) is
:class:`caper_edge.sources.BagSource`; this package is the message-level layer under it.
"""

from __future__ import annotations

from . import ros, topics
from .images import FrameDecodeError, decode_color, decode_depth, encode_jpeg, encode_png
from .reader import BagMessage, BagReader, Damage, TopicInfo, expand_bag_paths
from .writer import BagWriter

__all__ = [
    "BagMessage",
    "BagReader",
    "BagWriter",
    "Damage",
    "FrameDecodeError",
    "TopicInfo",
    "decode_color",
    "decode_depth",
    "encode_jpeg",
    "encode_png",
    "expand_bag_paths",
    "ros",
    "topics",
]
