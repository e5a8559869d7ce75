// Memory of a `/ws/` socket in 100 groups against a per-group socket (issue 12 target: <= 2x),
// measured inside the node: the node runs in this process (started with --expose-gc, so the
// heap is collected before each reading) and the clients in a child process. A first round of
// sockets warms the node (its groups, its code, its pools); the second round's growth of the JS
// heap and of RSS, divided by its sockets, is what one socket keeps.
//
//   node --expose-gc --import tsx bench/multiplex-memory.ts [--per-group 1000] [--mux 100]
import { fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import WebSocket from "ws";
import { benchDir } from "./lib/paths.ts";

const GROUPS = 100;
const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return Number(i > 0 ? process.argv[i + 1]! : def);
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

if (process.argv[2] === "client") {
  // The child: opens sockets on request and keeps them until told to quit.
  const socks: WebSocket[] = [];
  const open = (url: string) =>
    new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false });
      ws.once("open", () => resolve(ws));
      ws.once("error", reject);
    });
  process.on("message", async (m: { mode: "per-group" | "mux"; n: number; round: number; port: number } | "quit") => {
    if (m === "quit") {
      for (const ws of socks) ws.terminate();
      process.exit(0);
    }
    const base = `ws://127.0.0.1:${m.port}`;
    for (let i = 0; i < m.n; i++) {
      if (m.mode === "per-group") socks.push(await open(`${base}/ws/chat/mem${i % GROUPS}/?user=u${m.round}_${i}`));
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
} else {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("run with node --expose-gc --import tsx bench/multiplex-memory.ts");
  const { loadConfig } = await import("../src/config/env.ts");
  const { createLogger } = await import("../src/log.ts");
  const { startNode } = await import("../src/server.ts");
  const PG_ADMIN = process.env.BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
  const admin = new pg.Client({ connectionString: PG_ADMIN });
  await admin.connect();

  const reading = async () => {
    for (let i = 0; i < 3; i++) {
      gc();
      await sleep(200);
    }
    const m = process.memoryUsage();
    return { heapKb: m.heapUsed / 1024, rssKb: m.rss / 1024 };
  };

  async function measure(mode: "per-group" | "mux", n: number) {
    const name = `chat_bench_mem_${process.pid}_${randomBytes(3).toString("hex")}`;
    await admin.query(`CREATE DATABASE "${name}"`);
    const url = new URL(PG_ADMIN);
    url.pathname = `/${name}`;
    const config = loadConfig({ PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "silent", DATABASE_URL: url.toString() });
    const node = await startNode(config, createLogger("silent"));
    const child = fork(fileURLToPath(import.meta.url), ["client"], { execArgv: ["--import", "tsx"] });
    const round = (r: number) =>
      new Promise<void>((resolve) => {
        child.once("message", () => resolve());
        child.send({ mode, n, round: r, port: node.port });
      });
    try {
      await round(0);
      await sleep(1000);
      const before = await reading();
      await round(1);
      await sleep(1000);
      const after = await reading();
      return { mode, sockets: n, heapKbPerSocket: (after.heapKb - before.heapKb) / n, rssKbPerSocket: (after.rssKb - before.rssKb) / n };
    } finally {
      child.send("quit");
      await node.shutdown();
      await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    }
  }

  const perGroup = await measure("per-group", arg("per-group", "1000"));
  const mux = await measure("mux", arg("mux", "100"));
  await admin.end();
  const result = { at: new Date().toISOString(), perGroup, mux, heapRatio: mux.heapKbPerSocket / perGroup.heapKbPerSocket, rssRatio: mux.rssKbPerSocket / perGroup.rssKbPerSocket };
  const file = path.join(benchDir, "results", `multiplex-memory-${Date.now()}.json`);
  await writeFile(file, JSON.stringify(result, null, 2));
  console.log(`per-group socket: JS heap ${perGroup.heapKbPerSocket.toFixed(1)} kB, RSS ${perGroup.rssKbPerSocket.toFixed(1)} kB`);
  console.log(`/ws/ socket in ${GROUPS} groups: JS heap ${mux.heapKbPerSocket.toFixed(1)} kB, RSS ${mux.rssKbPerSocket.toFixed(1)} kB`);
  console.log(`ratio: heap ${result.heapRatio.toFixed(2)}, RSS ${result.rssRatio.toFixed(2)} (target <= 2)`);
  console.log(`written to ${file}`);
  process.exit(0);
}
