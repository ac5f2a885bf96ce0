"""Weight events: the validated Python face of the C++ detector (``_core.WeightEventDetector``).

``WeightEventDetector(**params).push(t_ns, grams) -> list[WeightEvent]`` (contract): one calibrated
sample at a time, or ``push_many`` for arrays; an event is returned by the push of the sample at
which it is decided (``event.t_decided_ns``), so its decision latency is observable. Parameters,
their units and trade-offs: caper_edge/default.toml ``[scale.events]`` and docs/weight_events.md.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _core
from ..config import ScaleEventsConfig, default_table, from_table

__all__ = ["WeightEvent", "WeightEventDetector", "default_event_params"]

WeightEvent = _core.WeightEvent

_PARAM_NAMES = tuple(f.name for f in dataclasses.fields(ScaleEventsConfig))


@functools.cache
def default_event_params() -> ScaleEventsConfig:
    """The documented defaults (default.toml ``[scale.events]``), ignoring user files."""
    return from_table(ScaleEventsConfig, default_table()["scale"]["events"], prefix="scale.events.")


class WeightEventDetector:
    """Stable/active segmentation of a calibrated scale stream into :data:`WeightEvent` s.

    Keyword parameters override the documented defaults one by one, e.g.
    ``WeightEventDetector(min_delta_g=5.0, settle_window_s=0.3)``; an unknown name or a value out
    of range raises ValueError naming it. ``from_config(config.load().scale.events)`` uses a
    loaded configuration. Not thread-safe: one detector per stream.
    """

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(_PARAM_NAMES))
        if unknown:
            raise ValueError(f"unknown weight event parameter {unknown[0]!r} (known: {', '.join(_PARAM_NAMES)})")
        values = dataclasses.asdict(default_event_params())
        for name, value in params.items():
            expected = bool if isinstance(values[name], bool) else float
            if expected is float and (isinstance(value, bool) or not isinstance(value, (int, float, np.number))):
                raise ValueError(f"weight event parameter {name} = {value!r}: expected a number")
            if expected is bool and not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"weight event parameter {name} = {value!r}: expected true or false")
            values[name] = expected(value)
        core_params = _core.WeightEventParams()
        for name, value in values.items():
            setattr(core_params, name, value)
        self._core = _core.WeightEventDetector(core_params)     # validates ranges (ValueError)
        self.params = ScaleEventsConfig(**values)

    @classmethod
    def from_config(cls, cfg: ScaleEventsConfig) -> WeightEventDetector:
        return cls(**dataclasses.asdict(cfg))

    def push(self, t_ns: int, grams: float, flags: int = 0) -> list[WeightEvent]:
        """One sample: ``t_ns`` int nanoseconds (strictly increasing), ``grams`` the calibrated total,
        ``flags`` the protocol flags (bit0 ADC fault: dropped; bit1 overload, bit2 motion: gated)."""
        return self._core.push(int(t_ns), float(grams), int(flags))

    def push_cells(self, t_ns: int, cell_grams: Sequence[float], flags: int = 0) -> list[WeightEvent]:
        """One sample as 4 calibrated per-cell grams; events then carry ``cell_delta_g`` and ``cop``."""
        return self._core.push_cells(int(t_ns), [float(c) for c in cell_grams], int(flags))

    def push_many(self, t_ns: Any, grams: Any, flags: Any = None) -> list[WeightEvent]:
        """n samples at once: ``t_ns`` (n,) int64; ``grams`` (n,) totals or (n, 4) per-cell grams;
        ``flags`` (n,) uint8 or None. Arrays already C-contiguous with these dtypes are not copied."""
        t = np.ascontiguousarray(t_ns, dtype=np.int64)
        g = np.ascontiguousarray(grams, dtype=np.float64)
        f = None if flags is None else np.ascontiguousarray(flags, dtype=np.uint8)
        return self._core.push_many(t, g, f)

    def reset(self) -> None:
        """Forget the baseline, the windows and the statistics."""
        self._core.reset()

    @property
    def state(self) -> str:
        """``"bootstrap"`` (no baseline yet), ``"stable"`` or ``"active"``."""
        return self._core.state

    @property
    def baseline_g(self) -> float:
        return self._core.baseline_g

    @property
    def noise_estimate_g(self) -> float:
        return self._core.noise_estimate_g

    @property
    def stats(self) -> dict[str, int]:
        return self._core.stats
