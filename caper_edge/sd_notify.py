"""systemd's notify protocol (sd_notify), written out: one datagram to ``$NOTIFY_SOCKET``.

The protocol is a newline-separated list of ``KEY=VALUE`` assignments sent as one datagram on
an AF_UNIX socket whose path is in ``NOTIFY_SOCKET``; a leading ``@`` names a socket in the
abstract namespace (the ``@`` stands for a NUL byte). It is small enough that a dependency
(python-systemd, sdnotify) would cost more than it saves. Outside systemd, every call is a no-op.

The watchdog interval is ``WATCHDOG_USEC``, valid for this process only when ``WATCHDOG_PID`` is
unset or equals our pid; we ping at half of it, as sd_watchdog_enabled(3) advises.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

__all__ = ["Notifier"]

log = logging.getLogger("caper_edge.sd_notify")


class Notifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        self.address: str | None = None
        if raw.startswith("@"):
            self.address = "\0" + raw[1:]
        elif raw.startswith("/"):
            self.address = raw
        elif raw:
            log.warning("NOTIFY_SOCKET=%r is neither a path nor @abstract; not notifying systemd", raw)
        self.watchdog_usec = self._watchdog_usec(env)
        self._socket: socket.socket | None = None
        self._warned = False

    @staticmethod
    def _watchdog_usec(env: Mapping[str, str]) -> int:
        try:
            usec = int(env.get("WATCHDOG_USEC", "0"))
        except ValueError:
            return 0
        pid = env.get("WATCHDOG_PID")
        if pid and pid != str(os.getpid()):
            return 0
        return max(usec, 0)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_interval_s(self) -> float | None:
        """How often to send WATCHDOG=1 (half the configured timeout), or None when not asked."""
        return self.watchdog_usec / 2e6 if self.watchdog_usec else None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=VALUE`` lines in one datagram; True when sent. Never raises."""
        if self.address is None:
            return False
        message = "\n".join(assignments).encode("utf-8")
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.sendto(message, self.address)
            return True
        except OSError as exc:
            if not self._warned:  # once: a missing systemd must not flood the log
                log.warning("cannot notify systemd at %r: %s", self.address.replace("\0", "@"), exc)
                self._warned = True
            return False

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1", *((f"STATUS={status}",) if status else ()))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str = "") -> bool:
        return self.notify("STOPPING=1", *((f"STATUS={status}",) if status else ()))

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for ``seconds`` more before systemd gives up on start-up (EXTEND_TIMEOUT_USEC)."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1e6)}")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
