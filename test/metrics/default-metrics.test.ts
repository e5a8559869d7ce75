// The process metrics: prom-client's default set, name for name, with the event-loop lag from the
// node's own 100 ms sampler (prom-client's wakes the process every 10 ms), reported as lag.
import t from "tap";
import client from "prom-client";
import { LAG_SAMPLE_MS } from "../../src/metrics/default-metrics.ts";
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
  const { registry } = createMetrics();
  await registry.metrics(); // starts a fresh window
  await sleep(LAG_SAMPLE_MS * 6);
  const idle = await registry.metrics();
  t.ok(value(idle, "nodejs_eventloop_lag_p50_seconds") < LAG_SAMPLE_MS / 2000, `an idle loop's p50 is well under the interval (${value(idle, "nodejs_eventloop_lag_p50_seconds")} s)`);
  // (A scrape resets the sampler, whose next run only restarts its clock: a block within the first
  // interval after a scrape is not recorded. prom-client's sampler has the same blind spot, 10 ms long.)
  await sleep(LAG_SAMPLE_MS * 2);
  const until = Date.now() + 300;
  while (Date.now() < until); // block the loop for 300 ms
  await sleep(LAG_SAMPLE_MS * 2);
  const blocked = await registry.metrics();
  const max = value(blocked, "nodejs_eventloop_lag_max_seconds");
  t.ok(max >= 0.15 && max < 0.5, `a 300 ms block shows as the max lag (${max} s)`);
});
