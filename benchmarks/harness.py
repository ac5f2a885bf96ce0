"""Timing harness shared by every benchmark suite.

Figures per case: median, p95, p99 and jitter (p99 - median) of ours; the peer's median from the
same run and the ratio peer/ours (> 1 means we are faster); bytes moved by one call and the
fraction of the machine's measured single-thread copy bandwidth that this represents.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def pin_single_thread() -> None:
    """Make every library we compare against run on one thread, as the issue asks."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass


@dataclass
class Case:
    """One benchmark case: our callable and (optionally) the peer's, on the same input."""

    suite: str
    name: str
    ours: Callable[[], Any]
    peer: Callable[[], Any] | None = None
    peer_name: str = ""
    bytes_moved: int = 0          # bytes read + written by one call of ours (0: not meaningful)
    items: int = 0                # items processed per call (samples, objects ...) for a rate
    item_unit: str = ""
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def gpu_cupy() -> Any:
    """CuPy where a usable CUDA GPU and CuPy both exist (the GPU cases run), else None."""
    import caper_edge

    if caper_edge.cuda_device_count()[0] == 0:
        return None
    try:
        import cupy
    except ImportError:
        return None
    return cupy


def time_calls(fn: Callable[[], Any], *, min_time_s: float, min_reps: int, max_reps: int) -> np.ndarray:
    """Per-call wall times in seconds, after a warm-up, with the GC paused."""
    for _ in range(3):
        fn()
    times: list[float] = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() - start < min_time_s):
            t0 = time.perf_counter_ns()
            fn()
            times.append((time.perf_counter_ns() - t0) * 1e-9)
    finally:
        if gc_was_enabled:
            gc.enable()
    return np.asarray(times)


def copy_bandwidth_gbps(nbytes: int = 256 << 20, min_time_s: float = 0.5) -> float:
    """Single-thread copy bandwidth (read + write bytes per second / 1e9) of an ``nbytes`` buffer.

    With 256 MiB this is the DRAM floor; with a case's own working-set size it is the floor
    for data that fits the same cache level, which is the fair comparison for small frames.
    """
    src = np.ones(max(nbytes // 8, 1), dtype=np.float64)
    dst = np.empty_like(src)
    times = time_calls(lambda: np.copyto(dst, src), min_time_s=min_time_s, min_reps=5, max_reps=100000)
    return 2 * nbytes / float(np.median(times)) / 1e9


def run_case(case: Case, *, quick: bool, bandwidth_gbps: float) -> dict[str, Any]:
    min_time = 0.3 if quick else 2.0
    ours = time_calls(case.ours, min_time_s=min_time, min_reps=10 if quick else 50, max_reps=20000)
    result: dict[str, Any] = {
        "suite": case.suite,
        "case": case.name,
        "median_s": float(np.median(ours)),
        "p95_s": float(np.percentile(ours, 95)),
        "p99_s": float(np.percentile(ours, 99)),
        "jitter_s": float(np.percentile(ours, 99) - np.median(ours)),
        "reps": int(ours.size),
        "notes": case.notes,
        **case.extra,
    }
    if case.peer is not None:
        peer = time_calls(case.peer, min_time_s=min_time, min_reps=10 if quick else 50, max_reps=20000)
        result.update(
            peer=case.peer_name,
            peer_median_s=float(np.median(peer)),
            peer_p99_s=float(np.percentile(peer, 99)),
            ratio=float(np.median(peer) / np.median(ours)),
        )
    if case.bytes_moved:
        achieved = case.bytes_moved / result["median_s"] / 1e9
        # A copy that moves the same bytes (half read, half written) at the same cache level.
        same_size_gbps = copy_bandwidth_gbps(case.bytes_moved // 2, min_time_s=0.1 if quick else 0.5)
        result.update(
            bytes_moved=case.bytes_moved,
            achieved_gbps=achieved,
            copy_same_size_gbps=same_size_gbps,
            bandwidth_fraction=achieved / same_size_gbps,
            bandwidth_floor_s=case.bytes_moved / (same_size_gbps * 1e9),
            dram_bandwidth_fraction=achieved / bandwidth_gbps,
        )
    if case.items:
        result.update(items=case.items, item_unit=case.item_unit, items_per_s=case.items / result["median_s"])
    return result


def environment() -> dict[str, Any]:
    import caper_edge

    env: dict[str, Any] = {
        "caper_edge": caper_edge.__version__,
        "build": caper_edge.build_info(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": _cpu_model(),
        "cpus": os.cpu_count(),
        "numpy": np.__version__,
    }
    for mod in ("cv2", "onnxruntime", "scipy", "lap", "trackers"):
        try:
            env[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - a missing peer just is not reported
            pass
    env["cuda_devices"], reason = caper_edge.cuda_device_count()
    if reason:
        env["cuda_reason"] = reason
    return env


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(("model name", "Model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def as_dict(case: Case) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(case).items() if not callable(v)}
