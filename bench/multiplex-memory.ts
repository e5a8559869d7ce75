// Memory of a `/ws/` socket in 100 groups against a per-group socket (issue 12 target: <= 2x),
// measured inside the node: each measurement runs in its own process, the node in it (started
// with --expose-gc, so the heap is collected before each reading) and its clients in a child
// process. A first round of sockets warms the node (its groups, its code, its pools); the second
// round's growth of the JS heap and of RSS, divided by its sockets, is what one socket keeps.
//
// In the same run, a bare uWebSockets.js server (no JavaScript state per socket but uWS's own
// user data) is measured the same way with sockets subscribed to 1 and to 100 native topics: the
// difference is uWS's own cost per topic subscription, which a `/ws/` socket fanned out through
// native topics cannot avoid.
//
//   node --expose-gc --import tsx bench/multiplex-memory.ts [--per-group 1000] [--mux 100] [--rounds 1]
//        [--build name=path/to/other/src ...] [--snapshots dir] [--from-sources]
//
// --build measures other source trees too (a copy of another branch's src/ with the generated
// Prisma client, next to a node_modules link), alternating with this one, so before and after
// see the same machine. --snapshots writes heap snapshots before and after the measured round.
import { fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import v8 from "node:v8";
import WebSocket from "ws";
import { benchDir } from "./lib/paths.ts";
import type { us_listen_socket } from "../src/uws/uws.ts";

const GROUPS = 100;
const SELF = fileURLToPath(import.meta.url);
const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : def;
};
const args = (name: string) => process.argv.flatMap((a, i) => (a === `--${name}` ? [process.argv[i + 1]!] : []));
/** --from-sources: run the node's TypeScript through tsx instead of bundling it as the build does. */
const FROM_SOURCES = process.argv.includes("--from-sources");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Mode = "per-group" | "mux" | "bare-1" | "bare-100";
interface Measured {
  build: string;
  mode: Mode;
  sockets: number;
  heapKbPerSocket: number;
  rssKbPerSocket: number;
}

async function client(): Promise<void> {
  // Opens sockets on request and keeps them until told to quit.
  const socks: WebSocket[] = [];
  const open = (url: string) =>
    new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false });
      ws.once("open", () => resolve(ws));
      ws.once("error", reject);
    });
  process.on("message", async (m: { mode: Mode; n: number; round: number; port: number } | "quit") => {
    if (m === "quit") {
      for (const ws of socks) ws.terminate();
      process.exit(0);
    }
    const base = `ws://127.0.0.1:${m.port}`;
    for (let i = 0; i < m.n; i++) {
      if (m.mode === "per-group") socks.push(await open(`${base}/ws/chat/mem${i % GROUPS}/?user=u${m.round}_${i}`));
      else if (m.mode === "bare-1") socks.push(await open(`${base}/bare/${i % GROUPS}/1`));
      else if (m.mode === "bare-100") socks.push(await open(`${base}/bare/0/${GROUPS}`));
      else {
        const ws = await open(`${base}/ws/?user=u${m.round}_${i}`);
        let left = GROUPS;
        await new Promise<void>((resolve) => {
          ws.on("message", (d) => /"operation":"(ack|error)"/.test(d.toString()) && --left === 0 && resolve());
          for (let g = 0; g < GROUPS; g++) ws.send(JSON.stringify({ operation: "subscribe", group: `mem${g}`, request_id: `s${g}` }));
        });
        socks.push(ws);
      }
    }
    process.send!("opened");
  });
}

type ServerModule = typeof import("../src/server.ts") & typeof import("../src/config/env.ts") & typeof import("../src/log.ts");

/**
 * The node as production runs it: `src/server.ts` bundled by esbuild like `npm run build` does
 * (npm packages external). Running the sources through tsx instead costs memory production does
 * not pay: tsx keeps function names (esbuild's keepNames), and the `__name(fn, ...)` it wraps
 * around every named closure turns that function's properties into a 256-byte dictionary.
 */
async function loadServer(src: string, fromSources: boolean): Promise<ServerModule> {
  if (fromSources) {
    const load = (file: string) => import(pathToFileURL(path.join(src, file)).href);
    return { ...(await load("config/env.ts")), ...(await load("log.ts")), ...(await load("server.ts")) } as ServerModule;
  }
  const esbuild = await import("esbuild");
  const root = path.dirname(path.resolve(src));
  const entry = path.join(root, ".bench", `memory-entry-${process.pid}.ts`);
  const out = path.join(root, ".bench", `memory-server-${process.pid}.mjs`);
  await mkdir(path.dirname(entry), { recursive: true });
  await writeFile(entry, `export { startNode } from "../src/server.ts";\nexport { loadConfig } from "../src/config/env.ts";\nexport { createLogger } from "../src/log.ts";\n`);
  await esbuild.build({
    entryPoints: [entry],
    outfile: out,
    bundle: true,
    packages: "external",
    external: ["*/scripts/build.mjs"], // the page's development path, as the build leaves it
    platform: "node",
    format: "esm",
    target: "node20",
    logLevel: "warning",
    // The bundle sits one level below the root, as dist/main.js does; it serves no page, so the
    // page is left to the sources' lazy path instead of reading dist/page at start.
    plugins: [
      {
        name: "page-from-sources",
        setup(build) {
          build.onLoad({ filter: /[\\/]src[\\/]paths\.ts$/ }, async (a) => ({
            contents: (await readFile(a.path, "utf8")).replace(/export const FROM_SOURCES = .*;/, "export const FROM_SOURCES = true;"),
            loader: "ts",
          }));
        },
      },
    ],
  });
  try {
    return (await import(pathToFileURL(out).href)) as ServerModule;
  } finally {
    await rm(entry, { force: true });
    await rm(out, { force: true });
  }
}

/** One measurement in this process: the node (or a bare uWS server), two rounds of `n` sockets. */
async function measureHere(build: string, src: string, mode: Mode, n: number, snapshots: string | null, fromSources: boolean, report: (m: Measured) => void): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("run with node --expose-gc --import tsx bench/multiplex-memory.ts");
  const reading = async () => {
    for (let i = 0; i < 3; i++) {
      gc();
      await sleep(200);
    }
    const m = process.memoryUsage();
    return { heapKb: m.heapUsed / 1024, rssKb: m.rss / 1024 };
  };
  let port: number;
  let stop: () => Promise<void>;
  if (mode === "bare-1" || mode === "bare-100") {
    const { uws } = (await import(pathToFileURL(path.join(src, "uws/uws.ts")).href)) as typeof import("../src/uws/uws.ts");
    const app = uws.App();
    app.ws<{ first: number; count: number }>("/bare/:first/:count", {
      compression: uws.DISABLED,
      idleTimeout: 120,
      upgrade: (res, req, ctx) =>
        res.upgrade({ first: Number(req.getParameter(0)), count: Number(req.getParameter(1)) }, req.getHeader("sec-websocket-key"), req.getHeader("sec-websocket-protocol"), req.getHeader("sec-websocket-extensions"), ctx),
      open: (ws) => {
        const { first, count } = ws.getUserData();
        for (let t = 0; t < count; t++) ws.subscribe(`mem${first + t}`);
      },
    });
    let listen: us_listen_socket | null = null;
    port = await new Promise<number>((resolve, reject) =>
      app.listen("127.0.0.1", 0, (s) => (s ? resolve(uws.us_socket_local_port((listen = s) as never)) : reject(new Error("cannot listen")))),
    );
    stop = async () => {
      if (listen) uws.us_listen_socket_close(listen);
    };
  } else {
    const pg = (await import("pg")).default;
    const { loadConfig, createLogger, startNode } = await loadServer(src, fromSources);
    const PG_ADMIN = process.env.BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
    const admin = new pg.Client({ connectionString: PG_ADMIN });
    await admin.connect();
    const name = `chat_bench_mem_${process.pid}_${randomBytes(3).toString("hex")}`;
    await admin.query(`CREATE DATABASE "${name}"`);
    const url = new URL(PG_ADMIN);
    url.pathname = `/${name}`;
    const config = loadConfig({ PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "silent", DATABASE_URL: url.toString() });
    const node = await startNode(config, createLogger("silent"));
    port = node.port;
    stop = async () => {
      await node.shutdown();
      await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await admin.end();
    };
  }
  const child = fork(SELF, ["client"], { execArgv: ["--import", "tsx"] });
  const round = (r: number) =>
    new Promise<void>((resolve) => {
      child.once("message", () => resolve());
      child.send({ mode, n, round: r, port });
    });
  try {
    await round(0);
    await sleep(1000);
    const before = await reading();
    if (snapshots) v8.writeHeapSnapshot(path.join(snapshots, `${build}-${mode}-before.heapsnapshot`));
    await round(1);
    await sleep(1000);
    const after = await reading();
    if (snapshots) v8.writeHeapSnapshot(path.join(snapshots, `${build}-${mode}-after.heapsnapshot`));
    // Reported before the teardown: dropping the database may end a pooled connection loudly.
    report({ build, mode, sockets: n, heapKbPerSocket: (after.heapKb - before.heapKb) / n, rssKbPerSocket: (after.rssKb - before.rssKb) / n });
  } finally {
    child.send("quit");
    await stop();
  }
}

/** Runs one measurement in a fresh process (so that one cannot warm or fragment the next). */
function measure(build: string, src: string, mode: Mode, n: number, snapshots: string | null): Promise<Measured> {
  return new Promise((resolve, reject) => {
    const p = fork(SELF, ["measure", build, src, mode, String(n), snapshots ?? "", FROM_SOURCES ? "sources" : "bundle"], { execArgv: ["--expose-gc", "--import", "tsx"] });
    let got: Measured | null = null;
    p.once("message", (m) => (got = m as Measured));
    p.once("exit", (code) => (got ? resolve(got) : reject(new Error(`${build} ${mode} exited with ${code}`))));
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

if (process.argv[2] === "client") await client();
else if (process.argv[2] === "measure") {
  const [, , , build, src, mode, n, snapshots, how] = process.argv;
  await measureHere(build!, src!, mode as Mode, Number(n), snapshots || null, how === "sources", (m) => process.send!(m));
  process.exit(0);
} else {
  const perGroupN = Number(arg("per-group", "1000"));
  const muxN = Number(arg("mux", "100"));
  const rounds = Number(arg("rounds", "1"));
  const snapshots = process.argv.includes("--snapshots") ? path.resolve(arg("snapshots", ".")) : null;
  const builds: [string, string][] = [["this", fileURLToPath(new URL("../src/", import.meta.url))]];
  for (const b of args("build")) {
    const eq = b.indexOf("=");
    builds.push([b.slice(0, eq), path.resolve(b.slice(eq + 1))]);
  }
  const runs: Measured[] = [];
  const load: number[][] = [os.loadavg()];
  for (let r = 0; r < rounds; r++) {
    for (const [build, src] of builds) {
      runs.push(await measure(build, src, "per-group", perGroupN, snapshots));
      runs.push(await measure(build, src, "mux", muxN, snapshots));
    }
    runs.push(await measure("bare-uws", builds[0]![1], "bare-1", perGroupN, null));
    runs.push(await measure("bare-uws", builds[0]![1], "bare-100", muxN, null));
    load.push(os.loadavg());
  }
  const pick = (build: string, mode: Mode, key: "heapKbPerSocket" | "rssKbPerSocket") => median(runs.filter((m) => m.build === build && m.mode === mode).map((m) => m[key]));
  // uWS's own cost of one more topic subscription: (a socket in 100 topics - a socket in 1) / 99.
  const nativeRssBPerTopic = ((pick("bare-uws", "bare-100", "rssKbPerSocket") - pick("bare-uws", "bare-1", "rssKbPerSocket")) * 1024) / (GROUPS - 1);
  const summary = builds.map(([build]) => {
    const perGroup = { heapKb: pick(build, "per-group", "heapKbPerSocket"), rssKb: pick(build, "per-group", "rssKbPerSocket") };
    const mux = { heapKb: pick(build, "mux", "heapKbPerSocket"), rssKb: pick(build, "mux", "rssKbPerSocket") };
    return {
      build,
      perGroup,
      mux,
      heapRatio: mux.heapKb / perGroup.heapKb,
      rssRatio: mux.rssKb / perGroup.rssKb,
      /** What each further subscription of a /ws/ socket keeps, in bytes: JS heap, and RSS beyond uWS's own per-topic cost. */
      heapBPerSubscription: ((mux.heapKb - perGroup.heapKb) * 1024) / (GROUPS - 1),
      rssBPerSubscription: ((mux.rssKb - perGroup.rssKb) * 1024) / (GROUPS - 1),
    };
  });
  const bare = { oneTopicRssKb: pick("bare-uws", "bare-1", "rssKbPerSocket"), hundredTopicsRssKb: pick("bare-uws", "bare-100", "rssKbPerSocket"), nativeRssBPerTopic };
  const result = { at: new Date().toISOString(), node: FROM_SOURCES ? "sources through tsx" : "bundled by esbuild, as npm run build", loadavg: load, rounds, summary, bare, runs };
  const file = path.join(benchDir, "results", `multiplex-memory-${Date.now()}.json`);
  await writeFile(file, JSON.stringify(result, null, 2));
  for (const s of summary) {
    console.log(`[${s.build}] per-group socket: JS heap ${s.perGroup.heapKb.toFixed(2)} kB, RSS ${s.perGroup.rssKb.toFixed(2)} kB`);
    console.log(`[${s.build}] /ws/ socket in ${GROUPS} groups: JS heap ${s.mux.heapKb.toFixed(2)} kB, RSS ${s.mux.rssKb.toFixed(2)} kB`);
    console.log(`[${s.build}] ratio: heap ${s.heapRatio.toFixed(2)}, RSS ${s.rssRatio.toFixed(2)} (target <= 2); per further subscription: heap ${s.heapBPerSubscription.toFixed(0)} B, RSS ${s.rssBPerSubscription.toFixed(0)} B (uWS's own: ${nativeRssBPerTopic.toFixed(0)} B)`);
  }
  console.log(`bare uWS: socket in 1 topic RSS ${bare.oneTopicRssKb.toFixed(2)} kB, in ${GROUPS} topics ${bare.hundredTopicsRssKb.toFixed(2)} kB: ${nativeRssBPerTopic.toFixed(0)} B per topic subscription`);
  console.log(`load average ${load.map((l) => l[0]!.toFixed(1)).join(" -> ")}; written to ${file}`);
  process.exit(0);
}
