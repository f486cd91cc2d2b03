"""The asyncio client and its blocking wrapper against a real annald."""

import asyncio
import json
import signal

import pytest

from annal import (END, AnnalError, Checkpoint, Client, Code, ConnectionLost, Expected, IndexKind,
                   NewEvent, StreamNotFound, SyncClient, WrongExpectedRevision)

from conftest import Node


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def ev(n, type_="OrderPlaced"):
    return NewEvent(type=type_, data=json.dumps({"n": n}).encode())


def test_append_then_read_back_forward_and_backward(node):
    async def main():
        async with await Client.connect(port=node.port) as c:
            assert c.hello.max_in_flight > 0
            r = await c.append("order-1", [ev(0), ev(1), ev(2)], Expected.no_stream())
            assert (r.first_position, r.first_revision, r.count, r.deduplicated) == (0, 0, 3, False)
            page = await c.read_stream("order-1")
            assert page.end and [e.revision for e in page.events] == [0, 1, 2]
            assert [json.loads(e.data)["n"] for e in page.events] == [0, 1, 2]
            assert page.events[0].stream == "order-1" and page.events[0].type == "OrderPlaced"
            back = await c.read_stream("order-1", END, backward=True)
            assert [e.revision for e in back.events] == [2, 1, 0]
            everything = [e async for e in c.iter_all()]
            assert [e.position for e in everything] == [0, 1, 2]
            info = await c.info()
            # the node's newest version: at least the one this client speaks
            assert info["durable_end"] == 3 and info["protocol_version"] >= c.hello.version == 6
            assert info["max_tags"] == 32
            await c.ping()

    run(main())


def test_tags_and_ids_round_trip_through_reads_and_subscriptions(node):
    async def main():
        async with await Client.connect(port=node.port) as c:
            assert c.hello.version == 6
            sub = await c.subscribe(None, 0)
            tagged = NewEvent(type="Placed", data=b"{}", tags=["region:eu", "customer:42", "region:eu"],
                              correlation_id="cmd-9", causation_id="evt-1")
            await c.append("order-7", [tagged, ev(1)])
            want = (("customer:42", "region:eu"), "cmd-9", "evt-1")
            page = await c.read_stream("order-7")
            got = page.events[0]
            assert (got.tags, got.correlation_id, got.causation_id) == want
            assert (page.events[1].tags, page.events[1].correlation_id) == ((), "")
            everything = [e async for e in c.iter_all()]
            assert everything[0].tags == want[0]
            first = None
            async for item in sub:
                if isinstance(item, Checkpoint):
                    continue
                first = item
                break
            assert (first.tags, first.correlation_id, first.causation_id) == want
            with pytest.raises(AnnalError) as e:
                await c.append("order-7", [ev(2), NewEvent(type="T", data=b"{}", tags=[""])])
            assert e.value.code == Code.BAD_REQUEST and "empty tag" in str(e.value)

    run(main())


def test_index_reads_and_subscriptions(node):
    async def main():
        async with await Client.connect(port=node.port) as c:
            sub = await c.subscribe(None, 0, index=(IndexKind.TAG, "vip"), checkpoint_interval=10)
            for i in range(30):
                await c.append(("order-" if i % 2 else "user-") + str(i % 4),
                               [NewEvent(type="Paid" if i % 3 == 0 else "Placed", data=b"{}",
                                         tags=["vip"] if i % 5 == 0 else [],
                                         correlation_id=f"cmd-{i % 2}")])
            everything = [e async for e in c.iter_all()]
            orders = [e.position for e in everything if e.stream.startswith("order-")]
            assert [e.position async for e in c.iter_index(IndexKind.CATEGORY, "order")] == orders
            page = await c.read_index(IndexKind.TYPE, "Paid", 0, 3)
            assert [e.type for e in page.events] == ["Paid"] * 3 and not page.end
            back = await c.read_index(IndexKind.CORRELATION, "cmd-1", END, 1, backward=True)
            assert back.events[0].position == everything[-1].position
            mid = everything[len(everything) // 2]
            at = await c.seek_time(mid.timestamp_us)
            assert everything[at].timestamp_us >= mid.timestamp_us and at <= mid.position
            assert at == 0 or everything[at - 1].timestamp_us < mid.timestamp_us
            assert await c.seek_time(everything[-1].timestamp_us + 1) == len(everything)
            last = await c.read_index(IndexKind.TYPE, "Nope")
            assert last.end and last.events == [] and last.durable_end == len(everything)
            vip = [e.position for e in everything if "vip" in e.tags]
            got = []
            async for item in sub:
                if isinstance(item, Checkpoint):
                    continue
                got.append(item.position)
                if len(got) == len(vip):
                    break
            assert got == vip

    run(main())


def test_errors_carry_the_protocol_code_and_detail(node):
    async def main():
        async with await Client.connect(port=node.port) as c:
            await c.append("s", [ev(0)], Expected.no_stream())
            with pytest.raises(WrongExpectedRevision) as e:
                await c.append("s", [ev(1)], Expected.exact(5))
            assert e.value.code == Code.WRONG_EXPECTED_REVISION and e.value.actual_revision == 0
            with pytest.raises(WrongExpectedRevision) as e:
                await c.append("new", [ev(1)], Expected.stream_exists())
            assert e.value.actual_revision is None
            with pytest.raises(StreamNotFound):
                await c.read_stream("nope")
            bad = NewEvent(type="T", data=b"{not json")
            with pytest.raises(AnnalError) as e:
                await c.append("s", [ev(2), bad], Expected.any())
            assert e.value.code == Code.INVALID_JSON and e.value.detail == 1
            assert "invalid_json" in str(e.value)
            # The connection is still usable after errors.
            assert (await c.append("s", [ev(3)], Expected.exact(0))).first_revision == 1

    run(main())


def test_a_retry_with_the_same_ids_is_deduplicated(node):
    async def main():
        async with await Client.connect(port=node.port) as c:
            events = [ev(0), ev(1)]
            first = await c.append("r", events, Expected.any())
            again = await c.append("r", events, Expected.any())
            assert again.deduplicated and again.first_position == first.first_position
            assert (await c.info())["durable_end"] == 2

    run(main())


def test_many_appends_in_flight_on_one_connection(node):
    async def main():
        async with await Client.connect(port=node.port) as c:
            results = await asyncio.gather(*(c.append(f"p-{i % 7}", [ev(i)]) for i in range(500)))
            positions = sorted(r.first_position for r in results)
            assert positions == list(range(500))
            assert (await c.info())["durable_end"] == 500

    run(main())


def test_subscription_catches_up_then_goes_live_without_gap_or_duplicate(node):
    async def main():
        async with await Client.connect(port=node.port) as c, \
                await Client.connect(port=node.port) as w:
            for i in range(10):
                await w.append("sub", [ev(i)])
            sub = await c.subscribe(None, 0)
            assert sub.start == 0

            async def write_more():
                for i in range(10, 30):
                    await w.append("sub", [ev(i)])

            writer = asyncio.create_task(write_more())
            seen = []
            async for e in sub:
                seen.append(e.position)
                if len(seen) == 30:
                    break
            await writer
            assert seen == list(range(30))
            await sub.unsubscribe()
            assert [e async for e in sub] == []

    run(main())


def test_a_filtered_subscription_sends_checkpoints(node):
    async def main():
        async with await Client.connect(port=node.port) as c:
            for i in range(50):
                await c.append(f"other-{i}", [ev(i, "Noise")])
            await c.append("wanted-1", [ev(99, "Wanted")])
            sub = await c.subscribe(None, 0, stream_prefix="wanted-", checkpoint_interval=10)
            got = []
            async for item in sub:
                got.append(item)
                if not isinstance(item, Checkpoint):
                    break
            checkpoints = [x for x in got if isinstance(x, Checkpoint)]
            assert checkpoints and all(0 < cp <= 50 for cp in checkpoints)
            assert got[-1].stream == "wanted-1"

    run(main())


def test_pending_requests_fail_with_connection_lost_when_the_node_dies():
    n = Node()
    try:
        async def main():
            c = await Client.connect(port=n.port)
            await c.append("k", [ev(0)])
            sub = await c.subscribe("k", 0)
            first = await sub.__anext__()
            assert first.revision == 0
            n.stop(signal.SIGKILL)
            with pytest.raises(ConnectionLost):
                async for _ in sub:
                    pass
            with pytest.raises(ConnectionLost):
                await c.append("k", [ev(1)])
            await c.close()

        run(main())
    finally:
        n.close()


def test_the_blocking_wrapper(node):
    with SyncClient.connect(port=node.port) as c:
        r = c.append("sync", [ev(0), ev(1)], Expected.no_stream())
        assert r.last_revision == 1
        assert [e.revision for e in c.stream_events("sync")] == [0, 1]
        assert c.info()["durable_end"] == 2
        from annal import AppendRefused, QueryItem, StreamAppend
        guard = [QueryItem(tags=("sync:once",))]
        once = StreamAppend("sync-2", [NewEvent(type="Once", data=b"{}", tags=["sync:once"])])
        assert c.append_multi([once], guard).first_position == 2
        with pytest.raises(AppendRefused):
            c.append_multi([StreamAppend("sync-3", [NewEvent(type="Once", data=b"{}")])], guard)
        assert [e.stream for e in c.read_query(guard).events] == ["sync-2"]


def test_appends_retry_across_a_node_restart_without_writing_twice():
    n = Node()
    try:
        async def main():
            c = await Client.connect(port=n.port, retry_for=30)
            first = [ev(0)]
            await c.append("rr", first)
            n.stop(signal.SIGKILL)
            # The node is down: the append keeps reconnecting until it is back.
            pending = asyncio.create_task(c.append("rr", [ev(1)]))
            await asyncio.sleep(0.3)
            assert not pending.done()
            n.start()
            second = await pending
            assert second.first_revision == 1 and not second.deduplicated
            # A retry whose first attempt was written is deduplicated, not
            # written twice: the ids are the NewEvents'.
            again = await c.append("rr", first)
            assert again.deduplicated and again.first_revision == 0
            page = await c.read_stream("rr")
            assert [e.revision for e in page.events] == [0, 1]
            await c.close()

        run(main())
    finally:
        n.close()


def test_without_retry_a_broken_connection_fails_at_once():
    n = Node()
    try:
        async def main():
            c = await Client.connect(port=n.port)
            n.stop(signal.SIGKILL)
            with pytest.raises(ConnectionLost):
                await c.append("x", [ev(0)])
            await c.close()

        run(main())
    finally:
        n.close()


def test_requests_waiting_for_window_room_fail_at_once_when_the_connection_breaks():
    n = Node("--max-in-flight", "1")
    try:
        async def main():
            c = await Client.connect(port=n.port, timeout=30)
            assert c.hello.max_in_flight == 1
            n.proc.send_signal(signal.SIGSTOP)  # the node answers nothing now
            try:
                tasks = [asyncio.create_task(c.append("w", [ev(i)])) for i in range(4)]
                await asyncio.sleep(0.2)  # one sent, three waiting for room
                await c.close()
                done = await asyncio.wait_for(
                    asyncio.gather(*tasks, return_exceptions=True), 5)
                assert all(isinstance(r, ConnectionLost) for r in done), done
            finally:
                n.proc.send_signal(signal.SIGCONT)

        run(main())
    finally:
        n.close()


def test_append_multi_conditions_and_read_query(node):
    """Protocol 3: several streams at once, a decision's condition, reads by query."""
    from annal import AppendRefused, QueryItem, StreamAppend

    def enrol(student, course):
        return NewEvent(type="Enrolled", data=b"{}", tags=[f"course:{course}", f"student:{student}"])

    async def main():
        async with await Client.connect(port=node.port) as c:
            r = await c.append_multi([
                StreamAppend("student-1", [enrol(1, 7)], Expected.no_stream()),
                StreamAppend("course-7", [NewEvent(type="SeatTaken", data=b"{}", tags=["course:7"])]),
            ])
            assert (r.first_position, r.count, r.deduplicated) == (0, 2, False)
            assert r.streams == ((0, 1), (0, 1))
            # A checked stream that fails: every stream reported, nothing written.
            with pytest.raises(AppendRefused) as refused:
                await c.append_multi([StreamAppend("student-2", [enrol(2, 7)]),
                                      StreamAppend("course-7", [], Expected.exact(5))])
            assert refused.value.code == Code.WRONG_EXPECTED_REVISION
            assert refused.value.streams == ((False, None), (True, 0))
            # The decision: read the course's enrolments, append on that read.
            course = [QueryItem(types=("Enrolled",), tags=("course:7",))]
            page = await c.read_query(course)
            assert [e.stream for e in page.events] == ["student-1"] and page.end
            head = page.durable_end - 1
            ok = await c.append_multi([StreamAppend("student-3", [enrol(3, 7)])], course, head)
            assert ok.first_position == 2
            with pytest.raises(AppendRefused) as stale:
                await c.append_multi([StreamAppend("student-4", [enrol(4, 7)])], course, head)
            assert stale.value.code == Code.APPEND_CONDITION_FAILED
            assert stale.value.conflict_position == 2
            # A retry of the written append is deduplicated, not refused.
            retry_event = enrol(5, 8)
            guard = [QueryItem(tags=("student:5",))]
            first = await c.append_multi([StreamAppend("student-5", [retry_event])], guard)
            again = await c.append_multi([StreamAppend("student-5", [retry_event])], guard)
            assert again.deduplicated and again.first_position == first.first_position
            # Subscriptions by query: history, then live.
            sub = await c.subscribe(None, 0, query=course)
            await c.append("student-6", [enrol(6, 7)])
            seen = []
            async for item in sub:
                if isinstance(item, Checkpoint):
                    continue
                seen.append(item.stream)
                if len(seen) == 3:
                    break
            assert seen == ["student-1", "student-3", "student-6"]
            await sub.unsubscribe()
            with pytest.raises(AnnalError) as bad:
                await c.read_query([QueryItem(tags=("",))])
            assert bad.value.code == Code.BAD_REQUEST

    run(main())
