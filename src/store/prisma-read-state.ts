// ReadStateStore over the Prisma client's raw queries (PostgreSQL and PGlite alike). Every
// value is a bound parameter.
import { ChatError } from "../protocol/index.ts";
import { Coalescer } from "./coalesce.ts";
import type { PrismaClient } from "./generated/client.ts";
import type { Conversation, ConversationCursor, Member, ReadMarker, ReadStateStore } from "./read-state.ts";
import type { MessageType, StoredMessage } from "./store.ts";

interface MarkerRow { read_seq: number; read_at: Date | null; last_seq: number; unread: number }

interface ConversationRow {
  group_name: string;
  last_seq: number;
  read_seq: number;
  last_activity: Date;
  unread: number;
  m_id: string | null;
  m_user: string;
  m_type: string;
  m_body: string | null;
  m_reply_to: string | null;
  m_created: Date;
  m_updated: Date | null;
  m_deleted: boolean;
  m_seq: number;
  a_id: string | null;
  a_name: string;
  a_type: string;
  a_size: number;
}

// The group's last seq and the user's unread count after marker `mk`, for the marker row `mk`:
// read in the statement's one snapshot, where a message and the last_seq that numbers it commit
// together, so the count is exact as of that last_seq.
const SNAPSHOT = `
  COALESCE((SELECT g."last_seq" FROM "groups" g WHERE g."name" = $2), 0) AS last_seq,
  (SELECT count(*)::int FROM "messages" m
   WHERE m."group_name" = $2 AND m."seq" > mk."read_seq" AND m."user_id" <> $1 AND NOT m."deleted") AS unread`;

// Moves the marker forward only: the update applies when the stored marker is lower, and the
// row lock serialises concurrent marks. Nothing returned = the marker was already there or beyond.
const UPSERT_MARKER = `
  WITH mk AS (
    INSERT INTO "memberships" ("user_id", "group_name", "read_seq", "read_at")
    VALUES ($1, $2, $3, CASE WHEN $3 > 0 THEN now() END)
    ON CONFLICT ("user_id", "group_name") DO UPDATE
      SET "read_seq" = EXCLUDED."read_seq", "read_at" = EXCLUDED."read_at"
      WHERE "memberships"."read_seq" < EXCLUDED."read_seq"
    RETURNING "read_seq", "read_at"
  )
  SELECT mk."read_seq", mk."read_at", ${SNAPSHOT} FROM mk`;

// The marker as it stands (a statement started after the upsert's, so it sees the latest move).
const CURRENT_MARKER = `
  SELECT mk."read_seq", mk."read_at", ${SNAPSHOT}
  FROM (SELECT COALESCE(MAX(x."read_seq"), 0) AS "read_seq", MAX(x."read_at") AS "read_at"
        FROM "memberships" x WHERE x."user_id" = $1 AND x."group_name" = $2) mk`;

// One statement: the page of the user's groups (by the membership key, each group's last seq and
// newest event's time from its row: groups.last_event_at), then for those groups only the unread
// count and the last message.
export const CONVERSATIONS_SQL = `
  WITH page AS (
    SELECT mb."group_name", mb."read_seq", COALESCE(g."last_seq", 0) AS last_seq,
           COALESCE(g."last_event_at", mb."joined_at") AS last_activity
    FROM "memberships" mb
    LEFT JOIN "groups" g ON g."name" = mb."group_name"
    WHERE mb."user_id" = $1
      AND ($3::timestamptz IS NULL OR (COALESCE(g."last_event_at", mb."joined_at"), mb."group_name") < ($3::timestamptz, $4::text))
    ORDER BY last_activity DESC, mb."group_name" DESC
    LIMIT $2
  )
  SELECT p."group_name", p.last_seq, p."read_seq", p.last_activity, u.unread,
         lm."id" AS m_id, lm."user_id" AS m_user, lm."type" AS m_type, lm."body" AS m_body, lm."reply_to" AS m_reply_to,
         lm."created_at" AS m_created, lm."updated_at" AS m_updated, lm."deleted" AS m_deleted, lm."seq" AS m_seq,
         a."id" AS a_id, a."name" AS a_name, a."content_type" AS a_type, a."size" AS a_size
  FROM page p
  CROSS JOIN LATERAL (
    SELECT count(*)::int AS unread FROM "messages" m
    WHERE m."group_name" = p."group_name" AND m."seq" > p."read_seq" AND m."user_id" <> $1 AND NOT m."deleted"
  ) u
  LEFT JOIN LATERAL (
    SELECT * FROM "messages" m WHERE m."group_name" = p."group_name" ORDER BY m."seq" DESC LIMIT 1
  ) lm ON true
  LEFT JOIN "attachments" a ON a."id" = lm."attachment_id"
  ORDER BY p.last_activity DESC, p."group_name" DESC`;

function lastMessage(r: ConversationRow): StoredMessage | null {
  if (r.m_id === null) return null;
  return {
    id: r.m_id,
    userId: r.m_user,
    type: r.m_type as MessageType,
    body: r.m_body,
    attachment: r.a_id === null ? null : { id: r.a_id, name: r.a_name, contentType: r.a_type, size: Number(r.a_size) },
    replyToId: r.m_reply_to,
    createdAt: new Date(r.m_created),
    updatedAt: r.m_updated === null ? null : new Date(r.m_updated),
    deleted: r.m_deleted,
    seq: Number(r.m_seq),
  };
}

function marker(r: MarkerRow, moved: boolean): ReadMarker {
  return { readSeq: Number(r.read_seq), readAt: r.read_at && new Date(r.read_at), moved, unread: Number(r.unread), lastSeq: Number(r.last_seq) };
}

export class PrismaReadState implements ReadStateStore {
  constructor(private readonly prisma: PrismaClient) {}

  /**
   * A connect storm makes thousands of members at once: their rows are written together, one
   * statement at a time (one pooled connection), instead of one statement each queueing for the
   * pool until they time out. Sorted, so two nodes' statements take the key locks in one order.
   */
  private readonly joins = new Coalescer<[user: string, group: string]>((pairs) => {
    pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
    return this.prisma
      .$executeRawUnsafe(
        `INSERT INTO "memberships" ("user_id", "group_name") SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT ("user_id", "group_name") DO NOTHING`,
        pairs.map((p) => p[0]),
        pairs.map((p) => p[1]),
      )
      .then(() => undefined);
  });

  join(group: string, user: string): Promise<void> {
    return this.joins.add([user, group]);
  }

  async leave(group: string, user: string): Promise<boolean> {
    const n = await this.prisma.$executeRawUnsafe(`DELETE FROM "memberships" WHERE "user_id" = $1 AND "group_name" = $2`, user, group);
    return n > 0;
  }

  async markRead(group: string, user: string, seq: number): Promise<ReadMarker> {
    // The group's last seq only grows, so checking it first cannot let a marker pass it.
    const g = await this.prisma.$queryRawUnsafe<{ last_seq: number }[]>(`SELECT "last_seq" FROM "groups" WHERE "name" = $1`, group);
    const last = Number(g[0]?.last_seq ?? 0);
    if (seq > last) throw new ChatError("bad_request", `seq ${seq} is beyond the group's last seq ${last}`);
    return this.upsert(group, user, seq);
  }

  async markReadTo(group: string, user: string, messageId: string): Promise<ReadMarker> {
    const m = await this.prisma.$queryRawUnsafe<{ seq: number }[]>(`SELECT "seq" FROM "messages" WHERE "id" = $1 AND "group_name" = $2`, messageId, group);
    if (m.length === 0) throw new ChatError("not_found", `message ${messageId} not found in this group`);
    return this.upsert(group, user, Number(m[0]!.seq));
  }

  private async upsert(group: string, user: string, seq: number): Promise<ReadMarker> {
    const moved = await this.prisma.$queryRawUnsafe<MarkerRow[]>(UPSERT_MARKER, user, group, seq);
    if (moved.length > 0) return marker(moved[0]!, Number(moved[0]!.read_seq) > 0);
    const current = await this.prisma.$queryRawUnsafe<MarkerRow[]>(CURRENT_MARKER, user, group);
    return marker(current[0]!, false);
  }

  async conversations(user: string, page: { limit: number; before?: ConversationCursor }) {
    const rows = await this.prisma.$queryRawUnsafe<ConversationRow[]>(
      CONVERSATIONS_SQL,
      user,
      page.limit + 1,
      page.before?.at ?? null,
      page.before?.group ?? null,
    );
    const conversations: Conversation[] = rows.slice(0, page.limit).map((r) => ({
      group: r.group_name,
      lastSeq: Number(r.last_seq),
      readSeq: Number(r.read_seq),
      unread: Number(r.unread),
      lastMessage: lastMessage(r),
      lastActivity: new Date(r.last_activity),
    }));
    return { conversations, hasMore: rows.length > page.limit };
  }

  async members(group: string, page: { limit: number; before?: string }) {
    let rows: { user_id: string; read_seq: number; joined_at: Date }[];
    if (page.before === undefined) {
      rows = await this.prisma.$queryRawUnsafe(
        `SELECT "user_id", "read_seq", "joined_at" FROM "memberships" WHERE "group_name" = $1
         ORDER BY "joined_at" DESC, "user_id" DESC LIMIT $2`,
        group,
        page.limit + 1,
      );
    } else {
      const anchor = await this.prisma.$queryRawUnsafe<{ joined_at: Date }[]>(
        `SELECT "joined_at" FROM "memberships" WHERE "group_name" = $1 AND "user_id" = $2`,
        group,
        page.before,
      );
      if (anchor.length === 0) throw new ChatError("not_found", `${page.before} is not a member of this group`);
      rows = await this.prisma.$queryRawUnsafe(
        `SELECT "user_id", "read_seq", "joined_at" FROM "memberships" WHERE "group_name" = $1
           AND ("joined_at", "user_id") < ($2::timestamptz, $3::text)
         ORDER BY "joined_at" DESC, "user_id" DESC LIMIT $4`,
        group,
        anchor[0]!.joined_at,
        page.before,
        page.limit + 1,
      );
    }
    const members: Member[] = rows.slice(0, page.limit).map((r) => ({ user: r.user_id, readSeq: Number(r.read_seq), joinedAt: new Date(r.joined_at) }));
    return { members, hasMore: rows.length > page.limit };
  }
}
