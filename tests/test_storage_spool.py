"""The spool on disk (records, damage, bounds, ownership) and the writer that fills and drains it."""

from __future__ import annotations

import logging
import os
import struct

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from agenttrail.receiver.mapping import map_export_request
from agenttrail.storage import EncodedSteps, Store, StorageUnavailable
from agenttrail.storage.errors import is_outage
from agenttrail.storage.native import encode_block
from agenttrail.storage.spool import Spool, SpoolError
from agenttrail.storage.spooled import batch_to_record, decode_native, record_to_batch

from otel_helpers import record_support_run
from spool_helpers import Outage, wait_for


def _segments(directory) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.endswith(".spool"))


def _payloads(spool: Spool, max_spans: int = 10**9) -> list[bytes]:
    return [payload for _, payload in spool.read(max_spans)]


def test_records_come_back_in_order_and_only_unreleased_ones_after_a_reopen(tmp_path):
    spool = Spool(str(tmp_path), max_bytes=1 << 20)
    assert spool.append([(b"one", 1), (b"two", 2)]) == 2
    assert spool.append([(b"three", 3)]) == 1
    assert spool.status()["batches"] == 3 and spool.status()["spans"] == 6
    records = spool.read(max_spans=3)  # bounded by spans, whole records
    assert [p for _, p in records] == [b"one", b"two"]
    spool.release(records[0][0])
    spool.close()

    reopened = Spool(str(tmp_path), max_bytes=1 << 20)
    assert _payloads(reopened) == [b"two", b"three"]
    assert reopened.status()["spans"] == 5
    reopened.release(reopened.read(10)[-1][0])
    assert reopened.empty and reopened.status()["bytes"] == 0
    assert _segments(tmp_path) == []  # a drained spool gives its disk space back
    reopened.append([(b"four", 4)])
    reopened.close()
    assert _payloads(Spool(str(tmp_path), max_bytes=1 << 20)) == [b"four"]


def test_segments_rotate_and_released_ones_are_deleted(tmp_path):
    spool = Spool(str(tmp_path), max_bytes=1 << 20, segment_bytes=100)
    for i in range(6):
        spool.append([(bytes([i]) * 80, 1)])
    assert len(_segments(tmp_path)) == 6
    records = spool.read(3)
    spool.release(records[-1][0])
    assert len(_segments(tmp_path)) == 3
    spool.close()
    assert [p[0] for p in _payloads(Spool(str(tmp_path), max_bytes=1 << 20))] == [3, 4, 5]


def test_a_torn_last_record_is_dropped_and_reported_and_appends_continue(tmp_path, caplog):
    spool = Spool(str(tmp_path), max_bytes=1 << 20)
    spool.append([(b"a" * 100, 1), (b"b" * 100, 1), (b"c" * 100, 1)])
    spool.close()
    segment = tmp_path / _segments(tmp_path)[0]
    segment.write_bytes(segment.read_bytes()[:-30])  # a crash in the middle of the last append
    with caplog.at_level(logging.ERROR, logger="agenttrail.storage.spool"):
        reopened = Spool(str(tmp_path), max_bytes=1 << 20)
    assert _payloads(reopened) == [b"a" * 100, b"b" * 100]
    assert "torn record" in caplog.text and reopened.damaged_bytes > 0
    reopened.append([(b"d", 1)])
    reopened.close()
    assert _payloads(Spool(str(tmp_path), max_bytes=1 << 20)) == [b"a" * 100, b"b" * 100, b"d"]


@pytest.mark.parametrize("damage", ["flip_payload", "bad_marker", "huge_length", "garbage_tail"])
def test_damage_keeps_the_records_before_it_and_later_segments(tmp_path, caplog, damage):
    spool = Spool(str(tmp_path), max_bytes=1 << 20, segment_bytes=250)
    spool.append([(b"a" * 100, 1), (b"b" * 100, 1), (b"c" * 100, 1)])  # segment 0 (rotates after)
    spool.append([(b"later", 1)])  # segment 1
    spool.close()
    first = tmp_path / _segments(tmp_path)[0]
    data = bytearray(first.read_bytes())
    second = 24 + 100  # the second record's offset (24-byte header)
    if damage == "flip_payload":
        data[second + 24 + 50] ^= 0xFF
    elif damage == "bad_marker":
        data[second:second + 4] = b"XXXX"
    elif damage == "huge_length":
        struct.pack_into("<I", data, second + 4, 0xFFFFFFF0)
    else:
        data[second:] = os.urandom(len(data) - second)
    first.write_bytes(bytes(data))
    with caplog.at_level(logging.ERROR, logger="agenttrail.storage.spool"):
        reopened = Spool(str(tmp_path), max_bytes=1 << 20)
    assert _payloads(reopened) == [b"a" * 100, b"later"]
    assert f"at byte {second}" in caplog.text


def test_a_full_spool_takes_what_fits_and_room_comes_back_on_release(tmp_path):
    spool = Spool(str(tmp_path), max_bytes=3 * (24 + 100))
    assert spool.append([(b"x" * 100, 1)] * 5) == 3
    assert spool.append([(b"y", 1)]) == 0
    assert spool.status()["bytes"] == 3 * 124
    spool.release(spool.read(1)[0][0])
    assert spool.append([(b"y" * 100, 1), (b"z", 1)]) == 1


def test_quarantined_records_keep_their_room_until_a_reopen_retries_them(tmp_path):
    spool = Spool(str(tmp_path), max_bytes=2 * (24 + 100))
    assert spool.append([(b"x" * 100, 1), (b"y" * 100, 1)]) == 2
    first = spool.read(1)[0][0]
    spool.quarantine(first)  # set aside on disk, then released as the drainer does
    spool.release(first)
    assert spool.append([(b"z" * 100, 1)]) == 0  # its bytes still take room
    spool.release(spool.read(1)[0][0])
    assert spool.append([(b"z" * 100, 1)]) == 1
    spool.close()
    reopened = Spool(str(tmp_path), max_bytes=2 * (24 + 100))  # the quarantined record is back, behind
    assert _payloads(reopened) == [b"z" * 100, b"x" * 100]
    assert reopened.status()["quarantined_batches"] == 0 and reopened.append([(b"w", 1)]) == 0


def test_an_unreadable_head_file_replays_everything(tmp_path, caplog):
    spool = Spool(str(tmp_path), max_bytes=1 << 20)
    spool.append([(b"one", 1), (b"two", 1)])
    spool.release(spool.read(1)[0][0])
    spool.close()
    (tmp_path / "head").write_bytes(b"\xff\x00 not a head")
    with caplog.at_level(logging.WARNING, logger="agenttrail.storage.spool"):
        assert _payloads(Spool(str(tmp_path), max_bytes=1 << 20)) == [b"one", b"two"]
    assert "unreadable head" in caplog.text


def test_one_process_owns_a_spool_directory(tmp_path):
    spool = Spool(str(tmp_path), max_bytes=1 << 20)
    with pytest.raises(SpoolError, match="in use by another agenttrail process"):
        Spool(str(tmp_path), max_bytes=1 << 20)
    spool.close()
    Spool(str(tmp_path), max_bytes=1 << 20).close()


def test_processes_sharing_a_parent_directory_claim_a_slot_each_and_reuse_freed_ones(tmp_path):
    first = Spool.claim(str(tmp_path), max_bytes=1 << 20)
    first.append([(b"left behind", 1)])
    second = Spool.claim(str(tmp_path), max_bytes=1 << 20)
    assert (first.directory, second.directory) == (str(tmp_path / "0"), str(tmp_path / "1"))
    first.close()
    third = Spool.claim(str(tmp_path), max_bytes=1 << 20)  # takes over the stopped one's spool
    assert third.directory == str(tmp_path / "0") and _payloads(third) == [b"left behind"]
    with pytest.raises(SpoolError, match="all 2 spool slots"):
        Spool.claim(str(tmp_path), max_bytes=1 << 20, slots=2)


@pytest.mark.parametrize("max_bytes", [0, -1])
def test_a_spool_needs_a_positive_size(tmp_path, max_bytes):
    with pytest.raises(SpoolError, match="positive"):
        Spool(str(tmp_path), max_bytes=max_bytes)


def test_an_unusable_directory_is_named(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(SpoolError, match="a-file"):
        Spool(str(blocker / "spool"), max_bytes=1 << 20)


def _mapped(spans) -> EncodedSteps:
    return EncodedSteps.of(map_export_request(encode_spans(spans)).batch, ingested_ms=1_700_000_000_000)


def test_a_record_carries_the_native_block_and_rebuilds_the_same_rows():
    spans, _ = record_support_run(fail_tool=True)
    batch = _mapped(spans)
    back = record_to_batch(batch_to_record(batch, 0))
    assert back.native == batch.native and back.keys() == batch.keys() and back.ingested_ms == batch.ingested_ms
    rebuilt = back.rebuild()
    assert rebuilt.keys() == batch.keys()
    assert encode_block(rebuilt, batch.ingested_ms).data == batch.native
    assert decode_native(batch.native).columns["attributes"] == batch.rebuild().columns["attributes"]


@pytest.mark.parametrize("payload", [b"", b"\x05\x00\x00\x00{}", b"\xff\xff\xff\xff" + b"x" * 10,
                                     b"\x02\x00\x00\x00{}abc", b'\x08\x00\x00\x00{"v": 9}x',
                                     b'\x38\x00\x00\x00{"v":1,"ingested_ms":0,"projects":["p"],"runs":[],"steps":[]}x'])
def test_a_payload_that_is_not_a_record_is_a_value_error(payload):
    with pytest.raises(ValueError):
        record_to_batch(payload)


# -- the writer with a spool, on the real engine ---------------------------------------------------


@pytest.fixture
def spooled_store(storage_dsn, database, tmp_path):
    """A store whose writer spools (in tmp_path/spool), with a quick drain retry."""
    s = Store.open(storage_dsn, database, spool_dir=str(tmp_path / "spool"), spool_max_bytes=1 << 20)
    s.writer.drainer.retry = s.writer.drainer.max_retry = 0.2
    yield s
    s.close()
    s.command(f"DROP DATABASE IF EXISTS {database}")


def _counts(store) -> tuple[int, int]:
    return store.query("SELECT count(), uniqExact(project_id, run_id, step_id) FROM steps").result_rows[0]


@pytest.mark.parametrize("after_insert", [False, True])
def test_a_failed_commit_is_spooled_acknowledged_and_drained_once(spooled_store, after_insert):
    """``after_insert``: the commit dies after its steps are in ClickHouse, before its run rows."""
    outage = Outage(after_insert=after_insert)
    spooled_store.writer.wrap_clients(outage.wrap)
    runs = [record_support_run() for _ in range(4)]
    for spans, _ in runs:  # stored: the runs are known, so a commit of more of them recomputes them
        assert not spooled_store.writer.write(_mapped(spans[:2]), timeout=30).spooled
    with outage:
        results = [spooled_store.writer.write(_mapped(spans[2:]), timeout=30) for spans, _ in runs]
        assert all(r.spooled and r.accepted == 3 for r in results)
        resend = spooled_store.writer.write(_mapped(runs[0][0][2:]), timeout=30)  # behind the backlog
        assert resend.spooled
        assert spooled_store.spool_status()["spans"] == 15
        assert _counts(spooled_store)[0] == (11 if after_insert else 8)  # the first commit's insert
        wait_for(lambda: spooled_store.writer.stats["drain_failures"] >= 2, what="failed drains")
    wait_for(lambda: spooled_store.spool_status()["batches"] == 0, what="the spool to drain")
    assert _counts(spooled_store) == (20, 20)
    rows = spooled_store.query("SELECT run_id, step_count, status FROM runs FINAL").result_rows
    assert sorted(rows) == sorted((run_id, 5, "ok") for _, run_id in runs)
    stats = spooled_store.writer.stats
    assert (stats["spooled_spans"], stats["drained_spans"]) == (15, 15)


def test_an_error_that_is_no_outage_is_not_spooled(spooled_store):
    spooled_store.command("RENAME TABLE steps TO steps_gone")
    try:
        with pytest.raises(StorageUnavailable):
            spooled_store.writer.write(_mapped(record_support_run()[0]), timeout=30)
    finally:
        spooled_store.command("RENAME TABLE steps_gone TO steps")
    assert spooled_store.spool_status()["batches"] == 0


def test_a_full_spool_refuses_and_nothing_refused_is_stored(storage_dsn, database, tmp_path):
    batch = _mapped(record_support_run()[0])
    room = 2 * (24 + len(batch_to_record(batch, 0)))
    store = Store.open(storage_dsn, database, spool_dir=str(tmp_path / "spool"), spool_max_bytes=room)
    try:
        outage = Outage()
        store.writer.wrap_clients(outage.wrap)
        runs = [record_support_run() for _ in range(3)]
        with outage:
            assert store.writer.write(_mapped(runs[0][0]), timeout=30).spooled
            assert store.writer.write(_mapped(runs[1][0]), timeout=30).spooled
            with pytest.raises(StorageUnavailable, match="spool is full") as refused:
                store.writer.write(_mapped(runs[2][0]), timeout=30)
            assert refused.value.retry_after >= 1 and store.writer.stats["spool_refused"] == 5
        wait_for(lambda: store.spool_status()["batches"] == 0, what="the spool to drain")
        stored = {r for (r,) in store.query("SELECT DISTINCT run_id FROM steps").result_rows}
        assert stored == {runs[0][1], runs[1][1]}
    finally:
        store.close()
        store.command(f"DROP DATABASE IF EXISTS {database}")


def test_a_spool_the_disk_refuses_refuses_the_batch_and_keeps_nothing_of_it(spooled_store, monkeypatch):
    outage = Outage()
    spooled_store.writer.wrap_clients(outage.wrap)
    runs = [record_support_run() for _ in range(2)]

    def disk_error(fd):
        raise OSError(5, "Input/output error")

    with outage:
        with monkeypatch.context() as disk:  # the disk fails the fsync: nothing may be acknowledged
            disk.setattr("agenttrail.storage.spool.os.fsync", disk_error)
            with pytest.raises(StorageUnavailable, match="spool cannot be written: Input/output error"):
                spooled_store.writer.write(_mapped(runs[0][0]), timeout=30)
        assert spooled_store.spool_status()["batches"] == 0 and spooled_store.writer.stats["spool_refused"] == 5
        directory = spooled_store.writer.spool.directory
        assert [os.path.getsize(os.path.join(directory, name)) for name in _segments(directory)] == [0]
        assert spooled_store.writer.write(_mapped(runs[1][0]), timeout=30).spooled  # the disk is back
    wait_for(lambda: spooled_store.spool_status()["batches"] == 0, what="the spool to drain")
    assert {r for (r,) in spooled_store.query("SELECT DISTINCT run_id FROM steps").result_rows} == {runs[1][1]}


def test_a_segment_that_cannot_be_read_is_named_and_the_directory_released(tmp_path):
    Spool(str(tmp_path), max_bytes=1 << 20).close()
    (tmp_path / "seg-000000000000.spool").mkdir()  # where a segment file should be
    with pytest.raises(SpoolError, match="cannot read what it holds"):
        Spool(str(tmp_path), max_bytes=1 << 20)
    os.rmdir(tmp_path / "seg-000000000000.spool")
    Spool(str(tmp_path), max_bytes=1 << 20).close()  # the failed open let go of its lock


@pytest.mark.parametrize("error, outage", [
    (OperationalError("Error executing HTTP request attempt 1"), True),
    (DatabaseError("Code: 252. Too many parts (TOO_MANY_PARTS)", code=252), True),
    (DatabaseError("Code: 164. Cannot execute query in readonly mode (READONLY)", code=164), True),
    (DatabaseError("HTTP driver received HTTP status 502, server response: Bad Gateway"), True),
    (DatabaseError("Code: 60. Unknown table expression identifier 'steps' (UNKNOWN_TABLE)", code=60), False),
    (DatabaseError("HTTP driver received HTTP status 400"), False),
    (ConnectionResetError(104, "Connection reset by peer"), True),
    (ValueError("a bug"), False),
])
def test_only_errors_that_waiting_can_fix_are_outages(error, outage):
    assert is_outage(error) is outage


def test_a_segment_removed_under_the_drainer_is_reported_and_dropped_not_waited_for(spooled_store, caplog):
    outage = Outage()
    spooled_store.writer.wrap_clients(outage.wrap)
    runs = [record_support_run() for _ in range(2)]
    with outage:
        for spans, _ in runs:
            assert spooled_store.writer.write(_mapped(spans), timeout=30).spooled
        directory = spooled_store.writer.spool.directory
        for name in _segments(directory):  # someone cleans up the wrong directory
            os.unlink(os.path.join(directory, name))
        with caplog.at_level(logging.ERROR):  # no commit needed to drop what cannot be read
            wait_for(lambda: spooled_store.spool_status()["batches"] == 0, what="the spool to give up on them")
    assert "has gone" in caplog.text and spooled_store.writer.stats["spool_unreadable"] == 10
    assert _counts(spooled_store) == (0, 0)
    assert spooled_store.writer.write(_mapped(runs[0][0]), timeout=30).accepted == 5  # and ingest goes on
    assert _counts(spooled_store) == (5, 5)
