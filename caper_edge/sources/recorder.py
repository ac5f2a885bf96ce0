"""Record a live session (frames and raw scale lines) to rosbag2 MCAP bags, with rotation.

A session directory holds one complete rosbag2 bag per segment::

    OUT/session_0000/session_0000.mcap + metadata.yaml
    OUT/session_0001/...

A segment is closed (summary, footer, metadata.yaml) when it reaches ``rotate_bytes`` or spans
``rotate_seconds``, and on :meth:`Recorder.close`. Inside a segment every chunk is flushed (and
fsync'ed) once it is full or spans ``chunk_seconds``, so a crash loses at most that chunk; the
truncated segment is still read by :class:`~caper_edge.sources.BagSource`, which takes ``OUT/``
as one bag. A recorder restarted on the same directory continues the numbering.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Literal

import numpy as np

from ..bags import ros, topics
from ..bags.images import encode_jpeg
from ..bags.writer import BagWriter
from .messages import Frame, GroundTruthEvent, Message, ScaleLine

__all__ = ["MessageEncoder", "Recorder"]


class MessageEncoder:
    """Turns source messages into bag messages on the contract's topics.

    Colour becomes a JPEG ``CompressedImage`` (frames that arrive encoded are stored as they
    are), depth a ``16UC1`` ``Image`` stored once per depth frame even when it pairs with two
    colour frames, intrinsics a ``CameraInfo`` per colour frame, ground-truth objects and events
    JSON strings, scale lines one ``String`` each with the bytes as received.
    """

    def __init__(self, jpeg_quality: int = 90):
        if not 1 <= jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {jpeg_quality}")
        self.jpeg_quality = jpeg_quality
        self.last_depth_t: int | None = None

    def write(self, w: BagWriter, msg: Message) -> None:
        if isinstance(msg, Frame):
            self._frame(w, msg)
        elif isinstance(msg, ScaleLine):
            w.write(topics.SCALE_RAW, msg.t_ns, ros.string(msg.data.decode("latin-1")))
        elif isinstance(msg, GroundTruthEvent):
            w.write(topics.GT_EVENTS, msg.t_ns, ros.string(json.dumps(msg.event, sort_keys=True)))
        else:
            raise TypeError(f"expected Frame, ScaleLine or GroundTruthEvent, got {type(msg).__name__}")

    def _frame(self, w: BagWriter, frame: Frame) -> None:
        t = frame.t_ns
        frame_id = frame.camera.frame_id if frame.camera else topics.COLOR_FRAME_ID
        if frame.encoded is not None and frame.color is None:
            fmt, data = frame.encoded
            w.write(topics.COLOR_COMPRESSED, t, ros.compressed_image(t, frame_id, data, fmt))
        else:
            c = frame.color
            if c is None or c.dtype != np.uint8 or c.ndim != 3 or c.shape[2] != 3:
                got = None if c is None else (c.shape, c.dtype)
                raise ValueError(f"frame {frame.index}: color must be (H, W, 3) uint8 RGB, got {got}")
            w.write(topics.COLOR_COMPRESSED, t, ros.compressed_image(t, frame_id, encode_jpeg(c, self.jpeg_quality), "jpeg"))
        if frame.camera is not None:
            w.write(topics.CAMERA_INFO, t, frame.camera.to_msg(t))
        if frame.depth is not None:
            depth_t = frame.depth_t_ns if frame.depth_t_ns is not None else t
            if depth_t != self.last_depth_t:
                w.write(topics.DEPTH, depth_t, ros.image(depth_t, frame_id, frame.depth, "16UC1"))
                self.last_depth_t = depth_t
        if frame.objects is not None:
            w.write(topics.GT_OBJECTS, t, ros.string(json.dumps(frame.objects, separators=(",", ":"))))


class Recorder:
    """Writes :class:`Frame`, :class:`ScaleLine` and :class:`GroundTruthEvent` messages to bags.

    Parameters
    ----------
    out_dir:
        Session directory (created if missing).
    prefix:
        Segment name prefix.
    rotate_bytes, rotate_seconds:
        Start a new segment when the current one holds this many bytes / spans this many seconds
        of message time (None: never for that criterion). Smaller segments are easier to move
        and lose less to a damaged disk; each costs a summary and a metadata.yaml.
    jpeg_quality:
        Quality (1-100) for colour frames that arrive as pixels; frames that arrive encoded
        (``Frame.encoded``) are stored as they are.
    compression:
        Chunk compression: ``"zstd"`` (depth shrinks several-fold) or ``"none"``.
    chunk_seconds, fsync:
        Durability of the open segment: flush (and fsync) at least this often.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        *,
        prefix: str = "session",
        rotate_bytes: int | None = 1 << 30,
        rotate_seconds: float | None = None,
        jpeg_quality: int = 90,
        compression: Literal["zstd", "none"] = "zstd",
        chunk_seconds: float = 1.0,
        fsync: bool = True,
    ):
        if rotate_bytes is not None and rotate_bytes <= 0:
            raise ValueError(f"rotate_bytes must be positive or None, got {rotate_bytes}")
        if rotate_seconds is not None and rotate_seconds <= 0:
            raise ValueError(f"rotate_seconds must be positive or None, got {rotate_seconds}")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", prefix):
            raise ValueError(f"prefix must be letters, digits, '_', '.', '-', got {prefix!r}")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.rotate_bytes, self.rotate_seconds = rotate_bytes, rotate_seconds
        self._encoder = MessageEncoder(jpeg_quality)
        self._writer_options = {"compression": compression, "chunk_seconds": chunk_seconds, "fsync": fsync}
        self._next_index = self._first_free_index()
        self._writer: BagWriter | None = None
        self._segment_start_ns: int | None = None
        self.segments: list[Path] = []
        self.messages_written = 0
        self.bytes_closed = 0

    @classmethod
    def from_config(cls, cfg, out_dir: str | os.PathLike[str] | None = None) -> Recorder:
        """A recorder set up from ``[recorder]`` (a :class:`caper_edge.config.RecorderConfig`);
        ``out_dir`` overrides ``cfg.dir``; 0 in ``rotate_mb``/``rotate_minutes`` means never."""
        return cls(
            out_dir if out_dir is not None else cfg.dir,
            prefix=cfg.prefix,
            rotate_bytes=int(cfg.rotate_mb * 1e6) if cfg.rotate_mb > 0 else None,
            rotate_seconds=cfg.rotate_minutes * 60.0 if cfg.rotate_minutes > 0 else None,
            jpeg_quality=cfg.jpeg_quality,
            compression=cfg.compression,
            chunk_seconds=cfg.chunk_seconds,
            fsync=cfg.fsync,
        )

    def _first_free_index(self) -> int:
        pattern = re.compile(rf"{re.escape(self.prefix)}_(\d+)$")
        used = [int(m.group(1)) for p in self.out_dir.iterdir() if (m := pattern.match(p.name))]
        return max(used) + 1 if used else 0

    # Writing -------------------------------------------------------------------------------------

    def write(self, msg: Message) -> None:
        """Append one message; rotates first when the segment is full (checked at frames)."""
        if isinstance(msg, Frame):
            self._rotate_if_due(msg.t_ns)
        self._encoder.write(self._segment(msg.t_ns), msg)
        self.messages_written += 1

    # Segments -----------------------------------------------------------------------------------

    def _segment(self, t_ns: int) -> BagWriter:
        if self._writer is None:
            path = self.out_dir / f"{self.prefix}_{self._next_index:04d}"
            self._next_index += 1
            self._writer = BagWriter(path, **self._writer_options)
            self._segment_start_ns = t_ns
            self._encoder.last_depth_t = None  # each segment carries its own depth frames
            self.segments.append(path)
        return self._writer

    def _rotate_if_due(self, t_ns: int) -> None:
        w = self._writer
        if w is None:
            return
        too_big = self.rotate_bytes is not None and w.bytes_written >= self.rotate_bytes
        too_long = self.rotate_seconds is not None and t_ns - self._segment_start_ns >= self.rotate_seconds * 1e9
        if too_big or too_long:
            self._close_segment()

    def _close_segment(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self.bytes_closed += self._writer.bytes_written
            self._writer = None

    @property
    def bytes_written(self) -> int:
        return self.bytes_closed + (self._writer.bytes_written if self._writer else 0)

    def close(self) -> None:
        """Close the open segment cleanly (summary, footer, metadata.yaml)."""
        self._close_segment()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
