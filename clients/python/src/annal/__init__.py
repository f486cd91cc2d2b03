"""annal: a Python client for the annal event-store node (docs/clients.md)."""

from .client import (AnnalError, Checkpoint, Client, ConnectionLost, StreamNotFound, Subscription,
                     WrongExpectedRevision)
from .protocol import (NONE, AppendResult, Code, Event, Expected, ExpectedKind, IndexKind,
                       NewEvent, ProtocolError, ReadPage)
from .sync import SyncClient

END = NONE  # read backward from the last event: read_stream(s, END, backward=True)

__all__ = [
    "AnnalError", "AppendResult", "Checkpoint", "Client", "Code", "ConnectionLost", "END", "Event",
    "Expected", "ExpectedKind", "IndexKind", "NewEvent", "ProtocolError", "ReadPage", "StreamNotFound",
    "Subscription", "SyncClient", "WrongExpectedRevision",
]
__version__ = "0.1.0"
