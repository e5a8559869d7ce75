// WebhookOutbox over PostgreSQL (see outbox.ts for the guarantees). A group is leased by leasing
// its head (oldest pending row) with FOR UPDATE SKIP LOCKED, plus the rows behind it in the same
// statement; other claimers see a leased head and skip the whole group.
import type { PrismaClient } from "./generated/client.ts";
import type { DeadLetter, OutboxRow, WebhookOutbox } from "./outbox.ts";

const CLAIM = `
WITH heads AS (
  SELECT DISTINCT ON ("group_name") "group_name", "seq" FROM "webhook_outbox"
  WHERE "state" = 'pending' ORDER BY "group_name", "seq"
), due AS (
  SELECT o."group_name", o."seq" FROM "webhook_outbox" o JOIN heads h ON h."group_name" = o."group_name" AND h."seq" = o."seq"
  WHERE o."state" = 'pending' AND o."next_attempt_at" <= now() AND (o."lease_until" IS NULL OR o."lease_until" < now())
  ORDER BY o."next_attempt_at"
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
RETURNING w."group_name", w."seq", w."attempts"`;

export class PrismaWebhookOutbox implements WebhookOutbox {
  constructor(private readonly prisma: PrismaClient) {}

  async claim(owner: string, opts: { groups: number; perGroup: number; leaseMs: number }): Promise<OutboxRow[][]> {
    const rows = await this.prisma.$queryRawUnsafe<{ group_name: string; seq: number; attempts: number }[]>(CLAIM, opts.groups, opts.perGroup, owner, opts.leaseMs);
    const byGroup = new Map<string, OutboxRow[]>();
    for (const r of rows) {
      let list = byGroup.get(r.group_name);
      if (!list) byGroup.set(r.group_name, (list = []));
      list.push({ group: r.group_name, seq: Number(r.seq), attempts: Number(r.attempts) });
    }
    return [...byGroup.values()].map((list) => list.sort((a, b) => a.seq - b.seq));
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
