"""Aggregation utilities for the 1 Hz ``health`` message: quantiles, rates, drift, host readings.

The pipeline owns one :class:`StageMetrics` per stage and one :class:`DriftMonitor` per signal
(detector confidence, gallery similarity) and puts their ``snapshot()`` into the ``pipeline``
part of its status; the supervisor adds the host readings. Everything here is O(1) per sample
(or O(window) per read, once a second) and allocation-free on the per-frame path.

- :class:`P2Quantile` — Jain & Chlamtac's P² estimator: one quantile over an unbounded stream in
  five markers (for lifetime figures where a window would forget rare spikes).
- :class:`WindowQuantiles` — exact quantiles over the last N samples (a ring buffer): what the
  health message reports, since it should describe *now*, not the average since boot.
- :class:`RateMeter` — events per second over a sliding window of one-second buckets.
- :class:`RunningStats` — Welford mean / variance / min / max.
- :class:`DriftMonitor` — a slow baseline against a fast recent mean, in baseline standard
  deviations: a camera that fogs up or a gallery gone stale shows as a steady negative drift of
  detector confidence or gallery similarity long before accuracy is measured.
"""

from __future__ import annotations

import glob
import math
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "P2Quantile",
    "WindowQuantiles",
    "RateMeter",
    "RunningStats",
    "DriftMonitor",
    "StageMetrics",
    "ProcessCpu",
    "cpu_temperature_c",
    "gpu_temperature_c",
    "rss_mb",
]


class P2Quantile:
    """Streaming estimate of quantile ``q`` (0 < q < 1) in constant memory (the P² algorithm)."""

    def __init__(self, q: float) -> None:
        if not 0.0 < q < 1.0:
            raise ValueError(f"quantile q = {q!r}: expected 0 < q < 1")
        self.q = q
        self.count = 0
        self._heights: list[float] = []
        self._pos = [1.0, 2.0, 3.0, 4.0, 5.0]
        self._desired = [1.0, 1.0 + 2 * q, 1.0 + 4 * q, 3.0 + 2 * q, 5.0]
        self._step = [0.0, q / 2, q, (1 + q) / 2, 1.0]

    def add(self, x: float) -> None:
        self.count += 1
        h = self._heights
        if self.count <= 5:
            h.append(float(x))
            h.sort()
            return
        # 1. find the cell k holding x, widening the extremes
        if x < h[0]:
            h[0] = float(x)
            k = 0
        elif x >= h[4]:
            h[4] = float(x)
            k = 3
        else:
            k = next(i for i in range(4) if h[i] <= x < h[i + 1])
        # 2. shift the positions of the markers above the cell
        for i in range(k + 1, 5):
            self._pos[i] += 1
        for i in range(5):
            self._desired[i] += self._step[i]
        # 3. move the three middle markers toward their desired positions (parabolic, else linear)
        for i in (1, 2, 3):
            d = self._desired[i] - self._pos[i]
            if (d >= 1 and self._pos[i + 1] - self._pos[i] > 1) or (d <= -1 and self._pos[i - 1] - self._pos[i] < -1):
                s = 1 if d > 0 else -1
                candidate = self._parabolic(i, s)
                if not h[i - 1] < candidate < h[i + 1]:
                    candidate = h[i] + s * (h[i + s] - h[i]) / (self._pos[i + s] - self._pos[i])
                h[i] = candidate
                self._pos[i] += s

    def _parabolic(self, i: int, s: int) -> float:
        h, n = self._heights, self._pos
        return h[i] + s / (n[i + 1] - n[i - 1]) * (
            (n[i] - n[i - 1] + s) * (h[i + 1] - h[i]) / (n[i + 1] - n[i])
            + (n[i + 1] - n[i] - s) * (h[i] - h[i - 1]) / (n[i] - n[i - 1])
        )

    def value(self) -> float | None:
        """The estimate; exact (nearest-rank on the sorted samples) while fewer than 5 were seen."""
        if self.count == 0:
            return None
        if self.count <= 5:
            return float(np.quantile(np.asarray(self._heights), self.q))
        return self._heights[2]


class WindowQuantiles:
    """Exact quantiles of the last ``window`` samples (linear interpolation, numpy's default)."""

    def __init__(self, window: int = 1024) -> None:
        if window < 1:
            raise ValueError(f"window = {window}: expected >= 1 samples")
        self._buf = np.zeros(window, dtype=np.float64)
        self._n = 0  # samples ever added

    def add(self, x: float) -> None:
        self._buf[self._n % self._buf.size] = x
        self._n += 1

    def __len__(self) -> int:
        return min(self._n, self._buf.size)

    def quantiles(self, qs: Sequence[float]) -> list[float | None]:
        n = len(self)
        if n == 0:
            return [None for _ in qs]
        return [float(v) for v in np.quantile(self._buf[:n], qs)]


class RateMeter:
    """Events per second over the last ``window_s`` whole seconds (plus the current partial one).

    ``now_s`` comes from the caller's monotonic clock so that tests (and replays) control time.
    """

    def __init__(self, window_s: int = 5) -> None:
        if window_s < 1:
            raise ValueError(f"window_s = {window_s}: expected >= 1 second")
        self.window_s = window_s
        self._buckets = np.zeros(window_s + 1, dtype=np.int64)
        self._second: int | None = None
        self._start_s: float | None = None
        self.total = 0

    def _advance(self, now_s: float) -> None:
        sec = int(math.floor(now_s))
        if self._second is None:
            self._second, self._start_s = sec, now_s
            return
        gap = sec - self._second
        if gap <= 0:
            return
        for k in range(1, min(gap, self._buckets.size) + 1):
            self._buckets[(self._second + k) % self._buckets.size] = 0
        self._second = sec

    def add(self, now_s: float, n: int = 1) -> None:
        self._advance(now_s)
        assert self._second is not None
        self._buckets[self._second % self._buckets.size] += n
        self.total += n

    def rate(self, now_s: float) -> float:
        """Events per second over the covered span (at most window_s + the current fraction)."""
        self._advance(now_s)
        if self._second is None or self._start_s is None:
            return 0.0
        span = min(self.window_s + (now_s - math.floor(now_s)), now_s - self._start_s)
        return float(self._buckets.sum()) / span if span > 0 else 0.0


class RunningStats:
    """Welford's online mean and variance, with min and max."""

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self._m2 = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add(self, x: float) -> None:
        self.count += 1
        delta = x - self.mean
        self.mean += delta / self.count
        self._m2 += delta * (x - self.mean)
        self.min = min(self.min, x)
        self.max = max(self.max, x)

    @property
    def variance(self) -> float:
        """Sample variance (n - 1); 0 with fewer than two samples."""
        return self._m2 / (self.count - 1) if self.count > 1 else 0.0

    @property
    def std(self) -> float:
        return math.sqrt(self.variance)


class DriftMonitor:
    """Recent mean versus a baseline, in baseline standard deviations.

    The baseline is the mean and spread of the first ``baseline_samples`` values (the model as
    deployed); the recent mean is an exponential moving average with time constant ``recent``
    samples. ``drift_sigma`` = (recent - baseline mean) / baseline std.
    """

    def __init__(self, baseline_samples: int = 2000, recent: int = 200) -> None:
        if baseline_samples < 2 or recent < 1:
            raise ValueError(f"baseline_samples = {baseline_samples}, recent = {recent}: expected >= 2 and >= 1")
        self.baseline_samples = baseline_samples
        self.baseline = RunningStats()
        self._alpha = 1.0 / recent
        self.recent: float | None = None
        self.count = 0

    def add(self, x: float) -> None:
        self.count += 1
        if self.baseline.count < self.baseline_samples:
            self.baseline.add(x)
        self.recent = x if self.recent is None else self.recent + self._alpha * (x - self.recent)

    def snapshot(self) -> dict[str, Any]:
        ready = self.baseline.count >= self.baseline_samples
        std = self.baseline.std
        drift = (self.recent - self.baseline.mean) / std if ready and std > 0 and self.recent is not None else None
        return {
            "count": self.count,
            "recent_mean": self.recent,
            "baseline_mean": self.baseline.mean if self.baseline.count else None,
            "baseline_std": std if self.baseline.count > 1 else None,
            "drift_sigma": drift,
        }


class StageMetrics:
    """One pipeline stage: rate of items through it and latency quantiles over a window."""

    def __init__(self, window: int = 1024, rate_window_s: int = 5) -> None:
        self.latency_ms = WindowQuantiles(window)
        self.rate = RateMeter(rate_window_s)
        self.drops = 0

    def record(self, latency_ns: int, now_s: float) -> None:
        self.latency_ms.add(latency_ns / 1e6)
        self.rate.add(now_s)

    def snapshot(self, now_s: float) -> dict[str, Any]:
        p50, p99 = self.latency_ms.quantiles((0.5, 0.99))
        return {
            "fps": self.rate.rate(now_s),
            "latency_ms_p50": p50,
            "latency_ms_p99": p99,
            "count": self.rate.total,
            "drops": self.drops,
        }


# ---------------------------------------------------------------------------------------------
# Host readings (None where the machine does not expose them)
# ---------------------------------------------------------------------------------------------


def _read_milli_celsius(path: str | Path) -> float | None:
    try:
        return int(Path(path).read_text().strip()) / 1000.0
    except (OSError, ValueError):
        return None


def _zones(root: str) -> list[tuple[str, str]]:
    out = []
    for zone in sorted(glob.glob(os.path.join(root, "thermal_zone*"))):
        try:
            kind = Path(zone, "type").read_text().strip()
        except OSError:
            continue
        out.append((kind.lower(), os.path.join(zone, "temp")))
    return out


def cpu_temperature_c(root: str = "/sys/class/thermal") -> float | None:
    """Hottest CPU thermal zone in °C (x86_pkg_temp, cpu-thermal, CPU-therm ...), else the
    hottest zone of any kind; None where no zone is readable (containers, VMs)."""
    zones = _zones(root)
    cpu = [p for kind, p in zones if "cpu" in kind or "x86_pkg" in kind or "soc" in kind]
    readings = [t for t in map(_read_milli_celsius, cpu or [p for _, p in zones]) if t is not None]
    return max(readings) if readings else None


_gpu_cache: dict[str, Any] = {"t": -math.inf, "value": None}


def gpu_temperature_c(root: str = "/sys/class/thermal", *, max_age_s: float = 10.0) -> float | None:
    """GPU temperature in °C: a Jetson's gpu thermal zone, else ``nvidia-smi`` (at most once per
    ``max_age_s``, since starting a process each second would cost more than it tells); None
    where neither exists."""
    jetson = [p for kind, p in _zones(root) if "gpu" in kind]
    readings = [t for t in map(_read_milli_celsius, jetson) if t is not None]
    if readings:
        return max(readings)
    now = time.monotonic()
    if now - _gpu_cache["t"] < max_age_s:
        return _gpu_cache["value"]
    _gpu_cache["t"] = now
    value = None
    exe = shutil.which("nvidia-smi")
    if exe:
        try:
            out = subprocess.run([exe, "--query-gpu=temperature.gpu", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=2)
            temps = [float(x) for x in out.stdout.split() if x.strip().replace(".", "", 1).isdigit()]
            value = max(temps) if temps else None
        except (OSError, subprocess.SubprocessError, ValueError):
            value = None
    _gpu_cache["value"] = value
    return value


def rss_mb(pid: int | None = None) -> float | None:
    """Resident memory of ``pid`` (default: this process) in MiB, from /proc."""
    try:
        pages = int(Path(f"/proc/{pid or 'self'}/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class ProcessCpu:
    """CPU use of one process in percent of one core, between successive calls (from /proc)."""

    def __init__(self, pid: int | None = None) -> None:
        self.pid = pid
        self._ticks = os.sysconf("SC_CLK_TCK")
        self._last: tuple[float, float] | None = None

    def _cpu_s(self) -> float | None:
        try:
            stat = Path(f"/proc/{self.pid or 'self'}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            return (int(fields[11]) + int(fields[12])) / self._ticks  # utime + stime
        except (OSError, ValueError, IndexError):
            return None

    def percent(self) -> float | None:
        cpu, now = self._cpu_s(), time.monotonic()
        if cpu is None:
            return None
        last, self._last = self._last, (cpu, now)
        if last is None or now <= last[1]:
            return None
        return 100.0 * (cpu - last[0]) / (now - last[1])
