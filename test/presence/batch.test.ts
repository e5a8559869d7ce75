// Join and leave frames are batched per tick (PRESENCE_BATCH_MS): a burst of arrivals in a group
// reaches its sockets together, unchanged, in order, and no later than the tick; the tick is
// capped at a quarter of the grace; a group that just published holds its next frames for the busy
// period (PRESENCE_BUSY_BATCH_MS) while a quiet group's go within the tick; a stopping node
// publishes what it holds at once.
import t from "tap";
import { PresenceBatch } from "../../src/chat/presence-batch.ts";
import { loadConfig } from "../../src/config/env.ts";
import { connect } from "../helpers/client.ts";
import { startInProcess } from "../helpers/node.ts";
import { uniqueGroup, untilReady } from "../helpers/probe.ts";
import { freshDatabase } from "../helpers/services.ts";

type Published = [group: string, frames: string[]];

t.test("PresenceBatch: frames wait for the tick, then go out per group in the order added", async (t) => {
  const out: Published[] = [];
  let flushed!: () => void;
  const done = new Promise<void>((r) => (flushed = r));
  const batch = new PresenceBatch<string>(30, (group, frames) => {
    out.push([group, frames]);
    if (out.length === 2) flushed();
  });
  batch.add("a", "a1");
  batch.add("b", "b1");
  batch.add("a", "a2");
  t.same(out, [], "nothing is published before the tick");
  t.equal(batch.groups, 2);
  await done;
  t.same(out, [["a", ["a1", "a2"]], ["b", ["b1"]]], "one publish per group, frames in order, none merged or lost");
  t.equal(batch.groups, 0, "nothing held after the tick");
});

t.test("PresenceBatch: tick 0 publishes at once; close publishes what is held and holds nothing after", async (t) => {
  const out: Published[] = [];
  const now = new PresenceBatch<string>(0, (group, frames) => out.push([group, frames]));
  now.add("g", "x");
  t.same(out, [["g", ["x"]]], "tick 0: at once");

  out.length = 0;
  const held = new PresenceBatch<string>(60_000, (group, frames) => out.push([group, frames]));
  held.add("g", "y1");
  held.add("g", "y2");
  t.same(out, []);
  held.close();
  t.same(out, [["g", ["y1", "y2"]]], "close publishes the held frames at once");
  held.add("g", "z");
  t.same(out, [["g", ["y1", "y2"]], ["g", ["z"]]], "after close, frames are not held");
  t.equal(held.groups, 0);
});

t.test("PresenceBatch: a group that published within busyMs holds its next frames until busyMs after that publish; a quiet group's go within the tick", async (t) => {
  const out: [group: string, frames: string[], at: number][] = [];
  let wake: (() => void) | null = null;
  const batch = new PresenceBatch<string>(20, (group, frames) => {
    out.push([group, frames, performance.now()]);
    wake?.();
  }, 1_000);
  const published = (n: number) => new Promise<void>((r) => (wake = () => out.length >= n && r()));
  // The batch's timer does not keep a process alive (unref'd): this does, while the test waits for it.
  const alive = setInterval(() => {}, 100);
  t.teardown(() => {
    clearInterval(alive);
    batch.close();
  });
  let added = performance.now();
  batch.add("a", "a1");
  await published(1);
  t.ok(out[0]![2] - added < 500, `a quiet group's frame went within the tick (${Math.round(out[0]![2] - added)} ms)`);
  batch.add("a", "a2");
  batch.add("a", "a3");
  added = performance.now();
  batch.add("b", "b1");
  await published(2);
  t.same(out.map(([g, f]) => [g, f]), [["a", ["a1"]], ["b", ["b1"]]], "the quiet group b goes first; busy a waits");
  t.ok(out[1]![2] - added < 500, `b within the tick (${Math.round(out[1]![2] - added)} ms)`);
  await published(3);
  t.same(out[2]!.slice(0, 2), ["a", ["a2", "a3"]], "a's frames together, in order");
  const gap = out[2]![2] - out[0]![2];
  t.ok(gap >= 995 && gap < 2_000, `a published again busyMs after its last publish (${Math.round(gap)} ms)`);
  t.equal(batch.groups, 0);
  batch.close();
  batch.add("a", "a4");
  t.same(out[3]!.slice(0, 2), ["a", ["a4"]], "after close, at once even for a busy group");
});

t.test("PRESENCE_BATCH_MS: default 250, PRESENCE_BUSY_BATCH_MS: default 1000, 0 allowed, bad values refused with the variable named", async (t) => {
  t.equal(loadConfig({}).PRESENCE_BATCH_MS, 250);
  t.equal(loadConfig({ PRESENCE_BATCH_MS: "0" }).PRESENCE_BATCH_MS, 0);
  t.equal(loadConfig({ PRESENCE_BATCH_MS: "10000" }).PRESENCE_BATCH_MS, 10_000);
  for (const bad of ["-1", "abc", "1.5", "10001"]) t.throws(() => loadConfig({ PRESENCE_BATCH_MS: bad }), /PRESENCE_BATCH_MS/, `${bad} is refused`);
  t.equal(loadConfig({}).PRESENCE_BUSY_BATCH_MS, 1_000);
  t.equal(loadConfig({ PRESENCE_BUSY_BATCH_MS: "0" }).PRESENCE_BUSY_BATCH_MS, 0);
  for (const bad of ["-1", "x", "10001"]) t.throws(() => loadConfig({ PRESENCE_BUSY_BATCH_MS: bad }), /PRESENCE_BUSY_BATCH_MS/, `busy ${bad} is refused`);
});

const url = await freshDatabase(t);

t.test("a burst of arrivals reaches a watcher as the usual join frames, published together", async (t) => {
  // A long tick (a quarter of a 10 s grace: 2,500 ms) so that the arrivals share one tick for sure.
  const node = await startInProcess(t, { DATABASE_URL: url, PRESENCE_GRACE_MS: "10000", PRESENCE_BATCH_MS: "2500" });
  await untilReady(node.port);
  const g = uniqueGroup("burst");
  const watcher = await connect(t, node.port, g, { user: "watcher" }, { presence: true });
  t.same(await watcher.next((f) => f.operation === "join", 5_000), { operation: "join", group: g, user: "watcher" });
  const users = ["u1", "u2", "u3", "u4", "u5"];
  await Promise.all(users.map((u) => connect(t, node.port, g, { user: u }, { presence: true })));
  const joins = [];
  for (const _ of users) joins.push(await watcher.next((f) => f.operation === "join", 5_000));
  t.same(
    joins.sort((a, b) => ((a as { user: string }).user < (b as { user: string }).user ? -1 : 1)),
    users.map((user) => ({ operation: "join", group: g, user })),
    "each arrival's own join frame, unchanged",
  );
  const metrics = await (await fetch(`http://127.0.0.1:${node.port}/metrics`)).text();
  const sum = Number(/^chat_presence_batch_frames_sum (\d+)/m.exec(metrics)?.[1]);
  const count = Number(/^chat_presence_batch_frames_count (\d+)/m.exec(metrics)?.[1]);
  t.equal(sum, 6, "six join frames published");
  // Normally two publishes (the watcher's own join, then the five arrivals in one tick); a starved
  // test process may spread the five over two ticks, but never over five.
  t.ok(count >= 2 && count < 6, `fewer publishes than frames: ${count} for 6`);
  await watcher.nothingMore(t, 300);
});

t.test("the tick is capped at a quarter of the grace: with PRESENCE_GRACE_MS=200 a join is not held for PRESENCE_BATCH_MS=10000", async (t) => {
  const node = await startInProcess(t, { DATABASE_URL: url, PRESENCE_GRACE_MS: "200", PRESENCE_BATCH_MS: "10000" });
  await untilReady(node.port);
  const g = uniqueGroup("capped");
  const watcher = await connect(t, node.port, g, { user: "watcher" }, { presence: true });
  const start = performance.now();
  t.same(await watcher.next((f) => f.operation === "join", 5_000), { operation: "join", group: g, user: "watcher" });
  t.comment(`join after ${Math.round(performance.now() - start)} ms`);
});

t.test("PRESENCE_BATCH_MS=0: each join is published on its own, at once", async (t) => {
  const node = await startInProcess(t, { DATABASE_URL: url, PRESENCE_BATCH_MS: "0" });
  await untilReady(node.port);
  const g = uniqueGroup("unbatched");
  const watcher = await connect(t, node.port, g, { user: "watcher" }, { presence: true });
  await watcher.next((f) => f.operation === "join", 5_000);
  for (const u of ["a", "b"]) {
    await connect(t, node.port, g, { user: u }, { presence: true });
    t.same(await watcher.next((f) => f.operation === "join", 5_000), { operation: "join", group: g, user: u });
  }
  const metrics = await (await fetch(`http://127.0.0.1:${node.port}/metrics`)).text();
  t.match(metrics, /^chat_presence_batch_frames_sum 3$/m);
  t.match(metrics, /^chat_presence_batch_frames_count 3$/m, "one publish per frame");
});
