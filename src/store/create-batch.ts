// Writes a batch of new messages in one transaction: a few statements for the whole batch
// instead of several round trips per message. Per group, seqs are handed out in item order under
// the group's row lock (taken in name order, so concurrent batches cannot deadlock), and an item
// that is refused (unknown reply target) or is a retry takes no seq.
import { randomUUID } from "node:crypto";
import { ChatError } from "../protocol/index.ts";
import type { Settled } from "./group-scheduler.ts";
import { addToOutbox } from "./outbox.ts";
import type { PrismaClient } from "./generated/client.ts";
import type { ChatStore, MessageType, StoredMessage, Written } from "./store.ts";

type Tx = Parameters<Parameters<PrismaClient["$transaction"]>[0]>[0];
export type NewMessage = Parameters<ChatStore["createMessage"]>[0];
export type Created = Written & { duplicate: boolean };

interface MessageRow {
  id: string;
  user_id: string;
  type: string;
  body: string | null;
  reply_to: string | null;
  created_at: Date | string;
  updated_at: Date | string | null;
  deleted: boolean;
  seq: number;
  request_id: string | null;
  group_name: string;
  a_id: string | null;
  a_name: string | null;
  a_type: string | null;
  a_size: number | null;
}

const toDate = (d: Date | string) => (d instanceof Date ? d : new Date(d));

function fromRow(r: MessageRow): StoredMessage {
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

/** A message this batch stored, as it is at its creation. */
function newMessage(m: NewMessage, p: { id: string; seq: number; attachmentId: string | null }, createdAt: Date): StoredMessage {
  return {
    id: p.id,
    userId: m.user,
    type: m.type,
    body: m.body,
    replyToId: m.replyTo,
    createdAt,
    updatedAt: null,
    deleted: false,
    seq: p.seq,
    attachment: m.attachment ? { id: p.attachmentId!, name: m.attachment.name, contentType: m.attachment.contentType, size: m.attachment.data.byteLength } : null,
  };
}

const retryKeyOf = (m: NewMessage) => (m.retryKey ? `${m.group}\u0000${m.user}\u0000${m.retryKey.requestId}` : null);

/** `outbox`: also queue each new message for the webhooks (see outbox.ts), in this transaction. */
export async function writeCreateBatch(tx: Tx, items: NewMessage[], outbox = false): Promise<Settled<Created>[]> {
  const groups = [...new Set(items.map((m) => m.group))].sort();
  const created = await tx.$queryRawUnsafe<{ name: string }[]>(
    `INSERT INTO "groups" ("name") SELECT unnest($1::text[]) ON CONFLICT DO NOTHING RETURNING "name"`,
    groups,
  );
  const locked = await tx.$queryRawUnsafe<{ name: string; last_seq: number }[]>(
    `SELECT "name", "last_seq" FROM "groups" WHERE "name" = ANY($1::text[]) ORDER BY "name" FOR UPDATE`,
    groups,
  );
  const initialSeq = new Map(locked.map((g) => [g.name, Number(g.last_seq)]));
  const lastSeq = new Map(initialSeq);

  // Retries of messages already stored (checked under the group locks: racing retries store once).
  const keyed = items.filter((m) => m.retryKey);
  const originals = new Map<string, StoredMessage>();
  if (keyed.length > 0) {
    const windowMs = Math.max(...keyed.map((m) => m.retryKey!.windowMs));
    const rows = await tx.$queryRawUnsafe<MessageRow[]>(
      `SELECT m."id", m."user_id", m."type", m."body", m."reply_to", m."created_at", m."updated_at", m."deleted", m."seq",
              m."request_id", m."group_name", a."id" AS a_id, a."name" AS a_name, a."content_type" AS a_type, a."size" AS a_size
       FROM "messages" m LEFT JOIN "attachments" a ON a."id" = m."attachment_id"
       WHERE (m."group_name", m."user_id", m."request_id") IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))
         AND m."created_at" > now() - make_interval(secs => $4::float8 / 1000)`,
      keyed.map((m) => m.group),
      keyed.map((m) => m.user),
      keyed.map((m) => m.retryKey!.requestId),
      windowMs,
    );
    for (const r of rows) originals.set(`${r.group_name}\u0000${r.user_id}\u0000${r.request_id}`, fromRow(r));
  }

  const replyIds = [...new Set(items.flatMap((m) => (m.replyTo ? [m.replyTo] : [])))];
  const targets = new Map<string, { group_name: string; deleted: boolean }>();
  if (replyIds.length > 0) {
    const rows = await tx.$queryRawUnsafe<{ id: string; group_name: string; deleted: boolean }[]>(
      `SELECT "id", "group_name", "deleted" FROM "messages" WHERE "id" = ANY($1::text[])`,
      replyIds,
    );
    for (const r of rows) targets.set(r.id, r);
  }

  // Decide each item: a retry (of a stored message, or of an earlier item of this batch), a
  // refusal, or a new message with the group's next seq.
  type Plan = { kind: "new"; id: string; seq: number; attachmentId: string | null } | { kind: "retry"; of: StoredMessage } | { kind: "sameAs"; index: number } | { kind: "error"; error: ChatError };
  const firstInBatch = new Map<string, number>();
  const plans: Plan[] = items.map((m, i) => {
    const key = retryKeyOf(m);
    if (key !== null) {
      const original = originals.get(key);
      if (original) return { kind: "retry", of: original };
      const earlier = firstInBatch.get(key);
      if (earlier !== undefined) return { kind: "sameAs", index: earlier };
    }
    if (m.replyTo !== null) {
      const target = targets.get(m.replyTo);
      if (!target || target.group_name !== m.group || target.deleted) {
        return { kind: "error", error: new ChatError("not_found", `message ${m.replyTo} not found in this group`) };
      }
    }
    if (key !== null) firstInBatch.set(key, i);
    const seq = lastSeq.get(m.group)! + 1;
    lastSeq.set(m.group, seq);
    return { kind: "new", id: randomUUID(), seq, attachmentId: m.attachment ? randomUUID() : null };
  });

  const fresh = items.flatMap((m, i) => {
    const p = plans[i]!;
    return p.kind === "new" ? [{ m, p }] : [];
  });
  const withFiles = fresh.filter(({ m }) => m.attachment);
  if (withFiles.length > 0) {
    await tx.attachment.createMany({
      data: withFiles.map(({ m, p }) => ({
        id: p.attachmentId!,
        groupName: m.group,
        name: m.attachment!.name,
        contentType: m.attachment!.contentType,
        size: m.attachment!.data.byteLength,
        data: m.attachment!.data as Uint8Array<ArrayBuffer>,
      })),
    });
  }
  const inserted = new Map<string, Date>();
  if (fresh.length > 0) {
    const rows = await tx.$queryRawUnsafe<{ id: string; created_at: Date | string }[]>(
      `INSERT INTO "messages" ("id", "group_name", "user_id", "type", "body", "seq", "request_id", "reply_to", "attachment_id")
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::text[], $8::text[], $9::text[])
       RETURNING "id", "created_at"`,
      fresh.map(({ p }) => p.id),
      fresh.map(({ m }) => m.group),
      fresh.map(({ m }) => m.user),
      fresh.map(({ m }) => m.type),
      fresh.map(({ m }) => m.body),
      fresh.map(({ p }) => p.seq),
      fresh.map(({ m }) => m.retryKey?.requestId ?? null),
      fresh.map(({ m }) => m.replyTo),
      fresh.map(({ p }) => p.attachmentId),
    );
    for (const r of rows) inserted.set(r.id, toDate(r.created_at));
    await tx.$executeRawUnsafe(
      `INSERT INTO "group_events" ("group_name", "seq", "operation", "message_id", "user_id")
       SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[])`,
      fresh.map(({ m }) => m.group),
      fresh.map(({ p }) => p.seq),
      fresh.map(({ m }) => (m.replyTo === null ? "create" : "reply")),
      fresh.map(({ p }) => p.id),
      fresh.map(({ m }) => m.user),
    );
    if (outbox) {
      await addToOutbox(tx, fresh.map(({ m, p }) => ({ group: m.group, seq: p.seq, event: { operation: m.replyTo === null ? "create" : "reply", user: m.user, message: newMessage(m, p, inserted.get(p.id)!) } })));
    }
    const bumped = [...lastSeq].filter(([name, seq]) => seq !== initialSeq.get(name));
    await tx.$executeRawUnsafe(
      `UPDATE "groups" SET "last_seq" = u.seq FROM unnest($1::text[], $2::int[]) AS u(name, seq) WHERE "groups"."name" = u.name`,
      bumped.map(([name]) => name),
      bumped.map(([, seq]) => seq),
    );
  }
  // A group row this batch created but stored nothing in (every item refused) must not stay:
  // refused frames change nothing, and could otherwise fill the table with empty groups.
  const unused = created.map((g) => g.name).filter((name) => lastSeq.get(name) === initialSeq.get(name));
  if (unused.length > 0) await tx.$executeRawUnsafe(`DELETE FROM "groups" WHERE "name" = ANY($1::text[])`, unused);

  const outcomes: Settled<Created>[] = [];
  plans.forEach((p, i) => {
    const m = items[i]!;
    if (p.kind === "error") return outcomes.push({ ok: false, error: p.error });
    if (p.kind === "retry") return outcomes.push({ ok: true, value: { seq: p.of.seq, message: p.of, duplicate: true } });
    if (p.kind === "sameAs") {
      const first = outcomes[p.index]!;
      return outcomes.push(first.ok ? { ok: true, value: { ...first.value, duplicate: true } } : first);
    }
    return outcomes.push({ ok: true, value: { seq: p.seq, message: newMessage(m, p, inserted.get(p.id)!), duplicate: false } });
  });
  return outcomes;
}
