"""Type stubs and docstrings for caper_edge._core, the compiled half of caper_edge.

One section per area, in the order of cpp/bindings/module.cpp. Prefer the validated Python
wrappers (caper_edge.preprocess, caper_edge.detect, ...) over calling these directly.
"""

from typing import Any

__version__: str

# --- build info -----------------------------------------------------------------------------

def build_info() -> dict[str, Any]:
    """Facts about how this module was compiled: compiler, cxx_standard, optimized,
    cuda_compiled, cuda_architectures, nvjpeg_compiled, simd."""

def cuda_device_count() -> tuple[int, str]:
    """(count, reason): usable CUDA devices; reason is '' when count > 0. Never raises."""

def cuda_device_name(index: int = 0) -> str:
    """Name and compute capability of CUDA device ``index``, or '' when unavailable."""

# --- detect (decode + NMS, CUDA compaction, nvJPEG) -----------------------------------------

import numpy as np

def detect_decode(
    raw: np.ndarray, conf_threshold: float, iou_threshold: float, max_detections: int, class_agnostic: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode a (4 + nc, N) C-contiguous float32/float16 YOLOv8/YOLO11 head and run greedy NMS.

    Returns (xyxy (K, 4) float32, score (K,) float32, class_id (K,) int32), by descending score
    (ties: lower column first). Best class by running max (NaN scores skipped), score > conf
    strictly, boxes with inf/NaN dropped, NMS as cv2.dnn.NMSBoxes per class (or across classes).
    GIL released; ``raw`` is read in place. Prefer caper_edge.detect.decode.
    """

def detect_decode_cuda(
    data: int,
    dtype: str,
    rows: int,
    n: int,
    conf_threshold: float,
    iou_threshold: float,
    max_detections: int,
    class_agnostic: bool,
    stream: int = 0,
    producer_stream: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """detect_decode for a device pointer ("float32"/"float16", (rows, n) C-contiguous).

    The threshold-and-compact kernel runs on ``stream`` (after ``producer_stream`` through an
    event when given and different); blocks until the survivors are on the host, then NMS on the
    CPU. RuntimeError without CUDA. Prefer caper_edge.detect.decode_cuda.
    """

def detect_nms(
    xyxy: np.ndarray,
    score: np.ndarray,
    iou_threshold: float,
    class_id: np.ndarray | None = None,
    max_detections: int = 300,
) -> np.ndarray:
    """Greedy NMS on (n, 4) float32 corners and (n,) float32 scores, optional (n,) int32 classes.

    Returns (K,) int64 kept row indices by descending score (ties: lower row first); NaN scores
    and non-finite boxes are never kept. GIL released. Prefer caper_edge.detect.nms.
    """

def nvjpeg_compiled() -> bool:
    """Whether this build includes the nvJPEG decoder."""

def jpeg_nvjpeg_info(data: bytes | bytearray | memoryview) -> tuple[int, int, int]:
    """(width, height, components) from the JPEG headers via nvJPEG. RuntimeError without nvJPEG."""

def jpeg_nvjpeg_decode(data: bytes | bytearray | memoryview, out: int, pitch: int, stream: int = 0) -> None:
    """Decode into interleaved RGB uint8 at device pointer ``out`` (rows ``pitch`` bytes apart) on
    ``stream``; ready in that stream's order. Prefer caper_edge.jpeg.decode_jpeg_cuda."""
