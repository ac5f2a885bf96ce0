"""Supervisor end to end (real `caper-edge run` processes on loopback), sd_notify, logs, backoff.

The service runs the synthetic pipeline (caper_edge.heartbeat_pipeline) with short timeouts; a
real AF_UNIX datagram socket plays systemd's NOTIFY_SOCKET.
"""

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict

import pytest

from caper_edge.client import EventClient, EventFollower
from caper_edge.events import Event
from caper_edge.journal import Journal
from caper_edge.logs import JsonFormatter, setup_logging
from caper_edge.sd_notify import Notifier
from caper_edge.supervisor import Backoff

from _service import FakeSystemd, Service, _ping, _wait, service_factory_fixture  # noqa: E402,F401

service_factory = pytest.fixture(service_factory_fixture)


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
