"""Supervisor end to end (real `caper-edge run` processes on loopback), sd_notify, logs, backoff.

The service runs the synthetic pipeline (caper_edge.heartbeat_pipeline) with short timeouts; a
real AF_UNIX datagram socket plays systemd's NOTIFY_SOCKET.
"""

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict

import pytest

from caper_edge.client import EventClient, EventFollower, ServerUnavailable
from caper_edge.events import Event
from caper_edge.journal import Journal
from caper_edge.logs import JsonFormatter, setup_logging
from caper_edge.sd_notify import Notifier
from caper_edge.supervisor import Backoff

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

    def __init__(self, tmp_path, *, heartbeat="", watchdog_usec=600_000, extra_supervisor=""):
        self.tmp = tmp_path
        self.pub = f"tcp://127.0.0.1:{_free_port()}"
        self.rep = f"tcp://127.0.0.1:{_free_port()}"
        self.journal = tmp_path / "state" / "journal.sqlite3"
        self.jsonl = tmp_path / "events.jsonl"
        self.config = tmp_path / "caper.toml"
        self.config.write_text(f"""
[publish]
pub = "{self.pub}"
rep = "{self.rep}"
[journal]
path = "{self.journal}"
[supervisor]
pipeline = "caper_edge.heartbeat_pipeline:create"
heartbeat_interval_s = 0.1
watchdog_stall_s = 0.6
hang_timeout_s = 2.0
backoff_initial_s = 0.1
backoff_max_s = 1.0
health_interval_s = 0.5
start_timeout_s = 60.0
{extra_supervisor}
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


@pytest.fixture
def service_factory(tmp_path):
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


# -- end to end -------------------------------------------------------------------------------------


def test_kill_9_of_the_worker_loses_and_duplicates_nothing(service_factory):
    svc = service_factory(heartbeat="fps=60,event_every=4")
    client = EventClient(svc.pub, svc.rep, timeout_s=1.0)
    follower = EventFollower(client, since=0)
    delivered: list[Event] = []
    healths: list[dict] = []

    def collect_until(n, timeout=60.0):
        deadline = time.monotonic() + timeout
        while len(delivered) < n and time.monotonic() < deadline:
            for u in follower.poll(0.2):
                if u.kind == "event":
                    delivered.append(u.event)
                elif u.kind == "health":
                    healths.append(u.data)
        return len(delivered) >= n

    try:
        assert svc.systemd.wait_for(lambda ls: "READY=1" in ls), svc.stderr
        assert collect_until(12), svc.stderr
        first_pid = _ping(client)["status"]["worker_pid"]
        os.kill(first_pid, signal.SIGKILL)
        restarted = _wait(lambda: (p := _ping(client)) and p["status"]["worker_pid"] not in (None, first_pid)
                          and p["status"]["ready"] and p)
        assert restarted, svc.stderr
        assert restarted["status"]["restarts"] == 1
        before = len(delivered)
        assert collect_until(before + 12), svc.stderr
        reset = client.request("reset", reason="test")
        assert reset["ok"] and reset["event"]["type"] == "basket_reset"
        assert collect_until(before + 13)
    finally:
        client.close()
        code = svc.stop()
    assert code == 0, svc.stderr
    with Journal(svc.journal) as journal:
        journaled = journal.events_since(0)
    seqs = [e.seq for e in journaled]
    assert seqs == list(range(1, len(seqs) + 1))  # seq continued across the restart, no hole
    # The subscriber got every event exactly once, in order (recovering what PUB lost).
    assert delivered == journaled[: len(delivered)]
    # The JSONL file holds exactly the journal, line for line.
    assert svc.jsonl.read_text(encoding="utf-8") == "".join(e.to_json_line() for e in journaled)
    # The restarted worker continued from the journaled basket: per SKU, adds and removes alternate.
    in_basket = defaultdict(int)
    for e in journaled:
        if e.type == "item_added":
            assert in_basket[e.sku] == 0, f"seq {e.seq}: {e.sku} added twice: basket not restored"
            in_basket[e.sku] = 1
        elif e.type == "item_removed":
            assert in_basket[e.sku] == 1, f"seq {e.seq}: {e.sku} removed but not in the basket"
            in_basket[e.sku] = 0
        elif e.type == "basket_reset":
            in_basket.clear()
    lines = svc.systemd.lines()
    assert lines.count("READY=1") == 1 and "STOPPING=1" in lines
    assert "killed by signal 9" in svc.stderr
    # The 1 Hz health message told subscribers about the restart, with the pipeline's figures.
    after = [h for h in healths if h["worker"]["restarts"] == 1 and h["worker"]["ready"]]
    assert after and after[-1]["worker"]["last_exit"] == "killed by signal 9"
    h = after[-1]
    assert h["journal"]["journal_id"] == follower.journal_id and h["journal"]["last_seq"] >= 1
    assert h["system"]["rss_mb"]["worker"] > 0 and h["pipeline"]["stages"]["synthetic"]["latency_ms_p99"] >= 0
    assert h["pipeline"]["sensors"]["camera"] == "streaming"


def _stall_then_recovery(lines):
    """Indexes (stalled, running again, first watchdog after that) or None if not seen yet."""
    stalled = next((i for i, l in enumerate(lines) if l.startswith("STATUS=stalled")), None)
    if stalled is None or "STATUS=running" not in lines[stalled:]:
        return None
    recovered = lines.index("STATUS=running", stalled)
    if "WATCHDOG=1" not in lines[recovered:]:
        return None
    return stalled, recovered, lines.index("WATCHDOG=1", recovered)


def test_watchdog_is_fed_only_while_frames_flow(service_factory):
    # The first worker's frame loop hangs after 40 frames (heartbeats continue): the watchdog
    # must stop, the worker must be killed after hang_timeout_s and a new one must feed it again.
    svc = service_factory(heartbeat="fps=50,event_every=0,hang_after=40")
    try:
        assert svc.systemd.wait_for(lambda ls: _stall_then_recovery(ls) is not None), svc.stderr
    finally:
        code = svc.stop()
    assert code == 0
    lines = svc.systemd.lines()
    ready = lines.index("READY=1")
    assert "WATCHDOG=1" not in lines[:ready]  # nothing before READY
    stalled = next(i for i, l in enumerate(lines) if l.startswith("STATUS=stalled"))
    recovered = lines.index("STATUS=running", stalled)
    assert "WATCHDOG=1" in lines[ready:stalled]  # fed while frames flowed
    assert "WATCHDOG=1" not in lines[stalled:recovered]  # starved while stalled and restarting
    assert "WATCHDOG=1" in lines[recovered:]  # fed again once frames flow
    assert lines.count("READY=1") == 1
    assert "no frame processed" in svc.stderr


def test_a_fatal_start_error_exits_with_its_code_and_never_reports_ready(service_factory):
    svc = service_factory(heartbeat="fail_start=config")
    code = svc.proc.wait(120)
    svc.stop()
    assert code == 2, svc.stderr
    assert "READY=1" not in svc.systemd.lines()
    assert "models.detector" in svc.stderr and "not restarting" in svc.stderr


def test_a_crash_during_start_is_restarted_and_ready_comes_after(service_factory):
    svc = service_factory(heartbeat="fail_start=crash,event_every=0")
    try:
        assert svc.systemd.wait_for(lambda ls: "READY=1" in ls), svc.stderr
    finally:
        assert svc.stop() == 0
    lines = svc.systemd.lines()
    assert any(l.startswith("STATUS=restarting worker") for l in lines[: lines.index("READY=1")])
    assert "synthetic start crash" in svc.stderr


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("[supervisor]\nhang_timeout_s = -1\n", "supervisor.hang_timeout_s = -1"),
        ("[publish]\nsend_hwm = 'lots'\n", "publish.send_hwm = 'lots'"),
        ("[journal]\nsynchronous = 'OFF'\n", "journal.synchronous = 'OFF'"),
        ("[supervisor]\npipeline = 'no_such_module:create'\n", "no_such_module"),
        ("[supervisor\n", "not valid TOML"),
    ],
)
def test_malformed_config_is_one_line_and_non_zero(tmp_path, text, fragment):
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    proc = subprocess.run([sys.executable, "-m", "caper_edge", "run", "--config", str(bad)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    err = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith(("--", "  +", "The following"))]
    assert len(err) == 1 and fragment in err[0], proc.stderr


# -- units --------------------------------------------------------------------------------------


def test_backoff_doubles_caps_and_resets_after_a_stable_run():
    b = Backoff(0.25, 2.0, stable_after_s=60)
    assert [b.next_delay(1.0) for _ in range(6)] == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    assert b.next_delay(61.0) == 0.25
    assert b.next_delay(0.0) == 0.5


@pytest.mark.parametrize("abstract", [False, True])
def test_sd_notify_reaches_a_real_datagram_socket(tmp_path, abstract):
    address = f"@caper-test-{os.getpid()}-{time.monotonic_ns()}" if abstract else str(tmp_path / "n.sock")
    systemd = FakeSystemd(address)
    try:
        n = Notifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "3000000"})
        assert n.enabled and n.watchdog_interval_s == 1.5
        assert n.ready("up") and n.watchdog() and n.status("fine") and n.stopping()
        assert systemd.wait_for(lambda ls: len(ls) >= 5, timeout=5)
        assert systemd.lines() == ["READY=1", "STATUS=up", "WATCHDOG=1", "STATUS=fine", "STOPPING=1"]
        n.close()
    finally:
        systemd.close()


def test_sd_notify_outside_systemd_and_foreign_watchdog_pid():
    assert not Notifier({}).enabled and not Notifier({}).ready()
    assert Notifier({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}).watchdog_interval_s is None
    assert Notifier({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())}).watchdog_interval_s == 0.5
    missing = Notifier({"NOTIFY_SOCKET": "/nonexistent/notify"})
    assert missing.enabled and not missing.ready()  # logged once, never raised


def test_logs_are_json_lines_under_systemd_and_text_otherwise(tmp_path):
    import io

    stream = io.StringIO()
    log = setup_logging("info", "auto", role="supervisor", environ={"INVOCATION_ID": "abc"}, stream=stream)
    logging.getLogger("caper_edge.test").info("worker %d ready", 3, extra={"fields": {"worker_pid": 42}})
    logging.getLogger("caper_edge.test").debug("noise")
    record = json.loads(stream.getvalue().strip())
    assert record["msg"] == "worker 3 ready" and record["level"] == "info" and record["worker_pid"] == 42
    assert record["role"] == "supervisor" and record["logger"] == "caper_edge.test"
    assert len(stream.getvalue().strip().splitlines()) == 1  # debug filtered
    text = io.StringIO()
    setup_logging("info", "auto", role="supervisor", environ={}, stream=text)
    logging.getLogger("caper_edge.test").warning("hello")
    assert "warning" in text.getvalue() and "supervisor: hello" in text.getvalue()
    assert len(log.handlers) == 1  # replaced, not stacked
    # journald priority prefix only when stderr really is the journal stream
    f = open(tmp_path / "j", "w")
    st = os.fstat(f.fileno())
    setup_logging("info", "json", environ={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, stream=f)
    logging.getLogger("caper_edge.test").error("bad")
    f.close()
    assert (tmp_path / "j").read_text().startswith("<3>{")
    assert isinstance(JsonFormatter("x"), logging.Formatter)
    log.handlers.clear()
