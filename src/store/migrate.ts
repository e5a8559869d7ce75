// Applies prisma/migrations the way `prisma migrate deploy` does, keeping its `_prisma_migrations`
// bookkeeping (same table, same sha256 checksums, same advisory lock key), so the two can be used
// interchangeably: Prisma's schema engine cannot be downloaded on every machine that runs us.
import { createHash, randomUUID } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { ROOT } from "../paths.ts";

export const MIGRATIONS_DIR = path.join(ROOT, "prisma/migrations/");

/** Prisma Migrate's own advisory lock key: a node and `prisma migrate deploy` exclude each other. */
const PRISMA_ADVISORY_LOCK = 72707369;

/** One database session: the lock and the migrations must run on the same connection. */
export interface SqlSession {
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<{ rows: T[] }>;
  /** Runs a script of several statements. */
  exec(sql: string): Promise<unknown>;
}

export interface Migration {
  name: string;
  sql: string;
  checksum: string;
}

export async function readMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const names = entries.filter((e) => e.isDirectory()).map((e) => e.name).sort();
  return Promise.all(
    names.map(async (name) => {
      const sql = await readFile(path.join(dir, name, "migration.sql"), "utf8");
      return { name, sql, checksum: createHash("sha256").update(sql).digest("hex") };
    }),
  );
}

const BOOKKEEPING_DDL = `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)`;

/** Applies every migration not yet applied, in name order; returns the names it applied. */
export async function applyMigrations(db: SqlSession, migrations: Migration[]): Promise<string[]> {
  await db.query("SELECT pg_advisory_lock($1)", [PRISMA_ADVISORY_LOCK]);
  try {
    await db.exec(BOOKKEEPING_DDL);
    const done = await db.query<{ migration_name: string; checksum: string; finished_at: Date | null }>(
      `SELECT migration_name, checksum, finished_at FROM "_prisma_migrations" WHERE rolled_back_at IS NULL`,
    );
    const applied = new Map(done.rows.map((r) => [r.migration_name, r]));
    const ran: string[] = [];
    for (const m of migrations) {
      const prior = applied.get(m.name);
      if (prior) {
        if (!prior.finished_at) throw new Error(`migration ${m.name} failed earlier and needs manual repair`);
        if (prior.checksum !== m.checksum) throw new Error(`migration ${m.name} was edited after it was applied`);
        continue;
      }
      // Each migration and its bookkeeping row commit together or not at all.
      await db.exec("BEGIN");
      try {
        await db.exec(m.sql);
        await db.query(
          `INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at, finished_at, applied_steps_count)
           VALUES ($1, $2, $3, now(), now(), 1)`,
          [randomUUID(), m.checksum, m.name],
        );
        await db.exec("COMMIT");
      } catch (err) {
        await db.exec("ROLLBACK");
        throw new Error(`migration ${m.name} failed: ${(err as Error).message}`);
      }
      ran.push(m.name);
    }
    return ran;
  } finally {
    await db.query("SELECT pg_advisory_unlock($1)", [PRISMA_ADVISORY_LOCK]);
  }
}
