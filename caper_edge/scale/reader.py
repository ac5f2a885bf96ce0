"""The scale link: a thread that reads the MCU's serial stream and delivers calibrated samples.

``ScaleReader(cfg.scale, on_sample=...)`` opens ``cfg.port`` with ``serial.serial_for_url`` (a
device path, ``loop://``, ``socket://host:port``, ``rfc2217://...`` or a pty's slave path), decodes
the protocol (:class:`~caper_edge.scale.decoder.ScaleDecoder`), maps the MCU clock onto the host's
monotonic clock (:class:`~caper_edge.scale.clock.ClockMapper`), applies the calibration and
delivers :class:`CalibratedSample` s to a callback or a bounded queue (oldest dropped and
counted when full).

Unplug and re-plug: a read error (``SerialException``/``OSError``: the device vanished, a pty's
master closed, a socket's peer hung up) or ``stale_after_s`` without a valid sample closes the
port; the thread then reopens it with exponential backoff from ``reconnect_initial_s`` doubling
to ``reconnect_max_s``, until :meth:`ScaleReader.stop`. ``state`` is ``"connecting"``,
``"connected"``, ``"reconnecting"`` or ``"stopped"``; :meth:`ScaleReader.health` reports it with
the counters. docs/scale_protocol.md describes the whole link.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..config import ScaleConfig
from .clock import ClockMapper
from .decoder import ScaleDecoder, ScaleSample

__all__ = ["CalibratedSample", "ScaleReader"]

log = logging.getLogger("caper_edge.scale")


@dataclass(frozen=True, slots=True)
class CalibratedSample:
    """One sample on the host clock: ``t_ns`` host monotonic ns (mapped from the MCU's ``t_ms``),
    ``seq``/``t_ms``/``raw``/``flags`` as received, ``cells`` grams per cell, ``grams`` their sum."""

    t_ns: int
    seq: int
    t_ms: int
    raw: tuple[int, int, int, int]
    flags: int
    cells: tuple[float, float, float, float]
    grams: float


class _StaleLink(Exception):
    pass


class ScaleReader:
    """Background reader of the scale MCU; see the module docstring.

    ``on_sample`` is called on the reader thread for every sample (keep it short); without it,
    samples go to a queue of ``cfg.queue_size`` read with :meth:`get` / :meth:`drain`.
    ``open_port`` and ``clock_ns`` can be replaced in tests.
    """

    def __init__(
        self,
        cfg: ScaleConfig,
        on_sample: Callable[[CalibratedSample], None] | None = None,
        *,
        port: str | None = None,
        open_port: Callable[..., Any] | None = None,
        clock_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.cfg = cfg
        self.port = port or cfg.port
        self._on_sample = on_sample
        self._open_port = open_port
        self._clock_ns = clock_ns
        self._queue: queue.Queue[CalibratedSample] = queue.Queue(maxsize=cfg.queue_size)
        self._offsets = tuple(float(o) for o in cfg.calibration.offsets)
        self._gains = tuple(float(g) for g in cfg.calibration.gains)
        self.decoder = ScaleDecoder()
        self.clock = ClockMapper(cfg.clock_window_s, cfg.clock_max_drift_ppm)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._state = "stopped"
        self._serial: Any = None
        self.counters = {"samples": 0, "dropped": 0, "connects": 0, "reconnects": 0, "open_failures": 0,
                         "stale_links": 0, "callback_errors": 0}
        self.last_error = ""
        self._last_sample_ns: int | None = None
        self._connected_since_ns: int | None = None

    # -----------------------------------------------------------------------------------------
    # Control
    # -----------------------------------------------------------------------------------------

    def start(self) -> ScaleReader:
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        self._set_state("connecting")
        self._thread = threading.Thread(target=self._run, name="scale-reader", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread and close the port (returns within about ``read_timeout_s``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._close()
        self._set_state("stopped")

    def __enter__(self) -> ScaleReader:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def state(self) -> str:
        with self._lock:
            return self._state

    def get(self, timeout: float | None = None) -> CalibratedSample | None:
        """The next queued sample, or None after ``timeout`` seconds."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def drain(self) -> list[CalibratedSample]:
        """Every queued sample, oldest first, without waiting."""
        out = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out

    def health(self) -> dict[str, Any]:
        """State and counters for the health topic (JSON-friendly)."""
        now = self._clock_ns()
        status = self.decoder.status
        return {
            "state": self.state,
            "port": self.port,
            "last_sample_age_s": None if self._last_sample_ns is None else (now - self._last_sample_ns) / 1e9,
            "connected_for_s": None if self._connected_since_ns is None else (now - self._connected_since_ns) / 1e9,
            "clock_offset_ns": self.clock.offset_ns,
            "mcu_restarts": self.clock.restarts,
            "firmware": status.firmware if status else None,
            "last_error": self.last_error,
            **self.counters,
            "decoder": self.decoder.stats.as_dict(),
        }

    # -----------------------------------------------------------------------------------------
    # The thread
    # -----------------------------------------------------------------------------------------

    def _run(self) -> None:
        backoff = self.cfg.reconnect_initial_s
        while not self._stop.is_set():
            try:
                self._connect()
            except Exception as exc:  # noqa: BLE001 - any open failure means "not there yet"
                self.counters["open_failures"] += 1
                self._note_error(f"cannot open {self.port}: {exc}")
                self._set_state("reconnecting")
                self._stop.wait(backoff)
                backoff = min(2 * backoff, self.cfg.reconnect_max_s)
                continue
            backoff = self.cfg.reconnect_initial_s
            try:
                self._pump()
            except _StaleLink:
                self.counters["stale_links"] += 1
                self._note_error(f"{self.port}: no valid sample for {self.cfg.stale_after_s} s")
            except Exception as exc:  # noqa: BLE001 - SerialException, OSError, EOF: the link is gone
                self._note_error(f"{self.port} lost: {exc}")
            self._close()
            if not self._stop.is_set():
                self.counters["reconnects"] += 1
                self._set_state("reconnecting")
                self._stop.wait(backoff)
        self._set_state("stopped")

    def _connect(self) -> None:
        opener = self._open_port
        if opener is None:
            import serial

            opener = serial.serial_for_url
        # No input flush: a tty discards what arrives while it is closed, and a socket's first
        # bytes are fresh. (The pty simulator drops lines while nobody drains them.)
        ser = opener(self.port, baudrate=self.cfg.baud, timeout=self.cfg.read_timeout_s)
        self._serial = ser
        # A line must not be stitched across connections, and the MCU may have rebooted.
        self.decoder.reset_stream()
        self.clock.reset()
        self._connected_since_ns = self._clock_ns()
        self.counters["connects"] += 1
        self._set_state("connected")
        log.info("scale connected", extra={"port": self.port})

    def _pump(self) -> None:
        ser = self._serial
        stale_ns = int(self.cfg.stale_after_s * 1e9)
        last_valid = self._clock_ns()
        # Network URLs report only "something is waiting" (in_waiting 0/1): after the blocking
        # read, take the rest without waiting instead of one byte per call.
        network = self.port.startswith(("socket://", "rfc2217://"))
        while not self._stop.is_set():
            waiting = getattr(ser, "in_waiting", 0) or 0
            data = ser.read(max(1, min(waiting, 4096)))
            if network and data:
                ser.timeout = 0
                data += ser.read(4096)
                ser.timeout = self.cfg.read_timeout_s
            now = self._clock_ns()
            if data:
                samples = self.decoder.feed(data)
                if samples:
                    last_valid = now
                    for s in samples:
                        self._deliver(s, now)
            if now - last_valid > stale_ns:
                raise _StaleLink

    def _deliver(self, s: ScaleSample, host_ns: int) -> None:
        o, g = self._offsets, self._gains
        r = s.raw
        cells = ((r[0] - o[0]) * g[0], (r[1] - o[1]) * g[1], (r[2] - o[2]) * g[2], (r[3] - o[3]) * g[3])
        sample = CalibratedSample(self.clock.map(s.t_ms, host_ns), s.seq, s.t_ms, s.raw, s.flags, cells,
                                  cells[0] + cells[1] + cells[2] + cells[3])
        self.counters["samples"] += 1
        self._last_sample_ns = host_ns
        if self._on_sample is not None:
            try:
                self._on_sample(sample)
            except Exception:  # noqa: BLE001 - a consumer bug must not kill the link
                self.counters["callback_errors"] += 1
                if self.counters["callback_errors"] == 1:
                    log.exception("scale sample callback failed (further failures are only counted)")
            return
        while True:
            try:
                self._queue.put_nowait(sample)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()          # newest wins: drop the oldest
                    self.counters["dropped"] += 1
                except queue.Empty:
                    pass

    def _close(self) -> None:
        ser, self._serial = self._serial, None
        self._connected_since_ns = None
        if ser is not None:
            try:
                ser.close()
            except Exception:  # noqa: BLE001 - closing a vanished device may fail; it is gone either way
                pass

    def _set_state(self, state: str) -> None:
        with self._lock:
            changed = self._state != state
            self._state = state
        if changed and state == "reconnecting":
            log.warning("scale reconnecting", extra={"port": self.port, "error": self.last_error})

    def _note_error(self, message: str) -> None:
        if message != self.last_error:
            log.debug(message)
        self.last_error = message
