"""An asyncio client for annald (docs/protocol.md, version 6).

One connection, any number of requests in flight (up to the node's
``max_in_flight``), responses matched by request id; subscriptions are async
iterators. Standard library only.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, AsyncIterator, Dict, List, Optional, Sequence, Union

from . import protocol as p
from .protocol import AppendResult, Code, Event, Expected, HelloOk, NewEvent, Op, ReadPage

# A request's default time limit: the connection's ``timeout``.
_CONNECTION_TIMEOUT: Any = object()


class AnnalError(Exception):
    """An error the node answered (or a broken connection: CONNECTION_LOST).

    ``code`` is the protocol's code (``annal.Code``), ``detail`` its
    code-specific value (None when the node sent "none"), ``message`` the
    node's text (for people; do not parse it)."""

    def __init__(self, code: int, message: str, detail: Optional[int] = None):
        self.code = code
        self.detail = detail
        self.message = message
        super().__init__(f"{p.code_name(code)} ({code}): {message}")

    @property
    def name(self) -> str:
        return p.code_name(self.code)


class WrongExpectedRevision(AnnalError):
    """The stream's last revision was not what the append expected."""

    @property
    def actual_revision(self) -> Optional[int]:
        """The stream's last revision, None if the stream has no event."""
        return self.detail


class StreamNotFound(AnnalError):
    pass


class StreamDeleted(AnnalError):
    """The stream was hard-deleted (a tombstone): never written or read again."""


class AppendRefused(AnnalError):
    """append_multi was refused by an expectation (``code`` 1: ``streams`` says
    which failed, with their actual revisions) or by its condition (``code``
    16: ``conflict_position`` is the first matching event). Nothing was written."""

    def __init__(self, refusal: p.AppendRefusal):
        super().__init__(refusal.code, refusal.message,
                         refusal.conflict_position)
        self.conflict_position = refusal.conflict_position
        self.streams = refusal.streams


class ConnectionLost(AnnalError):
    def __init__(self, message: str):
        super().__init__(Code.CONNECTION_LOST, message)


def _error(e: p.ErrorFrame) -> AnnalError:
    detail = None if e.detail == p.NONE else e.detail
    cls = {Code.WRONG_EXPECTED_REVISION: WrongExpectedRevision,
           Code.STREAM_NOT_FOUND: StreamNotFound,
           Code.STREAM_DELETED: StreamDeleted}.get(e.code, AnnalError)  # type: ignore[call-overload]
    return cls(e.code, e.message, detail)


class Checkpoint(int):
    """A filtered subscription's checkpoint: every position below it was scanned."""


class Subscription:
    """Events of a subscription, as an async iterator (``async for e in sub``).

    Yields ``Event``s in log order (catch-up, then live) and, for filtered
    subscriptions of the global log, ``Checkpoint``s. Ends (StopAsyncIteration)
    after ``unsubscribe()``; raises ``AnnalError`` if the node ends it."""

    def __init__(self, client: "Client", sub_id: int):
        self._client = client
        self.id = sub_id
        self.start: int = 0
        self._queue: "asyncio.Queue[Union[List[Event], Checkpoint, BaseException, None]]" = asyncio.Queue()
        self._batch: List[Event] = []
        self._ended: Optional[BaseException] = None
        self._done = False

    def __aiter__(self) -> "Subscription":
        return self

    async def __anext__(self) -> Union[Event, Checkpoint]:
        while not self._batch:
            if self._done:
                if self._ended is not None:
                    raise self._ended
                raise StopAsyncIteration
            item = await self._queue.get()
            if item is None:
                self._done = True
            elif isinstance(item, BaseException):
                self._done = True
                self._ended = item
            elif isinstance(item, Checkpoint):
                return item
            else:
                self._batch = list(reversed(item))
        return self._batch.pop()

    async def unsubscribe(self) -> None:
        await self._client._unsubscribe(self)


class GroupMember(Subscription):
    """One consumer's membership of a consumer group (v4,
    docs/consumer-groups.md): an async iterator of ``Delivery`` (the event
    and its attempt); ``ack``/``nack`` resolve delivered events by position;
    ``leave()`` (or closing the client) gives back what it holds."""

    async def ack(self, positions: Sequence[int]) -> None:
        """One-way: the node answers only if it cannot apply it."""
        self._client._send_oneway(lambda rid: p.encode_group_ack(rid, self.id, list(positions)))

    async def nack(self, positions: Sequence[int], action: p.NackAction = p.NackAction.RETRY,
                   reason: str = "") -> None:
        self._client._send_oneway(
            lambda rid: p.encode_group_nack(rid, self.id, action, reason, list(positions)))

    async def leave(self) -> None:
        await self.unsubscribe()


class Client:
    """One connection to a node. Create with ``await Client.connect(...)``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, hello: HelloOk,
                 timeout: Optional[float], address: tuple, retry_for: float):
        self._address = address  # (host, port, client_name) for reconnecting
        self.timeout = timeout
        self.retry_for = retry_for
        self._ids = itertools.count(2)  # 1 was the hello
        self._pending: Dict[int, "asyncio.Future[tuple]"] = {}
        self._subs: Dict[int, Subscription] = {}
        self._user_closed = False
        self._reconnecting = asyncio.Lock()
        self._attach(reader, writer, hello)

    def _attach(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                hello: HelloOk) -> None:
        self._reader = reader
        self._writer = writer
        self.hello = hello
        self._window = asyncio.Semaphore(max(1, hello.max_in_flight))
        self._closed: Optional[AnnalError] = None
        self._task = asyncio.get_running_loop().create_task(self._read_loop())

    @classmethod
    async def connect(cls, host: str = "127.0.0.1", port: int = 7411,
                      client_name: str = "annal-python", timeout: Optional[float] = 30.0,
                      retry_for: float = 0.0) -> "Client":
        """Connects and performs the handshake. ``timeout`` (seconds) bounds
        the handshake and every request but ``scavenge`` (None: no limit).

        ``retry_for`` (seconds, 0 = off): when the connection breaks (or the
        node answers ``shutting_down``), ``append`` reconnects and sends the
        same request again, with the same event ids, for up to this long. An
        append that was written before the break is then answered
        ``deduplicated`` instead of being written twice. Reads and snapshot
        saves (a resent save replaces the first) are retried too;
        subscriptions end with ConnectionLost (resume from a checkpoint)."""
        reader, writer, hello = await _open(host, port, client_name, timeout)
        return cls(reader, writer, hello, timeout, (host, port, client_name), retry_for)

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the connection; requests still pending fail with ConnectionLost."""
        self._user_closed = True
        if not self._writer.is_closing():
            self._writer.close()
        try:
            await self._writer.wait_closed()
        except (ConnectionError, OSError):
            pass
        self._task.cancel()
        try:
            await self._task
        except (asyncio.CancelledError, Exception):
            pass
        self._fail_all(ConnectionLost("the client closed the connection"))

    # ---- operations ----

    async def append(self, stream: str, events: Sequence[NewEvent],
                     expected: Expected = Expected.any()) -> AppendResult:
        """Appends ``events`` atomically; returns once they are durable. A retry
        with the same event ids is deduplicated (``deduplicated`` is True)."""
        events = list(events)

        async def once() -> tuple:
            rid = next(self._ids)
            return await self._call(rid, p.encode_append(rid, stream, expected, events), True)

        _, payload = await self._retrying(once)
        return p.decode_append_ok(payload)

    async def append_multi(self, streams: Sequence[p.StreamAppend],
                           condition: Optional[Sequence[p.QueryItem]] = None,
                           after: Optional[int] = None) -> p.AppendMultiResult:
        """Appends to several streams at once, all or nothing, each with its own
        expectation (a stream without events is only checked). ``condition``
        (a query) refuses the append if a matching event exists after
        ``after`` (None: anywhere): raises ``AppendRefused``. A retry with the
        same event ids is deduplicated."""
        streams = list(streams)
        items = list(condition) if condition else None

        async def once() -> tuple:
            rid = next(self._ids)
            return await self._call(rid, p.encode_append_multi(rid, streams, items, after), True)

        op, payload = await self._retrying(once)
        if op == Op.APPEND_REFUSED:
            raise AppendRefused(p.decode_append_refused(payload))
        return p.decode_append_multi_ok(payload)

    async def read_query(self, query: Sequence[p.QueryItem], start: int = 0, count: int = 0,
                         backward: bool = False) -> ReadPage:
        """One page of the events matching ``query`` (items combined with OR) from
        position ``start``. ``page.durable_end - 1`` is the head to pass as
        ``after`` (forward: the last page's; None if durable_end is 0)."""
        items = list(query)

        async def once() -> tuple:
            rid = next(self._ids)
            return await self._call(
                rid, p.encode_read_query(rid, items, start, count, backward), True)

        _, payload = await self._retrying(once)
        return p.decode_read_ok(payload)

    async def read_stream(self, stream: str, start: int = 0, count: int = 0,
                          backward: bool = False) -> ReadPage:
        """One page of ``stream`` from revision ``start`` (``annal.END`` with
        ``backward`` = from the last event). Continue at ``page.next``."""
        async def once() -> tuple:
            rid = next(self._ids)
            return await self._call(rid, p.encode_read_stream(rid, stream, start, count, backward), True)

        _, payload = await self._retrying(once)
        return p.decode_read_ok(payload)

    async def read_all(self, start: int = 0, count: int = 0, backward: bool = False) -> ReadPage:
        """One page of the global log from position ``start``."""
        async def once() -> tuple:
            rid = next(self._ids)
            return await self._call(rid, p.encode_read_all(rid, start, count, backward), True)

        _, payload = await self._retrying(once)
        return p.decode_read_ok(payload)

    async def read_index(self, kind: p.IndexKind, value: str, start: int = 0, count: int = 0,
                         backward: bool = False) -> ReadPage:
        """One page of the events of a category, event type, tag, correlation
        or causation id (``kind``), in log order from position ``start``."""
        async def once() -> tuple:
            rid = next(self._ids)
            return await self._call(
                rid, p.encode_read_index(rid, kind, value, start, count, backward), True)

        _, payload = await self._retrying(once)
        return p.decode_read_ok(payload)

    async def seek_time(self, timestamp_us: int) -> int:
        """The first position written at or after ``timestamp_us`` (microseconds
        since the epoch); the durable end if none. Read or subscribe from it."""
        async def once() -> tuple:
            rid = next(self._ids)
            return await self._call(rid, p.encode_seek_time(rid, timestamp_us), True)

        _, payload = await self._retrying(once)
        return p.decode_seek_time_ok(payload)[0]

    async def iter_index(self, kind: p.IndexKind, value: str, start: int = 0,
                         backward: bool = False) -> AsyncIterator[Event]:
        """Every event of one index key from ``start`` to the current end."""
        while True:
            page = await self.read_index(kind, value, start, 0, backward)
            for e in page.events:
                yield e
            if page.end:
                return
            start = page.next

    async def iter_stream(self, stream: str, start: int = 0,
                          backward: bool = False) -> AsyncIterator[Event]:
        """Every event of ``stream`` from ``start`` to its current end, page by page."""
        while True:
            page = await self.read_stream(stream, start, 0, backward)
            for e in page.events:
                yield e
            if page.end:
                return
            start = page.next

    async def iter_all(self, start: int = 0, backward: bool = False) -> AsyncIterator[Event]:
        """Every event of the global log from ``start`` to the current end."""
        while True:
            page = await self.read_all(start, 0, backward)
            for e in page.events:
                yield e
            if page.end:
                return
            start = page.next

    async def subscribe(self, stream: Optional[str] = None, start: Optional[int] = 0,
                        stream_prefix: str = "", type_prefix: str = "",
                        checkpoint_interval: int = 0,
                        index: Optional[tuple] = None,
                        query: Optional[Sequence[p.QueryItem]] = None) -> Subscription:
        """Subscribes to ``stream`` (or, with None, the global log; or with
        ``index=(IndexKind, value)``, one category, type, tag, correlation or
        causation id) from revision/position ``start`` (None: only events that
        become durable from now on): catch-up, then live, each event once."""
        rid = next(self._ids)
        sub = Subscription(self, rid)
        self._subs[rid] = sub
        try:
            _, payload = await self._call(
                rid, p.encode_subscribe(rid, stream, start, stream_prefix, type_prefix,
                                        checkpoint_interval, index,
                                        query=list(query) if query else None), False)
        except BaseException:
            self._subs.pop(rid, None)
            raise
        sub.start = p.decode_u64(payload, "subscribe_ok")
        return sub

    # ---- consumer groups and named consumers (v4) ----

    async def _group_call(self, build) -> tuple:
        rid = next(self._ids)
        return await self._call(rid, build(rid), False)

    async def group_create(self, name: str, settings: p.GroupSettings) -> None:
        """Creates a group (``AnnalError`` code ALREADY_EXISTS if the name is taken)."""
        await self._group_call(lambda rid: p.encode_group_create(rid, name, settings))

    async def group_update(self, name: str, settings: p.GroupSettings) -> None:
        """New settings for a group (its target and strategy cannot change)."""
        await self._group_call(lambda rid: p.encode_group_create(rid, name, settings, update=True))

    async def group_delete(self, name: str) -> None:
        """Deletes a group, or else a named consumer, of that name."""
        await self._group_call(lambda rid: p.encode_group_name(Op.GROUP_DELETE, rid, name))

    async def group_list(self) -> List[p.GroupInfo]:
        _, payload = await self._group_call(lambda rid: p.frame(Op.GROUP_LIST, rid))
        return p.decode_group_list_ok(payload)

    async def group_info(self, name: str) -> p.GroupInfo:
        _, payload = await self._group_call(
            lambda rid: p.encode_group_name(Op.GROUP_INFO, rid, name))
        (info,) = p.decode_group_list_ok(payload)
        return info

    async def group_parked(self, name: str) -> List[p.ParkedEvent]:
        """The group's parked list (every page)."""
        out: List[p.ParkedEvent] = []
        start: Optional[int] = 0
        while start is not None:
            _, payload = await self._group_call(
                lambda rid: p.encode_group_parked(rid, name, start or 0))
            page, start = p.decode_group_parked_ok(payload)
            out += page
        return out

    async def group_replay_parked(self, name: str) -> int:
        """Hands the group's parked events out again; how many."""
        _, payload = await self._group_call(
            lambda rid: p.encode_group_name(Op.GROUP_REPLAY_PARKED, rid, name))
        return p.decode_u64(payload, "group_ok")

    async def group_join(self, name: str, max_in_flight: int = 0) -> GroupMember:
        """Joins a group as one consumer (max_in_flight 0: the group's setting)."""
        rid = next(self._ids)
        member = GroupMember(self, rid)
        self._subs[rid] = member
        try:
            _, payload = await self._call(rid, p.encode_group_join(rid, name, max_in_flight), False)
        except BaseException:
            self._subs.pop(rid, None)
            raise
        member.start = p.decode_u64(payload, "subscribe_ok")
        return member

    async def checkpoint_save(self, name: str, position: int) -> None:
        """Stores a named consumer's checkpoint durably."""
        await self._group_call(lambda rid: p.encode_checkpoint_save(rid, name, position))

    async def checkpoint_load(self, name: str) -> Optional[int]:
        _, payload = await self._group_call(
            lambda rid: p.encode_group_name(Op.CHECKPOINT_LOAD, rid, name))
        return p.decode_checkpoint_ok(payload)

    # ---- stream metadata and deletion (v5, docs/semantics.md) ----

    async def stream_metadata(self, stream: str) -> p.StreamMetadata:
        """The stream's metadata and deletion state: ``revision`` of its
        metadata stream (what ``set_stream_metadata`` expects next; None: never
        set), ``json`` as last set (``{}`` if never), ``max_count`` and
        ``max_age`` (seconds; None when unset), ``truncate_before``,
        ``deleted_before`` (from deletions), ``deleted`` (soft-deleted now) and
        ``tombstoned`` (hard-deleted). Retried as reads are."""
        async def once() -> tuple:
            rid = next(self._ids)
            return await self._call(rid, p.encode_stream_metadata(rid, stream), True)

        _, payload = await self._retrying(once)
        return p.decode_stream_metadata_ok(payload)

    async def set_stream_metadata(self, stream: str, expected: Expected,
                                  json: str) -> AppendResult:
        """Sets the stream's metadata, ``json`` a JSON object: its
        ``max_count``, ``max_age`` (seconds) and ``truncate_before`` (each a
        non-negative integer or null) are rules the node applies to every
        read; other keys are the application's. ``expected`` is of the
        metadata stream (``stream_metadata(...).revision``): a conflict raises
        ``WrongExpectedRevision`` with the metadata stream's actual revision.
        Returns the metadata event's append result; ``StreamDeleted`` if the
        stream is tombstoned. Not retried after it was sent (nothing would
        recognise the retry)."""
        _, payload = await self._send_once(
            lambda rid: p.encode_set_stream_metadata(rid, stream, expected, json))
        return p.decode_append_ok(payload)

    async def delete_stream(self, stream: str, expected: Expected,
                            hard: bool = False) -> p.DeleteResult:
        """Deletes ``stream`` (``expected`` is of the stream itself, as for an
        append). Soft (default): the stream reads as not found, and a later
        append recreates it, continuing its revisions (``StreamNotFound`` if
        it has no visible event). ``hard``: a tombstone; every later append or
        read of it raises ``StreamDeleted``. Returns ``position`` (the
        deletion's event) and ``truncate_before`` (last revision + 1). Not
        retried after it was sent."""
        _, payload = await self._send_once(
            lambda rid: p.encode_delete_stream(rid, stream, expected, hard))
        return p.decode_delete_ok(payload)

    # ---- snapshots (v5, docs/semantics.md "Snapshots") ----

    async def snapshot_save(self, stream: str, revision: int, type: str,
                            data: Union[bytes, str]) -> p.SnapshotSaveResult:
        """Saves the application's state of ``stream`` after ``revision``
        (``type`` and ``data`` are the application's; text is sent as UTF-8)
        and returns once it is durable: ``revision`` and ``kept``, the
        stream's snapshots now (the node keeps the newest 8). ``revision``
        must be a revision of the stream (at most its last, at least its last
        deletion): else ``AnnalError`` code BAD_REQUEST; ``StreamNotFound``
        for a stream without visible events, ``StreamDeleted`` for a
        tombstoned one. A save at the same revision replaces the earlier one,
        so it is retried as reads are."""
        async def once() -> tuple:
            rid = next(self._ids)
            return await self._call(
                rid, p.encode_snapshot_save(rid, stream, revision, type, data), True)

        _, payload = await self._retrying(once)
        return p.decode_snapshot_saved(payload)

    async def snapshot_read(self, stream: str, max_revision: Optional[int] = None,
                            count: int = 0) -> p.SnapshotPage:
        """A stream read from its latest snapshot, in one request: the newest
        snapshot at or below ``max_revision`` (None: the newest) and up to
        ``count`` of the stream's events after it (0: none; the node caps a
        page as a read's). A ``SnapshotPage``: ``found`` (False: no such
        snapshot, and the events start at revision 0), ``revision``,
        ``type``, ``data`` (bytes), ``events``, ``next`` (the revision to
        continue from with ``read_stream``) and ``end`` (the events reached
        the stream's last revision). ``StreamNotFound`` for a stream without
        visible events, ``StreamDeleted`` for a tombstoned one."""
        async def once() -> tuple:
            rid = next(self._ids)
            return await self._call(
                rid, p.encode_snapshot_read(rid, stream, max_revision, count), True)

        _, payload = await self._retrying(once)
        return p.decode_snapshot_ok(payload)

    async def scavenge(self, timeout: Optional[float] = None) -> p.ScavengeResult:
        """Runs a scavenge on the node (sealed log segments rewritten without
        the events that stream metadata and deletion removed) and returns its
        report when the run is done: ``segments_checked``,
        ``segments_rewritten``, ``events_removed``, ``bytes_read``,
        ``bytes_written``, ``log_bytes_before``, ``log_bytes_after``,
        ``duration_us`` and ``cancelled`` (the node stopped meanwhile; what it
        finished stays done). The node runs one at a time: a request made
        during a run is answered by the next one.

        A run is throttled by the node (``--scavenge-mb-per-s``) and can take
        minutes or hours, so the connection's ``timeout`` does not apply:
        ``timeout`` (seconds) bounds this call alone, None (default) waits
        for as long as the run takes. A timeout (``asyncio.TimeoutError``)
        does not stop the run. Never resent: a broken connection raises
        ``ConnectionLost`` (the run goes on); a node that stopped before the
        run began answers ``shutting_down`` (an ``AnnalError``)."""
        _, payload = await self._send_once(p.encode_scavenge, timeout)
        return p.decode_scavenge_ok(payload)

    async def backup(self, dest: str, link: bool = False, mb_per_s: Optional[float] = None,
                     timeout: Optional[float] = None) -> p.BackupResult:
        """Has the node take a consistent backup of its data directory into
        ``dest`` while appends go on (docs/operations.md, "Backup and
        restore") and returns it when complete: ``position`` (every event
        below it is in the backup), ``files``, ``bytes``, ``linked``,
        ``duration_us``, ``dest`` and ``note``.

        ``dest`` is an absolute path on the node's machine that must not
        exist or be an empty directory, outside the data directory
        (``AnnalError`` invalid_argument or already_exists otherwise).
        ``link`` hard-links the immutable files (same file system; the node
        copies, and says so in ``note``, when it cannot). ``mb_per_s`` is the
        read budget in MiB/s: None the node's ``--backup-mb-per-s``, 0 as
        fast as the disk. One backup at a time, none during a scavenge
        (``AnnalError`` busy). Like ``scavenge``, the connection's timeout
        does not apply (``timeout`` bounds this call alone; it does not
        stop the backup) and it is never resent."""
        bps = 0 if mb_per_s is None else (p.NONE if mb_per_s == 0 else int(mb_per_s * (1 << 20)))
        _, payload = await self._send_once(lambda rid: p.encode_backup(rid, dest, link, bps),
                                           timeout)
        return p.decode_backup_ok(payload)

    async def info(self) -> dict:
        rid = next(self._ids)
        _, payload = await self._call(rid, p.frame(Op.INFO, rid), False)
        return p.decode_info_ok(payload)

    async def ping(self) -> None:
        rid = next(self._ids)
        await self._call(rid, p.frame(Op.PING, rid), False)

    # ---- internals ----

    async def _retrying(self, once) -> tuple:
        """Runs ``once`` (one request); within ``retry_for``, a broken
        connection or ``shutting_down`` reconnects and runs it again."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.retry_for
        delay = 0.05
        while True:
            try:
                if self._closed is not None and self.retry_for > 0 and not self._user_closed:
                    await self._reconnect()
                return await once()
            except AnnalError as e:
                retryable = e.code in (Code.CONNECTION_LOST, Code.SHUTTING_DOWN)
                if not retryable or self._user_closed or loop.time() + delay > deadline:
                    raise
                if e.code == Code.SHUTTING_DOWN:
                    self._fail_all(ConnectionLost("the node is shutting down"))
            except OSError:
                # The node is not (yet) back: connecting failed.
                if loop.time() + delay > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _send_once(self, build, timeout: Any = _CONNECTION_TIMEOUT) -> tuple:
        """A counted request whose retry the node could not recognise
        (set_stream_metadata, delete_stream) or should not run twice
        (scavenge): a connection that broke before it is reconnected first
        (with ``retry_for``), but once sent it is never sent again."""
        if self._closed is not None and self.retry_for > 0 and not self._user_closed:
            await self._reconnect()
        rid = next(self._ids)
        return await self._call(rid, build(rid), True, timeout)

    async def _reconnect(self) -> None:
        async with self._reconnecting:
            if self._closed is None:
                return  # another request reconnected meanwhile
            self._task.cancel()
            if not self._writer.is_closing():
                self._writer.close()
            host, port, name = self._address
            reader, writer, hello = await _open(host, port, name, self.timeout)
            self._attach(reader, writer, hello)

    def _send_oneway(self, build) -> None:
        """A request the node answers only when it is wrong (group_ack/nack)."""
        if self._closed is not None:
            raise self._closed
        self._writer.write(build(next(self._ids)))

    async def _unsubscribe(self, sub: Subscription) -> None:
        if sub.id not in self._subs:
            return
        rid = next(self._ids)
        await self._call(rid, p.encode_unsubscribe(rid, sub.id), False)
        self._subs.pop(sub.id, None)
        sub._queue.put_nowait(None)

    async def _call(self, rid: int, data: bytes, counted: bool,
                    timeout: Any = _CONNECTION_TIMEOUT) -> tuple:
        """Sends one request and waits for its response: (op, payload), for
        at most ``timeout`` seconds (None: no limit; by default the
        connection's)."""
        if timeout is _CONNECTION_TIMEOUT:
            timeout = self.timeout
        if self._closed is not None:
            raise self._closed
        window = self._window  # a reconnect replaces it; release the one acquired
        if counted:
            await window.acquire()
        try:
            if self._closed is not None:
                raise self._closed  # the connection broke while this waited for room
            fut: "asyncio.Future[tuple]" = asyncio.get_running_loop().create_future()
            self._pending[rid] = fut
            try:
                self._writer.write(data)
                if self._writer.transport.get_write_buffer_size() > (1 << 20):
                    await self._writer.drain()
                op, payload = await asyncio.wait_for(asyncio.shield(fut), timeout)
            finally:
                self._pending.pop(rid, None)
        finally:
            if counted:
                window.release()
        if op == Op.ERROR:
            raise _error(p.decode_error(payload))
        return op, payload

    async def _read_loop(self) -> None:
        try:
            while True:
                op, rid, payload = await _read_frame(self._reader)
                sub = self._subs.get(rid)
                if sub is not None and op == Op.SUB_EVENTS:
                    sub._queue.put_nowait(p.decode_sub_events(payload))
                elif sub is not None and op == Op.GROUP_EVENTS:
                    sub._queue.put_nowait(p.decode_group_events(payload))
                elif sub is not None and op == Op.CHECKPOINT:
                    sub._queue.put_nowait(Checkpoint(p.decode_u64(payload, "checkpoint")))
                elif rid in self._pending:
                    fut = self._pending[rid]
                    if not fut.done():
                        fut.set_result((op, payload))
                elif sub is not None and op == Op.ERROR:
                    # The node ended the subscription (shutdown, damage, ...).
                    self._subs.pop(rid, None)
                    sub._queue.put_nowait(_error(p.decode_error(payload)))
                elif rid == 0 and op == Op.ERROR:
                    e = _error(p.decode_error(payload))
                    self._fail_all(ConnectionLost(f"the node closed the connection: {e}"))
                # Anything else answers a request that timed out: dropped.
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as ex:
            self._fail_all(ConnectionLost(f"connection lost: {ex!r}"))
        except p.ProtocolError as ex:
            self._fail_all(ConnectionLost(f"protocol error from the node: {ex}"))
            self._writer.close()

    def _fail_all(self, err: AnnalError) -> None:
        if self._closed is None:
            self._closed = err
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(err)
        for sub in self._subs.values():
            sub._queue.put_nowait(err)
        self._subs.clear()


async def _open(host: str, port: int, client_name: str, timeout: Optional[float]) -> tuple:
    """A new connection after its handshake: (reader, writer, hello_ok)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        writer.write(p.encode_hello(1, client_name))
        op, _, payload = await asyncio.wait_for(_read_frame(reader), timeout)
        if op == Op.ERROR:
            raise _error(p.decode_error(payload))
        if op != Op.HELLO_OK:
            raise p.ProtocolError(f"expected hello_ok, got op {op:#x}")
        return reader, writer, p.decode_hello_ok(payload)
    except BaseException:
        writer.close()
        raise


async def _read_frame(reader: asyncio.StreamReader) -> tuple:
    header = await reader.readexactly(13)
    length, op, rid = p.parse_header(header)
    if length < p.FRAME_MIN_BODY:
        raise p.ProtocolError(f"frame length {length} below {p.FRAME_MIN_BODY}")
    payload = await reader.readexactly(length - p.FRAME_MIN_BODY)
    return op, rid, payload
