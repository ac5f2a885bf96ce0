"""Helpers shared by the end-to-end service tests: a fake systemd notify socket and a real
`caper-edge run` process on loopback ports with a test config."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time

from caper_edge.client import ServerUnavailable

# -- a fake systemd -------------------------------------------------------------------------------


class FakeSystemd:
    """Receives sd_notify datagrams on a real AF_UNIX socket; ``@name`` binds an abstract one."""

    def __init__(self, address: str) -> None:
        self.env_value = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            for line in data.decode().split("\n"):
                self.messages.append((time.monotonic(), line))

    def lines(self):
        return [m for _, m in list(self.messages)]

    def wait_for(self, predicate, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.lines()):
                return True
            time.sleep(0.05)
        return False

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """`python -m caper_edge run` with a test config; stderr goes to a file."""

    def __init__(self, tmp_path, *, heartbeat="", watchdog_usec=600_000, extra_supervisor="",
                 pipeline="caper_edge.heartbeat_pipeline:create", extra="", config_name="caper.toml"):
        self.tmp = tmp_path
        self.pub = f"tcp://127.0.0.1:{_free_port()}"
        self.rep = f"tcp://127.0.0.1:{_free_port()}"
        self.journal = tmp_path / "state" / "journal.sqlite3"
        self.jsonl = tmp_path / "events.jsonl"
        self.config = tmp_path / config_name
        self.config.write_text(f"""
[publish]
pub = "{self.pub}"
rep = "{self.rep}"
[journal]
path = "{self.journal}"
[supervisor]
pipeline = "{pipeline}"
heartbeat_interval_s = 0.1
watchdog_stall_s = 0.6
hang_timeout_s = 2.0
backoff_initial_s = 0.1
backoff_max_s = 1.0
health_interval_s = 0.5
start_timeout_s = 60.0
{extra_supervisor}
{extra}
""")
        self.systemd = FakeSystemd(str(tmp_path / "notify.sock"))
        env = {k: v for k, v in os.environ.items() if k not in ("JOURNAL_STREAM", "INVOCATION_ID", "WATCHDOG_PID")}
        env.update(NOTIFY_SOCKET=self.systemd.env_value, WATCHDOG_USEC=str(watchdog_usec), CAPER_EDGE_HEARTBEAT=heartbeat)
        self.stderr_path = tmp_path / "stderr.log"
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "caper_edge", "run", "--config", str(self.config), "--events", str(self.jsonl)],
            stdout=subprocess.DEVNULL, stderr=self._stderr, env=env, cwd=tmp_path,
        )

    def stop(self, timeout=30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._stderr.close()
            self.systemd.close()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._stderr.close()
        self.systemd.close()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def service_factory_fixture(tmp_path):
    made = []

    def make(**kw):
        s = Service(tmp_path, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        if s.proc.poll() is None:
            s.kill()


def _ping(client):
    try:
        return client.request("ping")
    except ServerUnavailable:
        return None


def _wait(predicate, timeout=60.0, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return None
