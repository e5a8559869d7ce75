// The Redis presence keeps the seam's promises (the shared suite, several nodes on one private
// redis-server), and its own: leases, reaping, rebuild after a Redis restart.
import t, { type Test } from "tap";
import { RedisPresence } from "../../src/presence/redis-presence.ts";
import type { PresenceChange, PresenceHooks } from "../../src/presence/presence.ts";
import { eventually, uniqueGroup } from "../helpers/probe.ts";
import { privateRedis } from "../helpers/redis-server.ts";
import { GRACE_MS, presenceSuite } from "./presence-suite.ts";

const redis = await privateRedis(t);
const TTL_MS = 1_500;

function make(tt: Test, onChange: (c: PresenceChange) => void, hooks: PresenceHooks = {}) {
  const p = new RedisPresence(redis.url, { graceMs: GRACE_MS, ttlMs: TTL_MS }, onChange, hooks);
  tt.teardown(() => p.stop());
  return p;
}

presenceSuite(
  t,
  async (tt, onChange) => {
    const p = make(tt, onChange);
    await p.start();
    return p;
  },
  { cluster: true },
);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test("a node that stops renewing (crash) is reaped: its users leave within ttl + grace", async (t) => {
  const changes: PresenceChange[] = [];
  const g = uniqueGroup("crash");
  const a = make(t, () => {});
  const b = make(t, (c) => c.group === g && changes.push(c));
  await a.start();
  await b.start();
  a.open(g, "hal");
  b.open(g, "ivy");
  a.open(g, "ivy");
  await sleep(200);
  // A crash: no more renewals, no lease cut, no releases.
  const frozen = a as unknown as { timers: NodeJS.Timeout[]; stopped: boolean; redis: { disconnect(): void } };
  for (const timer of frozen.timers) clearInterval(timer);
  frozen.stopped = true;
  frozen.redis.disconnect();
  const crashedAt = Date.now();
  t.ok(await eventually(() => changes.some((c) => c.kind === "leave"), TTL_MS + GRACE_MS + 3_000), "hal leaves");
  const took = Date.now() - crashedAt;
  t.ok(took <= TTL_MS + GRACE_MS + 500, `within ttl + grace (+ 500 ms slack): ${took} ms`);
  await sleep(GRACE_MS);
  t.same(changes.filter((c) => c.kind === "leave").map((c) => `${c.user} ${c.count}`), ["hal 1"], "ivy (also on b) stays");
  t.same((await b.snapshot(g, 10)).users.map((u) => u.user), ["ivy"]);
});

t.test("a Redis restart rebuilds presence from the live nodes with no join or leave", async (t) => {
  const changes: PresenceChange[] = [];
  const resyncs: string[] = [];
  const g = uniqueGroup("restart");
  const a = make(t, (c) => c.group === g && changes.push(c), { onResync: (r: string) => resyncs.push(r) });
  const b = make(t, (c) => c.group === g && changes.push(c), { onResync: (r: string) => resyncs.push(r) });
  await a.start();
  await b.start();
  a.open(g, "jo");
  b.open(g, "kim");
  b.open(g, "jo");
  t.ok(await eventually(() => changes.length === 2, 3_000));
  const before = await a.snapshot(g, 10);
  await redis.stop("SIGKILL");
  await sleep(300);
  await redis.start();
  t.ok(await eventually(async () => (await a.snapshot(g, 10).catch(() => ({ count: -1 }))).count === 2, 10_000), "rebuilt");
  await sleep(TTL_MS);
  t.same(changes.map((c) => `${c.kind} ${c.user}`).sort(), ["join jo", "join kim"], "no leave or join");
  t.same(await b.snapshot(g, 10), before, "same users, same since");
  t.ok(resyncs.length >= 2, `both nodes re-synced (${resyncs.join(", ")})`);
  // Presence keeps working afterwards.
  b.close(g, "kim");
  t.ok(await eventually(() => changes.length === 3, 3_000));
  t.same(changes[2], { kind: "leave", group: g, user: "kim", count: 1 });
});

t.test("a transition made while Redis is down is announced once it is back", async (t) => {
  const changes: PresenceChange[] = [];
  const g = uniqueGroup("down");
  const a = make(t, (c) => c.group === g && changes.push(c));
  await a.start();
  a.open(g, "lee");
  t.ok(await eventually(() => changes.length === 1, 3_000));
  await redis.stop("SIGKILL");
  a.open(g, "max");
  a.close(g, "lee");
  await sleep(GRACE_MS + 100);
  await redis.start();
  t.ok(await eventually(() => changes.length === 3, 10_000), "announced");
  t.same(changes.slice(1).map((c) => `${c.kind} ${c.user}`).sort(), ["join max", "leave lee"]);
  t.same((await a.snapshot(g, 10)).users.map((u) => u.user), ["max"]);
});

/** Redis commands executed so far (scripts' inner calls included), from INFO commandstats. */
async function commandsRun(): Promise<number> {
  const { Redis } = await import("ioredis");
  const r = new Redis(redis.url);
  try {
    const info = await r.info("commandstats");
    let n = 0;
    for (const m of info.matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)) if (m[1] !== "info") n += Number(m[2]);
    return n;
  } finally {
    r.disconnect();
  }
}

t.test("Redis work per join and per leave does not grow with the group: 2 present vs 2,000", async (t) => {
  const a = make(t, () => {});
  await a.start();
  // Renewals and reap checks are periodic, not per connect: stop them for the measurement.
  for (const timer of (a as unknown as { timers: NodeJS.Timeout[] }).timers) clearInterval(timer);
  const cost = async (g: string, present: number) => {
    for (let i = 0; i < present; i++) a.open(g, `p${i}`);
    await eventually(async () => (await a.snapshot(g, 1)).count === present, 20_000, 50);
    const before = await commandsRun();
    for (let i = 0; i < 50; i++) a.open(g, `new${i}`);
    await eventually(async () => (await a.snapshot(g, 1)).count === present + 50, 5_000, 20);
    const mid = await commandsRun();
    for (let i = 0; i < 50; i++) a.close(g, `new${i}`);
    await eventually(async () => (await a.snapshot(g, 1)).count === present, 5_000, 20);
    const after = await commandsRun();
    return { joins: mid - before, leaves: after - mid };
  };
  const small = await cost(uniqueGroup("small"), 2);
  const large = await cost(uniqueGroup("large"), 2_000);
  t.comment(`Redis commands for 50 joins / 50 leaves (polling included): group of 2: ${small.joins} / ${small.leaves}; group of 2,000: ${large.joins} / ${large.leaves}`);
  // The same scripts run either way; only the polling snapshots (2 commands each) may differ.
  t.ok(Math.abs(large.joins - small.joins) <= 20, "joins cost the same");
  t.ok(Math.abs(large.leaves - small.leaves) <= 20, "leaves cost the same");
  t.ok(small.joins <= 50 * 6 + 60 && small.leaves <= 50 * 7 + 60, "a handful of commands per transition");
});

/** Script calls so far (EVALSHA, and EVAL where a script was not loaded yet), from INFO commandstats. */
async function scriptCalls(): Promise<number> {
  const { Redis } = await import("ioredis");
  const r = new Redis(redis.url);
  try {
    const info = await r.info("commandstats");
    let n = 0;
    for (const m of info.matchAll(/^cmdstat_(evalsha|eval):calls=(\d+)/gm)) n += Number(m[2]);
    return n;
  } finally {
    r.disconnect();
  }
}

t.test("a burst of transitions shares script calls; a re-sync while one waits counts its user once", async (t) => {
  const changes: PresenceChange[] = [];
  const g = uniqueGroup("burst");
  const a = make(t, (c) => c.group === g && changes.push(c));
  await a.start();
  for (const timer of (a as unknown as { timers: NodeJS.Timeout[] }).timers) clearInterval(timer);
  const before = await scriptCalls();
  for (let i = 0; i < 200; i++) a.open(g, `u${i}`);
  t.ok(await eventually(() => changes.length === 200, 5_000), "200 joins");
  const calls = (await scriptCalls()) - before;
  t.ok(calls <= 3, `200 transitions in ${calls} script call(s)`);
  t.same(changes.map((c) => c.count), Array.from({ length: 200 }, (_, i) => i + 1), "in order, each with the count after it");

  a.open(g, "racer");
  (a as unknown as { resync(mode: string, reason: string): void }).resync("silent", "reconnect");
  t.ok(await eventually(async () => (await a.snapshot(g, 1)).count === 201, 3_000), "the racer is present");
  a.close(g, "racer");
  t.ok(await eventually(() => changes.some((c) => c.kind === "leave" && c.user === "racer"), GRACE_MS + 3_000), "and leaves after the grace: held once, not twice");
  t.equal((await a.snapshot(g, 1)).count, 200);
});

t.test("nothing is left in Redis once a group is empty and a stopped node was reaped", async (t) => {
  const { Redis } = await import("ioredis");
  const r = new Redis(redis.url);
  t.teardown(() => r.disconnect());
  const g = uniqueGroup("empty");
  const a = make(t, () => {});
  const b = make(t, () => {});
  await a.start();
  await b.start();
  a.open(g, "x");
  b.open(g, "y");
  t.ok(await eventually(async () => (await b.snapshot(g, 10)).count === 2, 3_000));
  b.close(g, "y");
  await a.stop(); // x is released by b's reaper after the grace
  t.ok(await eventually(async () => (await b.snapshot(g, 10)).count === 0, GRACE_MS + 3_000), "both gone");
  t.ok(await eventually(async () => (await r.zscore("{chatpresence}:nodes", a.id)) === null, 3_000), "a's lease removed");
  t.same(await r.keys(`{chatpresence}:?:${g}`), [], "no key of the group remains");
  t.equal(await r.exists(`{chatpresence}:n:${a.id}`), 0, "nor the stopped node's share");
});

t.test("names with spaces, quotes, commas, emoji and even a tab go through the transitions script as they are", async (t) => {
  const changes: PresenceChange[] = [];
  const g = uniqueGroup("names");
  const a = make(t, (c) => c.group === g && changes.push(c));
  await a.start();
  const names = ["ana maria", 'o"neil\\', "zoë 🎉", "100", "tab\there", "a,b"];
  for (const n of names) a.open(g, n);
  t.ok(await eventually(() => changes.length === names.length, 3_000), "a join each");
  t.same(changes.map((c) => `${c.kind} ${c.user} ${c.count}`), names.map((n, i) => `join ${n} ${i + 1}`), "in order, names and counts exact");
  t.same((await a.snapshot(g, 10)).users.map((u) => u.user).sort(), [...names].sort());
  for (const n of names) a.close(g, n);
  t.ok(await eventually(() => changes.length === 2 * names.length, GRACE_MS + 3_000), "a leave each");
  t.same(changes.slice(names.length).map((c) => c.count).sort(), [0, 1, 2, 3, 4, 5]);
  t.same(await a.snapshot(g, 10), { count: 0, users: [] });
});
