// The typing scenario's shape (G groups x S subscribers, one publisher per group, RATE frames/s in
// all, one node) against several servers started together, each with its own sockets, the typing
// sent to one server at a time in SLOT_S-second slots, round robin: every server sees the same
// minutes of a shared machine, so their CPU per delivery compares even while the load around them
// moves (a bench run measures the baseline and the service one after the other). Counted per
// server over its own slots only: CPU (every thread, /proc/<pid>/task/*/schedstat, plus its
// database's PostgreSQL backends) and the typing events its subscribers received.
//
//   npx tsx bench/side-by-side-typing.ts [--rounds N] [--warmup-rounds N] [--slot S] name=entry ...
//   (entry "baseline": bench/baseline/server.ts, bundled; else a build's dist/main.js)
import { spawn, type ChildProcess } from "node:child_process";
import { openSync, readdirSync, readFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import pg from "pg";
import WebSocket from "ws";
import { typingFrame } from "./lib/frames.ts";
import { sideBySide } from "./lib/side-by-side.ts";
import { benchDir, repoRoot } from "./lib/paths.ts";

const args = process.argv.slice(2);
const opt = (name: string, dflt: number) => {
  const i = args.indexOf(`--${name}`);
  return i < 0 ? dflt : Number(args.splice(i, 2)[1]);
};
const ROUNDS = opt("rounds", 8);
const WARMUP_ROUNDS = opt("warmup-rounds", 5);
const SLOT_S = opt("slot", 2);
const GROUPS = opt("groups", 20);
const SUBSCRIBERS = opt("subscribers", 50);
const RATE = opt("rate", 400);
const specs = args.map((a) => a.split("=") as [string, string]);
const ADMIN = process.env.TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function admin(sql: string, params: unknown[] = []) {
  const c = new pg.Client({ connectionString: ADMIN });
  await c.connect();
  try {
    return (await c.query(sql, params)).rows as Record<string, unknown>[];
  } finally {
    await c.end();
  }
}
const freePort = () =>
  new Promise<number>((r) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => r(p));
    });
  });
const cpuMs = (pid: number) => {
  let ns = 0;
  let tasks: string[] = [];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {}
  for (const t of tasks) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, "utf8").split(" ")[0]);
    } catch {}
  }
  return ns / 1e6;
};

interface Server {
  name: string;
  port: number;
  child: ChildProcess;
  db?: string;
  backends: number[];
  subs: WebSocket[];
  pubs: WebSocket[];
  delivered: number;
  cpu: number;
  pgCpu: number;
  slots: { cpu: number; pg: number; delivered: number }[];
}

async function baselineEntry(): Promise<string> {
  const out = path.join(benchDir, "results/tmp/baseline-sbs.mjs");
  const esbuild = await import("esbuild");
  await esbuild.build({ entryPoints: [path.join(benchDir, "baseline/server.ts")], outfile: out, bundle: true, packages: "external", platform: "node", format: "esm", target: "node20", logLevel: "warning" });
  return out;
}

const tag = `sbs_${Date.now().toString(36)}`;
const servers: Server[] = [];
const load = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");

async function open(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, skipUTF8Validation: true });
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}

try {
  const base = specs.some(([, e]) => e === "baseline") ? await baselineEntry() : "";
  for (const [name, entry] of specs) {
    const port = await freePort();
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), HOST: "127.0.0.1", LOG_LEVEL: "warn", REBALANCE_RATE: "0", MAX_SOCKETS_PER_USER: "1000000", MAX_USER_FRAMES_PER_SECOND: "1000000" };
    for (const k of ["JWT_SECRET", "REDIS_URL", "REDIS_CLUSTER_NODES", "DATABASE_URL"]) delete env[k];
    let db: string | undefined;
    if (entry !== "baseline") {
      db = `${tag}_${name}`;
      await admin(`CREATE DATABASE "${db}"`);
      env.DATABASE_URL = `postgres://postgres@127.0.0.1:5432/${db}`;
    }
    // SBS_NODE_ARGS="--trace-gc …": node options for the servers only; SBS_LOG_DIR=<dir>: their stdout to <dir>/<name>.log.
    const nodeArgs = process.env.SBS_NODE_ARGS ? process.env.SBS_NODE_ARGS.split(" ") : [];
    const out = process.env.SBS_LOG_DIR ? openSync(path.join(process.env.SBS_LOG_DIR, `${name}.log`), "w") : "ignore";
    const child = spawn(process.execPath, [...nodeArgs, entry === "baseline" ? base : path.resolve(entry)], { cwd: repoRoot, env, stdio: ["ignore", out, "inherit"] });
    servers.push({ name, port, child, db, backends: [], subs: [], pubs: [], delivered: 0, cpu: 0, pgCpu: 0, slots: [] });
  }
  for (const s of servers) {
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`http://127.0.0.1:${s.port}/readyz`)).status === 200) break;
      } catch {}
      if (i > 1200) throw new Error(`${s.name} not ready`);
      await sleep(50);
    }
  }
  const typingMark = Buffer.from('"operation":"typing"');
  for (const s of servers) {
    for (let g = 0; g < GROUPS; g++) {
      const group = `${tag}-g${g}`;
      for (let i = 0; i < SUBSCRIBERS; i++) {
        const ws = await open(`ws://127.0.0.1:${s.port}/ws/chat/${group}/?user=s${g}_${i}`);
        ws.on("message", (data: Buffer) => {
          if (data.includes(typingMark)) s.delivered++;
        });
        s.subs.push(ws);
      }
      s.pubs.push(await open(`ws://127.0.0.1:${s.port}/ws/chat/${group}/`));
    }
    if (s.db) s.backends = (await admin("SELECT pid FROM pg_stat_activity WHERE datname = $1", [s.db])).map((r) => Number(r.pid));
  }
  await sleep(2_000);

  // One frame per group in turn, RATE a second in all, to the active server.
  let seq = 0;
  const slot = async (s: Server, measured: boolean) => {
    const cpu0 = cpuMs(s.child.pid!);
    // A backend that ends during the slot (the pool closes idle connections) counts for nothing, not minus its total.
    const pgAt = () => new Map(s.backends.map((p) => [p, cpuMs(p)] as const).filter(([, ms]) => ms > 0));
    const pg0 = pgAt();
    const d0 = s.delivered;
    const start = performance.now();
    const end = start + SLOT_S * 1000;
    let sent = 0;
    while (performance.now() < end) {
      const due = Math.floor(((performance.now() - start) / 1000) * RATE);
      for (; sent < due; sent++) s.pubs[sent % GROUPS]!.send(typingFrame(sent % GROUPS, seq++, Math.round(performance.now() * 1000)));
      await sleep(1);
    }
    await sleep(150); // the slot's last deliveries
    if (measured) {
      const pg1 = pgAt();
      const pg = [...pg1].reduce((a, [p, ms]) => a + (pg0.has(p) ? ms - pg0.get(p)! : 0), 0);
      s.slots.push({ cpu: cpuMs(s.child.pid!) - cpu0, pg, delivered: s.delivered - d0 });
    }
  };
  const loadStart = load();
  console.log(`warm-up: ${WARMUP_ROUNDS} rounds of ${SLOT_S} s slots (load ${loadStart})`);
  for (let r = 0; r < WARMUP_ROUNDS; r++) for (const s of servers) await slot(s, false);
  console.log(`measuring: ${ROUNDS} rounds (load ${load()})`);
  const t0 = new Date().toISOString();
  if (process.env.SBS_LOG_DIR) console.log(`measured rounds start: ${t0} (performance.now ${performance.now().toFixed(0)})`);
  // SBS_PERF=<dir>: `perf record` each server over the measured rounds (<dir>/<name>.data).
  // SBS_PERF_STAT=<dir>: `perf stat` system calls and switches of each server over the measured rounds (<dir>/<name>.stat).
  const STAT_EVENTS = "syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_sendto,syscalls:sys_enter_sendmsg,syscalls:sys_enter_recvfrom,syscalls:sys_enter_write,syscalls:sys_enter_read,syscalls:sys_enter_mprotect,syscalls:sys_enter_madvise,syscalls:sys_enter_futex,context-switches";
  const perfs = process.env.SBS_PERF
    ? servers.map((s) => spawn("perf", ["record", "-F", "999", "-g", "-o", path.join(process.env.SBS_PERF!, `${s.name}.data`), "-p", String(s.child.pid)], { stdio: "ignore" }))
    : process.env.SBS_PERF_STAT
      ? servers.map((s) => spawn("perf", ["stat", "-e", STAT_EVENTS, "-o", path.join(process.env.SBS_PERF_STAT!, `${s.name}.stat`), "-p", String(s.child.pid)], { stdio: "ignore" }))
      : [];
  for (let r = 0; r < ROUNDS; r++) {
    // Each round starts with the next server, so none always follows the same one.
    for (let i = 0; i < servers.length; i++) await slot(servers[(r + i) % servers.length]!, true);
  }
  const loadEnd = load();
  for (const p of perfs) p.kill("SIGINT");
  await Promise.all(perfs.map((p) => new Promise((r) => p.once("exit", r))));
  const figures = sideBySide(
    servers.map((s) => s.name),
    servers.map((s) => s.slots.map((x) => ({ cpuMs: x.cpu + x.pg, delivered: x.delivered }))),
  );
  for (const [i, f] of figures.entries()) {
    const pgMs = servers[i]!.slots.reduce((a, x) => a + x.pg, 0);
    const r3 = (x: number) => Math.round(x * 1000) / 1000;
    console.log(JSON.stringify({ name: f.name, cpu_ms: Math.round(f.cpuMs), pg_ms: Math.round(pgMs), delivered: f.delivered, ms_per_1k: r3(f.msPer1k), per_round_ms_per_1k: f.roundMsPer1k.map((x) => Math.round(x * 100) / 100), ratio: r3(f.ratio), median_round_ratio: r3(f.medianRoundRatio) }));
  }
  console.log(`from ${t0} to ${new Date().toISOString()}, load ${loadStart} -> ${loadEnd}; expected deliveries per slot ${RATE * SLOT_S * SUBSCRIBERS}`);
} finally {
  for (const s of servers) {
    for (const ws of [...s.subs, ...s.pubs]) ws.terminate();
    s.child.kill("SIGTERM");
  }
  await sleep(1_500);
  for (const s of servers) {
    s.child.kill("SIGKILL");
    if (s.db) await admin(`DROP DATABASE IF EXISTS "${s.db}" WITH (FORCE)`).catch(() => {});
  }
}
