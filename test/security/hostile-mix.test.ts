// Issue 10's bounded hostile mix, against one node (a real process, default limits): slow
// readers, replay droppers, pipelined file downloads, oversize uploads, three clients uploading
// files at the 5 MiB cap back to back (held to MAX_UPLOAD_BYTES_PER_SECOND,
// MAX_USER_UPLOAD_BYTES_PER_SECOND and MAX_UPLOAD_INFLIGHT_BYTES) and expiring tokens, all at once
// for a minute. The node must stay up, a victim's typing round trips stay under 500 ms at p99,
// and the node's RSS stays under its budget. (HOSTILE_SKIP="large upload,…" leaves actors out.)
//
// The RSS budget is 448 MiB: the Kubernetes Deployment's memory limit, 512 MiB, less 64 MiB for
// what the limit counts beside the process's own pages (the kernel's socket buffers and page
// cache of the container) and for allocator slack: past the limit the node is OOM-killed and
// every socket on it drops, which is what the mix must not achieve. What the node holds under the
// mix, each bounded by a default: the node itself, ~100 MiB idle and ~165 MiB once the fixtures
// went through it (V8 keeps the heap it grew); per slow reader up to 2 x MAX_BACKPRESSURE_BYTES
// plus one history page in uWS's buffers (~34 MiB each, 3 readers); MAX_UPLOAD_INFLIGHT_BYTES of
// upload frames (24 MiB), each held as its text, its parsed base64 and its decoded bytes until
// stored (~2.7 times the frame: ~65 MiB); HTTP_BUFFER_BYTES of download chunks (32 MiB);
// MAX_CONCURRENT_REPLAYS pages of replay (~10 MiB): ~375 MiB, plus garbage V8 has not collected
// yet. Measured (2026-12-06, load 7-9): peak 352-409 MiB (bench/performance-log.md, "Upload
// memory"). Before files went to PostgreSQL as bytes and uploads in flight were bounded, the
// uploads alone took a node to 640-807 MB. A node that held what the mix sends without bounds
// (pipelined downloads held whole, replays held for dropped clients, expired sessions, uploads
// queued behind a slow database) passes the budget within seconds.
//
// The 500 ms is the node's own doing, not the machine's: when other processes keep the node's
// event loop waiting for a core (the kernel's run-queue delay of its main thread,
// /proc/<pid>/schedstat), the budget grows by the share of the mix it spent waiting, so
// 500 / (1 - waited). The victim, a process of its own, waits for a core too, and a round trip
// needs both to run: waited = 1 - (1 - node's share) x (1 - victim's share). On a quiet machine
// that is ~500 ms; CI runs beside engineers' builds and benchmarks (load 8 to 9 on 2 cores) saw
// p99s of 916 ms and (node 50 % waiting, victim not counted: budget 1,009 ms) 1,159 ms. The wait
// counted is capped at 90 %.
import { readFileSync } from "node:fs";
import t from "tap";
import { percentile, prepareMix, RSS_BUDGET_MIB, runMix } from "../helpers/hostile-mix.ts";
import { spawnNode } from "../helpers/node.ts";
import { statusOf, uniqueGroup, untilReady } from "../helpers/probe.ts";
import { freshDatabase } from "../helpers/services.ts";
import { loadConfig } from "../../src/config/env.ts";

t.setTimeout(240_000);
const MiB = 1024 * 1024;
const RSS_BUDGET = RSS_BUDGET_MIB * MiB;
const P99_BUDGET_MS = 500;
const MIX_MS = Number(process.env.HOSTILE_MIX_MS ?? 60_000);
const SECRET = "hostile-mix-secret-of-at-least-32-bytes!";
const defaults = loadConfig({});

const node = await spawnNode(t, { DATABASE_URL: await freshDatabase(t), JWT_SECRET: SECRET, JWT_CLOCK_TOLERANCE_S: "0" });
/** Nanoseconds the node's main thread has run and waited on a run queue (/proc/<pid>/schedstat). */
const schedOf = () => {
  const [ran, waited] = readFileSync(`/proc/${node.child.pid}/schedstat`, "utf8").split(" ").map(Number);
  return { ran: ran!, waited: waited! };
};
const rssOf = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${node.child.pid}/status`, "utf8"))![1]) * 1024;

t.test("under a minute of hostile clients the node stays up, the victim's p99 stays under 500 ms and RSS under its budget", async (t) => {
  const port = node.port;
  await untilReady(port);
  const bigGroup = uniqueGroup("hostile-big");
  // 200 messages of ~24 KB: a 4.8 MB replay. A 3 MiB file to download.
  const filePath = await prepareMix(port, SECRET, bigGroup, { messages: 200, fileBytes: 3 * MiB });
  const rssBefore = rssOf();
  const schedBefore = schedOf();
  const mixStart = performance.now();
  let peak = rssBefore;
  const sampler = setInterval(() => {
    try {
      peak = Math.max(peak, rssOf());
    } catch {
      // the process is gone: asserted below
    }
  }, 250);
  const stats = await runMix(
    { port, jwtSecret: SECRET, bigGroup, filePath, maxFileBytes: defaults.MAX_FILE_BYTES, maxFrameBytes: defaults.MAX_FRAME_BYTES },
    MIX_MS,
    // HOSTILE_SKIP="replay dropper,…" leaves actors out, to look at one part of the mix at a time.
    { victimGroup: uniqueGroup("hostile-victim"), skip: process.env.HOSTILE_SKIP?.split(",") ?? [] },
  );
  clearInterval(sampler);
  const schedAfter = schedOf();
  const nodeWaited = Math.min(1, (schedAfter.waited - schedBefore.waited) / 1e6 / (performance.now() - mixStart));
  const waited = Math.min(0.9, 1 - (1 - nodeWaited) * (1 - Math.min(1, stats.victimWaited)));
  const p99Budget = P99_BUDGET_MS / (1 - waited);

  t.equal(node.child.exitCode, null, "the node is still running");
  t.equal(await statusOf(port, "/healthz"), 200, "and answers");
  const p99 = percentile(stats.rtts, 99);
  t.comment(`victim: ${stats.rtts.length} round trips, p50 ${percentile(stats.rtts, 50).toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${Math.max(...stats.rtts).toFixed(1)} ms, ${stats.victimLost} unanswered`);
  t.comment(`node main thread: ran ${((schedAfter.ran - schedBefore.ran) / 1e9).toFixed(1)} s, waited for a core ${(nodeWaited * 100).toFixed(0)} % of the mix, the victim ${(stats.victimWaited * 100).toFixed(0)} %: p99 budget ${p99Budget.toFixed(0)} ms`);
  t.comment(`node RSS: ${(rssBefore / MiB).toFixed(0)} MiB before the mix, peak ${(peak / MiB).toFixed(0)} MiB (budget ${RSS_BUDGET / MiB} MiB)`);
  t.comment(`actors: ${JSON.stringify(stats.actors)}`);
  t.ok(stats.rtts.length >= (MIX_MS / 100) * 0.8, `the victim kept sending (${stats.rtts.length} answered)`);
  t.equal(stats.victimLost, 0, "every victim frame was answered");
  t.ok(p99 < p99Budget, `victim round trip p99 ${p99.toFixed(1)} ms < ${p99Budget.toFixed(0)} ms (${P99_BUDGET_MS} ms of the node's own time)`);
  t.ok(peak < RSS_BUDGET, `node RSS peak ${(peak / MiB).toFixed(0)} MiB < ${RSS_BUDGET / MiB} MiB`);
  for (const name of ["slow reader", "replay dropper", "pipelined downloads", "oversize upload", "large upload", "token expiry"]) {
    t.ok((stats.actors[name]?.sessions ?? 0) >= 2, `${name}: ran (${stats.actors[name]?.sessions ?? 0} sessions)`);
  }
  t.ok(Object.keys(stats.actors["slow reader"]?.closes ?? {}).some((c) => c === "4008"), "slow readers are cut off with 4008");
  t.ok((stats.actors["large upload"]?.closes.stored ?? 0) > 0, `large uploads are stored (${JSON.stringify(stats.actors["large upload"]?.closes)})`);
  const expiries = stats.actors["token expiry"]?.closes ?? {};
  t.ok((expiries["4001"] ?? 0) > 0 && Object.keys(expiries).every((c) => c === "4001" || c === "error: upgrade refused: 401"), `expired tokens are closed with 4001 (${JSON.stringify(expiries)})`);
});
