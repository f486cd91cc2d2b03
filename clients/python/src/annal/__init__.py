"""annal: a Python client for the annal event-store node (docs/clients.md)."""

from .client import (AnnalError, AppendRefused, Checkpoint, Client, ConnectionLost, GroupMember,
                     StreamDeleted, StreamNotFound, Subscription, WrongExpectedRevision)
from .protocol import (NONE, AppendMultiResult, AppendResult, BackupResult, Code, DeleteResult,
                       Delivery, Event, Expected, ExpectedKind, GroupInfo, GroupSettings,
                       GroupStart, GroupTarget, IndexKind, NackAction, NewEvent, ParkedEvent,
                       ProtocolError, QueryItem, ReadPage, ScavengeResult, SnapshotPage,
                       SnapshotSaveResult, StreamAppend, StreamMetadata, Strategy)
from .sync import SyncClient

END = NONE  # read backward from the last event: read_stream(s, END, backward=True)

__all__ = [
    "AnnalError", "AppendMultiResult", "AppendRefused", "AppendResult", "BackupResult",
    "Checkpoint", "Client",
    "Code", "ConnectionLost", "DeleteResult", "Delivery", "END", "Event", "Expected", "ExpectedKind",
    "GroupInfo", "GroupMember", "GroupSettings", "GroupStart", "GroupTarget", "IndexKind",
    "NackAction", "NewEvent", "ParkedEvent", "ProtocolError", "QueryItem", "ReadPage",
    "ScavengeResult", "SnapshotPage", "SnapshotSaveResult", "StreamAppend", "StreamDeleted",
    "StreamMetadata", "StreamNotFound", "Strategy", "Subscription", "SyncClient",
    "WrongExpectedRevision",
]
__version__ = "0.1.0"
