"""Pace a stream of timestamped messages against the monotonic clock."""

from __future__ import annotations

import time

__all__ = ["Pacer", "parse_speed"]


def parse_speed(speed: str | float | None) -> float | None:
    """``"max"``/None -> None (as fast as possible), ``"realtime"`` -> 1.0, ``"2"``/2.0 -> 2.0."""
    if speed is None or speed == "max":
        return None
    if speed == "realtime":
        return 1.0
    try:
        value = float(speed)
    except (TypeError, ValueError):
        raise ValueError(f"speed must be 'realtime', 'max' or a positive factor, got {speed!r}") from None
    if not 0 < value < float("inf"):
        raise ValueError(f"speed must be 'realtime', 'max' or a positive factor, got {speed!r}")
    return value


class Pacer:
    """``wait(t_ns)`` sleeps until message time ``t_ns`` is due: the first message sets the origin,
    later ones are due ``(t_ns - t_first) / speed`` after it. A consumer that falls behind is not
    skipped over; the pacer simply stops sleeping until it has caught up."""

    # The clock and the sleep are class attributes so tests can drive a fake clock.
    clock = staticmethod(time.monotonic_ns)
    sleep = staticmethod(time.sleep)

    def __init__(self, speed: float | None):
        self.speed = speed
        self._origin: tuple[int, int] | None = None

    def wait(self, t_ns: int) -> None:
        if self.speed is None:
            return
        now = self.clock()
        if self._origin is None:
            self._origin = (now, t_ns)
            return
        wall0, t0 = self._origin
        delay = wall0 + (t_ns - t0) / self.speed - now
        if delay > 0:
            self.sleep(delay / 1e9)
