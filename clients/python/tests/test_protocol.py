"""The codec against the shared protocol vectors (tests/vectors/protocol.json)."""

import uuid

import pytest

from annal import protocol as p


def event_of(f):
    return p.NewEvent(type=f["type"], data=f["data"].encode(), metadata=f["metadata"].encode(),
                      data_json=bool(f["flags"] & p.FLAG_DATA_JSON),
                      metadata_json=bool(f["flags"] & p.FLAG_METADATA_JSON), id=uuid.UUID(f["id"]),
                      tags=f.get("tags", []), correlation_id=f.get("correlation_id", ""),
                      causation_id=f.get("causation_id", ""))


def split(hexstr):
    b = bytes.fromhex(hexstr)
    length, op, rid = p.parse_header(b[:13])
    assert length == len(b) - 4
    return op, rid, b[13:]


def test_every_vector_is_understood(vectors):
    ops = {v["op"] for v in vectors}
    assert {"append", "append_ok", "error", "hello", "read_ok", "append_multi", "read_query",
            "append_multi_ok", "append_refused"} <= ops
    assert {"group_create", "group_ack", "group_nack", "group_events", "group_list_ok"} <= ops
    assert {"stream_metadata", "stream_metadata_ok", "set_stream_metadata", "delete_stream",
            "delete_ok", "scavenge", "scavenge_ok"} <= ops
    assert {"snapshot_save", "snapshot_saved", "snapshot_read", "snapshot_ok"} <= ops
    assert {"backup", "backup_ok"} <= ops
    assert {v["version"] for v in vectors} == {1, 2, 3, 4, 5, 6}


def query_of(items):
    return [p.QueryItem(tuple(i["types"]), tuple(i["tags"])) for i in items]


def test_version_3_requests_encode_to_the_vector_bytes(vectors):
    n = 0
    for v in vectors:
        f = v["fields"]
        if v["op"] == "append_multi":
            streams = [p.StreamAppend(s["stream"], [event_of(e) for e in s["events"]],
                                      p.Expected(p.ExpectedKind(s["expected_kind"]),
                                                 s["expected_revision"]))
                       for s in f["streams"]]
            got = p.encode_append_multi(v["request_id"], streams, query_of(f["condition"]),
                                        f["after"])
        elif v["op"] == "read_query":
            got = p.encode_read_query(v["request_id"], query_of(f["query"]), f["from"], f["count"],
                                      f["direction"] == 1)
        else:
            continue
        assert got.hex() == v["hex"], v["name"]
        n += 1
    assert n >= 2


@pytest.mark.parametrize("kind", ["append", "hello"])
def test_requests_encode_to_the_vector_bytes(vectors, kind):
    for v in (v for v in vectors if v["op"] == kind):
        f = v["fields"]
        if kind == "append":
            got = p.encode_append(v["request_id"], f["stream"],
                                  p.Expected(p.ExpectedKind(f["expected_kind"]), f["expected_revision"]),
                                  [event_of(e) for e in f["events"]], v["version"])
        else:
            assert f["magic"] == p.HELLO_MAGIC and f["version"] == v["version"]
            got = p.encode_hello(v["request_id"], f["client_name"], v["version"])
        assert got.hex() == v["hex"], v["name"]


def test_responses_decode_to_the_vector_fields(vectors):
    for v in vectors:
        f = v["fields"]
        if v["op"] not in ("append_ok", "error", "read_ok", "append_multi_ok", "append_refused"):
            continue
        op, rid, payload = split(v["hex"])
        assert rid == v["request_id"]
        none = lambda x: None if x == p.NONE else x  # noqa: E731
        if v["op"] == "append_multi_ok":
            assert op == p.Op.APPEND_MULTI_OK
            r = p.decode_append_multi_ok(payload)
            assert (r.first_position, r.count, r.deduplicated) == (
                f["first_position"], f["count"], bool(f["deduplicated"]))
            assert r.streams == tuple((none(s["first_revision"]), s["count"]) for s in f["streams"])
        elif v["op"] == "append_refused":
            assert op == p.Op.APPEND_REFUSED
            r = p.decode_append_refused(payload)
            assert (r.code, r.message, r.conflict_position) == (
                f["code"], f["message"], none(f["conflict_position"]))
            assert r.streams == tuple((bool(s["failed"]), none(s["actual_revision"]))
                                      for s in f["streams"])
        elif v["op"] == "append_ok":
            assert op == p.Op.APPEND_OK
            r = p.decode_append_ok(payload)
            assert (r.first_position, r.first_revision, r.count, r.deduplicated) == (
                f["first_position"], f["first_revision"], f["count"], bool(f["deduplicated"]))
        elif v["op"] == "error":
            assert op == p.Op.ERROR
            e = p.decode_error(payload)
            assert (e.code, e.detail, e.message) == (f["code"], f["detail"], f["message"])
        else:
            assert op == p.Op.READ_OK
            page = p.decode_read_ok(payload, v["version"])
            assert (page.end, page.next) == (bool(f["end"]), f["next"])
            assert page.durable_end == f.get("durable_end", 0)
            assert len(page.events) == len(f["events"])
            assert_events(page.events, f["events"])


def assert_events(events, wanted):
    assert len(events) == len(wanted)
    for got, want in zip(events, wanted):
        assert (got.position, got.revision, got.timestamp_us, got.flags, str(got.id),
                got.stream, got.type, got.metadata.decode(), got.data.decode()) == (
            want["position"], want["revision"], want["timestamp_us"], want["flags"],
            want["id"], want["stream"], want["type"], want["metadata"], want["data"])
        assert (list(got.tags), got.correlation_id, got.causation_id) == (
            want.get("tags", []), want.get("correlation_id", ""),
            want.get("causation_id", ""))


def test_a_truncated_or_padded_payload_is_a_protocol_error(vectors):
    for v in (v for v in vectors if v["op"] == "read_ok"):
        _, _, payload = split(v["hex"])
        with pytest.raises(p.ProtocolError, match="ends inside"):
            p.decode_read_ok(payload[:-1], v["version"])
        with pytest.raises(p.ProtocolError, match="trailing"):
            p.decode_read_ok(payload + b"\0", v["version"])


def test_version_1_cannot_carry_tags():
    with pytest.raises(ValueError, match="version 1"):
        p.encode_append(1, "s", p.Expected.any(), [p.NewEvent(type="T", tags=["a"])], 1)


def settings_of(f):
    return p.GroupSettings(p.GroupTarget(f["target"]), f["stream"], f["stream_prefix"],
                           f["type_prefix"], p.IndexKind(f["index_kind"]), f["index_value"],
                           p.GroupStart(f["start"]), f["start_value"], p.Strategy(f["strategy"]),
                           f["max_in_flight"], f["ack_timeout_ms"], f["max_retries"],
                           f["retry_delay_ms"])


def test_version_4_group_frames(vectors):
    seen = set()
    for v in (v for v in vectors if v["version"] == 4):
        f, rid = v["fields"], v["request_id"]
        if v["op"] == "group_create":
            got = p.encode_group_create(rid, f["name"], settings_of(f["settings"]), f["update"] == 1)
            assert got.hex() == v["hex"], v["name"]
        elif v["op"] == "group_ack":
            assert p.encode_group_ack(rid, f["join_id"], f["positions"]).hex() == v["hex"]
        elif v["op"] == "group_nack":
            got = p.encode_group_nack(rid, f["join_id"], p.NackAction(f["action"]), f["reason"],
                                      f["positions"])
            assert got.hex() == v["hex"], v["name"]
        elif v["op"] == "group_events":
            op, got_rid, payload = split(v["hex"])
            assert (op, got_rid) == (p.Op.GROUP_EVENTS, rid)
            (d,) = p.decode_group_events(payload)
            want = f["events"][0]
            assert d.attempt == want["attempt"]
            e = want["event"]
            assert (d.event.position, d.event.stream, d.event.data.decode(), list(d.event.tags)) == (
                e["position"], e["stream"], e["data"], e["tags"])
        elif v["op"] == "group_list_ok":
            op, got_rid, payload = split(v["hex"])
            assert (op, got_rid) == (p.Op.GROUP_LIST_OK, rid)
            (g,) = p.decode_group_list_ok(payload)
            want = f["groups"][0]
            assert (g.name, g.checkpoint, g.lag_events, g.lag_us, g.delivered_total) == (
                want["name"], want["checkpoint"], want["lag_events"], want["lag_us"],
                want["delivered_total"])
            assert g.settings == settings_of(want["settings"])
        else:
            continue
        seen.add(v["op"])
    assert seen == {"group_create", "group_ack", "group_nack", "group_events", "group_list_ok"}


def test_version_5_metadata_deletion_and_scavenge_frames(vectors):
    seen = set()
    none = lambda x: None if x == p.NONE else x  # noqa: E731
    for v in (v for v in vectors if v["version"] == 5):
        f, rid = v["fields"], v["request_id"]
        if v["op"] == "stream_metadata":
            assert p.encode_stream_metadata(rid, f["stream"]).hex() == v["hex"], v["name"]
        elif v["op"] == "set_stream_metadata":
            expected = p.Expected(p.ExpectedKind(f["expected_kind"]), f["expected_revision"])
            got = p.encode_set_stream_metadata(rid, f["stream"], expected, f["json"])
            assert got.hex() == v["hex"], v["name"]
        elif v["op"] == "delete_stream":
            expected = p.Expected(p.ExpectedKind(f["expected_kind"]), f["expected_revision"])
            got = p.encode_delete_stream(rid, f["stream"], expected, f["hard"] == 1)
            assert got.hex() == v["hex"], v["name"]
        elif v["op"] == "stream_metadata_ok":
            op, got_rid, payload = split(v["hex"])
            assert (op, got_rid) == (p.Op.STREAM_METADATA_OK, rid)
            assert p.decode_stream_metadata_ok(payload) == p.StreamMetadata(
                none(f["revision"]), f["json"], none(f["max_count"]), none(f["max_age"]),
                f["truncate_before"], f["deleted_before"], f["deleted"] == 1,
                f["tombstoned"] == 1), v["name"]
            with pytest.raises(p.ProtocolError, match="ends inside"):
                p.decode_stream_metadata_ok(payload[:-1])
        elif v["op"] == "delete_ok":
            op, got_rid, payload = split(v["hex"])
            assert (op, got_rid) == (p.Op.DELETE_OK, rid)
            assert p.decode_delete_ok(payload) == p.DeleteResult(f["position"],
                                                                 f["truncate_before"])
        elif v["op"] == "scavenge":
            assert f == {}
            assert p.encode_scavenge(rid).hex() == v["hex"], v["name"]
        elif v["op"] == "scavenge_ok":
            op, got_rid, payload = split(v["hex"])
            assert (op, got_rid) == (p.Op.SCAVENGE_OK, rid)
            assert p.decode_scavenge_ok(payload) == p.ScavengeResult(
                f["segments_checked"], f["segments_rewritten"], f["events_removed"],
                f["bytes_read"], f["bytes_written"], f["log_bytes_before"],
                f["log_bytes_after"], f["duration_us"], f["cancelled"] == 1), v["name"]
            with pytest.raises(p.ProtocolError, match="ends inside"):
                p.decode_scavenge_ok(payload[:-1])
            with pytest.raises(p.ProtocolError):
                p.decode_scavenge_ok(payload + b"\0")
        elif v["op"] == "error":
            op, got_rid, payload = split(v["hex"])
            e = p.decode_error(payload)
            assert (op, e.code, p.code_name(e.code)) == (p.Op.ERROR, 17, "stream_deleted")
        else:
            continue
        seen.add(v["op"])
    assert seen == {"stream_metadata", "stream_metadata_ok", "set_stream_metadata",
                    "delete_stream", "delete_ok", "scavenge", "scavenge_ok", "error"}


def test_version_5_snapshot_frames(vectors):
    seen = []
    for v in (v for v in vectors if v["op"].startswith("snapshot_")):
        assert v["version"] == 5, v["name"]
        f, rid = v["fields"], v["request_id"]
        if v["op"] == "snapshot_save":
            got = p.encode_snapshot_save(rid, f["stream"], f["revision"], f["type"], f["data"])
            assert got.hex() == v["hex"], v["name"]
            assert p.encode_snapshot_save(rid, f["stream"], f["revision"], f["type"],
                                          f["data"].encode()) == got
        elif v["op"] == "snapshot_read":
            max_revision = None if f["max_revision"] == p.NONE else f["max_revision"]
            got = p.encode_snapshot_read(rid, f["stream"], max_revision, f["count"])
            assert got.hex() == v["hex"], v["name"]
            assert p.encode_snapshot_read(rid, f["stream"], f["max_revision"], f["count"]) == got
        elif v["op"] == "snapshot_saved":
            op, got_rid, payload = split(v["hex"])
            assert (op, got_rid) == (p.Op.SNAPSHOT_SAVED, rid)
            assert p.decode_snapshot_saved(payload) == p.SnapshotSaveResult(f["revision"],
                                                                            f["kept"])
            with pytest.raises(p.ProtocolError, match="ends inside"):
                p.decode_snapshot_saved(payload[:-1])
        elif v["op"] == "snapshot_ok":
            op, got_rid, payload = split(v["hex"])
            assert (op, got_rid) == (p.Op.SNAPSHOT_OK, rid)
            page = p.decode_snapshot_ok(payload, v["version"])
            assert (page.found, page.revision, page.type, page.data, page.end, page.next) == (
                f["found"] == 1, f["revision"], f["type"], f["data"].encode(), f["end"] == 1,
                f["next"]), v["name"]
            assert_events(page.events, f["events"])
            with pytest.raises(p.ProtocolError, match="ends inside"):
                p.decode_snapshot_ok(payload[:-1])
            with pytest.raises(p.ProtocolError, match="trailing"):
                p.decode_snapshot_ok(payload + b"\0")
        else:
            raise AssertionError(f"unknown op {v['op']}")
        seen.append((v["op"], v["fields"].get("found"), len(v["fields"].get("events", []))))
    # One save and its answer, two reads, and an answer with and one without a snapshot.
    assert sorted(seen) == [("snapshot_ok", 0, 0), ("snapshot_ok", 1, 2),
                            ("snapshot_read", None, 0), ("snapshot_read", None, 0),
                            ("snapshot_save", None, 0), ("snapshot_saved", None, 0)]


def test_version_6_backup_frames(vectors):
    seen = set()
    for v in (v for v in vectors if v["version"] == 6):
        f, rid = v["fields"], v["request_id"]
        if v["op"] == "backup":
            got = p.encode_backup(rid, f["dest"], f["link"] == 1, f["bytes_per_second"])
            assert got.hex() == v["hex"], v["name"]
        elif v["op"] == "backup_ok":
            op, got_rid, payload = split(v["hex"])
            assert (op, got_rid) == (p.Op.BACKUP_OK, rid)
            assert p.decode_backup_ok(payload) == p.BackupResult(
                f["position"], f["files"], f["bytes"], f["linked"], f["duration_us"], f["dest"],
                f["note"]), v["name"]
            with pytest.raises(p.ProtocolError, match="ends inside"):
                p.decode_backup_ok(payload[:-1])
            with pytest.raises(p.ProtocolError):
                p.decode_backup_ok(payload + b"\0")
        elif v["op"] == "error":
            op, got_rid, payload = split(v["hex"])
            e = p.decode_error(payload)
            assert (op, e.code, p.code_name(e.code)) == (p.Op.ERROR, 18, "busy")
        seen.add(v["op"])
    assert seen == {"backup", "backup_ok", "error"}
