"""Detection decode for YOLOv8 / YOLO11 heads, and greedy non-maximum suppression.

The detector's raw output is the Ultralytics export layout: ``(1, 4 + nc, N)`` or
``(4 + nc, N)``, rows ``cx, cy, w, h`` (pixels of the network input) then ``nc`` class scores,
one column per candidate (N = 8400 for a 640x640 input). :func:`decode` picks each candidate's
best class, keeps those scoring strictly above ``conf_threshold``, and runs greedy NMS per class
(or across classes) in C++ without the GIL. It keeps exactly the boxes that ``cv2.dnn.NMSBoxes``
keeps when applied per class to the same input; docs/detect.md lists the rules that makes true.

:func:`decode_cuda` does the same for a head that lives in GPU memory: a CUDA kernel does the
threshold-and-compact step and only the survivors cross to the host for NMS. :func:`nms` is the
plain greedy NMS on given boxes, for the tracker and the gallery.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator
from typing import Any

import numpy as np

from . import _core
from ._cuda_interop import stream_handle

__all__ = ["Detections", "decode", "decode_cuda", "nms"]


def _describe(a: Any) -> str:
    """``"(3, 5) float64"`` for arrays; the type name for anything else."""
    if isinstance(a, np.ndarray):
        return f"{a.shape} {a.dtype}"
    return type(a).__name__


class Detections:
    """Boxes of one image as parallel arrays, sorted as produced (decode: by descending score).

    Attributes
    ----------
    xyxy : numpy.ndarray
        (n, 4) float32 corners ``x1, y1, x2, y2`` in pixels of the network input
        (``preprocess.unletterbox`` maps them to the camera frame).
    score : numpy.ndarray
        (n,) float32 best class score.
    class_id : numpy.ndarray
        (n,) int32 class index into the detector's class list.

    Construction validates types and shapes and never copies; indexing with an int, a slice, a
    boolean mask or an index array gives a new ``Detections`` (an int gives one row, still 2-D).
    """

    __slots__ = ("xyxy", "score", "class_id")

    def __init__(self, xyxy: np.ndarray, score: np.ndarray, class_id: np.ndarray) -> None:
        if not (isinstance(xyxy, np.ndarray) and xyxy.ndim == 2 and xyxy.shape[1] == 4 and xyxy.dtype == np.float32):
            raise ValueError(f"xyxy must be (n, 4) float32, got {_describe(xyxy)}")
        n = xyxy.shape[0]
        if not (isinstance(score, np.ndarray) and score.shape == (n,) and score.dtype == np.float32):
            raise ValueError(f"score must be (n,) float32 with n = {n} (rows of xyxy), got {_describe(score)}")
        if not (isinstance(class_id, np.ndarray) and class_id.shape == (n,) and class_id.dtype == np.int32):
            raise ValueError(f"class_id must be (n,) int32 with n = {n} (rows of xyxy), got {_describe(class_id)}")
        self.xyxy = xyxy
        self.score = score
        self.class_id = class_id

    @classmethod
    def empty(cls) -> Detections:
        """No boxes: (0, 4), (0,), (0,) arrays of the right dtypes."""
        return cls(np.empty((0, 4), np.float32), np.empty(0, np.float32), np.empty(0, np.int32))

    @classmethod
    def _from_core(cls, arrays: tuple[np.ndarray, np.ndarray, np.ndarray]) -> Detections:
        # The native core returns fresh arrays of the documented shapes: skip re-validation on
        # the per-frame path.
        self = cls.__new__(cls)
        self.xyxy, self.score, self.class_id = arrays
        return self

    def __len__(self) -> int:
        return self.score.shape[0]

    def __getitem__(self, index: Any) -> Detections:
        if isinstance(index, numbers.Integral) and not isinstance(index, (bool, np.bool_)):
            n = len(self)
            if not -n <= index < n:
                raise IndexError(f"detection index {index} out of range for {n} detections")
            index = slice(index, index + 1 if index != -1 else None)
        elif isinstance(index, np.ndarray) and index.dtype == np.bool_ and index.shape != (len(self),):
            raise ValueError(f"boolean mask must be ({len(self)},) to match the detections, got {index.shape}")
        return Detections._from_core((self.xyxy[index], self.score[index], self.class_id[index]))

    def __iter__(self) -> Iterator[tuple[np.ndarray, float, int]]:
        """Rows as ``(xyxy (4,) float32, score, class_id)``."""
        for i in range(len(self)):
            yield self.xyxy[i], float(self.score[i]), int(self.class_id[i])

    def __repr__(self) -> str:
        return f"Detections(n={len(self)}, classes={sorted(set(self.class_id.tolist()))})"


def _check_unit_interval(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def _check_max_detections(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"max_detections must be an integer >= 1, got {value!r}")
    return int(value)


def _check_raw_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    """(rows, n) of a (1, 4 + nc, N) or (4 + nc, N) head, or a ValueError saying what is wrong."""
    if len(shape) == 3:
        if shape[0] != 1:
            raise ValueError(
                f"raw batch size must be 1, got shape {shape}: decode one image at a time (raw[i] for image i)"
            )
        shape = shape[1:]
    elif len(shape) != 2:
        raise ValueError(f"raw must be (1, 4 + nc, N) or (4 + nc, N), got {len(shape)}-D shape {shape}")
    if shape[0] < 5:
        raise ValueError(
            f"raw must have at least 5 rows (cx, cy, w, h and >= 1 class score), got shape {shape}"
        )
    return shape[0], shape[1]


def decode(
    raw: np.ndarray,
    conf_threshold: float = 0.25,
    iou_threshold: float = 0.45,
    max_detections: int = 300,
    class_agnostic: bool = False,
) -> Detections:
    """Boxes from a YOLOv8/YOLO11 head: best class, score threshold, greedy NMS.

    Parameters
    ----------
    raw : numpy.ndarray
        (1, 4 + nc, N) or (4 + nc, N) float32 or float16: rows cx, cy, w, h (pixels of the network
        input) then nc class scores. Read in place when C-contiguous (a non-contiguous view is
        copied once); float16 is widened on the fly, not copied.
    conf_threshold : float
        Keep a candidate when its best class score is strictly greater than this, in [0, 1].
        Lower finds fainter objects and costs more NMS work; NaN scores never pass.
    iou_threshold : float
        Suppress a box whose IoU with a higher-scoring kept box (of the same class, unless
        ``class_agnostic``) is strictly greater than this, in [0, 1]. Lower merges more
        neighbouring boxes (and may merge touching products); higher keeps duplicates.
    max_detections : int
        Return at most this many boxes, the highest-scoring ones (>= 1).
    class_agnostic : bool
        False: classes never suppress each other. True: one NMS across classes, so an object
        the model scores as two classes yields one box.

    Returns
    -------
    Detections
        Sorted by descending score; equal scores keep the order of the raw columns. Candidates
        whose box has an inf/NaN coordinate are dropped.
    """
    conf = _check_unit_interval("conf_threshold", conf_threshold)
    iou = _check_unit_interval("iou_threshold", iou_threshold)
    cap = _check_max_detections(max_detections)
    if not isinstance(raw, np.ndarray):
        hint = "; for a GPU array use caper_edge.detect.decode_cuda" if hasattr(raw, "__cuda_array_interface__") else ""
        raise ValueError(f"raw must be a numpy.ndarray, got {type(raw).__name__}{hint}")
    if raw.dtype != np.float32 and raw.dtype != np.float16:
        raise ValueError(f"raw must be float32 or float16, got {raw.dtype} with shape {raw.shape}")
    rows, n = _check_raw_shape(raw.shape)
    raw2d = np.ascontiguousarray(raw.reshape(rows, n))
    return Detections._from_core(_core.detect_decode(raw2d, conf, iou, cap, bool(class_agnostic)))


def _device_array(raw: Any) -> tuple[int, str, tuple[int, ...], int]:
    """(pointer, dtype, shape, producer stream) from ``raw.__cuda_array_interface__``."""
    try:
        iface = raw.__cuda_array_interface__
    except AttributeError:
        raise ValueError(
            "raw must be a GPU array exposing __cuda_array_interface__ (CuPy, PyTorch CUDA tensor, "
            f"Numba device array), got {type(raw).__name__}; for a host array use caper_edge.detect.decode"
        ) from None
    shape = tuple(int(s) for s in iface["shape"])
    typestr = iface["typestr"]
    dtypes = {"<f4": "float32", "<f2": "float16"}
    if typestr not in dtypes:
        raise ValueError(f"raw must be float32 or float16, got typestr {typestr!r} with shape {shape}")
    strides = iface.get("strides")
    itemsize = 4 if typestr == "<f4" else 2
    contiguous = tuple(itemsize * math.prod(shape[i + 1 :]) for i in range(len(shape)))
    if strides is not None and tuple(strides) != contiguous and math.prod(shape) > 1:
        raise ValueError(f"raw must be C-contiguous, got strides {tuple(strides)} for shape {shape}")
    producer = iface.get("stream")  # CAI v3: 1 legacy default, 2 per-thread default, else a handle
    return int(iface["data"][0]), dtypes[typestr], shape, int(producer) if producer else 0


def decode_cuda(
    raw: Any,
    conf_threshold: float = 0.25,
    iou_threshold: float = 0.45,
    max_detections: int = 300,
    class_agnostic: bool = False,
    stream: Any = 0,
) -> Detections:
    """:func:`decode` for a head in GPU memory; the threshold-and-compact step runs on the GPU.

    Parameters
    ----------
    raw : GPU array
        Anything exposing ``__cuda_array_interface__`` (CuPy array, PyTorch CUDA tensor, Numba
        device array): C-contiguous (1, 4 + nc, N) or (4 + nc, N) float32 or float16.
    conf_threshold, iou_threshold, max_detections, class_agnostic
        As for :func:`decode`; the result is identical to ``decode`` on the same values.
    stream : int or stream object
        CUDA stream to run on (``cudaStream_t`` as an int, 0 = legacy default stream, or a
        CuPy/PyTorch/Numba stream). The kernel is queued behind the work already on it, e.g.
        the inference that wrote ``raw``; if ``raw`` names a different producer stream
        (interface v3 ``stream``), this stream waits for it through an event first.

    Returns
    -------
    Detections
        Host arrays. The call blocks (GIL released) until the survivors of the threshold are
        copied back; only they leave the GPU, and NMS finishes on the CPU.

    Raises
    ------
    RuntimeError
        No usable CUDA device (the message says why: CPU-only build, no driver, no device) or a
        CUDA error.
    """
    count, reason = _core.cuda_device_count()
    if count == 0:
        raise RuntimeError(f"decode_cuda needs a CUDA GPU: {reason}")
    conf = _check_unit_interval("conf_threshold", conf_threshold)
    iou = _check_unit_interval("iou_threshold", iou_threshold)
    cap = _check_max_detections(max_detections)
    pointer, dtype, shape, producer = _device_array(raw)
    rows, n = _check_raw_shape(shape)
    handle = stream_handle(stream)
    if n == 0:
        return Detections.empty()
    return Detections._from_core(
        _core.detect_decode_cuda(pointer, dtype, rows, n, conf, iou, cap, bool(class_agnostic), handle, producer)
    )


def nms(
    xyxy: np.ndarray,
    score: np.ndarray,
    iou_threshold: float,
    class_id: np.ndarray | None = None,
    max_detections: int | None = None,
) -> np.ndarray:
    """Greedy NMS on given boxes, with the rules of :func:`decode` (no score threshold).

    Parameters
    ----------
    xyxy : numpy.ndarray
        (n, 4) corners x1, y1, x2, y2; converted to C-contiguous float32 if needed.
    score : numpy.ndarray
        (n,) scores; converted to float32 if needed. NaN scores are never kept.
    iou_threshold : float
        Suppress a box whose IoU with a kept, higher-scoring box is > this, in [0, 1].
    class_id : numpy.ndarray or None
        (n,) integer classes: boxes only suppress boxes of their own class. None: all compete.
    max_detections : int or None
        Keep at most this many (>= 1); None keeps every survivor.

    Returns
    -------
    numpy.ndarray
        (k,) int64 row indices of the kept boxes by descending score (ties: lower row first).
        Boxes with an inf/NaN coordinate are never kept.
    """
    iou = _check_unit_interval("iou_threshold", iou_threshold)
    boxes = np.ascontiguousarray(xyxy, dtype=np.float32)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"xyxy must be (n, 4), got {_describe(np.asarray(xyxy))}")
    n = boxes.shape[0]
    scores = np.ascontiguousarray(score, dtype=np.float32)
    if scores.shape != (n,):
        raise ValueError(f"score must be (n,) with n = {n} (rows of xyxy), got {_describe(np.asarray(score))}")
    classes = None
    if class_id is not None:
        given = np.asarray(class_id)
        if given.shape != (n,) or given.dtype.kind not in "iu":
            raise ValueError(f"class_id must be (n,) integers with n = {n} (rows of xyxy), got {_describe(given)}")
        if n and (given.min() < np.iinfo(np.int32).min or given.max() > np.iinfo(np.int32).max):
            raise ValueError(f"class_id values must fit int32, got range [{given.min()}, {given.max()}]")
        classes = np.ascontiguousarray(given, dtype=np.int32)
    cap = max(n, 1) if max_detections is None else _check_max_detections(max_detections)
    return _core.detect_nms(boxes, scores, iou, classes, cap)
