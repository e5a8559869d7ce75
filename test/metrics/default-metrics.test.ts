// The process metrics: prom-client's default set, name for name, with the event-loop lag from the
// node's housekeeping tick (every TICK_MS; prom-client's sampler wakes the process every 10 ms),
// reported as lag.
import t from "tap";
import client from "prom-client";
import { TICK_MS } from "../../src/health/tick.ts";
import { createMetrics } from "../../src/metrics/metrics.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const families = (text: string) => new Set(text.split("\n").filter((l) => l.startsWith("# TYPE ")).map((l) => l.split(" ")[2]!));
const value = (text: string, name: string) => Number(text.split("\n").find((l) => l.startsWith(`${name} `))!.split(" ")[1]);

t.test("the same process metrics as prom-client's defaults", async (t) => {
  const ours = createMetrics().registry;
  const reference = new client.Registry();
  client.collectDefaultMetrics({ register: reference });
  const mine = families(await ours.metrics());
  const missing = [...families(await reference.metrics())].filter((n) => !mine.has(n));
  t.same(missing, [], "no default metric missing");
});

t.test("the lag gauges report how late the loop ran, not the sampling interval", async (t) => {
  const { registry, stop } = createMetrics();
  t.teardown(stop);
  await registry.metrics(); // starts a fresh window
  await sleep(TICK_MS * 4);
  const idle = value(await registry.metrics(), "nodejs_eventloop_lag_p50_seconds");
  // (A sampler that reported the interval plus the lag, as monitorEventLoopDelay does, would read 0.25 s.)
  t.ok(idle < TICK_MS / 2000, `an idle loop's p50 is well under the interval (${idle} s)`);
  // A block of B ms reads as B - TICK_MS to B, whatever the tick's phase; more only if the
  // process waits for a core after it, which is counted as lag too (up to the scrape).
  const blockedAt = performance.now();
  const until = Date.now() + 600;
  while (Date.now() < until); // block the loop for 600 ms
  await sleep(TICK_MS * 2);
  const blocked = await registry.metrics();
  const upTo = (performance.now() - blockedAt) / 1000;
  const max = value(blocked, "nodejs_eventloop_lag_max_seconds");
  t.ok(max >= 0.6 - TICK_MS / 1000 - 0.01 && max <= upTo, `a 600 ms block shows as the max lag (${max} s; at most ${upTo.toFixed(3)} s since it began)`);
  // The window restarts at each scrape: the block is gone from the next one.
  await sleep(TICK_MS * 3);
  const after = value(await registry.metrics(), "nodejs_eventloop_lag_max_seconds");
  t.ok(after < 0.6 - TICK_MS / 1000 - 0.01, `the next window does not hold it (${after} s: below what the block reads)`);
});

t.test("stopped, the metrics no longer sample the loop", async (t) => {
  const { registry, stop } = createMetrics();
  await sleep(TICK_MS * 3);
  const before = value(await registry.metrics(), "nodejs_eventloop_lag_max_seconds");
  stop();
  const until = Date.now() + 400;
  while (Date.now() < until); // a block that a sampling registry would show
  await sleep(TICK_MS * 2);
  t.equal(value(await registry.metrics(), "nodejs_eventloop_lag_max_seconds"), before, "the gauge keeps its last reading");
});
