// Build step, not part of the node: `node dist/make-template.js <archive>` (scripts/build.mjs runs
// it) makes a fresh embedded data directory with PGlite's initdb, applies every migration, closes
// it cleanly and packs it as a gzipped tar at <archive>, described by <archive minus .tar.gz>.json
// (see embedded.ts for how a node uses it).
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { packDirectory } from "./data-dir-archive.ts";
import { openEmbedded, pgliteVersion, templateMetaFile, type TemplateMeta } from "./embedded.ts";
import { readMigrations } from "./migrate.ts";

const archive = process.argv[2];
if (!archive || !archive.endsWith(".tar.gz")) {
  console.error("usage: make-template <archive.tar.gz>");
  process.exit(2);
}
const scratch = await mkdtemp(path.join(os.tmpdir(), "chat-pglite-template-"));
try {
  const migrations = await readMigrations();
  const db = await openEmbedded(scratch, migrations, { template: false });
  // A clean shutdown leaves a checkpointed directory: nothing to replay when it is first opened.
  await db.close();
  const meta: TemplateMeta = { pglite: await pgliteVersion(), migrations: migrations.map((m) => ({ name: m.name, checksum: m.checksum })) };
  await writeFile(archive, await packDirectory(path.join(scratch, "pglite")));
  await writeFile(templateMetaFile(archive), JSON.stringify(meta, null, 2) + "\n");
} finally {
  await rm(scratch, { recursive: true, force: true });
}
