// Multiplexed sockets (issue 12), against per-group sockets of the same service in the same run:
// - fan-out CPU per delivery: 100 groups, each with 10 receivers, typing at a fixed rate; the
//   receivers are per-group sockets (1,000 sockets) or 10 `/ws/` sockets subscribed to all 100
//   groups (1,000 subscriptions); node CPU seconds / deliveries, ratio /ws/ ÷ per-group (target <= 1.1);
// - memory: RSS growth per socket for per-group sockets, and for `/ws/` sockets in 100 groups each
//   (target <= 2x), each on a fresh node.
// Short on purpose (a shared machine):
//
//   npx tsx bench/multiplex.ts [--duration 8] [--rate 100] [--mem-sockets 300] [--mem-mux 60]
//
// Writes bench/results/multiplex-<time>.json and prints a summary.
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import WebSocket from "ws";
import { benchDir } from "./lib/paths.ts";
import { cpuSeconds, rssKb } from "./lib/proc.ts";
import { startTarget, stopAll, type Target } from "./lib/targets.ts";

const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return Number(i > 0 ? process.argv[i + 1]! : def);
};
const DURATION_S = arg("duration", "8");
const RATE = arg("rate", "100"); // typing frames per second, over all groups
const GROUPS = 100;
const PER_GROUP = 10;
const MEM_SOCKETS = arg("mem-sockets", "300");
const MEM_MUX = arg("mem-mux", "60");
const PG = process.env.BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const tag = () => `mux_${process.pid}_${randomBytes(3).toString("hex")}`;

function open(url: string, onFrame?: (text: string) => void): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.on("message", (d) => onFrame?.(d.toString()));
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}

/** Sends frames with request_ids and waits for every answer. */
async function ask(ws: WebSocket, frames: object[]): Promise<void> {
  let left = frames.length;
  await new Promise<void>((resolve) => {
    const onMessage = (d: WebSocket.RawData) => {
      if (/"operation":"(ack|error)"/.test(d.toString()) && --left === 0) {
        ws.off("message", onMessage);
        resolve();
      }
    };
    ws.on("message", onMessage);
    for (const [i, f] of frames.entries()) ws.send(JSON.stringify({ ...f, request_id: `b${i}` }));
  });
}

async function fanOut(mode: "per-group" | "mux"): Promise<{ deliveries: number; cpuS: number; usPerDelivery: number; lost: number }> {
  const target: Target = await startTarget("service", { nodes: 1, pgAdminUrl: PG, runTag: tag() });
  try {
    const node = target.nodes[0]!;
    const groups = Array.from({ length: GROUPS }, (_, i) => `fan${i}`);
    let received = 0;
    const count = (text: string) => {
      if (text.startsWith('{"operation":"typing"')) received++;
    };
    const receivers: WebSocket[] = [];
    if (mode === "per-group") {
      for (const g of groups) for (let k = 0; k < PER_GROUP; k++) receivers.push(await open(`${node.wsBase}/ws/chat/${g}/?user=r${g}_${k}`, count));
    } else {
      for (let k = 0; k < PER_GROUP; k++) {
        const ws = await open(`${node.wsBase}/ws/?user=m${k}`, count);
        await ask(ws, groups.map((group) => ({ operation: "subscribe", group })));
        receivers.push(ws);
      }
    }
    const publishers = await Promise.all(groups.map((g) => open(`${node.wsBase}/ws/chat/${g}/?user=p${g}`)));
    await sleep(500);
    const cpu0 = cpuSeconds(node.pid);
    received = 0;
    const total = RATE * DURATION_S;
    const every = 1000 / RATE;
    const start = performance.now();
    for (let i = 0; i < total; i++) {
      const wait = start + i * every - performance.now();
      if (wait > 0) await sleep(wait);
      publishers[i % GROUPS]!.send(`{"operation":"typing","typing_status":"typing"}`);
    }
    const expected = total * PER_GROUP;
    const deadline = Date.now() + 10_000;
    while (received < expected && Date.now() < deadline) await sleep(50);
    const cpuS = cpuSeconds(node.pid) - cpu0;
    for (const ws of [...receivers, ...publishers]) ws.terminate();
    // Every typing is also delivered to its publisher (the sender's own socket).
    const deliveries = total * (PER_GROUP + 1);
    return { deliveries, cpuS, usPerDelivery: (cpuS * 1e6) / deliveries, lost: expected - received };
  } finally {
    await target.stop();
  }
}

async function memory(mode: "per-group" | "mux"): Promise<{ sockets: number; kbPerSocket: number }> {
  const target = await startTarget("service", { nodes: 1, pgAdminUrl: PG, runTag: tag() });
  try {
    const node = target.nodes[0]!;
    const n = mode === "per-group" ? MEM_SOCKETS : MEM_MUX;
    const socks: WebSocket[] = [];
    const openRound = async (round: number) => {
      for (let i = 0; i < n; i++) {
        const user = `u${round}_${i}`;
        if (mode === "per-group") socks.push(await open(`${node.wsBase}/ws/chat/mem${i % GROUPS}/?user=${user}`));
        else {
          const ws = await open(`${node.wsBase}/ws/?user=${user}`);
          await ask(ws, Array.from({ length: GROUPS }, (_, g) => ({ operation: "subscribe", group: `mem${g}` })));
          socks.push(ws);
        }
      }
      await sleep(3000);
    };
    // The first round warms the node (its groups, its heap's garbage from the handshakes and
    // subscribe frames); the second round's growth is what a socket keeps.
    await openRound(0);
    const rss1 = rssKb(node.pid);
    await openRound(1);
    const kb = rssKb(node.pid) - rss1;
    for (const ws of socks) ws.terminate();
    return { sockets: n, kbPerSocket: kb / n };
  } finally {
    await target.stop();
  }
}

const ONLY_MEMORY = process.argv.includes("--only-memory");
try {
  const none = { deliveries: 0, cpuS: 0, usPerDelivery: 1, lost: 0 };
  const perGroup = ONLY_MEMORY ? none : await fanOut("per-group");
  const mux = ONLY_MEMORY ? none : await fanOut("mux");
  const memPer = await memory("per-group");
  const memMux = await memory("mux");
  const result = {
    at: new Date().toISOString(),
    rate: RATE,
    durationS: DURATION_S,
    fanOut: { perGroup, mux, cpuRatio: mux.usPerDelivery / perGroup.usPerDelivery },
    memory: { perGroup: memPer, mux: memMux, ratio: memMux.kbPerSocket / memPer.kbPerSocket },
  };
  const file = path.join(benchDir, "results", `multiplex-${Date.now()}.json`);
  await writeFile(file, JSON.stringify(result, null, 2));
  console.log(`fan-out, per-group sockets: ${perGroup.usPerDelivery.toFixed(2)} µs CPU per delivery (${perGroup.deliveries} deliveries, lost ${perGroup.lost})`);
  console.log(`fan-out, /ws/ in 100 groups: ${mux.usPerDelivery.toFixed(2)} µs CPU per delivery (${mux.deliveries} deliveries, lost ${mux.lost})`);
  console.log(`ratio /ws/ ÷ per-group: ${result.fanOut.cpuRatio.toFixed(2)} (target <= 1.1)`);
  console.log(`memory: per-group socket ${memPer.kbPerSocket.toFixed(1)} kB; /ws/ socket in 100 groups ${memMux.kbPerSocket.toFixed(1)} kB; ratio ${result.memory.ratio.toFixed(2)} (target <= 2)`);
  console.log(`written to ${file}`);
} finally {
  await stopAll();
}
