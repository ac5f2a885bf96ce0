"""Logging: one JSON object per line under systemd, readable text in a terminal.

Under systemd (``JOURNAL_STREAM`` or ``INVOCATION_ID`` set) each record is one JSON line
``{"t": <unix s>, "level": "info", "logger": ..., "pid": ..., "role": ..., "msg": ..., **fields}``;
when stderr really is the journal stream, the line is prefixed with the syslog ``<N>`` priority,
which journald strips and stores as PRIORITY, so ``journalctl -p warning`` works. Structured
fields are passed as ``log.info("...", extra={"fields": {...}})``.

Steady state is quiet: INFO is for state changes (started, ready, restarted, stopped), never
per frame or per heartbeat.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

__all__ = ["setup_logging", "under_systemd", "JsonFormatter", "TextFormatter"]

_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}
_ROOT = "caper_edge"


def under_systemd(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return bool(env.get("JOURNAL_STREAM") or env.get("INVOCATION_ID"))


def _stream_is_journal(stream: TextIO, environ: Mapping[str, str]) -> bool:
    # JOURNAL_STREAM is "device:inode" of the stream systemd connected (systemd.exec(5)).
    try:
        dev, ino = (int(x) for x in environ.get("JOURNAL_STREAM", "").split(":"))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


class JsonFormatter(logging.Formatter):
    def __init__(self, role: str, priority_prefix: bool = False) -> None:
        super().__init__()
        self.role = role
        self.priority_prefix = priority_prefix

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "t": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "role": self.role,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            for key, value in fields.items():
                out.setdefault(str(key), value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        line = json.dumps(out, ensure_ascii=False, default=str)
        return f"<{_PRIORITY.get(record.levelno, 6)}>{line}" if self.priority_prefix else line


class TextFormatter(logging.Formatter):
    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}"
        text = f"{stamp} {record.levelname.lower():7s} {self.role}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def setup_logging(level: str = "info", fmt: str = "auto", *, role: str = "main",
                  environ: Mapping[str, str] | None = None, stream: TextIO | None = None) -> logging.Logger:
    """Configure the ``caper_edge`` logger tree (idempotent; replaces our previous handler)."""
    env = os.environ if environ is None else environ
    stream = sys.stderr if stream is None else stream
    use_json = fmt == "json" or (fmt == "auto" and under_systemd(env))
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(role, _stream_is_journal(stream, env)) if use_json else TextFormatter(role))
    handler.set_name("caper_edge")
    root = logging.getLogger(_ROOT)
    for old in [h for h in root.handlers if h.get_name() == "caper_edge"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return root
