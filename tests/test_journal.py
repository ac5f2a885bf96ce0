"""Journal: durable, strictly increasing seq across restarts, restore, disk full, corruption."""

import logging
import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from caper_edge.events import BasketItem, BasketSnapshot, Event
from caper_edge.journal import Journal, JournalError, JournalFullError, default_journal_path


def _draft(i, **kw):
    return Event("item_added", 1_000 + i, sku=f"SKU{i % 7}", confidence=0.9, weight_delta_g=100.0 + i, **kw)


def _snapshot(seq, n):
    return BasketSnapshot(seq, 1_000 + seq, (BasketItem("SKU0", n),) if n else ()).to_dict()


@pytest.fixture
def path(tmp_path):
    return tmp_path / "state" / "journal.sqlite3"


def test_wal_mode_and_synchronous_are_what_we_ask(path):
    with Journal(path, synchronous="FULL") as j:
        mode = j._conn.execute("PRAGMA journal_mode").fetchone()[0]
        sync = j._conn.execute("PRAGMA synchronous").fetchone()[0]
    assert mode == "wal" and sync == 2  # sqlite: 2 = FULL
    with Journal(path, synchronous="NORMAL") as j:
        assert j._conn.execute("PRAGMA synchronous").fetchone()[0] == 1
    with pytest.raises(ValueError, match="synchronous = 'OFF'"):
        Journal(path, synchronous="OFF")  # type: ignore[arg-type]


def test_seq_strictly_increases_and_continues_after_reopen(path):
    with Journal(path) as j:
        seqs = [j.append(_draft(i)).seq for i in range(5)]
        jid = j.journal_id
    with Journal(path) as j:
        seqs += [j.append(_draft(i)).seq for i in range(5, 8)]
        assert j.journal_id == jid and j.last_seq == 8
        assert [e.seq for e in j.events_since(0)] == list(range(1, 9))
        assert [e.seq for e in j.events_since(5)] == [6, 7, 8]
        assert [e.seq for e in j.events_since(2, limit=2)] == [3, 4]
        assert j.events_since(8) == []
    assert seqs == list(range(1, 9))


def test_events_read_back_equal_what_was_appended(path):
    with Journal(path) as j:
        drafts = [_draft(i, extras={"evidence": {"k": i}}) for i in range(4)]
        committed = [j.append(d) for d in drafts]
        assert j.events_since(0) == committed
        assert [c.seq for c in committed] == [1, 2, 3, 4]
        assert all(c == d.with_seq(c.seq) for c, d in zip(committed, drafts))


def test_committed_events_survive_kill_9_of_the_writer(path):
    # A separate process appends then SIGKILLs itself: nothing committed may be lost.
    code = textwrap.dedent(f"""
        import os, signal
        from caper_edge.journal import Journal
        from caper_edge.events import Event
        j = Journal({str(path)!r})
        for i in range(25):
            j.append(Event("item_added", i, sku="A"))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()
    with Journal(path) as j:
        assert j.last_seq == 25
        assert [e.t_ns for e in j.events_since(0)] == list(range(25))
        assert j.append(_draft(0)).seq == 26


def test_restore_gives_latest_snapshot_and_events_after_it(path):
    with Journal(path) as j:
        j.append(_draft(0), _snapshot(0, 1))
        j.append(_draft(1), _snapshot(0, 2))
        j.append(_draft(2))  # fusion journaled no snapshot for this one
        j.append(_draft(3))
    with Journal(path) as j:
        r = j.restore()
    assert r.last_seq == 4 and r.snapshot_seq == 2
    assert r.snapshot["seq"] == 2 and r.snapshot["items"] == [{"sku": "SKU0", "qty": 2}]
    assert [e.seq for e in r.events_after] == [3, 4]
    assert BasketSnapshot.from_dict(r.snapshot).total_qty == 2


def test_put_snapshot_reflects_everything_so_far(path):
    with Journal(path) as j:
        for i in range(3):
            j.append(_draft(i))
        assert j.put_snapshot(_snapshot(0, 3), t_ns=5) == 3
        assert j.restore().events_after == [] and j.latest_snapshot()[0] == 3


def test_empty_journal_restores_to_nothing(path):
    with Journal(path) as j:
        r = j.restore()
        assert (r.last_seq, r.snapshot, r.snapshot_seq, r.events_after) == (0, None, 0, [])
        assert j.first_seq() == 1


def test_prune_keeps_retained_events_and_never_reuses_seq(path):
    with Journal(path) as j:
        for i in range(10):
            j.append(_draft(i), _snapshot(0, 1) if i == 7 else None)  # snapshot at seq 8
        assert j.prune(retain_events=3) == 7  # cutoff = min(8, 10 - 3) = 7
        assert j.first_seq() == 8 and [e.seq for e in j.events_since(0)] == [8, 9, 10]
        assert j.prune(retain_events=0) == 1  # never past the latest snapshot (seq 8)
        assert j.first_seq() == 9
    with Journal(path) as j:
        assert j.append(_draft(11)).seq == 11


def test_a_reader_in_another_connection_sees_new_commits(path):
    with Journal(path) as writer, Journal(path) as reader:
        writer.append(_draft(0))
        assert reader.last_seq == 1
        writer.append(_draft(1))
        assert [e.seq for e in reader.events_since(0)] == [1, 2]


def test_bad_arguments_are_named(path):
    with Journal(path) as j:
        with pytest.raises(ValueError, match="events_since seq = -1"):
            j.events_since(-1)
        with pytest.raises(ValueError, match="events_since limit = 0"):
            j.events_since(0, limit=0)
        with pytest.raises(TypeError, match="takes an Event"):
            j.append({"type": "item_added"})  # type: ignore[arg-type]


# -- disk full ------------------------------------------------------------------------------------


def _fill_until_full(j):
    committed = []
    big = {"evidence": "x" * 3000}
    with pytest.raises(JournalFullError) as info:
        for i in range(10_000):
            committed.append(j.append(_draft(i, extras=big)))
    return committed, info.value


def test_size_cap_full_raises_clear_error_and_loses_nothing(path):
    with Journal(path, max_size_bytes=64 * 1024) as j:
        committed, err = _fill_until_full(j)
        assert "disk full" in str(err) and str(path) in str(err) and "intact" in str(err)
        assert len(committed) > 3
        assert j.last_seq == len(committed)  # seq did not advance for the failed event
    with Journal(path) as j:  # reopened without the cap: everything committed is there
        assert j.events_since(0) == committed
        assert j.append(_draft(0)).seq == len(committed) + 1


@pytest.fixture
def tiny_tmpfs(tmp_path):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(mnt)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_real_full_disk_on_a_tiny_tmpfs(tiny_tmpfs):
    path = tiny_tmpfs / "journal.sqlite3"
    j = Journal(path)
    committed, err = _fill_until_full(j)
    assert "disk full" in str(err)
    j.close()
    # Reopened on the still-full disk: everything committed before the failure reads back.
    with Journal(path) as j2:
        assert [e.seq for e in j2.events_since(0)] == [e.seq for e in committed]


def test_sqlite_errors_are_translated(path):
    with Journal(path) as j:
        full = j._translate(sqlite3.OperationalError("database or disk is full"), "appending")
        other = j._translate(sqlite3.OperationalError("disk I/O error"), "appending")
    assert isinstance(full, JournalFullError)
    assert type(other) is JournalError and "disk I/O error while appending" in str(other)


# -- corruption -----------------------------------------------------------------------------------


def test_garbage_file_is_moved_aside_not_overwritten(path, caplog):
    path.parent.mkdir(parents=True)
    garbage = b"this is not an sqlite database\n" * 200
    path.write_bytes(garbage)
    with caplog.at_level(logging.ERROR, logger="caper_edge.journal"):
        j = Journal(path)
    asides = sorted(p for p in path.parent.iterdir() if ".corrupt-" in p.name and not p.name.endswith(("-wal", "-shm")))
    assert len(asides) == 1 and asides[0].read_bytes() == garbage
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "corrupt" in messages and str(asides[0]) in messages
    assert j.append(_draft(0)).seq == 1
    j.close()


def test_damaged_page_keeps_every_readable_event_and_seq_continues(path, caplog):
    with Journal(path) as j:
        originals = [j.append(_draft(i, extras={"evidence": "y" * 200})) for i in range(300)]
        jid = j.journal_id
    with open(path, "r+b") as f:  # overwrite one page in the middle of the events b-tree
        f.seek(4096 * 10)
        f.write(os.urandom(4096))
    with caplog.at_level(logging.ERROR, logger="caper_edge.journal"):
        j = Journal(path)
    salvaged = j.events_since(0)
    assert 200 < len(salvaged) < 300  # one leaf page of ~12 events lost, nothing else
    by_seq = {e.seq: e for e in originals}
    assert all(by_seq[e.seq] == e for e in salvaged)
    assert j.journal_id != jid  # clients learn that the journal was replaced
    assert j.append(_draft(0)).seq == 301  # seq never goes back
    assert any("recovered" in r.getMessage() for r in caplog.records)
    j.close()


def test_reopen_if_replaced_follows_a_new_file(path):
    reader = Journal(path)
    with Journal(path) as w:
        w.append(_draft(0))
    os.replace(path, path.with_name("old.sqlite3"))
    for suffix in ("-wal", "-shm"):
        if os.path.exists(f"{path}{suffix}"):
            os.replace(f"{path}{suffix}", f"{path.with_name('old.sqlite3')}{suffix}")
    with Journal(path) as w:
        w.append(_draft(0))
        w.append(_draft(1))
    assert reader.reopen_if_replaced()
    assert reader.last_seq == 2
    assert not reader.reopen_if_replaced()
    reader.close()


def test_default_path_prefers_systemd_state_directory(tmp_path):
    assert default_journal_path({"STATE_DIRECTORY": "/var/lib/caper-edge"}) == \
        default_journal_path({"STATE_DIRECTORY": "/var/lib/caper-edge:/other"})
    assert str(default_journal_path({"STATE_DIRECTORY": "/var/lib/caper-edge"})) == "/var/lib/caper-edge/journal.sqlite3"
    assert str(default_journal_path({"XDG_STATE_HOME": "/x"})) == "/x/caper-edge/journal.sqlite3"
