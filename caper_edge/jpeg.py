"""JPEG decode of camera frames: on the CPU with OpenCV, on the GPU with nvJPEG.

Both return interleaved RGB uint8 (height, width, 3) -- RGB, not OpenCV's usual BGR -- ready for
``preprocess.letterbox(..., fmt="rgb8")`` or its CUDA twin. Neither applies EXIF orientation
(nvJPEG cannot; the CPU path ignores it too so the two agree); camera frames carry none.

Before decoding, both check the JPEG's marker structure: data that does not start with SOI,
whose header segments run past the end, or that has no EOI marker after its first scan is
refused with a ValueError naming the problem and the byte offset. OpenCV 4.x decodes a truncated
file "successfully" (grey bottom, a warning on stderr) and OpenCV 5 refuses it without saying
why; the check gives both the same clear error, and guards nvJPEG too. Corruption inside the
entropy-coded data itself is not detectable this way; the decoders conceal it.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from . import _core
from ._cuda_interop import stream_handle

__all__ = ["check_jpeg_structure", "decode_jpeg", "decode_jpeg_cuda"]

_SOI, _EOI, _SOS = 0xD8, 0xD9, 0xDA
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM and RST0..7 carry no length field

# OpenCV >= 4.10 decodes straight to RGB; older ones need a conversion afterwards.
_IMREAD_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)


def _as_bytes(data: Any) -> bytes | bytearray:
    if isinstance(data, (bytes, bytearray)):
        return data
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8 or data.ndim != 1:
            raise ValueError(f"data must be bytes or a 1-D uint8 array, got {data.shape} {data.dtype}")
        return data.tobytes()
    if isinstance(data, memoryview):
        return data.tobytes()
    raise ValueError(f"data must be bytes, bytearray, memoryview or a 1-D uint8 array, got {type(data).__name__}")


def check_jpeg_structure(data: Any) -> None:
    """Raise ValueError unless ``data`` looks like a complete JPEG file.

    Walks the header segments by their lengths (so an embedded EXIF thumbnail's markers are
    skipped) up to the first start-of-scan, then requires an end-of-image marker after it:
    entropy-coded data byte-stuffs 0xFF, so FF D9 there can only be the real end.
    """
    buf = _as_bytes(data)
    n = len(buf)
    if n == 0:
        raise ValueError("JPEG data is empty")
    if n < 4 or buf[0] != 0xFF or buf[1] != _SOI:
        raise ValueError(f"data is not a JPEG: expected the SOI marker FF D8 first, got {bytes(buf[:4]).hex(' ')!r}")
    pos = 2
    while True:
        if pos >= n:
            raise ValueError(f"JPEG data is truncated: the headers end at byte {n} before any image data")
        if buf[pos] != 0xFF:
            raise ValueError(f"JPEG data is corrupt: expected a marker (FF xx) at byte {pos}, got {buf[pos]:02x}")
        while pos + 1 < n and buf[pos + 1] == 0xFF:  # fill bytes before a marker
            pos += 1
        if pos + 1 >= n:
            raise ValueError(f"JPEG data is truncated: the headers end at byte {n} before any image data")
        marker = buf[pos + 1]
        if marker == _SOS:
            break
        if marker == _EOI:
            raise ValueError(f"JPEG data has no image: end-of-image marker at byte {pos} before any scan")
        if marker in _STANDALONE:
            pos += 2
            continue
        if pos + 4 > n:
            raise ValueError(f"JPEG data is truncated inside the segment header at byte {pos} of {n}")
        length = (buf[pos + 2] << 8) | buf[pos + 3]
        if length < 2 or pos + 2 + length > n:
            raise ValueError(
                f"JPEG data is truncated: segment FF {marker:02X} at byte {pos} declares {length} bytes, "
                f"only {n - pos - 2} remain"
            )
        pos += 2 + length
    if buf.find(b"\xff\xd9", pos) < 0:
        raise ValueError(
            f"JPEG data is truncated: no end-of-image marker (FF D9) after the scan that starts at byte {pos} "
            f"of {n}"
        )


def decode_jpeg(data: Any) -> np.ndarray:
    """Decode a JPEG on the CPU (OpenCV / libjpeg-turbo) into RGB.

    Parameters
    ----------
    data : bytes-like
        The whole JPEG file: bytes, bytearray, memoryview or a 1-D uint8 array.

    Returns
    -------
    numpy.ndarray
        (height, width, 3) uint8 RGB, freshly allocated. Grayscale JPEGs come back with three
        equal channels.

    Raises
    ------
    ValueError
        Empty, not a JPEG, truncated (see :func:`check_jpeg_structure`) or rejected by the decoder.
    """
    buf = _as_bytes(data)
    check_jpeg_structure(buf)
    encoded = np.frombuffer(buf, dtype=np.uint8)
    flags = (_IMREAD_RGB if _IMREAD_RGB is not None else cv2.IMREAD_COLOR) | cv2.IMREAD_IGNORE_ORIENTATION
    try:
        image = cv2.imdecode(encoded, flags)
    except cv2.error as exc:
        raise ValueError(f"JPEG data ({len(buf)} bytes) could not be decoded: {exc}") from None
    if image is None:
        raise ValueError(f"JPEG data ({len(buf)} bytes) could not be decoded: corrupt or unsupported by OpenCV")
    if _IMREAD_RGB is None:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


def decode_jpeg_cuda(data: Any, stream: Any = 0) -> Any:
    """Decode a JPEG with nvJPEG into a CuPy array on the GPU.

    Parameters
    ----------
    data : bytes-like
        The whole JPEG file, in host memory.
    stream : int or stream object
        CUDA stream (``cudaStream_t`` as an int, 0 = legacy default stream, or a CuPy/PyTorch/
        Numba stream). Huffman decoding runs on the calling thread (GIL released); the GPU
        stages are queued on ``stream``, and the output is allocated in CuPy's pool for it.

    Returns
    -------
    cupy.ndarray
        (height, width, 3) uint8 RGB on the current device, valid in ``stream``'s order: queue
        the consumer (e.g. the letterbox kernel) on the same stream, or synchronise it.

    Raises
    ------
    RuntimeError
        No usable GPU, a build without nvJPEG (``build_info()["nvjpeg_compiled"]``), CuPy not
        installed, or an nvJPEG/CUDA failure.
    ValueError
        Data that is empty, truncated or rejected by nvJPEG.
    """
    count, reason = _core.cuda_device_count()
    if count == 0:
        raise RuntimeError(f"decode_jpeg_cuda needs a CUDA GPU: {reason}")
    if not _core.nvjpeg_compiled():
        raise RuntimeError(
            "decode_jpeg_cuda: caper_edge._core was built without nvJPEG (install the nvidia-nvjpeg wheel "
            "for your CUDA major version, then rebuild); decode_jpeg decodes on the CPU"
        )
    try:
        import cupy
    except ImportError:
        raise RuntimeError(
            "decode_jpeg_cuda returns a CuPy array: install CuPy for your CUDA version (e.g. pip install cupy-cuda13x)"
        ) from None
    buf = _as_bytes(data)
    check_jpeg_structure(buf)
    handle = stream_handle(stream)
    width, height, _components = _core.jpeg_nvjpeg_info(buf)
    with cupy.cuda.ExternalStream(handle):  # pool the output memory with the stream that writes it
        out = cupy.empty((height, width, 3), dtype=cupy.uint8)
    _core.jpeg_nvjpeg_decode(buf, out.data.ptr, width * 3, handle)
    return out
