// The annal wire protocol, version 5 (docs/protocol.md): frames are
// length:u32 op:u8 request_id:u64 payload, every integer little-endian.
// Encoding and decoding only; no I/O. Versions 1 to 4 are encoded and
// decoded too, for the shared test vectors; the client speaks version 5.

import { randomUUID } from "node:crypto";

export const PROTOCOL_VERSION = 6;
export const HELLO_MAGIC = 0x4c4e4e41; // "ANNL"
export const FRAME_MIN_BODY = 9;
/** "No value" in u64 fields (error detail, read backward from the end). */
export const NONE = 0xffffffffffffffffn;

export enum Op {
  Hello = 0x01,
  Ping = 0x02,
  Info = 0x03,
  Append = 0x10,
  ReadStream = 0x11,
  ReadAll = 0x12,
  Subscribe = 0x13,
  Unsubscribe = 0x14,
  ReadIndex = 0x15,
  SeekTime = 0x16,
  AppendMulti = 0x17, // v3
  ReadQuery = 0x18, // v3
  GroupCreate = 0x19, // v4: consumer groups (docs/consumer-groups.md)
  GroupDelete = 0x1a,
  GroupList = 0x1b,
  GroupInfo = 0x1c,
  GroupJoin = 0x1d,
  GroupAck = 0x1e,
  GroupNack = 0x1f,
  GroupReplayParked = 0x20,
  CheckpointSave = 0x21,
  CheckpointLoad = 0x22,
  GroupParked = 0x23,
  StreamMetadata = 0x24, // v5: stream metadata and deletion (docs/semantics.md)
  SetStreamMetadata = 0x25,
  DeleteStream = 0x26,
  Scavenge = 0x27, // v5: rewrite sealed segments without removed events
  SnapshotSave = 0x28, // v5: per-stream snapshots (docs/semantics.md)
  SnapshotRead = 0x29,
  Backup = 0x2a, // v6: an online backup taken by the node (docs/operations.md)
  HelloOk = 0x81,
  Pong = 0x82,
  InfoOk = 0x83,
  AppendOk = 0x90,
  ReadOk = 0x91,
  SubscribeOk = 0x92,
  SubEvents = 0x93,
  Checkpoint = 0x94,
  UnsubscribeOk = 0x95,
  AppendMultiOk = 0x97, // v3
  AppendRefused = 0x98, // v3
  GroupOk = 0x99, // v4
  GroupListOk = 0x9a,
  GroupEvents = 0x9b,
  CheckpointOk = 0x9c,
  GroupParkedOk = 0x9d,
  StreamMetadataOk = 0x9e, // v5
  DeleteOk = 0x9f,
  ScavengeOk = 0xa0, // v5
  SnapshotSaved = 0xa1, // v5
  SnapshotOk = 0xa2, // v5
  BackupOk = 0xa3, // v6
  Error = 0xff,
}

/** Error codes (docs/protocol.md section 4); stable, new ones may appear. */
export enum Code {
  WrongExpectedRevision = 1,
  StreamNotFound = 2,
  InvalidJson = 3,
  TooLarge = 4,
  BadRequest = 5,
  WriterFailed = 6,
  NoSpace = 7,
  ShuttingDown = 8,
  Corruption = 9,
  IoError = 10,
  NotFound = 11,
  LostAtRepair = 12,
  Locked = 13,
  InvalidArgument = 14,
  Internal = 15,
  AppendConditionFailed = 16, // v3
  StreamDeleted = 17, // v5: the stream was hard-deleted (tombstone)
  Busy = 18, // v6: a backup (or a scavenge) is already running
  UnsupportedVersion = 100,
  UnknownOperation = 101,
  FrameTooLarge = 102,
  TooManyRequests = 103,
  TooManyConnections = 104,
  IdleTimeout = 105,
  UnknownSubscription = 106,
  HandshakeRequired = 107,
  TooManySubscriptions = 108,
  AlreadyExists = 109, // v4
  /** Client side only: the connection broke. */
  ConnectionLost = 200,
}

export function codeName(code: number): string {
  const n = Code[code];
  return n === undefined ? `code_${code}` : n.replace(/[A-Z]/g, (c, i) => (i ? "_" : "") + c.toLowerCase());
}

export const FLAG_DATA_JSON = 0x1;
export const FLAG_METADATA_JSON = 0x2;
export const FLAG_LOST = 0x8;

export type Expected =
  | { kind: "any" }
  | { kind: "no_stream" }
  | { kind: "stream_exists" }
  | { kind: "exact"; revision: bigint };

const EXPECTED_KIND = { any: 0, no_stream: 1, stream_exists: 2, exact: 3 } as const;

/** An event to append. Keep `id` to retry an append whose outcome is unknown. */
export interface NewEvent {
  type: string;
  data?: Uint8Array | string;
  metadata?: Uint8Array | string;
  /** Default true: the node validates `data` as JSON. */
  dataJson?: boolean;
  metadataJson?: boolean;
  /** UUID text; a fresh one when omitted (set it to make retries idempotent). */
  id?: string;
  /** Non-empty UTF-8 strings, typically `key:value`; stored sorted, once each. */
  tags?: string[];
  correlationId?: string;
  causationId?: string;
}

export interface Event {
  position: bigint;
  revision: bigint;
  timestampUs: bigint;
  flags: number;
  id: string;
  stream: string;
  type: string;
  metadata: Buffer;
  data: Buffer;
  /** Sorted, once each; empty for events without tags (and on version 1). */
  tags: string[];
  correlationId: string;
  causationId: string;
}

export interface HelloOk {
  version: number;
  maxFrame: number;
  maxInFlight: number;
  serverVersion: string;
}

export interface AppendResult {
  firstPosition: bigint;
  firstRevision: bigint;
  count: number;
  deduplicated: boolean;
}

export interface ReadPage {
  end: boolean;
  next: bigint;
  events: Event[];
  /** v2: the durable end the page was read below. */
  durableEnd: bigint;
}

/** The secondary index a readIndex or an index subscription reads (v2). */
export type IndexKind = "category" | "type" | "tag" | "correlation" | "causation";
const INDEX_KIND: Record<IndexKind, number> = { category: 0, type: 1, tag: 2, correlation: 3, causation: 4 };

export interface ErrorFrame {
  code: number;
  detail: bigint;
  message: string;
}

export class ProtocolError extends Error {}

/** One item of a query (v3): an event matches if its type is one of `types`
 * (any type if none) and its tags include all of `tags`. */
export interface QueryItem {
  types?: string[];
  tags?: string[];
}

/** One stream of a multi-stream append (v3); without events it is only checked. */
export interface StreamAppend {
  stream: string;
  events: NewEvent[];
  expected?: Expected;
}

export interface AppendMultiResult {
  firstPosition: bigint;
  count: number;
  deduplicated: boolean;
  /** Per stream in request order: its first revision (null: only checked) and count. */
  streams: Array<{ firstRevision: bigint | null; count: number }>;
}

export interface AppendRefusal {
  code: number;
  message: string;
  /** append_condition_failed: the first matching event's position. */
  conflictPosition: bigint | null;
  /** wrong_expected_revision: per stream, whether it failed and its actual revision. */
  streams: Array<{ failed: boolean; actualRevision: bigint | null }>;
}

// ---- encoding ----

class Writer {
  private parts: Buffer[] = [];
  u8(v: number): this {
    const b = Buffer.alloc(1);
    b.writeUInt8(v);
    return this.push(b);
  }
  u16(v: number): this {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(v);
    return this.push(b);
  }
  u32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    return this.push(b);
  }
  u64(v: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(v);
    return this.push(b);
  }
  bytes(v: Uint8Array | string | undefined): this {
    const b = typeof v === "string" ? Buffer.from(v, "utf8") : Buffer.from(v ?? new Uint8Array());
    return this.u32(b.length).push(b);
  }
  raw(b: Buffer): this {
    return this.push(b);
  }
  private push(b: Buffer): this {
    this.parts.push(b);
    return this;
  }
  concat(): Buffer {
    return Buffer.concat(this.parts);
  }
}

export function frame(op: Op, requestId: bigint, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(13);
  head.writeUInt32LE(FRAME_MIN_BODY + payload.length, 0);
  head.writeUInt8(op, 4);
  head.writeBigUInt64LE(requestId, 5);
  return Buffer.concat([head, payload]);
}

export function uuidBytes(id: string): Buffer {
  const hex = id.replace(/-/g, "");
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new TypeError(`not a UUID: ${id}`);
  return Buffer.from(hex, "hex");
}

export function uuidText(b: Buffer): string {
  const h = b.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function encodeHello(requestId: bigint, clientName: string, version: number = PROTOCOL_VERSION): Buffer {
  return frame(Op.Hello, requestId, new Writer().u32(HELLO_MAGIC).u16(version).bytes(clientName).concat());
}

// A tag block: u16 count, a u16 length per tag, then the tags' bytes.
function tagBlock(w: Writer, tags: string[]): void {
  const raw = tags.map((t) => Buffer.from(t, "utf8"));
  if (raw.length > 0xffff || raw.some((t) => t.length > 0xffff)) throw new RangeError("too many tags, or a tag longer than 65535 bytes");
  w.u16(raw.length);
  for (const t of raw) w.u16(t.length);
  for (const t of raw) w.raw(t);
}

function newEvents(w: Writer, events: NewEvent[], version: number): void {
  w.u32(events.length);
  for (const e of events) {
    const flags = (e.dataJson ?? true ? FLAG_DATA_JSON : 0) | (e.metadataJson ? FLAG_METADATA_JSON : 0);
    w.raw(uuidBytes(e.id ?? randomUUID())).bytes(e.type).u32(flags).bytes(e.metadata).bytes(e.data);
    if (version >= 2) {
      tagBlock(w, e.tags ?? []);
      w.bytes(e.correlationId ?? "").bytes(e.causationId ?? "");
    } else if ((e.tags ?? []).length > 0 || e.correlationId || e.causationId) {
      throw new RangeError("protocol version 1 cannot carry tags or correlation/causation ids");
    }
  }
}

function expectedFields(w: Writer, expected: Expected): void {
  w.u8(EXPECTED_KIND[expected.kind]).u64(expected.kind === "exact" ? expected.revision : 0n);
}

export function encodeAppend(requestId: bigint, stream: string, expected: Expected, events: NewEvent[], version: number = PROTOCOL_VERSION): Buffer {
  const w = new Writer().bytes(stream);
  expectedFields(w, expected);
  newEvents(w, events, version);
  return frame(Op.Append, requestId, w.concat());
}

/** A query (v3): u32 item count; per item its types, then its tags, each a u32 count and strings. */
function queryFields(w: Writer, items: QueryItem[]): void {
  w.u32(items.length);
  for (const item of items) {
    for (const strings of [item.types ?? [], item.tags ?? []]) {
      w.u32(strings.length);
      for (const s of strings) w.bytes(s);
    }
  }
}

/** append_multi (v3): the streams in order; `condition` (none: undefined) refuses the
 * append if a matching event exists after `after` (undefined: anywhere). */
export function encodeAppendMulti(requestId: bigint, streams: StreamAppend[], condition?: QueryItem[], after?: bigint): Buffer {
  const w = new Writer().u32(streams.length);
  for (const s of streams) {
    w.bytes(s.stream);
    expectedFields(w, s.expected ?? { kind: "any" });
    newEvents(w, s.events, 3);
  }
  queryFields(w, condition ?? []);
  w.u64(after ?? NONE);
  return frame(Op.AppendMulti, requestId, w.concat());
}

export function encodeReadQuery(requestId: bigint, query: QueryItem[], from: bigint, count: number, backward: boolean): Buffer {
  const w = new Writer();
  queryFields(w, query);
  return frame(Op.ReadQuery, requestId, w.u64(from).u32(count).u8(backward ? 1 : 0).concat());
}

export function encodeReadStream(requestId: bigint, stream: string, from: bigint, count: number, backward: boolean): Buffer {
  return frame(Op.ReadStream, requestId, new Writer().bytes(stream).u64(from).u32(count).u8(backward ? 1 : 0).concat());
}

export function encodeReadIndex(requestId: bigint, kind: IndexKind, value: string, from: bigint, count: number, backward: boolean): Buffer {
  return frame(Op.ReadIndex, requestId, new Writer().u8(INDEX_KIND[kind]).bytes(value).u64(from).u32(count).u8(backward ? 1 : 0).concat());
}

export function encodeSeekTime(requestId: bigint, timestampUs: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64LE(timestampUs);
  return frame(Op.SeekTime, requestId, b);
}

/** seek_time_ok: the first position written at or after the time, and the durable end. */
export function decodeSeekTimeOk(p: Buffer): { position: bigint; durableEnd: bigint } {
  const r = new Reader(p, "seek_time_ok");
  const v = { position: r.u64("position"), durableEnd: r.u64("durable_end") };
  r.done();
  return v;
}

export function encodeReadAll(requestId: bigint, from: bigint, count: number, backward: boolean): Buffer {
  return frame(Op.ReadAll, requestId, new Writer().u64(from).u32(count).u8(backward ? 1 : 0).concat());
}

export interface SubscribeOptions {
  /** A stream's name; omitted: the global log. */
  stream?: string;
  /** v2: follow one index key instead (no stream, no prefixes). */
  index?: { kind: IndexKind; value: string };
  /** v3: follow the events matching a query instead (no stream, no prefixes). */
  query?: QueryItem[];
  /** First revision/position; null: only events that become durable from now on. */
  from?: bigint | null;
  streamPrefix?: string;
  typePrefix?: string;
  checkpointInterval?: number;
}

export function encodeSubscribe(requestId: bigint, o: SubscribeOptions, version: number = PROTOCOL_VERSION): Buffer {
  const from = o.from === undefined ? 0n : o.from;
  const query = o.query ?? [];
  if (query.length > 0 && version < 3) throw new RangeError("protocol versions 1 and 2 cannot subscribe to a query");
  const w = new Writer()
      .u8(query.length > 0 ? 3 : o.index !== undefined ? 2 : o.stream === undefined ? 1 : 0)
      .bytes(o.stream ?? "")
      .u8(from === null ? 1 : 0)
      .u64(from ?? 0n)
      .bytes(o.streamPrefix ?? "")
      .bytes(o.typePrefix ?? "")
      .u32(o.checkpointInterval ?? 0)
      .u8(INDEX_KIND[o.index?.kind ?? "category"])
      .bytes(o.index?.value ?? "");
  if (version >= 3) queryFields(w, query);
  return frame(Op.Subscribe, requestId, w.concat());
}

export function encodeUnsubscribe(requestId: bigint, subscriptionId: bigint): Buffer {
  return frame(Op.Unsubscribe, requestId, new Writer().u64(subscriptionId).concat());
}

// ---- v4: consumer groups and named consumers (docs/consumer-groups.md) ----

export type GroupTarget = "stream" | "all" | "index";
export type Strategy = "round-robin" | "ordered";
export type GroupStart = "beginning" | "end" | "position" | "time";
export type NackAction = "retry" | "retry-later" | "park" | "skip";
const TARGETS: GroupTarget[] = ["stream", "all", "index"];
const STRATEGIES: Strategy[] = ["round-robin", "ordered"];
const STARTS: GroupStart[] = ["beginning", "end", "position", "time"];
const NACKS: NackAction[] = ["retry", "retry-later", "park", "skip"];
const INDEX_KINDS: IndexKind[] = ["category", "type", "tag", "correlation", "causation"];

export interface GroupSettings {
  target?: GroupTarget; // default "all"
  stream?: string;
  streamPrefix?: string;
  typePrefix?: string;
  index?: { kind: IndexKind; value: string };
  start?: GroupStart; // default "beginning"
  /** "position": a position; "time": microseconds since the epoch. */
  startValue?: bigint;
  strategy?: Strategy; // default "round-robin"
  maxInFlight?: number; // default 64
  ackTimeoutMs?: number; // default 30000
  maxRetries?: number; // default 10
  retryDelayMs?: number; // default 1000
}

export interface GroupInfo {
  kind: "group" | "named";
  name: string;
  settings: Required<Omit<GroupSettings, "index">> & { index: { kind: IndexKind; value: string } };
  checkpoint: bigint;
  durableEnd: bigint;
  lagEvents: bigint;
  lagUs: bigint;
  consumers: number;
  inFlight: bigint;
  buffered: bigint;
  parked: bigint;
  ackedTotal: bigint;
  parkedTotal: bigint;
  deliveredTotal: bigint;
}

/** An event delivered to a group member, and how many times it has been delivered (1 the first time). */
export interface Delivery {
  event: Event;
  attempt: number;
}

function settingsFields(w: Writer, s: GroupSettings): void {
  w.u8(TARGETS.indexOf(s.target ?? "all"))
    .bytes(s.stream ?? "")
    .bytes(s.streamPrefix ?? "")
    .bytes(s.typePrefix ?? "")
    .u8(INDEX_KINDS.indexOf(s.index?.kind ?? "category"))
    .bytes(s.index?.value ?? "")
    .u8(STARTS.indexOf(s.start ?? "beginning"))
    .u64(s.startValue ?? 0n)
    .u8(STRATEGIES.indexOf(s.strategy ?? "round-robin"))
    .u32(s.maxInFlight ?? 64)
    .u32(s.ackTimeoutMs ?? 30000)
    .u32(s.maxRetries ?? 10)
    .u32(s.retryDelayMs ?? 1000);
}

export function encodeGroupCreate(requestId: bigint, name: string, s: GroupSettings, update = false): Buffer {
  const w = new Writer().u8(update ? 1 : 0).bytes(name);
  settingsFields(w, s);
  return frame(Op.GroupCreate, requestId, w.concat());
}

/** group_delete, group_info, group_replay_parked, checkpoint_load. */
export function encodeGroupName(op: Op, requestId: bigint, name: string): Buffer {
  return frame(op, requestId, new Writer().bytes(name).concat());
}

export function encodeGroupJoin(requestId: bigint, name: string, maxInFlight = 0): Buffer {
  return frame(Op.GroupJoin, requestId, new Writer().bytes(name).u32(maxInFlight).concat());
}

function positions(w: Writer, ps: bigint[]): Writer {
  w.u32(ps.length);
  for (const p of ps) w.u64(p);
  return w;
}

export function encodeGroupAck(requestId: bigint, joinId: bigint, ps: bigint[]): Buffer {
  return frame(Op.GroupAck, requestId, positions(new Writer().u64(joinId), ps).concat());
}

export function encodeGroupNack(requestId: bigint, joinId: bigint, action: NackAction, reason: string, ps: bigint[]): Buffer {
  return frame(Op.GroupNack, requestId, positions(new Writer().u64(joinId).u8(NACKS.indexOf(action)).bytes(reason), ps).concat());
}

export function encodeGroupParked(requestId: bigint, name: string, from = 0n, count = 0): Buffer {
  return frame(Op.GroupParked, requestId, new Writer().bytes(name).u64(from).u32(count).concat());
}

export interface ParkedEvent {
  position: bigint;
  failures: number;
  /** Handed out again by group_replay_parked, not yet resolved. */
  replaying: boolean;
  reason: string;
}

/** A page of the parked list, and where the next page starts (null: no more). */
export function decodeGroupParkedOk(p: Buffer): { parked: ParkedEvent[]; next: bigint | null } {
  const r = new Reader(p, "group_parked_ok");
  const n = r.u32("parked_count");
  const parked: ParkedEvent[] = [];
  for (let i = 0; i < n; i++)
    parked.push({ position: r.u64("parked.position"), failures: r.u32("parked.failures"), replaying: r.u8("parked.replaying") !== 0, reason: r.string("parked.reason") });
  const next = r.u64("next");
  r.done();
  return { parked, next: next === NONE ? null : next };
}

export function encodeCheckpointSave(requestId: bigint, name: string, position: bigint): Buffer {
  return frame(Op.CheckpointSave, requestId, new Writer().bytes(name).u64(position).concat());
}

// ---- v5: stream metadata and deletion (docs/semantics.md) ----

/** A stream's metadata and deletion state. */
export interface StreamMetadata {
  /** The metadata stream's last revision: what setStreamMetadata expects next (null: never set). */
  revision: bigint | null;
  /** The metadata as last set ("{}" if never). */
  json: string;
  /** null: not set. */
  maxCount: bigint | null;
  /** Seconds; null: not set. */
  maxAge: bigint | null;
  /** From the metadata. */
  truncateBefore: bigint;
  /** From deletions. */
  deletedBefore: bigint;
  /** Soft-deleted now: reads answer stream_not_found. */
  deleted: boolean;
  /** Hard-deleted: appends and reads answer stream_deleted, for good. */
  tombstoned: boolean;
}

export interface DeleteResult {
  /** The deletion event's position in the log. */
  position: bigint;
  /** The stream's revisions below were removed (its last revision + 1, 0 if none). */
  truncateBefore: bigint;
}

/** What one scavenge run did (v5 scavenge_ok). */
export interface ScavengeResult {
  /** Sealed segments looked at. */
  segmentsChecked: bigint;
  /** Of those, rewritten without their removed events. */
  segmentsRewritten: bigint;
  eventsRemoved: bigint;
  bytesRead: bigint;
  bytesWritten: bigint;
  /** The log's size on disk before the run, and after it. */
  logBytesBefore: bigint;
  logBytesAfter: bigint;
  /** The run's duration, microseconds. */
  durationUs: bigint;
  /** The node stopped during the run (what it finished stays done). */
  cancelled: boolean;
}

export function encodeStreamMetadata(requestId: bigint, stream: string): Buffer {
  return frame(Op.StreamMetadata, requestId, new Writer().bytes(stream).concat());
}

/** `expected` is of the metadata stream's revision; `json` a JSON object. */
export function encodeSetStreamMetadata(requestId: bigint, stream: string, expected: Expected, json: string): Buffer {
  const w = new Writer().bytes(stream);
  expectedFields(w, expected);
  return frame(Op.SetStreamMetadata, requestId, w.bytes(json).concat());
}

/** `expected` is of the stream itself; `hard`: a tombstone. */
export function encodeDeleteStream(requestId: bigint, stream: string, expected: Expected, hard = false): Buffer {
  const w = new Writer().bytes(stream);
  expectedFields(w, expected);
  return frame(Op.DeleteStream, requestId, w.u8(hard ? 1 : 0).concat());
}

/** A complete backup (v6 backup_ok; docs/operations.md, "Backup and restore"). */
export interface BackupResult {
  /** The backup holds every event below this position, nothing at or above. */
  position: bigint;
  /** Files in its MANIFEST, and their sizes summed. */
  files: number;
  bytes: bigint;
  /** Of the files, hard-linked to the node's rather than copied. */
  linked: number;
  durationUs: bigint;
  /** The backup's directory on the node's machine (absolute). */
  dest: string;
  /** E.g. why link mode fell back to copying; empty if none. */
  note: string;
}

/**
 * `dest`: an absolute path on the node's machine; `bytesPerSecond`: 0n the
 * node's default budget, NONE as fast as the disk.
 */
export function encodeBackup(requestId: bigint, dest: string, link = false, bytesPerSecond = 0n): Buffer {
  return frame(Op.Backup, requestId, new Writer().bytes(dest).u8(link ? 1 : 0).u64(bytesPerSecond).concat());
}

/** An empty payload: the node runs a scavenge and answers when it is done. */
export function encodeScavenge(requestId: bigint): Buffer {
  return frame(Op.Scavenge, requestId);
}

/** A snapshot saved (v5 snapshot_saved): durable when answered. */
export interface SnapshotSaveResult {
  /** The stream revision the snapshot is of. */
  revision: bigint;
  /** The stream's snapshots now (the newest 8 are kept). */
  kept: number;
}

/** A stream read from its latest snapshot (v5 snapshot_ok): the newest snapshot at or
 * below the revision asked for, and the events after it. */
export interface SnapshotPage {
  /** false: no snapshot; then revision is 0n, type and data empty. */
  found: boolean;
  /** The snapshot is of the stream's state after this revision. */
  revision: bigint;
  type: string;
  data: Buffer;
  /** The events reach the stream's last revision. */
  end: boolean;
  /** The revision to read from next. */
  next: bigint;
  /** After the snapshot (from revision 0 if none was found). */
  events: Event[];
}

/** The stream's state after `revision`: `type` and `data` (bytes, or text sent as UTF-8)
 * are the application's. */
export function encodeSnapshotSave(requestId: bigint, stream: string, revision: bigint, type: string, data: Uint8Array | string): Buffer {
  return frame(Op.SnapshotSave, requestId, new Writer().bytes(stream).u64(revision).bytes(type).bytes(data).concat());
}

/** The newest snapshot at or below `maxRevision` (null or NONE: the newest) and up to
 * `count` events after it (0: none). */
export function encodeSnapshotRead(requestId: bigint, stream: string, maxRevision: bigint | null = null, count = 0): Buffer {
  return frame(Op.SnapshotRead, requestId, new Writer().bytes(stream).u64(maxRevision ?? NONE).u32(count).concat());
}

// ---- decoding ----

export class Reader {
  private at = 0;
  constructor(private readonly b: Buffer, private readonly what: string) {}
  private need(n: number, field: string): void {
    if (n > this.b.length - this.at) throw new ProtocolError(`${this.what}: payload ends inside ${field}`);
  }
  u8(f: string): number {
    this.need(1, f);
    return this.b.readUInt8(this.at++);
  }
  u16(f: string): number {
    this.need(2, f);
    const v = this.b.readUInt16LE(this.at);
    this.at += 2;
    return v;
  }
  u32(f: string): number {
    this.need(4, f);
    const v = this.b.readUInt32LE(this.at);
    this.at += 4;
    return v;
  }
  u64(f: string): bigint {
    this.need(8, f);
    const v = this.b.readBigUInt64LE(this.at);
    this.at += 8;
    return v;
  }
  i64(f: string): bigint {
    this.need(8, f);
    const v = this.b.readBigInt64LE(this.at);
    this.at += 8;
    return v;
  }
  bytes(f: string): Buffer {
    const n = this.u32(`${f} length`);
    this.need(n, f);
    const v = this.b.subarray(this.at, this.at + n);
    this.at += n;
    return v;
  }
  string(f: string): string {
    return this.bytes(f).toString("utf8");
  }
  tags(f: string): string[] {
    const n = this.u16(`${f} count`);
    const lengths: number[] = [];
    for (let i = 0; i < n; i++) lengths.push(this.u16(`${f} lengths`));
    return lengths.map((k) => {
      this.need(k, f);
      const v = this.b.toString("utf8", this.at, this.at + k);
      this.at += k;
      return v;
    });
  }
  uuid(f: string): string {
    this.need(16, f);
    const v = uuidText(this.b.subarray(this.at, this.at + 16));
    this.at += 16;
    return v;
  }
  done(): void {
    if (this.at !== this.b.length) throw new ProtocolError(`${this.what}: ${this.b.length - this.at} trailing bytes`);
  }
}

export function parseHeader(b: Buffer): { length: number; op: number; requestId: bigint } {
  return { length: b.readUInt32LE(0), op: b.readUInt8(4), requestId: b.readBigUInt64LE(5) };
}

export function decodeHelloOk(p: Buffer): HelloOk {
  const r = new Reader(p, "hello_ok");
  const v = { version: r.u16("version"), maxFrame: r.u32("max_frame"), maxInFlight: r.u32("max_in_flight"), serverVersion: r.string("server_version") };
  r.done();
  return v;
}

export function decodeAppendOk(p: Buffer): AppendResult {
  const r = new Reader(p, "append_ok");
  const v = { firstPosition: r.u64("first_position"), firstRevision: r.u64("first_revision"), count: r.u32("count"), deduplicated: r.u8("deduplicated") !== 0 };
  r.done();
  return v;
}

function events(r: Reader, version: number): Event[] {
  const n = r.u32("event count");
  const out: Event[] = [];
  for (let i = 0; i < n; i++) out.push(event(r, version));
  return out;
}

function event(r: Reader, version: number): Event {
  {
    const e: Event = {
      position: r.u64("position"),
      revision: r.u64("revision"),
      timestampUs: r.i64("timestamp_us"),
      flags: r.u32("flags"),
      id: r.uuid("id"),
      stream: r.string("stream"),
      type: r.string("type"),
      metadata: r.bytes("metadata"),
      data: r.bytes("data"),
      tags: [],
      correlationId: "",
      causationId: "",
    };
    if (version >= 2) {
      e.tags = r.tags("tags");
      e.correlationId = r.string("correlation_id");
      e.causationId = r.string("causation_id");
    }
    return e;
  }
}

function enumOf<T>(values: T[], v: number, field: string): T {
  if (v >= values.length) throw new ProtocolError(`${field}: invalid value ${v}`);
  return values[v];
}

export function decodeGroupListOk(p: Buffer): GroupInfo[] {
  const r = new Reader(p, "group_list_ok");
  const n = r.u32("group_count");
  const out: GroupInfo[] = [];
  for (let i = 0; i < n; i++) {
    const kind = r.u8("group.kind") === 1 ? "named" : "group";
    const name = r.string("group.name");
    const settings = {
      target: enumOf(TARGETS, r.u8("settings.target"), "settings.target"),
      stream: r.string("settings.stream"),
      streamPrefix: r.string("settings.stream_prefix"),
      typePrefix: r.string("settings.type_prefix"),
      index: { kind: enumOf(INDEX_KINDS, r.u8("settings.index_kind"), "settings.index_kind"), value: r.string("settings.index_value") },
      start: enumOf(STARTS, r.u8("settings.start"), "settings.start"),
      startValue: r.u64("settings.start_value"),
      strategy: enumOf(STRATEGIES, r.u8("settings.strategy"), "settings.strategy"),
      maxInFlight: r.u32("settings.max_in_flight"),
      ackTimeoutMs: r.u32("settings.ack_timeout_ms"),
      maxRetries: r.u32("settings.max_retries"),
      retryDelayMs: r.u32("settings.retry_delay_ms"),
    };
    out.push({
      kind,
      name,
      settings,
      checkpoint: r.u64("group.checkpoint"),
      durableEnd: r.u64("group.durable_end"),
      lagEvents: r.u64("group.lag_events"),
      lagUs: r.i64("group.lag_us"),
      consumers: r.u32("group.consumers"),
      inFlight: r.u64("group.in_flight"),
      buffered: r.u64("group.buffered"),
      parked: r.u64("group.parked"),
      ackedTotal: r.u64("group.acked_total"),
      parkedTotal: r.u64("group.parked_total"),
      deliveredTotal: r.u64("group.delivered_total"),
    });
  }
  r.done();
  return out;
}

export function decodeGroupEvents(p: Buffer, version: number = PROTOCOL_VERSION): Delivery[] {
  const r = new Reader(p, "group_events");
  const n = r.u32("count");
  const out: Delivery[] = [];
  for (let i = 0; i < n; i++) {
    const attempt = r.u32("attempt");
    out.push({ event: event(r, version), attempt });
  }
  r.done();
  return out;
}

/** A named consumer's checkpoint, or null if none is stored. */
export function decodeCheckpointOk(p: Buffer): bigint | null {
  const r = new Reader(p, "checkpoint_ok");
  const found = r.u8("found") !== 0;
  const position = r.u64("position");
  r.done();
  return found ? position : null;
}

export function decodeReadOk(p: Buffer, version: number = PROTOCOL_VERSION): ReadPage {
  const r = new Reader(p, "read_ok");
  const end = r.u8("end") !== 0;
  const next = r.u64("next");
  const durableEnd = version >= 2 ? r.u64("durable_end") : 0n;
  const evs = events(r, version);
  r.done();
  return { end, next, events: evs, durableEnd };
}

export function decodeSubEvents(p: Buffer, version: number = PROTOCOL_VERSION): Event[] {
  const r = new Reader(p, "sub_events");
  const evs = events(r, version);
  r.done();
  return evs;
}

export function decodeStreamMetadataOk(p: Buffer): StreamMetadata {
  const r = new Reader(p, "stream_metadata_ok");
  const orNull = (v: bigint) => (v === NONE ? null : v);
  const v: StreamMetadata = {
    revision: orNull(r.u64("revision")),
    json: r.string("json"),
    maxCount: orNull(r.u64("max_count")),
    maxAge: orNull(r.u64("max_age")),
    truncateBefore: r.u64("truncate_before"),
    deletedBefore: r.u64("deleted_before"),
    deleted: r.u8("deleted") !== 0,
    tombstoned: r.u8("tombstoned") !== 0,
  };
  r.done();
  return v;
}

export function decodeScavengeOk(p: Buffer): ScavengeResult {
  const r = new Reader(p, "scavenge_ok");
  const v: ScavengeResult = {
    segmentsChecked: r.u64("segments_checked"),
    segmentsRewritten: r.u64("segments_rewritten"),
    eventsRemoved: r.u64("events_removed"),
    bytesRead: r.u64("bytes_read"),
    bytesWritten: r.u64("bytes_written"),
    logBytesBefore: r.u64("log_bytes_before"),
    logBytesAfter: r.u64("log_bytes_after"),
    durationUs: r.u64("duration_us"),
    cancelled: r.u8("cancelled") !== 0,
  };
  r.done();
  return v;
}

export function decodeBackupOk(p: Buffer): BackupResult {
  const r = new Reader(p, "backup_ok");
  const v: BackupResult = {
    position: r.u64("position"),
    files: r.u32("files"),
    bytes: r.u64("bytes"),
    linked: r.u32("linked"),
    durationUs: r.u64("duration_us"),
    dest: r.string("dest"),
    note: r.string("note"),
  };
  r.done();
  return v;
}

export function decodeSnapshotSaved(p: Buffer): SnapshotSaveResult {
  const r = new Reader(p, "snapshot_saved");
  const v = { revision: r.u64("revision"), kept: r.u32("kept") };
  r.done();
  return v;
}

/** The events are encoded as in read_ok for the connection's version. */
export function decodeSnapshotOk(p: Buffer, version: number = PROTOCOL_VERSION): SnapshotPage {
  const r = new Reader(p, "snapshot_ok");
  const found = r.u8("found") !== 0;
  const revision = r.u64("revision");
  const type = r.string("type");
  const data = r.bytes("data");
  const end = r.u8("end") !== 0;
  const next = r.u64("next");
  const evs = events(r, version);
  r.done();
  return { found, revision, type, data, end, next, events: evs };
}

export function decodeDeleteOk(p: Buffer): DeleteResult {
  const r = new Reader(p, "delete_ok");
  const v = { position: r.u64("position"), truncateBefore: r.u64("truncate_before") };
  r.done();
  return v;
}

export function decodeU64(p: Buffer, what: string): bigint {
  const r = new Reader(p, what);
  const v = r.u64(what);
  r.done();
  return v;
}

export function decodeAppendMultiOk(p: Buffer): AppendMultiResult {
  const r = new Reader(p, "append_multi_ok");
  const firstPosition = r.u64("first_position");
  const count = r.u32("count");
  const deduplicated = r.u8("deduplicated") !== 0;
  const streams: AppendMultiResult["streams"] = [];
  for (let n = r.u32("stream count"); n > 0; --n) {
    const rev = r.u64("first_revision");
    streams.push({ firstRevision: rev === NONE ? null : rev, count: r.u32("count") });
  }
  r.done();
  return { firstPosition, count, deduplicated, streams };
}

export function decodeAppendRefused(p: Buffer): AppendRefusal {
  const r = new Reader(p, "append_refused");
  const code = r.u16("code");
  const message = r.string("message");
  const conflict = r.u64("conflict_position");
  const streams: AppendRefusal["streams"] = [];
  for (let n = r.u32("stream count"); n > 0; --n) {
    const failed = r.u8("failed") !== 0;
    const actual = r.u64("actual_revision");
    streams.push({ failed, actualRevision: actual === NONE ? null : actual });
  }
  r.done();
  return { code, message, conflictPosition: conflict === NONE ? null : conflict, streams };
}

export function decodeError(p: Buffer): ErrorFrame {
  const r = new Reader(p, "error");
  const v = { code: r.u16("code"), detail: r.u64("detail"), message: r.string("message") };
  r.done();
  return v;
}

const INFO_FIELDS: Array<[string, "s" | "u16" | "u32" | "u64"]> = [
  ["serverVersion", "s"], ["protocolVersion", "u16"], ["durableEnd", "u64"], ["segments", "u64"],
  ["maxStreamName", "u64"], ["maxEventType", "u64"], ["maxEventSize", "u64"], ["maxAppendSize", "u64"],
  ["maxAppendEvents", "u64"], ["maxFrame", "u32"], ["maxInFlight", "u32"], ["maxConnections", "u32"],
  ["connections", "u32"], ["indexMemtableEntries", "u64"], ["indexFiles", "u64"], ["indexedThrough", "u64"],
];
const INFO_FIELDS_V2: Array<[string, "u64"]> = [["maxTags", "u64"], ["maxTagSize", "u64"], ["maxCorrelationId", "u64"]];
const INFO_FIELDS_V3: Array<[string, "u64"]> = [["maxAppendStreams", "u64"], ["maxQueryItems", "u64"]];

export function decodeInfoOk(p: Buffer, version: number = PROTOCOL_VERSION): Record<string, string | number | bigint> {
  const r = new Reader(p, "info_ok");
  const out: Record<string, string | number | bigint> = {};
  const fields = [...INFO_FIELDS, ...(version >= 2 ? INFO_FIELDS_V2 : []), ...(version >= 3 ? INFO_FIELDS_V3 : [])];
  for (const [name, kind] of fields) out[name] = kind === "s" ? r.string(name) : r[kind](name);
  r.done();
  return out;
}
