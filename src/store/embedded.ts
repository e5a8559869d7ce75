// The embedded database: PGlite (PostgreSQL compiled to WebAssembly) on a data directory under
// DATA_DIR, migrated before it is handed out.
//
// A fresh data directory is not made by initdb at start: initdb inside WebAssembly takes 3-20 s
// and leaves a second PostgreSQL instance's memory behind. `npm run build` makes one data
// directory, migrated, and packs it as dist/pglite-template.tar.gz (see template-cli.ts); a node
// whose data directory does not exist yet unpacks that and opens it like an existing one. The
// template is used only when it was made by the installed PGlite and its migrations are the
// first of ours, unchanged; otherwise the node falls back to initdb, as without a template.
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rmdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { PGlite } from "@electric-sql/pglite";
import { ROOT } from "../paths.ts";
import { unpackArchive } from "./data-dir-archive.ts";
import { applyMigrations, type Migration, type SqlSession } from "./migrate.ts";

/**
 * The embedded PostgreSQL's memory settings: one process serving one node's chat, so the
 * server defaults (128 MB of shared buffers, 4 MB per sort) are cut to what a dev database
 * needs. RSS of an idle embedded node: docs/benchmarks.md.
 */
export const EMBEDDED_SETTINGS = ["-c", "shared_buffers=16MB", "-c", "wal_buffers=1MB", "-c", "work_mem=1MB", "-c", "maintenance_work_mem=8MB", "-c", "temp_buffers=1MB"];

export const TEMPLATE_FILE = path.join(ROOT, "dist", "pglite-template.tar.gz");

/** What a template was made from: dist/pglite-template.json beside the archive. */
export interface TemplateMeta {
  pglite: string;
  migrations: { name: string; checksum: string }[];
}

export const templateMetaFile = (archive: string) => archive.replace(/\.tar\.gz$/, ".json");

/** The installed PGlite's version (its package.json is not exported, so found beside its entry). */
export async function pgliteVersion(): Promise<string> {
  let dir = path.dirname(fileURLToPath(import.meta.resolve("@electric-sql/pglite")));
  for (;;) {
    const file = path.join(dir, "package.json");
    if (existsSync(file)) {
      const pkg = JSON.parse(await readFile(file, "utf8")) as { name?: string; version?: string };
      if (pkg.name === "@electric-sql/pglite" && pkg.version) return pkg.version;
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error("cannot find @electric-sql/pglite's package.json");
    dir = up;
  }
}

/** Why the template at `archive` cannot seed a data directory for `migrations`, or null if it can. */
export async function templateUnusable(archive: string, migrations: Migration[]): Promise<string | null> {
  if (!existsSync(archive)) return "no template (run npm run build)";
  let meta: TemplateMeta;
  try {
    meta = JSON.parse(await readFile(templateMetaFile(archive), "utf8")) as TemplateMeta;
  } catch (err) {
    return `template description unreadable: ${(err as Error).message}`;
  }
  const installed = await pgliteVersion();
  if (meta.pglite !== installed) return `template made by PGlite ${meta.pglite}, installed ${installed}`;
  if (!Array.isArray(meta.migrations) || meta.migrations.length > migrations.length) return "template has migrations this checkout does not";
  for (const [i, m] of meta.migrations.entries()) {
    if (m.name !== migrations[i]!.name || m.checksum !== migrations[i]!.checksum) return `template's migration ${m.name} differs from this checkout's`;
  }
  return null;
}

export const sqlSession = (lite: PGlite): SqlSession => ({ query: (sql, params) => lite.query(sql, params) as never, exec: (sql) => lite.exec(sql) });

/**
 * Closes `lite` once every query, exec and transaction asked for before the close has settled;
 * one asked for after it fails with "the embedded database is closed". PGlite's own close()
 * does not wait: a query in flight when it runs spins forever at 100 % CPU inside PGlite's
 * protocol loop, a synchronous loop, so no timer fires and SIGTERM's shutdown deadline never
 * comes (electric-sql/pglite#1058, open for 0.4.x).
 */
export function closeWhenIdle(lite: PGlite): () => Promise<void> {
  const closedError = () => new Error("the embedded database is closed");
  let closing = false;
  let shut = false;
  const inflight = new Set<Promise<unknown>>();
  // The entry points the Prisma adapter and the migrations use; a transaction's own statements
  // run inside its call, so they count with it.
  for (const name of ["query", "exec", "transaction"] as const) {
    const original = (lite[name] as (...args: unknown[]) => Promise<unknown>).bind(lite);
    (lite as unknown as Record<string, unknown>)[name] = (...args: unknown[]) => {
      if (closing) return Promise.reject(closedError());
      const p = original(...args);
      inflight.add(p);
      const settled = () => void inflight.delete(p);
      p.then(settled, settled);
      return p;
    };
  }
  // Anything else reaching PGlite's query lock once close() runs is refused too.
  const run = lite._runExclusiveQuery.bind(lite);
  lite._runExclusiveQuery = function guarded<T>(fn: () => Promise<T>): Promise<T> {
    return run<T>(async () => {
      if (shut) throw closedError();
      return await fn();
    });
  };
  let closed: Promise<void> | null = null;
  return () =>
    (closed ??= (async () => {
      closing = true;
      while (inflight.size) await Promise.allSettled([...inflight]);
      shut = true;
      await lite.close();
    })());
}

export interface Embedded {
  lite: PGlite;
  migrationsApplied: string[];
  /** Where the data directory came from: unpacked from the template, made by initdb, or already there. */
  dataDirFrom: "template" | "initdb" | "existing";
  /** Closes the database once the queries in flight are done (closeWhenIdle). */
  close: () => Promise<void>;
}

async function isMissingOrEmpty(dir: string): Promise<boolean> {
  try {
    return (await readdir(dir)).length === 0;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return true;
    throw err;
  }
}

/**
 * Opens (making it if needed) the embedded database under `dataDir`/pglite and applies
 * `migrations`. `template`: the archive a fresh data directory is unpacked from (default
 * dist/pglite-template.tar.gz), or false to run initdb.
 */
export async function openEmbedded(dataDir: string, migrations: Migration[], opts: { template?: string | false; onTemplateSkipped?: (reason: string) => void } = {}): Promise<Embedded> {
  const dir = path.resolve(dataDir, "pglite");
  let dataDirFrom: Embedded["dataDirFrom"] = existsSync(path.join(dir, "PG_VERSION")) ? "existing" : "initdb";
  if (dataDirFrom === "initdb" && opts.template !== false && (await isMissingOrEmpty(dir))) {
    const archive = opts.template ?? TEMPLATE_FILE;
    const why = await templateUnusable(archive, migrations);
    if (why === null) {
      if (existsSync(dir)) await rmdir(dir);
      await mkdir(path.dirname(dir), { recursive: true });
      unpackArchive(archive, dir);
      dataDirFrom = "template";
    } else {
      opts.onTemplateSkipped?.(why);
    }
  }
  // Loaded only here: a node on PostgreSQL never pays for the embedded database's code.
  const { PGlite } = await import("@electric-sql/pglite");
  await mkdir(dir, { recursive: true });
  const options = { dataDir: dir, startParams: [...PGlite.defaultStartParams, ...EMBEDDED_SETTINGS] };
  let lite = await PGlite.create(options);
  if (dataDirFrom === "initdb") {
    // initdb's WebAssembly instance and memory (~400 MB) stay alive until the first handle is
    // closed: close it and open the directory again.
    await lite.close();
    lite = await PGlite.create(options);
  }
  const close = closeWhenIdle(lite);
  try {
    const migrationsApplied = await applyMigrations(sqlSession(lite), migrations);
    return { lite, migrationsApplied, dataDirFrom, close };
  } catch (err) {
    await close();
    throw err;
  }
}
