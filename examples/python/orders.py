#!/usr/bin/env python3
"""An order aggregate with optimistic concurrency, and a projection fed by a
subscription that keeps its checkpoint: the shape of an event-sourced
service on annal.

    annald &                                   # or scripts/run.sh
    PYTHONPATH=clients/python/src python3 examples/python/orders.py --port 7411

Each order is a stream ``order-<n>``. A command loads the stream, decides on
new events from the current state, and appends them expecting the revision it
read: a concurrent writer makes the append fail with wrong_expected_revision
and the command is retried on fresh state. The projection (revenue per
customer) subscribes to the global log from its checkpoint + 1 and stores the
checkpoint with its state, so a restart resumes where it stopped.
"""

import argparse
import asyncio
import json
import os
from dataclasses import dataclass, field
from typing import Dict, List

from annal import Checkpoint, Client, Expected, NewEvent, WrongExpectedRevision


@dataclass
class Order:
    """The aggregate's state, rebuilt from its events."""

    revision: int = -1  # -1: the stream does not exist
    customer: str = ""
    items: Dict[str, int] = field(default_factory=dict)
    paid: bool = False

    def apply(self, type_: str, data: dict) -> None:
        if type_ == "OrderPlaced":
            self.customer = data["customer"]
        elif type_ == "ItemAdded":
            self.items[data["sku"]] = self.items.get(data["sku"], 0) + data["price"]
        elif type_ == "OrderPaid":
            self.paid = True

    @property
    def total(self) -> int:
        return sum(self.items.values())


def event(type_: str, **data) -> NewEvent:
    return NewEvent(type_, json.dumps(data).encode())


async def load(c: Client, stream: str) -> Order:
    order = Order()
    try:
        async for e in c.iter_stream(stream):
            order.apply(e.type, json.loads(e.data))
            order.revision = e.revision
    except Exception as ex:  # a new order: no stream yet
        if getattr(ex, "name", "") != "stream_not_found":
            raise
    return order


async def handle(c: Client, stream: str, decide) -> None:
    """Load, decide, append expecting the revision read; retry on a conflict."""
    for _ in range(10):
        order = await load(c, stream)
        events: List[NewEvent] = decide(order)
        if not events:
            return
        expected = Expected.no_stream() if order.revision < 0 else Expected.exact(order.revision)
        try:
            await c.append(stream, events, expected)
            return
        except WrongExpectedRevision:
            continue  # someone else wrote first: decide again on fresh state
    raise RuntimeError(f"{stream}: too many conflicts")


def place(customer: str):
    return lambda o: [event("OrderPlaced", customer=customer)] if o.revision < 0 else []


def add_item(sku: str, price: int):
    def decide(o: Order):
        if o.paid:
            raise ValueError("cannot add to a paid order")
        return [event("ItemAdded", sku=sku, price=price)]
    return decide


def pay(o: Order):
    return [] if o.paid or not o.items else [event("OrderPaid", amount=o.total)]


async def project(c: Client, state_file: str, until: int) -> Dict[str, int]:
    """Revenue per customer from OrderPaid events, resumable from a checkpoint."""
    state = {"next": 0, "customers": {}, "revenue": {}}
    if os.path.exists(state_file):
        with open(state_file) as f:
            state = json.load(f)
    if state["next"] >= until:
        return state["revenue"]
    sub = await c.subscribe(None, state["next"], stream_prefix="order-", checkpoint_interval=100)
    async for item in sub:
        if isinstance(item, Checkpoint):
            state["next"] = max(state["next"], int(item))
        else:
            data = json.loads(item.data)
            if item.type == "OrderPlaced":
                state["customers"][item.stream] = data["customer"]
            elif item.type == "OrderPaid":
                who = state["customers"][item.stream]
                state["revenue"][who] = state["revenue"].get(who, 0) + data["amount"]
            state["next"] = item.position + 1
        with open(state_file + ".tmp", "w") as f:  # state and checkpoint together
            json.dump(state, f)
        os.replace(state_file + ".tmp", state_file)
        if state["next"] >= until:
            break
    await sub.unsubscribe()
    return state["revenue"]


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=7411)
    ap.add_argument("--orders", type=int, default=20)
    ap.add_argument("--state", default="orders-projection.json")
    args = ap.parse_args()
    async with await Client.connect(args.host, args.port) as c:
        run = os.urandom(3).hex()
        streams = [f"order-{run}-{n}" for n in range(args.orders)]
        for n, s in enumerate(streams):
            await handle(c, s, place(f"customer-{n % 3}"))
        # Two writers add items to the same orders at once: conflicts are
        # detected by the expected revision and retried, nothing is lost.
        await asyncio.gather(*(handle(c, s, add_item(f"sku-{k}", 10 * (k + 1)))
                               for s in streams for k in range(2)))
        for s in streams:
            await handle(c, s, pay)
        end = (await c.info())["durable_end"]
        revenue = await project(c, args.state, end)
        print(json.dumps({"orders": len(streams), "revenue": revenue}, sort_keys=True))


if __name__ == "__main__":
    asyncio.run(main())
