// `npm run build`: compiles the service for production. The node's entry points become plain
// JavaScript bundles in dist/ (our TypeScript, the generated Prisma client and the pure-JavaScript
// npm packages inlined; see RUNTIME_PACKAGES for what stays in node_modules), and the chat page
// becomes content-hashed files in dist/page/. Nothing here runs in production: `npm start` is
// `node dist/main.js`.
//
//   node scripts/build.mjs             build
//   node scripts/build.mjs --if-stale  build only when the sources changed since the last build
//
// dist/build-info.json records a hash of every input; it is written last, so a dist/ with a
// matching hash is complete. Concurrent builders (parallel test files) take dist.lock in turn.
import { createHash } from "node:crypto";
import { spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../", import.meta.url));
export const DIST = path.join(ROOT, "dist");
const INFO = path.join(DIST, "build-info.json");
const LOCK = path.join(ROOT, "dist.lock");
const PAGE_SRC = path.join(ROOT, "src/client/page");

/** The node's entry points: dist/<name>.js (main loads node once V8 has its settings; make-template is a build step, run below). */
const ENTRIES = { main: "src/main.ts", node: "src/node.ts", "migrate-cli": "src/store/migrate-cli.ts", "make-template": "src/store/template-cli.ts" };
/**
 * Templates of the embedded data directory, kept across builds and shared by every checkout of
 * this user (dist/ is wiped on each build), named by what makes their content: the installed
 * PGlite, the migrations and TEMPLATE_FORMAT.
 */
const TEMPLATE_CACHE = path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache"), "chatroom");
/** Bump when src/store/template-cli.ts makes a different directory from the same PGlite and migrations. */
const TEMPLATE_FORMAT = 1;

/** Hash of everything a build reads: src/ (generated client included), the migrations, this script, package.json. */
export function sourceHash() {
  const hash = createHash("sha256");
  const files = [];
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) files.push(p);
    }
  };
  walk(path.join(ROOT, "src"));
  walk(path.join(ROOT, "prisma/migrations"));
  files.push(fileURLToPath(import.meta.url), path.join(ROOT, "package.json"));
  for (const f of files.sort()) hash.update(path.relative(ROOT, f)).update("\0").update(readFileSync(f)).update("\0");
  return hash.digest("hex");
}

function builtHash() {
  try {
    return JSON.parse(readFileSync(INFO, "utf8")).sources;
  } catch {
    return undefined;
  }
}

/**
 * Bundles the chat page: app.ts (SDK and protocol schemas included) and app.css under
 * content-hashed names, and index.html pointing at them as /assets/<name>. Returns the files by name; the dev
 * server (running from sources) serves the same thing from memory.
 */
export async function bundlePage({ minify = true } = {}) {
  const esbuild = await import("esbuild");
  const out = await esbuild.build({
    entryPoints: [path.join(PAGE_SRC, "app.ts"), path.join(PAGE_SRC, "app.css")],
    entryNames: "[name]-[hash]",
    outdir: "/page",
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    minify,
    write: false,
    legalComments: "none",
    logLevel: "silent",
  });
  const files = new Map();
  let html = readFileSync(path.join(PAGE_SRC, "index.html"), "utf8");
  for (const f of out.outputFiles) {
    const name = path.basename(f.path);
    files.set(name, f.text);
    const plain = name.replace(/-[A-Z0-9]+\./, ".");
    if (!html.includes(`"/${plain}"`)) throw new Error(`index.html does not reference /${plain}`);
    html = html.replace(`"/${plain}"`, `"/assets/${name}"`);
  }
  files.set("index.html", html);
  return files;
}

/**
 * The generated Prisma client embeds its query compiler as a 4.6 MB base64 module, which the
 * node keeps in its heap twice (the module's source and the string) for its whole life. The
 * build decodes it once into dist/<name>.wasm and makes the client read that file instead.
 */
function queryCompilerFromFile(wasmFiles) {
  return {
    name: "prisma-query-compiler-file",
    setup(build) {
      build.onLoad({ filter: /[\\/]generated[\\/]internal[\\/]class\.ts$/ }, async (args) => {
        let text = readFileSync(args.path, "utf8");
        const pattern = /getQueryCompilerWasmModule: async \(\) => \{\s*const \{ wasm \} = await import\("(@prisma\/client\/runtime\/([\w.]+)\.wasm-base64\.mjs)"\)\s*return await decodeBase64AsWasm\(wasm\)\s*\}/;
        const m = pattern.exec(text);
        if (!m) throw new Error(`${args.path}: the query compiler's loader has an unexpected shape; update scripts/build.mjs`);
        const [, specifier, name] = m;
        const { wasm } = await import(specifier);
        wasmFiles.set(`${name}.wasm`, Buffer.from(wasm, "base64"));
        text = text.replace(
          pattern,
          `getQueryCompilerWasmModule: async () => {
    const { readFile } = await import("node:fs/promises")
    return await WebAssembly.compile(await readFile(new URL("./${name}.wasm", import.meta.url)))
  }`,
        );
        return { contents: text, loader: "ts" };
      });
    },
  };
}

/**
 * dist/pglite-template.tar.gz (+ .json): a fresh embedded data directory, initdb'd and migrated,
 * which a node unpacks instead of running initdb on a fresh DATA_DIR (src/store/embedded.ts).
 * Made by dist/make-template.js in a child process (initdb in WebAssembly takes seconds and
 * hundreds of MB; a minute on a loaded machine), and reused from TEMPLATE_CACHE while the
 * installed PGlite, the migrations and TEMPLATE_FORMAT are the same.
 */
async function buildTemplate() {
  const hash = createHash("sha256");
  hash.update(`format ${TEMPLATE_FORMAT}`);
  const pglite = JSON.parse(readFileSync(path.join(ROOT, "node_modules/@electric-sql/pglite/package.json"), "utf8")).version;
  hash.update(`\0pglite ${pglite}\0`);
  const migrations = path.join(ROOT, "prisma/migrations");
  for (const name of readdirSync(migrations).sort()) {
    const file = path.join(migrations, name, "migration.sql");
    if (existsSync(file)) hash.update(name).update("\0").update(readFileSync(file)).update("\0");
  }
  const key = hash.digest("hex").slice(0, 16);
  const cached = path.join(TEMPLATE_CACHE, `pglite-template-${key}.tar.gz`);
  const cachedMeta = cached.replace(/\.tar\.gz$/, ".json");
  if (!existsSync(cached) || !existsSync(cachedMeta)) {
    mkdirSync(TEMPLATE_CACHE, { recursive: true });
    const scratch = path.join(TEMPLATE_CACHE, `making-${process.pid}.tar.gz`);
    // Asynchronously: withLock's timer keeps the lock fresh meanwhile.
    const child = spawn(process.execPath, ["--liftoff-only", path.join(DIST, "make-template.js"), scratch], { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"], timeout: 300_000 });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (d) => (stderr += d));
    const [code, signal] = await new Promise((resolve, reject) => child.once("error", reject).once("close", (c, s) => resolve([c, s])));
    if (code !== 0) throw new Error(`making the embedded data directory template failed (${code ?? signal}): ${stderr}`);
    renameSync(scratch.replace(/\.tar\.gz$/, ".json"), cachedMeta);
    renameSync(scratch, cached);
    // Other checkouts may use other migrations: the four most recent templates stay.
    const old = readdirSync(TEMPLATE_CACHE)
      .filter((f) => /^pglite-template-\w+\.tar\.gz$/.test(f))
      .map((f) => ({ f, at: statSync(path.join(TEMPLATE_CACHE, f)).mtimeMs }))
      .sort((a, b) => b.at - a.at)
      .slice(4);
    for (const { f } of old) for (const ext of [".tar.gz", ".json"]) rmSync(path.join(TEMPLATE_CACHE, f.replace(/\.tar\.gz$/, ext)), { force: true });
  }
  copyFileSync(cached, path.join(DIST, "pglite-template.tar.gz"));
  copyFileSync(cachedMeta, path.join(DIST, "pglite-template.json"));
}

/**
 * npm packages the node still loads from node_modules at run time; every other one is bundled.
 * Loaded one file at a time, a PostgreSQL node spent ~60 % of its start-up CPU on Node's
 * per-module work (resolution, realpath, format detection, CommonJS export lexing), 0.65 s to
 * ready against 0.25 s bundled (bench/performance-log.md, "bundling the npm packages").
 * - uWebSockets.js: a native addon (a prebuilt .node per platform and ABI, src/uws/uws.ts).
 * - PGlite and its Prisma adapter: WebAssembly and a file-system image read beside their
 *   modules, and loaded only by an embedded node (src/store/database.ts, embedded.ts), never
 *   parsed by a node on PostgreSQL.
 * - pg-native: pg's optional native binding (pg requires it only when asked to).
 */
export const RUNTIME_PACKAGES = ["uWebSockets.js", "@electric-sql/pglite", "pglite-prisma-adapter", "pg-native"];

/**
 * CommonJS packages inlined into an ES module call `require` for Node's built-ins, which an ES
 * module lacks: the bundle makes one for them. (The generated Prisma client sets a global
 * `__dirname`, the bundle's directory, which is all the CommonJS packages' `__dirname` uses need:
 * pino's transports, which the node does not configure.)
 */
const REQUIRE_BANNER = `import { createRequire as __bundleRequire } from "node:module";\nconst require = __bundleRequire(import.meta.url);`;

export async function build() {
  const esbuild = await import("esbuild");
  const started = Date.now();
  const sources = sourceHash();
  rmSync(DIST, { recursive: true, force: true });
  const wasmFiles = new Map();
  await esbuild.build({
    entryPoints: ENTRIES,
    outdir: DIST,
    bundle: true,
    // The page's development path (src/http/page.ts, when running from sources) bundles with
    // this script; the compiled node serves dist/page/ and must never reach a bundler.
    external: ["*/scripts/build.mjs", ...RUNTIME_PACKAGES],
    banner: { js: REQUIRE_BANNER },
    platform: "node",
    format: "esm",
    target: "node20",
    sourcemap: "linked",
    logLevel: "warning",
    plugins: [queryCompilerFromFile(wasmFiles)],
  });
  for (const [name, bytes] of wasmFiles) writeFileSync(path.join(DIST, name), bytes);
  mkdirSync(path.join(DIST, "page"));
  for (const [name, text] of await bundlePage()) writeFileSync(path.join(DIST, "page", name), text);
  await buildTemplate();
  writeFileSync(INFO, JSON.stringify({ sources, built: new Date().toISOString() }) + "\n");
  return Date.now() - started;
}

/** Takes dist.lock (a directory: mkdir is atomic), waiting at most `ms`; a lock older than a minute is stale. */
async function withLock(fn, ms = 120_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      mkdirSync(LOCK);
      break;
    } catch (err) {
      if (err.code !== "EEXIST") throw err;
      try {
        if (Date.now() - statSync(LOCK).mtimeMs > 60_000) rmSync(LOCK, { recursive: true, force: true });
      } catch {
        // removed meanwhile
      }
      if (Date.now() > deadline) throw new Error(`${LOCK} held for ${ms / 1000} s`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  // Held for longer than a minute (a template build on a loaded machine), the lock stays fresh.
  const keepFresh = setInterval(() => {
    try {
      const now = new Date();
      utimesSync(LOCK, now, now);
    } catch {
      // removed by a waiter that judged it stale: nothing to refresh
    }
  }, 10_000);
  try {
    return await fn();
  } finally {
    clearInterval(keepFresh);
    rmSync(LOCK, { recursive: true, force: true });
  }
}

/** Builds unless dist/ already matches the sources; returns whether it built. */
export async function buildIfStale() {
  if (builtHash() === sourceHash()) return false;
  return withLock(async () => {
    if (builtHash() === sourceHash()) return false; // another process built it meanwhile
    await build();
    return true;
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv.includes("--if-stale")) {
    await buildIfStale();
  } else {
    const ms = await withLock(build);
    console.log(`built dist/ in ${ms} ms`);
  }
}
