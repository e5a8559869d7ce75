// The process metrics every Node service exposes (prom-client's default set: CPU, memory, file
// descriptors, handles, heap spaces, GC, version), with the event-loop lag taken from the node's
// housekeeping tick (src/health/tick.ts, every TICK_MS) instead of a sampler of its own.
// prom-client's sampler is a 10 ms timer: 100 wake-ups a second, which cost an idle node ~6 ms of
// CPU a second on our VMs and a busy one a few per cent of its typing fan-out; a 100 ms sampler of
// our own still cost 10 wake-ups a second beside the tick's 4 (bench/performance-log.md, issue 11).
// The gauges keep prom-client's names; their values are the lag itself (how late the tick ran),
// sampled every TICK_MS: a block of B ms shows as a lag between B − TICK_MS and B, and one shorter
// than TICK_MS may fall between two ticks and not show. Each scrape starts a new window.
import { createHistogram } from "node:perf_hooks";
import client from "prom-client";
import gc from "prom-client/lib/metrics/gc.js";
import heapSizeAndUsed from "prom-client/lib/metrics/heapSizeAndUsed.js";
import heapSpacesSizeAndUsed from "prom-client/lib/metrics/heapSpacesSizeAndUsed.js";
import osMemoryHeap from "prom-client/lib/metrics/osMemoryHeap.js";
import processCpuTotal from "prom-client/lib/metrics/processCpuTotal.js";
import processHandles from "prom-client/lib/metrics/processHandles.js";
import processMaxFileDescriptors from "prom-client/lib/metrics/processMaxFileDescriptors.js";
import processOpenFileDescriptors from "prom-client/lib/metrics/processOpenFileDescriptors.js";
import processRequests from "prom-client/lib/metrics/processRequests.js";
import processResources from "prom-client/lib/metrics/processResources.js";
import processStartTime from "prom-client/lib/metrics/processStartTime.js";
import version from "prom-client/lib/metrics/version.js";
import { housekeeping, type Tick } from "../health/tick.ts";

/** Registers the default metrics; the returned function stops their event-loop sampling. */
export function defaultMetrics(registry: client.Registry, tick: Tick = housekeeping): () => void {
  for (const register of [processCpuTotal, processStartTime, osMemoryHeap, processOpenFileDescriptors, processMaxFileDescriptors, processResources, processHandles, processRequests, heapSizeAndUsed, heapSpacesSizeAndUsed, version, gc]) {
    register(registry, {});
  }
  return eventLoopLag(registry, tick);
}

/** prom-client's nodejs_eventloop_lag_* gauges, from the tick's lateness, in seconds. */
function eventLoopLag(registry: client.Registry, tick: Tick): () => void {
  // In ns, as prom-client's; a histogram records values from 1 (a tick on time records 1 ns).
  const histogram = createHistogram();
  const off = tick.on((lateMs) => histogram.record(Math.max(1, Math.round(lateMs * 1e6))));
  const lagOf = (ns: number) => ns / 1e9;
  const gauge = (name: string, help: string) => new client.Gauge({ name: `nodejs_eventloop_lag_${name}`, help, registers: [registry] });
  // Registered first, as prom-client does, so that a scrape reads the others after this one's
  // collect has set them: it is how long a setImmediate takes from the scrape, and its collect
  // sets the others from the sampler's values since the last scrape.
  new client.Gauge({
    name: "nodejs_eventloop_lag_seconds",
    help: "Lag of event loop in seconds.",
    registers: [registry],
    collect() {
      const start = process.hrtime.bigint();
      setImmediate(() => this.set(Number(process.hrtime.bigint() - start) / 1e9));
      if (histogram.count === 0) return;
      min.set(lagOf(histogram.min));
      max.set(lagOf(histogram.max));
      mean.set(lagOf(histogram.mean));
      stddev.set(histogram.stddev / 1e9);
      for (const [p, g] of percentiles) g.set(lagOf(histogram.percentile(p)));
      histogram.reset();
    },
  });
  const min = gauge("min_seconds", "The minimum recorded event loop delay.");
  const max = gauge("max_seconds", "The maximum recorded event loop delay.");
  const mean = gauge("mean_seconds", "The mean of the recorded event loop delays.");
  const stddev = gauge("stddev_seconds", "The standard deviation of the recorded event loop delays.");
  const percentiles = ([50, 90, 99] as const).map((p) => [p, gauge(`p${p}_seconds`, `The ${p}th percentile of the recorded event loop delays.`)] as const);
  return off;
}
