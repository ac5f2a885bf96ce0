"""Replay a sensor bag as a source: frames (colour + nearest depth), scale lines, ground truth.

At ``speed="max"`` every message is yielded as fast as the consumer takes it, never dropped, and
the output is a pure function of the bag (deterministic replay). ``"realtime"`` or a factor paces
the messages by their log times against the monotonic clock; a consumer that falls behind is
not skipped over either (dropping is the live pipeline's policy, not the source's).

Damage (see :mod:`caper_edge.bags.reader`) and frames that do not decode are counted in
``stats``; after everything readable has been yielded, :class:`~caper_edge.errors.InputError`
names the first problem's file, topic and position (``strict=False`` leaves it in ``stats.problems``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..bags.images import FrameDecodeError, decode_color, decode_depth
from ..bags.layout import Layout, discover
from ..bags.reader import BagMessage, BagReader
from ..errors import InputError
from . import align
from .messages import CameraInfo, Frame, GroundTruthEvent, Message, ScaleLine, SourceStats
from .pacing import Pacer, parse_speed
from .pairing import DepthPairer, Paired

__all__ = ["BagSource", "parse_speed"]


class BagSource:
    """Frames, scale lines and ground-truth events from a bag, in log-time order.

    Parameters
    ----------
    path:
        A bag argument (rosbag2 directory, ``.mcap``/``.db3``/``.bag`` file, a directory of
        bags) or a sequence of them.
    speed:
        ``"max"`` (default), ``"realtime"`` or a factor (2.0 plays twice as fast).
    loop:
        Start again at the end; times keep increasing (each pass is shifted by the bag's span
        plus one colour frame period), frame indexes keep counting. Stop by closing or breaking.
    start_s:
        Seek: skip messages earlier than this many seconds after the bag's first message.
    decode:
        Decode colour into RGB in the source (bad frames are counted here). With False the
        frames carry ``encoded`` and the consumer calls ``Frame.decode()``.
    ground_truth, scale:
        Include ground-truth events / per-frame objects, and scale lines.
    max_depth_gap_ms:
        The farthest a depth frame may be from a colour frame and still pair with it.
    strict:
        Raise InputError at the end when anything was damaged or did not decode.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        speed: str | float | None = "max",
        loop: bool = False,
        start_s: float = 0.0,
        decode: bool = True,
        ground_truth: bool = True,
        scale: bool = True,
        max_depth_gap_ms: float = 70.0,
        strict: bool = True,
    ):
        self.speed = parse_speed(speed)
        if start_s < 0:
            raise ValueError(f"start_s must be >= 0, got {start_s}")
        self.reader = BagReader(path)
        self.layout: Layout = discover(self.reader.topics)
        if self.layout.color is None:
            names = ", ".join(self.reader.topics) or "none"
            raise InputError(
                f"bag {self.reader.paths[0]}: no colour image topic (expected /camera/color/image_raw[/compressed] "
                f"or a librealsense /device_0/sensor_*/Color_0/image/data topic); topics in the bag: {names}"
            )
        self.loop, self.start_s, self.decode = loop, start_s, decode
        self.ground_truth, self.scale, self.strict = ground_truth, scale, strict
        self.max_depth_gap_ns = int(max_depth_gap_ms * 1e6)
        self.stats = SourceStats()
        self.camera: CameraInfo | None = None
        self.depth_camera: CameraInfo | None = None
        self.catalog: Any = None
        self._depth_unit_m = 0.001
        self._extrinsics: tuple[np.ndarray, np.ndarray] | None = None
        self._read_static_topics()

    # Static information ------------------------------------------------------------------------

    def _read_static_topics(self) -> None:
        """Intrinsics, catalog, depth units and extrinsics: the first message of each."""
        lay = self.layout
        wanted = [t for t in (lay.camera_info, lay.depth_camera_info, lay.catalog, lay.depth_units, lay.color_tf, lay.depth_tf) if t]
        if not wanted:
            return
        first: dict[str, BagMessage] = {}
        for m in self.reader.messages(wanted, raise_on_damage=False):
            first.setdefault(m.topic, m)
            if len(first) == len(wanted):
                break
        if lay.camera_info in first:
            self.camera = CameraInfo.from_msg(first[lay.camera_info].msg)
        if lay.depth_camera_info in first:
            self.depth_camera = CameraInfo.from_msg(first[lay.depth_camera_info].msg)
        if lay.catalog in first:
            self.catalog = json.loads(first[lay.catalog].msg.data)
        if lay.depth_units in first:
            self._depth_unit_m = float(first[lay.depth_units].msg.data)
        self._extrinsics = _depth_to_color_extrinsics(first.get(lay.depth_tf), first.get(lay.color_tf))

    # Iteration ---------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Message]:
        lay = self.layout
        wanted = [t for t in (lay.color, lay.depth) if t]
        if self.scale and lay.scale:
            wanted.append(lay.scale)
        if self.ground_truth:
            wanted += [t for t in (lay.gt_events, lay.gt_objects) if t]
        start = self.reader.start_ns
        start_ns = None if start is None or self.start_s == 0 else start + int(self.start_s * 1e9)
        offset = 0
        self._pacer = Pacer(self.speed)
        while True:
            yield from self._one_pass(wanted, start_ns, offset)
            self._collect_damage()
            if not self.loop or self.reader.start_ns is None:
                break
            offset += self.reader.end_ns - (start_ns or self.reader.start_ns) + 33_333_333
            self.stats.loops += 1
        if self.strict and self.stats.problems:
            extra = f" (+{len(self.stats.problems) - 1} more)" if len(self.stats.problems) > 1 else ""
            raise InputError(
                f"{self.stats.problems[0]}{extra}; {self.stats.frames} frames and {self.stats.scale_lines} scale lines "
                f"before and around the damage were replayed, {self.stats.bad_frames} bad frames skipped"
            )

    def _one_pass(self, wanted: list[str], start_ns: int | None, offset: int) -> Iterator[Message]:
        lay = self.layout
        pairer = DepthPairer(self.max_depth_gap_ns, has_depth=lay.depth is not None)
        objects: dict[int, list] = {}
        for m in self.reader.messages(wanted, start_ns=start_ns, raise_on_damage=False):
            t = m.t_ns + offset
            topic = m.topic
            if topic == lay.color:
                released = pairer.push_color(t, m)
            elif topic == lay.depth:
                self.stats.depth_frames += 1
                released = pairer.push_depth(t, m)
            elif topic == lay.scale:
                released = pairer.push_other(t, ScaleLine(t, m.msg.data.encode("latin-1")))
            elif topic == lay.gt_events:
                released = pairer.push_other(t, GroundTruthEvent(t, json.loads(m.msg.data)))
            else:  # per-frame ground-truth objects join the held colour frame of the same time
                if pairer.pending_color(t) is not None:
                    objects[t] = json.loads(m.msg.data)
                continue
            for item in released:
                yield from self._emit(item, objects)
        for item in pairer.finish():
            yield from self._emit(item, objects)

    def _emit(self, item: Paired, objects: dict[int, list]) -> Iterator[Message]:
        if item.kind == "other":
            msg = item.payload
            if isinstance(msg, ScaleLine):
                self.stats.scale_lines += 1
            else:
                self.stats.ground_truth_events += 1
            self._pace(item.t_ns)
            yield msg
            return
        frame = self._frame(item, objects.pop(item.t_ns, None))
        if frame is not None:
            self._pace(item.t_ns)
            yield frame

    def _frame(self, item: Paired, objects: list | None) -> Frame | None:
        m: BagMessage = item.payload
        try:
            if self.decode or not hasattr(m.msg, "format"):  # raw images cost nothing to "decode"
                color, encoded = decode_color(m.msg), None
            else:
                color, encoded = None, _encoded(m)
        except FrameDecodeError as exc:
            self._bad_frame(m, str(exc))
            return None
        depth, depth_t = None, None
        if item.depth is not None:
            depth_t, dm = item.depth
            depth = self._depth(dm)
        if depth is None:
            self.stats.frames_without_depth += 1
        frame = Frame(item.t_ns, self.stats.frames, color, depth, depth_t if depth is not None else None, self.camera, objects, encoded)
        self.stats.frames += 1
        return frame

    def _depth(self, m: BagMessage) -> np.ndarray | None:
        cache = getattr(self, "_depth_cache", None)
        if cache is not None and cache[0] is m:
            return cache[1]
        try:
            depth = decode_depth(m.msg, self._depth_unit_m)
        except FrameDecodeError as exc:
            self._bad_frame(m, str(exc))
            depth = None
        if depth is not None and not self.layout.depth_aligned and self.camera and self.depth_camera:
            rot, trans = self._extrinsics or (None, None)
            depth = align.align_depth_to_color(depth, self.depth_camera, self.camera, rot, trans)
        if depth is not None:
            depth.flags.writeable = False  # shared by the colour frames it pairs with
            self.stats.depth_frames_used += 1
        self._depth_cache = (m, depth)
        return depth

    def _bad_frame(self, m: BagMessage, reason: str) -> None:
        self.stats.bad_frames += 1
        if self.stats.bad_frames <= 3:
            start = self.reader.start_ns or m.t_ns
            self.stats.problems.append(
                f"{m.file}: frame does not decode: {reason} (topic {m.topic}, message {m.index} at t={(m.t_ns - start) / 1e9:.3f} s)"
            )

    def _collect_damage(self) -> None:
        for d in self.reader.damage:
            line = str(d)
            if line not in self.stats.problems:
                self.stats.problems.append(line)

    def _pace(self, t_ns: int) -> None:
        self._pacer.wait(t_ns)

    def close(self) -> None:
        self.reader.close()

    def __enter__(self) -> BagSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _encoded(m: BagMessage) -> tuple[str, bytes]:
    return str(m.msg.format), bytes(np.asarray(m.msg.data, dtype=np.uint8))


def _depth_to_color_extrinsics(depth_tf: BagMessage | None, color_tf: BagMessage | None) -> tuple[np.ndarray, np.ndarray] | None:
    """librealsense stores each stream's extrinsics to a reference stream; combine them when both
    name the same reference (topic suffix), else assume identity (the stream sets were recorded
    without a common reference)."""
    if depth_tf is None or color_tf is None or depth_tf.topic.rsplit("/", 1)[1] != color_tf.topic.rsplit("/", 1)[1]:
        return None
    try:
        rd, td = _extrinsics(depth_tf.msg)
        rc, tc = _extrinsics(color_tf.msg)
    except (ValueError, KeyError, AttributeError):
        return None
    return rc.T @ rd, rc.T @ (td - tc)


def _extrinsics(msg: Any) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(getattr(msg, "data", None), str):
        return align.parse_librealsense_extrinsics(msg.data)
    return align.transform_from_msg(msg)
