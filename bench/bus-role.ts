// One side of bench/bus-instructions.ts, in its own process so that it can run under valgrind:
// a node's bus as the cross-node bench uses it. `recv` subscribes to the groups and counts
// payloads (a receiving node); `idle` subscribes and waits as long as the payloads would take; `pub` subscribes too and publishes (the publishing node, which hears
// its own events back). Bundled by the driver into plain JavaScript (valgrind would otherwise
// count tsx's transpiling).
//
//   node bus-role.mjs <recv|pub|idle> <one-redis|cluster> <payloads> <rate> <redis-url> <cluster-seeds> <groups,…>
//
// Prints "ready" once subscribed, waits for a line on stdin (pub only) and prints "done" once it has
// received every payload, then exits.
import { RedisBus } from "../src/bus/redis-bus.ts";
import { RedisClusterBus } from "../src/bus/redis-cluster-bus.ts";

const [role, mode, n, rate, url, seeds, groupList] = process.argv.slice(2);
const PAYLOADS = Number(n);
const RATE = Number(rate);
const groups = groupList!.split(",");
const PAYLOAD = JSON.stringify({ operation: "typing", group: groups[0], user: "t1_123_1234567890123", typing_status: "typing" });

let got = 0;
const onPayload = () => {
  if (++got === PAYLOADS) void finish();
};
const bus =
  mode === "cluster"
    ? new RedisClusterBus({ nodes: seeds!.split(",").map((s) => ({ host: "127.0.0.1", port: Number(s.split(":")[1]) })) }, onPayload)
    : new RedisBus(url!, onPayload);

async function finish() {
  process.stdout.write(`done ${JSON.stringify(bus instanceof RedisClusterBus ? bus.publishes : {})}\n`);
  await bus.close();
  process.exit(0);
}

await bus.ready(120_000);
for (const g of groups) await bus.subscribe(g);
process.stdout.write("ready\n");
if (role === "idle") {
  // Subscribed and idle for as long as the payloads would take: what the bus costs per second.
  setTimeout(() => void finish(), (PAYLOADS / RATE) * 1000);
} else if (role === "pub") {
  await new Promise<void>((resolve) => process.stdin.once("data", () => resolve()));
  const t0 = performance.now();
  // One publish per turn of the loop, as a node publishes a typing frame it received.
  for (let i = 0; i < PAYLOADS; i++) {
    void bus.publish(groups[i % groups.length]!, PAYLOAD).catch(() => {});
    const wait = t0 + ((i + 1) * 1000) / RATE - performance.now();
    await new Promise((r) => setTimeout(r, Math.max(0, wait)));
  }
}
