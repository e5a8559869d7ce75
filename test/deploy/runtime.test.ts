// The production runtime is the compiled build: `npm start` and the image run `node
// dist/main.js`, which loads no TypeScript loader, compiler or bundler (not even to serve the
// chat page, whose script and style are built ahead with content-hashed names), and the
// production dependency tree the image installs holds none of them either.
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import t, { type Test } from "tap";
import { COMPILED_ENTRY, ensureBuilt, spawnNode } from "../helpers/node.ts";
import { tempDir, untilReady, within } from "../helpers/probe.ts";
import { freshDatabase } from "../helpers/services.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const pkg = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8"));
const dockerfile = readFileSync(path.join(root, "Dockerfile"), "utf8");
const TRACE = path.join(root, "test/helpers/module-trace.mjs");

/** Build-time tools: none of them may be loaded by, or installed for, the production node. */
const BUILD_TOOLS = ["tsx", "esbuild", "typescript", "prisma", "@prisma/dev", "get-tsconfig"];
const isBuildTool = (location: string) =>
  BUILD_TOOLS.some((name) => location.includes(`/node_modules/${name}/`) || location.includes(`/node_modules/@esbuild/`)) ||
  /\.m?tsx?$/.test(location.replace(/[?#].*$/, ""));

/** The production start command's node arguments (the Dockerfile's CMD without `node`). */
function startArgs(): string[] {
  const cmd = /^CMD (\[.*\])$/m.exec(dockerfile)?.[1];
  const argv = cmd ? (JSON.parse(cmd) as string[]) : [];
  return argv[0] === "node" ? argv.slice(1) : [];
}

/** Packages `npm ci --omit=dev --omit=optional` installs, by their lock-file path. */
function productionPackages(lock: { packages: Record<string, { dev?: boolean; optional?: boolean; devOptional?: boolean }> }): string[] {
  return Object.entries(lock.packages)
    .filter(([p, meta]) => p !== "" && !meta.dev && !meta.optional && !meta.devOptional)
    .map(([p]) => `/${p}/`);
}

/**
 * Starts a node under the module tracer, exercises the page and the probes, stops it, and
 * returns every build tool it loaded plus any child process it started.
 */
async function buildToolsLoaded(t: Test, argv: string[], env: Record<string, string>) {
  const trace = path.join(await tempDir(t, "chat-trace-"), "modules.txt");
  const node = await spawnNode(t, { ...env, MODULE_TRACE_FILE: trace, LOG_LEVEL: "info" }, { argv: ["--import", TRACE, ...argv] });
  await untilReady(node.port);
  const base = `http://127.0.0.1:${node.port}`;
  const html = await (await fetch(`${base}/`)).text();
  const assets = [...html.matchAll(/"\/assets\/([^"]+)"/g)].map((m) => m[1]!);
  const served = await Promise.all(
    assets.map(async (a) => {
      const res = await fetch(`${base}/assets/${a}`);
      return { status: res.status, cache: res.headers.get("cache-control"), body: await res.text() };
    }),
  );
  const children = readFileSync(`/proc/${node.child.pid}/task/${node.child.pid}/children`, "utf8").trim();
  node.child.kill("SIGTERM");
  const code = await within(node.exited, 15_000, "exit after SIGTERM");
  const loaded = (await readFile(trace, "utf8")).split("\n").filter(Boolean);
  return { html, assets, served, children, code, loaded, tools: [...new Set(loaded.filter(isBuildTool))] };
}

t.test("npm start, the image and the migration script run the compiled build", async (t) => {
  t.same(startArgs(), [COMPILED_ENTRY], "the Dockerfile's CMD is node dist/main.js");
  t.equal(pkg.scripts.start, `node ${COMPILED_ENTRY}`, "npm start runs what the image runs");
  t.equal(pkg.scripts.migrate, "node dist/migrate-cli.js");
  t.match(pkg.scripts.postinstall, /scripts\/build\.mjs/, "a fresh clone builds on npm install");
  for (const tool of ["tsx", "esbuild", "prisma", "typescript"]) {
    t.notOk(pkg.dependencies[tool], `${tool} is not a production dependency`);
  }
});

t.test("the image's production dependency tree holds no build tool", async (t) => {
  t.match(dockerfile, /npm ci --omit=dev --omit=optional/, "the runtime stage's node_modules come from a production install");
  t.notMatch(dockerfile.split(/^FROM .* AS runtime$/m)[1] ?? "", /COPY (--from=build \/app\/)?(src|scripts|tsconfig)/m, "the runtime stage copies no sources");
  const lock = JSON.parse(readFileSync(path.join(root, "package-lock.json"), "utf8"));
  const installed = productionPackages(lock);
  t.ok(installed.some((p) => p.includes("/node_modules/@prisma/client/")), "the Prisma client runtime is installed");
  t.same(installed.filter(isBuildTool), [], "no compiler, bundler or Prisma CLI");
  // The check can fail: a lock in which esbuild were a production dependency is caught.
  delete lock.packages["node_modules/esbuild"].dev;
  t.same(productionPackages(lock).filter(isBuildTool), ["/node_modules/esbuild/"]);
});

t.test("the production start command loads no TypeScript loader or bundler, even serving the page", async (t) => {
  ensureBuilt();
  const DATABASE_URL = await freshDatabase(t);
  const run = await buildToolsLoaded(t, startArgs(), { DATABASE_URL });
  t.equal(run.code, 0, "exits 0 on SIGTERM");
  t.ok(run.loaded.some((l) => l.endsWith("/dist/main.js")), "the tracer saw the entry");
  // main.js sets V8's flags (src/v8-flags.ts) before V8 reads the node's code, a file of its own.
  t.ok(run.loaded.findIndex((l) => l.endsWith("/dist/node.js")) > run.loaded.findIndex((l) => l.endsWith("/dist/main.js")), "and then the node, dist/node.js");
  t.ok(run.loaded.some((l) => l.includes("/node_modules/uWebSockets.js/")), "the tracer saw the native server load from node_modules");
  t.same(run.tools, [], "no tsx, esbuild, typescript or Prisma CLI module");
  // The build inlines the pure-JavaScript packages (scripts/build.mjs, RUNTIME_PACKAGES): each
  // one loaded file by file costs start-up CPU; PGlite is for the embedded database only.
  const fromNodeModules = [...new Set(run.loaded.flatMap((l) => /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(l)?.[1] ?? []))];
  t.same(fromNodeModules, ["uWebSockets.js"], "no other package is read from node_modules on PostgreSQL");
  t.equal(run.children, "", "no child process (esbuild runs as one)");

  t.match(run.html, /<script type="module" src="\/assets\/app-[A-Z0-9]+\.js">/, "the page links its hashed script");
  t.equal(run.assets.length, 2, "a script and a style");
  for (const [i, res] of run.served.entries()) {
    t.equal(res.status, 200, `${run.assets[i]} is served`);
    t.equal(res.cache, "public, max-age=31536000, immutable");
    t.equal(res.body, readFileSync(path.join(root, "dist/page", run.assets[i]!), "utf8"), "from dist/page");
  }
});

t.test("an embedded node (no DATABASE_URL) starts from the build, PGlite loaded from node_modules", async (t) => {
  ensureBuilt();
  const DATA_DIR = await tempDir(t, "chat-embedded-");
  const run = await buildToolsLoaded(t, startArgs(), { DATA_DIR });
  t.equal(run.code, 0, "exits 0 on SIGTERM");
  t.ok(run.loaded.some((l) => l.includes("/node_modules/@electric-sql/pglite/")), "PGlite and its assets from node_modules");
  t.ok(run.loaded.some((l) => l.includes("/node_modules/pglite-prisma-adapter/")), "its Prisma adapter too");
  t.same(run.tools, [], "no build tool");
});

t.test("the check catches a start path that runs TypeScript", async (t) => {
  const DATABASE_URL = await freshDatabase(t);
  const run = await buildToolsLoaded(t, ["--import", "tsx", "src/main.ts"], { DATABASE_URL });
  t.ok(run.tools.some((m) => m.includes("/node_modules/tsx/")), "tsx is reported");
  t.ok(run.tools.some((m) => m.endsWith("/src/main.ts")), "TypeScript sources are reported");
  t.ok(run.tools.some((m) => m.includes("/node_modules/esbuild/")) || run.children !== "", "the page was bundled on demand");
});
