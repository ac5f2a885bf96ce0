"""Decode and encode the image messages of sensor bags (OpenCV on the CPU).

Colour comes out as RGB ``uint8`` (H, W, 3); depth as ``uint16`` (H, W) in millimetres, 0 meaning
"no measurement". Accepted:

* ``sensor_msgs/msg/Image``: ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8``, ``mono8``, ``yuv422_yuy2``
  / ``yuyv`` (YUY2), ``uyvy`` / ``yuv422`` (UYVY, the ROS name), and for depth ``16UC1`` /
  ``mono16`` (millimetres unless a depth unit says otherwise) and ``32FC1`` (metres).
* ``sensor_msgs/msg/CompressedImage``: ``jpeg``/``png`` and the ``image_transport`` spellings
  (``"rgb8; jpeg compressed bgr8"``, ``"16UC1; compressedDepth png"`` with its 12-byte header).

Every failure raises :class:`FrameDecodeError` with the reason; sources count such frames as bad.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = [
    "FrameDecodeError",
    "decode_color",
    "decode_depth",
    "encode_jpeg",
    "encode_png",
]


class FrameDecodeError(ValueError):
    """A frame message could not be decoded; the message says why."""


_CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "8UC1": 1, "8UC3": 3}
_YUV422 = {"yuv422_yuy2": cv2.COLOR_YUV2RGB_YUYV, "yuyv": cv2.COLOR_YUV2RGB_YUYV,
           "yuv422": cv2.COLOR_YUV2RGB_UYVY, "uyvy": cv2.COLOR_YUV2RGB_UYVY}
_TO_RGB = {"rgb8": None, "8UC3": None, "bgr8": cv2.COLOR_BGR2RGB, "rgba8": cv2.COLOR_RGBA2RGB,
           "bgra8": cv2.COLOR_BGRA2RGB, "mono8": cv2.COLOR_GRAY2RGB, "8UC1": cv2.COLOR_GRAY2RGB}


def _rows(msg: object, bytes_per_pixel: int) -> np.ndarray:
    """The pixel rows of an Image message as a (H, W*bpp) uint8 view, honouring ``step``."""
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.asarray(msg.data, dtype=np.uint8)
    if h <= 0 or w <= 0:
        raise FrameDecodeError(f"image has no pixels ({w}x{h})")
    if step < w * bytes_per_pixel:
        raise FrameDecodeError(f"step {step} is shorter than width {w} x {bytes_per_pixel} bytes")
    if data.size < step * (h - 1) + w * bytes_per_pixel:
        raise FrameDecodeError(f"image data has {data.size} bytes, {w}x{h} {msg.encoding} needs {step * h}")
    return np.lib.stride_tricks.as_strided(data, shape=(h, w * bytes_per_pixel), strides=(step, 1))


def decode_color(msg: object) -> np.ndarray:
    """RGB uint8 (H, W, 3) from an Image or CompressedImage message."""
    if hasattr(msg, "format"):
        return _decode_compressed_color(msg)
    encoding = str(msg.encoding)
    if encoding in _YUV422:
        rows = _rows(msg, 2)
        return cv2.cvtColor(np.ascontiguousarray(rows).reshape(msg.height, msg.width, 2), _YUV422[encoding])
    if encoding not in _CHANNELS:
        raise FrameDecodeError(f"unknown colour encoding {encoding!r} (expected one of {', '.join(sorted(_CHANNELS) + sorted(_YUV422))})")
    channels = _CHANNELS[encoding]
    pixels = np.ascontiguousarray(_rows(msg, channels)).reshape(msg.height, msg.width, channels)
    code = _TO_RGB[encoding]
    return pixels if code is None else cv2.cvtColor(pixels, code)


def _decode_compressed_color(msg: object) -> np.ndarray:
    fmt = str(msg.format).lower()
    codec = _codec(fmt)
    image = cv2.imdecode(np.asarray(msg.data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FrameDecodeError(f"{codec} data ({len(msg.data)} bytes) does not decode")
    if image.dtype != np.uint8:
        raise FrameDecodeError(f"{codec} colour image has {image.dtype} pixels, expected 8-bit")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    # OpenCV decodes to BGR; "... compressed rgb8" means the producer stored RGB in the BGR slots.
    if fmt.endswith("compressed rgb8"):
        return image[..., :3].copy() if image.shape[2] == 4 else image
    return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)


def _codec(fmt: str) -> str:
    if "jpeg" in fmt or "jpg" in fmt:
        return "jpeg"
    if "png" in fmt:
        return "png"
    raise FrameDecodeError(f"unknown compressed format {fmt!r} (expected jpeg or png)")


def decode_depth(msg: object, depth_unit_m: float = 0.001) -> np.ndarray:
    """Depth in millimetres, uint16 (H, W), from an Image or CompressedImage message.

    ``depth_unit_m`` is the length of one count of a 16-bit depth image (librealsense records it
    beside the stream; 0.001 is millimetres). Values beyond 65535 mm saturate; NaN/inf become 0.
    """
    if hasattr(msg, "format"):
        counts = _decode_compressed_depth(msg)
    else:
        encoding = str(msg.encoding)
        if encoding in ("16UC1", "mono16"):
            counts = np.ascontiguousarray(_rows(msg, 2)).view("<u2" if not msg.is_bigendian else ">u2")
            counts = counts.reshape(msg.height, msg.width).astype(np.uint16, copy=False)
        elif encoding == "32FC1":
            metres = np.ascontiguousarray(_rows(msg, 4)).view(">f4" if msg.is_bigendian else "<f4").reshape(msg.height, msg.width)
            return _metres_to_mm(metres)
        else:
            raise FrameDecodeError(f"unknown depth encoding {encoding!r} (expected 16UC1, mono16 or 32FC1)")
    if depth_unit_m == 0.001:
        return counts
    return _metres_to_mm(counts.astype(np.float32) * np.float32(depth_unit_m))


def _metres_to_mm(metres: np.ndarray) -> np.ndarray:
    mm = np.nan_to_num(metres.astype(np.float32) * 1000.0, nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(np.rint(mm), 0, 65535).astype(np.uint16)


def _decode_compressed_depth(msg: object) -> np.ndarray:
    fmt = str(msg.format).lower()
    data = np.asarray(msg.data, dtype=np.uint8)
    if "compresseddepth" in fmt:
        # compressed_depth_image_transport: a 12-byte ConfigHeader (format enum + two floats)
        # precedes the PNG for 16UC1 depth; 32FC1 inverse-depth quantization is not supported.
        if not fmt.startswith("16uc1") and not fmt.startswith("mono16"):
            raise FrameDecodeError(f"compressedDepth format {msg.format!r} is not supported (only 16UC1 png)")
        data = data[12:]
    codec = _codec(fmt)
    if codec != "png":
        raise FrameDecodeError(f"depth must be PNG-compressed (lossless), got {msg.format!r}")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FrameDecodeError(f"depth PNG data ({data.size} bytes) does not decode")
    if image.dtype != np.uint16 or image.ndim != 2:
        raise FrameDecodeError(f"depth PNG holds {image.dtype} x {image.shape}, expected one 16-bit channel")
    return image


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of an RGB uint8 image (4:2:0, OpenCV/libjpeg; deterministic for one build)."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"JPEG encoding of a {rgb.shape} {rgb.dtype} image failed")
    return buf.tobytes()


def encode_png(image: np.ndarray, compression: int = 1) -> bytes:
    """PNG bytes of an RGB uint8 or uint16 depth image (RGB is stored as PNG's RGB)."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, int(compression)])
    if not ok:
        raise ValueError(f"PNG encoding of a {image.shape} {image.dtype} image failed")
    return buf.tobytes()
