// ChatStore over Prisma 7. Works the same on PostgreSQL (@prisma/adapter-pg) and on embedded
// PGlite; both speak PostgreSQL SQL, so the one raw statement below runs on either.
import { randomUUID } from "node:crypto";
import { ChatError } from "../protocol/index.ts";
import type { PrismaClient } from "./generated/client.ts";
import { GroupScheduler, type SchedulerOptions, type Settled } from "./group-scheduler.ts";
import { addToOutbox } from "./outbox.ts";
import { outOfBudget, toDate, writeCreateBatch, type Created, type NewMessage, type RawQuery } from "./create-batch.ts";
import type { ChatStore, LoggedEvent, MessageType, NewAttachment, RetryKey, StoredMessage, Written } from "./store.ts";

type Tx = Parameters<Parameters<PrismaClient["$transaction"]>[0]>[0];

const messageSelect = {
  id: true,
  userId: true,
  type: true,
  body: true,
  replyToId: true,
  createdAt: true,
  updatedAt: true,
  deleted: true,
  seq: true,
  attachment: { select: { id: true, name: true, contentType: true, size: true } },
} as const;

type Row = {
  id: string;
  userId: string;
  type: string;
  body: string | null;
  replyToId: string | null;
  createdAt: Date;
  updatedAt: Date | null;
  deleted: boolean;
  seq: number;
  attachment: { id: string; name: string; contentType: string; size: number } | null;
};

const toStored = (r: Row): StoredMessage => ({ ...r, type: r.type as MessageType });

/** An event of the log with its message and attachment, as eventsSince's join reads it. */
interface EventRow {
  e_seq: number;
  operation: string;
  e_user: string;
  id: string;
  user_id: string;
  type: string;
  body: string | null;
  reply_to: string | null;
  created_at: Date | string;
  updated_at: Date | string | null;
  deleted: boolean;
  seq: number;
  a_id: string | null;
  a_name: string | null;
  a_type: string | null;
  a_size: number | null;
}

function fromRow(r: EventRow): StoredMessage {
  return {
    id: r.id,
    userId: r.user_id,
    type: r.type as MessageType,
    body: r.body,
    replyToId: r.reply_to,
    createdAt: toDate(r.created_at),
    updatedAt: r.updated_at === null ? null : toDate(r.updated_at),
    deleted: r.deleted,
    seq: Number(r.seq),
    attachment: r.a_id === null ? null : { id: r.a_id, name: r.a_name!, contentType: r.a_type!, size: Number(r.a_size) },
  };
}


/** Payload bytes per create batch: past a few MB, passing one statement's parameters stalls the event loop. */
const MAX_BATCH_BYTES = 1024 * 1024;

/** A write queued at `submittedAt` (performance.now()): its COMMIT must be sent by then plus the budget. */
type Queued = NewMessage & { submittedAt: number };

/**
 * Room for the COMMIT's round trip after the store's deadline: a write sends its COMMIT by the
 * deadline or is rolled back (see ChatStore), so the caller waits for the store's answer this
 * much longer before it gives up and answers `unavailable` (see server.ts's store guard).
 */
export const commitMarginMs = (deadlineMs: number) => Math.min(1_000, Math.floor(deadlineMs / 5));

/**
 * Prisma's own transaction timeout must not fire while the callback still has statements in
 * flight: Prisma then rolls back, and a statement sent after that runs in autocommit and commits
 * alone (seen under load: an update's event row stored without its message update or its seq
 * bump). The deadline is kept by the check before COMMIT; PostgreSQL's statement_timeout ends a
 * hung statement. This only bounds a transaction whose callback never returns.
 */
const STRAGGLER_MS = 30_000;

const tooLate = () => new ChatError("unavailable", "storage is unavailable, try again");

/** A retried write found already applied: thrown inside its transaction (rolling back the seq it took), answered outside. */
class AlreadyApplied extends Error {
  constructor(
    readonly seq: number,
    readonly messageId: string,
  ) {
    super("already applied");
  }
}

export class PrismaChatStore implements ChatStore {
  /**
   * The write scheduler: a group's writes (creates, replies, updates, deletes) commit in the
   * order they were submitted, its consecutive creates batched with other groups' creates; up to
   * `concurrency` batches run at once, never two holding the same group, so they do not queue
   * on each other's row locks, and an update, a delete or a lock wait holds up only its group.
   */
  private readonly writer: GroupScheduler<Queued, Created>;
  /** How long after the call a write may still send its COMMIT: the store's deadline. */
  private readonly budgetMs: number;
  /** How much earlier than the deadline a create batch's statement gives up (see writeCreates). */
  private readonly sqlMarginMs: number;
  /** The create batch's statement for batches with files: the driver's, with files in binary (see create-batch.ts). */
  private readonly query: RawQuery;
  /**
   * Batches without files go through Prisma's raw query: through the pg pool directly, at 9,000
   * creates/s, ack p99 was 107-126 ms against 12 ms (store-writes bench, same machine, same
   * minute): the batches settled at 350-500 creates of 40-60 ms each instead of ~50.
   */
  private readonly viaPrisma: RawQuery;
  private readonly closeDriver: () => Promise<void>;

  constructor(
    private readonly prisma: PrismaClient,
    driver: {
      /** The create batch's statement (see create-batch.ts); Prisma's raw query when not given. */
      query?: RawQuery;
      /** Closes what the Prisma client does not (the pg pool, the embedded database). */
      close?: () => Promise<void>;
    },
    /** The scheduler's pacing and bounds (see database.ts), and the store's deadline. */
    batching: Omit<SchedulerOptions<Queued>, "maxBatchWeight" | "weigh" | "now"> & { deadlineMs?: number },
    /** Webhooks configured: every stored event also gets a webhook outbox row, in its transaction. */
    private readonly outbox = false,
  ) {
    this.viaPrisma = (sql, params) => prisma.$queryRawUnsafe(sql, ...params);
    this.query = driver.query ?? this.viaPrisma;
    this.closeDriver = driver.close ?? (async () => {});
    const deadlineMs = batching.deadlineMs ?? 5_000;
    this.budgetMs = deadlineMs;
    this.sqlMarginMs = Math.min(250, Math.floor(deadlineMs / 10));
    this.writer = new GroupScheduler<Queued, Created>((items) => this.writeCreates(items), {
      ...batching,
      maxBatchWeight: MAX_BATCH_BYTES,
      weigh: (m) => m.body.length + (m.attachment?.data.byteLength ?? 0),
    });
  }

  /**
   * Takes the group's next seq for an event written at `at` (its group_events created_at, which
   * the group row keeps as last_event_at with it); the row lock it holds until commit orders the
   * group's writes.
   */
  private async nextSeq(tx: Tx, group: string, at: Date): Promise<number> {
    const rows = await tx.$queryRaw<{ last_seq: number }[]>`
      INSERT INTO "groups" ("name", "last_seq", "last_event_at") VALUES (${group}, 1, ${at})
      ON CONFLICT ("name") DO UPDATE SET "last_seq" = "groups"."last_seq" + 1, "last_event_at" = EXCLUDED."last_event_at"
      RETURNING "last_seq"`;
    return Number(rows[0]!.last_seq);
  }

  private async liveMessage(tx: Tx, group: string, id: string) {
    const m = await tx.message.findUnique({ where: { id }, select: { groupName: true, userId: true, deleted: true, attachmentId: true, type: true } });
    if (!m || m.groupName !== group || m.deleted) throw new ChatError("not_found", `message ${id} not found in this group`);
    return m;
  }

  private async addAttachment(tx: Tx, group: string, a: NewAttachment): Promise<string> {
    const id = randomUUID();
    await tx.attachment.create({
      data: { id, groupName: group, name: a.name, contentType: a.contentType, size: a.data.byteLength, data: a.data as Uint8Array<ArrayBuffer> },
      select: { id: true },
    });
    return id;
  }

  /**
   * A transaction that sends its COMMIT by `commitBy` (performance.now() time) or not at all:
   * not started once the budget is spent, and checked again once its statements are done (a hung
   * statement is ended by PostgreSQL's statement_timeout, or pg's query_timeout; Prisma's own
   * timeout is only a bound for stragglers, see STRAGGLER_MS).
   */
  private transaction<T>(commitBy: number, fn: (tx: Tx) => Promise<T>): Promise<T> {
    const left = Math.floor(commitBy - performance.now());
    if (left < 1) return Promise.reject(tooLate());
    return this.prisma.$transaction(
      async (tx) => {
        const result = await fn(tx);
        if (performance.now() > commitBy) throw tooLate();
        return result;
      },
      { maxWait: left, timeout: left + STRAGGLER_MS },
    ).catch((err: unknown) => {
      // No connection came free within the write's budget: the write is too late (queued behind
      // others), not a sign that the database is down, so it must not open the store's circuit.
      if (err instanceof Error && /Unable to start a transaction in the given time/.test(err.message)) throw tooLate();
      throw err;
    });
  }

  /**
   * A batch of creates, one statement in autocommit (see create-batch.ts); items past their commit
   * budget already (queued too long) are refused unrun. The statement itself rolls back rather
   * than commit after the earliest item's deadline, less `sqlMarginMs`: the driver's own
   * query_timeout (the full deadline, counted from when the statement is sent) must not win the
   * race against PostgreSQL's lock_timeout, or a lock wait past the budget would surface as a
   * lost connection instead of a write that was too late.
   */
  private async writeCreates(items: Queued[]): Promise<Settled<Created>[]> {
    const now = performance.now();
    const commitBy = (m: Queued) => m.submittedAt + this.budgetMs - this.sqlMarginMs;
    const inTime = items.filter((m) => commitBy(m) - now >= 1);
    const outcomes = new Map<Queued, Settled<Created>>();
    if (inTime.length > 0) {
      const leftMs = Math.floor(Math.min(...inTime.map(commitBy)) - now);
      const query = inTime.some((m) => m.attachment) ? this.query : this.viaPrisma;
      const written = await writeCreateBatch(query, inTime, leftMs, this.outbox).catch((err: unknown) => {
        if (outOfBudget(err)) throw tooLate();
        throw err;
      });
      inTime.forEach((m, i) => outcomes.set(m, written[i]!));
    }
    return items.map((m) => outcomes.get(m) ?? { ok: false, error: tooLate() });
  }

  /** Concurrent creates are written together (see create-batch.ts); each resolves once committed. */
  createMessage(input: NewMessage): Promise<Created> {
    return this.writer.submit(input.group, { ...input, submittedAt: performance.now() });
  }

  /** After the group's seq lock is taken: a retry of a write already applied rolls back and answers the original. */
  private async checkRetry(tx: Tx, group: string, user: string, key: RetryKey | undefined): Promise<void> {
    if (!key) return;
    const prior = await tx.requestKey.findUnique({
      where: { groupName_userId_requestId: { groupName: group, userId: user, requestId: key.requestId } },
      select: { seq: true, messageId: true, createdAt: true },
    });
    if (prior && prior.createdAt.getTime() > Date.now() - key.windowMs) throw new AlreadyApplied(prior.seq, prior.messageId);
  }

  private async keepRetryKey(tx: Tx, group: string, user: string, key: RetryKey | undefined, seq: number, messageId: string): Promise<void> {
    if (!key) return;
    const id = { groupName: group, userId: user, requestId: key.requestId };
    // An expired key of the same request_id is replaced.
    await tx.requestKey.upsert({ where: { groupName_userId_requestId: id }, create: { ...id, seq, messageId }, update: { seq, messageId, createdAt: new Date() } });
  }

  /**
   * Before an update or delete joins its group's write queue: a message that does not exist, or
   * belongs to another group, or (unless anyone may act) to another author, can never become
   * valid (ids and authors never change), so it is refused with one read, without taking a turn
   * in the group's serialised writes: a flood of hostile ids must not queue behind, or ahead of,
   * the group's real writes. A deleted message is left to the transaction, where a retry of an
   * applied delete still finds its original answer.
   */
  private async precheck(verb: "update" | "delete", group: string, user: string, id: string, anyAuthor = false): Promise<void> {
    const m = await this.prisma.message.findUnique({ where: { id }, select: { groupName: true, userId: true } });
    if (!m || m.groupName !== group) throw new ChatError("not_found", `message ${id} not found in this group`);
    if (!anyAuthor && m.userId !== user) throw new ChatError("forbidden", `only the author may ${verb} a message`);
  }

  /** Runs one update or delete in the group's write order, within the commit budget, retry-safe. */
  private async soloWrite(group: string, fn: (tx: Tx) => Promise<Written>): Promise<Written & { duplicate: boolean }> {
    const commitBy = performance.now() + this.budgetMs;
    try {
      return { ...(await this.writer.solo(group, () => this.transaction(commitBy, fn))), duplicate: false };
    } catch (err) {
      if (!(err instanceof AlreadyApplied)) throw err;
      const row = await this.prisma.message.findUniqueOrThrow({ where: { id: err.messageId }, select: messageSelect });
      return { seq: err.seq, message: toStored(row), duplicate: true };
    }
  }

  async updateMessage(input: Parameters<ChatStore["updateMessage"]>[0]): Promise<Written & { duplicate: boolean }> {
    await this.precheck("update", input.group, input.user, input.messageId);
    return this.soloWrite(input.group, async (tx) => {
      const at = new Date();
      const seq = await this.nextSeq(tx, input.group, at);
      await this.checkRetry(tx, input.group, input.user, input.retryKey);
      const current = await this.liveMessage(tx, input.group, input.messageId);
      if (current.userId !== input.user) throw new ChatError("forbidden", "only the author may update a message");
      let attachmentId = current.attachmentId;
      if (input.attachment !== undefined) {
        attachmentId = input.attachment ? await this.addAttachment(tx, input.group, input.attachment) : null;
      }
      if (current.type === "text" && input.body === "" ) throw new ChatError("bad_request", "a text message needs a non-empty body");
      if (current.type !== "text" && attachmentId === null) throw new ChatError("bad_request", `a ${current.type} message needs a file`);
      const row = await tx.message.update({
        where: { id: input.messageId },
        data: {
          body: input.body,
          attachmentId,
          updatedAt: new Date(),
        },
        select: messageSelect,
      });
      await tx.groupEvent.create({ data: { groupName: input.group, seq, operation: "update", messageId: row.id, userId: input.user, createdAt: at }, select: { seq: true } });
      if (current.attachmentId && current.attachmentId !== attachmentId) await tx.attachment.delete({ where: { id: current.attachmentId } });
      if (this.outbox) await addToOutbox(tx, [{ group: input.group, seq, event: { operation: "update", user: input.user, message: toStored(row) } }]);
      await this.keepRetryKey(tx, input.group, input.user, input.retryKey, seq, row.id);
      return { seq, message: toStored(row) };
    });
  }

  async deleteMessage(input: Parameters<ChatStore["deleteMessage"]>[0]): Promise<Written & { duplicate: boolean }> {
    await this.precheck("delete", input.group, input.user, input.messageId, input.anyAuthor);
    return this.soloWrite(input.group, async (tx) => {
      const at = new Date();
      const seq = await this.nextSeq(tx, input.group, at);
      await this.checkRetry(tx, input.group, input.user, input.retryKey);
      const current = await this.liveMessage(tx, input.group, input.messageId);
      if (!input.anyAuthor && current.userId !== input.user) throw new ChatError("forbidden", "only the author may delete a message");
      const row = await tx.message.update({
        where: { id: input.messageId },
        data: {
          body: null,
          attachmentId: null,
          deleted: true,
        },
        select: messageSelect,
      });
      await tx.groupEvent.create({ data: { groupName: input.group, seq, operation: "delete", messageId: row.id, userId: input.user, createdAt: at }, select: { seq: true } });
      // The bytes go with the message: a deleted attachment must not stay reachable by URL.
      if (current.attachmentId) await tx.attachment.delete({ where: { id: current.attachmentId } });
      if (this.outbox) await addToOutbox(tx, [{ group: input.group, seq, event: { operation: "delete", user: input.user, messageId: row.id } }]);
      await this.keepRetryKey(tx, input.group, input.user, input.retryKey, seq, row.id);
      return { seq, message: toStored(row) };
    });
  }

  async markSeen(input: { group: string; user: string; messageId: string }) {
    return this.transaction(performance.now() + this.budgetMs, async (tx) => {
      await this.liveMessage(tx, input.group, input.messageId);
      const key = { messageId_userId: { messageId: input.messageId, userId: input.user } };
      const { count } = await tx.seenReceipt.createMany({ data: [{ messageId: input.messageId, userId: input.user }], skipDuplicates: true });
      const receipt = await tx.seenReceipt.findUniqueOrThrow({ where: key, select: { seenAt: true } });
      return { seenAt: receipt.seenAt, first: count === 1 };
    });
  }

  async history(input: { group: string; before?: string; limit: number }) {
    let beforeSeq: number | undefined;
    if (input.before !== undefined) {
      const anchor = await this.prisma.message.findUnique({ where: { id: input.before }, select: { groupName: true, seq: true } });
      if (!anchor || anchor.groupName !== input.group) throw new ChatError("not_found", `message ${input.before} not found in this group`);
      beforeSeq = anchor.seq;
    }
    const rows = await this.prisma.message.findMany({
      where: { groupName: input.group, ...(beforeSeq !== undefined ? { seq: { lt: beforeSeq } } : {}) },
      orderBy: { seq: "desc" },
      take: input.limit + 1,
      select: messageSelect,
    });
    const hasMore = rows.length > input.limit;
    return { messages: rows.slice(0, input.limit).reverse().map(toStored), hasMore };
  }

  async eventsSince(input: { group: string; after: number; until?: number; limit: number }): Promise<LoggedEvent[]> {
    // One join (the event log has no foreign key to messages: see the migration
    // 20261206113000_write_path_keys; every event's message exists, since messages are never removed).
    const until = input.until !== undefined ? `AND e."seq" <= $4` : "";
    const rows = await this.prisma.$queryRawUnsafe<EventRow[]>(
      `SELECT e."seq" AS e_seq, e."operation", e."user_id" AS e_user,
              m."id", m."user_id", m."type", m."body", m."reply_to", m."created_at", m."updated_at", m."deleted", m."seq",
              a."id" AS a_id, a."name" AS a_name, a."content_type" AS a_type, a."size" AS a_size
       FROM "group_events" e JOIN "messages" m ON m."id" = e."message_id" LEFT JOIN "attachments" a ON a."id" = m."attachment_id"
       WHERE e."group_name" = $1 AND e."seq" > $2 ${until}
       ORDER BY e."seq" LIMIT $3`,
      input.group,
      input.after,
      input.limit,
      ...(input.until !== undefined ? [input.until] : []),
    );
    return rows.map((r) => ({ seq: Number(r.e_seq), operation: r.operation as LoggedEvent["operation"], userId: r.e_user, message: fromRow(r) }));
  }

  async lastSeq(group: string): Promise<number> {
    const g = await this.prisma.group.findUnique({ where: { name: group }, select: { lastSeq: true } });
    return g?.lastSeq ?? 0;
  }

  async attachmentInfo(id: string) {
    return this.prisma.attachment.findUnique({
      where: { id },
      select: { id: true, groupName: true, name: true, contentType: true, size: true },
    });
  }

  async readAttachment(id: string, offset: number, length: number): Promise<Uint8Array | null> {
    // substring on bytea is 1-based; PostgreSQL detoasts only the slice it needs.
    const rows = await this.prisma.$queryRaw<{ chunk: Uint8Array }[]>`
      SELECT substring("data" from ${offset + 1}::int for ${length}::int) AS "chunk" FROM "attachments" WHERE "id" = ${id}`;
    return rows[0]?.chunk ?? null;
  }

  /** Through the driver when it has one (pg's simple query: no trip through Prisma's client, which cost more than the query). */
  async ping(): Promise<void> {
    await this.query("SELECT 1", []);
  }

  async close(): Promise<void> {
    await this.prisma.$disconnect();
    await this.closeDriver();
  }
}
