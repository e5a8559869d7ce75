// Presence's cost (issue 13), presence on against PRESENCE=off in the same run, alternating which
// goes first each round so that a machine getting busier or quieter does not favour either:
// - reconnect storm (`reconnect`, the default): N idle `?user=` sockets over 100 groups connect,
//   all close, and once the grace has passed (everyone left) the same users connect again, which
//   is measured: each connect is a `join` to its group's sockets, while the node's database work
//   is done already (membership known, groups followed once), so the figure is not at the mercy
//   of a shared PostgreSQL. Connect rate, and server CPU per 1,000 connects from the first
//   handshake until 1 s after the last (presence frames flushed after it are counted too);
// - connect storm (`connections`): the `connections` scenario as it is (first connects, one
//   membership write each): connect rate and server CPU per 1,000 connects;
// - typing: the `typing` scenario (20 groups x 50 subscribers, 400 frames/s): server CPU per
//   1,000 deliveries, and the rate of its connect phase (1,020 first connects: a join each).
// Targets: on ÷ off connect rate >= 0.95, CPU per delivery <= 1.10. Each figure comes with the
// load average before it was taken (a shared machine):
//
//   With --asking every socket asks for join/leave events (`?presence=1`, as the SDK does with
//   `presence: true`): each connect's join then reaches the group's sockets; without it none asks.
// - quiet reconnects (`reconnect --within-grace`): the same storm, but the users come back 1 s after
//   they closed, within the grace: presence's bookkeeping alone (no join or leave is sent);
//
//   npx tsx bench/presence.ts [--rounds 3] [--warmup 1] [--connections 6000] [--groups 100] [--typing-duration 10] [--only reconnect|connections|typing]
//                             [--redis] [--before <another build's dist/main.js>] [--mode name:KEY=value,...] [--syscalls]
//
// --redis: each node gets a private redis-server of its own (Redis bus and Redis presence, as a
// fleet runs) instead of running alone in-process; the reconnect storm then also reports Redis
// commands per connect (INFO commandstats over the measured pass) and redis-server CPU per 1,000
// connects. --before: that build, presence on, is measured in the same rounds as a third mode.
// --syscalls: the node's sendto/write/writev/epoll_wait calls per connect in the measured pass
// (`perf stat` tracepoints: needs perf and the permission to trace the node).
// --perf-record dir: the node's on-CPU samples in the measured pass (perf; see perfRecord); with
// --perf-event syscalls:sys_enter_sendto, every write instead (`perf script`: socket, length, time).
// Every run reports presence_flushes_per_group and presence_frames_per_flush: how many times each
// group's held join/leave frames went out in the measured pass (each is one write to each of the
// group's sockets connected by then), from the node's chat_presence_batch_frames histogram.
// BENCH_CPU_PROF_DIR=dir: V8 CPU profiles of every node, and the measured passes' windows, for
// `npx tsx bench/profile-window.ts dir` (where the CPU of a connect goes, mode against mode).
//
// Writes bench/results/presence-<time>.json and prints every pair and the median ratios.
import { spawn } from "node:child_process";
import { appendFile, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseOptions } from "./lib/args.ts";
import { gitInfo } from "./lib/machine.ts";
import { benchDir } from "./lib/paths.ts";
import type { Measurement } from "./lib/results.ts";
import type { AnyScenario, MeasureContext } from "./lib/scenario.ts";
import { sleep } from "./lib/clock.ts";
import type { ConnectReport, Plan } from "./lib/ipc.ts";
import { cpuSeconds, cpuSplit, totalCpuSeconds } from "./lib/proc.ts";
import { Redis } from "ioredis";
import { startStandaloneRedis, type StandaloneRedis } from "../scripts/cluster/redis-processes.ts";
import { groupName } from "./lib/traffic.ts";
import { WorkerPool } from "./lib/workers.ts";
import { startTarget, stopAll, type Target } from "./lib/targets.ts";
import { connections } from "./scenarios/connections.ts";
import { typing } from "./scenarios/typing.ts";

const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : def;
};
const ROUNDS = Number(arg("rounds", "3"));
const WARMUP = Number(arg("warmup", "1"));
const CONNECTIONS = arg("connections", "6000");
const GROUPS = arg("groups", "100");
const TYPING_DURATION = arg("typing-duration", "10");
const ONLY = arg("only", "");
const PG = process.env.BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
/**
 * The node settings compared, each against `off`: presence at its defaults, and with
 * `--unbatched` also presence publishing every join/leave at once (PRESENCE_BATCH_MS=0, as before
 * issue 13's batching), to show what the batch saves.
 */
const BEFORE = arg("before", "");
const REDIS = process.argv.includes("--redis");
const MODES: Record<string, { env: Record<string, string>; entry?: string }> = {
  on: { env: { PRESENCE: "on" } },
  off: { env: { PRESENCE: "off" } },
  ...(process.argv.includes("--unbatched") ? { unbatched: { env: { PRESENCE: "on", PRESENCE_BATCH_MS: "0" } } } : {}),
  ...(BEFORE ? { before: { env: { PRESENCE: "on" }, entry: BEFORE } } : {}),
  // --mode name:KEY=value,KEY=value (repeatable): another setting, presence on, e.g. tick1000:PRESENCE_BATCH_MS=1000
  ...Object.fromEntries(
    process.argv.flatMap((a, i) => (a === "--mode" ? [process.argv[i + 1]!] : [])).map((m) => {
      const [name, vars = ""] = m.split(":");
      return [name!, { env: { PRESENCE: "on", ...Object.fromEntries(vars.split(",").filter(Boolean).map((kv) => kv.split("=") as [string, string])) } }];
    }),
  ),
};
type Mode = string;

const load = () => os.loadavg().map((l) => Math.round(l * 10) / 10);
const log = (line: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

interface Figure {
  mode: Mode;
  loadBefore: number[];
  headline: Record<string, number>;
  notes: string[];
}

/** --asking: every storm socket asks for its group's join/leave events (`?presence=1`); without it none does, as a client that shows no presence. */
const ASKING = process.argv.includes("--asking");
/** --within-grace: the measured pass reconnects 1 s after the closes, inside the grace (no join, no leave). */
const WITHIN_GRACE = process.argv.includes("--within-grace");
/** PRESENCE_GRACE_MS at its default: the reconnect storm waits it out between its two passes. */
const GRACE_MS = 5_000;
const WORKERS = Math.max(2, os.cpus().length - 1);

/** Connects of one pass: how many opened, how many failed, and the rate from first attempt to last open. */
function rateOf(reports: ConnectReport[]) {
  const connected = reports.reduce((a, x) => a + x.connected, 0);
  const seconds = (Math.max(...reports.map((x) => x.lastOpenUs)) - Math.min(...reports.map((x) => x.firstAttemptUs))) / 1e6;
  return { connected, failed: reports.reduce((a, x) => a + x.failed, 0), perS: Math.round(connected / seconds), sample: reports.flatMap((x) => x.errorSamples)[0] };
}

async function connectAll(plans: Plan[]) {
  const pool = new WorkerPool(plans.length);
  const reports = (await pool.askEach(plans.map((plan) => ({ type: "connect", plan })), "connected", 600_000)).map((r) => r.report);
  return { pool, reports };
}

const idlePlan = (subscribers: Plan["subscribers"], connectConcurrency: number): Plan => ({ subscribers, publishers: [], idle: true, intervals: false, connectConcurrency });

/** The node's `chat_presence_users` (pairs held, grace included); 0 with presence off. */
async function heldPairs(target: Target): Promise<number> {
  return (await nodeMetrics(target, ["chat_presence_users"]))[0]!;
}

/** The node's presence publishes so far (one per group per flush of held frames) and the frames they carried. */
async function presencePublishes(target: Target): Promise<{ publishes: number; frames: number }> {
  const [publishes, frames] = await nodeMetrics(target, ["chat_presence_batch_frames_count", "chat_presence_batch_frames_sum"]);
  return { publishes: publishes!, frames: frames! };
}

/** Unlabelled metrics of the (first) node, in the order named; 0 for one it does not show. */
async function nodeMetrics(target: Target, names: string[]): Promise<number[]> {
  const text = await (await fetch(`http://127.0.0.1:${target.nodes[0]!.port}/metrics`)).text();
  return names.map((name) => Number(new RegExp(`^${name} (\\d+)`, "m").exec(text)?.[1] ?? 0));
}

/** Microseconds on the clock V8 stamps CPU profiles with (CLOCK_MONOTONIC on Linux, as process.hrtime). */
const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

/**
 * BENCH_CPU_PROF_DIR=dir (every node writes a V8 CPU profile there when it exits, see
 * bench/lib/targets.ts): notes the measured pass's window beside them, so that
 * `npx tsx bench/profile-window.ts dir` reads only the samples of the measured pass, per connect.
 */
async function markProfileWindow(pid: number, tag: string, fromUs: number, toUs: number, connects: number): Promise<void> {
  const dir = process.env.BENCH_CPU_PROF_DIR;
  if (!dir) return;
  await appendFile(path.join(path.resolve(dir), "windows.jsonl"), `${JSON.stringify({ pid, tag, fromUs, toUs, connects })}\n`);
}

/** The reconnect storm (see the top of the file) against one node. */
const SYSCALLS = ["sendto", "write", "writev", "epoll_wait"];
/**
 * Counts the node's send/write/epoll_wait system calls (perf tracepoints; perf_event_paranoid or
 * root permitting) until `stop`, which resolves with the counts (empty when perf could not count).
 */
function countSyscalls(pid: number): { stop: () => Promise<Record<string, number>> } {
  const events = SYSCALLS.map((c) => `syscalls:sys_enter_${c}`).join(",");
  const perf = spawn("perf", ["stat", "-x", ",", "-e", events, "-p", String(pid)], { stdio: ["ignore", "ignore", "pipe"] });
  let text = "";
  perf.stderr.on("data", (d: Buffer) => (text += d.toString()));
  perf.on("error", () => {});
  const done = new Promise<void>((r) => perf.once("close", () => r()));
  return {
    stop: async () => {
      perf.kill("SIGINT");
      await done;
      const counts: Record<string, number> = {};
      for (const line of text.split("\n")) {
        const [value, , event] = line.split(",");
        const m = /sys_enter_(\w+)/.exec(event ?? "");
        if (m && /^\d+$/.test(value ?? "")) counts[m[1]!] = Number(value);
      }
      return counts;
    },
  };
}

/**
 * --perf-record <dir>: samples the node's CPU (and with --redis the redis-server's, to <tag>-redis.data) (user and kernel, `perf record -e cpu-clock`: on
 * CPU time, unlike V8's profiler, which samples wall time and so charges a thread preempted in a
 * system call to that call) during the measured pass, to <dir>/<tag>.data. Start the bench with
 * NODE_OPTIONS=--perf-basic-prof so that JavaScript frames have names, then
 * `perf report -i <file> --no-children --sort dso,sym`.
 */
function perfRecord(pid: number, tag: string): { stop: () => Promise<void> } | null {
  const dir = arg("perf-record", "");
  if (!dir) return null;
  // --perf-event e.g. syscalls:sys_enter_sendto: every such event instead (`perf script` then shows each write's socket, length and time).
  const event = arg("perf-event", "");
  const what = event ? ["-e", event] : ["-e", "cpu-clock", "-F", "2000", "-g"];
  const perf = spawn("perf", ["record", "-q", ...what, "-p", String(pid), "-o", path.join(path.resolve(dir), `${tag}.data`)], { stdio: "ignore" });
  perf.on("error", () => {});
  const done = new Promise<void>((r) => perf.once("close", () => r()));
  return {
    stop: async () => {
      perf.kill("SIGINT");
      await done;
    },
  };
}

/**
 * Calls per command so far and the microseconds Redis spent executing each (INFO commandstats:
 * a script's time includes its inner commands, which are counted again under their own names),
 * and the redis-server's CPU seconds.
 */
async function redisStats(redis: StandaloneRedis): Promise<{ calls: Record<string, number>; usec: Record<string, number>; cpuS: number }> {
  const r = new Redis(redis.url);
  try {
    const info = await r.info("commandstats");
    const calls: Record<string, number> = {};
    const usec: Record<string, number> = {};
    for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
      calls[m[1]!] = Number(m[2]);
      usec[m[1]!] = Number(m[3]);
    }
    return { calls, usec, cpuS: cpuSeconds(redis.process.pid) };
  } finally {
    r.disconnect();
  }
}

async function reconnectStorm(target: Target, tag: string, redis: StandaloneRedis | null): Promise<Measurement> {
  const n = Number(CONNECTIONS);
  const groups = Number(GROUPS);
  const url = (g: number, user: string) => `${target.nodes[0]!.wsBase}/ws/chat/${groupName(tag, "conn", g)}/?user=${user}${ASKING ? "&presence=1" : ""}`;
  const plans = Array.from({ length: WORKERS }, () => idlePlan([], 100));
  for (let i = 0; i < n; i++) plans[i % WORKERS]!.subscribers.push({ url: url(i % groups, `i${i}`), group: i % groups, localAddress: `127.0.0.${1 + (i % 8)}` });
  // One socket per group stays from start to end, so the node follows every group throughout:
  // the reconnects find their group followed and read nothing from the database.
  const anchors = await connectAll([idlePlan(Array.from({ length: groups }, (_, g) => ({ url: url(g, `anchor${g}`), group: g })), 10)]);
  try {
    const first = await connectAll(plans);
    await first.pool.close();
    if (WITHIN_GRACE) {
      // Quiet reconnects: the same users come back within the grace (a node restart, a network
      // blip), so presence sends nothing; the closes are done and the graces still running.
      await sleep(1_000);
    } else {
      // Everyone has left (their leaves, after the grace, must not land in the measured pass).
      await sleep(GRACE_MS);
      for (let i = 0; i < 60 && (await heldPairs(target)) > groups; i++) await sleep(500);
      await sleep(1_000);
    }
    const pids = target.nodes.map((node) => node.pid);
    const redis0 = redis && (await redisStats(redis));
    const syscalls = process.argv.includes("--syscalls") ? countSyscalls(pids[0]!) : null;
    const recording = perfRecord(pids[0]!, tag);
    const redisRecording = redis && perfRecord(redis.process.pid, `${tag}-redis`);
    await sleep(syscalls || recording ? 1_000 : 0); // perf attaches
    const published0 = await presencePublishes(target);
    const cpu0 = totalCpuSeconds(pids);
    const split0 = cpuSplit(pids[0]!);
    const from = monotonicUs();
    const again = await connectAll(plans);
    await sleep(1_000); // frames still held for their tick go out
    const cpuS = totalCpuSeconds(pids) - cpu0;
    const split1 = cpuSplit(pids[0]!);
    const published1 = await presencePublishes(target);
    await markProfileWindow(pids[0]!, tag, from, monotonicUs(), rateOf(again.reports).connected);
    const redis1 = redis && (await redisStats(redis));
    const calls = (await syscalls?.stop()) ?? {};
    await recording?.stop();
    await redisRecording?.stop();
    await again.pool.close();
    const measured = rateOf(again.reports);
    const notes = measured.failed > 0 ? [`${measured.failed} of ${n} reconnects failed, e.g. ${measured.sample}`] : [];
    const redisFigures: Record<string, number> = {};
    if (redis0 && redis1) {
      // The INFO calls themselves (one before, one after) are not the node's.
      const per = (name: string) => ((redis1.calls[name] ?? 0) - (redis0.calls[name] ?? 0) - (name === "info" ? 1 : 0)) / measured.connected;
      const names = Object.keys(redis1.calls).filter((c) => per(c) > 0);
      for (const c of names) redisFigures[`redis_${c}_per_connect`] = Math.round(per(c) * 1000) / 1000;
      redisFigures.redis_calls_per_connect = Math.round(names.reduce((a, c) => a + per(c), 0) * 1000) / 1000;
      redisFigures.redis_cpu_ms_per_1k = Math.round(((redis1.cpuS - redis0.cpuS) * 1e6) / measured.connected);
      // Time Redis spent executing the scripts (their inner commands included) and the publishes, per connect (no I/O).
      const usecOf = (name: string) => (redis1.usec[name] ?? 0) - (redis0.usec[name] ?? 0);
      redisFigures.redis_script_us_per_connect = Math.round(((usecOf("evalsha") + usecOf("eval")) / measured.connected) * 100) / 100;
      redisFigures.redis_publish_us_per_connect = Math.round((usecOf("publish") / measured.connected) * 100) / 100;
      notes.push(`Redis commands per connect: ${names.map((c) => `${c} ${redisFigures[`redis_${c}_per_connect`]}`).join(", ")}`);
    }
    return {
      headline: {
        connected: measured.connected,
        connects_per_s: measured.perS,
        server_cpu_ms_per_1k: Math.round((cpuS * 1e6) / measured.connected), // µs per connect = ms per 1,000
        // The node's user time (JavaScript, native code) and system time (system calls: socket writes and reads) apart.
        server_user_ms_per_1k: Math.round(((split1.userS - split0.userS) * 1e6) / measured.connected),
        server_sys_ms_per_1k: Math.round(((split1.sysS - split0.sysS) * 1e6) / measured.connected),
        first_connects_per_s: rateOf(first.reports).perS,
        // Flushes of held join/leave frames per group in the pass, and frames per flush (0 with presence off).
        presence_flushes_per_group: Math.round(((published1.publishes - published0.publishes) / groups) * 100) / 100,
        presence_frames_per_flush: Math.round(((published1.frames - published0.frames) / Math.max(1, published1.publishes - published0.publishes)) * 10) / 10,
        ...redisFigures,
        ...Object.fromEntries(Object.entries(calls).map(([c, n]) => [`${c}_per_connect`, Math.round((n / measured.connected) * 100) / 100])),
      },
      latency: {},
      details: {},
      notes,
    };
  } finally {
    await anchors.pool.close();
  }
}

async function measure(s: AnyScenario | "reconnect", argv: string[], mode: Mode, tag: string): Promise<Figure> {
  const loadBefore = load();
  const redis = REDIS ? await startStandaloneRedis() : null;
  let target: Target;
  try {
    target = await startTarget("service", { nodes: 1, pgAdminUrl: PG, runTag: tag, env: MODES[mode]!.env, entry: MODES[mode]!.entry, redisUrl: redis?.url });
  } catch (err) {
    await redis?.stop();
    throw err;
  }
  try {
    const opts = parseOptions(argv, s === "reconnect" ? [] : [s.name]);
    const ctx: MeasureContext = { startTarget: () => Promise.reject(new Error("not used")), log, opts };
    const m: Measurement = s === "reconnect" ? await reconnectStorm(target, tag, redis) : await s.measure(target, s.params(opts), tag, ctx);
    const connects: Record<string, number> = typeof m.details.connectsPerS === "number" ? { connects_per_s: m.details.connectsPerS } : {};
    return { mode, loadBefore, headline: { ...m.headline, ...connects }, notes: m.notes };
  } finally {
    const endings = await target.stop();
    await redis?.stop();
    for (const [i, e] of endings.entries()) if (!/exited 0 /.test(e)) log(`node ${e}; its last lines:\n${target.nodes[i]!.log.slice(-10).join("\n")}`);
  }
}

const plans: { name: string; scenario: AnyScenario | "reconnect"; argv: string[]; keys: string[] }[] = [
  {
    name: "reconnect",
    scenario: "reconnect" as const,
    argv: [],
    keys: [
      "connects_per_s",
      "server_cpu_ms_per_1k",
      "server_user_ms_per_1k",
      "server_sys_ms_per_1k",
      "first_connects_per_s",
      "presence_flushes_per_group",
      "presence_frames_per_flush",
      ...(REDIS ? ["redis_calls_per_connect", "redis_cpu_ms_per_1k", "redis_script_us_per_connect", "redis_publish_us_per_connect"] : []),
      ...(process.argv.includes("--syscalls") ? SYSCALLS.map((c) => `${c}_per_connect`) : []),
    ],
  },
  {
    name: "connections",
    scenario: connections,
    argv: ["--connections", CONNECTIONS, "--groups", GROUPS, "--duration", "1"],
    keys: ["connects_per_s", "server_cpu_ms_per_1k", "server_cpu_ms_per_1k_all", "p99_ms"],
  },
  {
    name: "typing",
    scenario: typing,
    argv: ["--duration", TYPING_DURATION],
    keys: ["server_cpu_s_per_1k", "connects_per_s", "delivered_per_s", "p99_ms", "loss_pct"],
  },
].filter((p) => (ONLY === "" ? p.name !== "connections" : ONLY.split(",").includes(p.name)));

const run = { at: new Date().toISOString(), git: gitInfo(), rounds: ROUNDS, cpus: os.cpus().length, results: {} as Record<string, { rounds: Figure[][]; ratios: Record<string, number[]>; median: Record<string, number> }> };
try {
  for (const plan of plans) {
    const rounds: Figure[][] = [];
    // The run's first measurement reads high (the machine's state as the run starts: the build,
    // a cold PostgreSQL and page cache), and it always fell to the first mode: a discarded
    // measurement goes first (--warmup 0 to skip it).
    for (let w = 0; w < WARMUP; w++) {
      const mode = Object.keys(MODES)[0]!;
      const f = await measure(plan.scenario, plan.argv, mode, `pr${Date.now().toString(36)}${mode}`);
      log(`${plan.name} warm-up, discarded: presence ${mode} (load ${f.loadBefore.join(" ")}): ${plan.keys.map((k) => `${k} ${f.headline[k]}`).join(", ")}`);
    }
    for (let r = 0; r < ROUNDS; r++) {
      const names = Object.keys(MODES);
      const order: Mode[] = r % 2 === 0 ? names : names.reverse();
      const pair: Figure[] = [];
      for (const mode of order) {
        const f = await measure(plan.scenario, plan.argv, mode, `pr${Date.now().toString(36)}${mode}`);
        log(`${plan.name} round ${r + 1} presence ${mode} (load ${f.loadBefore.join(" ")}): ${plan.keys.map((k) => `${k} ${f.headline[k]}`).join(", ")}`);
        for (const n of f.notes) log(`  note: ${n}`);
        pair.push(f);
      }
      rounds.push(pair);
    }
    // Every mode but `off`, divided by `off` of the same round.
    const ratios: Record<string, number[]> = {};
    for (const mode of Object.keys(MODES).filter((m) => m !== "off")) {
      for (const k of plan.keys) {
        ratios[`${mode} ${k}`] = rounds.map((pair) => {
          const [a, b] = [pair.find((f) => f.mode === mode)!, pair.find((f) => f.mode === "off")!];
          return Math.round((a.headline[k]! / b.headline[k]!) * 1000) / 1000;
        });
      }
    }
    const med = Object.fromEntries(Object.entries(ratios).map(([k, xs]) => [k, median(xs)]));
    run.results[plan.name] = { rounds, ratios, median: med };
    log(`${plan.name}: ÷ off per round: ${Object.entries(ratios).map(([k, xs]) => `${k} ${xs.join(" ")}`).join("; ")}`);
    log(`${plan.name}: median ÷ off: ${Object.entries(med).map(([k, x]) => `${k} ${x}`).join(", ")}`);
  }
  const file = path.join(benchDir, "results", `presence-${Date.now()}.json`);
  await writeFile(file, JSON.stringify(run, null, 2));
  log(`written to ${file}`);
} finally {
  await stopAll();
}
