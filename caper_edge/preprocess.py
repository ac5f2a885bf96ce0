"""Detector input preprocessing: the fused letterbox (CPU and CUDA), its inverse for boxes, and
depth helpers.

``letterbox`` turns one camera frame into the normalised (3, H, W) RGB tensor a detector takes,
in a single pass over the output (colour conversion, bilinear resize, border, normalisation and
HWC -> CHW together) in C++ with the GIL released. The geometry and the numbers follow the
preprocessing contract in DESIGN.md; see docs/preprocess.md for the design and tolerances.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _core

__all__ = [
    "FORMATS",
    "LetterboxMeta",
    "depth_to_meters",
    "letterbox",
    "letterbox_cuda",
    "median_depth",
    "unletterbox",
]

#: Input pixel formats and their numeric codes in ``_core``.
FORMATS: dict[str, int] = {"rgb8": 0, "bgr8": 1, "yuyv": 2, "gray": 3}
_SHAPES = {"rgb8": "(H, W, 3)", "bgr8": "(H, W, 3)", "yuyv": "(H, W, 2)", "gray": "(H, W)"}
_CHANNELS = {"rgb8": 3, "bgr8": 3, "yuyv": 2, "gray": 1}
_MAX_SIDE = 32767  # kMaxSide in preprocess_math.hpp: keeps the exact integer tap math in int32
_OUT_DTYPES = (np.dtype(np.float32), np.dtype(np.float16))


@dataclass(frozen=True, slots=True)
class LetterboxMeta:
    """Where the image went inside the letterboxed tensor.

    ``r`` is the contract's scale min(dst_h/src_h, dst_w/src_w); the resized image occupies
    rows ``pad_y .. pad_y+new_h`` and columns ``pad_x .. pad_x+new_w`` of the output. Because
    ``new_w`` and ``new_h`` are rounded, the exact per-axis scales are ``scale_x`` and
    ``scale_y``, which is what ``unletterbox`` inverts.
    """

    r: float
    pad_x: int
    pad_y: int
    src_h: int
    src_w: int
    dst_h: int
    dst_w: int
    new_h: int
    new_w: int

    @property
    def scale_x(self) -> float:
        """Output pixels per input pixel horizontally (new_w / src_w)."""
        return self.new_w / self.src_w

    @property
    def scale_y(self) -> float:
        """Output pixels per input pixel vertically (new_h / src_h)."""
        return self.new_h / self.src_h


# ---------------------------------------------------------------------------------------------
# Validation shared by the CPU and CUDA entry points
# ---------------------------------------------------------------------------------------------


def _check_fmt(fmt: Any) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(map(repr, FORMATS))}, got {fmt!r}")
    return fmt


def _check_size(size: Any) -> tuple[int, int]:
    try:
        h, w = size
        ok = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 1 <= v <= _MAX_SIDE for v in (h, w))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"size must be (H, W), two integers in 1..{_MAX_SIDE}, got {size!r}")
    return int(h), int(w)


def _check_triple(name: str, value: Any, *, nonzero: bool = False) -> tuple[float, float, float]:
    try:
        vals = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        vals = ()
    good = len(vals) == 3 and all(math.isfinite(v) and (v != 0 or not nonzero) for v in vals)
    if not good:
        what = "three finite non-zero numbers" if nonzero else "three finite numbers"
        raise ValueError(f"{name} must be {what} (R, G, B), got {value!r}")
    return vals  # type: ignore[return-value]


def _check_norm(scale: Any, mean: Any, std: Any, pad_value: Any) -> tuple[float, tuple, tuple, int]:
    try:
        scale_f = float(scale)
    except (TypeError, ValueError):
        scale_f = math.nan
    if not math.isfinite(scale_f):
        raise ValueError(f"scale must be a finite number, got {scale!r}")
    if isinstance(pad_value, bool) or not isinstance(pad_value, (int, np.integer)) or not 0 <= pad_value <= 255:
        raise ValueError(f"pad_value must be an integer grey level in 0..255, got {pad_value!r}")
    return scale_f, _check_triple("mean", mean), _check_triple("std", std, nonzero=True), int(pad_value)


def _check_out_dtype(dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in _OUT_DTYPES:
        raise ValueError(f"dtype must be numpy.float32 or numpy.float16, got {dtype!r}")
    return dt


def _check_image_shape(shape: tuple[int, ...], fmt: str) -> tuple[int, int]:
    channels = _CHANNELS[fmt]
    ok = len(shape) == 2 if channels == 1 else (len(shape) == 3 and shape[2] == channels)
    if not ok:
        raise ValueError(f"image for fmt={fmt!r} must have shape {_SHAPES[fmt]}, got {tuple(shape)}")
    h, w = int(shape[0]), int(shape[1])
    if h == 0 or w == 0:
        raise ValueError(f"image must not be empty, got shape {tuple(shape)}")
    if h > _MAX_SIDE or w > _MAX_SIDE:
        raise ValueError(f"image sides must be at most {_MAX_SIDE} pixels, got shape {tuple(shape)}")
    if fmt == "yuyv" and w % 2:
        raise ValueError(f"yuyv image width must be even (pixels come in Y0 U Y1 V pairs), got width {w}")
    return h, w


def _meta(geometry: tuple, src: tuple[int, int], dst: tuple[int, int]) -> LetterboxMeta:
    r, pad_x, pad_y, new_h, new_w = geometry
    return LetterboxMeta(r, pad_x, pad_y, src[0], src[1], dst[0], dst[1], new_h, new_w)


# ---------------------------------------------------------------------------------------------
# CPU letterbox
# ---------------------------------------------------------------------------------------------


def letterbox(
    image: np.ndarray,
    size: tuple[int, int] = (640, 640),
    fmt: str = "rgb8",
    scale: float = 1 / 255,
    mean: Sequence[float] = (0.0, 0.0, 0.0),
    std: Sequence[float] = (1.0, 1.0, 1.0),
    pad_value: int = 114,
    dtype: Any = np.float32,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, LetterboxMeta]:
    """Letterbox and normalise one frame into a (3, H, W) RGB tensor, in one fused pass.

    Parameters
    ----------
    image : numpy.ndarray
        C-contiguous uint8: (h, w, 3) for ``rgb8`` / ``bgr8``, (h, w, 2) for ``yuyv`` (YUY2:
        Y0 U Y1 V per pixel pair, even w, BT.601 limited range as OpenCV's COLOR_YUV2RGB_YUYV),
        (h, w) for ``gray``. Never copied; a non-contiguous view is rejected rather than copied
        silently (call ``np.ascontiguousarray`` yourself if you mean to pay for the copy).
    size : (H, W)
        Output plane size in pixels.
    fmt : str
        ``"rgb8"``, ``"bgr8"``, ``"yuyv"`` or ``"gray"`` (gray is replicated into R, G, B).
    scale, mean, std :
        value = ((pixel * scale) - mean[c]) / std[c] per output channel c in R, G, B order;
        mean and std in scaled units, std non-zero.
    pad_value : int
        Border grey level 0..255 before scaling (114: the Ultralytics letterbox grey).
    dtype : numpy.float32 or numpy.float16
        Output element type (float16: round to nearest even).
    out : numpy.ndarray, optional
        Writeable C-contiguous (3, H, W) array of ``dtype`` to write into; every element is
        overwritten, nothing is allocated (zero-copy reuse of an engine's input buffer).

    Returns
    -------
    tensor : numpy.ndarray
        ``out`` (or a new array), C-contiguous (3, H, W) planes R, G, B.
    meta : LetterboxMeta
        r, pad_x, pad_y and the sizes, for ``unletterbox``.

    Notes
    -----
    Geometry: r = min(H/h, W/w); new_w = round(w*r), new_h = round(h*r) (half to even, at least
    1); pad_x = (W-new_w)//2; pad_y = (H-new_h)//2; bilinear with OpenCV's INTER_LINEAR
    pixel-centre convention. Agrees with cvtColor -> resize -> copyMakeBorder -> blobFromImage
    within 1 grey level before scaling (it skips the reference's uint8 rounding after resize).
    Releases the GIL; safe to call from several threads.
    """
    fmt = _check_fmt(fmt)
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy.ndarray, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    src = _check_image_shape(image.shape, fmt)
    if not image.flags.c_contiguous:
        raise ValueError(
            f"image must be C-contiguous, got strides {image.strides} for shape {image.shape}; "
            "letterbox does not copy silently: pass np.ascontiguousarray(image)"
        )
    dst = _check_size(size)
    scale_f, mean_t, std_t, pad = _check_norm(scale, mean, std, pad_value)
    dt = _check_out_dtype(dtype)
    if out is None:
        out = np.empty((3, *dst), dtype=dt)
    else:
        _check_host_out(out, dst, dt, image)
    geometry = _core.letterbox_into(image, FORMATS[fmt], out, scale_f, mean_t, std_t, pad)
    return out, _meta(geometry, src, dst)


def _check_host_out(out: Any, dst: tuple[int, int], dt: np.dtype, image: np.ndarray) -> None:
    if not isinstance(out, np.ndarray):
        raise ValueError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != dt:
        raise ValueError(f"out must have dtype {dt} (the dtype argument), got {out.dtype}")
    if out.shape != (3, *dst):
        raise ValueError(f"out must have shape {(3, *dst)}, got {out.shape}")
    if not out.flags.c_contiguous:
        raise ValueError(f"out must be C-contiguous, got strides {out.strides}")
    if not out.flags.writeable:
        raise ValueError("out must be writeable, got a read-only array")
    if np.may_share_memory(out, image):
        raise ValueError("out must not overlap the image's memory")


# ---------------------------------------------------------------------------------------------
# CUDA letterbox
# ---------------------------------------------------------------------------------------------


def letterbox_cuda(
    image: Any,
    size: tuple[int, int] = (640, 640),
    fmt: str = "rgb8",
    scale: float = 1 / 255,
    mean: Sequence[float] = (0.0, 0.0, 0.0),
    std: Sequence[float] = (1.0, 1.0, 1.0),
    pad_value: int = 114,
    dtype: Any = np.float32,
    out: Any = None,
    stream: Any = 0,
) -> tuple[Any, LetterboxMeta]:
    """The same letterbox on the GPU, for a device image, queued on a CUDA stream.

    Parameters
    ----------
    image :
        A device array exposing ``__cuda_array_interface__`` (CuPy, PyTorch CUDA tensor, Numba
        device array): C-contiguous uint8 with the shape ``letterbox`` takes for ``fmt``.
    size, fmt, scale, mean, std, pad_value, dtype :
        As for ``letterbox``; the result equals the CPU path's (same per-pixel functions).
    out :
        Optional device array (C-contiguous, writeable, (3, H, W) of ``dtype``, same device).
        When omitted, one is allocated with the image's own library (CuPy, PyTorch or Numba).
    stream :
        The CUDA stream to run on: an int ``cudaStream_t`` (0 = legacy default stream), or an
        object with ``__cuda_stream__`` (returns (version, handle)), ``.cuda_stream`` (PyTorch),
        ``.ptr`` (CuPy) or ``.handle`` (Numba).

    Returns
    -------
    tensor, meta :
        ``out`` and the LetterboxMeta. The call returns once the kernel is queued: the tensor is
        ready when ``stream`` reaches that point (synchronise the stream, or queue the consumer on
        it). When an array's interface names a producer stream (``"stream"`` entry, interface
        v3), ``stream`` first waits for it through a CUDA event, without blocking the host.

    Raises
    ------
    RuntimeError
        When caper_edge._core was built without CUDA or no GPU is usable (with the reason), or a
        CUDA call fails (with CUDA's message).
    ValueError
        Bad arguments, host memory, or arrays on different devices.
    """
    if not hasattr(_core, "letterbox_cuda_into"):
        raise RuntimeError(
            "letterbox_cuda is unavailable: caper_edge._core was built without CUDA "
            "(no nvcc at build time, or CAPER_EDGE_CUDA=OFF); use letterbox() on the CPU"
        )
    count, reason = _core.cuda_device_count()
    if count == 0:
        raise RuntimeError(f"letterbox_cuda needs a usable CUDA GPU: {reason}")
    fmt = _check_fmt(fmt)
    src_ptr, shape, src_stream = _cuda_array(image, "image", expect_typestr="|u1")
    src = _check_image_shape(shape, fmt)
    dst = _check_size(size)
    scale_f, mean_t, std_t, pad = _check_norm(scale, mean, std, pad_value)
    dt = _check_out_dtype(dtype)
    if out is None:
        out = _allocate_like(image, (3, *dst), dt)
    out_ptr, out_shape, out_stream = _cuda_array(out, "out", expect_typestr=dt.str, writeable=True)
    if tuple(out_shape) != (3, *dst):
        raise ValueError(f"out must have shape {(3, *dst)}, got {tuple(out_shape)}")
    waits = [s for s in (src_stream, out_stream) if s is not None]
    geometry = _core.letterbox_cuda_into(
        src_ptr, src[0], src[1], FORMATS[fmt], out_ptr, dst[0], dst[1], dt == np.float16,
        scale_f, mean_t, std_t, pad, _stream_handle(stream), waits,
    )  # fmt: skip
    return out, _meta(geometry, src, dst)


def _cuda_array(arr: Any, name: str, *, expect_typestr: str, writeable: bool = False) -> tuple[int, tuple, int | None]:
    """(pointer, shape, producer stream or None) of a C-contiguous device array."""
    cai = getattr(arr, "__cuda_array_interface__", None)
    if cai is None:
        raise ValueError(
            f"{name} must be a device array exposing __cuda_array_interface__ (CuPy, PyTorch CUDA, Numba), "
            f"got {type(arr).__module__}.{type(arr).__name__}; use letterbox() for host arrays"
        )
    shape = tuple(int(s) for s in cai["shape"])
    typestr = cai["typestr"]
    if np.dtype(typestr) != np.dtype(expect_typestr):
        raise ValueError(f"{name} must have dtype {np.dtype(expect_typestr)}, got {np.dtype(typestr)}")
    strides = cai.get("strides")
    if strides is not None:
        itemsize = np.dtype(typestr).itemsize
        expected = tuple(int(np.prod(shape[i + 1 :], dtype=np.int64)) * itemsize for i in range(len(shape)))
        if tuple(strides) != expected and math.prod(shape) > 1:
            raise ValueError(f"{name} must be C-contiguous, got strides {tuple(strides)} for shape {shape}")
    ptr, read_only = cai["data"]
    if writeable and read_only:
        raise ValueError(f"{name} must be writeable, got a read-only device array")
    if math.prod(shape) > 0 and not ptr:
        raise ValueError(f"{name} has a null device pointer")
    return int(ptr), shape, cai.get("stream")


def _allocate_like(image: Any, shape: tuple[int, int, int], dt: np.dtype) -> Any:
    lib = type(image).__module__.split(".")[0]
    if lib == "cupy":
        import cupy

        return cupy.empty(shape, dtype=dt)
    if lib == "torch":
        import torch

        return torch.empty(shape, dtype=torch.float16 if dt == np.float16 else torch.float32, device=image.device)
    if lib == "numba":
        from numba import cuda

        return cuda.device_array(shape, dtype=dt)
    raise ValueError(f"out is required for device arrays of type {type(image).__module__}.{type(image).__name__}")


def _stream_handle(stream: Any) -> int:
    if isinstance(stream, (int, np.integer)) and not isinstance(stream, bool):
        handle: Any = stream
    elif hasattr(stream, "__cuda_stream__"):
        handle = stream.__cuda_stream__()[1]
    elif hasattr(stream, "cuda_stream"):
        handle = stream.cuda_stream
    elif hasattr(stream, "ptr"):
        handle = stream.ptr
    elif hasattr(stream, "handle"):
        handle = getattr(stream.handle, "value", stream.handle) or 0
    else:
        raise ValueError(
            "stream must be an int cudaStream_t or a stream object (__cuda_stream__, .cuda_stream, .ptr or .handle), "
            f"got {type(stream).__name__}"
        )
    handle = int(handle)
    if handle < 0:
        raise ValueError(f"stream handle must be non-negative, got {handle}")
    return handle


# ---------------------------------------------------------------------------------------------
# Boxes back to the source image
# ---------------------------------------------------------------------------------------------


def unletterbox(xyxy: Any, meta: LetterboxMeta, clip: bool = True) -> np.ndarray:
    """Map boxes from letterboxed-tensor pixels back to source-image pixels.

    Parameters
    ----------
    xyxy : array_like
        (..., 4) boxes x1, y1, x2, y2 in output-tensor pixel coordinates (edges, not centres).
    meta : LetterboxMeta
        From the ``letterbox`` call that produced the tensor.
    clip : bool
        Clip to the source image, [0, src_w] x [0, src_h].

    Returns
    -------
    numpy.ndarray
        New float32 array of the same shape: x = (x - pad_x) / scale_x, y = (y - pad_y) / scale_y.
    """
    if not isinstance(meta, LetterboxMeta):
        raise ValueError(f"meta must be the LetterboxMeta returned by letterbox, got {type(meta).__name__}")
    boxes = np.asarray(xyxy, dtype=np.float64)
    if boxes.ndim == 0 or boxes.shape[-1] != 4:
        raise ValueError(f"xyxy must have shape (..., 4), got {boxes.shape}")
    res = np.empty_like(boxes)
    res[..., 0::2] = (boxes[..., 0::2] - meta.pad_x) / meta.scale_x
    res[..., 1::2] = (boxes[..., 1::2] - meta.pad_y) / meta.scale_y
    if clip:
        np.clip(res[..., 0::2], 0, meta.src_w, out=res[..., 0::2])
        np.clip(res[..., 1::2], 0, meta.src_h, out=res[..., 1::2])
    return res.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Depth
# ---------------------------------------------------------------------------------------------


def _check_depth(depth: Any, *, two_d: bool) -> np.ndarray:
    if not isinstance(depth, np.ndarray) or depth.dtype != np.uint16:
        got = depth.dtype if isinstance(depth, np.ndarray) else type(depth).__name__
        raise ValueError(f"depth must be a uint16 numpy.ndarray (raw units, 0 = no data), got {got}")
    if two_d and depth.ndim != 2:
        raise ValueError(f"depth must be (H, W), got shape {depth.shape}")
    if not depth.flags.c_contiguous:
        raise ValueError(f"depth must be C-contiguous, got strides {depth.strides}; pass np.ascontiguousarray(depth)")
    return depth


def _check_depth_scale(depth_scale: Any) -> float:
    try:
        s = float(depth_scale)
    except (TypeError, ValueError):
        s = math.nan
    if not (math.isfinite(s) and s > 0):
        raise ValueError(f"depth_scale must be a positive number of metres per raw unit, got {depth_scale!r}")
    return s


def depth_to_meters(
    depth: np.ndarray, depth_scale: float = 0.001, invalid_value: float = 0.0, out: np.ndarray | None = None
) -> np.ndarray:
    """Raw 16-bit depth to float32 metres.

    Parameters
    ----------
    depth : numpy.ndarray
        C-contiguous uint16, any shape; 0 means "no measurement".
    depth_scale : float
        Metres per raw unit (0.001 for millimetres; RealSense reports its own).
    invalid_value : float
        Written where depth == 0 (e.g. ``numpy.nan`` to make holes explicit).
    out : numpy.ndarray, optional
        Writeable C-contiguous float32 of depth's shape, written in place.

    Returns
    -------
    numpy.ndarray
        float32 metres, ``out`` when given.
    """
    depth = _check_depth(depth, two_d=False)
    s = _check_depth_scale(depth_scale)
    invalid = float(invalid_value)
    if out is None:
        out = np.empty(depth.shape, dtype=np.float32)
    elif not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.shape != depth.shape:
        got = f"{out.dtype} {out.shape}" if isinstance(out, np.ndarray) else type(out).__name__
        raise ValueError(f"out must be float32 with shape {depth.shape}, got {got}")
    elif not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out must be C-contiguous and writeable")
    _core.depth_to_meters_into(depth, out, s, invalid)
    return out


def median_depth(
    depth: np.ndarray, xyxy: Any, depth_scale: float = 0.001, inner_fraction: float = 1.0
) -> float | np.ndarray:
    """Robust depth of boxes: the median of the non-zero depth pixels inside each, in metres.

    Parameters
    ----------
    depth : numpy.ndarray
        (H, W) uint16 raw depth aligned to the colour image; 0 means "no measurement".
    xyxy : array_like
        One box (4,) or boxes (n, 4), x1, y1, x2, y2 in pixels. Pixel (u, v) covers
        [u, u+1) x [v, v+1); every pixel the box overlaps counts, clipped to the image.
    depth_scale : float
        Metres per raw unit.
    inner_fraction : float
        In (0, 1]: shrink each box about its centre to this fraction of its width and height
        first, to keep background at the box edges out of the median.

    Returns
    -------
    float or numpy.ndarray
        A float for one box, an (n,) float32 array for n boxes. NaN (the documented sentinel,
        test with ``math.isnan``) where a box covers no pixel or only zeros. Even counts average
        the two middle values, as ``numpy.median``.
    """
    depth = _check_depth(depth, two_d=True)
    s = _check_depth_scale(depth_scale)
    frac = float(inner_fraction)
    if not 0 < frac <= 1:
        raise ValueError(f"inner_fraction must be in (0, 1], got {inner_fraction!r}")
    boxes = np.asarray(xyxy, dtype=np.float32)
    single = boxes.shape == (4,)
    if not single and (boxes.ndim != 2 or boxes.shape[1] != 4):
        raise ValueError(f"xyxy must be (4,) or (n, 4), got shape {boxes.shape}")
    res = _core.median_depth(depth, np.ascontiguousarray(boxes.reshape(-1, 4)), s, frac)
    return float(res[0]) if single else res
