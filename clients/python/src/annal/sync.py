"""A blocking wrapper for scripts: the asyncio client on a private event loop."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Coroutine, List, Optional, Sequence, TypeVar, Union

from .client import Client
from .protocol import (AppendMultiResult, AppendResult, BackupResult, DeleteResult, Event,
                       Expected, GroupInfo, GroupSettings, NewEvent, QueryItem, ReadPage,
                       ScavengeResult, SnapshotPage, SnapshotSaveResult, StreamAppend,
                       StreamMetadata)

T = TypeVar("T")


class SyncClient:
    """``with SyncClient.connect(port=7411) as c: c.append("s", [NewEvent(...)])``"""

    def __init__(self, loop: asyncio.AbstractEventLoop, thread: threading.Thread, client: Client):
        self._loop = loop
        self._thread = thread
        self._client = client

    @classmethod
    def connect(cls, host: str = "127.0.0.1", port: int = 7411,
                client_name: str = "annal-python-sync", timeout: Optional[float] = 30.0,
                retry_for: float = 0.0) -> "SyncClient":
        """As ``Client.connect`` (``retry_for``: reconnect and retry, seconds)."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="annal-client", daemon=True)
        thread.start()
        try:
            client = asyncio.run_coroutine_threadsafe(
                Client.connect(host, port, client_name, timeout, retry_for), loop).result()
        except BaseException:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()
            raise
        return cls(loop, thread, client)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def append(self, stream: str, events: Sequence[NewEvent],
               expected: Expected = Expected.any()) -> AppendResult:
        return self._run(self._client.append(stream, events, expected))

    def read_stream(self, stream: str, start: int = 0, count: int = 0,
                    backward: bool = False) -> ReadPage:
        return self._run(self._client.read_stream(stream, start, count, backward))

    def read_all(self, start: int = 0, count: int = 0, backward: bool = False) -> ReadPage:
        return self._run(self._client.read_all(start, count, backward))

    def append_multi(self, streams: Sequence[StreamAppend],
                     condition: Optional[Sequence[QueryItem]] = None,
                     after: Optional[int] = None) -> AppendMultiResult:
        """Client.append_multi: raises AppendRefused when refused."""
        return self._run(self._client.append_multi(streams, condition, after))

    def read_query(self, query: Sequence[QueryItem], start: int = 0, count: int = 0,
                   backward: bool = False) -> ReadPage:
        return self._run(self._client.read_query(query, start, count, backward))

    def stream_events(self, stream: str, start: int = 0) -> List[Event]:
        """Every event of ``stream`` from ``start`` to its current end."""

        async def collect() -> List[Event]:
            return [e async for e in self._client.iter_stream(stream, start)]

        return self._run(collect())

    def info(self) -> dict:
        return self._run(self._client.info())

    # Consumer-group administration and named checkpoints (v4); consuming a
    # group is asynchronous (Client.group_join).
    def group_create(self, name: str, settings: GroupSettings) -> None:
        self._run(self._client.group_create(name, settings))

    def group_info(self, name: str) -> GroupInfo:
        return self._run(self._client.group_info(name))

    def group_list(self) -> List[GroupInfo]:
        return self._run(self._client.group_list())

    def group_delete(self, name: str) -> None:
        self._run(self._client.group_delete(name))

    def checkpoint_save(self, name: str, position: int) -> None:
        self._run(self._client.checkpoint_save(name, position))

    def checkpoint_load(self, name: str) -> Optional[int]:
        return self._run(self._client.checkpoint_load(name))

    # Stream metadata and deletion (v5): as Client's.
    def stream_metadata(self, stream: str) -> StreamMetadata:
        return self._run(self._client.stream_metadata(stream))

    def set_stream_metadata(self, stream: str, expected: Expected, json: str) -> AppendResult:
        return self._run(self._client.set_stream_metadata(stream, expected, json))

    def delete_stream(self, stream: str, expected: Expected, hard: bool = False) -> DeleteResult:
        return self._run(self._client.delete_stream(stream, expected, hard))

    # Snapshots (v5): as Client's.
    def snapshot_save(self, stream: str, revision: int, type: str,
                      data: Union[bytes, str]) -> SnapshotSaveResult:
        return self._run(self._client.snapshot_save(stream, revision, type, data))

    def snapshot_read(self, stream: str, max_revision: Optional[int] = None,
                      count: int = 0) -> SnapshotPage:
        return self._run(self._client.snapshot_read(stream, max_revision, count))

    def scavenge(self, timeout: Optional[float] = None) -> ScavengeResult:
        """Client.scavenge: blocks until the node's run is done (None: no
        time limit, whatever the connection's ``timeout``)."""
        return self._run(self._client.scavenge(timeout))

    def backup(self, dest: str, link: bool = False, mb_per_s: Optional[float] = None,
               timeout: Optional[float] = None) -> BackupResult:
        """Client.backup: blocks until the node's backup is complete."""
        return self._run(self._client.backup(dest, link, mb_per_s, timeout))

    def close(self) -> None:
        self._run(self._client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> "SyncClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
