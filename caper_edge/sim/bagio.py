"""Write a simulated session to a sensor bag (rosbag2 MCAP, the contract's topics)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..bags import ros, topics
from ..bags.writer import BagWriter
from ..errors import InputError
from ..sources.messages import Frame
from ..sources.recorder import MessageEncoder
from .catalog import catalog_json
from .simulator import Simulator

__all__ = ["BagStats", "write_bag"]


@dataclass
class BagStats:
    path: Path
    frames: int
    messages: int
    events: int
    duration_s: float
    bytes: int
    wall_s: float

    @property
    def mb_per_minute(self) -> float:
        return self.bytes / 1e6 / (self.duration_s / 60.0) if self.duration_s else 0.0


def write_bag(
    out: str | os.PathLike[str],
    scenario: str,
    seed: int,
    duration_s: float | None = None,
    *,
    jpeg_quality: int = 90,
    compression: str = "zstd",
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    **options,
) -> BagStats:
    """Simulate ``scenario`` with ``seed`` and write it as a bag directory ``out``.

    Same arguments and version -> byte-identical files. ``progress(frame, total)`` is called
    after each frame. ``options`` go to :class:`Simulator`.
    """
    out = Path(out)
    if out.exists():
        if not overwrite:
            raise InputError(f"output {out} exists; choose another path or pass --overwrite")
        if not (out / "metadata.yaml").exists() and any(out.iterdir()):
            raise InputError(f"output {out} exists and is not a bag directory; not overwriting it")
        shutil.rmtree(out)
    sim = Simulator(scenario, seed, duration_s, **options)
    encoder = MessageEncoder(jpeg_quality)
    start = time.perf_counter()
    frames = events = 0
    custom = {"caper_edge.scenario": scenario, "caper_edge.seed": str(seed), "caper_edge.duration_s": f"{sim.duration_s:g}"}
    with BagWriter(out, compression=compression, custom_data=custom) as w:
        w.write(topics.CATALOG, sim.t0_ns, ros.string(catalog_json()))
        for msg in sim.messages():
            encoder.write(w, msg)
            if isinstance(msg, Frame):
                frames += 1
                if progress is not None:
                    progress(frames, sim.frame_count)
            elif not hasattr(msg, "data"):
                events += 1
        messages = w.messages_written
    size = sum(p.stat().st_size for p in out.iterdir())
    return BagStats(out, frames, messages, events, sim.duration_s, size, time.perf_counter() - start)
