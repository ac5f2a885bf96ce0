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

# --- preprocess (fused letterbox, depth helpers) ---------------------------------------------

import numpy as np

def letterbox_geometry(src_h: int, src_w: int, dst_h: int, dst_w: int) -> tuple[float, int, int, int, int]:
    """(r, pad_x, pad_y, new_h, new_w) of the contract geometry: r = min(dst_h/src_h, dst_w/src_w),
    new sides rounded half to even and clamped to [1, dst], pads (dst - new) // 2.
    ValueError unless every side is in 1..32767."""

def letterbox_into(
    image: np.ndarray,
    fmt: int,
    out: np.ndarray,
    scale: float,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    pad_value: int,
) -> tuple[float, int, int, int, int]:
    """Fused letterbox of a host image into ``out``, in place; returns the geometry tuple.

    image: C-contiguous uint8, (H, W, 3) for fmt 0 rgb8 / 1 bgr8, (H, W, 2) for 2 yuyv (even W),
    (H, W) for 3 gray. out: writeable C-contiguous (3, OH, OW) float32 or float16, planes R, G, B,
    value ((p * scale) - mean[c]) / std[c]; every element written exactly once. Row-sized scratch
    only; GIL released. Prefer caper_edge.preprocess.letterbox.
    """

def letterbox_reference_into(
    image: np.ndarray,
    fmt: int,
    out: np.ndarray,
    scale: float,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    pad_value: int,
) -> tuple[float, int, int, int, int]:
    """letterbox_into computed pixel by pixel with letterbox_pixel(), the function the CUDA kernel
    runs per thread; bit-identical to letterbox_into. Slow: for tests."""

def letterbox_cuda_into(
    src: int,
    src_h: int,
    src_w: int,
    fmt: int,
    out: int,
    dst_h: int,
    dst_w: int,
    half: bool,
    scale: float,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    pad_value: int,
    stream: int,
    wait_streams: list[int],
) -> tuple[float, int, int, int, int]:
    """Only in CUDA builds. Queue the letterbox of device pointer ``src`` (C-contiguous packed
    uint8) into device pointer ``out`` ((3, dst_h, dst_w) float16 if ``half`` else float32) on
    ``stream``, after making ``stream`` wait (CUDA events) for each of ``wait_streams``. Returns
    without synchronising; GIL released. ValueError for host pointers or mixed devices,
    RuntimeError with CUDA's message on failure. Prefer caper_edge.preprocess.letterbox_cuda.
    """

def depth_to_meters_into(depth: np.ndarray, out: np.ndarray, depth_scale: float, invalid_value: float) -> None:
    """out = depth * depth_scale where depth != 0, else invalid_value. depth: C-contiguous uint16
    (any shape); out: writeable C-contiguous float32 of the same size, written in place. GIL released."""

def median_depth(depth: np.ndarray, xyxy: np.ndarray, depth_scale: float, inner_fraction: float) -> np.ndarray:
    """(n,) float32 metres: numpy.median of the non-zero values of (H, W) uint16 ``depth`` inside
    each (n, 4) float32 box (pixel (u, v) covers [u, u+1) x [v, v+1); box first shrunk about its
    centre to ``inner_fraction``), times depth_scale; NaN where a box holds no valid pixel.
    Radix selection, no copy of the values; GIL released. Prefer caper_edge.preprocess.median_depth."""

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

# --- track (LAPJV assignment, Kalman box filter, basket tracker) -----------------------------

def linear_assignment(cost: Any, cost_limit: float = ...) -> tuple[np.ndarray, np.ndarray]:
    """Optimal rectangular assignment (Jonker-Volgenant). ``cost`` (n_rows, n_cols): float64 or
    float32 C-contiguous arrays are read in place, anything else is converted to float64 once;
    +inf = forbidden pair (never returned), NaN / -inf raise ValueError. ``cost_limit`` inf: the
    least-cost assignment of maximum cardinality (scipy's optimum when all entries are finite;
    rows/columns without allowed pairs stay unassigned). Finite L: the optimum of
    lap.lapjv(cost, extend_cost=True, cost_limit=L) (matched cost + L/2 per unassigned row and
    column). Returns (rows, cols) int64, sorted by row. GIL released from 1024 entries up."""

class KalmanBoxFilter:
    """Constant-velocity filter on (cx, cy, w, h, vcx, vcy, vw, vh); noise standard deviations are
    fractions of the box size. Every method takes and returns (mean (8,), covariance (8, 8))
    float64; dt is in steps (frames)."""

    position_std: float
    velocity_std: float
    measurement_std: float
    def __init__(self, position_std: float = 0.05, velocity_std: float = 0.00625, measurement_std: float = 0.05) -> None: ...
    def initiate(self, xywh: Any) -> tuple[np.ndarray, np.ndarray]: ...
    def predict(self, mean: Any, covariance: Any, dt: float = 1.0) -> tuple[np.ndarray, np.ndarray]: ...
    def update(self, mean: Any, covariance: Any, xywh: Any) -> tuple[np.ndarray, np.ndarray]: ...
    def transition_matrix(self, dt: float = 1.0) -> np.ndarray:
        """F (8, 8)."""
    def process_noise(self, mean: Any, dt: float = 1.0) -> np.ndarray:
        """Q (8, 8) that predict() adds for this mean."""
    def measurement_noise(self, mean: Any) -> np.ndarray:
        """R (4, 4) that update() uses with this (predicted) mean."""

class TrackerParams:
    """Plain record of the C++ tracker's parameters; fields as caper_edge.config.TrackerConfig,
    except basket_polygon (flat x0, y0, x1, y1, ...) and basket_depth_min_m / basket_depth_max_m."""

    high_score_threshold: float
    low_score_threshold: float
    new_track_score_threshold: float
    match_cost_limit: float
    min_iou: float
    low_score_min_iou: float
    unconfirmed_min_iou: float
    appearance_weight: float
    appearance_gate: float
    rest_appearance_gate: float
    reid_max_appearance_distance: float
    reid_max_displacement: float
    embedding_momentum: float
    class_gating: bool
    duplicate_iou: float
    confirm_hits: int
    lost_timeout_s: float
    outside_lost_timeout_s: float
    rest_lost_timeout_s: float
    rest_max_displacement: float
    rest_min_duration_s: float
    frame_period_s: float
    kalman_position_std: float
    kalman_velocity_std: float
    kalman_measurement_std: float
    basket_polygon: list[float]
    basket_depth_min_m: float
    basket_depth_max_m: float
    zone_enter_dwell_s: float
    zone_leave_dwell_s: float
    zone_min_frames: int
    zone_class_ids: list[int]
    sku_temperature: float
    sku_half_life_s: float
    sku_evidence_span: float
    sku_top_k: int
    def __init__(self) -> None: ...

class Tracker:
    """The C++ basket tracker; prefer caper_edge.track.Tracker (it converts inputs and wraps results).
    ValueError on bad parameters."""

    frame_count: int
    last_t_ns: int
    embedding_dim: int
    n_sku: int
    params: TrackerParams
    def __init__(self, params: TrackerParams) -> None: ...
    def update(
        self,
        xyxy: np.ndarray,
        score: np.ndarray,
        class_id: np.ndarray,
        embedding: np.ndarray | None = None,
        depth_m: np.ndarray | None = None,
        t_ns: int | None = None,
        sku_similarity: np.ndarray | None = None,
    ) -> tuple[tuple[np.ndarray, ...], list[tuple[int, int, int, int, int]]]:
        """One frame. xyxy (n, 4) float32, score (n,) float32, class_id (n,) int32, embedding (n, D)
        float32, depth_m (n,) float32 (NaN = unknown), sku_similarity (n, S) float32, all C-contiguous
        and read in place; GIL released. Returns (columns, transitions): columns are track_id int64,
        xyxy (k, 4) float32, score, class_id, state uint8, zone uint8, at_rest bool, det_index int32,
        sku_ids (k, top_k) int32, sku_prob (k, top_k) float32, t_first_ns, t_last_ns int64 of the
        confirmed tracks matched in this frame; transitions are (kind, track_id, class_id, t_ns,
        decided_t_ns) with kind 0 entered_basket, 1 left_basket, 2 expired_in_basket. ValueError
        naming the input, row and value on malformed input (the tracker is then unchanged)."""
    def all_tracks(self, include_tentative: bool = False) -> tuple[np.ndarray, ...]:
        """Columns (as update's) of every live confirmed track, tracked and lost."""
    def reset(self) -> None:
        """Forget every track; IDs restart at 1."""

# --- scale (weight-event detector) ------------------------------------------------------------

class WeightEventParams:
    """Parameters of WeightEventDetector; defaults = caper_edge/default.toml [scale.events].

    Prefer caper_edge.scale.WeightEventDetector(**params), which validates names and types.
    docs/weight_events.md explains each parameter's trade-off.
    """

    sample_rate_hz: float
    noise_g: float
    noise_adapt_s: float
    min_delta_g: float
    trigger_sigmas: float
    active_std_sigmas: float
    settle_window_s: float
    settle_std_sigmas: float
    settle_flat_sigmas: float
    approach_tol_frac: float
    baseline_window_s: float
    guard_s: float
    motion_holdoff_s: float
    use_motion_flag: bool
    provisional_tol_frac: float
    hf_gate_ratio: float
    max_gap_s: float
    def __init__(self) -> None: ...
    def validate(self) -> None:
        """Raise ValueError naming the first parameter out of range."""

class WeightEvent:
    """A change of the static load. kind: 'settled', 'provisional' or 'cancelled'; times int64 ns
    in the pushed samples' time base (t_decided_ns = the sample whose push returned it); grams for
    delta_g, sigma_g, level_g; cell_delta_g (4 grams) and cop ((u, v)) are None unless per-cell
    grams were pushed."""

    t_start_ns: int
    t_settled_ns: int
    t_decided_ns: int
    delta_g: float
    sigma_g: float
    level_g: float
    kind: str
    provisional: bool
    cancelled: bool
    cell_delta_g: tuple[float, float, float, float] | None
    cop: tuple[float, float] | None
    def as_dict(self) -> dict[str, Any]: ...

class WeightEventDetector:
    """Stable/active segmentation of a calibrated scale stream (ring buffer of 1024 samples,
    ~60 KB; no allocation per sample except returned events). Not thread-safe."""

    def __init__(self, params: WeightEventParams = ...) -> None: ...
    def push(self, t_ns: int, grams: float, flags: int = 0) -> list[WeightEvent]:
        """One sample (total grams); events decided by it. Does not release the GIL (~100 ns)."""
    def push_cells(self, t_ns: int, cells: list[float], flags: int = 0) -> list[WeightEvent]:
        """One sample as 4 per-cell grams; events carry cell_delta_g and cop."""
    def push_many(self, t_ns: np.ndarray, grams: np.ndarray, flags: np.ndarray | None = None) -> list[WeightEvent]:
        """t_ns (n,) int64; grams (n,) float64 totals or (n, 4) float64 per-cell; flags (n,) uint8
        or None; all C-contiguous, not copied. Releases the GIL."""
    def reset(self) -> None: ...
    state: str
    baseline_g: float
    noise_estimate_g: float
    params: WeightEventParams
    stats: dict[str, int]
