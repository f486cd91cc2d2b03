"""Stream metadata and deletion (protocol v5) against a real annald."""

import asyncio
import json

import pytest

from annal import (AnnalError, Client, Code, DeleteResult, Expected, NewEvent, StreamDeleted,
                   StreamNotFound, SyncClient, WrongExpectedRevision)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def ev(n):
    return NewEvent(type="Tick", data=json.dumps({"n": n}).encode())


def test_metadata_max_count_soft_and_hard_delete(node):
    async def main():
        async with await Client.connect(port=node.port) as c:
            assert c.hello.version == 5
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
