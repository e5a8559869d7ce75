// ChatStore over Prisma 7. Works the same on PostgreSQL (@prisma/adapter-pg) and on embedded
// PGlite; both speak PostgreSQL SQL, so the one raw statement below runs on either.
import { randomUUID } from "node:crypto";
import { ChatError } from "../protocol/index.ts";
import type { PrismaClient } from "./generated/client.ts";
import { OrderedBatcher } from "./batcher.ts";
import { writeCreateBatch, type Created, type NewMessage } from "./create-batch.ts";
import type { ChatStore, LoggedEvent, MessageType, NewAttachment, StoredMessage, Written } from "./store.ts";

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


/** Payload bytes per create batch: past a few MB, passing one statement's parameters stalls the event loop. */
const MAX_BATCH_BYTES = 1024 * 1024;

/** FNV-1a: a cheap, stable spread of group names over the create shards. */
function shardOf(group: string, shards: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < group.length; i++) h = Math.imul(h ^ group.charCodeAt(i), 0x01000193);
  return (h >>> 0) % shards;
}

export class PrismaChatStore implements ChatStore {
  /**
   * One ordered write queue per shard of groups: a group's writes (creates, replies, updates,
   * deletes) commit in the order they were submitted, consecutive creates in one batch; queues
   * of different shards lock disjoint groups, so they run side by side instead of queueing on
   * each other's row locks.
   */
  private readonly writers: OrderedBatcher<NewMessage, Created>[];

  constructor(
    private readonly prisma: PrismaClient,
    private readonly closeDriver: () => Promise<void> = async () => {},
    batching: { shards: number; maxBatch: number; maxWaitMs: number },
  ) {
    this.writers = Array.from(
      { length: batching.shards },
      () =>
        new OrderedBatcher<NewMessage, Created>(
          (items) => this.prisma.$transaction((tx) => writeCreateBatch(tx, items), { maxWait: 10_000, timeout: 15_000 }),
          batching.maxBatch,
          MAX_BATCH_BYTES,
          (m) => m.body.length + (m.attachment?.data.byteLength ?? 0),
          batching.maxWaitMs,
        ),
    );
  }

  /** Takes the group's next seq; the row lock it holds until commit orders the group's writes. */
  private async nextSeq(tx: Tx, group: string): Promise<number> {
    const rows = await tx.$queryRaw<{ last_seq: number }[]>`
      INSERT INTO "groups" ("name", "last_seq") VALUES (${group}, 1)
      ON CONFLICT ("name") DO UPDATE SET "last_seq" = "groups"."last_seq" + 1
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

  /** Concurrent creates are written together (see create-batch.ts); each resolves once committed. */
  createMessage(input: NewMessage): Promise<Created> {
    return this.writerOf(input.group).submit(input);
  }

  private writerOf(group: string): OrderedBatcher<NewMessage, Created> {
    return this.writers[shardOf(group, this.writers.length)]!;
  }

  updateMessage(input: Parameters<ChatStore["updateMessage"]>[0]): Promise<Written> {
    return this.writerOf(input.group).solo(() => this.prisma.$transaction(async (tx) => {
      const seq = await this.nextSeq(tx, input.group);
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
          events: { create: { groupName: input.group, seq, operation: "update", userId: input.user } },
        },
        select: messageSelect,
      });
      if (current.attachmentId && current.attachmentId !== attachmentId) await tx.attachment.delete({ where: { id: current.attachmentId } });
      return { seq, message: toStored(row) };
    }));
  }

  deleteMessage(input: { group: string; user: string; messageId: string; anyAuthor?: boolean }): Promise<Written> {
    return this.writerOf(input.group).solo(() => this.prisma.$transaction(async (tx) => {
      const seq = await this.nextSeq(tx, input.group);
      const current = await this.liveMessage(tx, input.group, input.messageId);
      if (!input.anyAuthor && current.userId !== input.user) throw new ChatError("forbidden", "only the author may delete a message");
      const row = await tx.message.update({
        where: { id: input.messageId },
        data: {
          body: null,
          attachmentId: null,
          deleted: true,
          events: { create: { groupName: input.group, seq, operation: "delete", userId: input.user } },
        },
        select: messageSelect,
      });
      // The bytes go with the message: a deleted attachment must not stay reachable by URL.
      if (current.attachmentId) await tx.attachment.delete({ where: { id: current.attachmentId } });
      return { seq, message: toStored(row) };
    }));
  }

  async markSeen(input: { group: string; user: string; messageId: string }) {
    return this.prisma.$transaction(async (tx) => {
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
    const rows = await this.prisma.groupEvent.findMany({
      where: { groupName: input.group, seq: { gt: input.after, ...(input.until !== undefined ? { lte: input.until } : {}) } },
      orderBy: { seq: "asc" },
      take: input.limit,
      select: { seq: true, operation: true, userId: true, message: { select: messageSelect } },
    });
    return rows.map((r) => ({ seq: r.seq, operation: r.operation as LoggedEvent["operation"], userId: r.userId, message: toStored(r.message) }));
  }

  async lastSeq(group: string): Promise<number> {
    const g = await this.prisma.group.findUnique({ where: { name: group }, select: { lastSeq: true } });
    return g?.lastSeq ?? 0;
  }

  async getAttachment(id: string) {
    return this.prisma.attachment.findUnique({
      where: { id },
      select: { id: true, groupName: true, name: true, contentType: true, size: true, data: true },
    });
  }

  async ping(): Promise<void> {
    await this.prisma.$queryRaw`SELECT 1`;
  }

  async close(): Promise<void> {
    await this.prisma.$disconnect();
    await this.closeDriver();
  }
}
