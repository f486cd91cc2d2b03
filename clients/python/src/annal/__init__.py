"""annal: a Python client for the annal event-store node (docs/clients.md)."""

from .client import (AnnalError, AppendRefused, Checkpoint, Client, ConnectionLost, StreamNotFound,
                     Subscription, WrongExpectedRevision)
from .protocol import (NONE, AppendMultiResult, AppendResult, Code, Event, Expected, ExpectedKind,
                       IndexKind, NewEvent, ProtocolError, QueryItem, ReadPage, StreamAppend)
from .sync import SyncClient

END = NONE  # read backward from the last event: read_stream(s, END, backward=True)

__all__ = [
    "AnnalError", "AppendMultiResult", "AppendRefused", "AppendResult", "Checkpoint", "Client",
    "Code", "ConnectionLost", "END", "Event", "Expected", "ExpectedKind", "IndexKind", "NewEvent",
    "ProtocolError", "QueryItem", "ReadPage", "StreamAppend", "StreamNotFound", "Subscription",
    "SyncClient", "WrongExpectedRevision",
]
__version__ = "0.1.0"
