"""Consumer groups and named consumers (protocol v4) against a real annald."""

import asyncio
import json

from annal import (AnnalError, Client, Code, GroupSettings, GroupTarget, NackAction, NewEvent,
                   Strategy)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def ev(n):
    return NewEvent(type="Tick", data=json.dumps({"n": n}).encode())


async def take(member, n):
    """The next n deliveries."""
    out = []
    async for d in member:
        out.append(d)
        if len(out) == n:
            return out
    raise AssertionError("the membership ended")


async def wait_info(c, name, done):
    for _ in range(500):
        info = await c.group_info(name)
        if done(info):
            return info
        await asyncio.sleep(0.02)
    raise AssertionError(f"group {name} did not get there: {info}")


def test_two_members_share_a_group_and_acks_move_the_checkpoint(node):
    async def main():
        async with await Client.connect(port=node.port) as c:
            await c.group_create("py", GroupSettings(target=GroupTarget.ALL))
            try:
                await c.group_create("py", GroupSettings())
                raise AssertionError("a second create succeeded")
            except AnnalError as e:
                assert e.code == Code.ALREADY_EXISTS
            for i in range(10):
                await c.append(f"s-{i % 3}", [ev(i)])
            async with await Client.connect(port=node.port) as c1, \
                    await Client.connect(port=node.port) as c2:
                m1 = await c1.group_join("py", max_in_flight=5)
                m2 = await c2.group_join("py", max_in_flight=5)
                got = await take(m1, 5) + await take(m2, 5)
                assert sorted(d.event.position for d in got) == list(range(10))
                assert all(d.attempt == 1 for d in got)
                await m1.ack([d.event.position for d in got[:5]])
                await m2.ack([d.event.position for d in got[5:]])
                info = await wait_info(c, "py", lambda i: i.checkpoint == 10)
                assert info.lag_events == 0 and info.consumers == 2
                assert [g.name for g in await c.group_list()] == ["py"]
                await m2.leave()
            await c.group_delete("py")
            try:
                await c.group_info("py")
                raise AssertionError("a deleted group answered")
            except AnnalError as e:
                assert e.code == Code.NOT_FOUND
    run(main())


def test_ordered_nack_park_and_replay(node):
    async def main():
        async with await Client.connect(port=node.port) as c:
            await c.group_create("ord", GroupSettings(strategy=Strategy.ORDERED, max_retries=0))
            for i in range(3):
                await c.append("one-stream", [ev(i)])
            m = await c.group_join("ord")
            (first,) = await take(m, 1)  # ordered: one event of the stream at a time
            assert first.event.revision == 0
            await m.nack([first.event.position], NackAction.RETRY, "db down")  # 0 retries: parked
            (second,) = await take(m, 1)
            assert second.event.revision == 1
            await m.ack([second.event.position])
            (third,) = await take(m, 1)
            await m.ack([third.event.position])
            info = await wait_info(c, "ord", lambda i: i.parked == 1 and i.checkpoint == 3)
            (parked,) = await c.group_parked("ord")
            assert (parked.position, parked.failures, parked.reason) == (
                first.event.position, 1, "db down")
            assert info.settings.strategy == Strategy.ORDERED
            assert await c.group_replay_parked("ord") == 1
            (again,) = await take(m, 1)
            assert again.event.position == first.event.position
            await m.ack([again.event.position])
            await wait_info(c, "ord", lambda i: i.parked == 0)
    run(main())


def test_named_consumer_checkpoints(node):
    async def main():
        async with await Client.connect(port=node.port) as c:
            assert await c.checkpoint_load("projection") is None
            for i in range(3):
                await c.append("p-1", [ev(i)])
            await c.checkpoint_save("projection", 2)
            assert await c.checkpoint_load("projection") == 2
            (info,) = await c.group_list()
            assert info.kind == 1 and info.lag_events == 1
            try:
                await c.checkpoint_save("projection", 99)
                raise AssertionError("a checkpoint past the end was stored")
            except AnnalError as e:
                assert e.code == Code.INVALID_ARGUMENT
    run(main())


def test_the_blocking_client_administers_groups(node):
    from annal import SyncClient
    with SyncClient.connect(port=node.port) as c:
        c.group_create("sync", GroupSettings(target=GroupTarget.STREAM, stream="s-1"))
        info = c.group_info("sync")
        assert info.settings.target == GroupTarget.STREAM and info.settings.stream == "s-1"
        c.checkpoint_save("named", 0)
        assert c.checkpoint_load("named") == 0
        assert [g.name for g in c.group_list()] == ["sync", "named"]
        c.group_delete("sync")
        assert [g.name for g in c.group_list()] == ["named"]
