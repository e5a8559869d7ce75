// Persisted creates straight into the store (no WebSockets, no load generator processes): the
// write path's cost per create, node and PostgreSQL, for before/after pairs measured in the same
// run on a loaded machine. Each pass runs in its own child process against a fresh database,
// offering `--rate` creates/s (open loop, each with a request_id, as the SDK sends them) over
// `--groups` groups; passes of the builds given alternate (A B A B …), so both see the same
// machine. Per pass: acked/s, ack p50/p99, node CPU and PostgreSQL backend CPU per 1,000 creates,
// and with `pg_stat_statements` in the server the statements' own time per 1,000 creates.
//
//   [BENCH_CPU_PROF_DIR=dir] npx tsx bench/store-writes.ts [--rate 3000] [--groups 100] [--seconds 10]
//        [--passes 2] [--store name=path/to/src/store/database.ts ...] [--outbox]
//
// Default store: this checkout's. A before/after pair: copy the other build's src/ (generated
// client included) aside and name both, e.g. `--store before=/tmp/old/src/store/database.ts
// --store after=src/store/database.ts`. BENCH_PG_URL names the server (it must allow CREATE
// DATABASE). Writes bench/results/store-writes-<time>.json.
import { fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import pg from "pg";
import { newHistogram, summarize } from "./lib/histogram.ts";
import { benchDir } from "./lib/paths.ts";

const argv = process.argv.slice(2);
const arg = (name: string, def: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1]! : def;
};
const RATE = Number(arg("rate", "3000"));
const GROUPS = Number(arg("groups", "100"));
const SECONDS = Number(arg("seconds", "10"));
const PASSES = Number(arg("passes", "2"));
const OUTBOX = argv.includes("--outbox");
const WARMUP_S = 3;
const PG_ADMIN = process.env.BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

interface PassResult {
  store: string;
  pass: number;
  offered: number;
  acked: number;
  failed: number;
  ackedPerS: number;
  ack: ReturnType<typeof summarize>;
  nodeCpuMsPer1k: number;
  pgCpuMsPer1k: number;
  /** Mean creates per write batch while measuring (null: the build does not report its batches). */
  meanBatchItems: number | null;
  /** Statements' own execution time per 1,000 creates (pg_stat_statements), the top five. */
  statements: { query: string; calls: number; msPer1k: number }[];
  load: number[];
}

/** utime + stime of a process, ms. */
function procCpuMs(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
  } catch {
    return 0;
  }
}

async function child(storePath: string, label: string, pass: number): Promise<void> {
  const name = `chat_bench_writes_${process.pid}_${randomBytes(3).toString("hex")}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${name}"`);
  const url = new URL(PG_ADMIN);
  url.pathname = `/${name}`;
  const { openDatabase } = (await import(pathToFileURL(path.resolve(storePath)).href)) as typeof import("../src/store/database.ts");
  // Batch sizes while measuring (older builds do not call onWriteBatch: then none are reported).
  const batchSizes = { batches: 0, items: 0, counting: false };
  const db = await openDatabase({
    databaseUrl: url.toString(),
    dataDir: "unused",
    webhookOutbox: OUTBOX,
    ...(process.env.WRITE_BATCH_LINGER_MS ? { writeBatchLingerMs: Number(process.env.WRITE_BATCH_LINGER_MS) } : {}),
    onWriteBatch: (n: number) => {
      if (!batchSizes.counting) return;
      batchSizes.batches++;
      batchSizes.items += n;
    },
  } as Parameters<typeof openDatabase>[0]);
  const sql = new pg.Client({ connectionString: url.toString() });
  await sql.connect();
  const hasStatements = (await sql.query(`SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'`).catch(() => ({ rows: [] }))).rows.length > 0
    || (await sql.query(`CREATE EXTENSION IF NOT EXISTS pg_stat_statements`).then(() => true, () => false));
  // The extension can be created on a server that does not load its library; then it cannot be read.
  const statementsReadable = hasStatements && (await sql.query(`SELECT pg_stat_statements_reset()`).then(() => true, () => false));
  const groups = Array.from({ length: GROUPS }, (_, g) => `g${g}`);
  const hist = newHistogram();
  let offered = 0;
  let acked = 0;
  let failed = 0;
  let measuring = false;
  const errors = new Map<string, number>();
  const send = (i: number) => {
    const t0 = performance.now();
    const counted = measuring;
    if (counted) offered++;
    db.store
      .createMessage({ group: groups[i % GROUPS]!, user: `u${i % (GROUPS * 2)}`, type: "text", body: `message ${i} ${"x".repeat(40)}`, attachment: null, replyTo: null, retryKey: { requestId: `r${i}`, windowMs: 300_000 } })
      .then(
        () => {
          if (!counted) return;
          acked++;
          hist.recordValue(Math.max(1, Math.round((performance.now() - t0) * 1000)));
        },
        (err: Error) => {
          if (!counted) return;
          failed++;
          errors.set(err.message, (errors.get(err.message) ?? 0) + 1);
        },
      );
  };
  // Open loop: every tick sends what the schedule owes, so a slow store does not slow the offer.
  const start = performance.now();
  let sent = 0;
  let measureStart = 0;
  let nodeCpu0 = 0;
  let pgCpu0 = 0;
  let pids: number[] = [];
  const backends = async () => (await sql.query(`SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, [name])).rows.map((r) => r.pid as number);
  const cpu = () => process.cpuUsage();
  let c0 = cpu();
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const elapsed = (performance.now() - start) / 1000;
      if (!measuring && elapsed >= WARMUP_S) {
        void (async () => {
          pids = await backends();
          pgCpu0 = pids.reduce((s, p) => s + procCpuMs(p), 0);
          if (statementsReadable) await sql.query(`SELECT pg_stat_statements_reset()`);
        })();
        measuring = true;
        batchSizes.counting = true;
        measureStart = performance.now();
        c0 = cpu();
        nodeCpu0 = 0;
      }
      if (elapsed >= WARMUP_S + SECONDS) {
        batchSizes.counting = false;
        clearInterval(timer);
        resolve();
        return;
      }
      const due = Math.floor(elapsed * RATE);
      while (sent < due) send(sent++);
    }, 2);
  });
  const c1 = cpu();
  const seconds = (performance.now() - measureStart) / 1000;
  // Let the last writes settle (they count if acked within their deadline).
  const settleBy = Date.now() + 6_000;
  while (acked + failed < offered && Date.now() < settleBy) await new Promise((r) => setTimeout(r, 20));
  const nodeCpuMs = (c1.user + c1.system - (c0.user + c0.system)) / 1000 - nodeCpu0;
  const pgCpuMs = pids.reduce((s, p) => s + procCpuMs(p), 0) - pgCpu0;
  let statements: PassResult["statements"] = [];
  if (statementsReadable) {
    const rows = (await sql.query(`SELECT query, calls, total_exec_time FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1) ORDER BY total_exec_time DESC LIMIT 6`, [name])).rows;
    statements = rows.map((r) => ({ query: String(r.query).replace(/\s+/g, " ").slice(0, 140), calls: Number(r.calls), msPer1k: Math.round((Number(r.total_exec_time) / acked) * 1000 * 100) / 100 }));
  }
  const result: PassResult = {
    store: label,
    pass,
    offered,
    acked,
    failed,
    ackedPerS: Math.round(acked / seconds),
    ack: summarize(hist),
    nodeCpuMsPer1k: Math.round((nodeCpuMs / acked) * 1000),
    meanBatchItems: batchSizes.batches > 0 ? Math.round((batchSizes.items / batchSizes.batches) * 10) / 10 : null,
    pgCpuMsPer1k: Math.round((pgCpuMs / acked) * 1000),
    statements,
    load: os.loadavg().map((l) => Math.round(l * 10) / 10),
  };
  if (errors.size > 0) console.error(`[${label}] errors: ${[...errors].map(([m, n]) => `${n}x ${m}`).join("; ")}`);
  process.send!(result);
  await sql.end();
  await db.store.close();
  await db.prisma.$disconnect().catch(() => {});
  await admin.query(`DROP DATABASE "${name}" WITH (FORCE)`);
  await admin.end();
}

async function coordinator(): Promise<void> {
  const stores: [string, string][] = [];
  argv.forEach((a, i) => {
    if (a === "--store") {
      const [label, p] = argv[i + 1]!.split("=") as [string, string];
      stores.push([label, p]);
    }
  });
  if (stores.length === 0) stores.push(["this", "src/store/database.ts"]);
  const results: PassResult[] = [];
  for (let pass = 1; pass <= PASSES; pass++) {
    for (const [label, p] of stores) {
      const r = await new Promise<PassResult>((resolve, reject) => {
        // BENCH_CPU_PROF_DIR=dir: each pass writes a V8 CPU profile of its process (the store's side) there.
        const profile = process.env.BENCH_CPU_PROF_DIR ? ["--cpu-prof", `--cpu-prof-dir=${path.resolve(process.env.BENCH_CPU_PROF_DIR)}`, `--cpu-prof-name=${label}-${pass}.cpuprofile`] : [];
        const c = fork(fileURLToPath(import.meta.url), ["--child", label, p, String(pass), ...argv], { execArgv: ["--import", "tsx", ...profile] });
        let got: PassResult | undefined;
        c.on("message", (m) => (got = m as PassResult));
        c.on("exit", (code) => (got ? resolve(got) : reject(new Error(`pass ${label} exited ${code}`))));
      });
      results.push(r);
      console.log(
        `${r.store} #${r.pass}: ${r.ackedPerS}/s acked of ${RATE}/s offered (${r.failed} failed), ack p50 ${r.ack.p50} ms p99 ${r.ack.p99} ms, ` +
          `CPU per 1k creates: node ${r.nodeCpuMsPer1k} ms, PostgreSQL ${r.pgCpuMsPer1k} ms; mean batch ${r.meanBatchItems ?? "?"} creates; load ${r.load.join(" ")}`,
      );
      for (const s of r.statements) console.log(`    ${s.msPer1k} ms/1k  ${s.calls} calls  ${s.query}`);
    }
  }
  const file = path.join(benchDir, "results", `store-writes-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  await writeFile(file, JSON.stringify({ rate: RATE, groups: GROUPS, seconds: SECONDS, outbox: OUTBOX, results }, null, 2));
  console.log(`results: ${file}`);
}

if (argv[0] === "--child") await child(argv[2]!, argv[1]!, Number(argv[3]));
else await coordinator();
