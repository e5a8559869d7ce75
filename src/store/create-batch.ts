// Writes a batch of new messages with one statement: a call of the SQL function
// "chat_create_messages" (prisma/migrations/20261206110000_create_messages_function; files as
// bytes since 20261206143000_create_messages_file_bytes), sent in autocommit, so a batch costs
// one round trip and its own implicit transaction. The function
// keeps every guarantee the store states (see store.ts): per group, seqs are handed out in item
// order under the group's row lock (taken in name order, so concurrent batches cannot deadlock);
// a retry (checked under that lock) or a refused item (unknown reply target) takes no seq; the
// webhook outbox rows are written in the same transaction; and a call that cannot finish by its
// deadline rolls back instead of committing late.
import { randomUUID } from "node:crypto";
import { ChatError } from "../protocol/index.ts";
import type { Settled } from "./group-scheduler.ts";
import type { ChatStore, MessageType, StoredMessage, Written } from "./store.ts";

export type NewMessage = Parameters<ChatStore["createMessage"]>[0];
export type Created = Written & { duplicate: boolean };

/** One row of chat_create_messages per item, in item order. */
interface ResultRow {
  n: number;
  kind: "new" | "retry" | "same" | "refused";
  ref: number | null;
  seq: number | null;
  id: string | null;
  user_id: string | null;
  type: string | null;
  body: string | null;
  reply_to: string | null;
  created_at: Date | string | null;
  updated_at: Date | string | null;
  deleted: boolean | null;
  a_id: string | null;
  a_name: string | null;
  a_type: string | null;
  a_size: number | null;
}

const CALL = `SELECT * FROM "chat_create_messages"($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
  $8::text[], $9::text[], $10::text[], $11::int[], $12::bytea, $13::float8[], $14::float8, $15::float8, $16::boolean)`;

/**
 * Runs one statement with positional parameters and answers its rows. On PostgreSQL this is the
 * pg pool itself, which sends a Buffer parameter in binary as it is; through Prisma's raw query
 * (the embedded database) a Buffer travels as base64 in its JSON parameters, copied several times.
 */
export type RawQuery = <T>(sql: string, params: unknown[]) => Promise<T[]>;

/**
 * The batch's files back to back, each item's share being its attachment's size (the function
 * cuts them apart by p_att_size): one file is passed as it is, without a copy. Null without files.
 */
function fileBytes(items: NewMessage[]): Buffer | null {
  const files = items.flatMap((m) => (m.attachment ? [Buffer.from(m.attachment.data.buffer, m.attachment.data.byteOffset, m.attachment.data.byteLength)] : []));
  if (files.length === 0) return null;
  return files.length === 1 ? files[0]! : Buffer.concat(files);
}

/** The function's message when the write's deadline passed before it could finish: it rolled back. */
const DEADLINE_PASSED = "chat write deadline passed";

/**
 * The call ran out of its budget and rolled back: it passed its deadline, or waited for a group's
 * row lock until the lock_timeout it set from that deadline (55P03). Found in the error itself or
 * in what Prisma wraps (cause, the driver adapter's error).
 */
export function outOfBudget(err: unknown, depth = 0): boolean {
  if (depth > 5 || typeof err !== "object" || err === null) return false;
  const e = err as { code?: unknown; originalCode?: unknown; message?: unknown; cause?: unknown; meta?: { driverAdapterError?: unknown } };
  if (e.code === "55P03" || e.originalCode === "55P03") return true;
  if (typeof e.message === "string" && (e.message.includes(DEADLINE_PASSED) || /lock timeout/.test(e.message))) return true;
  return outOfBudget(e.cause, depth + 1) || outOfBudget(e.meta?.driverAdapterError, depth + 1);
}

/** A timestamp column as a Date (the drivers answer Date or its text). */
export const toDate = (d: Date | string) => (d instanceof Date ? d : new Date(d));

/**
 * Stores `items` (at most one batch of the scheduler) with `query` and answers one outcome per item, in order.
 * `leftMs`: what is left of the earliest item's budget; the call rolls back rather than commit
 * later than that. `outbox`: also queue each new message for the webhooks (see outbox.ts).
 */
export async function writeCreateBatch(query: RawQuery, items: NewMessage[], leftMs: number, outbox = false): Promise<Settled<Created>[]> {
  const ids = items.map(() => randomUUID());
  const attachmentIds = items.map((m) => (m.attachment ? randomUUID() : null));
  const rows = await query<ResultRow>(CALL, [
    items.map((m) => m.group),
    items.map((m) => m.user),
    items.map((m) => m.type),
    items.map((m) => m.body),
    items.map((m) => m.retryKey?.requestId ?? null),
    items.map((m) => m.replyTo),
    ids,
    attachmentIds,
    items.map((m) => m.attachment?.name ?? null),
    items.map((m) => m.attachment?.contentType ?? null),
    items.map((m) => m.attachment?.data.byteLength ?? null),
    fileBytes(items),
    items.map((m) => m.retryKey?.windowMs ?? null),
    leftMs,
    Date.now() + leftMs,
    outbox,
  ]);
  if (rows.length !== items.length) throw new Error(`chat_create_messages answered ${rows.length} rows for ${items.length} items`);
  const outcomes: Settled<Created>[] = [];
  rows.forEach((r, i) => {
    const m = items[i]!;
    if (Number(r.n) !== i + 1) throw new Error(`chat_create_messages answered item ${r.n} in place ${i + 1}`);
    switch (r.kind) {
      case "new": {
        const message: StoredMessage = {
          id: ids[i]!,
          userId: m.user,
          type: m.type,
          body: m.body,
          replyToId: m.replyTo,
          createdAt: toDate(r.created_at!),
          updatedAt: null,
          deleted: false,
          seq: Number(r.seq),
          attachment: m.attachment ? { id: attachmentIds[i]!, name: m.attachment.name, contentType: m.attachment.contentType, size: m.attachment.data.byteLength } : null,
        };
        return outcomes.push({ ok: true, value: { seq: message.seq, message, duplicate: false } });
      }
      case "retry": {
        const message: StoredMessage = {
          id: r.id!,
          userId: r.user_id!,
          type: r.type as MessageType,
          body: r.body,
          replyToId: r.reply_to,
          createdAt: toDate(r.created_at!),
          updatedAt: r.updated_at === null ? null : toDate(r.updated_at),
          deleted: r.deleted!,
          seq: Number(r.seq),
          attachment: r.a_id === null ? null : { id: r.a_id, name: r.a_name!, contentType: r.a_type!, size: Number(r.a_size) },
        };
        return outcomes.push({ ok: true, value: { seq: message.seq, message, duplicate: true } });
      }
      case "same": {
        const first = outcomes[Number(r.ref) - 1]!;
        return outcomes.push(first.ok ? { ok: true, value: { ...first.value, duplicate: true } } : first);
      }
      case "refused":
        return outcomes.push({ ok: false, error: new ChatError("not_found", `message ${m.replyTo} not found in this group`) });
    }
  });
  return outcomes;
}
