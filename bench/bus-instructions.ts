// Instructions per payload of a node's bus, one Redis against the Redis Cluster, counted by
// valgrind (cachegrind) rather than timed: on a shared machine CPU seconds drift by 2× within
// minutes, and this machine's perf has no hardware counters. Each measurement runs one bus process
// (bench/bus-role.ts) under valgrind, as a receiving node (`recv`: subscribed, counting payloads) or
// as the publishing node (`pub`: subscribed and publishing, so it hears its own events), or idle
// (`idle`: subscribed, for as long as the payloads would take), with a
// partner process at full speed on the other side, on private redis-server processes. A run is
// counted twice, with `--small` and `--large` payloads at the same rate, and the difference is what
// the extra payloads cost: start-up cancels out, while what the bus does per second (timers, slot
// refreshes) stays in, at the rate's share.
//
// Both counts must be past V8's warm-up under valgrind (~15 s of traffic): the defaults are.
//
//   npx tsx bench/bus-instructions.ts [--small 4000] [--large 10000] [--rate 200] [--rounds 1] [--modes one-redis,cluster] [--roles recv,pub,idle]
//
// Prints a line per measurement and the Cluster ÷ one Redis ratios; writes bench/results/bus-instructions-<time>.json.
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { build } from "esbuild";
import { startRedisCluster, startStandaloneRedis } from "../scripts/cluster/redis-processes.ts";
import { benchDir } from "./lib/paths.ts";

const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : def;
};
const SMALL = Number(arg("small", "4000"));
const LARGE = Number(arg("large", "10000"));
const RATE = Number(arg("rate", "200"));
const ROUNDS = Number(arg("rounds", "1"));
const MODES = arg("modes", "one-redis,cluster").split(",");
const ROLES = arg("roles", "recv,pub").split(",");

const tmp = await mkdtemp(path.join(os.tmpdir(), "bus-instructions-"));
const script = path.join(tmp, "bus-role.mjs");
await build({
  entryPoints: [path.join(import.meta.dirname, "bus-role.ts")],
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  outfile: script,
  // ioredis and its dependencies are CommonJS: give the bundle a require.
  banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" },
  logLevel: "warning",
});

interface Proc {
  lines: AsyncIterator<string>;
  write(s: string): void;
  exited: Promise<number>;
  kill(): void;
}

function start(cmd: string, args: string[]): Proc {
  const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  return {
    lines,
    write: (s) => child.stdin!.write(s),
    exited: new Promise((r) => child.once("exit", (code) => r(code ?? -1))),
    kill: () => child.kill("SIGKILL"),
  };
}

async function expect(p: Proc, prefix: string, ms: number): Promise<string> {
  const timer = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no "${prefix}" in ${ms} ms`)), ms).unref());
  for (;;) {
    const r = await Promise.race([p.lines.next(), timer]);
    if (r.done) throw new Error(`exited before "${prefix}"`);
    if (r.value.startsWith(prefix)) return r.value;
  }
}

const single = await startStandaloneRedis();
const cluster = await startRedisCluster();
const seeds = cluster.nodesEnv;
let runs = 0;

/** Instructions of one `role` process in `mode` over `payloads` payloads. */
async function count(mode: string, role: string, payloads: number): Promise<number> {
  const groups = Array.from({ length: 10 }, (_, i) => `bi-${runs}-${i}`).join(",");
  runs++;
  const out = path.join(tmp, `cg-${runs}.out`);
  const args = (r: string) => [script, r, mode, String(payloads), String(RATE), single.url, seeds, groups];
  const measured = start("valgrind", ["--tool=cachegrind", "--cache-sim=no", `--cachegrind-out-file=${out}`, "-q", "--log-file=/dev/null", "node", ...args(role)]);
  const partner = role === "idle" ? undefined : start("node", args(role === "pub" ? "recv" : "pub"));
  const pub = role === "pub" ? measured : partner;
  try {
    await Promise.all([expect(measured, "ready", 120_000), partner && expect(partner, "ready", 30_000)]);
    pub?.write("go\n");
    const limit = 60_000 + (payloads / RATE) * 3_000;
    const [done] = await Promise.all([expect(measured, "done", limit), partner && expect(partner, "done", limit)]);
    if (done !== "done {}") console.log(`  ${mode} ${role} ${payloads}: publishes ${done.slice(5)}`);
    await measured.exited;
  } finally {
    measured.kill();
    partner?.kill();
  }
  const m = /^summary:\s+(\d+)/m.exec(await readFile(out, "utf8"));
  if (!m) throw new Error(`no summary in ${out}`);
  return Number(m[1]);
}

const results: Record<string, number>[] = [];
try {
  for (let r = 0; r < ROUNDS; r++) {
    const row: Record<string, number> = { load: Math.round(os.loadavg()[0]! * 10) / 10 };
    for (const role of ROLES) {
      for (const mode of MODES) {
        const a = await count(mode, role, SMALL);
        const b = await count(mode, role, LARGE);
        row[`${mode} ${role}`] = Math.round((b - a) / (LARGE - SMALL));
        console.log(`round ${r + 1} ${mode} ${role}: ${row[`${mode} ${role}`]} instructions per payload (${a} at ${SMALL}, ${b} at ${LARGE}; load ${os.loadavg()[0]!.toFixed(1)})`);
      }
      if (row[`cluster ${role}`] && row[`one-redis ${role}`]) console.log(`round ${r + 1} ${role}: Cluster ÷ one Redis ×${(row[`cluster ${role}`]! / row[`one-redis ${role}`]!).toFixed(3)}`);
    }
    results.push(row);
  }
} finally {
  await Promise.all([single.stop(), cluster.stop(), rm(tmp, { recursive: true, force: true })]);
}
const file = path.join(benchDir, "results", `bus-instructions-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
await writeFile(file, `${JSON.stringify({ small: SMALL, large: LARGE, rate: RATE, results }, null, 2)}\n`);
console.log(`written ${file}`);
