"""Configuration: one commented default TOML, partial overrides, frozen validated objects.

``caper_edge/default.toml`` is the single source of the defaults and documents every key with
its unit. A user file overrides it key by key; environment variables named
``CAPER_EDGE__<SECTION>__<KEY>`` (value written as TOML, e.g. ``CAPER_EDGE__PREPROCESS__SIZE='[320, 320]'``)
override both. The merged table is converted into frozen dataclasses whose field types are
checked; every error names the key, the value and what was expected.

Adding a section: declare a frozen dataclass below (field types only, no defaults: the defaults
live in default.toml), add it as a field of :class:`Config`, and document its keys in
default.toml. Range checks go in the dataclass's ``__post_init__`` through :func:`check`.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError

ENV_PREFIX = "CAPER_EDGE__"


def check(ok: bool, key: str, value: Any, expected: str) -> None:
    """Raise :class:`ConfigError` naming ``key`` and ``value`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"config key {key} = {value!r}: expected {expected}")


# ---------------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreprocessConfig:
    """Letterbox parameters of the detector input (see caper_edge.preprocess.letterbox)."""

    size: tuple[int, int]
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    pad_value: int
    dtype: Literal["float32", "float16"]

    def __post_init__(self) -> None:
        check(all(s > 0 for s in self.size), "preprocess.size", self.size, "two positive integers [H, W]")
        check(all(s != 0 for s in self.std), "preprocess.std", self.std, "three non-zero numbers")
        check(0 <= self.pad_value <= 255, "preprocess.pad_value", self.pad_value, "an integer in 0..255")


@dataclass(frozen=True)
class DetectConfig:
    """Decode + NMS of the detector head (see caper_edge.detect.decode and docs/detect.md)."""

    conf_threshold: float
    iou_threshold: float
    max_detections: int
    class_agnostic: bool

    def __post_init__(self) -> None:
        check(0.0 <= self.conf_threshold <= 1.0, "detect.conf_threshold", self.conf_threshold, "a score in [0, 1]")
        check(0.0 <= self.iou_threshold <= 1.0, "detect.iou_threshold", self.iou_threshold, "an IoU in [0, 1]")
        check(self.max_detections >= 1, "detect.max_detections", self.max_detections, "a number of boxes >= 1")


@dataclass(frozen=True)
class ScaleCalibrationConfig:
    """Per-cell calibration: grams = sum_i (raw_i - offsets[i]) * gains[i] (see docs/scale_protocol.md)."""

    offsets: tuple[float, float, float, float]
    gains: tuple[float, float, float, float]

    def __post_init__(self) -> None:
        check(all(abs(o) < 2**23 for o in self.offsets), "scale.calibration.offsets", self.offsets,
              "4 counts inside the signed 24-bit range")
        check(all(0.0 < g < 100.0 for g in self.gains), "scale.calibration.gains", self.gains,
              "4 positive gains in grams per count (HX711-class cells: about 0.001..1)")


@dataclass(frozen=True)
class ScaleEventsConfig:
    """Weight-event detector parameters (caper_edge.scale.WeightEventDetector; docs/weight_events.md).

    Ranges are checked by the detector itself, which names the parameter and the value.
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


@dataclass(frozen=True)
class ScaleConfig:
    """Scale MCU link: where it is, how to reconnect, how its clock maps onto the host's."""

    port: str
    baud: int
    read_timeout_s: float
    reconnect_initial_s: float
    reconnect_max_s: float
    stale_after_s: float
    queue_size: int
    clock_window_s: float
    clock_max_drift_ppm: float
    calibration: ScaleCalibrationConfig
    events: ScaleEventsConfig

    def __post_init__(self) -> None:
        check(bool(self.port), "scale.port", self.port, "a device path or pyserial URL")
        check(self.baud > 0, "scale.baud", self.baud, "a positive baud rate")
        check(0 < self.read_timeout_s <= 1, "scale.read_timeout_s", self.read_timeout_s, "seconds in (0, 1]")
        check(0 < self.reconnect_initial_s <= self.reconnect_max_s, "scale.reconnect_initial_s",
              self.reconnect_initial_s, f"seconds in (0, reconnect_max_s = {self.reconnect_max_s}]")
        check(self.stale_after_s > 0, "scale.stale_after_s", self.stale_after_s, "positive seconds")
        check(self.queue_size > 0, "scale.queue_size", self.queue_size, "a positive number of samples")
        check(self.clock_window_s > 0, "scale.clock_window_s", self.clock_window_s, "positive seconds")
        check(0 <= self.clock_max_drift_ppm <= 10000, "scale.clock_max_drift_ppm", self.clock_max_drift_ppm,
              "parts per million in 0..10000")


@dataclass(frozen=True)
class TensorRTConfig:
    """TensorRT engine cache and build policy (see docs/engines.md)."""

    cache_dir: str
    precision: Literal["fp32", "fp16", "int8"]
    allow_build: bool
    workspace_mib: int
    device: int

    def __post_init__(self) -> None:
        check(bool(self.cache_dir), "engines.tensorrt.cache_dir", self.cache_dir, "a folder path")
        check(self.workspace_mib > 0, "engines.tensorrt.workspace_mib", self.workspace_mib, "a positive number of MiB")
        check(self.device >= 0, "engines.tensorrt.device", self.device, "a CUDA device index >= 0")


@dataclass(frozen=True)
class EnginesConfig:
    """Which backend runs the models and how (see caper_edge.engines)."""

    backend: Literal["auto", "onnxruntime", "tensorrt"]
    intra_op_threads: int
    inter_op_threads: int
    use_cuda: bool
    io_binding: Literal["auto", "on", "off"]
    warmup_runs: int
    tensorrt: TensorRTConfig

    def __post_init__(self) -> None:
        check(self.intra_op_threads >= 0, "engines.intra_op_threads", self.intra_op_threads, "threads >= 0 (0: one per core)")
        check(self.inter_op_threads >= 0, "engines.inter_op_threads", self.inter_op_threads, "threads >= 0 (0: ORT default)")
        check(self.warmup_runs >= 0, "engines.warmup_runs", self.warmup_runs, "a number of runs >= 0")


@dataclass(frozen=True)
class ModelsConfig:
    """Model and gallery files ("" selects the one shipped in the package)."""

    detector: str
    embedder: str
    gallery: str
    detector_classes: tuple[str, ...]
    embed_turns: int
    turn_cycle: bool

    def __post_init__(self) -> None:
        check(len(self.detector_classes) > 0, "models.detector_classes", self.detector_classes, "at least one class name")
        check(self.embed_turns in (1, 2, 4), "models.embed_turns", self.embed_turns, "1, 2 or 4")


@dataclass(frozen=True)
class PublishConfig:
    """ZeroMQ PUB/REP endpoints and the JSONL sink (see docs/events.md)."""

    pub: str
    rep: str
    send_hwm: int
    events_jsonl: str
    jsonl_fsync: Literal["never", "always"]
    curve_keys: str
    curve_on_loopback: bool
    max_request_bytes: int
    events_since_max: int
    heartbeat_ivl_ms: int

    def __post_init__(self) -> None:
        for key in ("pub", "rep"):
            value = getattr(self, key)
            check("://" in value, f"publish.{key}", value, "a ZeroMQ endpoint like tcp://127.0.0.1:5556")
        check(self.send_hwm > 0, "publish.send_hwm", self.send_hwm, "a positive number of messages")
        check(self.max_request_bytes >= 64, "publish.max_request_bytes", self.max_request_bytes, "bytes >= 64")
        check(self.events_since_max >= 1, "publish.events_since_max", self.events_since_max, "events >= 1")
        check(self.heartbeat_ivl_ms >= 0, "publish.heartbeat_ivl_ms", self.heartbeat_ivl_ms, "milliseconds >= 0")


@dataclass(frozen=True)
class JournalConfig:
    """The SQLite event journal (see caper_edge.journal)."""

    path: str
    synchronous: Literal["FULL", "NORMAL"]
    max_size_mb: int
    retain_events: int

    def __post_init__(self) -> None:
        check(self.max_size_mb >= 0, "journal.max_size_mb", self.max_size_mb, "MiB >= 0 (0: no cap)")
        check(self.retain_events >= 0, "journal.retain_events", self.retain_events, "a number of events >= 0")


@dataclass(frozen=True)
class SupervisorConfig:
    """The worker process, its restarts, systemd notification and health (see docs/deployment.md)."""

    pipeline: str
    start_timeout_s: float
    heartbeat_interval_s: float
    watchdog_stall_s: float
    hang_timeout_s: float
    backoff_initial_s: float
    backoff_max_s: float
    stable_after_s: float
    stop_timeout_s: float
    health_interval_s: float

    def __post_init__(self) -> None:
        module, _, attr = self.pipeline.partition(":")
        check(bool(module) and bool(attr), "supervisor.pipeline", self.pipeline, "'package.module:factory'")
        for key in ("start_timeout_s", "heartbeat_interval_s", "watchdog_stall_s", "hang_timeout_s",
                    "backoff_initial_s", "stop_timeout_s", "health_interval_s"):
            check(getattr(self, key) > 0, f"supervisor.{key}", getattr(self, key), "positive seconds")
        check(self.backoff_max_s >= self.backoff_initial_s, "supervisor.backoff_max_s", self.backoff_max_s,
              f"seconds >= supervisor.backoff_initial_s ({self.backoff_initial_s})")
        check(self.stable_after_s >= 0, "supervisor.stable_after_s", self.stable_after_s, "seconds >= 0")
        check(self.hang_timeout_s > self.heartbeat_interval_s, "supervisor.hang_timeout_s", self.hang_timeout_s,
              f"more than supervisor.heartbeat_interval_s ({self.heartbeat_interval_s})")


@dataclass(frozen=True)
class LogConfig:
    """Log level and format (JSON lines under systemd, text in a terminal)."""

    level: Literal["debug", "info", "warning", "error"]
    format: Literal["auto", "json", "text"]


@dataclass(frozen=True)
class CameraConfig:
    """Live RealSense camera (caper_edge.sources.RealSenseSource) and colour/depth pairing."""

    serial: str
    width: int
    height: int
    fps: int
    depth_fps: int
    auto_exposure: bool
    exposure_us: int
    gain: int
    white_balance_k: int
    frame_timeout_ms: int
    reconnect_min_s: float
    reconnect_max_s: float
    max_depth_gap_ms: float

    def __post_init__(self) -> None:
        check(self.width > 0 and self.height > 0, "camera.width/height", (self.width, self.height), "positive pixels")
        check(self.fps > 0, "camera.fps", self.fps, "frames per second > 0")
        check(self.depth_fps > 0, "camera.depth_fps", self.depth_fps, "frames per second > 0")
        check(self.exposure_us > 0, "camera.exposure_us", self.exposure_us, "microseconds > 0")
        check(self.gain >= 0, "camera.gain", self.gain, "a gain >= 0")
        check(self.white_balance_k == 0 or 2800 <= self.white_balance_k <= 6500, "camera.white_balance_k",
              self.white_balance_k, "0 (auto) or kelvin in 2800..6500")
        check(self.frame_timeout_ms > 0, "camera.frame_timeout_ms", self.frame_timeout_ms, "milliseconds > 0")
        check(0 < self.reconnect_min_s <= self.reconnect_max_s, "camera.reconnect_min_s", self.reconnect_min_s,
              f"seconds in (0, reconnect_max_s = {self.reconnect_max_s}]")
        check(self.max_depth_gap_ms >= 0, "camera.max_depth_gap_ms", self.max_depth_gap_ms, "milliseconds >= 0")


@dataclass(frozen=True)
class SimConfig:
    """Cart simulator (caper_edge.sim) and the bags ``caper-edge sim`` writes."""

    fps: float
    depth_every: int
    jpeg_quality: int
    compression: Literal["zstd", "none"]
    color_noise: float

    def __post_init__(self) -> None:
        check(1 <= self.fps <= 120, "sim.fps", self.fps, "frames per second in 1..120")
        check(self.depth_every >= 1, "sim.depth_every", self.depth_every, "an integer >= 1")
        check(1 <= self.jpeg_quality <= 100, "sim.jpeg_quality", self.jpeg_quality, "an integer in 1..100")
        check(0 <= self.color_noise <= 20, "sim.color_noise", self.color_noise, "grey levels in 0..20")


@dataclass(frozen=True)
class RecorderConfig:
    """Live session recording (caper_edge.sources.Recorder)."""

    dir: str
    prefix: str
    rotate_mb: float
    rotate_minutes: float
    jpeg_quality: int
    compression: Literal["zstd", "none"]
    chunk_seconds: float
    fsync: bool

    def __post_init__(self) -> None:
        check(self.rotate_mb >= 0, "recorder.rotate_mb", self.rotate_mb, "megabytes >= 0 (0: no size rotation)")
        check(self.rotate_minutes >= 0, "recorder.rotate_minutes", self.rotate_minutes, "minutes >= 0 (0: no time rotation)")
        check(1 <= self.jpeg_quality <= 100, "recorder.jpeg_quality", self.jpeg_quality, "an integer in 1..100")
        check(self.chunk_seconds > 0, "recorder.chunk_seconds", self.chunk_seconds, "seconds > 0")


@dataclass(frozen=True)
class TrackerConfig:
    """The basket tracker (caper_edge.track.Tracker; docs/tracker.md). Units are in the names.

    Every field says what raising or lowering it trades off; the defaults and the same notes are
    in default.toml's [tracker] section.
    """

    high_score_threshold: float
    """Detections scoring at least this join the first association and can start tracks. Higher:
    fewer false tracks, but partly hidden items fall to the weaker IoU-only second stage."""
    low_score_threshold: float
    """Detections below this are ignored. Lower keeps tracks alive through heavier occlusion, but
    lets false positives extend tracks that should have ended."""
    new_track_score_threshold: float
    """An unmatched detection starts a track only if it scores at least this. Higher: fewer
    spurious IDs; lower: items are picked up sooner after appearing."""
    match_cost_limit: float
    """First stage: largest fused cost (IoU distance blended with cosine distance, 0..2) accepted
    as a match. Higher keeps IDs through fast motion, risks matching neighbours."""
    min_iou: float
    """First-stage motion gate: pairs overlapping less are forbidden unless a lost track is being
    re-identified by appearance. Higher: fewer wrong matches, more lost tracks on fast motion."""
    low_score_min_iou: float
    """Second stage (low-score detections, IoU only): minimum IoU. Lower rescues more occluded
    tracks, but a hand's low-score box can then continue an item's track."""
    unconfirmed_min_iou: float
    """Tentative tracks: minimum IoU with a detection to stay alive. Lower confirms fast movers,
    but also confirms flickering false positives."""
    appearance_weight: float
    """Weight of the cosine distance in the fused cost (the IoU distance gets 1 - this). Higher
    trusts the embedding over motion: better through crossings, worse for lookalike products."""
    appearance_gate: float
    """Cosine distance above which a pair is forbidden whatever its overlap. Lower prevents more
    identity swaps between different products, but rejects true matches with poor crops (motion
    blur, a hand covering half the item)."""
    rest_appearance_gate: float
    """The same gate for a track at rest, applied in every stage including the low-score one
    (whose IoU-only matching would otherwise let a product put down on or over a resting one
    continue the resting product's track). The stricter of the two gates applies. Lower stops more
    such take-overs, but a resting product seen partly hidden may lose its track for a while."""
    reid_max_appearance_distance: float
    """A lost track may be re-found without any overlap when the cosine distance is below this.
    Higher re-identifies items moved while hidden, but risks taking over a lookalike's identity."""
    reid_max_displacement: float
    """... and when the detection is within this many box diagonals of where the track was last
    seen. Higher follows items moved further under the hand, with more chance of a wrong take-over."""
    embedding_momentum: float
    """EMA weight of a track's old embedding (0..1). Higher: a stable appearance that ignores bad
    crops; lower: adapts faster to an item turned over in the hand."""
    class_gating: bool
    """Never match a detection to a track of another class (a hand never continues an item)."""
    duplicate_iou: float
    """A tracked track overlapping a lost one of the same class and look by more than this IoU is
    merged into the older identity. Lower merges more duplicates, but can merge touching items."""
    confirm_hits: int
    """Consecutive matches that confirm a new track (and give it an ID). Higher filters flicker,
    delays the first report of an item by that many frames."""
    lost_timeout_s: float
    """A lost track in (or entering) the basket that was not at rest is removed after this many
    seconds. Longer keeps IDs through longer occlusions, risks stale tracks being re-matched."""
    outside_lost_timeout_s: float
    """A lost track outside the basket is removed after this many seconds: items leave through the
    image edge, so a short value frees their identity quickly."""
    rest_lost_timeout_s: float
    """A lost track that was at rest inside the basket survives this many seconds: hands cover
    resting items for seconds at a time and the item has not gone anywhere. Longer keeps the ID
    through longer burials under other items; a removed item's ghost lives that long."""
    rest_max_displacement: float
    """A track is at rest when its detected centre stays within this many box diagonals of where it
    settled ... Higher tolerates jittery boxes, but calls slowly carried items at rest."""
    rest_min_duration_s: float
    """... for at least this many seconds (then it earns rest_lost_timeout_s). Longer avoids granting
    long lifetimes to items paused mid-air; shorter protects items covered soon after landing."""
    frame_period_s: float
    """Nominal frame period in seconds: the Kalman step unit, and the time step when update() gets
    no t_ns."""
    kalman_position_std: float
    """Kalman process noise of position and size per frame, as a fraction of the box size. Higher
    follows sudden moves faster; lower smooths jitter more."""
    kalman_velocity_std: float
    """Kalman process noise of the velocities per frame, fraction of the box size. Higher adapts
    to accelerations faster; lower gives steadier predictions through occlusion."""
    kalman_measurement_std: float
    """Detection noise, fraction of the box size. Higher trusts the motion model over detections
    (smoother, laggier boxes); lower follows the detections closely."""
    basket_polygon: tuple[tuple[float, float], ...]
    """The basket opening in image pixels, [[x, y], ...] (three or more vertices); empty: the whole
    image. A detection's box centre inside it (and depth in range) is 'in the basket'."""
    basket_depth_range_m: tuple[float, float]
    """Depth range [near, far] in metres of the basket interior; a detection with a known depth
    outside it is not in the basket (an item held above the basket is nearer the camera)."""
    zone_enter_dwell_s: float
    """Seconds an item must be seen in the basket before entered_basket commits. Longer rejects
    items merely passing over the basket; delays the event by as much."""
    zone_leave_dwell_s: float
    """Seconds an item must be seen outside before left_basket commits (same trade-off)."""
    zone_min_frames: int
    """Observations in the new zone also needed before a transition commits (guards against a
    dwell met by two observations around an occlusion gap)."""
    zone_class_ids: tuple[int, ...]
    """Classes whose tracks have a basket zone and report transitions (items, not hands); [] = all."""
    sku_temperature: float
    """Softmax temperature of the gallery similarities in the SKU posterior. Lower makes each frame's
    evidence sharper (fast but overconfident); higher needs more frames to be sure."""
    sku_half_life_s: float
    """SKU evidence this many seconds old counts half. Shorter lets later, better views override an
    early wrong guess; longer accumulates more evidence."""
    sku_evidence_span: float
    """How far a SKU's log evidence may trail the leading SKU's (nats; 0 = unbounded): beyond it
    only the logarithm of the rest of the deficit is kept, so runners-up keep their order. A bound
    lets a product that takes over a track (a hand-over, a product put where another lay)
    overturn the old product's posterior within about span / margin frames; a low one also lets a
    few frames of a box over two products turn a track, and keeps every track a little unsure
    (no runner-up far below e^-span)."""
    sku_top_k: int
    """SKUs reported per track (sku_ids, sku_prob)."""

    def __post_init__(self) -> None:
        for key in ("high_score_threshold", "low_score_threshold", "new_track_score_threshold", "min_iou",
                    "low_score_min_iou", "unconfirmed_min_iou", "appearance_weight", "duplicate_iou"):
            value = getattr(self, key)
            check(0.0 <= value <= 1.0, f"tracker.{key}", value, "a number in [0, 1]")
        check(self.low_score_threshold <= self.high_score_threshold, "tracker.low_score_threshold",
              self.low_score_threshold, f"<= tracker.high_score_threshold ({self.high_score_threshold})")
        check(0.0 < self.match_cost_limit <= 2.0, "tracker.match_cost_limit", self.match_cost_limit, "a cost in (0, 2]")
        for key in ("appearance_gate", "rest_appearance_gate", "reid_max_appearance_distance"):
            check(0.0 <= getattr(self, key) <= 2.0, f"tracker.{key}", getattr(self, key), "a cosine distance in [0, 2]")
        check(0.0 <= self.embedding_momentum < 1.0, "tracker.embedding_momentum", self.embedding_momentum,
              "a number in [0, 1)")
        for key in ("reid_max_displacement", "lost_timeout_s", "outside_lost_timeout_s", "rest_lost_timeout_s",
                    "rest_max_displacement", "rest_min_duration_s", "zone_enter_dwell_s", "zone_leave_dwell_s"):
            check(getattr(self, key) >= 0.0, f"tracker.{key}", getattr(self, key), "a number >= 0")
        for key in ("frame_period_s", "kalman_position_std", "kalman_velocity_std", "kalman_measurement_std",
                    "sku_temperature", "sku_half_life_s"):
            check(getattr(self, key) > 0.0, f"tracker.{key}", getattr(self, key), "a number > 0")
        check(self.sku_evidence_span >= 0.0, "tracker.sku_evidence_span", self.sku_evidence_span,
              "a number of nats >= 0 (0 = unbounded)")
        check(self.confirm_hits >= 1, "tracker.confirm_hits", self.confirm_hits, "an integer >= 1")
        check(self.zone_min_frames >= 1, "tracker.zone_min_frames", self.zone_min_frames, "an integer >= 1")
        check(1 <= self.sku_top_k <= 64, "tracker.sku_top_k", self.sku_top_k, "an integer in 1..64")
        check(len(self.basket_polygon) == 0 or len(self.basket_polygon) >= 3, "tracker.basket_polygon",
              self.basket_polygon, "three or more [x, y] vertices in pixels, or [] for the whole image")
        near, far = self.basket_depth_range_m
        check(0.0 <= near <= far, "tracker.basket_depth_range_m", self.basket_depth_range_m,
              "[near, far] metres with 0 <= near <= far")


@dataclass(frozen=True)
class FusionConfig:
    """Vision-weight fusion (caper_edge.fusion.Fusion); default.toml [fusion] and docs/fusion.md
    give each key's unit and trade-off."""

    mode: Literal["fusion", "vision_only", "weight_only"]
    pair_before_s: float
    add_pair_after_s: float
    resighted_wait_s: float
    """How long a rise explained only by re-sightings waits after it settled for the new
    product's own track."""
    remove_pair_after_s: float
    absorb_window_s: float
    unseen_hold_s: float
    unseen_removal_hold_s: float
    resume_tolerance_g: float
    swap_window_s: float
    exchange_prior: float
    """Prior that an unseen fall is one hand visit exchanging products (a rise and a fall that
    never settled apart), weighed against an unseen removal (0: off)."""
    putback_window_s: float
    putback_after_swap: bool
    """A unit taken out in an exchange that raised ``weight_mismatch`` may come back as a
    put-back too (false: a rise of its weight nobody saw is ``unexpected_weight``)."""
    weight_wait_s: float
    decision_timeout_s: float
    commit_posterior: float
    scale_noise_g: float
    relative_error: float
    z_prune: float
    max_units: int
    max_qty_per_track: int
    multi_unit_prior: float
    extra_unit_prior: float
    spare_hand_prior: float
    """Prior of a unit put down by a hand in view that no track carried in, added to
    ``extra_unit_prior``'s (0: off); ``extra_unit_prior + spare_hand_prior`` must stay below 1."""
    hand_lead_s: float
    spare_glimpse_weight: float
    """The SKUs glimpsed around a change with a spare hand get this times ``spare_hand_prior``
    more, in proportion to their glimpse frames, on top of its spread over the catalogue (0:
    off)."""
    extra_runner_up_share: float
    extra_runner_up_ranks: int
    extra_other_look_share: float
    other_look_evidence: bool
    own_look_returns: bool
    """An explained track's other looks before its latest one name no second product when that
    latest look shows its explained product again where they lay: a hand covered it."""
    own_look_drift: bool
    """... nor, wherever they lay, when that latest look lies where an earlier look of the track
    showed an explained product: the track's box drifted onto a hand and back."""
    unit_places: bool
    """A removal no track accounts for is weighed by where the basket's units of each SKU lay
    (their booked tracks' floor positions) against its centre of pressure (needs ``cop_std``)."""
    spurious_track_prior: float
    in_place_max_travel: float
    in_place_spurious_prior: float
    reentry_spurious_prior: float
    reentry_labels: int
    """Labels a re-entry (an in-place track that looks like a product already in the basket) may
    take: its this many most probable SKUs. More lets a weak candidate of a re-sighting explain
    an unseen weight change (a hidden item booked instead of an alarm)."""
    reentry_max_move: float
    """An in-place entry of a booked track whose top SKU is a look-alike of the product it brought
    in is that product seen again when the track lies within this distance (fraction of the
    floor) of where it lay a second before (0: never; only the same SKU is)."""
    resighted_tracks_booked: bool
    booked_tracks_resighted: bool
    """An in-place entry of a track that brought a product still in the basket is that product
    seen again (prior ``reentry_spurious_prior``), whatever it looks like now -- mostly the
    product under or through a hand -- unless the track moved more than ``reentry_max_move``
    from where it lay a second before (then it was handed a new product)."""
    carried_look_resighted: bool
    """A track found in place during an add, looking like a product carried in with it (its top
    SKU a carried track's top SKU or a look-alike), is priced at ``reentry_spurious_prior``: most
    often that product seen again through another box."""
    seen_extra_units: bool
    revise_guesses: bool
    revise_by_group: bool
    """A late track whose look gives ``mismatch_vision_min`` only to a look-alike group together
    revises a guess into the one member of the group that weighs like it."""
    revise_wait_s: float
    """How long after it crossed into the basket a carried-in track that would revise an add
    (``revise_guesses``) waits for a weight change of its own to start and claim it, before it
    revises the add (0: it revises at once; at most ``weight_wait_s`` after it was decided). A
    track found in place revises at once: its product's weight is in already."""
    reread_window_s: float
    """How long after an add a removal that its booked units do not explain may re-read it
    (0: never): when the fall fits the basket poorly (best explanation an outlier, or further than
    ``reread_min_z`` standard deviations) and another explanation the add had makes the fall fit,
    the add is revised to the most probable other reading when the two changes together give
    the other readings ``reread_min_posterior``."""
    reread_min_z: float
    reread_min_prob: float
    reread_min_posterior: float
    alarm_return_window_s: float
    """How long after a rise raised as ``unexpected_weight`` (never booked) a fall that no basket
    units explain and that weighs the same (within ``cancel_sigmas``) is that product taken out
    again, committed with no alarm (0: never; every such fall is an alarm)."""
    audit_window_s: float
    """How long after an add is committed the resting looks of its carried-in tracks, and the
    census of resting products (for units booked on the weight alone), may revise it (0: never):
    a steadily contrary look for ``audit_min_s``, or a steady census surplus, makes fusion explain
    the weight change again with it and book what that explanation names instead."""
    audit_min_s: float
    audit_min_prob: float
    audit_min_posterior: float
    census_units: bool
    """An add no track carried in is booked as the SKU the basket shows more of, steadily, than
    it holds (a census of resting products seen confidently), when the weight fits one unit of it."""
    census_min_prob: float
    census_min_s: float
    census_min_share: float
    census_groups: bool
    """The census also counts resting products whose look gives only their look-alike group
    together at least ``census_group_min_prob``; the census audit takes such a group's surplus as a
    product seen (a look split over the group's members), and tries all the surplus products
    together after each alone."""
    census_group_min_prob: float
    """What a resting product's look must give its top SKU's look-alike group together to count
    for the group (``census_groups``): lower than ``census_min_prob``, since the look's tempered
    softmax spreads a third of its mass or more over the rest of the catalogue when two or three
    members share it."""
    census_audit_weak: bool
    """The census audit may take back any unit an add booked below ``commit_posterior`` (one a
    track carried on a weak look too), not only the units no track carried."""
    census_audit_short: bool
    """The census audit may take back the units of an add whose SKU the census saw fewer of at
    rest than the basket holds in every frame of the last ``census_min_s`` (nothing resting
    looks like them), and audits every add; a unit booked at or above ``commit_posterior`` only
    when the track it was booked on rests looking steadily like another product
    (``census_resting_looks``)."""
    census_nested_ios: float
    """A resting product counted by the census whose box lies at least this share inside a
    bigger counted box of the same product or look-alike group is not counted again (0: off)."""
    census_resting_looks: bool
    """The census audit weighs an add's tracks that rest inside the basket, looking steadily
    like one product (or one look-alike group), by their current look instead of the look they
    were decided on."""
    census_ends_resighted_wait: bool
    """A rise explained only by products found again in place is committed as soon as the census
    steadily counts the new units at rest, instead of waiting ``resighted_wait_s`` for their own
    tracks."""
    glimpse_units: bool
    """An add no track accounts for is booked as the SKU that item detections no confirmed track
    took (a product carried in too fast or too hidden for a track to start) confidently showed
    around it, when the weight fits one unit of it."""
    glimpse_min_prob: float
    glimpse_min_frames: int
    glimpse_max_iou: float
    glimpse_max_iou_other: float
    """A detection no track took that overlaps item tracks by more than ``glimpse_max_iou`` but
    at most this is still a glimpse when each of those tracks looks like another product (its
    top SKU neither the detection's nor a look-alike): a neighbour, not a second box on it."""
    glimpse_groups: bool
    """A detection whose top SKU falls short of ``glimpse_min_prob`` is a glimpse of its
    look-alike group when the group reaches it together; a rise still unaccounted for when its
    unseen hold ends is booked from all glimpses, each counting for its SKU's look-alikes too
    (the weight picks the member), instead of the alarm."""
    glimpse_weak_min_prob: float
    """A detection no track took whose look reaches only this (0: off) is a weak glimpse; a rise
    still unaccounted for when its unseen hold ends, with no other glimpse that fits, is booked
    as the SKU weakly glimpsed in ``glimpse_weak_min_frames`` frames since it started, when one
    unit of it fits."""
    glimpse_weak_min_frames: int
    glimpse_weak_fresh_iou: float
    """A weak glimpse whose box overlaps by at least this (0: off) the box of a glimpse (any
    kind) of the same SKU or a look-alike seen from ``pair_before_s`` to half of it before the
    rise started is of a product that lay there already, and is no evidence of the rise's."""
    glimpse_weak_resighted: bool
    """A weak-glimpse booking counts a glimpse whose top SKU is already in the basket for that
    SKU alone, not for its look-alikes: that product seen again (its track lost under the hand),
    or a second unit of it, not a look-alike that happens to fit the weight."""
    glimpse_stale_iou: float
    """A glimpse of one SKU or of a group that would book a rise (``glimpse_units``,
    ``glimpse_groups``) whose box overlaps by at least this (0: off) the box of a glimpse of the
    same SKU (or, for a group's, a look-alike) seen from twice ``pair_before_s`` to
    ``pair_before_s`` before the rise started is of a product that lay there already."""
    twin_max_dist: float
    """A rise no track or glimpse accounts for, about to be an alarm, that the weight alone reads
    best as one unit of a basket SKU, one unit of which lies within this distance (fraction of
    the floor; 0: off) of its centre of pressure, is a second unit of that SKU put down on its
    twin."""
    continue_max_dist: float
    """A new track found in place within this distance (fraction of the floor) of where a
    product carried in, its entry still undecided, lay in the last ``continue_max_gap_s`` is
    that product under a new track (0: off)."""
    continue_max_gap_s: float
    refound_gap_s: float
    look_change_min_prob: float
    look_change_max_old: float
    look_change_weak_frames: int
    look_change_groups: bool
    entering_hold_s: float
    vision_floor: float
    vision_temperature: float
    vision_tail_prob: float
    """Top-k SKUs a track gives less than this count as unranked (not tempered up)."""
    weight_candidates: int
    cop_std: float
    floor_half_mm: tuple[float, ...]
    outlier_prior: float
    outlier_range_g: float
    mismatch_vision_min: float
    mismatch_adds_vision_item: bool
    track_identity_boost: float
    vision_miss_rate: float
    cancel_sigmas: float
    absorb_min_prob: float

    def __post_init__(self) -> None:
        for key in ("pair_before_s", "add_pair_after_s", "resighted_wait_s", "remove_pair_after_s", "absorb_window_s", "unseen_hold_s",
                    "unseen_removal_hold_s", "swap_window_s", "putback_window_s", "weight_wait_s", "decision_timeout_s", "in_place_max_travel", "refound_gap_s", "entering_hold_s", "census_min_s", "continue_max_dist", "continue_max_gap_s",
                    "audit_window_s", "audit_min_s", "reread_window_s", "reread_min_z", "alarm_return_window_s", "revise_wait_s", "hand_lead_s",
                    "reentry_max_move", "twin_max_dist",
                    "scale_noise_g", "relative_error", "resume_tolerance_g"):
            check(getattr(self, key) >= 0.0, f"fusion.{key}", getattr(self, key), "a number >= 0")
        for key in ("commit_posterior", "mismatch_vision_min", "absorb_min_prob", "look_change_min_prob", "look_change_max_old",
                    "vision_tail_prob", "audit_min_prob", "audit_min_posterior",
                    "census_min_prob", "census_group_min_prob", "census_nested_ios", "census_min_share", "reread_min_prob", "reread_min_posterior", "glimpse_min_prob", "glimpse_max_iou", "glimpse_max_iou_other",
                    "glimpse_weak_fresh_iou", "glimpse_stale_iou"):
            check(0.0 <= getattr(self, key) <= 1.0, f"fusion.{key}", getattr(self, key), "a probability in [0, 1]")
        for key in ("multi_unit_prior", "extra_unit_prior", "spurious_track_prior", "in_place_spurious_prior", "reentry_spurious_prior",
                    "outlier_prior"):
            check(0.0 < getattr(self, key) < 1.0, f"fusion.{key}", getattr(self, key), "a probability in (0, 1)")
        check(0.0 <= self.spare_hand_prior < 1.0 - self.extra_unit_prior, "fusion.spare_hand_prior", self.spare_hand_prior,
              f"a probability in [0, 1 - extra_unit_prior = {1.0 - self.extra_unit_prior:g})")
        check(self.spare_glimpse_weight >= 0.0, "fusion.spare_glimpse_weight", self.spare_glimpse_weight, "a number >= 0")
        check(0.0 <= self.exchange_prior < 1.0, "fusion.exchange_prior", self.exchange_prior, "a probability in [0, 1)")
        check(0.0 <= self.extra_runner_up_share < 1.0, "fusion.extra_runner_up_share", self.extra_runner_up_share,
              "a fraction in [0, 1)")
        check(0.0 <= self.extra_other_look_share < 1.0, "fusion.extra_other_look_share", self.extra_other_look_share,
              "a fraction in [0, 1)")
        check(0.0 <= self.vision_floor < 1.0, "fusion.vision_floor", self.vision_floor, "a fraction in [0, 1)")
        check(0.0 <= self.vision_miss_rate < 1.0, "fusion.vision_miss_rate", self.vision_miss_rate, "a probability in [0, 1)")
        check(self.z_prune >= 2.0, "fusion.z_prune", self.z_prune, "standard deviations >= 2")
        check(self.cancel_sigmas > 0.0, "fusion.cancel_sigmas", self.cancel_sigmas, "standard deviations > 0")
        check(self.glimpse_min_frames >= 1, "fusion.glimpse_min_frames", self.glimpse_min_frames, "frames >= 1")
        check(0.0 <= self.glimpse_weak_min_prob <= self.glimpse_min_prob, "fusion.glimpse_weak_min_prob",
              self.glimpse_weak_min_prob, f"a probability <= glimpse_min_prob ({self.glimpse_min_prob}); 0 turns weak glimpses off")
        check(self.glimpse_weak_min_frames >= 1, "fusion.glimpse_weak_min_frames", self.glimpse_weak_min_frames, "frames >= 1")
        check(1 <= self.max_units <= 8, "fusion.max_units", self.max_units, "an integer in 1..8")
        check(1 <= self.max_qty_per_track <= self.max_units, "fusion.max_qty_per_track", self.max_qty_per_track,
              f"an integer in 1..max_units ({self.max_units})")
        check(self.weight_candidates >= 0, "fusion.weight_candidates", self.weight_candidates, "an integer >= 0")
        check(self.look_change_weak_frames >= 1, "fusion.look_change_weak_frames", self.look_change_weak_frames,
              "an integer >= 1 (frames)")
        check(self.extra_runner_up_ranks >= 2, "fusion.extra_runner_up_ranks", self.extra_runner_up_ranks,
              "an integer >= 2 (rank 2 is the first runner-up)")
        check(self.reentry_labels >= 1, "fusion.reentry_labels", self.reentry_labels, "an integer >= 1")
        check(self.outlier_range_g > 0.0, "fusion.outlier_range_g", self.outlier_range_g, "grams > 0")
        check(self.vision_temperature >= 1.0, "fusion.vision_temperature", self.vision_temperature, "a temperature >= 1")
        check(self.cop_std >= 0.0, "fusion.cop_std", self.cop_std, "a fraction of the floor >= 0")
        check(len(self.floor_half_mm) in (0, 2) and all(h > 0 for h in self.floor_half_mm), "fusion.floor_half_mm",
              self.floor_half_mm, "[] or two positive half extents [x, y] in millimetres")
        check(self.track_identity_boost >= 1.0, "fusion.track_identity_boost", self.track_identity_boost,
              "a likelihood ratio >= 1")


@dataclass(frozen=True)
class PipelineConfig:
    """Where the running cart's frames and scale samples come from, and its queues (docs/pipeline.md)."""

    source: str
    bag: str
    loop: bool
    sim_scenario: str
    sim_seed: int
    speed: str
    scale: str
    drop_frames: str
    frame_queue: int
    result_queue: int
    health_window: int
    vision_workers: int

    def __post_init__(self) -> None:
        check(self.source in ("realsense", "bag", "sim"), "pipeline.source", self.source, "'realsense', 'bag' or 'sim'")
        check(self.source != "bag" or bool(self.bag), "pipeline.bag", self.bag, "a bag path when pipeline.source = 'bag'")
        check(self.scale in ("auto", "serial", "source", "none"), "pipeline.scale", self.scale,
              "'auto', 'serial', 'source' or 'none'")
        check(self.drop_frames in ("auto", "newest", "never"), "pipeline.drop_frames", self.drop_frames,
              "'auto', 'newest' or 'never'")
        check(self.sim_seed >= 0, "pipeline.sim_seed", self.sim_seed, "an integer >= 0")
        if self.speed not in ("realtime", "max"):
            try:
                factor = float(self.speed)
            except ValueError:
                factor = 0.0
            check(0 < factor < float("inf"), "pipeline.speed", self.speed, "'realtime', 'max' or a positive factor such as '2'")
        for key in ("frame_queue", "result_queue", "health_window"):
            check(getattr(self, key) >= 1, f"pipeline.{key}", getattr(self, key), "an integer >= 1")
        check(0 <= self.vision_workers <= 16, "pipeline.vision_workers", self.vision_workers, "an integer 0..16")


@dataclass(frozen=True)
class Config:
    """The whole configuration; one attribute per TOML section."""

    preprocess: PreprocessConfig
    camera: CameraConfig
    sim: SimConfig
    recorder: RecorderConfig
    detect: DetectConfig
    scale: ScaleConfig
    engines: EnginesConfig
    models: ModelsConfig
    publish: PublishConfig
    journal: JournalConfig
    supervisor: SupervisorConfig
    log: LogConfig
    tracker: TrackerConfig
    fusion: FusionConfig
    pipeline: PipelineConfig


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def default_table() -> dict[str, Any]:
    """The parsed default.toml shipped in the package."""
    text = resources.files("caper_edge").joinpath("default.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def profiles() -> dict[str, Path]:
    """Packaged partial configs by name (``caper_edge/profiles/<name>.toml``): ``sim-cart``, the
    simulator's cart (camera height, basket depth range, floor size), used by the demo."""
    root = resources.files("caper_edge").joinpath("profiles")
    return {Path(str(p)).stem: Path(str(p)) for p in root.iterdir() if str(p).endswith(".toml")}


def load(path: str | os.PathLike[str] | None = None, *, environ: dict[str, str] | None = None) -> Config:
    """Load the defaults, then ``path`` (partial, key by key; a file, or the name of a packaged
    profile such as ``sim-cart`` when no such file exists), then environment overrides."""
    table = default_table()
    if path is not None:
        file = Path(path)
        if not file.exists() and str(path) in profiles():
            file = profiles()[str(path)]
        merge(table, read_toml(file), origin=str(path))
    merge(table, env_overrides(os.environ if environ is None else environ), origin="environment")
    return from_table(Config, table)


def read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def env_overrides(environ: typing.Mapping[str, str]) -> dict[str, Any]:
    """``CAPER_EDGE__SCALE__PORT=/dev/ttyUSB0`` -> ``{"scale": {"port": "/dev/ttyUSB0"}}``."""
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX) :].split("__")]
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw  # a bare word is taken as a string
        node = out
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return out


def merge(base: dict[str, Any], override: dict[str, Any], *, origin: str, prefix: str = "") -> None:
    """Merge ``override`` into ``base`` in place; unknown keys are errors (typos must not pass)."""
    for key, value in override.items():
        dotted = f"{prefix}{key}"
        if key not in base:
            known = ", ".join(sorted(base)) or "none"
            raise ConfigError(f"unknown config key {dotted} in {origin} (known here: {known})")
        if isinstance(base[key], dict) and not _is_free_table(base[key]):
            if not isinstance(value, dict):
                raise ConfigError(f"config key {dotted} in {origin} must be a table, got {value!r}")
            merge(base[key], value, origin=origin, prefix=f"{dotted}.")
        else:
            base[key] = value


def _is_free_table(table: dict[str, Any]) -> bool:
    # A table with the marker key "_free = true" in default.toml accepts arbitrary keys
    # (e.g. per-SKU overrides); everything else is a fixed schema.
    return bool(table.get("_free", False))


def from_table(cls: type, table: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from ``table``, checking every field's type."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for field in dataclasses.fields(cls):
        key = f"{prefix}{field.name}"
        if field.name not in table:
            raise ConfigError(f"config key {key} is missing (default.toml and the dataclass disagree)")
        kwargs[field.name] = _convert(hints[field.name], table[field.name], key)
    extra = set(table) - {f.name for f in dataclasses.fields(cls)} - {"_free"}
    if extra:
        raise ConfigError(f"unknown config key {prefix}{sorted(extra)[0]}")
    return cls(**kwargs)


def _convert(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        check(isinstance(value, dict), key, value, "a table")
        return from_table(tp, value, prefix=f"{key}.")
    if origin is Literal:
        check(value in args, key, value, "one of " + ", ".join(repr(a) for a in args))
        return value
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and (value is None or value == ""):
            return None  # TOML has no null: an empty string means "not set"
        for alt in (a for a in args if a is not type(None)):
            try:
                return _convert(alt, value, key)
            except ConfigError:
                continue
        raise ConfigError(f"config key {key} = {value!r}: expected {tp}")
    if origin is tuple:
        check(isinstance(value, list), key, value, f"an array of {len(args)} values")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
        check(len(value) == len(args), key, value, f"an array of exactly {len(args)} values")
        return tuple(_convert(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict:
        check(isinstance(value, dict), key, value, "a table")
        return {k: _convert(args[1], v, f"{key}.{k}") for k, v in value.items() if k != "_free"}
    if tp is float:
        check(isinstance(value, (int, float)) and not isinstance(value, bool), key, value, "a number")
        return float(value)
    if tp is int:
        check(isinstance(value, int) and not isinstance(value, bool), key, value, "an integer")
        return value
    if tp is bool:
        check(isinstance(value, bool), key, value, "true or false")
        return value
    if tp is str:
        check(isinstance(value, str), key, value, "a string")
        return value
    raise ConfigError(f"config key {key}: unsupported type {tp} in the schema")
