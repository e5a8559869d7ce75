// The webhook outbox seam: stored events waiting to be POSTed to WEBHOOK_URL.
//
// Guarantees every implementation keeps:
// - A row is written in the same transaction as its event (see `addToOutbox`), so an event that
//   committed has its row, and a refused or rolled-back one has none: nothing is lost, nothing
//   phantom.
// - `claim` leases a group's oldest pending rows to one owner at a time; while the lease holds, no
//   other owner gets any row of that group, so a group is delivered by one node and in seq order.
//   A group whose oldest pending row is not due yet (backing off) is skipped: it blocks only itself.
// - A lease that is not renewed expires (its owner crashed): the rows go to the next claimer, who
//   delivers them again. Delivery is therefore at least once; `delivered` and `failed` only act
//   while the caller's lease is still its own.
import type { PrismaClient } from "./generated/client.ts";
import type { StoredMessage } from "./store.ts";

type Tx = Parameters<Parameters<PrismaClient["$transaction"]>[0]>[0];

/** A stored event as its transaction wrote it: the message in its state at that moment. */
export type OutboxEvent =
  | { operation: "create" | "reply" | "update"; user: string; message: StoredMessage }
  | { operation: "delete"; user: string; messageId: string };

export interface OutboxRow {
  group: string;
  seq: number;
  attempts: number;
  /** The event as stored (null for rows written before events were kept: read the event log). */
  event: OutboxEvent | null;
  /** When the event was stored (its transaction's start). */
  storedAt: Date;
}

export interface DeadLetter {
  group: string;
  seq: number;
  attempts: number;
  lastError: string | null;
  createdAt: Date;
}

export interface WebhookOutbox {
  /** Up to `groups` groups, each with up to `perGroup` of its oldest pending rows in seq order, leased to `owner` for `leaseMs`. */
  claim(owner: string, opts: { groups: number; perGroup: number; leaseMs: number }): Promise<OutboxRow[][]>;
  /** Removes delivered rows and releases the owner's lease on the group's other rows. */
  delivered(owner: string, group: string, seqs: number[]): Promise<void>;
  /** A failed attempt at the group's head row: retried after `retryInMs`, or dead when `dead`; releases the group. */
  failed(owner: string, group: string, seq: number, error: string, retryInMs: number, dead: boolean): Promise<void>;
  /** Releases every lease of `owner` (on shutdown). */
  releaseAll(owner: string): Promise<void>;
  counts(): Promise<{ pending: number; dead: number }>;
  deadLetters(limit: number): Promise<DeadLetter[]>;
  /** Dead rows back to pending (all, or one group's, or one event), attempts reset; returns how many. */
  requeue(filter: { group?: string; seq?: number }): Promise<number>;
}

/** Inside the event's transaction: one outbox row per stored event, with the event as stored. */
export async function addToOutbox(tx: Tx, events: { group: string; seq: number; event: OutboxEvent }[]): Promise<void> {
  if (events.length === 0) return;
  await tx.$executeRawUnsafe(
    `INSERT INTO "webhook_outbox" ("group_name", "seq", "event") SELECT * FROM unnest($1::text[], $2::int[], $3::text[])`,
    events.map((e) => e.group),
    events.map((e) => e.seq),
    events.map((e) => JSON.stringify(e.event)),
  );
}

/** Reads back an `event` column (its dates were written as ISO strings). */
export function parseOutboxEvent(text: string | null): OutboxEvent | null {
  if (text === null) return null;
  const e = JSON.parse(text) as OutboxEvent;
  if (e.operation !== "delete") {
    e.message.createdAt = new Date(e.message.createdAt);
    e.message.updatedAt = e.message.updatedAt === null ? null : new Date(e.message.updatedAt);
  }
  return e;
}
