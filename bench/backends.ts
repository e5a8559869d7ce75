// Backends benchmark (issue 15): server-API publishes/s at p99 <= 50 ms on one node, beside
// WebSocket creates on the same node in the same run; then webhook throughput and lag (create
// acknowledged -> receiver got it) at 1,000 events/s. Short, on purpose (a shared machine):
//
//   npx tsx bench/backends.ts [--duration 5] [--rates 250,500,1000,1500,2000] [--ws-rate 200] [--webhook-rate 1000]
//
// Writes bench/results/backends-<time>.json and prints a summary.
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import WebSocket from "ws";
import { newHistogram, summarize, type Histogram } from "./lib/histogram.ts";
import { benchDir } from "./lib/paths.ts";
import { startTarget, stopAll, type Target } from "./lib/targets.ts";

const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : def;
};
const DURATION_S = Number(arg("duration", "5"));
const RATES = arg("rates", "250,500,1000,1500,2000").split(",").map(Number);
const WS_RATE = Number(arg("ws-rate", "200"));
const WEBHOOK_RATE = Number(arg("webhook-rate", "1000"));
const PG = process.env.BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const KEY = randomBytes(16).toString("hex");
const SECRET = randomBytes(16).toString("hex");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const nowUs = () => performance.now() * 1000;

async function start(env: Record<string, string>): Promise<Target> {
  for (const k of ["SERVER_API_KEYS", "WEBHOOK_URL", "WEBHOOK_SECRET"]) delete process.env[k];
  Object.assign(process.env, env);
  return startTarget("service", { nodes: 1, pgAdminUrl: PG, runTag: `backends_${process.pid}_${randomBytes(3).toString("hex")}` });
}

/** One WebSocket per group, creating with request_ids; resolves each create's ack latency. */
async function wsSenders(port: number, groups: string[]) {
  const socks = await Promise.all(
    groups.map(
      (g) =>
        new Promise<{ ws: WebSocket; pending: Map<string, (ok: boolean) => void> }>((resolve, reject) => {
          const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/chat/${g}/?user=ws-${g}`, { perMessageDeflate: false });
          const pending = new Map<string, (ok: boolean) => void>();
          ws.on("message", (data) => {
            const f = JSON.parse(data.toString());
            if ((f.operation === "ack" || f.operation === "error") && f.request_id) {
              pending.get(f.request_id)?.(f.operation === "ack");
              pending.delete(f.request_id);
            } else if (f.operation === "ack" || f.operation === "error") return;
          });
          ws.once("open", () => resolve({ ws, pending }));
          ws.once("error", reject);
        }),
    ),
  );
  let n = 0;
  return {
    /** Sends one create; resolves with its message ack time (µs) or null on error. */
    create(onAck?: (id: string, ackUs: number) => void): Promise<number | null> {
      const s = socks[n % socks.length]!;
      const rid = `w${n++}`;
      const sent = nowUs();
      return new Promise((resolve) => {
        s.pending.set(rid, (ok) => resolve(ok ? nowUs() - sent : null));
        s.ws.send(JSON.stringify({ operation: "create", type: "text", body: `bench ${rid}`, request_id: rid }));
      });
    },
    close: () => socks.forEach((s) => s.ws.close()),
    socks,
  };
}

/** Runs `fire` open loop at `rate`/s for `seconds`, then waits for what is in flight. */
async function openLoop(rate: number, seconds: number, fire: () => Promise<unknown>): Promise<void> {
  const total = Math.round(rate * seconds);
  const start = performance.now();
  const inflight: Promise<unknown>[] = [];
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    inflight.push(fire());
  }
  await Promise.all(inflight);
}

async function apiPhase() {
  const target = await start({ SERVER_API_KEYS: KEY });
  const port = target.nodes[0]!.port;
  const groups = Array.from({ length: 20 }, (_, i) => `bapi${i}`);
  const ws = await wsSenders(port, Array.from({ length: 10 }, (_, i) => `bws${i}`));
  const steps = [];
  let reqN = 0;
  try {
    for (const rate of RATES) {
      const api = newHistogram();
      const wsh = newHistogram();
      let apiFailed = 0;
      let wsFailed = 0;
      const publish = async () => {
        const g = groups[reqN % groups.length]!;
        const t0 = nowUs();
        try {
          const res = await fetch(`http://127.0.0.1:${port}/api/server/groups/${g}/messages`, {
            method: "POST",
            headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
            body: JSON.stringify({ user: "bot", type: "text", body: `api ${reqN}`, request_id: `a${reqN++}` }),
          });
          await res.arrayBuffer();
          if (res.status === 200) api.recordValue(Math.max(1, Math.round(nowUs() - t0)));
          else apiFailed++;
        } catch {
          apiFailed++;
        }
      };
      const create = async () => {
        const us = await ws.create();
        if (us === null) wsFailed++;
        else wsh.recordValue(Math.max(1, Math.round(us)));
      };
      await Promise.all([openLoop(rate, DURATION_S, publish), openLoop(WS_RATE, DURATION_S, create)]);
      const step = { apiRate: rate, api: summarize(api), apiFailed, wsRate: WS_RATE, ws: summarize(wsh), wsFailed };
      steps.push(step);
      console.log(`API ${rate}/s: p50 ${step.api.p50} ms p99 ${step.api.p99} ms failed ${apiFailed} | beside WS creates ${WS_RATE}/s: p99 ${step.ws.p99} ms failed ${wsFailed}`);
      if (step.api.p99 > 50 || apiFailed > 0) break;
    }
  } finally {
    ws.close();
    await target.stop();
  }
  const passing = steps.filter((s) => s.api.p99 <= 50 && s.apiFailed === 0);
  return { steps, bestApiRateAtP99Le50ms: passing.length ? Math.max(...passing.map((s) => s.apiRate)) : 0 };
}

async function webhookPhase() {
  const arrivals = new Map<string, number>();
  const lastSeq = new Map<string, number>();
  let outOfOrder = 0;
  let duplicates = 0;
  let firstUs = 0;
  let lastUs = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const e = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      const t = nowUs();
      firstUs ||= t;
      lastUs = t;
      if (e.message?.id && arrivals.has(e.message.id)) duplicates++;
      else if (e.message?.id) arrivals.set(e.message.id, t);
      if (e.seq !== (lastSeq.get(e.group) ?? 0) + 1) outOfOrder++;
      lastSeq.set(e.group, Math.max(e.seq, lastSeq.get(e.group) ?? 0));
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const hook = `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`;
  const target = await start({ WEBHOOK_URL: hook, WEBHOOK_SECRET: SECRET });
  const ws = await wsSenders(target.nodes[0]!.port, Array.from({ length: 20 }, (_, i) => `bhook${i}`));
  const acked = new Map<string, number>();
  // The ack carries the message id: keep it to match the webhook.
  for (const s of ws.socks) {
    s.ws.on("message", (data) => {
      const f = JSON.parse(data.toString());
      if (f.operation === "ack" && f.message_id) acked.set(f.message_id, nowUs());
    });
  }
  const started = nowUs();
  let failed = 0;
  try {
    await openLoop(WEBHOOK_RATE, DURATION_S * 2, async () => {
      if ((await ws.create()) === null) failed++;
    });
    const deadline = Date.now() + 60_000;
    while (arrivals.size < acked.size && Date.now() < deadline) await sleep(50);
  } finally {
    ws.close();
    await target.stop();
    server.close();
  }
  const lag: Histogram = newHistogram();
  let missing = 0;
  for (const [id, ackUs] of acked) {
    const at = arrivals.get(id);
    if (at === undefined) missing++;
    else lag.recordValue(Math.max(1, Math.round(at - ackUs)));
  }
  const seconds = (lastUs - started) / 1e6;
  const out = { offeredPerS: WEBHOOK_RATE, events: acked.size, createsFailed: failed, delivered: arrivals.size, missing, duplicates, outOfOrder, deliveredPerS: Math.round(arrivals.size / seconds), lag: summarize(lag) };
  console.log(`webhooks at ${WEBHOOK_RATE}/s offered: ${out.delivered}/${out.events} delivered at ${out.deliveredPerS}/s, lag p50 ${out.lag.p50} ms p99 ${out.lag.p99} ms max ${out.lag.max} ms, missing ${missing}, duplicates ${duplicates}, out of order ${outOfOrder}`);
  return out;
}

try {
  const api = await apiPhase();
  const webhooks = await webhookPhase();
  const file = path.join(benchDir, "results", `backends-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  await writeFile(file, JSON.stringify({ durationS: DURATION_S, api, webhooks }, null, 2));
  console.log(`written ${file}`);
} finally {
  await stopAll();
}
