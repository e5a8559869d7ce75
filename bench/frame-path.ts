// The typing frame path in process, as one node runs it (real FrameLoop, limits, budgets,
// dispatcher, service, in-process bus; sockets faked, the fan-out stopped at the gateway's
// publish): CPU µs per frame and scavenges per 100,000 frames, for the source tree at ROOT.
//   npx tsx bench/frame-path.ts [ROOT=.] [frames=200000] [rounds=5]
import { PerformanceObserver } from "node:perf_hooks";
import path from "node:path";
import { pathToFileURL } from "node:url";

const root = path.resolve(process.argv[2] ?? ".");
const FRAMES = Number(process.argv[3] ?? 200_000);
const ROUNDS = Number(process.argv[4] ?? 5);
const load = async (p: string) => import(pathToFileURL(path.join(root, "src", p)).href);
const { MemoryBus } = await load("bus/memory-bus.ts");
const { ChatService } = await load("chat/service.ts");
const { Dispatcher } = await load("chat/dispatch.ts");
const { ByteBudget } = await load("chat/budget.ts");
const { createMetrics } = await load("metrics/metrics.ts");
const { FrameLoop } = await load("gateway/frames.ts");
const { ConnectionLimits } = await load("gateway/limits.ts");
const { UploadBudget } = await load("gateway/upload-budget.ts");
const { SlowConsumers } = await load("gateway/backpressure.ts");
const { Connection } = await load("gateway/connection.ts");

const metrics = createMetrics();
let service: InstanceType<typeof ChatService>;
const bus = new MemoryBus((group: string, payload: string) => service.receive(group, payload));
const slow = new SlowConsumers(1 << 20, () => {}, 100, () => Connection.directSends);
let delivered = 0;
service = new ChatService({
  store: { lastSeq: async () => 0, ping: async () => {} },
  bus,
  limits: { maxBodyChars: 4000, maxFileBytes: 1 << 20 },
  metrics,
  deliver: (group: string, payload: string) => {
    delivered++;
    slow.published(group, payload.length * 3); // what Gateway.publish does besides app.publish
  },
  delivery: { gapWaitMs: 100, retryWindowMs: 60_000 },
  storeGuard: { deadlineMs: 5_000, probeMs: 1_000 },
  presence: { open() {}, close() {}, snapshot: async () => ({ count: 0, users: [] }), start: async () => {}, stop: async () => {}, held: 0 },
  presenceMaxBroadcast: 100,
  presenceBatchMs: 0,
  presenceBusyBatchMs: 0,
  presenceGraceMs: 5_000,
  presenceBundles: () => false,
});
const dispatcher = new Dispatcher(service, metrics, { error() {}, info() {}, warn() {} }, { touch() {} });
const limits = new ConnectionLimits({ framesPerSecond: 1e9, framesBurst: 1e9, userFramesPerSecond: 1e9, userUploadBytesPerSecond: 1e9, maxSocketsPerUser: 1e9, maxGroupsPerNode: 1e9, allowedOrigins: null }, metrics);
const frames = new FrameLoop(dispatcher, limits, new ByteBudget(1 << 30), new UploadBudget(1e12), slow, metrics, { maxPendingFrames: 1e9, maxPendingBytes: 1e12 }, () => {});
const GROUPS = 20;
const conns: InstanceType<typeof Connection>[] = [];
for (let g = 0; g < GROUPS; g++) {
  await service.join(`g${g}`);
  const adm = limits.admit(null, "127.0.0.1", `g${g}`, new Set());
  const conn = new Connection(`c${g}`, `g${g}`, null, null, adm.quota, 1000);
  conn.attach({ send() {}, cork: (fn: () => void) => fn(), getBufferedAmount: () => 0, subscribe() {}, unsubscribe() {}, getTopics: () => [], end() {} }, () => {});
  conns.push(conn);
}
const texts = Array.from({ length: 1000 }, (_, i) => new TextEncoder().encode(`{"operation":"typing","user":"t${i % GROUPS}_${i}_${1e9 + i}","typing_status":"typing"}`).buffer);
let gcs = 0;
new PerformanceObserver((l) => (gcs += l.getEntries().filter((e) => (e as { detail?: { kind?: number } }).detail?.kind === 1).length)).observe({ entryTypes: ["gc"] });
const turn = () => new Promise((r) => setImmediate(r));
const results: number[] = [];
for (let r = -1; r < ROUNDS; r++) {
  const g0 = gcs;
  const c0 = process.cpuUsage();
  for (let i = 0; i < FRAMES; i++) {
    frames.message(conns[i % GROUPS]!, texts[i % 1000]!, false);
    if (i % 20 === 19) await turn(); // a loop turn per 20 frames, as uWS reads them
  }
  await turn();
  const c = process.cpuUsage(c0);
  if (r < 0) continue; // warm-up
  const us = (c.user + c.system) / FRAMES;
  results.push(us);
  console.log(`round ${r}: ${us.toFixed(3)} µs/frame, ${(((gcs - g0) * 100_000) / FRAMES).toFixed(1)} scavenges per 100k frames`);
}
results.sort((a, b) => a - b);
console.log(JSON.stringify({ root, median_us_per_frame: results[Math.floor(results.length / 2)], delivered }));
