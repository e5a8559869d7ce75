// Starts and stops what a scenario measures: the baseline (bench/baseline/server.ts) or the
// service (the compiled dist/main.js, as production runs it), as one or several nodes, each a
// direct child process so /proc/<pid> describes the server itself and not a wrapper. Both run
// as plain JavaScript: the service is built by scripts/build.mjs (when stale) and the baseline
// is bundled by esbuild to bench/results/tmp/, so neither carries a TypeScript loader.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { buildIfStale } from "../../scripts/build.mjs";
import { sleep } from "./clock.ts";
import { createDatabase, type Database } from "./database.ts";
import { benchDir, repoRoot } from "./paths.ts";

export type TargetKind = "baseline" | "service";
export const TARGET_KINDS: readonly TargetKind[] = ["baseline", "service"];

/**
 * BENCH_SERVICE_ENTRY=<path to another build's dist/main.js>: measure that build as the service
 * instead (a before/after pair: copy a build's dist/, prisma/ and package.json aside, link
 * node_modules, and run the scenario alternately with and without this; see bench/README.md).
 */
export const serviceEntry = process.env.BENCH_SERVICE_ENTRY ? path.resolve(process.env.BENCH_SERVICE_ENTRY) : path.join(repoRoot, "dist/main.js");
const baselineSource = path.join(benchDir, "baseline/server.ts");
const baselineEntry = path.join(benchDir, "results/tmp/baseline.mjs");

/** Compiles both targets to JavaScript (once per run). */
async function compileTargets(): Promise<void> {
  await buildIfStale();
  const esbuild = await import("esbuild");
  await esbuild.build({
    entryPoints: [baselineSource],
    outfile: baselineEntry,
    bundle: true,
    packages: "external",
    platform: "node",
    format: "esm",
    target: "node20",
    logLevel: "warning",
  });
}
let compiled: Promise<void> | undefined;

export interface ServerNode {
  pid: number;
  port: number;
  /** ws://host:port, to which a scenario appends /ws/chat/<group>/. */
  wsBase: string;
  child: ChildProcess;
  /** The node's last output lines (at LOG_LEVEL=warn, anything printed is worth a look). */
  log: string[];
  logLines: number;
  /** Lines printed before the node was ready: start-up notices, not trouble under load. */
  startupLogLines: number;
  /** From spawn to the first /readyz 200 (polled every 20 ms). */
  readyMs: number;
}

export interface Target {
  kind: TargetKind;
  nodes: ServerNode[];
  /** The service's throw-away database; the baseline has none. */
  database?: Database;
  /** Stops every node and drops the database; reports how each node ended. */
  stop(): Promise<string[]>;
}

export interface TargetOptions {
  nodes: number;
  /** Set = nodes relay group events through this Redis (cross-node runs). */
  redisUrl?: string;
  /** PostgreSQL URL allowed to create and drop databases (service only). */
  pgAdminUrl: string;
  /** Unique per run: names the database and the baseline's Redis keys. */
  runTag: string;
  /** Extra environment for every node (e.g. a JWT secret for a scenario that needs tokens). */
  env?: Record<string, string>;
  /** Service only: no DATABASE_URL, so the node runs its embedded PGlite in a fresh DATA_DIR. */
  embedded?: boolean;
  /** Service only: this build's dist/main.js instead of the run's (a before/after pair within one run). */
  entry?: string;
}

const HOST = "127.0.0.1";

// Nodes must not outlive a coordinator that crashes: they would hold ports and CPU on a shared
// machine.
const live = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});
const READY_TIMEOUT_MS = 120_000;
const LOG_KEEP = 40;

const running = new Set<Target>();

/** Stops whatever is running, for an interrupted run: no node or database is left behind. */
export async function stopAll(): Promise<void> {
  await Promise.allSettled([...running].map((t) => t.stop()));
}

export async function startTarget(kind: TargetKind, opts: TargetOptions): Promise<Target> {
  let db: Database | undefined;
  const nodes: ServerNode[] = [];
  let dataDir: string | undefined;
  const stop = async () => {
    running.delete(target);
    const endings = await Promise.all(nodes.map(stopNode));
    await db?.drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
    return endings;
  };
  const target: Target = { kind, nodes, stop };
  running.add(target);
  try {
    await (compiled ??= compileTargets());
    if (kind === "service" && opts.embedded) dataDir = await mkdtemp(path.join(os.tmpdir(), "bench-embedded-"));
    else if (kind === "service") db = await createDatabase(opts.pgAdminUrl, `bench_${opts.runTag}`);
    // Nodes start together: the service promises that concurrent starts on an empty database
    // are safe (migrations under an advisory lock), and a run should not hide it if not.
    const started = await Promise.allSettled(
      Array.from({ length: opts.nodes }, () => (kind === "service" ? startService(db?.url, opts, dataDir) : startBaseline(opts))),
    );
    for (const s of started) if (s.status === "fulfilled") nodes.push(s.value);
    const failure = started.find((s) => s.status === "rejected");
    if (failure) throw (failure as PromiseRejectedResult).reason;
    target.database = db;
    return target;
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }
}

function baseEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  // Open dev mode: the benchmark measures the chat path, not token checks.
  delete env.JWT_SECRET;
  delete env.REDIS_URL;
  delete env.REDIS_CLUSTER_NODES;
  delete env.DATABASE_URL;
  // Typing publishers connect without ?user= (their frames carry the send time as `user`), so
  // they all count as one user, their address: lift the per-user limits for the load generator.
  env.MAX_SOCKETS_PER_USER ??= "1000000";
  env.MAX_USER_FRAMES_PER_SECOND ??= "1000000";
  return env;
}

async function startService(databaseUrl: string | undefined, opts: TargetOptions, dataDir?: string): Promise<ServerNode> {
  // Scenarios place their clients on chosen nodes: rebalancing (4012) would move them (a scenario may turn it back on in opts.env).
  const env: NodeJS.ProcessEnv = { ...baseEnv(), LOG_LEVEL: "warn", REBALANCE_RATE: "0" };
  if (databaseUrl) env.DATABASE_URL = databaseUrl;
  if (dataDir) env.DATA_DIR = dataDir;
  Object.assign(env, opts.env);
  if (opts.redisUrl) env.REDIS_URL = opts.redisUrl;
  return launch(opts.entry ? path.resolve(opts.entry) : serviceEntry, env);
}

async function startBaseline(opts: TargetOptions): Promise<ServerNode> {
  const env: NodeJS.ProcessEnv = { ...baseEnv(), BASELINE_REDIS_PREFIX: `bench:${opts.runTag}:`, ...opts.env };
  if (opts.redisUrl) env.REDIS_URL = opts.redisUrl;
  return launch(baselineEntry, env);
}

async function launch(entry: string, env: NodeJS.ProcessEnv): Promise<ServerNode> {
  const port = await freePort();
  const spawnedAt = performance.now();
  // BENCH_CPU_PROF_DIR=dir: every node writes a V8 CPU profile there when it exits (open it in
  // Chrome DevTools or speedscope) — how the hot paths in bench/performance-log.md were found.
  const profile = process.env.BENCH_CPU_PROF_DIR ? ["--cpu-prof", `--cpu-prof-dir=${path.resolve(process.env.BENCH_CPU_PROF_DIR)}`] : [];
  const child = spawn(process.execPath, [...profile, entry], {
    cwd: repoRoot,
    env: { ...env, PORT: String(port), HOST },
    stdio: ["ignore", "pipe", "pipe"],
  });
  live.add(child);
  child.once("exit", () => live.delete(child));
  const node: ServerNode = { pid: child.pid!, port, wsBase: `ws://${HOST}:${port}`, child, log: [], logLines: 0, startupLogLines: 0, readyMs: 0 };
  for (const stream of [child.stdout!, child.stderr!]) {
    createInterface({ input: stream }).on("line", (line) => {
      node.logLines++;
      node.log.push(line.length > 500 ? `${line.slice(0, 500)}…` : line);
      if (node.log.length > LOG_KEEP) node.log.shift();
    });
  }
  await waitReady(node);
  node.readyMs = Math.round(performance.now() - spawnedAt);
  return node;
}

/** Resolves once /readyz answers 200; a node that never gets there is stopped, not leaked. */
async function waitReady(node: ServerNode): Promise<void> {
  try {
    await pollReady(node);
  } catch (err) {
    await stopNode(node);
    throw err;
  }
}

async function pollReady(node: ServerNode): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (node.child.exitCode !== null || node.child.signalCode !== null) {
      throw new Error(`node exited (${node.child.exitCode ?? node.child.signalCode}) before ready:\n${node.log.join("\n")}`);
    }
    try {
      const res = await fetch(`http://${HOST}:${node.port}/readyz`, { signal: AbortSignal.timeout(2000) });
      if (res.status === 200) {
        node.startupLogLines = node.logLines;
        return;
      }
    } catch {
      // not listening yet
    }
    await sleep(20);
  }
  throw new Error(`node on port ${node.port} not ready within ${READY_TIMEOUT_MS / 1000} s:\n${node.log.join("\n")}`);
}

/** SIGTERM, then SIGKILL after 15 s; returns how the node ended, for the run's notes. */
async function stopNode(node: ServerNode): Promise<string> {
  const child = node.child;
  if (child.exitCode !== null || child.signalCode !== null) {
    return `port ${node.port}: had already exited (${child.exitCode ?? child.signalCode})`;
  }
  const began = Date.now();
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  let timer: NodeJS.Timeout | undefined;
  const inTime = await Promise.race([
    exited.then(() => true),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 15_000))),
  ]);
  clearTimeout(timer);
  if (!inTime) {
    child.kill("SIGKILL");
    await exited;
    return `port ${node.port}: ignored SIGTERM for 15 s, killed`;
  }
  return `port ${node.port}: exited ${child.exitCode ?? child.signalCode} ${Date.now() - began} ms after SIGTERM`;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, HOST, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}
