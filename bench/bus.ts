// The event bus alone: CPU per payload of the one-Redis bus (src/bus/redis-bus.ts) against the
// Redis Cluster bus (src/bus/redis-cluster-bus.ts), each with one publishing and one subscribing
// bus in this process, on private redis-server processes (one, and a 3-primary/3-replica
// cluster), and the Cluster bus once more with `directPublish: false` (ioredis' routed path for
// every publish, as before direct publishing). Rounds alternate them so all see the same machine;
// the ratios to one Redis are per round.
// Separates the bus's own cost from a node's (cross-node measures whole nodes).
//
//   npx tsx bench/bus.ts [--payloads 40000] [--rate 4000] [--rounds 3]
//
// Writes bench/results/bus-<time>.json and prints a line per measurement.
import { writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startRedisCluster, startStandaloneRedis } from "../scripts/cluster/redis-processes.ts";
import type { EventBus } from "../src/bus/bus.ts";
import { RedisBus } from "../src/bus/redis-bus.ts";
import { RedisClusterBus } from "../src/bus/redis-cluster-bus.ts";
import { totalCpuSeconds } from "./lib/proc.ts";
import { benchDir } from "./lib/paths.ts";
import { median } from "./scenarios/cross-node.ts";

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const PAYLOADS = arg("payloads", 40_000);
const RATE = arg("rate", 4_000);
const ROUNDS = arg("rounds", 3);
const GROUPS = 10;
// A typing event's size.
const PAYLOAD = JSON.stringify({ operation: "typing", group: "bench-bus-group", user: "t1_123_1234567890123", typing_status: "typing" });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Bus = EventBus & { ready(): Promise<void> };

/** Publishes PAYLOADS at RATE over GROUPS groups; CPU per payload (µs) of this process and of Redis. */
async function measure(name: string, make: (onPayload: () => void) => Bus, redisPids: number[]) {
  let got = 0;
  const sub = make(() => got++);
  const pub = make(() => {});
  try {
    await Promise.all([sub.ready(), pub.ready()]);
    const groups = Array.from({ length: GROUPS }, (_, i) => `bench-bus-${name}-${i}`);
    for (const g of groups) await sub.subscribe(g);
    await sleep(500);
    const cpu0 = process.cpuUsage();
    const redis0 = totalCpuSeconds(redisPids);
    const t0 = performance.now();
    for (let i = 0; i < PAYLOADS; i++) {
      void pub.publish(groups[i % GROUPS]!, PAYLOAD).catch(() => {});
      // Ten payloads per tick: a node publishes what one turn of its loop produced.
      if (i % 10 === 9) {
        const wait = t0 + ((i + 1) * 1000) / RATE - performance.now();
        await sleep(Math.max(0, wait));
      }
    }
    while (got < PAYLOADS && performance.now() - t0 < (PAYLOADS / RATE) * 1000 + 15_000) await sleep(20);
    const cpu = process.cpuUsage(cpu0);
    const redisS = totalCpuSeconds(redisPids) - redis0;
    return {
      bus: name,
      received: got,
      nodeUsPerPayload: Math.round(((cpu.user + cpu.system) / PAYLOADS) * 10) / 10,
      redisUsPerPayload: Math.round(((redisS * 1e6) / PAYLOADS) * 10) / 10,
      seconds: Math.round(performance.now() - t0) / 1000,
    };
  } finally {
    await Promise.allSettled([sub.close(), pub.close()]);
  }
}

const single = await startStandaloneRedis();
const cluster = await startRedisCluster().catch(async (err) => {
  await single.stop();
  throw err;
});
const seeds = cluster.nodes.map((n) => ({ host: "127.0.0.1", port: n.port }));
const rounds = [];
try {
  for (let r = 0; r < ROUNDS; r++) {
    const load = os.loadavg()[0]!;
    const one = await measure("one-redis", (h) => new RedisBus(single.url, h), [single.process.pid]);
    const many = await measure("redis-cluster", (h) => new RedisClusterBus({ nodes: seeds }, h), cluster.nodes.map((n) => n.pid));
    // The same bus with every publish on ioredis' routed path (before direct publishing).
    const routed = await measure("redis-cluster-routed", (h) => new RedisClusterBus({ nodes: seeds, directPublish: false }, h), cluster.nodes.map((n) => n.pid));
    const ratio = (a: number) => Math.round((a / one.nodeUsPerPayload) * 100) / 100;
    const round = { load: Math.round(load * 10) / 10, one, cluster: many, routed, ratio: ratio(many.nodeUsPerPayload), routedRatio: ratio(routed.nodeUsPerPayload) };
    rounds.push(round);
    console.log(
      `round ${r + 1} (load ${round.load}): one Redis ${one.nodeUsPerPayload} µs + Redis ${one.redisUsPerPayload} µs per payload; ` +
        `Redis Cluster ${many.nodeUsPerPayload} µs + Redis ${many.redisUsPerPayload} µs (×${round.ratio}); ` +
        `routed publishes ${routed.nodeUsPerPayload} µs + Redis ${routed.redisUsPerPayload} µs (×${round.routedRatio}) (received ${one.received}, ${many.received}, ${routed.received} of ${PAYLOADS})`,
    );
  }
} finally {
  await Promise.all([single.stop(), cluster.stop()]);
}
const result = { payloads: PAYLOADS, rate: RATE, payloadBytes: PAYLOAD.length, rounds, medianRatio: median(rounds.map((r) => r.ratio)), medianRoutedRatio: median(rounds.map((r) => r.routedRatio)) };
console.log(`median Cluster ÷ one Redis, bus CPU per payload: ×${result.medianRatio} (routed publishes: ×${result.medianRoutedRatio})`);
const file = path.join(benchDir, "results", `bus-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
console.log(`written ${file}`);
// ioredis may hold a timer or a socket a moment longer after quit.
process.exit(0);
