"""The annal wire protocol, version 6 (docs/protocol.md), as plain functions.

Versions 1 (events without tags and ids), 2 (without multi-stream appends,
queries and conditions), 3 (without consumer groups) and 4 (without stream
metadata and deletion) are also encoded and decoded, for the shared test
vectors; the client speaks version 6.

Frames are ``length:u32 op:u8 request_id:u64 payload``; every integer is
little-endian. This module only encodes and decodes bytes: no I/O.
"""

from __future__ import annotations

import enum
import struct
import uuid
from dataclasses import dataclass, field
from typing import List, Optional, Tuple, Union

PROTOCOL_VERSION = 6
HELLO_MAGIC = 0x4C4E4E41  # "ANNL"
FRAME_MIN_BODY = 9  # op + request id
NONE = 0xFFFFFFFFFFFFFFFF  # "no value" in u64 fields (detail, from = the end)


class Op(enum.IntEnum):
    HELLO = 0x01
    PING = 0x02
    INFO = 0x03
    APPEND = 0x10
    READ_STREAM = 0x11
    READ_ALL = 0x12
    SUBSCRIBE = 0x13
    UNSUBSCRIBE = 0x14
    READ_INDEX = 0x15  # v2
    SEEK_TIME = 0x16  # v2
    APPEND_MULTI = 0x17  # v3
    READ_QUERY = 0x18  # v3
    GROUP_CREATE = 0x19  # v4: consumer groups (docs/consumer-groups.md)
    GROUP_DELETE = 0x1A
    GROUP_LIST = 0x1B
    GROUP_INFO = 0x1C
    GROUP_JOIN = 0x1D
    GROUP_ACK = 0x1E
    GROUP_NACK = 0x1F
    GROUP_REPLAY_PARKED = 0x20
    CHECKPOINT_SAVE = 0x21
    CHECKPOINT_LOAD = 0x22
    GROUP_PARKED = 0x23
    STREAM_METADATA = 0x24  # v5: stream metadata and deletion (docs/semantics.md)
    SET_STREAM_METADATA = 0x25
    DELETE_STREAM = 0x26
    SCAVENGE = 0x27  # v5: rewrite sealed segments without removed events
    SNAPSHOT_SAVE = 0x28  # v5: per-stream snapshots (docs/semantics.md)
    SNAPSHOT_READ = 0x29
    BACKUP = 0x2A  # v6: an online backup taken by the node (docs/operations.md)
    HELLO_OK = 0x81
    PONG = 0x82
    INFO_OK = 0x83
    APPEND_OK = 0x90
    READ_OK = 0x91
    SUBSCRIBE_OK = 0x92
    SUB_EVENTS = 0x93
    CHECKPOINT = 0x94
    UNSUBSCRIBE_OK = 0x95
    SEEK_TIME_OK = 0x96
    APPEND_MULTI_OK = 0x97  # v3
    APPEND_REFUSED = 0x98  # v3
    GROUP_OK = 0x99  # v4
    GROUP_LIST_OK = 0x9A
    GROUP_EVENTS = 0x9B
    CHECKPOINT_OK = 0x9C
    GROUP_PARKED_OK = 0x9D
    STREAM_METADATA_OK = 0x9E  # v5
    DELETE_OK = 0x9F
    SCAVENGE_OK = 0xA0  # v5
    SNAPSHOT_SAVED = 0xA1  # v5
    SNAPSHOT_OK = 0xA2  # v5
    BACKUP_OK = 0xA3  # v6
    ERROR = 0xFF


class Code(enum.IntEnum):
    """Error codes (docs/protocol.md section 4). Stable; new ones may appear."""

    WRONG_EXPECTED_REVISION = 1
    STREAM_NOT_FOUND = 2
    INVALID_JSON = 3
    TOO_LARGE = 4
    BAD_REQUEST = 5
    WRITER_FAILED = 6
    NO_SPACE = 7
    SHUTTING_DOWN = 8
    CORRUPTION = 9
    IO_ERROR = 10
    NOT_FOUND = 11
    LOST_AT_REPAIR = 12
    LOCKED = 13
    INVALID_ARGUMENT = 14
    INTERNAL = 15
    APPEND_CONDITION_FAILED = 16  # v3
    STREAM_DELETED = 17  # v5: the stream was hard-deleted (tombstone)
    BUSY = 18  # v6: a backup (or a scavenge) is already running
    UNSUPPORTED_VERSION = 100
    UNKNOWN_OPERATION = 101
    FRAME_TOO_LARGE = 102
    TOO_MANY_REQUESTS = 103
    TOO_MANY_CONNECTIONS = 104
    IDLE_TIMEOUT = 105
    UNKNOWN_SUBSCRIPTION = 106
    HANDSHAKE_REQUIRED = 107
    TOO_MANY_SUBSCRIPTIONS = 108
    ALREADY_EXISTS = 109  # v4: group_create of a name in use
    # Client side only: the connection broke (never sent by the node).
    CONNECTION_LOST = 200


def code_name(code: int) -> str:
    try:
        return Code(code).name.lower()
    except ValueError:
        return f"code_{code}"


class IndexKind(enum.IntEnum):
    """The secondary index a read_index or index subscription reads (v2)."""

    CATEGORY = 0
    TYPE = 1
    TAG = 2
    CORRELATION = 3
    CAUSATION = 4


class ExpectedKind(enum.IntEnum):
    ANY = 0
    NO_STREAM = 1
    STREAM_EXISTS = 2
    EXACT = 3


class GroupTarget(enum.IntEnum):
    """What a consumer group reads (v4)."""

    STREAM = 0
    ALL = 1
    INDEX = 2


class GroupStart(enum.IntEnum):
    BEGINNING = 0
    END = 1
    POSITION = 2
    TIME = 3  # start_value: microseconds since the epoch


class Strategy(enum.IntEnum):
    ROUND_ROBIN = 0
    ORDERED = 1  # one event of a stream at a time, in order


class NackAction(enum.IntEnum):
    RETRY = 0
    RETRY_LATER = 1
    PARK = 2
    SKIP = 3


FLAG_DATA_JSON = 0x1
FLAG_METADATA_JSON = 0x2
FLAG_LOST = 0x8  # a position replaced by a repair marker (reads only)


class ProtocolError(ValueError):
    """Bytes from the node that do not follow the protocol."""


@dataclass(frozen=True)
class Expected:
    """An append's expected revision: any, no_stream, stream_exists or exact."""

    kind: ExpectedKind = ExpectedKind.ANY
    revision: int = 0

    @staticmethod
    def any() -> "Expected":
        return Expected(ExpectedKind.ANY)

    @staticmethod
    def no_stream() -> "Expected":
        return Expected(ExpectedKind.NO_STREAM)

    @staticmethod
    def stream_exists() -> "Expected":
        return Expected(ExpectedKind.STREAM_EXISTS)

    @staticmethod
    def exact(revision: int) -> "Expected":
        return Expected(ExpectedKind.EXACT, revision)


@dataclass
class NewEvent:
    """An event to append. ``id`` defaults to a fresh UUIDv4: keep it to retry."""

    type: str
    data: bytes = b""
    metadata: bytes = b""
    data_json: bool = True
    metadata_json: bool = False
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    # Stored sorted, once each (the node normalises); each non-empty UTF-8.
    tags: List[str] = field(default_factory=list)
    correlation_id: str = ""
    causation_id: str = ""


@dataclass(frozen=True)
class QueryItem:
    """One item of a query (v3): an event matches if its type is one of
    ``types`` (any type if empty) and its tags include all of ``tags``."""

    types: Tuple[str, ...] = ()
    tags: Tuple[str, ...] = ()


@dataclass
class StreamAppend:
    """One stream of a multi-stream append (v3); without events it is only checked."""

    stream: str
    events: List[NewEvent] = field(default_factory=list)
    expected: "Expected" = field(default_factory=lambda: Expected.any())


@dataclass(frozen=True)
class AppendMultiResult:
    first_position: int
    count: int
    deduplicated: bool
    # Per stream in request order: (first revision or None if only checked, count).
    streams: Tuple[Tuple[Optional[int], int], ...]


@dataclass(frozen=True)
class AppendRefusal:
    code: int
    message: str
    conflict_position: Optional[int]  # APPEND_CONDITION_FAILED: the first matching event
    # WRONG_EXPECTED_REVISION: per stream (failed, actual revision or None).
    streams: Tuple[Tuple[bool, Optional[int]], ...]


@dataclass(frozen=True)
class Event:
    """A stored event as the node returns it."""

    position: int
    revision: int
    timestamp_us: int
    flags: int
    id: uuid.UUID
    stream: str
    type: str
    metadata: bytes
    data: bytes
    tags: Tuple[str, ...] = ()
    correlation_id: str = ""
    causation_id: str = ""

    @property
    def lost(self) -> bool:
        return bool(self.flags & FLAG_LOST)


@dataclass
class GroupSettings:
    """A consumer group's settings (v4, docs/consumer-groups.md)."""

    target: GroupTarget = GroupTarget.ALL
    stream: str = ""  # STREAM
    stream_prefix: str = ""  # ALL
    type_prefix: str = ""  # ALL
    index_kind: IndexKind = IndexKind.CATEGORY  # INDEX
    index_value: str = ""  # INDEX
    start: GroupStart = GroupStart.BEGINNING
    start_value: int = 0
    strategy: Strategy = Strategy.ROUND_ROBIN
    max_in_flight: int = 64
    ack_timeout_ms: int = 30_000
    max_retries: int = 10
    retry_delay_ms: int = 1_000


@dataclass(frozen=True)
class GroupInfo:
    """A group's (kind 0) or a named consumer's (kind 1) figures."""

    kind: int
    name: str
    settings: GroupSettings
    checkpoint: int
    durable_end: int
    lag_events: int
    lag_us: int
    consumers: int
    in_flight: int
    buffered: int
    parked: int
    acked_total: int
    parked_total: int
    delivered_total: int


@dataclass(frozen=True)
class Delivery:
    """An event delivered to a group member, and how many times it has been
    delivered (1 the first time)."""

    event: Event
    attempt: int


@dataclass(frozen=True)
class StreamMetadata:
    """A stream's metadata and deletion state (v5, docs/semantics.md)."""

    # The metadata stream's last revision: what set_stream_metadata expects
    # next (None: metadata never set).
    revision: Optional[int]
    json: str  # the metadata as last set ("{}" if never)
    max_count: Optional[int]  # None: not set
    max_age: Optional[int]  # seconds; None: not set
    truncate_before: int  # from the metadata
    deleted_before: int  # from deletions
    deleted: bool  # soft-deleted now (reads as stream_not_found)
    tombstoned: bool  # hard-deleted: answers stream_deleted, never written again


@dataclass(frozen=True)
class DeleteResult:
    position: int  # of the deletion's event in the log
    truncate_before: int  # the stream's revisions below were removed


@dataclass(frozen=True)
class ScavengeResult:
    """What one scavenge run did (v5 ``scavenge_ok``)."""

    segments_checked: int  # sealed segments looked at
    segments_rewritten: int  # of those, rewritten without their removed events
    events_removed: int
    bytes_read: int
    bytes_written: int
    log_bytes_before: int  # the log's size on disk before the run
    log_bytes_after: int  # and after it
    duration_us: int  # the run's duration, microseconds
    cancelled: bool  # the node stopped during the run (what it finished stays done)


@dataclass(frozen=True)
class BackupResult:
    """A complete backup (v6 ``backup_ok``; docs/operations.md, "Backup and restore")."""

    position: int  # the backup holds every event below this position, nothing at or above
    files: int  # files in its MANIFEST
    bytes: int  # their sizes summed
    linked: int  # of the files, hard-linked to the node's rather than copied
    duration_us: int
    dest: str  # the backup's directory on the node's machine (absolute)
    note: str  # e.g. why link mode fell back to copying; empty if none


@dataclass(frozen=True)
class SnapshotSaveResult:
    """A snapshot saved (v5 ``snapshot_saved``): durable when answered."""

    revision: int  # the stream revision the snapshot is of
    kept: int  # the stream's snapshots now (the newest 8 are kept)


@dataclass(frozen=True)
class SnapshotPage:
    """A stream read from its latest snapshot (v5 ``snapshot_ok``): the newest
    snapshot at or below the revision asked for, and the events after it."""

    found: bool  # False: no snapshot; then revision is 0, type and data empty
    revision: int  # the snapshot is of the stream's state after this revision
    type: str
    data: bytes
    end: bool  # the events reach the stream's last revision
    next: int  # the revision to read from next
    events: List[Event]  # after the snapshot (from revision 0 if none was found)


@dataclass(frozen=True)
class HelloOk:
    version: int
    max_frame: int
    max_in_flight: int
    server_version: str


@dataclass(frozen=True)
class AppendResult:
    first_position: int
    first_revision: int
    count: int
    deduplicated: bool

    @property
    def last_revision(self) -> int:
        return self.first_revision + self.count - 1


@dataclass(frozen=True)
class ReadPage:
    end: bool
    next: int
    events: List[Event]
    durable_end: int = 0  # v2: the durable end the page was read below


@dataclass(frozen=True)
class ErrorFrame:
    code: int
    detail: int
    message: str


INFO_FIELDS = (
    ("server_version", "s"), ("protocol_version", "H"), ("durable_end", "Q"), ("segments", "Q"),
    ("max_stream_name", "Q"), ("max_event_type", "Q"), ("max_event_size", "Q"),
    ("max_append_size", "Q"), ("max_append_events", "Q"), ("max_frame", "I"),
    ("max_in_flight", "I"), ("max_connections", "I"), ("connections", "I"),
    ("index_memtable_entries", "Q"), ("index_files", "Q"), ("indexed_through", "Q"),
)
INFO_FIELDS_V2 = (("max_tags", "Q"), ("max_tag_size", "Q"), ("max_correlation_id", "Q"))
INFO_FIELDS_V3 = (("max_append_streams", "Q"), ("max_query_items", "Q"))

# ---- encoding ----


def _str(b: bytes) -> bytes:
    return struct.pack("<I", len(b)) + b


def frame(op: int, request_id: int, payload: bytes = b"") -> bytes:
    return struct.pack("<IBQ", FRAME_MIN_BODY + len(payload), op, request_id) + payload


def encode_hello(request_id: int, client_name: str, version: int = PROTOCOL_VERSION) -> bytes:
    return frame(Op.HELLO, request_id,
                 struct.pack("<IH", HELLO_MAGIC, version) + _str(client_name.encode()))


def _tags(tags: List[str]) -> bytes:
    """A tag block: u16 count, a u16 length per tag, then the tags' bytes."""
    raw = [t.encode() for t in tags]
    if len(raw) > 0xFFFF or any(len(t) > 0xFFFF for t in raw):
        raise ValueError("too many tags, or a tag longer than 65535 bytes")
    return struct.pack(f"<{len(raw) + 1}H", len(raw), *(len(t) for t in raw)) + b"".join(raw)


def _new_events(events: List[NewEvent], version: int) -> List[bytes]:
    parts = [struct.pack("<I", len(events))]
    for e in events:
        flags = (FLAG_DATA_JSON if e.data_json else 0) | (FLAG_METADATA_JSON if e.metadata_json else 0)
        parts += [e.id.bytes, _str(e.type.encode()), struct.pack("<I", flags), _str(e.metadata),
                  _str(e.data)]
        if version >= 2:
            parts += [_tags(e.tags), _str(e.correlation_id.encode()), _str(e.causation_id.encode())]
        elif e.tags or e.correlation_id or e.causation_id:
            raise ValueError("protocol version 1 cannot carry tags or correlation/causation ids")
    return parts


def encode_append(request_id: int, stream: str, expected: Expected, events: List[NewEvent],
                  version: int = PROTOCOL_VERSION) -> bytes:
    parts = [_str(stream.encode()), struct.pack("<BQ", expected.kind, expected.revision)]
    return frame(Op.APPEND, request_id, b"".join(parts + _new_events(events, version)))


def encode_query(items: List[QueryItem]) -> bytes:
    """A query (v3): u32 item count; per item the types, then the tags, each a
    u32 count and strings."""
    parts = [struct.pack("<I", len(items))]
    for item in items:
        for strings in (item.types, item.tags):
            parts.append(struct.pack("<I", len(strings)))
            parts += [_str(s.encode()) for s in strings]
    return b"".join(parts)


def encode_append_multi(request_id: int, streams: List[StreamAppend],
                        condition: Optional[List[QueryItem]] = None,
                        after: Optional[int] = None) -> bytes:
    """append_multi (v3): the streams in order; the condition (None: none)
    refuses the append if an event matching it exists after ``after``."""
    parts = [struct.pack("<I", len(streams))]
    for s in streams:
        parts += [_str(s.stream.encode()), struct.pack("<BQ", s.expected.kind, s.expected.revision)]
        parts += _new_events(s.events, 3)
    parts += [encode_query(condition or []), struct.pack("<Q", NONE if after is None else after)]
    return frame(Op.APPEND_MULTI, request_id, b"".join(parts))


def encode_read_query(request_id: int, items: List[QueryItem], start: int, count: int,
                      backward: bool) -> bytes:
    return frame(Op.READ_QUERY, request_id,
                 encode_query(items) + struct.pack("<QIB", start, count, 1 if backward else 0))


def encode_read_stream(request_id: int, stream: str, start: int, count: int, backward: bool) -> bytes:
    return frame(Op.READ_STREAM, request_id,
                 _str(stream.encode()) + struct.pack("<QIB", start, count, 1 if backward else 0))


def encode_read_all(request_id: int, start: int, count: int, backward: bool) -> bytes:
    return frame(Op.READ_ALL, request_id, struct.pack("<QIB", start, count, 1 if backward else 0))


def encode_read_index(request_id: int, kind: IndexKind, value: str, start: int, count: int,
                      backward: bool) -> bytes:
    return frame(Op.READ_INDEX, request_id,
                 struct.pack("<B", kind) + _str(value.encode())
                 + struct.pack("<QIB", start, count, 1 if backward else 0))


def encode_seek_time(request_id: int, timestamp_us: int) -> bytes:
    return frame(Op.SEEK_TIME, request_id, struct.pack("<q", timestamp_us))


def decode_seek_time_ok(p: bytes) -> Tuple[int, int]:
    """(position, durable_end)."""
    r = Reader(p, "seek_time_ok")
    out = (r.u64("position"), r.u64("durable_end"))
    r.done()
    return out


def encode_subscribe(request_id: int, stream: Optional[str], start: Optional[int],
                     stream_prefix: str = "", type_prefix: str = "",
                     checkpoint_interval: int = 0, index: Optional[Tuple[IndexKind, str]] = None,
                     version: int = PROTOCOL_VERSION,
                     query: Optional[List[QueryItem]] = None) -> bytes:
    """``index``: (kind, value) to follow one secondary index key (v2; stream
    None); ``query``: the events matching a query (v3; stream None)."""
    target = 3 if query else 2 if index is not None else 1 if stream is None else 0
    payload = (struct.pack("<B", target) + _str((stream or "").encode())
               + struct.pack("<BQ", 1 if start is None else 0, start or 0)
               + _str(stream_prefix.encode()) + _str(type_prefix.encode())
               + struct.pack("<I", checkpoint_interval))
    if version >= 2:
        kind, value = index if index is not None else (IndexKind.CATEGORY, "")
        payload += struct.pack("<B", kind) + _str(value.encode())
    elif index is not None:
        raise ValueError("protocol version 1 cannot subscribe to an index")
    if version >= 3:
        payload += encode_query(query or [])
    elif query:
        raise ValueError("protocol versions 1 and 2 cannot subscribe to a query")
    return frame(Op.SUBSCRIBE, request_id, payload)


def encode_unsubscribe(request_id: int, subscription_id: int) -> bytes:
    return frame(Op.UNSUBSCRIBE, request_id, struct.pack("<Q", subscription_id))


def _settings(s: GroupSettings) -> bytes:
    return (struct.pack("<B", s.target) + _str(s.stream.encode()) + _str(s.stream_prefix.encode())
            + _str(s.type_prefix.encode()) + struct.pack("<B", s.index_kind)
            + _str(s.index_value.encode()) + struct.pack("<BQB", s.start, s.start_value, s.strategy)
            + struct.pack("<IIII", s.max_in_flight, s.ack_timeout_ms, s.max_retries,
                          s.retry_delay_ms))


def encode_group_create(request_id: int, name: str, settings: GroupSettings,
                        update: bool = False) -> bytes:
    return frame(Op.GROUP_CREATE, request_id,
                 struct.pack("<B", 1 if update else 0) + _str(name.encode()) + _settings(settings))


def encode_group_name(op: Op, request_id: int, name: str) -> bytes:
    """group_delete, group_info, group_replay_parked, checkpoint_load."""
    return frame(op, request_id, _str(name.encode()))


def encode_group_join(request_id: int, name: str, max_in_flight: int = 0) -> bytes:
    return frame(Op.GROUP_JOIN, request_id, _str(name.encode()) + struct.pack("<I", max_in_flight))


def _positions(positions: List[int]) -> bytes:
    return struct.pack(f"<I{len(positions)}Q", len(positions), *positions)


def encode_group_ack(request_id: int, join_id: int, positions: List[int]) -> bytes:
    return frame(Op.GROUP_ACK, request_id, struct.pack("<Q", join_id) + _positions(positions))


def encode_group_nack(request_id: int, join_id: int, action: NackAction, reason: str,
                      positions: List[int]) -> bytes:
    return frame(Op.GROUP_NACK, request_id,
                 struct.pack("<QB", join_id, action) + _str(reason.encode()) + _positions(positions))


def encode_group_parked(request_id: int, name: str, start: int = 0, count: int = 0) -> bytes:
    return frame(Op.GROUP_PARKED, request_id, _str(name.encode()) + struct.pack("<QI", start, count))


@dataclass(frozen=True)
class ParkedEvent:
    position: int
    failures: int
    replaying: bool  # handed out again by group_replay_parked, not yet resolved
    reason: str


def decode_group_parked_ok(p: bytes) -> Tuple[List[ParkedEvent], Optional[int]]:
    """(a page of the parked list, where the next page starts or None)."""
    r = Reader(p, "group_parked_ok")
    out = [ParkedEvent(r.u64("parked.position"), r.u32("parked.failures"),
                       r.u8("parked.replaying") != 0, r.string("parked.reason"))
           for _ in range(r.u32("parked_count"))]
    nxt = r.u64("next")
    r.done()
    return out, None if nxt == NONE else nxt


def encode_checkpoint_save(request_id: int, name: str, position: int) -> bytes:
    return frame(Op.CHECKPOINT_SAVE, request_id, _str(name.encode()) + struct.pack("<Q", position))


def encode_stream_metadata(request_id: int, stream: str) -> bytes:
    return frame(Op.STREAM_METADATA, request_id, _str(stream.encode()))


def encode_set_stream_metadata(request_id: int, stream: str, expected: Expected,
                               json: str) -> bytes:
    """``expected`` is of the metadata stream's revision; ``json`` a JSON object."""
    return frame(Op.SET_STREAM_METADATA, request_id,
                 _str(stream.encode()) + struct.pack("<BQ", expected.kind, expected.revision)
                 + _str(json.encode()))


def encode_delete_stream(request_id: int, stream: str, expected: Expected,
                         hard: bool = False) -> bytes:
    """``expected`` is of the stream itself; ``hard``: a tombstone."""
    return frame(Op.DELETE_STREAM, request_id,
                 _str(stream.encode())
                 + struct.pack("<BQB", expected.kind, expected.revision, 1 if hard else 0))


def encode_scavenge(request_id: int) -> bytes:
    """An empty payload: the node runs a scavenge and answers when it is done."""
    return frame(Op.SCAVENGE, request_id)


def encode_backup(request_id: int, dest: str, link: bool = False,
                  bytes_per_second: int = 0) -> bytes:
    """``dest``: an absolute path on the node's machine; ``bytes_per_second``:
    0 the node's default budget, NONE as fast as the disk."""
    return frame(Op.BACKUP, request_id,
                 _str(dest.encode()) + struct.pack("<BQ", 1 if link else 0, bytes_per_second))


def _blob(data: Union[bytes, str]) -> bytes:
    return data.encode() if isinstance(data, str) else bytes(data)


def encode_snapshot_save(request_id: int, stream: str, revision: int, type: str,
                         data: Union[bytes, str]) -> bytes:
    """The stream's state after ``revision``: ``type`` and ``data`` (bytes, or
    text sent as UTF-8) are the application's."""
    return frame(Op.SNAPSHOT_SAVE, request_id,
                 _str(stream.encode()) + struct.pack("<Q", revision) + _str(type.encode())
                 + _str(_blob(data)))


def encode_snapshot_read(request_id: int, stream: str, max_revision: Optional[int] = None,
                         count: int = 0) -> bytes:
    """The newest snapshot at or below ``max_revision`` (None: the newest) and
    up to ``count`` events after it (0: none)."""
    return frame(Op.SNAPSHOT_READ, request_id,
                 _str(stream.encode())
                 + struct.pack("<QI", NONE if max_revision is None else max_revision, count))


# ---- decoding ----


class Reader:
    """Reads fields from one payload; every read is bounds-checked."""

    def __init__(self, payload: bytes, what: str):
        self.b = memoryview(payload)
        self.at = 0
        self.what = what

    def _take(self, n: int, field_name: str) -> memoryview:
        if n > len(self.b) - self.at:
            raise ProtocolError(f"{self.what}: payload ends inside {field_name}")
        v = self.b[self.at:self.at + n]
        self.at += n
        return v

    def u8(self, name: str) -> int:
        return self._take(1, name)[0]

    def u16(self, name: str) -> int:
        return struct.unpack("<H", self._take(2, name))[0]

    def u32(self, name: str) -> int:
        return struct.unpack("<I", self._take(4, name))[0]

    def u64(self, name: str) -> int:
        return struct.unpack("<Q", self._take(8, name))[0]

    def i64(self, name: str) -> int:
        return struct.unpack("<q", self._take(8, name))[0]

    def bytes_(self, name: str) -> bytes:
        return bytes(self._take(self.u32(name + " length"), name))

    def string(self, name: str) -> str:
        return self.bytes_(name).decode("utf-8", errors="replace")

    def uuid(self, name: str) -> uuid.UUID:
        return uuid.UUID(bytes=bytes(self._take(16, name)))

    def tags(self, name: str) -> Tuple[str, ...]:
        n = self.u16(name + " count")
        lengths = struct.unpack(f"<{n}H", self._take(2 * n, name + " lengths"))
        return tuple(bytes(self._take(k, name)).decode("utf-8", errors="replace") for k in lengths)

    def done(self) -> None:
        if self.at != len(self.b):
            raise ProtocolError(f"{self.what}: {len(self.b) - self.at} trailing bytes")


def parse_header(header: bytes) -> Tuple[int, int, int]:
    """(length, op, request_id) of the 13 bytes that start a frame."""
    return struct.unpack("<IBQ", header)


def decode_hello_ok(p: bytes) -> HelloOk:
    r = Reader(p, "hello_ok")
    out = HelloOk(r.u16("version"), r.u32("max_frame"), r.u32("max_in_flight"),
                  r.string("server_version"))
    r.done()
    return out


def decode_info_ok(p: bytes, version: int = PROTOCOL_VERSION) -> dict:
    r = Reader(p, "info_ok")
    readers = {"s": r.string, "H": r.u16, "I": r.u32, "Q": r.u64}
    fields = (INFO_FIELDS + (INFO_FIELDS_V2 if version >= 2 else ())
              + (INFO_FIELDS_V3 if version >= 3 else ()))
    out = {name: readers[kind](name) for name, kind in fields}
    r.done()
    return out


def decode_append_ok(p: bytes) -> AppendResult:
    r = Reader(p, "append_ok")
    out = AppendResult(r.u64("first_position"), r.u64("first_revision"), r.u32("count"),
                       r.u8("deduplicated") != 0)
    r.done()
    return out


def decode_append_multi_ok(p: bytes) -> AppendMultiResult:
    r = Reader(p, "append_multi_ok")
    first, count, dedup = r.u64("first_position"), r.u32("count"), r.u8("deduplicated") != 0
    streams = []
    for _ in range(r.u32("stream count")):
        rev, n = r.u64("first_revision"), r.u32("count")
        streams.append((None if rev == NONE else rev, n))
    r.done()
    return AppendMultiResult(first, count, dedup, tuple(streams))


def decode_append_refused(p: bytes) -> AppendRefusal:
    r = Reader(p, "append_refused")
    code, message, conflict = r.u16("code"), r.string("message"), r.u64("conflict_position")
    streams = []
    for _ in range(r.u32("stream count")):
        failed, actual = r.u8("failed") != 0, r.u64("actual_revision")
        streams.append((failed, None if actual == NONE else actual))
    r.done()
    return AppendRefusal(code, message, None if conflict == NONE else conflict, tuple(streams))


def _event(r: Reader, version: int) -> Event:
    head = (r.u64("position"), r.u64("revision"), r.i64("timestamp_us"), r.u32("flags"),
            r.uuid("id"), r.string("stream"), r.string("type"), r.bytes_("metadata"),
            r.bytes_("data"))
    if version < 2:
        return Event(*head)
    return Event(*head, r.tags("tags"), r.string("correlation_id"), r.string("causation_id"))


def _events(r: Reader, version: int) -> List[Event]:
    n = r.u32("event count")
    return [_event(r, version) for _ in range(n)]


def decode_read_ok(p: bytes, version: int = PROTOCOL_VERSION) -> ReadPage:
    r = Reader(p, "read_ok")
    end = r.u8("end") != 0
    nxt = r.u64("next")
    durable_end = r.u64("durable_end") if version >= 2 else 0
    events = _events(r, version)
    r.done()
    return ReadPage(end, nxt, events, durable_end)


def decode_sub_events(p: bytes, version: int = PROTOCOL_VERSION) -> List[Event]:
    r = Reader(p, "sub_events")
    events = _events(r, version)
    r.done()
    return events


def _read_settings(r: Reader) -> GroupSettings:
    return GroupSettings(GroupTarget(r.u8("settings.target")), r.string("settings.stream"),
                         r.string("settings.stream_prefix"), r.string("settings.type_prefix"),
                         IndexKind(r.u8("settings.index_kind")), r.string("settings.index_value"),
                         GroupStart(r.u8("settings.start")), r.u64("settings.start_value"),
                         Strategy(r.u8("settings.strategy")), r.u32("settings.max_in_flight"),
                         r.u32("settings.ack_timeout_ms"), r.u32("settings.max_retries"),
                         r.u32("settings.retry_delay_ms"))


def decode_group_list_ok(p: bytes) -> List[GroupInfo]:
    r = Reader(p, "group_list_ok")
    out = []
    for _ in range(r.u32("group_count")):
        kind, name, settings = r.u8("group.kind"), r.string("group.name"), _read_settings(r)
        out.append(GroupInfo(kind, name, settings, r.u64("group.checkpoint"),
                             r.u64("group.durable_end"), r.u64("group.lag_events"),
                             r.i64("group.lag_us"), r.u32("group.consumers"),
                             r.u64("group.in_flight"), r.u64("group.buffered"),
                             r.u64("group.parked"), r.u64("group.acked_total"),
                             r.u64("group.parked_total"), r.u64("group.delivered_total")))
    r.done()
    return out


def decode_group_events(p: bytes, version: int = PROTOCOL_VERSION) -> List[Delivery]:
    r = Reader(p, "group_events")
    out = []
    for _ in range(r.u32("count")):
        attempt = r.u32("attempt")
        out.append(Delivery(_event(r, version), attempt))
    r.done()
    return out


def decode_checkpoint_ok(p: bytes) -> Optional[int]:
    r = Reader(p, "checkpoint_ok")
    found, position = r.u8("found") != 0, r.u64("position")
    r.done()
    return position if found else None


def decode_stream_metadata_ok(p: bytes) -> StreamMetadata:
    r = Reader(p, "stream_metadata_ok")
    none = lambda v: None if v == NONE else v  # noqa: E731
    out = StreamMetadata(none(r.u64("revision")), r.string("json"), none(r.u64("max_count")),
                         none(r.u64("max_age")), r.u64("truncate_before"),
                         r.u64("deleted_before"), r.u8("deleted") != 0, r.u8("tombstoned") != 0)
    r.done()
    return out


def decode_delete_ok(p: bytes) -> DeleteResult:
    r = Reader(p, "delete_ok")
    out = DeleteResult(r.u64("position"), r.u64("truncate_before"))
    r.done()
    return out


def decode_scavenge_ok(p: bytes) -> ScavengeResult:
    r = Reader(p, "scavenge_ok")
    out = ScavengeResult(r.u64("segments_checked"), r.u64("segments_rewritten"),
                         r.u64("events_removed"), r.u64("bytes_read"), r.u64("bytes_written"),
                         r.u64("log_bytes_before"), r.u64("log_bytes_after"),
                         r.u64("duration_us"), r.u8("cancelled") != 0)
    r.done()
    return out


def decode_backup_ok(p: bytes) -> BackupResult:
    r = Reader(p, "backup_ok")
    out = BackupResult(r.u64("position"), r.u32("files"), r.u64("bytes"), r.u32("linked"),
                       r.u64("duration_us"), r.string("dest"), r.string("note"))
    r.done()
    return out


def decode_snapshot_saved(p: bytes) -> SnapshotSaveResult:
    r = Reader(p, "snapshot_saved")
    out = SnapshotSaveResult(r.u64("revision"), r.u32("kept"))
    r.done()
    return out


def decode_snapshot_ok(p: bytes, version: int = PROTOCOL_VERSION) -> SnapshotPage:
    """The events are encoded as in read_ok for the connection's version."""
    r = Reader(p, "snapshot_ok")
    found, revision, type_, data = (r.u8("found") != 0, r.u64("revision"), r.string("type"),
                                    r.bytes_("data"))
    end, nxt = r.u8("end") != 0, r.u64("next")
    events = _events(r, version)
    r.done()
    return SnapshotPage(found, revision, type_, data, end, nxt, events)


def decode_u64(p: bytes, what: str) -> int:
    r = Reader(p, what)
    v = r.u64(what)
    r.done()
    return v


def decode_error(p: bytes) -> ErrorFrame:
    r = Reader(p, "error")
    out = ErrorFrame(r.u16("code"), r.u64("detail"), r.string("message"))
    r.done()
    return out
