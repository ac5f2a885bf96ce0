"""Calibration images for INT8: from a folder of images or from a sensor bag's colour frames.

Used by the TensorRT INT8 build (``caper-edge engine build --int8 --calib``) and by the ONNX
Runtime static quantization in ``models/quantize.py``; both need the model's real input
distribution, so the images go through the same preprocessing as at run time: ``letterbox``
for the detector (frame -> H x W), ``crop`` for the embedding model (product crop -> S x S).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from ..errors import InputError

__all__ = ["calibration_tensors", "letterbox_frame", "load_calibration_images"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
BAG_SUFFIXES = (".mcap", ".db3", ".bag")
COLOR_TOPICS = ("/camera/color/image_raw", "/camera/color/image_raw/compressed")


def letterbox_frame(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """RGB uint8 HxWx3 -> (3, H, W) float32 in 0..1, letterboxed as the preprocessing contract says.

    Uses ``caper_edge.preprocess.letterbox`` when the native core has it, else the OpenCV chain
    that the contract names as its reference (same geometry: round-half-even size, centred pad 114).
    """
    try:
        from ..preprocess import letterbox  # type: ignore[attr-defined]
    except ImportError:
        letterbox = None
    if letterbox is not None:
        tensor, _ = letterbox(np.ascontiguousarray(image), size=size, fmt="rgb8")
        return tensor
    H, W = size
    h, w = image.shape[:2]
    r = min(H / h, W / w)
    nw, nh = round(w * r), round(h * r)
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    px, py = (W - nw) // 2, (H - nh) // 2
    padded = cv2.copyMakeBorder(resized, py, H - nh - py, px, W - nw - px, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    return (padded.astype(np.float32) * (1.0 / 255.0)).transpose(2, 0, 1).copy()


def load_calibration_images(source: str | Path, limit: int = 256) -> list[np.ndarray]:
    """Up to ``limit`` RGB uint8 images, evenly spread over ``source`` (a folder or a bag)."""
    source = Path(source)
    if not source.exists():
        raise InputError(f"calibration source {source} does not exist")
    if source.is_dir() and not (source / "metadata.yaml").exists():
        files = sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(f"calibration folder {source} has no images ({', '.join(IMAGE_SUFFIXES)})")
        picked = [files[i] for i in _spread(len(files), limit)]
        images = []
        for path in picked:
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise InputError(f"calibration image {path} cannot be decoded")
            images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        return images
    if source.is_dir() or source.suffix.lower() in BAG_SUFFIXES:
        return _bag_frames(source, limit)
    raise InputError(f"calibration source {source} is neither a folder of images nor a bag ({', '.join(BAG_SUFFIXES)})")


def calibration_tensors(
    source: str | Path,
    input_shape: tuple[int, int, int, int],
    preprocess: Literal["letterbox", "crop"] = "letterbox",
    limit: int = 256,
) -> list[np.ndarray]:
    """Batches of shape ``input_shape`` (B, 3, H, W) float32; a last partial batch is dropped."""
    from ..embedding import preprocess_crops

    b, c, h, w = input_shape
    if c != 3:
        raise InputError(f"calibration expects a (B, 3, H, W) input, got {input_shape}")
    images = load_calibration_images(source, limit)
    if preprocess == "letterbox":
        tensors = np.stack([letterbox_frame(img, (h, w)) for img in images])
    elif preprocess == "crop":
        if h != w:
            raise InputError(f"crop preprocessing needs a square input, got {h}x{w}")
        tensors = preprocess_crops(images, h)
    else:
        raise InputError(f"calibration preprocess must be 'letterbox' or 'crop', got {preprocess!r}")
    batches = [np.ascontiguousarray(tensors[i : i + b]) for i in range(0, len(tensors) - b + 1, b)]
    if not batches:
        raise InputError(f"calibration source {source} gave {len(tensors)} images, fewer than one batch of {b}")
    return batches


def _spread(n: int, limit: int) -> list[int]:
    if n <= limit:
        return list(range(n))
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, limit)})


def _bag_frames(path: Path, limit: int) -> list[np.ndarray]:
    from rosbags.highlevel import AnyReader

    try:
        with AnyReader([path]) as reader:
            conns = [c for c in reader.connections if c.topic in COLOR_TOPICS]
            if not conns:
                topics = ", ".join(sorted({c.topic for c in reader.connections}))
                raise InputError(f"bag {path} has no colour topic ({' or '.join(COLOR_TOPICS)}); topics: {topics}")
            total = sum(c.msgcount for c in conns)
            keep = set(_spread(total, limit))
            frames = []
            for i, (conn, _t, raw) in enumerate(reader.messages(connections=conns)):
                if i in keep:
                    frames.append(_decode(reader.deserialize(raw, conn.msgtype), path, conn.topic, i))
            return frames
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - rosbags raises many types for a bad file
        raise InputError(f"cannot read calibration bag {path}: {exc}") from None


def _decode(msg, path: Path, topic: str, index: int) -> np.ndarray:
    data = np.asarray(msg.data, dtype=np.uint8)
    if hasattr(msg, "format"):  # CompressedImage
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
        if bgr is None:
            raise InputError(f"bag {path} topic {topic} message {index}: {msg.format} frame does not decode")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    h, w, enc = msg.height, msg.width, msg.encoding
    if enc == "rgb8":
        return data.reshape(h, w, 3).copy()
    if enc == "bgr8":
        return cv2.cvtColor(data.reshape(h, w, 3), cv2.COLOR_BGR2RGB)
    if enc in ("yuv422_yuy2", "yuyv"):
        return cv2.cvtColor(data.reshape(h, w, 2), cv2.COLOR_YUV2RGB_YUYV)
    raise InputError(f"bag {path} topic {topic} message {index}: unsupported image encoding {enc!r}")
