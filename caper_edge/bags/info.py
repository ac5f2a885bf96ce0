"""What ``caper-edge bag info`` reports: per topic type, count, span, rate and gaps."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .reader import BagReader

__all__ = ["BagInfo", "TopicStats", "bag_info"]

GAP_FACTOR = 2.5  # an interval longer than this many median periods counts as a gap


@dataclass
class TopicStats:
    topic: str
    msgtype: str
    count: int
    first_ns: int | None
    last_ns: int | None
    rate_hz: float | None      # (count - 1) / span
    median_period_s: float | None
    max_gap_s: float | None    # longest interval between two messages
    gaps: int                  # intervals longer than GAP_FACTOR x the median period
    bytes: int


@dataclass
class BagInfo:
    paths: list[str]
    storage: str
    size_bytes: int
    messages: int
    start_ns: int | None
    end_ns: int | None
    topics: list[TopicStats] = field(default_factory=list)
    damage: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return 0.0 if self.start_ns is None else (self.end_ns - self.start_ns) / 1e9

    def to_json(self) -> dict:
        d = asdict(self)
        d["duration_s"] = self.duration_s
        return d


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def bag_info(path: str | os.PathLike[str]) -> BagInfo:
    """Read every message's time (not its content) and summarise; damage is listed, not raised."""
    with BagReader(path) as reader:
        times: dict[str, list[int]] = {t: [] for t in reader.topics}
        sizes: dict[str, int] = dict.fromkeys(reader.topics, 0)
        for m in reader.messages(deserialize=False, raise_on_damage=False):
            times.setdefault(m.topic, []).append(m.t_ns)
            sizes[m.topic] = sizes.get(m.topic, 0) + len(m.raw)
        types = {t: i.msgtype for t, i in reader.topics.items()}
        info = BagInfo(
            paths=[str(p) for p in reader.paths],
            storage=reader.storage,
            size_bytes=sum(_size(p) for p in reader.paths),
            messages=sum(len(v) for v in times.values()),
            start_ns=min((v[0] for v in times.values() if v), default=None),
            end_ns=max((v[-1] for v in times.values() if v), default=None),
            damage=[str(d) for d in reader.damage],
        )
    for topic, ts in sorted(times.items()):
        info.topics.append(_topic_stats(topic, types.get(topic, ""), np.sort(np.asarray(ts, dtype=np.int64)), sizes.get(topic, 0)))
    return info


def _topic_stats(topic: str, msgtype: str, ts: np.ndarray, nbytes: int) -> TopicStats:
    n = int(ts.size)
    if n == 0:
        return TopicStats(topic, msgtype, 0, None, None, None, None, None, 0, nbytes)
    span = (ts[-1] - ts[0]) / 1e9
    rate = (n - 1) / span if n > 1 and span > 0 else None
    if n < 3:
        return TopicStats(topic, msgtype, n, int(ts[0]), int(ts[-1]), rate, None, span if n == 2 else None, 0, nbytes)
    dt = np.diff(ts) / 1e9
    median = float(np.median(dt))
    gaps = int(np.count_nonzero(dt > GAP_FACTOR * median)) if n >= 5 and median > 0 else 0
    return TopicStats(topic, msgtype, n, int(ts[0]), int(ts[-1]), rate, median, float(dt.max()), gaps, nbytes)
