// A short resume is served from the node's recent events in memory: no database read, no replay
// slot, and the same guarantees as a replay from PostgreSQL: every event after `since` exactly
// once and in order, then `resumed`, then live events with no gap and no repeat at the seam, even
// while others keep sending. A `since` older than what memory holds reads the older part from
// PostgreSQL; an update or delete makes the events before it come from PostgreSQL, in their
// message's current state. Two in-process nodes through Redis, so the events a resumer gets from
// memory arrived over the bus as they do in a fleet.
import t, { type Test } from "tap";
import { connect, type ChatClient, type Frame } from "../helpers/client.ts";
import { startInProcess } from "../helpers/node.ts";
import { eventually, metric, uniqueGroup } from "../helpers/probe.ts";
import { freshDatabase, REDIS_URL, requireRedis } from "../helpers/services.ts";

await requireRedis();
const db = await freshDatabase(t);
const [writerNode, byDefault, small, oneSlot] = await Promise.all([
  startInProcess(t, { DATABASE_URL: db, REDIS_URL }),
  startInProcess(t, { DATABASE_URL: db, REDIS_URL }),
  startInProcess(t, { DATABASE_URL: db, REDIS_URL, RESUME_MEMORY_GROUP_BYTES: "4096" }),
  startInProcess(t, { DATABASE_URL: db, REDIS_URL, MAX_CONCURRENT_REPLAYS: "1" }),
]);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Resumes by source, and replay reads, on a node. */
async function counts(port: number) {
  const n = async (name: string) => (await metric(port, name)) ?? -1;
  return {
    memory: await n('chat_resume_seconds_count{source="memory"}'),
    none: await n('chat_resume_seconds_count{source="none"}'),
    database: await n('chat_resume_seconds_count{source="database"}'),
    reads: await n("chat_replay_read_seconds_count"),
  };
}

/** Stored-event seqs (create, reply, update, delete) until `n` are in, then the resumed marker's seq. */
async function stored(c: ChatClient, n: number): Promise<number[]> {
  const got: number[] = [];
  while (got.length < n) {
    const f = await c.next((x) => ["create", "reply", "update", "delete"].includes(x.operation), 15_000);
    if ("seq" in f && f.seq !== undefined) got.push(f.seq);
  }
  return got;
}

/** `n` creates tagged `tag`, all in flight at once; resolves when every one is acknowledged. */
async function createAll(t: Test, c: ChatClient, n: number, tag: string, body = tag): Promise<void> {
  for (let i = 0; i < n; i++) c.send({ operation: "create", type: "text", body: `${body}${i}`, request_id: `${tag}-${i}` });
  for (let i = 0; i < n; i++) t.match(await c.next((f) => "request_id" in f && f.request_id === `${tag}-${i}`, 30_000), { operation: "ack" });
}

/** A socket that follows the group on `port`, so that node delivers (and keeps) its events. */
async function resident(port: number, group: string): Promise<ChatClient> {
  return connect(t, port, group, { user: "resident" });
}

t.test("a resume served from memory is contiguous and joins live with no gap or duplicate", async (t) => {
  const group = uniqueGroup("mem");
  const here = await resident(byDefault.port, group);
  const senders = await Promise.all([1, 2, 3].map((i) => connect(t, writerNode.port, group, { user: `s${i}` })));
  const burst = (n: number, tag: string) => Promise.all(senders.map((s, i) => createAll(t, s, n, `${tag}${i}-`)));
  await burst(10, "a");
  t.same(await stored(here, 30), range(1, 30), "the node holding the resumers delivered 1..30");
  const before = await counts(byDefault.port);

  // Resumers arrive while the senders are mid-burst, each from another point within memory.
  const sending = burst(20, "b");
  const froms = [1, 12, 25, 29];
  const resumers = await Promise.all(froms.map((since) => connect(t, byDefault.port, group, { user: `r${since}`, since: String(since) }).then((c) => ({ c, since }))));
  await sending;
  const total = 90;
  t.same(await stored(here, 60), range(31, total), "the resident got 31..90 live");
  for (const { c, since } of resumers) {
    t.same(await stored(c, total - since), range(since + 1, total), `resumed from ${since}: ${since + 1}..${total} exactly once, in order`);
    const marker = await c.next((x) => x.operation === "resumed");
    t.ok(marker.operation === "resumed" && marker.seq >= since && marker.seq <= total, `one resumed marker within the range (${"seq" in marker ? marker.seq : "?"})`);
    await c.nothingMore(t, 100);
  }
  const after = await counts(byDefault.port);
  t.equal(after.database - before.database, 0, "no resume read the database");
  t.equal(after.reads - before.reads, 0, "no replay read at all");
  t.equal(after.memory + after.none - before.memory - before.none, froms.length, "every resume was served from memory (or needed nothing)");
  t.ok(after.memory - before.memory >= 3, "the resumes behind the node took their events from memory");
});

t.test("a since older than memory holds falls back to PostgreSQL, then memory, with no gap", async (t) => {
  const group = uniqueGroup("old");
  const here = await resident(small.port, group);
  const w = await connect(t, writerNode.port, group, { user: "w" });
  await createAll(t, w, 60, "x", "x".repeat(300)); // ~650-byte events: 4096 bytes hold the newest 6
  t.same(await stored(here, 60), range(1, 60));
  t.ok(await eventually(async () => ((await metric(small.port, "chat_resume_memory_bytes")) ?? 0) > 3_000), "the node keeps its newest events");
  const before = await counts(small.port);
  const old = await connect(t, small.port, group, { user: "old", since: "0" });
  t.same(await stored(old, 60), range(1, 60), "1..60 exactly once, in order");
  t.match(await old.next((f) => f.operation === "resumed"), { operation: "resumed", seq: 60 });
  await createAll(t, w, 3, "live");
  t.same(await stored(old, 3), [61, 62, 63], "then live, no gap, no repeat");
  await old.nothingMore(t, 100);
  const after = await counts(small.port);
  t.equal(after.database - before.database, 1, "the resume read the database");
  t.ok(after.reads - before.reads >= 1, `${after.reads - before.reads} replay reads`);

  const recent = await connect(t, small.port, group, { user: "recent", since: "60" });
  t.same(await stored(recent, 3), [61, 62, 63], "a since within memory");
  t.equal((await counts(small.port)).memory - after.memory, 1, "is served from memory");
});

t.test("a wave of resumes of a group the node did not follow reads PostgreSQL once; the rest come from memory", async (t) => {
  const group = uniqueGroup("wave");
  const w = await connect(t, writerNode.port, group, { user: "w" });
  await createAll(t, w, 20, "v");
  const before = await counts(oneSlot.port);
  // Moved clients arriving together, all from the same point, at a node that had nobody in the group.
  const wave = await Promise.all(Array.from({ length: 6 }, (_, i) => connect(t, oneSlot.port, group, { user: `m${i}`, since: "15" })));
  for (const c of wave) t.same(await stored(c, 5), range(16, 20), "16..20 exactly once");
  await createAll(t, w, 2, "after");
  for (const c of wave) t.same(await stored(c, 2), [21, 22], "then live, no gap, no repeat");
  const after = await counts(oneSlot.port);
  t.equal(after.database - before.database, 1, "one resume read the database");
  t.equal(after.memory - before.memory, 5, "the five others took its events from memory");
});

t.test("at the default RESUME_MEMORY_GROUP_BYTES (256 KiB): 14 events of ~24 kB are more than memory holds", async (t) => {
  const group = uniqueGroup("dflt");
  const here = await resident(byDefault.port, group);
  const w = await connect(t, writerNode.port, group, { user: "w" });
  await createAll(t, w, 14, "big", "\u0001".repeat(3990)); // 6 bytes each in JSON: ~24 kB per event
  t.same(await stored(here, 14), range(1, 14));
  const before = await counts(byDefault.port);
  const fromStart = await connect(t, byDefault.port, group, { user: "a", since: "0" });
  t.same(await stored(fromStart, 14), range(1, 14));
  const mid = await connect(t, byDefault.port, group, { user: "b", since: "8" });
  t.same(await stored(mid, 6), range(9, 14));
  const after = await counts(byDefault.port);
  t.equal(after.database - before.database, 1, "since 0: the oldest events are gone from memory, read from PostgreSQL");
  t.equal(after.memory - before.memory, 1, "since 8: the newest 6 (~144 kB) are in memory");
});

t.test("events before an update or delete come from PostgreSQL, in their message's current state", async (t) => {
  const group = uniqueGroup("edit");
  const here = await resident(byDefault.port, group);
  const w = await connect(t, writerNode.port, group, { user: "w" });
  const m1 = await w.request({ operation: "create", type: "text", body: "one" }); // 1
  await w.request({ operation: "create", type: "text", body: "two" }); // 2
  await w.request({ operation: "update", message_id: m1.message_id, body: "one, edited" }); // 3
  await w.request({ operation: "create", type: "text", body: "three" }); // 4
  t.same(await stored(here, 4), range(1, 4));
  const before = await counts(byDefault.port);
  const c = await connect(t, byDefault.port, group, { user: "c", since: "0" });
  const got: Frame[] = [];
  while (got.length < 4) got.push(await c.next((f) => "seq" in f && f.operation !== "resumed"));
  t.match(got[0], { operation: "create", seq: 1, message: { body: "one, edited" } }, "the create shows the edited body, as PostgreSQL has it");
  t.equal((await counts(byDefault.port)).database - before.database, 1);
  const d = await connect(t, byDefault.port, group, { user: "d", since: "2" });
  t.match(await d.next((f) => "seq" in f && f.operation !== "resumed"), { operation: "update", seq: 3, message: { body: "one, edited" } });
  t.match(await d.next((f) => "seq" in f && f.operation !== "resumed"), { operation: "create", seq: 4 });
  t.equal((await counts(byDefault.port)).memory - before.memory, 1, "from the update on, memory serves");
});
