// The embedded database's data directory: a fresh DATA_DIR is unpacked from the template the
// build made (already migrated) rather than made by initdb, keeps its data across restarts,
// and a template that does not match this checkout is not used. Closing it while queries are
// in flight waits for them instead of hanging the process.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { copyFile, mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import t from "tap";
import { unpackArchive } from "../../src/store/data-dir-archive.ts";
import { openDatabase } from "../../src/store/database.ts";
import { openEmbedded, pgliteVersion, TEMPLATE_FILE, templateMetaFile, templateUnusable, type TemplateMeta } from "../../src/store/embedded.ts";
import { readMigrations, type Migration } from "../../src/store/migrate.ts";
import { ensureBuilt } from "../helpers/node.ts";
import { tempDir, within } from "../helpers/probe.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
ensureBuilt(); // dist/pglite-template.tar.gz, for this checkout's migrations
const migrations = await readMigrations();

const message = (group: string, body: string) => ({ group, user: "alice", type: "text" as const, body, attachment: null, replyTo: null });

t.test("a fresh DATA_DIR is unpacked from the build's template: migrated, it stores, and keeps its data across a restart", async (t) => {
  const dataDir = await tempDir(t, "chat-embedded-");
  const first = await openDatabase({ dataDir });
  t.equal(first.dataDirFrom, "template", "unpacked, not made by initdb");
  t.same(first.migrationsApplied, [], "every migration came with the template");
  const rows = await first.prisma.$queryRaw<{ name: string }[]>`SELECT migration_name AS name FROM "_prisma_migrations" ORDER BY migration_name`;
  t.same(rows.map((r) => r.name), migrations.map((m) => m.name), "and is recorded as applied");
  t.match(await first.store.createMessage(message("lobby", "before the restart")), { seq: 1 });
  await first.store.close();

  const second = await openDatabase({ dataDir });
  t.equal(second.dataDirFrom, "existing", "the second start opens what the first left");
  t.equal(await second.store.lastSeq("lobby"), 1);
  t.match((await second.store.history({ group: "lobby", limit: 10 })).messages, [{ body: "before the restart" }]);
  t.match(await second.store.createMessage(message("lobby", "after the restart")), { seq: 2 }, "seq goes on");
  await second.store.close();
});

t.test("an empty pglite directory (made by hand, or left by a failed start) is seeded from the template too", async (t) => {
  const dataDir = await tempDir(t, "chat-embedded-");
  await mkdir(path.join(dataDir, "pglite"));
  const db = await openEmbedded(dataDir, migrations);
  t.equal(db.dataDirFrom, "template");
  t.notOk(existsSync(path.join(dataDir, "pglite.unpacking")), "no scratch directory left");
  await db.close();
});

t.test("a template with fewer migrations than the checkout is used, and the rest are applied at open", async (t) => {
  const dataDir = await tempDir(t, "chat-embedded-");
  const extra: Migration = { name: "29991231000000_test_only", sql: "CREATE TABLE test_only (id int PRIMARY KEY)", checksum: "0".repeat(64) };
  const db = await openEmbedded(dataDir, [...migrations, extra]);
  t.equal(db.dataDirFrom, "template");
  t.same(db.migrationsApplied, [extra.name], "only the one the template lacks");
  t.same((await db.lite.query("SELECT count(*)::int AS n FROM test_only")).rows, [{ n: 0 }], "and it ran");
  await db.close();
});

t.test("a template that does not match this checkout is not used, and says why", async (t) => {
  const dir = await tempDir(t, "chat-template-");
  const archive = path.join(dir, "pglite-template.tar.gz");
  const meta: TemplateMeta = JSON.parse(await (await import("node:fs/promises")).readFile(templateMetaFile(TEMPLATE_FILE), "utf8"));
  const withMeta = async (m: unknown) => {
    await copyFile(TEMPLATE_FILE, archive);
    await writeFile(templateMetaFile(archive), typeof m === "string" ? m : JSON.stringify(m));
    return templateUnusable(archive, migrations);
  };
  t.equal(meta.pglite, await pgliteVersion(), "the build's template was made by the installed PGlite");
  t.equal(await withMeta(meta), null, "the build's own description: usable");
  t.equal(await withMeta({ ...meta, migrations: meta.migrations.slice(0, 1) }), null, "fewer migrations, the same first ones: usable");
  t.match(await withMeta({ ...meta, pglite: "0.0.1" }), /made by PGlite 0\.0\.1, installed \d/);
  t.match(await withMeta({ ...meta, migrations: [...meta.migrations, { name: "29990101000000_newer", checksum: "x" }] }), /migrations this checkout does not/);
  const edited = meta.migrations.map((m, i) => (i === 1 ? { ...m, checksum: "edited" } : m));
  t.match(await withMeta({ ...meta, migrations: edited }), new RegExp(`migration ${meta.migrations[1]!.name} differs`));
  const renamed = meta.migrations.map((m, i) => (i === 0 ? { ...m, name: "20000101000000_other" } : m));
  t.match(await withMeta({ ...meta, migrations: renamed }), /migration 20000101000000_other differs/);
  t.match(await withMeta("{not json"), /template description unreadable/);
  t.match(await templateUnusable(path.join(dir, "absent.tar.gz"), migrations), /no template/);
});

t.test("closing while queries and a transaction are in flight lets them finish, refuses later ones, and never blocks the event loop", async (t) => {
  const dir = path.join(await tempDir(t, "chat-embedded-"), "pglite");
  unpackArchive(TEMPLATE_FILE, dir);
  const child = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "test/helpers/pglite-close-race.ts"), dir], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  t.teardown(() => void child.kill("SIGKILL"));
  let out = "";
  let err = "";
  child.stdout.setEncoding("utf8").on("data", (d) => (out += d));
  child.stderr.setEncoding("utf8").on("data", (d) => (err += d));
  // PGlite's own close() spins forever here; the bound only has to outlast a slow, loaded start.
  const code = await within(new Promise((r) => child.once("exit", r)), 90_000, "the close race to end (a hang is electric-sql/pglite#1058)");
  t.equal(code, 0, `exits 0 (stderr: ${err.slice(0, 2000)})`);
  const r = JSON.parse(out.trim().split("\n").pop()!);
  t.same(r.queries, [{ ok: true, value: [{ n: 1 }] }, { ok: true, value: [{ n: 1 }] }, { ok: true, value: [3] }], "the queries and the transaction asked for before close() completed");
  t.same(r.closed, { ok: true, value: null }, "close() resolved");
  t.same(r.closedAgain, { ok: true, value: null }, "a second close() too");
  t.same(r.late, { ok: false, error: "the embedded database is closed" }, "a query asked for after close() is refused");
  t.ok(r.isClosed, "PGlite is closed");
  t.ok(r.ticks > 0, "timers kept firing");
});
