"""Map a device clock (camera hardware timestamps, MCU milliseconds) onto the host monotonic clock.

Each message gives one observation ``host_arrival - device_time``: the true offset plus a
transport delay that is never negative. The smallest observation over a sliding window is
therefore the best offset estimate (the least-delayed message), and the window lets it follow
the slow drift between the two oscillators (tens of ppm). A device clock that jumps (a camera
reset, a counter that wraps) makes the observations leave the window's range; the estimator then
starts over from the new observations instead of mapping into the past.
"""

from __future__ import annotations

from collections import deque

__all__ = ["ClockMapper"]


class ClockMapper:
    """``map(device_ns, arrival_ns) -> host_ns``.

    Parameters
    ----------
    window:
        Observations kept (about window / rate seconds). Longer windows find a less-delayed
        message (smaller bias) but follow drift more slowly.
    reset_ns:
        A new observation this far from the current estimate (either way) is a clock jump.
    """

    def __init__(self, window: int = 300, reset_ns: int = 500_000_000):
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window
        self.reset_ns = reset_ns
        self._obs: deque[int] = deque()
        self._mins: deque[int] = deque()  # monotonic queue of window minima
        self.resets = 0
        self._last_host: int | None = None

    @property
    def offset_ns(self) -> int | None:
        return self._mins[0] if self._mins else None

    def map(self, device_ns: int, arrival_ns: int) -> int:
        obs = arrival_ns - device_ns
        current = self.offset_ns
        if current is not None and abs(obs - current) > self.reset_ns:
            self._obs.clear()
            self._mins.clear()
            self.resets += 1
        self._obs.append(obs)
        while self._mins and self._mins[-1] > obs:
            self._mins.pop()
        self._mins.append(obs)
        if len(self._obs) > self.window:
            old = self._obs.popleft()
            if self._mins and self._mins[0] == old:
                self._mins.popleft()
        host = device_ns + self._mins[0]
        # Never map a later message before an earlier one, and never into the future.
        if self._last_host is not None and host < self._last_host:
            host = self._last_host
        host = min(host, arrival_ns)
        self._last_host = host
        return host
