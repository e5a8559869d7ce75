// The process metrics every Node service exposes (prom-client's default set: CPU, memory, file
// descriptors, handles, heap spaces, GC, version), with the event-loop lag sampled every
// LAG_SAMPLE_MS instead of prom-client's 10 ms. prom-client's sampler is a 10 ms timer: 100
// wake-ups a second, which cost an idle node ~6 ms of CPU a second on our VMs (a socket write and
// wake-up are the expensive part of a delivery) and a busy one a few per cent of its typing
// fan-out (bench/performance-log.md, issue 11). The gauges keep prom-client's names; their values
// are the lag itself (how late the sampler ran), not the sampling interval plus the lag. Each scrape
// starts a new window; as with prom-client's, the first interval after a scrape records nothing.
import { monitorEventLoopDelay } from "node:perf_hooks";
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

/** How often the event-loop sampler runs; each value it records is this plus the loop's lag. */
export const LAG_SAMPLE_MS = 100;

export function defaultMetrics(registry: client.Registry): void {
  for (const register of [processCpuTotal, processStartTime, osMemoryHeap, processOpenFileDescriptors, processMaxFileDescriptors, processResources, processHandles, processRequests, heapSizeAndUsed, heapSpacesSizeAndUsed, version, gc]) {
    register(registry, {});
  }
  eventLoopLag(registry);
}

/** prom-client's nodejs_eventloop_lag_* gauges, from a LAG_SAMPLE_MS sampler, in seconds of lag. */
function eventLoopLag(registry: client.Registry): void {
  const histogram = monitorEventLoopDelay({ resolution: LAG_SAMPLE_MS });
  histogram.enable();
  const lagOf = (ns: number) => Math.max(0, ns / 1e9 - LAG_SAMPLE_MS / 1000);
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
}
