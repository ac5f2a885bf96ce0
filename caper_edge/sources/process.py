"""Any source in a child process: its memory, its CPU time and its GIL stay out of the cart's.

The simulator stands in for a camera and a scale, which on a cart are devices, not part of the
perception process; rendered in the same process it took a share of the GIL and grew the
process's memory with its own sprite caches. :class:`ProcessSource` runs a source class in a
fresh interpreter (``python -m caper_edge.sources.process``: no fork of a threaded process, and
unlike multiprocessing's ``spawn`` no re-import of the caller's main script) and streams its
messages, pickled, through a pipe. The pipe is the back pressure: the child blocks on send while
the cart is busy, so a ``speed = "max"`` session stays lossless and deterministic, and a paced
one keeps its pace.

Errors: a source that fails to start raises in the parent at construction (with the child's
message); one that fails later raises :class:`~caper_edge.errors.InputError` from iteration;
a child that dies without a word (killed, out of memory) is reported with its exit code.
"""

from __future__ import annotations

import importlib
import os
import pickle
import signal
import subprocess
import sys
import traceback
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

from ..errors import InputError
from .messages import Message, SourceStats

__all__ = ["ProcessSource"]

_STATS_EVERY = 30        # messages between two stats updates from the child
_START_TIMEOUT_S = 60.0  # import + construction of the source in the child


def _child(conn, cls: type, args: tuple, kwargs: dict) -> None:
    try:
        src = cls(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        conn.send(("error", f"{type(exc).__name__}: {exc}", traceback.format_exc()))
        conn.close()
        return
    try:
        conn.send(("ready", getattr(src, "catalog", None), getattr(src, "camera", None), src.stats))
        n = 0
        for msg in src:
            conn.send(("msg", msg))
            n += 1
            if n % _STATS_EVERY == 0:
                conn.send(("stats", src.stats))
        conn.send(("end", src.stats))
    except (BrokenPipeError, ConnectionResetError, EOFError):
        pass  # the parent closed: stop quietly
    except BaseException as exc:  # noqa: BLE001
        try:
            conn.send(("error", f"{type(exc).__name__}: {exc}", traceback.format_exc()))
        except OSError:
            pass
    finally:
        try:
            src.close()
        finally:
            conn.close()


class ProcessSource:
    """``cls(*args, **kwargs)`` constructed and iterated in a child process.

    Parameters
    ----------
    cls:
        A source class, importable by module and name in a fresh interpreter, e.g.
        ``SimulatorSource``.
    *args, **kwargs:
        Its constructor's arguments (picklable).

    Attributes ``catalog`` and ``camera`` are the child source's, ``stats`` is refreshed from the
    child every few messages and at the end, and ``pid`` is the child's process id.
    """

    def __init__(self, cls: type, *args: Any, **kwargs: Any):
        self._name = cls.__name__
        spec = pickle.dumps((cls.__module__, cls.__qualname__, args, kwargs))
        r, w = os.pipe()
        try:
            self._proc = subprocess.Popen([sys.executable, "-m", __name__, str(w)], stdin=subprocess.PIPE,
                                          pass_fds=(w,))
        finally:
            os.close(w)
        self._conn = Connection(r, writable=False)
        self.pid = self._proc.pid
        self.stats = SourceStats()
        self._closed = False
        self._ended = False
        try:
            self._proc.stdin.write(spec)
            self._proc.stdin.close()
        except OSError:
            pass  # the child died at once: reported below
        if not self._conn.poll(_START_TIMEOUT_S):
            self.close()
            raise InputError(f"{self._name} in a child process did not start within {_START_TIMEOUT_S:.0f} s")
        head = self._recv()
        if head[0] != "ready":
            self.close()
            raise InputError(f"{self._name} in a child process failed to start: {head[1]}")
        _, self.catalog, self.camera, self.stats = head

    def _recv(self) -> tuple:
        try:
            return self._conn.recv()
        except (EOFError, OSError):
            if self._closed:
                return ("closed",)
            try:
                code = self._proc.wait(2.0)
            except subprocess.TimeoutExpired:
                code = None
            raise InputError(f"{self._name} child process (pid {self.pid}) ended without finishing its "
                             f"stream: exit code {code}") from None

    def __iter__(self) -> Iterator[Message]:
        if self._ended:
            return
        while not self._closed:
            try:
                if not self._conn.poll(0.1):
                    continue
            except OSError:  # closed by another thread
                return
            item = self._recv()
            kind = item[0]
            if kind == "msg":
                yield item[1]
            elif kind == "stats":
                self.stats = item[1]
            elif kind == "end":
                self.stats = item[1]
                self._ended = True
                return
            elif kind == "closed":
                return
            else:  # "error"
                self._ended = True
                raise InputError(f"{self._name} in a child process failed: {item[1]}")

    def close(self) -> None:
        """Stop the child (it notices the closed pipe; terminated if it does not within 2 s)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._conn.close()
        except OSError:
            pass
        for stop in (None, self._proc.terminate, self._proc.kill):
            if stop is not None:
                stop()
            try:
                self._proc.wait(2.0)
                return
            except subprocess.TimeoutExpired:
                continue

    def wait_exit(self, timeout: float) -> bool:
        """True once the child has exited, False if it still runs after ``timeout`` seconds."""
        try:
            self._proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def __enter__(self) -> ProcessSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # a forgotten source must not leave a rendering child behind
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def _child_main(fd: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the parent's to handle: it closes us
    conn = Connection(fd, readable=False)
    module, qualname, args, kwargs = pickle.load(sys.stdin.buffer)
    cls: Any = importlib.import_module(module)
    for part in qualname.split("."):
        cls = getattr(cls, part)
    _child(conn, cls, args, kwargs)


if __name__ == "__main__":
    _child_main(int(sys.argv[1]))
