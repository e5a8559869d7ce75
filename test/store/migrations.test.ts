// The migration runner: Prisma Migrate's layout and bookkeeping, safe for several nodes
// starting at once on an empty database.
import { mkdtemp, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import t from "tap";
import { migratePostgres, openDatabase } from "../../src/store/database.ts";
import { MIGRATIONS_DIR, readMigrations } from "../../src/store/migrate.ts";
import { ensureBuilt } from "../helpers/node.ts";
import { freshDatabase, sql } from "../helpers/services.ts";

t.test("migrations are in Prisma Migrate's layout", async (t) => {
  const entries = await readdir(MIGRATIONS_DIR);
  t.ok(entries.includes("migration_lock.toml"));
  t.match(await readFile(path.join(MIGRATIONS_DIR, "migration_lock.toml"), "utf8"), /provider = "postgresql"/);
  for (const m of await readMigrations()) t.match(m.name, /^\d{14}_[a-z0-9_]+$/, `${m.name} is named like Prisma's`);
});

t.test("five nodes migrating one empty database at once apply each migration exactly once", async (t) => {
  const url = await freshDatabase(t);
  const results = await Promise.all(Array.from({ length: 5 }, () => migratePostgres(url)));
  const all = results.flat();
  const names = (await readMigrations()).map((m) => m.name);
  t.same(all.sort(), names.sort(), "each applied by exactly one node");
  const pg = await sql(t, url);
  const rows = (await pg.query(`SELECT migration_name, checksum, finished_at, applied_steps_count, rolled_back_at FROM "_prisma_migrations" ORDER BY migration_name`)).rows;
  const migrations = await readMigrations();
  t.equal(rows.length, migrations.length);
  for (const [i, m] of migrations.entries()) {
    t.match(rows[i], { migration_name: m.name, applied_steps_count: 1, rolled_back_at: null });
    t.equal(rows[i].checksum, createHash("sha256").update(await readFile(path.join(MIGRATIONS_DIR, m.name, "migration.sql"))).digest("hex"), "sha256 checksum as Prisma computes it");
    t.ok(rows[i].finished_at instanceof Date);
  }
  t.same(await migratePostgres(url), [], "a second run applies nothing");
});

t.test("an edited migration is refused rather than silently skipped", async (t) => {
  const url = await freshDatabase(t);
  await migratePostgres(url);
  const pg = await sql(t, url);
  await pg.query(`UPDATE "_prisma_migrations" SET checksum = 'tampered'`);
  await t.rejects(migratePostgres(url), /edited after it was applied/);
});

t.test("the embedded PGlite database migrates itself at open and keeps the same bookkeeping", async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "chat-pglite-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  ensureBuilt(); // dist/pglite-template.tar.gz
  const first = await openDatabase({ dataDir: dir });
  // A fresh data directory comes from the build's template, migrated when the build made it
  // (test/store/embedded.test.ts: a migration the template lacks is applied at open).
  t.equal(first.dataDirFrom, "template");
  t.same(first.migrationsApplied, [], "the template's migrations are this checkout's");
  await first.store.close();
  const second = await openDatabase({ dataDir: dir });
  t.same(second.migrationsApplied, [], "already applied");
  const rows = await second.prisma.$queryRaw<{ n: bigint }[]>`SELECT count(*) AS n FROM "_prisma_migrations"`;
  t.equal(Number(rows[0]!.n), (await readMigrations()).length);
  await second.store.close();
});
