// WebhookOutbox over PostgreSQL (see outbox.ts for the guarantees). A group is leased by leasing
// its head (oldest pending row) with FOR UPDATE SKIP LOCKED, plus the rows behind it in the same
// statement; other claimers see a leased head and skip the whole group.
import type { PrismaClient } from "./generated/client.ts";
import { parseOutboxEvent, type DeadLetter, type OutboxRow, type WebhookOutbox } from "./outbox.ts";

// Heads are found by a skip scan over the (state, group_name, seq) index: one index probe per group
// with pending rows, read lazily until LIMIT claimable heads are locked, instead of sorting every
// pending row (a backlog of 300k rows: 1 ms instead of 300 ms). It starts after `$5` (the last
// group this claimer took) so that under sustained load every group gets its turn.
const CLAIM = `
WITH RECURSIVE heads AS (
  (SELECT "group_name", "seq" FROM "webhook_outbox" WHERE "state" = 'pending' AND "group_name" > $5 ORDER BY "state", "group_name", "seq" LIMIT 1)
  UNION ALL
  SELECT n."group_name", n."seq" FROM heads h CROSS JOIN LATERAL (
    SELECT x."group_name", x."seq" FROM "webhook_outbox" x
    WHERE x."state" = 'pending' AND x."group_name" > h."group_name" ORDER BY x."state", x."group_name", x."seq" LIMIT 1
  ) n
), due AS (
  SELECT o."group_name", o."seq" FROM heads h JOIN "webhook_outbox" o ON o."group_name" = h."group_name" AND o."seq" = h."seq"
  WHERE o."state" = 'pending' AND o."next_attempt_at" <= now() AND (o."lease_until" IS NULL OR o."lease_until" < now())
  LIMIT $1
  FOR UPDATE OF o SKIP LOCKED
), batch AS (
  SELECT b."group_name", b."seq" FROM due d CROSS JOIN LATERAL (
    SELECT x."group_name", x."seq" FROM "webhook_outbox" x
    WHERE x."group_name" = d."group_name" AND x."state" = 'pending' AND x."seq" >= d."seq"
    ORDER BY x."seq" LIMIT $2
  ) b
)
UPDATE "webhook_outbox" w SET "lease_owner" = $3, "lease_until" = now() + make_interval(secs => $4::float8 / 1000)
FROM batch WHERE w."group_name" = batch."group_name" AND w."seq" = batch."seq"
RETURNING w."group_name", w."seq", w."attempts", w."event", w."created_at"`;

export class PrismaWebhookOutbox implements WebhookOutbox {
  constructor(private readonly prisma: PrismaClient) {}

  /** Where the next claim's scan starts (the last group claimed): every group gets its turn. */
  private cursor = "";

  async claim(owner: string, opts: { groups: number; perGroup: number; leaseMs: number }): Promise<OutboxRow[][]> {
    const rows = await this.claimFrom(this.cursor, owner, opts, opts.groups);
    // Wrap around: the groups before the cursor, for the room left.
    const left = opts.groups - new Set(rows.map((r) => r.group_name)).size;
    if (this.cursor !== "" && left > 0) rows.push(...(await this.claimFrom("", owner, opts, left)));
    const byGroup = new Map<string, OutboxRow[]>();
    for (const r of rows) {
      let list = byGroup.get(r.group_name);
      if (!list) byGroup.set(r.group_name, (list = []));
      list.push({ group: r.group_name, seq: Number(r.seq), attempts: Number(r.attempts), event: parseOutboxEvent(r.event), storedAt: new Date(r.created_at) });
    }
    const names = [...byGroup.keys()].sort();
    this.cursor = names.length === 0 ? "" : names[names.length - 1]!;
    return [...byGroup.values()].map((list) => list.sort((a, b) => a.seq - b.seq));
  }

  private claimFrom(after: string, owner: string, opts: { perGroup: number; leaseMs: number }, groups: number) {
    return this.prisma.$queryRawUnsafe<{ group_name: string; seq: number; attempts: number; event: string | null; created_at: Date | string }[]>(CLAIM, groups, opts.perGroup, owner, opts.leaseMs, after);
  }

  async delivered(owner: string, group: string, seqs: number[]): Promise<void> {
    await this.prisma.$executeRawUnsafe(
      `WITH gone AS (DELETE FROM "webhook_outbox" WHERE "group_name" = $1 AND "seq" = ANY($2::int[]) AND "lease_owner" = $3 RETURNING 1)
       UPDATE "webhook_outbox" SET "lease_owner" = NULL, "lease_until" = NULL WHERE "group_name" = $1 AND "lease_owner" = $3 AND NOT ("seq" = ANY($2::int[]))`,
      group,
      seqs,
      owner,
    );
  }

  async failed(owner: string, group: string, seq: number, error: string, retryInMs: number, dead: boolean): Promise<void> {
    await this.prisma.$executeRawUnsafe(
      `WITH head AS (
         UPDATE "webhook_outbox" SET "attempts" = "attempts" + 1, "last_error" = $4, "state" = $6,
           "next_attempt_at" = now() + make_interval(secs => $5::float8 / 1000), "lease_owner" = NULL, "lease_until" = NULL
         WHERE "group_name" = $1 AND "seq" = $2 AND "lease_owner" = $3 RETURNING 1)
       UPDATE "webhook_outbox" SET "lease_owner" = NULL, "lease_until" = NULL WHERE "group_name" = $1 AND "lease_owner" = $3 AND "seq" <> $2`,
      group,
      seq,
      owner,
      error.slice(0, 1000),
      retryInMs,
      dead ? "dead" : "pending",
    );
  }

  async releaseAll(owner: string): Promise<void> {
    await this.prisma.$executeRawUnsafe(`UPDATE "webhook_outbox" SET "lease_owner" = NULL, "lease_until" = NULL WHERE "lease_owner" = $1`, owner);
  }

  async counts(): Promise<{ pending: number; dead: number }> {
    const rows = await this.prisma.$queryRawUnsafe<{ state: string; n: number }[]>(`SELECT "state", count(*)::int AS n FROM "webhook_outbox" GROUP BY "state"`);
    const of = (s: string) => Number(rows.find((r) => r.state === s)?.n ?? 0);
    return { pending: of("pending"), dead: of("dead") };
  }

  async deadLetters(limit: number): Promise<DeadLetter[]> {
    const rows = await this.prisma.webhookOutbox.findMany({ where: { state: "dead" }, orderBy: [{ groupName: "asc" }, { seq: "asc" }], take: limit });
    return rows.map((r) => ({ group: r.groupName, seq: r.seq, attempts: r.attempts, lastError: r.lastError, createdAt: r.createdAt }));
  }

  async requeue(filter: { group?: string; seq?: number }): Promise<number> {
    const { count } = await this.prisma.webhookOutbox.updateMany({
      where: { state: "dead", ...(filter.group !== undefined ? { groupName: filter.group } : {}), ...(filter.seq !== undefined ? { seq: filter.seq } : {}) },
      data: { state: "pending", attempts: 0, nextAttemptAt: new Date(0), leaseOwner: null, leaseUntil: null },
    });
    return count;
  }
}
