"""A simulated scale MCU on a pseudo-terminal: protocol lines, paced in real time.

:class:`PtyScale` opens a pty (``os.openpty``, raw mode), optionally points a symlink at its
slave (as udev does with ``/dev/caper-scale``), and writes ``(t_ns, line)`` pairs from any
iterable when their time comes (``speed`` times real time), plus a ``$CS`` status line when it
"connects" and every ``status_every_s``. :meth:`PtyScale.unplug` closes the pty (a reader sees
EIO, as on a USB unplug) and :meth:`PtyScale.replug` opens a new one and re-points the symlink,
so a reader configured with the symlink path finds the device again.

"On connect" is detected the way a pty allows: a reader opening the slave configures it (baud
rate, modes), which changes its termios attributes; the simulator polls them and answers with
a status line, as the real MCU does when the host opens its USB port.

Lines due while unplugged are lost, like an MCU streaming into a pulled cable; lines nobody
drains (more than about 100 ms waiting unread) are dropped and counted in ``dropped_lines``.
"""

from __future__ import annotations

import fcntl
import os
import struct
import termios
import threading
import time
import tty
from collections.abc import Iterable, Iterator
from pathlib import Path

from .protocol import encode_status

__all__ = ["PtyScale"]

# A real MCU's USB port does not pile up data nobody reads (the host stops polling); here lines
# are dropped once this many bytes (~100 ms of samples) wait unread.
_MAX_BACKLOG = 512


class PtyScale:
    """See the module docstring. ``lines`` yields ``(t_ns, bytes)`` in ascending ``t_ns``."""

    def __init__(
        self,
        lines: Iterable[tuple[int, bytes]],
        *,
        link: str | os.PathLike[str] | None = None,
        speed: float = 1.0,
        firmware: str = "caper-sim-1.0",
        rate_hz: float = 80.0,
        status_every_s: float = 10.0,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed = {speed!r}: expected a positive factor of real time")
        self._lines: Iterator[tuple[int, bytes]] = iter(lines)
        self.link = Path(link) if link is not None else None
        self.speed = float(speed)
        self.status_line = encode_status(firmware, 4, rate_hz)
        self.status_every_s = float(status_every_s)
        self.written_lines = 0
        self.dropped_lines = 0
        self.lost_while_unplugged = 0
        self.finished = threading.Event()
        self.error: Exception | None = None       # what ended the line source, if it failed
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._master: int | None = None
        self._slave: int | None = None
        self._attrs: list | None = None
        self.slave_path = ""
        self._wall0 = time.monotonic()
        self._t0: int | None = None
        self._thread: threading.Thread | None = None
        self._plug()

    @property
    def path(self) -> str:
        """What a reader should open: the symlink when there is one, else the slave path."""
        return str(self.link) if self.link is not None else self.slave_path

    def now_ns(self) -> int:
        """The stream time being written now (``t_ns`` of the lines), for scheduling events live."""
        t0 = self._t0 if self._t0 is not None else 0
        return t0 + int((time.monotonic() - self._wall0) * 1e9 * self.speed)

    @property
    def plugged(self) -> bool:
        with self._lock:
            return self._master is not None

    # -----------------------------------------------------------------------------------------

    def start(self) -> PtyScale:
        self._thread = threading.Thread(target=self._run, name="pty-scale", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        self.unplug()
        if self.link is not None and self.link.is_symlink():
            self.link.unlink()

    def __enter__(self) -> PtyScale:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def unplug(self) -> None:
        """Close the pty: an open reader gets EIO; the slave path disappears."""
        with self._lock:
            fds = [fd for fd in (self._master, self._slave) if fd is not None]
            self._master = self._slave = None
        for fd in fds:
            os.close(fd)

    def replug(self) -> None:
        """A new pty (a new slave path); the symlink, if any, is re-pointed at it."""
        self.unplug()
        self._plug()
        self._write(self.status_line)

    # -----------------------------------------------------------------------------------------

    def _plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)               # no echo, no CR/LF translation: bytes pass untouched
        os.set_blocking(master, False)
        path = os.ttyname(slave)
        if self.link is not None:
            tmp = self.link.with_name(self.link.name + ".new")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(path)
            tmp.replace(self.link)      # atomic re-point, as udev does
        with self._lock:
            self._master, self._slave, self.slave_path = master, slave, path
            self._attrs = termios.tcgetattr(slave)

    def _reader_connected(self) -> bool:
        """True once after a reader (re)configured the slave, i.e. opened the port."""
        with self._lock:
            if self._slave is None:
                return False
            try:
                attrs = termios.tcgetattr(self._slave)
            except termios.error:
                return False
            changed = attrs != self._attrs
            self._attrs = attrs
        return changed

    def _write(self, data: bytes) -> bool:
        with self._lock:
            fd = self._master
            if fd is None:
                self.lost_while_unplugged += 1
                return False
            if self._backlog() > _MAX_BACKLOG:
                self.dropped_lines += 1        # nobody drains the port: do not pile up stale lines
                return False
            try:
                n = os.write(fd, data)
            except (BlockingIOError, OSError):
                self.dropped_lines += 1
                return False
            if n < len(data):           # the pty buffer filled mid-line: finish it or lose it
                try:
                    os.write(fd, data[n:])
                except OSError:
                    self.dropped_lines += 1
                    return False
        return True

    def _backlog(self) -> int:
        """Bytes written but not yet read on the slave side (caller holds the lock)."""
        if self._slave is None:
            return 0
        try:
            return struct.unpack("i", fcntl.ioctl(self._slave, termios.FIONREAD, b"\0\0\0\0"))[0]
        except OSError:
            return 0

    def _run(self) -> None:
        try:
            self._pace()
        except Exception as exc:  # noqa: BLE001 - handed to whoever waits on `finished`
            self.error = exc
        finally:
            self.finished.set()

    def _pace(self) -> None:
        self._wall0 = time.monotonic()
        next_status = self._wall0
        for t_ns, line in self._lines:
            if self._t0 is None:
                self._t0 = t_ns
            due = self._wall0 + (t_ns - self._t0) / 1e9 / self.speed
            while True:
                now = time.monotonic()
                if now >= next_status or self._reader_connected():
                    self._write(self.status_line)
                    next_status = now + self.status_every_s
                if now >= due or self._stop.wait(min(due - now, max(next_status - now, 0.0))):
                    break
            if self._stop.is_set():
                break
            if self._write(line):
                self.written_lines += 1
