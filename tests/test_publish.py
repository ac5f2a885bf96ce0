"""ZeroMQ PUB/REP, JSONL, CURVE and the gap-recovering follower; loopback only."""

import dataclasses
import json
import os
import stat
import threading
import time

import msgpack
import pytest
import zmq

from caper_edge import config
from caper_edge.cli import main as cli_main
from caper_edge.client import EventClient, EventFollower
from caper_edge.curve import endpoint_is_local, load_client_keys, make_keys
from caper_edge.errors import ConfigError
from caper_edge.events import BasketItem, BasketSnapshot, Event
from caper_edge.journal import Journal
from caper_edge.publish import EventServer, JournalFollower, JsonlSink, RequestHandler

LOOPBACK = "tcp://127.0.0.1:*"


def _cfg(**kw):
    base = config.load().publish
    return dataclasses.replace(base, pub=LOOPBACK, rep=LOOPBACK, heartbeat_ivl_ms=0, **kw)


def _draft(i):
    return Event("item_added" if i % 2 else "item_removed", 10_000 + i, sku=f"S{i % 3}", confidence=0.8,
                 weight_delta_g=(50.0 + i) * (1 if i % 2 else -1), track_id=i, extras={"evidence": {"i": i}})


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "journal.sqlite3")
    yield j
    j.close()


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.destroy(linger=0)


def _sub(ctx, endpoint, topics=(b"",), **opts):
    s = ctx.socket(zmq.SUB)
    s.linger = 0
    for k, v in opts.items():
        setattr(s, k, v)
    for t in topics:
        s.subscribe(t)
    s.connect(endpoint)
    return s


def _await_subscription(server, sockets, rounds=200):
    """PUB drops messages until a subscription arrives: probe with health until each socket hears one."""
    pending = list(sockets)
    for _ in range(rounds):
        server.publish_health({"probe": True})
        for s in list(pending):
            if s.poll(20):
                s.recv_multipart()
                pending.remove(s)
        if not pending:
            for s in sockets:  # drain other probes
                while s.poll(50):
                    s.recv_multipart()
            return
    raise AssertionError("subscriber never connected")


def _req(ctx, endpoint, payload, timeout_ms=3000, raw=False):
    s = ctx.socket(zmq.REQ)
    s.linger = 0
    s.connect(endpoint)
    s.send(payload if raw else msgpack.packb(payload))
    try:
        if not s.poll(timeout_ms):
            return None
        return msgpack.unpackb(s.recv())
    finally:
        s.close()


# -- endpoint rule ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "endpoint, local",
    [
        ("tcp://127.0.0.1:5556", True), ("tcp://127.3.4.5:1", True), ("tcp://localhost:5556", True),
        ("tcp://[::1]:5556", True), ("ipc:///run/caper/events", True), ("inproc://x", True),
        ("tcp://*:5556", False), ("tcp://0.0.0.0:5556", False), ("tcp://[::]:5556", False),
        ("tcp://192.168.1.20:5556", False), ("tcp://eth0:5556", False), ("tcp://cart.example:5556", False),
    ],
)
def test_endpoint_locality(endpoint, local):
    assert endpoint_is_local(endpoint) is local


def test_binding_off_loopback_without_keys_is_refused_before_binding():
    cfg = dataclasses.replace(config.load().publish, pub="tcp://0.0.0.0:5556")
    with pytest.raises(ConfigError, match=r"publish.pub = 'tcp://0.0.0.0:5556' binds off loopback.*caper-edge keys"):
        EventServer(cfg)
    with pytest.raises(ConfigError, match="curve_on_loopback"):
        EventServer(_cfg(curve_on_loopback=True))
    with pytest.raises(ConfigError, match="transport 'udp'"):
        endpoint_is_local("udp://127.0.0.1:1")


# -- PUB + JSONL -------------------------------------------------------------------------------


def test_subscriber_receives_exactly_the_jsonl_events(tmp_path, journal, ctx):
    jsonl_path = tmp_path / "events.jsonl"
    with EventServer(_cfg(), journal=journal, jsonl=JsonlSink(jsonl_path, mode="truncate")) as server:
        sub = _sub(ctx, server.pub_endpoint, topics=(b"basket.event", b"health"))
        _await_subscription(server, [sub])
        sub.unsubscribe(b"health")
        committed = []
        for i in range(40):
            event = journal.append(_draft(i))
            committed.append(event)
            server.publish_event(event, BasketSnapshot(event.seq, event.t_ns, (BasketItem("S0", 1),)))
        received = []
        while len(received) < 40 and sub.poll(5000):
            received.append(sub.recv_multipart())
    lines = jsonl_path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 40 and len(received) == 40
    assert all(topic == b"basket.event" for topic, _ in received)
    # Independent decoders: msgpack and json of the same event agree field by field and in key order.
    for (topic, payload), line, event in zip(received, lines, committed):
        wire, text = msgpack.unpackb(payload), json.loads(line)
        assert wire == text and list(wire) == list(text)
        assert Event.from_dict(wire) == event
    assert [json.loads(line)["seq"] for line in lines] == list(range(1, 41))


def test_snapshot_and_health_topics(journal, ctx):
    with EventServer(_cfg(), journal=journal) as server:
        sub = _sub(ctx, server.pub_endpoint)
        _await_subscription(server, [sub])
        event = journal.append(_draft(1))
        snap = BasketSnapshot(event.seq, event.t_ns, (BasketItem("S1", 1),), weight_g=51.0)
        server.publish_event(event, snap)
        server.publish_health({"v": 1, "t_ns": 5})
        got = [sub.recv_multipart() for _ in range(3)]
    assert [t for t, _ in got] == [b"basket.event", b"basket.snapshot", b"health"]
    assert BasketSnapshot.from_msgpack(got[1][1]) == snap
    assert msgpack.unpackb(got[2][1]) == {"v": 1, "t_ns": 5}


def test_a_subscriber_that_never_reads_does_not_slow_publishing(journal, ctx):
    cfg = _cfg(send_hwm=50)
    # Bursts well below the HWM, so the live subscriber never overflows. libzmq's writer learns
    # of its reader's progress only every HWM/2 messages (and, under load, a little later), so a
    # reader that has taken everything may still look up to 25 messages behind: bursts of 20
    # were lost silently to the *live* subscriber on a starved 2-core CI machine.
    n_total, burst = 1500, 5
    evidence = {"blob": "z" * 16000}  # 16 KB per message: the stalled peer's socket buffers fill quickly
    with EventServer(cfg, journal=journal) as server:
        stalled = _sub(ctx, server.pub_endpoint, rcvhwm=1, rcvbuf=4096)
        live = _sub(ctx, server.pub_endpoint, topics=(b"basket.event", b"health"))
        _await_subscription(server, [stalled, live])
        got = []

        def reader():
            while len(got) < n_total and live.poll(10_000):
                message = live.recv_multipart()
                if message[0] == b"basket.event":
                    got.append(message)

        t = threading.Thread(target=reader)
        t.start()
        done = threading.Event()

        behind = []

        def publisher():
            for b in range(0, n_total, burst):
                for i in range(b, b + burst):
                    e = Event("unconfirmed_item", i, qty=0, confidence=0.5, seq=i + 1, extras=evidence)
                    server.publish_event(e)
                deadline = time.monotonic() + 10  # pace on the *live* reader only
                while len(got) < b + burst and time.monotonic() < deadline:
                    time.sleep(0.001)
                if len(got) < b + burst:  # a message lost to the live reader: say so, do not wait on
                    behind.append((b + burst, len(got)))
                    break
            done.set()

        p = threading.Thread(target=publisher)
        p.start()
        p.join(120)
        t.join(30)
        assert done.is_set(), "publishing blocked behind a subscriber that never reads"
        assert not behind, f"the live subscriber had {behind[0][1]} of {behind[0][0]} events after 10 s"
        stats = server.stats()
        # Now look at what the stalled subscriber holds: a small fraction, the rest was dropped for it.
        stalled_count = 0
        while stalled.poll(200):
            stalled.recv_multipart()
            stalled_count += 1
    assert stats["sent"]["basket.event"] == n_total and stats["dropped"].get("basket.event", 0) == 0
    assert len(got) == n_total
    assert [Event.from_msgpack(p).seq for _, p in got] == list(range(1, n_total + 1))
    assert stalled_count < n_total // 2  # the rest was dropped for it alone


# -- REP --------------------------------------------------------------------------------------


def test_rep_commands(journal, ctx):
    for i in range(5):
        e = journal.append(_draft(i), BasketSnapshot(i + 1, 10_000 + i, (BasketItem("S0", i + 1),)).to_dict())
    resets = []

    def reset(reason):
        resets.append(reason)
        return journal.append(Event("basket_reset", 99, qty=0), BasketSnapshot(0, 99).to_dict())

    with EventServer(_cfg(events_since_max=3), journal=journal, reset_handler=reset,
                     status_provider=lambda: {"worker": "running"}) as server:
        rep = server.rep_endpoint
        ping = _req(ctx, rep, {"cmd": "ping", "id": 7})
        assert ping["ok"] and ping["pong"] and ping["last_seq"] == 5 and ping["id"] == 7
        assert ping["journal_id"] == journal.journal_id and ping["status"] == {"worker": "running"}

        snap = _req(ctx, rep, {"cmd": "snapshot"})
        assert snap["ok"] and snap["snapshot"]["seq"] == 5 and snap["snapshot"]["items"] == [{"sku": "S0", "qty": 5}]

        page1 = _req(ctx, rep, {"cmd": "events_since", "seq": 0})
        assert [ev["seq"] for ev in page1["events"]] == [1, 2, 3] and page1["more"] and not page1["truncated"]
        page2 = _req(ctx, rep, {"cmd": "events_since", "seq": 3, "limit": 100})
        assert [ev["seq"] for ev in page2["events"]] == [4, 5] and not page2["more"]
        assert Event.from_dict(page2["events"][0]) == journal.events_since(3)[0]

        r = _req(ctx, rep, {"cmd": "reset", "reason": "staff"})
        assert r["ok"] and r["seq"] == 6 and r["event"]["type"] == "basket_reset" and resets == ["staff"]


@pytest.mark.parametrize(
    "request_bytes, fragment",
    [
        (b"\xc1\xff garbage", "not valid msgpack"),
        (b"", "not valid msgpack"),
        (msgpack.packb([1, 2, 3]), "must be a msgpack map"),
        (msgpack.packb({"cmd": 5}), "needs a string 'cmd'"),
        (msgpack.packb({"command": "ping"}), "needs a string 'cmd'"),
        (msgpack.packb({"cmd": "explode"}), "unknown cmd 'explode'"),
        (msgpack.packb({"cmd": "events_since"}), "needs 'seq'"),
        (msgpack.packb({"cmd": "events_since", "seq": -1}), "needs 'seq'"),
        (msgpack.packb({"cmd": "events_since", "seq": 0, "limit": 0}), "'limit' must be"),
        (msgpack.packb({"cmd": "reset"}), "no basket is running"),
        (msgpack.packb({"cmd": "reset", "reason": 3}), "'reason' must be a string"),
    ],
)
def test_malformed_requests_get_an_error_reply(journal, ctx, request_bytes, fragment):
    with EventServer(_cfg(), journal=journal) as server:
        reply = _req(ctx, server.rep_endpoint, request_bytes, raw=True)
        assert reply["ok"] is False and fragment in reply["error"]
        assert _req(ctx, server.rep_endpoint, {"cmd": "ping"})["ok"]  # and the server lives on


def test_multiframe_and_oversized_requests_do_not_kill_the_server(journal, ctx):
    with EventServer(_cfg(max_request_bytes=1024), journal=journal) as server:
        s = ctx.socket(zmq.REQ)
        s.linger = 0
        s.connect(server.rep_endpoint)
        s.send_multipart([msgpack.packb({"cmd": "ping"}), b"extra"])
        assert s.poll(3000)
        assert "one msgpack frame" in msgpack.unpackb(s.recv())["error"]
        s.close()
        # Larger than max_request_bytes: libzmq drops the connection; no reply, the server lives.
        assert _req(ctx, server.rep_endpoint, {"cmd": "ping", "pad": "x" * 4096}, timeout_ms=500) is None
        assert _req(ctx, server.rep_endpoint, {"cmd": "ping"})["ok"]


def test_handler_survives_a_failing_reset_callback(journal):
    def broken(reason):
        raise RuntimeError("fusion exploded")

    reply = msgpack.unpackb(RequestHandler(journal, reset_handler=broken).handle([msgpack.packb({"cmd": "reset"})]))
    assert reply == {"ok": False, "error": "internal error: RuntimeError: fusion exploded"}


def test_truncated_history_is_reported(journal, ctx):
    for i in range(10):
        journal.append(_draft(i), BasketSnapshot(0, 1).to_dict() if i == 7 else None)
    journal.prune(retain_events=2)
    with EventServer(_cfg(), journal=journal) as server:
        r = _req(ctx, server.rep_endpoint, {"cmd": "events_since", "seq": 2})
    assert r["truncated"] and r["first_seq"] == 9 and [e["seq"] for e in r["events"]] == [9, 10]


# -- JSONL sink --------------------------------------------------------------------------------


def test_jsonl_repairs_a_cut_line_and_catches_up_from_the_journal(tmp_path, journal):
    committed = [journal.append(_draft(i)) for i in range(6)]
    path = tmp_path / "e.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        f.write(committed[0].to_json_line() + committed[1].to_json_line())
        f.write(committed[2].to_json_line()[:25])  # the crash cut this line
    sink = JsonlSink(path)
    assert sink.last_seq == 2
    assert sink.catch_up(journal) == 4
    assert not sink.write(committed[3])  # already there: no duplicate
    sink.close()
    assert path.read_text(encoding="utf-8") == "".join(e.to_json_line() for e in committed)


def test_jsonl_ahead_of_a_replaced_journal_is_moved_aside(tmp_path, journal):
    path = tmp_path / "e.jsonl"
    path.write_text("".join(Event("basket_reset", 1, qty=0, seq=s).to_json_line() for s in range(1, 9)))
    journal.append(_draft(0))
    sink = JsonlSink(path)
    assert sink.catch_up(journal) == 1
    sink.close()
    assert (tmp_path / f"e.jsonl.before-{journal.journal_id}").exists()
    assert [json.loads(x)["seq"] for x in path.read_text().splitlines()] == [1]


def test_jsonl_refuses_a_file_that_is_not_events(tmp_path):
    path = tmp_path / "notes.jsonl"
    path.write_text('{"hello": 1}\n')
    with pytest.raises(Exception, match="not an event"):
        JsonlSink(path)
    assert JsonlSink(path, mode="truncate").last_seq == 0


# -- journal follower and the gap-recovering client ---------------------------------------------


def test_follower_publishes_commits_made_by_another_connection(tmp_path, ctx):
    path = tmp_path / "j.sqlite3"
    writer, reader = Journal(path), Journal(path)
    try:
        with EventServer(_cfg(), journal=reader, jsonl=JsonlSink(tmp_path / "e.jsonl")) as server:
            sub = _sub(ctx, server.pub_endpoint, topics=(b"basket.", b"health"))
            _await_subscription(server, [sub])
            sub.unsubscribe(b"health")
            follower = JournalFollower(reader, server)
            for i in range(3):
                writer.append(_draft(i), BasketSnapshot(i + 1, 1).to_dict())
            assert follower.poll() == 3 and follower.poll() == 0
            msgs = [sub.recv_multipart() for _ in range(4)]
        assert [t for t, _ in msgs] == [b"basket.event"] * 3 + [b"basket.snapshot"]
        assert [msgpack.unpackb(p)["seq"] for _, p in msgs] == [1, 2, 3, 3]
    finally:
        writer.close()
        reader.close()


def test_event_follower_recovers_events_the_pub_socket_lost(journal):
    with EventServer(_cfg(), journal=journal) as server:
        client = EventClient(server.pub_endpoint, server.rep_endpoint, timeout_s=3)
        follower = EventFollower(client, since=0)
        # Wait until the SUB socket is connected.
        for _ in range(200):
            server.publish_health({"journal": {"last_seq": 0, "journal_id": journal.journal_id}})
            if follower.poll(0.02):
                break
        delivered = []
        for i in range(12):
            e = journal.append(_draft(i))
            if e.seq not in (4, 5, 6, 12):  # lost on the wire (e.g. HWM); 12 is the *last* one
                server.publish_event(e)
        for _ in range(50):
            server.publish_health({"journal": {"last_seq": journal.last_seq, "journal_id": journal.journal_id}})
            delivered += [u for u in follower.poll(0.1) if u.kind == "event"]
            if delivered and delivered[-1].event.seq == 12:
                break
        client.close()
    assert [u.event.seq for u in delivered] == list(range(1, 13))
    # Whatever was lost came from events_since (a recovery may also fetch later events, which
    # then arrive on PUB as duplicates and are dropped: each seq is delivered once).
    assert {4, 5, 6, 12} <= {u.event.seq for u in delivered if u.recovered}
    assert [u.event for u in delivered] == journal.events_since(0)


# -- CURVE ------------------------------------------------------------------------------------


def test_keys_command_lays_out_private_keys(tmp_path):
    keys = tmp_path / "keys"
    assert cli_main(["keys", str(keys)]) == 0
    secret = keys / "server" / "server.key_secret"
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(keys / "client-client" / "client.key_secret").st_mode) == 0o600
    assert (keys / "authorized_clients" / "client.key").is_file()
    before = secret.read_bytes()
    assert cli_main(["keys", str(keys)]) != 0  # the same client again: refused, nothing overwritten
    assert cli_main(["keys", str(keys), "--client", "ui"]) == 0
    assert secret.read_bytes() == before and (keys / "authorized_clients" / "ui.key").is_file()


def test_curve_only_authorized_clients_get_events(tmp_path, journal, ctx):
    keys = tmp_path / "keys"
    make_keys(keys, "ui")
    stranger = tmp_path / "stranger"
    make_keys(stranger, "ui")  # a valid key pair the cart never authorized
    cfg = _cfg(curve_keys=str(keys), curve_on_loopback=True)
    good_keys = load_client_keys(keys / "client-ui")
    bad_keys = load_client_keys(stranger / "client-ui")
    bad_keys = dataclasses.replace(bad_keys, server_public=good_keys.server_public)
    with EventServer(cfg, journal=journal) as server:
        good = EventClient(server.pub_endpoint, server.rep_endpoint, keys=good_keys, context=ctx, timeout_s=3)
        bad = EventClient(server.pub_endpoint, server.rep_endpoint, keys=bad_keys, context=ctx, timeout_s=1)
        plain = EventClient(server.pub_endpoint, server.rep_endpoint, context=ctx, timeout_s=1)
        assert good.request("ping")["ok"]
        # Probe until the authorized client hears health: by then the others had time to try too.
        for _ in range(200):
            server.publish_health({"probe": True})
            if good.recv(0.02) is not None:
                break
        else:
            raise AssertionError("authorized CURVE client never received anything")
        for i in range(5):
            server.publish_event(journal.append(_draft(i)))
        got = []
        while (m := good.recv(2)) is not None and len(got) < 5:
            if m[0] == b"basket.event":
                got.append(m[1]["seq"])
        assert got == [1, 2, 3, 4, 5]
        assert bad.recv(1.0) is None and plain.recv(0.5) is None
        for c in (bad, plain):
            with pytest.raises(Exception, match="no reply"):
                c.request("ping")
        for c in (good, bad, plain):
            c.close()


# -- caper-edge listen ---------------------------------------------------------------------------


def test_listen_json_prints_exactly_the_journaled_events(journal):
    import subprocess
    import sys

    with EventServer(_cfg(), journal=journal) as server:
        committed = [journal.append(_draft(i)) for i in range(5)]  # before listen starts: recovered
        proc = subprocess.Popen(
            [sys.executable, "-m", "caper_edge", "listen", "--json", "--since", "0", "--max-events", "8",
             "--timeout", "60", "--pub", server.pub_endpoint, "--rep", server.rep_endpoint],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            first = proc.stdout.readline()  # the first recovered event: listen is connected
            for i in range(5, 8):
                event = journal.append(_draft(i))
                committed.append(event)
                server.publish_event(event)
            for _ in range(100):  # health carries last_seq: a PUB message lost to the slow joiner is recovered
                if proc.poll() is not None:
                    break
                server.publish_health({"journal": {"last_seq": journal.last_seq, "journal_id": journal.journal_id}})
                time.sleep(0.1)
            out = proc.stdout.read()  # through the same buffer as readline above
            proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0
    assert first + out == "".join(e.to_json_line() for e in committed)


def test_listen_view_renders_basket_and_events():
    from rich.console import Console

    from caper_edge.client import Update
    from caper_edge.commands.listen import View

    view = View("tcp://127.0.0.1:5556")
    view.apply(Update("snapshot", data=BasketSnapshot(2, 5, (BasketItem("MILK-1L", 2, {"name": "Milk 1 l"}),),
                                                       weight_g=2060.0, expected_weight_g=2050.0).to_dict()))
    view.apply(Update("event", event=Event("item_added", 5, sku="MILK-1L", qty=1, confidence=0.9,
                                           weight_delta_g=1030.0, track_id=4, seq=2), recovered=True))
    view.apply(Update("health", data={"state": "running", "worker": {"fps": 29.5, "restarts": 1}}))
    console = Console(record=True, width=120)
    console.print(view.render())
    text = console.export_text()
    for fragment in ("MILK-1L", "Milk 1 l", "2 items", "2060.0 g", "item_added", "1030.0 g", "fps 29.5",
                     "restarts 1", "recovered 1"):
        assert fragment in text


def test_outlet_commits_then_writes_then_publishes_deterministically(tmp_path, ctx):
    from caper_edge.publish import EventOutlet

    runs = []
    for run in range(2):  # two "replays" into fresh in-memory journals: byte-identical JSONL
        journal = Journal(":memory:")
        path = tmp_path / f"run{run}.jsonl"
        with EventServer(_cfg(), journal=journal) as server:
            sub = _sub(ctx, server.pub_endpoint, topics=(b"basket.", b"health"))
            _await_subscription(server, [sub])
            sub.unsubscribe(b"health")
            outlet = EventOutlet(journal, server=server, jsonl=JsonlSink(path, mode="truncate"))
            for i in range(4):
                e = outlet.commit(_draft(i), BasketSnapshot(0, 10_000 + i, (BasketItem("S0", i + 1),)))
                assert e.seq == i + 1 and journal.latest_snapshot()[1]["seq"] == e.seq
            outlet.jsonl.close()
            got = [sub.recv_multipart() for _ in range(8)]
        assert [t for t, _ in got] == [b"basket.event", b"basket.snapshot"] * 4
        assert [msgpack.unpackb(p)["seq"] for _, p in got] == [1, 1, 2, 2, 3, 3, 4, 4]
        runs.append(path.read_bytes())
        journal.close()
    assert runs[0] == runs[1] and runs[0].count(b"\n") == 4


def test_listen_endpoint_argument_derives_rep():
    import argparse

    from caper_edge.commands.listen import _endpoints

    cfg = config.load().publish

    def ns(**kw):
        return argparse.Namespace(**{"endpoint": None, "pub": None, "rep": None, **kw})

    assert _endpoints(ns(endpoint="tcp://127.0.0.1:6000"), cfg) == ("tcp://127.0.0.1:6000", "tcp://127.0.0.1:6001")
    assert _endpoints(ns(pub="tcp://[::1]:7000", rep="tcp://[::1]:9"), cfg) == ("tcp://[::1]:7000", "tcp://[::1]:9")
    assert _endpoints(ns(), cfg) == (cfg.pub, cfg.rep)
    with pytest.raises(ConfigError, match="give --rep"):
        _endpoints(ns(endpoint="ipc:///run/caper/pub"), cfg)


@pytest.fixture
def tiny_tmpfs(tmp_path):
    import subprocess

    mnt = tmp_path / "tiny"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_jsonl_on_a_full_disk_falls_behind_then_catches_up_without_a_hole(tiny_tmpfs, journal):
    sink = JsonlSink(tiny_tmpfs / "events.jsonl")
    filler = tiny_tmpfs / "filler"
    with open(filler, "wb", buffering=0) as f:  # fill the disk to the last block
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass
    committed = [journal.append(_draft(i)) for i in range(30)]
    results = [sink.write(e) for e in committed]
    assert not all(results) and sink.behind and "No space left" in sink.last_error
    assert not sink.write(committed[-1])  # behind: skips rather than leaving a hole
    filler.unlink()
    assert sink.catch_up(journal) > 0 and not sink.behind
    sink.close()
    assert (tiny_tmpfs / "events.jsonl").read_text() == "".join(e.to_json_line() for e in committed)
