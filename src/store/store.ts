// The storage seam. The service depends on this interface only; src/store/prisma-store.ts is the
// implementation (PostgreSQL or embedded PGlite through Prisma driver adapters).
//
// Guarantees every implementation keeps:
// - Each stored event (create, reply, update, delete) is committed, with the next `seq` of its
//   group, in one transaction before the call resolves: seq is 1, 2, 3, … per group with no gap
//   and no repeat, whichever node writes (the group row is the lock).
// - A rule broken inside the transaction (unknown message, wrong author) throws a ChatError and
//   changes nothing, not even the seq counter.
// - Reads return the current state: a deleted message is a tombstone with no body or attachment.
// - With webhooks configured, each stored event's webhook outbox row (outbox.ts) is written in
//   the event's own transaction.
// - Because the seq counter's row lock is held until commit, a group's events commit in seq
//   order: once seq N is visible, every seq below N is visible too. Gap repair relies on this.
// - Retry-safe: a write with a retryKey that was already applied (same group, user and
//   request_id, within its window) applies nothing and answers the original (`duplicate`).
// - No write commits after its deadline: a write that cannot send its COMMIT within the store's
//   deadline, counted from the call, is rolled back and fails with `unavailable`, so a caller
//   that waits a margin longer (for the COMMIT's answer) before it answers `unavailable` is not
//   contradicted by a late commit (except by a commit whose confirmation alone is delayed past
//   the margin: the retryKey covers that one).
import type { MessageView } from "../protocol/index.ts";

export type MessageType = MessageView["type"];

export interface NewAttachment {
  name: string;
  contentType: string;
  data: Uint8Array;
}

export interface AttachmentMeta {
  id: string;
  name: string;
  contentType: string;
  size: number;
}

export interface StoredMessage {
  id: string;
  userId: string;
  type: MessageType;
  body: string | null;
  attachment: AttachmentMeta | null;
  replyToId: string | null;
  createdAt: Date;
  updatedAt: Date | null;
  deleted: boolean;
  seq: number;
}

export interface Written {
  seq: number;
  message: StoredMessage;
}

/** A stored event of the group's log, with its message in its current state. */
export interface LoggedEvent {
  seq: number;
  operation: "create" | "reply" | "update" | "delete";
  userId: string;
  message: StoredMessage;
}

/** An idempotency key for stored writes: a retry with the same one stores nothing new. */
export interface RetryKey {
  requestId: string;
  /** Only a message created this recently counts as the original. */
  windowMs: number;
}

export interface ChatStore {
  /** Stores a new message (a reply when replyTo is set: it must name a live message of the group). */
  createMessage(input: {
    group: string;
    user: string;
    type: MessageType;
    body: string;
    attachment: NewAttachment | null;
    replyTo: string | null;
    retryKey?: RetryKey;
  }): Promise<Written & { duplicate: boolean }>;
  /** attachment: undefined keeps the current one, null removes it, a value replaces it. */
  updateMessage(input: {
    group: string;
    user: string;
    messageId: string;
    body: string;
    attachment: NewAttachment | null | undefined;
    retryKey?: RetryKey;
  }): Promise<Written & { duplicate: boolean }>;
  /** Only the author may delete, unless `anyAuthor` (moderation): then `user` is recorded as who deleted it. */
  deleteMessage(input: { group: string; user: string; messageId: string; anyAuthor?: boolean; retryKey?: RetryKey }): Promise<Written & { duplicate: boolean }>;
  /** Idempotent per (message, user): `first` is false when the receipt already existed. */
  markSeen(input: { group: string; user: string; messageId: string }): Promise<{ seenAt: Date; first: boolean }>;
  /** The `limit` messages before `before` (exclusive; all when absent), oldest first. */
  history(input: { group: string; before?: string; limit: number }): Promise<{ messages: StoredMessage[]; hasMore: boolean }>;
  /** The group's events with after < seq <= until (all after when until is absent), in seq order, at most `limit`. */
  eventsSince(input: { group: string; after: number; until?: number; limit: number }): Promise<LoggedEvent[]>;
  /** The seq of the group's newest stored event (0 for a group with none). */
  lastSeq(group: string): Promise<number>;
  /** An attachment's metadata and group, without its bytes; null when there is none. */
  attachmentInfo(id: string): Promise<(AttachmentMeta & { groupName: string }) | null>;
  /**
   * Up to `length` bytes of an attachment from `offset` (fewer at the end), read in the
   * database, so that serving a file never holds more than one chunk of it; null when the
   * attachment is gone (deleted since its info was read).
   */
  readAttachment(id: string, offset: number, length: number): Promise<Uint8Array | null>;
  /** Resolves when the database answers; for readiness checks. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
