// A client for annald over one TCP connection (docs/protocol.md, version 5):
// any number of requests in flight up to the node's max_in_flight, responses
// matched by request id, subscriptions as async iterators.

import { randomUUID } from "node:crypto";
import * as net from "node:net";

import * as p from "./protocol.js";
import { AppendResult, Code, Event, Expected, HelloOk, NewEvent, Op, ReadPage, SubscribeOptions } from "./protocol.js";

/** An error the node answered, or CONNECTION_LOST for a broken connection. */
export class AnnalError extends Error {
  /** `detail` is undefined when the node sent "none". */
  constructor(readonly code: number, message: string, readonly detail?: bigint) {
    super(`${p.codeName(code)} (${code}): ${message}`);
    this.name = "AnnalError";
  }
  get codeName(): string {
    return p.codeName(this.code);
  }
}

export class WrongExpectedRevision extends AnnalError {
  /** The stream's last revision; undefined if the stream has no event. */
  get actualRevision(): bigint | undefined {
    return this.detail;
  }
}

export class StreamNotFound extends AnnalError {}

/** The stream was hard-deleted (a tombstone): never written or read again. */
export class StreamDeleted extends AnnalError {}

/** append_multi refused by an expectation (code 1: `streams` says which failed, with
 * their actual revisions) or by its condition (code 16: `conflictPosition`). Nothing
 * was written. */
export class AppendRefused extends AnnalError {
  readonly conflictPosition: bigint | null;
  readonly streams: p.AppendRefusal["streams"];
  constructor(r: p.AppendRefusal) {
    super(r.code, r.message, r.conflictPosition ?? undefined);
    this.conflictPosition = r.conflictPosition;
    this.streams = r.streams;
  }
}

export class ConnectionLost extends AnnalError {
  constructor(message: string) {
    super(Code.ConnectionLost, message);
  }
}

function toError(e: p.ErrorFrame): AnnalError {
  const detail = e.detail === p.NONE ? undefined : e.detail;
  if (e.code === Code.WrongExpectedRevision) return new WrongExpectedRevision(e.code, e.message, detail);
  if (e.code === Code.StreamNotFound) return new StreamNotFound(e.code, e.message, detail);
  if (e.code === Code.StreamDeleted) return new StreamDeleted(e.code, e.message, detail);
  return new AnnalError(e.code, e.message, detail);
}

/** A filtered subscription's checkpoint: every position below it was scanned. */
export interface Checkpoint {
  checkpoint: bigint;
}

type Item = Event | Checkpoint;

/** `for await (const item of sub)`: events in log order, then live; checkpoints for filtered ones. */
export class Subscription<T = Item> implements AsyncIterable<T> {
  start = 0n;
  private items: T[] = [];
  private waiting: ((v: void) => void) | null = null;
  private ended: AnnalError | null = null;
  private done = false;

  constructor(protected readonly client: Client, readonly id: bigint) {}

  /** @internal */
  push(items: T[]): void {
    this.items.push(...items);
    this.wake();
  }
  /** @internal */
  end(err: AnnalError | null): void {
    if (this.done) return;
    this.done = true;
    this.ended = err;
    this.wake();
  }
  private wake(): void {
    const w = this.waiting;
    this.waiting = null;
    if (w) w();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      if (this.items.length > 0) {
        yield this.items.shift() as T;
        continue;
      }
      if (this.done) {
        if (this.ended) throw this.ended;
        return;
      }
      await new Promise<void>((resolve) => (this.waiting = resolve));
    }
  }

  async unsubscribe(): Promise<void> {
    await this.client.unsubscribe(this);
  }
}

/**
 * One consumer's membership of a consumer group (v4, docs/consumer-groups.md):
 * `for await (const d of member)` yields deliveries (the event and its
 * attempt); `ack` / `nack` resolve them by position; `leave()` (or closing
 * the client) gives back what it holds.
 */
export class GroupMember extends Subscription<p.Delivery> {
  /** One-way: the node answers only if it cannot apply it. */
  ack(positions: bigint[]): void {
    this.client.sendOneway((id) => p.encodeGroupAck(id, this.id, positions));
  }
  nack(positions: bigint[], action: p.NackAction = "retry", reason = ""): void {
    this.client.sendOneway((id) => p.encodeGroupNack(id, this.id, action, reason, positions));
  }
  async leave(): Promise<void> {
    await this.unsubscribe();
  }
}

interface Pending {
  resolve: (v: { op: number; payload: Buffer }) => void;
  reject: (e: Error) => void;
}

export interface ConnectOptions {
  host?: string;
  port?: number;
  clientName?: string;
  /** Milliseconds for the handshake and every request but scavenge (0: none). */
  timeoutMs?: number;
  /**
   * Milliseconds (0 = off): when the connection breaks or the node answers
   * shutting_down, appends and reads reconnect and send the same request
   * again (same event ids: an append written before the break is answered
   * deduplicated, not written twice) for up to this long; so do snapshot
   * saves (a resent save replaces the first). Subscriptions end
   * with ConnectionLost; resume them from a checkpoint.
   */
  retryForMs?: number;
}

export class Client {
  private nextId = 2n; // 1 was the hello
  private pending = new Map<bigint, Pending>();
  private subs = new Map<bigint, Subscription<any>>(); // eslint-disable-line @typescript-eslint/no-explicit-any
  private buf: Buffer = Buffer.alloc(0);
  private closed: AnnalError | null = null;
  private inFlight = 0;
  private windowWaiters: Array<() => void> = [];

  private socket!: net.Socket;
  hello!: HelloOk;
  private userClosed = false;
  private reconnecting: Promise<void> | null = null;

  private constructor(private readonly options: ConnectOptions, readonly timeoutMs: number) {}

  /** Connects and performs the handshake (`client.hello` holds the node's limits). */
  static async connect(o: ConnectOptions = {}): Promise<Client> {
    const c = new Client(o, o.timeoutMs ?? 30000);
    const { socket, hello } = await Client.open(o, c.timeoutMs);
    c.attach(socket, hello);
    return c;
  }

  private attach(socket: net.Socket, hello: HelloOk): void {
    this.socket = socket;
    this.hello = hello;
    this.buf = Buffer.alloc(0);
    this.closed = null;
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", (e: Error) => this.failAll(new ConnectionLost(`connection lost: ${e.message}`)));
    socket.on("close", () => this.failAll(new ConnectionLost("connection closed")));
  }

  private static async open(o: ConnectOptions, timeoutMs: number): Promise<{ socket: net.Socket; hello: HelloOk }> {
    const socket = net.connect({ host: o.host ?? "127.0.0.1", port: o.port ?? 7411 });
    socket.setNoDelay(true);
    const hello = await new Promise<HelloOk>((resolve, reject) => {
      let buf = Buffer.alloc(0);
      const timer = timeoutMs > 0 ? setTimeout(() => fail(new ConnectionLost("handshake timed out")), timeoutMs) : null;
      const fail = (e: Error) => {
        cleanup();
        socket.destroy();
        reject(e);
      };
      const onData = (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        if (buf.length < 13) return;
        const h = p.parseHeader(buf);
        if (buf.length < 4 + h.length) return;
        cleanup();
        const payload = buf.subarray(13, 4 + h.length);
        if (buf.length > 4 + h.length) socket.unshift(buf.subarray(4 + h.length));
        try {
          if (h.op === Op.Error) throw toError(p.decodeError(payload));
          if (h.op !== Op.HelloOk) throw new p.ProtocolError(`expected hello_ok, got op ${h.op}`);
          resolve(p.decodeHelloOk(payload));
        } catch (e) {
          socket.destroy();
          reject(e);
        }
      };
      const onError = (e: Error) => fail(new ConnectionLost(`cannot connect: ${e.message}`));
      const onClose = () => fail(new ConnectionLost("the node closed the connection during the handshake"));
      const cleanup = () => {
        if (timer) clearTimeout(timer);
        socket.off("data", onData).off("error", onError).off("close", onClose);
      };
      socket.on("data", onData).on("error", onError).on("close", onClose);
      socket.write(p.encodeHello(1n, o.clientName ?? "annal-typescript"));
    });
    return { socket, hello };
  }

  /** Closes the connection; pending requests fail with ConnectionLost. */
  close(): void {
    this.userClosed = true;
    this.socket.destroy();
    this.failAll(new ConnectionLost("the client closed the connection"));
  }

  // ---- operations ----

  /** Appends atomically; resolves once durable. A retry with the same event ids is deduplicated. */
  async append(stream: string, events: NewEvent[], expected: Expected = { kind: "any" }): Promise<AppendResult> {
    // Ids fixed once, so that a retry sends the very same events.
    const fixed = events.map((e) => ({ ...e, id: e.id ?? randomUUID() }));
    const { payload } = await this.retrying(() => {
      const id = this.nextId++;
      return this.call(id, p.encodeAppend(id, stream, expected, fixed), true);
    });
    return p.decodeAppendOk(payload);
  }

  /** Appends to several streams at once, all or nothing, each with its own expectation
   * (a stream without events is only checked). `condition` (a query) refuses the append
   * if a matching event exists after `after` (undefined: anywhere): throws AppendRefused.
   * A retry with the same event ids is deduplicated. */
  async appendMulti(streams: p.StreamAppend[], condition?: p.QueryItem[], after?: bigint): Promise<p.AppendMultiResult> {
    const fixed = streams.map((s) => ({ ...s, events: s.events.map((e) => ({ ...e, id: e.id ?? randomUUID() })) }));
    const { op, payload } = await this.retrying(() => {
      const id = this.nextId++;
      return this.call(id, p.encodeAppendMulti(id, fixed, condition, after), true);
    });
    if (op === Op.AppendRefused) throw new AppendRefused(p.decodeAppendRefused(payload));
    return p.decodeAppendMultiOk(payload);
  }

  /** One page of the events matching `query` (items combined with OR) from position `from`.
   * `page.durableEnd - 1n` is the head to pass as `after` (forward: the last page's). */
  async readQuery(query: p.QueryItem[], from = 0n, count = 0, backward = false): Promise<ReadPage> {
    const { payload } = await this.retrying(() => {
      const id = this.nextId++;
      return this.call(id, p.encodeReadQuery(id, query, from, count, backward), true);
    });
    return p.decodeReadOk(payload);
  }

  /** One page of `stream` from revision `from` (`NONE` backward = from the last event). */
  async readStream(stream: string, from = 0n, count = 0, backward = false): Promise<ReadPage> {
    const { payload } = await this.retrying(() => {
      const id = this.nextId++;
      return this.call(id, p.encodeReadStream(id, stream, from, count, backward), true);
    });
    return p.decodeReadOk(payload);
  }

  /** One page of the global log from position `from`. */
  async readAll(from = 0n, count = 0, backward = false): Promise<ReadPage> {
    const { payload } = await this.retrying(() => {
      const id = this.nextId++;
      return this.call(id, p.encodeReadAll(id, from, count, backward), true);
    });
    return p.decodeReadOk(payload);
  }

  /** One page of a category, event type, tag, correlation or causation id's events, in log order. */
  async readIndex(kind: p.IndexKind, value: string, from = 0n, count = 0, backward = false): Promise<ReadPage> {
    const { payload } = await this.retrying(() => {
      const id = this.nextId++;
      return this.call(id, p.encodeReadIndex(id, kind, value, from, count, backward), true);
    });
    return p.decodeReadOk(payload);
  }

  /** The first position written at or after `timestampUs` (µs since the epoch); the durable end if none. */
  async seekTime(timestampUs: bigint): Promise<bigint> {
    const { payload } = await this.retrying(() => {
      const id = this.nextId++;
      return this.call(id, p.encodeSeekTime(id, timestampUs), true);
    });
    return p.decodeSeekTimeOk(payload).position;
  }

  /** Every event of one index key from `from` to the current end. */
  async *iterIndex(kind: p.IndexKind, value: string, from = 0n, backward = false): AsyncGenerator<Event> {
    for (;;) {
      const page = await this.readIndex(kind, value, from, 0, backward);
      yield* page.events;
      if (page.end) return;
      from = page.next;
    }
  }

  /** Every event of `stream` from `from` to its current end, page by page. */
  async *iterStream(stream: string, from = 0n, backward = false): AsyncGenerator<Event> {
    for (;;) {
      const page = await this.readStream(stream, from, 0, backward);
      yield* page.events;
      if (page.end) return;
      from = page.next;
    }
  }

  /** Every event of the global log from `from` to the current end. */
  async *iterAll(from = 0n, backward = false): AsyncGenerator<Event> {
    for (;;) {
      const page = await this.readAll(from, 0, backward);
      yield* page.events;
      if (page.end) return;
      from = page.next;
    }
  }

  /** Catch-up then live, each event once, from `from` (default 0; null: only new events). */
  async subscribe(o: SubscribeOptions = {}): Promise<Subscription> {
    const id = this.nextId++;
    const sub = new Subscription(this, id);
    this.subs.set(id, sub);
    try {
      const { payload } = await this.call(id, p.encodeSubscribe(id, o), false);
      sub.start = p.decodeU64(payload, "subscribe_ok");
      return sub;
    } catch (e) {
      this.subs.delete(id);
      throw e;
    }
  }

  // ---- consumer groups and named consumers (v4) ----

  private async groupCall(build: (id: bigint) => Buffer): Promise<Buffer> {
    const id = this.nextId++;
    return (await this.call(id, build(id), false)).payload;
  }

  /** Creates a group; AnnalError code AlreadyExists if the name is taken. */
  async groupCreate(name: string, settings: p.GroupSettings = {}): Promise<void> {
    await this.groupCall((id) => p.encodeGroupCreate(id, name, settings));
  }

  /** New settings for a group (its target and strategy cannot change). */
  async groupUpdate(name: string, settings: p.GroupSettings): Promise<void> {
    await this.groupCall((id) => p.encodeGroupCreate(id, name, settings, true));
  }

  /** Deletes a group, or else a named consumer, of that name. */
  async groupDelete(name: string): Promise<void> {
    await this.groupCall((id) => p.encodeGroupName(Op.GroupDelete, id, name));
  }

  async groupList(): Promise<p.GroupInfo[]> {
    return p.decodeGroupListOk(await this.groupCall((id) => p.frame(Op.GroupList, id)));
  }

  async groupInfo(name: string): Promise<p.GroupInfo> {
    const list = p.decodeGroupListOk(await this.groupCall((id) => p.encodeGroupName(Op.GroupInfo, id, name)));
    if (list.length !== 1) throw new p.ProtocolError(`group_info answered ${list.length} groups`);
    return list[0];
  }

  /** The group's parked list (every page). */
  async groupParked(name: string): Promise<p.ParkedEvent[]> {
    const out: p.ParkedEvent[] = [];
    let from: bigint | null = 0n;
    while (from !== null) {
      const at: bigint = from;
      const page = p.decodeGroupParkedOk(await this.groupCall((id) => p.encodeGroupParked(id, name, at)));
      out.push(...page.parked);
      from = page.next;
    }
    return out;
  }

  /** Hands the group's parked events out again; how many. */
  async groupReplayParked(name: string): Promise<bigint> {
    return p.decodeU64(await this.groupCall((id) => p.encodeGroupName(Op.GroupReplayParked, id, name)), "group_ok");
  }

  /** Joins a group as one consumer (maxInFlight 0: the group's setting). */
  async groupJoin(name: string, maxInFlight = 0): Promise<GroupMember> {
    const id = this.nextId++;
    const member = new GroupMember(this, id);
    this.subs.set(id, member);
    try {
      const { payload } = await this.call(id, p.encodeGroupJoin(id, name, maxInFlight), false);
      member.start = p.decodeU64(payload, "subscribe_ok");
      return member;
    } catch (e) {
      this.subs.delete(id);
      throw e;
    }
  }

  /** Stores a named consumer's checkpoint durably. */
  async checkpointSave(name: string, position: bigint): Promise<void> {
    await this.groupCall((id) => p.encodeCheckpointSave(id, name, position));
  }

  /** A named consumer's checkpoint, or null. */
  async checkpointLoad(name: string): Promise<bigint | null> {
    return p.decodeCheckpointOk(await this.groupCall((id) => p.encodeGroupName(Op.CheckpointLoad, id, name)));
  }

  // ---- stream metadata and deletion (v5, docs/semantics.md) ----

  /**
   * The stream's metadata and deletion state: `revision` of its metadata
   * stream (what setStreamMetadata expects next; null: never set), `json` as
   * last set ("{}" if never), `maxCount` and `maxAge` (seconds; null when
   * unset), `truncateBefore`, `deletedBefore` (from deletions), `deleted`
   * (soft-deleted now) and `tombstoned` (hard-deleted). Retried as reads are.
   */
  async streamMetadata(stream: string): Promise<p.StreamMetadata> {
    const { payload } = await this.retrying(() => {
      const id = this.nextId++;
      return this.call(id, p.encodeStreamMetadata(id, stream), true);
    });
    return p.decodeStreamMetadataOk(payload);
  }

  /**
   * Sets the stream's metadata, `json` a JSON object: its `max_count`,
   * `max_age` (seconds) and `truncate_before` (each a non-negative integer or
   * null) are rules the node applies to every read; other keys are the
   * application's. `expected` is of the metadata stream
   * (`streamMetadata(...).revision`): a conflict throws WrongExpectedRevision
   * with the metadata stream's actual revision. Resolves to the metadata
   * event's append result; StreamDeleted if the stream is tombstoned. Not
   * retried once sent (nothing would recognise the retry).
   */
  async setStreamMetadata(stream: string, expected: Expected, json: string): Promise<AppendResult> {
    return p.decodeAppendOk(await this.sendOnce((id) => p.encodeSetStreamMetadata(id, stream, expected, json)));
  }

  /**
   * Deletes `stream` (`expected` is of the stream itself, as for append).
   * Soft (default): the stream reads as not found and a later append
   * recreates it, continuing its revisions (StreamNotFound if it has no
   * visible event). `hard`: a tombstone; every later append or read of it
   * throws StreamDeleted. Resolves to `position` (the deletion's event) and
   * `truncateBefore` (last revision + 1). Not retried once sent.
   */
  async deleteStream(stream: string, expected: Expected, hard = false): Promise<p.DeleteResult> {
    return p.decodeDeleteOk(await this.sendOnce((id) => p.encodeDeleteStream(id, stream, expected, hard)));
  }

  /**
   * Runs a scavenge on the node (sealed log segments rewritten without the
   * events that stream metadata and deletion removed) and resolves to its report
   * when the run is done: `segmentsChecked`, `segmentsRewritten`,
   * `eventsRemoved`, `bytesRead`, `bytesWritten`, `logBytesBefore`,
   * `logBytesAfter`, `durationUs` (all `bigint`) and `cancelled` (the node
   * stopped meanwhile; what it finished stays done). The node runs one at a
   * time: a request made during a run is answered by the next one.
   *
   * A run is throttled by the node (`--scavenge-mb-per-s`) and can take
   * minutes or hours, so the connection's `timeoutMs` does not apply:
   * `timeoutMs` bounds this call alone, 0 (default) waits for as long as the
   * run takes. A timeout (ConnectionLost code, "timed out") does not stop
   * the run. Never resent: a broken connection throws ConnectionLost (the
   * run goes on); a node that stopped before the run began answers
   * shutting_down (an AnnalError).
   */
  async scavenge(timeoutMs = 0): Promise<p.ScavengeResult> {
    return p.decodeScavengeOk(await this.sendOnce((id) => p.encodeScavenge(id), timeoutMs));
  }

  /**
   * Has the node take a consistent backup of its data directory into `dest`
   * while appends go on (docs/operations.md, "Backup and restore") and
   * resolves when it is complete: `{position, files, bytes, linked,
   * durationUs, dest, note}`; every event below `position` is in it.
   *
   * `dest` is an absolute path on the node's machine that must not exist or
   * be an empty directory, outside the data directory (an AnnalError with
   * code InvalidArgument or AlreadyExists otherwise). `link` hard-links the
   * immutable files (same file system; the node copies, and says so in
   * `note`, when it cannot). `mbPerS` is the read budget in MiB/s: undefined
   * the node's `--backup-mb-per-s`, 0 as fast as the disk. One backup at a
   * time, none during a scavenge (code Busy). Like scavenge, the
   * connection's `timeoutMs` does not apply (`timeoutMs` bounds this call
   * alone and does not stop the backup), and it is never resent.
   */
  async backup(dest: string, opts: { link?: boolean; mbPerS?: number; timeoutMs?: number } = {}): Promise<p.BackupResult> {
    const bps = opts.mbPerS === undefined ? 0n : opts.mbPerS === 0 ? p.NONE : BigInt(Math.round(opts.mbPerS * 1048576));
    return p.decodeBackupOk(await this.sendOnce((id) => p.encodeBackup(id, dest, opts.link ?? false, bps), opts.timeoutMs ?? 0));
  }

  // ---- snapshots (v5, docs/semantics.md "Snapshots") ----

  /**
   * Saves the application's state of `stream` after `revision` (`type` and
   * `data` are the application's; a string is sent as UTF-8) and resolves once
   * it is durable: `{revision, kept}`, `kept` the stream's snapshots now (the
   * node keeps the newest 8). `revision` must be a revision of the stream (at
   * most its last, at least its last deletion): else an AnnalError with code
   * BadRequest; StreamNotFound for a stream without visible events,
   * StreamDeleted for a tombstoned one. A save at the same revision replaces
   * the earlier one, so it is retried as reads are.
   */
  async snapshotSave(stream: string, revision: bigint, type: string, data: Uint8Array | string): Promise<p.SnapshotSaveResult> {
    const { payload } = await this.retrying(() => {
      const id = this.nextId++;
      return this.call(id, p.encodeSnapshotSave(id, stream, revision, type, data), true);
    });
    return p.decodeSnapshotSaved(payload);
  }

  /**
   * A stream read from its latest snapshot, in one request: the newest
   * snapshot at or below `maxRevision` (undefined, null or NONE: the newest)
   * and up to `count` of the stream's events after it (0: none; the node caps
   * a page as a read's). Resolves to `found` (false: no such snapshot, and
   * the events start at revision 0), `revision`, `type`, `data` (a Buffer),
   * `events`, `next` (the revision to continue from with readStream) and `end`
   * (the events reached the stream's last revision). StreamNotFound for a
   * stream without visible events, StreamDeleted for a tombstoned one.
   */
  async snapshotRead(stream: string, maxRevision: bigint | null = null, count = 0): Promise<p.SnapshotPage> {
    const { payload } = await this.retrying(() => {
      const id = this.nextId++;
      return this.call(id, p.encodeSnapshotRead(id, stream, maxRevision, count), true);
    });
    return p.decodeSnapshotOk(payload);
  }

  /** A counted request whose retry the node could not recognise (setStreamMetadata,
   * deleteStream) or should not run twice (scavenge): a connection that broke before it
   * is reconnected first (with retryForMs), but once sent it is never sent again. */
  private async sendOnce(build: (id: bigint) => Buffer, timeoutMs = this.timeoutMs): Promise<Buffer> {
    if (this.closed && (this.options.retryForMs ?? 0) > 0 && !this.userClosed) await this.reconnect();
    const id = this.nextId++;
    return (await this.call(id, build(id), true, timeoutMs)).payload;
  }

  /** @internal A request the node answers only when it is wrong (group_ack, group_nack). */
  sendOneway(build: (id: bigint) => Buffer): void {
    if (this.closed) throw this.closed;
    const id = this.nextId++;
    this.socket.write(build(id));
  }

  async info(): Promise<Record<string, string | number | bigint>> {
    const id = this.nextId++;
    const { payload } = await this.call(id, p.frame(Op.Info, id), false);
    return p.decodeInfoOk(payload);
  }

  async ping(): Promise<void> {
    const id = this.nextId++;
    await this.call(id, p.frame(Op.Ping, id), false);
  }

  /** @internal */
  async unsubscribe(sub: Subscription<unknown>): Promise<void> {
    if (!this.subs.has(sub.id)) return;
    const id = this.nextId++;
    await this.call(id, p.encodeUnsubscribe(id, sub.id), false);
    this.subs.delete(sub.id);
    sub.end(null);
  }

  // ---- internals ----

  /** Runs one request; within retryForMs, a broken connection or shutting_down reconnects and runs it again. */
  private async retrying(once: () => Promise<{ op: number; payload: Buffer }>): Promise<{ op: number; payload: Buffer }> {
    const retryFor = this.options.retryForMs ?? 0;
    const deadline = Date.now() + retryFor;
    let delay = 50;
    for (;;) {
      try {
        if (this.closed && retryFor > 0 && !this.userClosed) await this.reconnect();
        return await once();
      } catch (e) {
        const code = e instanceof AnnalError ? e.code : Code.ConnectionLost; // a refused connect
        const retryable = code === Code.ConnectionLost || code === Code.ShuttingDown;
        if (!retryable || this.userClosed || retryFor <= 0 || Date.now() + delay > deadline) throw e;
        if (code === Code.ShuttingDown) this.failAll(new ConnectionLost("the node is shutting down"));
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 1000);
    }
  }

  private async reconnect(): Promise<void> {
    if (!this.reconnecting) {
      this.reconnecting = (async () => {
        try {
          if (!this.closed) return; // another request reconnected meanwhile
          this.socket.removeAllListeners().destroy();
          const { socket, hello } = await Client.open(this.options, this.timeoutMs);
          this.attach(socket, hello);
        } finally {
          this.reconnecting = null;
        }
      })();
    }
    return this.reconnecting;
  }

  /** Sends one request and waits for its response, for at most `timeoutMs` (0: no limit;
   * by default the connection's). */
  private async call(id: bigint, data: Buffer, counted: boolean, timeoutMs = this.timeoutMs): Promise<{ op: number; payload: Buffer }> {
    if (this.closed) throw this.closed;
    if (counted) await this.acquire();
    try {
      if (this.closed) throw this.closed; // the connection broke while this waited for room
      const reply = await new Promise<{ op: number; payload: Buffer }>((resolve, reject) => {
        let timer: NodeJS.Timeout | null = null;
        const done = () => {
          if (timer) clearTimeout(timer);
          this.pending.delete(id);
        };
        this.pending.set(id, {
          resolve: (v) => (done(), resolve(v)),
          reject: (e) => (done(), reject(e)),
        });
        if (timeoutMs > 0)
          timer = setTimeout(() => {
            this.pending.delete(id);
            reject(new AnnalError(Code.ConnectionLost, `request ${id} timed out after ${timeoutMs} ms`));
          }, timeoutMs);
        this.socket.write(data);
      });
      if (reply.op === Op.Error) throw toError(p.decodeError(reply.payload));
      return reply;
    } finally {
      if (counted) this.release();
    }
  }

  private acquire(): Promise<void> {
    if (this.inFlight < Math.max(1, this.hello.maxInFlight)) {
      this.inFlight++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.windowWaiters.push(() => (this.inFlight++, resolve())));
  }

  private release(): void {
    this.inFlight--;
    const next = this.windowWaiters.shift();
    if (next) next();
  }

  private onData(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    try {
      while (this.buf.length >= 13) {
        const h = p.parseHeader(this.buf);
        if (h.length < p.FRAME_MIN_BODY) throw new p.ProtocolError(`frame length ${h.length} below ${p.FRAME_MIN_BODY}`);
        if (this.buf.length < 4 + h.length) break;
        const payload = this.buf.subarray(13, 4 + h.length);
        this.buf = this.buf.subarray(4 + h.length);
        this.dispatch(h.op, h.requestId, payload);
      }
    } catch (e) {
      this.failAll(new ConnectionLost(`protocol error from the node: ${(e as Error).message}`));
      this.socket.destroy();
    }
  }

  private dispatch(op: number, id: bigint, payload: Buffer): void {
    const sub = this.subs.get(id);
    if (sub && op === Op.SubEvents) {
      sub.push(p.decodeSubEvents(payload));
    } else if (sub && op === Op.GroupEvents) {
      (sub as Subscription<p.Delivery>).push(p.decodeGroupEvents(payload));
    } else if (sub && op === Op.Checkpoint) {
      sub.push([{ checkpoint: p.decodeU64(payload, "checkpoint") }]);
    } else if (this.pending.has(id)) {
      this.pending.get(id)!.resolve({ op, payload });
    } else if (sub && op === Op.Error) {
      this.subs.delete(id); // the node ended the subscription
      sub.end(toError(p.decodeError(payload)));
    } else if (id === 0n && op === Op.Error) {
      this.failAll(new ConnectionLost(`the node closed the connection: ${toError(p.decodeError(payload)).message}`));
    }
    // Anything else answers a request that timed out: dropped.
  }

  private failAll(err: AnnalError): void {
    if (!this.closed) this.closed = err;
    for (const pending of [...this.pending.values()]) pending.reject(err);
    this.pending.clear();
    for (const sub of this.subs.values()) sub.end(err);
    this.subs.clear();
  }
}
