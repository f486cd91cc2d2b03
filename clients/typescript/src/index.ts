// @annal/client: a client for the annal event-store node (docs/clients.md).
export { AnnalError, Checkpoint, Client, ConnectOptions, ConnectionLost, StreamNotFound, Subscription, WrongExpectedRevision } from "./client.js";
export {
  AppendResult, Code, Event, Expected, IndexKind, NewEvent, NONE, ProtocolError, ReadPage, SubscribeOptions,
  FLAG_DATA_JSON, FLAG_LOST, FLAG_METADATA_JSON, codeName,
} from "./protocol.js";
export * as protocol from "./protocol.js";
