"""Mapping the scale MCU's millisecond clock onto the host's monotonic nanoseconds.

Each sample carries the MCU uptime ``t_ms`` (uint32, wrapping every 49.7 days) and is stamped
with the host's ``time.monotonic_ns()`` when its bytes are read. The difference
``o = host_ns - mcu_ns`` is the true clock offset plus a transport latency that is never
negative (USB polling, the kernel, the reader thread waking up) and jitters by milliseconds.

Every sample therefore bounds the offset from above: ``offset(m_i) <= o_i``. With the MCU
oscillator off by at most ``d`` (``max_drift_ppm``), the offset changes by at most ``d`` per unit
of time, so at MCU time ``m``::

    offset(m) <= min_i ( o_i + d * (m - m_i) )      over the samples of the last ``window_s``

and that minimum is the estimate: the lower envelope of the observed offsets, opened by the
drift allowance. It picks the least-delayed samples, so latency jitter does not move it, and it
follows drift up to ``d``. The term ``o_i - d * m_i`` is independent of ``m``, so a monotonic
deque gives the sliding minimum in O(1) amortised per sample.

Mapped times never run ahead of the host's receive stamp (the sample cannot have been taken
after it was read), except by the few nanoseconds that keep samples read in one chunk strictly
increasing, as the event detector requires. A backwards jump of ``t_ms`` that is not a
wrap means the MCU restarted: the estimate starts over.
"""

from __future__ import annotations

from collections import deque

__all__ = ["ClockMapper"]

_T_MS_MOD = 1 << 32


class ClockMapper:
    """Online MCU-to-host clock mapping; see the module docstring.

    ``window_s``: span of samples the envelope is taken over (longer rejects longer bursts of
    latency, shorter forgets old samples sooner). ``max_drift_ppm``: largest oscillator error
    followed between low-latency samples.
    """

    def __init__(self, window_s: float = 8.0, max_drift_ppm: float = 500.0) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s = {window_s!r}: expected positive seconds")
        if not 0 <= max_drift_ppm <= 10000:
            raise ValueError(f"max_drift_ppm = {max_drift_ppm!r}: expected 0..10000 parts per million")
        self.window_ns = int(window_s * 1e9)
        self.drift = max_drift_ppm * 1e-6
        self.restarts = 0
        self.reset()

    def reset(self) -> None:
        """Forget everything (a new connection: the MCU may have rebooted)."""
        self._envelope: deque[tuple[int, float]] = deque()   # (mcu_ns, o - d * mcu_ns), increasing keys
        self._last_raw_ms: int | None = None
        self._mcu_ms = 0             # unwrapped MCU milliseconds
        self._last_out: int | None = None
        self.offset_ns: float | None = None

    def map(self, t_ms: int, host_ns: int) -> int:
        """Host monotonic ns of the sample taken at MCU ``t_ms`` and read at ``host_ns``."""
        mcu_ns = self._unwrap(int(t_ms)) * 1_000_000
        key = (host_ns - mcu_ns) - self.drift * mcu_ns
        env = self._envelope
        # 1. Sliding-window minimum of the keys: drop larger keys behind the new one, then expired ones.
        while env and env[-1][1] >= key:
            env.pop()
        env.append((mcu_ns, key))
        while env[0][0] < mcu_ns - self.window_ns:
            env.popleft()
        # 2. The bound at the current MCU time, never after the host's own receive stamp.
        self.offset_ns = env[0][1] + self.drift * mcu_ns
        out = min(int(round(mcu_ns + self.offset_ns)), host_ns)
        # 3. Strictly increasing, as the event detector requires.
        if self._last_out is not None and out <= self._last_out:
            out = self._last_out + 1
        self._last_out = out
        return out

    def _unwrap(self, t_ms: int) -> int:
        if self._last_raw_ms is None:
            self._mcu_ms = t_ms
        else:
            step = (t_ms - self._last_raw_ms) % _T_MS_MOD
            if step >= _T_MS_MOD // 2:
                # t_ms went backwards (not a wrap): the MCU restarted. Start the estimate over.
                self.restarts += 1
                last_out = self._last_out
                self.reset()
                self._last_out = last_out
                self._mcu_ms = t_ms
            else:
                self._mcu_ms += step
        self._last_raw_ms = t_ms
        return self._mcu_ms
