// @annal/client: a client for the annal event-store node (docs/clients.md).
export { AnnalError, AppendRefused, Checkpoint, Client, ConnectOptions, ConnectionLost, GroupMember, StreamDeleted, StreamNotFound, Subscription, WrongExpectedRevision } from "./client.js";
export {
  AppendMultiResult, AppendRefusal, AppendResult, BackupResult, Code, DeleteResult, Delivery, Event, Expected, GroupInfo, GroupSettings, GroupStart, GroupTarget, IndexKind, NackAction, ParkedEvent, NewEvent, NONE, ProtocolError, QueryItem, ReadPage, ScavengeResult, SnapshotPage, SnapshotSaveResult, StreamAppend, StreamMetadata, Strategy, SubscribeOptions,
  FLAG_DATA_JSON, FLAG_LOST, FLAG_METADATA_JSON, codeName,
} from "./protocol.js";
export * as protocol from "./protocol.js";
