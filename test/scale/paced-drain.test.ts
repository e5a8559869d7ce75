// Scale-down without a reconnect storm: SIGTERM on one of three nodes holding 3,000 sockets. The
// node closes them with 1001 at an even rate over DRAIN_SPREAD_MS, so the survivors' connect rate
// stays under a bound derived from 3,000 / spread; it exits 0 within 10 s plus both windows, and
// nothing acknowledged is lost for clients sending through it. The spread is the default, 5 s.
// A resume at the position the survivor has reached costs it no database read
// (src/gateway/resume.ts); before that, 600 resumes a second made the survivors' database pool
// time out and answer 1013 in a loop.
import t from "tap";
import { spawnNode } from "../helpers/node.ts";
import { uniqueGroup, within } from "../helpers/probe.ts";
import { freshDatabase, REDIS_URL, requireRedis, sql } from "../helpers/services.ts";
import { assertSeqs, range, Recorder, RetryingSender } from "../helpers/delivery.ts";
import { peakRate, Swarm } from "../helpers/swarm.ts";

const SOCKETS = 3_000;
const SPREAD_MS = 5_000; // DRAIN_SPREAD_MS's default: the nodes are started without it
/** The drained node's own pace: at most 1.5 × the even rate in any second. */
const PACE_PER_S = (1.5 * SOCKETS) / (SPREAD_MS / 1000);
/**
 * The survivors' connect rate, as the clients see it over any 2 s: 2.5 × the even rate. Wider than
 * the node's pace because the clients (one test process on a shared 2-core machine) react to
 * closes in bursts when their own event loop is held up. Without pacing the 3,000 arrive as fast
 * as this machine can reconnect them.
 */
const BOUND_PER_S = (2.5 * SOCKETS) / (SPREAD_MS / 1000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test("SIGTERM of one of 3 nodes holding 3,000 sockets: the others' connect rate stays under the bound, nothing acknowledged is lost", async (t) => {
  await requireRedis();
  const url = await freshDatabase(t);
  const db = await sql(t, url);
  const [a, b, c] = await Promise.all([0, 1, 2].map(() => spawnNode(t, { DATABASE_URL: url, REDIS_URL })));
  const survivors = [b!.port, c!.port];

  // The load: 3,000 idle sockets on A in 30 groups; when A closes one with 1001 it reconnects at
  // once (no jitter: the pacing under test is the node's) to B or C, and again if a busy
  // survivor turns it away (1013 "retry", or a dropped upgrade).
  let turn = 0;
  const swarm = new Swarm(t, { port: (cl) => (cl.conns === 0 ? a!.port : survivors[turn++ % 2]!), reconnectOn: [1001, 1006, 1013] });
  const groups = Array.from({ length: 30 }, () => uniqueGroup("pd"));
  await swarm.open(SOCKETS, groups, "u");

  // Clients sending through A, resending unacknowledged creates on B with the same request_id.
  const g = uniqueGroup("pd-send");
  const listener = new Recorder("listener-b", "listener");
  await listener.connect(t, b!.port, g);
  const senders = [0, 1].map((i) => new Recorder(`s${i}`, `s${i}`));
  for (const s of senders) await s.connect(t, a!.port, g);
  const loops = senders.map((rec) =>
    new RetryingSender(rec, {
      answerMs: 15_000,
      pauseMs: 10,
      reconnect: async (r) => {
        await r.connect(t, b!.port, g, r.lastSeq);
        await r.until(() => r.resumed.some((x) => x.conn === r.conns - 1), 15_000);
      },
    }).start(),
  );
  await sleep(500);

  const signalAt = Date.now();
  a!.child.kill("SIGTERM");
  const code = await within(a!.exited, 10_000 + SPREAD_MS + 5_000, "A's exit");
  const exitMs = Date.now() - signalAt;
  t.equal(code, 0, `A exits 0 (${exitMs} ms after SIGTERM)`);
  t.ok(exitMs <= 10_000 + SPREAD_MS, `within 10 s plus the spread (${exitMs} ms)`);

  const deadline = Date.now() + 30_000;
  const behind = () => swarm.clients.filter((cl) => cl.conns < 2 || !cl.open);
  while (behind().length > 0 && Date.now() < deadline) await sleep(100);
  const late = behind();
  const codes = new Map<string, number>();
  for (const cl of late) codes.set(`conns ${cl.conns} open ${cl.open} closes ${cl.closes.map((x) => x.code).join("/")}`, (codes.get(`conns ${cl.conns} open ${cl.open} closes ${cl.closes.map((x) => x.code).join("/")}`) ?? 0) + 1);
  if (late.length) t.comment(`survivors' replay failures: ${JSON.stringify([b!, c!].flatMap((n) => n.logs.filter((l) => l.msg === "replay failed").slice(0, 2)))}`);
  t.same(late.length, 0, `every one of the ${SOCKETS} sockets reconnected to B or C${late.length ? `; not: ${JSON.stringify([...codes])}` : ""}`);
  const closes = swarm.clients.map((cl) => cl.closes[0]?.code ?? "open");
  t.same(closes.filter((x) => x !== 1001), [], "every socket was closed by A with 1001");
  const times = swarm.reconnectTimes();
  const peak = peakRate(times, 2_000);
  const span = times[times.length - 1]! - times[0]!;
  t.ok(peak <= BOUND_PER_S, `the survivors' peak connect rate over 2 s, ${peak}/s, is under ${BOUND_PER_S}/s`);
  t.ok(span >= SPREAD_MS * 0.7, `the reconnects are spread over ${span} ms, not a burst`);
  // The node's own account of its pace: one log line about every second.
  const progress = a!.logs.filter((l) => l.msg === "drain: sockets closed").map((l) => ({ closed: l.closed as number, left: l.left as number, at: (l.time as number) - signalAt }));
  t.ok(progress.length >= (SPREAD_MS / 1000) * 0.8, `A closed its sockets over ${progress.length} seconds`);
  t.comment(`A's drain progress: ${JSON.stringify(progress)}`);
  t.ok(progress.every((p) => p.closed <= PACE_PER_S), `A never closed more than ${PACE_PER_S} in a second`);
  const closeTimes = swarm.clients.map((cl) => cl.closes[0]?.at ?? 0).sort((x, y) => x - y);
  t.comment(`closes: first ${closeTimes[0]! - signalAt} ms, last ${closeTimes[closeTimes.length - 1]! - signalAt} ms, peak ${peakRate(closeTimes)}/s`);
  t.comment(`paced drain of ${SOCKETS}: first reconnect ${times[0]! - signalAt} ms after SIGTERM, last ${times[times.length - 1]! - signalAt} ms; peak ${peak}/s (bound ${BOUND_PER_S}/s); exit ${exitMs} ms; failed connects ${swarm.failedConnects}, failed reconnect attempts ${swarm.failedReconnects}`);

  await Promise.all(senders.map((s) => s.until(() => s.conns >= 2 && s.open, 15_000)));
  await sleep(500);
  await Promise.all(loops.map((l) => l.stop()));
  const events = (await db.query("SELECT seq, message_id FROM group_events WHERE group_name = $1 ORDER BY seq", [g])).rows as { seq: number; message_id: string }[];
  const N = events.length;
  t.same(events.map((e) => e.seq), range(N), `the database holds seq 1..${N}`);
  const attempts = loops.flatMap((l) => [...l.attempts.values()]);
  t.same(attempts.filter((x) => x.ack === null).map((x) => x.requestId), [], "every create was eventually acknowledged");
  const stored = new Map(events.map((e) => [e.message_id, e.seq]));
  t.same(attempts.filter((x) => stored.get(x.ack!.message_id!) !== x.ack!.seq).map((x) => x.requestId), [], `every acknowledged create (${attempts.length}) is stored with its seq`);
  for (const r of [...senders, listener]) {
    await r.until(() => r.seqs.length >= N, 10_000);
  }
  await sleep(300);
  assertSeqs(t, listener, N);
  for (const r of [...senders, listener]) r.client?.ws.terminate();
  swarm.end();
});
