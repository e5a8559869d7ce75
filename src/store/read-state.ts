// The membership and read-state seam (issue 12): who is in a group, how far each member has
// read, and each user's conversation list. src/store/prisma-read-state.ts implements it.
//
// Guarantees every implementation keeps:
// - A read marker only moves forward: concurrent marks from several devices or nodes leave the
//   highest, and a lower one changes nothing. A marker never passes the group's last seq.
// - Markers live in the group's seq space, so "unread" is the messages (create, reply) with a
//   larger seq than the marker, by other users, not deleted; computed at read time, so every node
//   answers the same.
// - The conversation list of a user is one statement, whatever the number of groups: it reads
//   the user's membership rows by key and their groups' rows (last seq, newest event's time),
//   and counts unread rows of the page's groups only.
import type { StoredMessage } from "./store.ts";

export interface ReadMarker {
  readSeq: number;
  /** When the marker last moved; null while it is 0. */
  readAt: Date | null;
  /** Whether this call moved it. */
  moved: boolean;
  /**
   * The user's unread count after this call and the group's last seq, read in one snapshot: the
   * count is exact as of that seq (later events add to it).
   */
  unread: number;
  lastSeq: number;
}

export interface Conversation {
  group: string;
  lastSeq: number;
  readSeq: number;
  unread: number;
  /** The group's newest message in its current state (a tombstone when deleted), or null. */
  lastMessage: StoredMessage | null;
  /** When the group's newest stored event was written; the user's joining time before any. */
  lastActivity: Date;
}

export interface Member {
  user: string;
  readSeq: number;
  joinedAt: Date;
}

/** A place in a conversation list: its entries sort by (lastActivity, group), newest first. */
export interface ConversationCursor {
  at: Date;
  group: string;
}

export interface ReadStateStore {
  /** Makes the user a member (idempotent: an existing member keeps their marker and joining time). */
  join(group: string, user: string): Promise<void>;
  /** Ends the membership; false when the user was not a member. */
  leave(group: string, user: string): Promise<boolean>;
  /**
   * Moves the user's marker forward to `seq` (and makes them a member). A seq beyond the group's
   * last is a ChatError `bad_request`; a lower one answers the current marker unchanged.
   */
  markRead(group: string, user: string, seq: number): Promise<ReadMarker>;
  /** Moves the marker forward to the seq of a message of the group (for `seen`). */
  markReadTo(group: string, user: string, messageId: string): Promise<ReadMarker>;
  /** The user's groups, most recent activity first, `limit` after `before`. */
  conversations(user: string, page: { limit: number; before?: ConversationCursor }): Promise<{ conversations: Conversation[]; hasMore: boolean }>;
  /**
   * A group's members, most recently joined first; `before` names a member and the page holds
   * those who joined before them (ChatError `not_found` when `before` is not a member).
   */
  members(group: string, page: { limit: number; before?: string }): Promise<{ members: Member[]; hasMore: boolean }>;
}
