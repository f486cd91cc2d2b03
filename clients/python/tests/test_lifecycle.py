"""Stream metadata, deletion, scavenge and snapshots (protocol v5) against a real annald."""

import asyncio
import json
import struct

import pytest

from annal import (AnnalError, Client, Code, ConnectionLost, DeleteResult, Expected, NewEvent,
                   ScavengeResult, SnapshotPage, SnapshotSaveResult, StreamDeleted,
                   StreamNotFound, SyncClient, WrongExpectedRevision)
from annal import protocol as p


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def ev(n):
    return NewEvent(type="Tick", data=json.dumps({"n": n}).encode())


def test_metadata_max_count_soft_and_hard_delete(node):
    async def main():
        async with await Client.connect(port=node.port) as c:
            assert c.hello.version == 6
            none = await c.stream_metadata("s-1")
            assert (none.revision, none.json, none.max_count, none.max_age) == (
                None, "{}", None, None)
            assert (none.truncate_before, none.deleted_before, none.deleted, none.tombstoned) == (
                0, 0, False, False)
            for i in range(3):
                await c.append("s-1", [ev(i)])

            # Metadata, with an expectation of the metadata stream.
            r = await c.set_stream_metadata("s-1", Expected.no_stream(),
                                            '{"max_count":1,"app":"x"}')
            assert (r.first_revision, r.count, r.deduplicated) == (0, 1, False)
            with pytest.raises(WrongExpectedRevision) as e:
                await c.set_stream_metadata("s-1", Expected.no_stream(), "{}")
            assert e.value.code == Code.WRONG_EXPECTED_REVISION and e.value.actual_revision == 0
            with pytest.raises(WrongExpectedRevision) as e:
                await c.set_stream_metadata("s-1", Expected.exact(5), "{}")
            assert e.value.actual_revision == 0
            with pytest.raises(AnnalError) as bad:
                await c.set_stream_metadata("s-1", Expected.any(), '{"max_count":"one"}')
            assert bad.value.code == Code.BAD_REQUEST and "max_count" in bad.value.message
            md = await c.stream_metadata("s-1")
            assert (md.revision, md.json, md.max_count, md.max_age) == (
                0, '{"max_count":1,"app":"x"}', 1, None)
            assert not md.deleted and not md.tombstoned
            page = await c.read_stream("s-1")
            assert [e.revision for e in page.events] == [2]  # only the newest is kept

            # Soft delete: not found, then an append continues the revisions.
            d = await c.delete_stream("s-1", Expected.exact(2))
            assert isinstance(d, DeleteResult) and d.truncate_before == 3
            assert d.position >= 3
            with pytest.raises(StreamNotFound) as nf:
                await c.read_stream("s-1")
            assert nf.value.code == Code.STREAM_NOT_FOUND
            md = await c.stream_metadata("s-1")
            assert md.deleted and not md.tombstoned and md.deleted_before == 3
            again = await c.append("s-1", [ev(3)], Expected.no_stream())
            assert again.first_revision == 3
            assert [e.revision for e in (await c.read_stream("s-1")).events] == [3]
            assert not (await c.stream_metadata("s-1")).deleted

            # Hard delete: a tombstone answers code 17 to appends and reads.
            await c.append("h-1", [ev(0), ev(1)])
            h = await c.delete_stream("h-1", Expected.any(), hard=True)
            assert h.truncate_before == 2
            with pytest.raises(StreamDeleted) as gone:
                await c.append("h-1", [ev(2)])
            assert gone.value.code == Code.STREAM_DELETED == 17
            assert gone.value.name == "stream_deleted" and "h-1" in gone.value.message
            with pytest.raises(StreamDeleted):
                await c.read_stream("h-1")
            with pytest.raises(StreamDeleted):
                await c.set_stream_metadata("h-1", Expected.any(), "{}")
            assert (await c.stream_metadata("h-1")).tombstoned
            # A stream that never existed: soft delete is not found, hard delete works.
            with pytest.raises(StreamNotFound):
                await c.delete_stream("never", Expected.any())
            await c.delete_stream("never", Expected.no_stream(), hard=True)
            with pytest.raises(StreamDeleted):
                await c.append("never", [ev(0)], Expected.no_stream())

            # Scavenge: answered when the run is done. This node has one
            # (active) segment, so nothing is rewritten; reads are unchanged.
            # The connection's timeout does not apply to it.
            c.timeout = 1e-6
            sc = await c.scavenge()
            c.timeout = 30.0
            assert isinstance(sc, ScavengeResult)
            assert sc.segments_checked >= 0 and sc.segments_rewritten == 0
            assert sc.events_removed == 0 and sc.cancelled is False
            assert sc.log_bytes_after <= sc.log_bytes_before
            assert sc.duration_us >= 0
            assert [e.revision for e in (await c.read_stream("s-1")).events] == [3]
    run(main())


def test_the_blocking_client_sets_metadata_and_deletes(node):
    with SyncClient.connect(port=node.port) as c:
        for i in range(4):
            c.append("b-1", [ev(i)])
        r = c.set_stream_metadata("b-1", Expected.no_stream(), '{"max_count":1}')
        assert r.first_revision == 0
        md = c.stream_metadata("b-1")
        assert (md.revision, md.max_count) == (0, 1)
        assert [e.revision for e in c.read_stream("b-1").events] == [3]
        with pytest.raises(WrongExpectedRevision) as e:
            c.set_stream_metadata("b-1", Expected.exact(7), '{"max_count":2}')
        assert e.value.actual_revision == 0
        assert c.delete_stream("b-1", Expected.exact(3)).truncate_before == 4
        with pytest.raises(StreamNotFound):
            c.read_stream("b-1")
        assert c.append("b-1", [ev(4)], Expected.no_stream()).first_revision == 4
        c.delete_stream("b-1", Expected.any(), hard=True)
        with pytest.raises(StreamDeleted):
            c.read_stream("b-1")
        sc = c.scavenge()
        assert sc.segments_checked >= 0 and sc.cancelled is False


def test_a_stream_is_read_from_its_latest_snapshot_in_one_request(node):
    async def main():
        async with await Client.connect(port=node.port) as c:
            for i in range(10):
                await c.append("acct-1", [ev(i)])
            saved = await c.snapshot_save("acct-1", 6, "Balance", '{"balance":60}')
            assert saved == SnapshotSaveResult(6, 1)

            r = await c.snapshot_read("acct-1", count=100)
            assert isinstance(r, SnapshotPage)
            assert (r.found, r.revision, r.type, r.data) == (True, 6, "Balance", b'{"balance":60}')
            assert [e.revision for e in r.events] == [7, 8, 9]
            assert [json.loads(e.data)["n"] for e in r.events] == [7, 8, 9]
            assert (r.end, r.next) == (True, 10)
            # Without count: the snapshot alone, the events to read from next.
            alone = await c.snapshot_read("acct-1")
            assert (alone.found, alone.revision, alone.events, alone.end, alone.next) == (
                True, 6, [], False, 7)

            # None at or below 5: not found, the events from the stream's start.
            none = await c.snapshot_read("acct-1", max_revision=5, count=3)
            assert not none.found
            assert [e.revision for e in none.events] == [0, 1, 2]
            assert (none.end, none.next) == (False, 3)

            # A save must name a revision of the stream.
            with pytest.raises(AnnalError) as bad:
                await c.snapshot_save("acct-1", 99, "Balance", "{}")
            assert bad.value.code == Code.BAD_REQUEST
            # Bytes too; a save at the same revision replaces the snapshot.
            again = await c.snapshot_save("acct-1", 6, "Balance", b'{"balance":61}')
            assert again == SnapshotSaveResult(6, 1)
            assert (await c.snapshot_read("acct-1")).data == b'{"balance":61}'

            with pytest.raises(StreamNotFound):
                await c.snapshot_read("acct-never", count=1)
            with pytest.raises(StreamNotFound):
                await c.snapshot_save("acct-never", 0, "Balance", "{}")
            # They go with the stream: a tombstoned stream answers stream_deleted.
            await c.delete_stream("acct-1", Expected.any(), hard=True)
            with pytest.raises(StreamDeleted):
                await c.snapshot_read("acct-1", count=100)
            with pytest.raises(StreamDeleted):
                await c.snapshot_save("acct-1", 9, "Balance", "{}")
    run(main())


def test_the_blocking_client_saves_and_reads_snapshots(node):
    with SyncClient.connect(port=node.port) as c:
        c.append("b-2", [ev(i) for i in range(4)])
        assert c.snapshot_save("b-2", 1, "Count", "2") == SnapshotSaveResult(1, 1)
        assert c.snapshot_save("b-2", 3, "Count", "4").kept == 2
        r = c.snapshot_read("b-2", 2, 10)
        assert (r.found, r.revision, r.data, [e.revision for e in r.events], r.end, r.next) == (
            True, 1, b"2", [2, 3], True, 4)
        assert c.snapshot_read("b-2").revision == 3


class FakeNode:
    """A stand-in node: the handshake, then scavenge answered after ``delay``
    seconds (or the connection dropped when ``drop`` is set); other requests
    are never answered."""

    REPORT = (3, 1, 250, 1000, 600, 5000, 4650, 1234)

    def __init__(self, delay: float):
        self.delay = delay
        self.scavenges = 0
        self.drop = False
        self.writers = []

    async def start(self) -> None:
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def serve(self, reader, writer) -> None:
        self.writers.append(writer)
        try:
            while True:
                length, op, rid = p.parse_header(await reader.readexactly(13))
                await reader.readexactly(length - p.FRAME_MIN_BODY)
                if op == p.Op.HELLO:
                    writer.write(p.frame(p.Op.HELLO_OK, rid, struct.pack("<HII", 5, 1 << 20, 16)
                                         + p._str(b"fake")))
                elif op == p.Op.SCAVENGE:
                    self.scavenges += 1
                    if self.drop:
                        writer.close()
                        return
                    reply = p.frame(p.Op.SCAVENGE_OK, rid, struct.pack("<8QB", *self.REPORT, 0))
                    asyncio.get_running_loop().call_later(self.delay, writer.write, reply)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    async def close(self) -> None:
        for w in self.writers:
            w.close()
        self.server.close()
        await self.server.wait_closed()


def test_scavenge_waits_past_the_connection_timeout_and_is_never_resent():
    async def main():
        fake = FakeNode(0.3)
        await fake.start()
        try:
            async with await Client.connect(port=fake.port, timeout=0.1, retry_for=5) as c:
                with pytest.raises(asyncio.TimeoutError):
                    await c.ping()  # other requests keep the connection's timeout
                r = await c.scavenge()  # answered after 0.3 s
                assert r == ScavengeResult(*FakeNode.REPORT, False)
                with pytest.raises(asyncio.TimeoutError):
                    await c.scavenge(timeout=0.05)
                assert fake.scavenges == 2
                # A broken connection fails it without sending it again, retry_for or not.
                fake.drop = True
                with pytest.raises(ConnectionLost):
                    await c.scavenge()
                await asyncio.sleep(0.2)
                assert fake.scavenges == 3
                # The next call reconnects first.
                fake.drop = False
                assert (await c.scavenge()).segments_checked == 3
                assert fake.scavenges == 4
        finally:
            await fake.close()
    run(main())
