// The node's recent events for short resumes (src/chat/recent-events.ts): a contiguous run of
// seqs per group, bounded in bytes per group and over the node (oldest first), never serving an
// event whose message a later update or delete changed, and never keeping a bus buffer alive.
import t from "tap";
import { RecentEvents } from "../../src/chat/recent-events.ts";
import { loadConfig } from "../../src/config/env.ts";

/** A stored event of exactly `bytes` bytes (at least ~40). */
const ev = (op: string, seq: number, bytes = 100) => {
  const head = `{"operation":"${op}","seq":${seq},"group":"g","b":"`;
  return head + "x".repeat(Math.max(0, bytes - head.length - 2)) + '"}';
};
const seqsKept = (r: RecentEvents, group: string, to: number) => Array.from({ length: to }, (_, i) => i + 1).filter((s) => r.get(group, s) !== undefined);

t.test("a group's events are kept as delivered, one contiguous run", async (t) => {
  const r = new RecentEvents(10_000, 100_000);
  for (let s = 5; s <= 9; s++) r.push("g", s, ev("create", s));
  t.equal(r.get("g", 5), ev("create", 5));
  t.equal(r.get("g", 9), ev("create", 9));
  t.equal(r.get("g", 4), undefined, "before the run");
  t.equal(r.get("g", 10), undefined, "after it");
  t.equal(r.get("other", 5), undefined, "another group");
  t.equal(r.size, 5);
  t.equal(r.bytes, 500);
});

t.test("past the group's bytes its oldest events go", async (t) => {
  const r = new RecentEvents(1_000, 100_000);
  for (let s = 1; s <= 25; s++) r.push("g", s, ev("create", s));
  t.same(seqsKept(r, "g", 25), Array.from({ length: 10 }, (_, i) => 16 + i), "the newest 10 of 100 bytes each");
  t.equal(r.bytes, 1_000);
  for (let s = 1; s <= 3; s++) r.push("h", s, ev("create", s));
  t.same(seqsKept(r, "h", 3), [1, 2, 3], "another group has its own budget");
});

t.test("past the node's bytes the node's oldest events go, whatever their group", async (t) => {
  const r = new RecentEvents(1_000, 1_000);
  for (let s = 1; s <= 5; s++) r.push("a", s, ev("create", s)); // a1..a5
  for (let s = 1; s <= 5; s++) r.push("b", s, ev("create", s)); // b1..b5: the node is full
  r.push("b", 6, ev("create", 6));
  r.push("a", 6, ev("create", 6));
  t.same(seqsKept(r, "a", 6), [3, 4, 5, 6], "a1 and a2 were the node's oldest");
  t.same(seqsKept(r, "b", 6), [1, 2, 3, 4, 5, 6]);
  t.equal(r.bytes, 1_000);
  t.equal(r.size, 10);
});

t.test("an update or delete stops memory serving the events before it", async (t) => {
  const r = new RecentEvents(10_000, 100_000);
  for (let s = 1; s <= 4; s++) r.push("g", s, ev("create", s));
  r.push("g", 5, ev("update", 5));
  r.push("g", 6, ev("create", 6));
  t.same(seqsKept(r, "g", 6), [5, 6], "1..4 may show a message's older state: the database serves them");
  r.push("g", 7, ev("delete", 7));
  t.same(seqsKept(r, "g", 7), [7]);
  r.push("g", 8, ev("reply", 8));
  t.same(seqsKept(r, "g", 8), [7, 8], "a reply changes no other message");
  const b = new RecentEvents(10_000, 100_000);
  b.push("g", 1, ev("create", 1));
  b.push("g", 2, Buffer.from(ev("update", 2)));
  t.equal(b.get("g", 1), undefined, "recognised in a Buffer payload too");
});

t.test("a seq that does not follow starts the run again; an event too large is not kept and the run starts after it", async (t) => {
  const r = new RecentEvents(1_000, 100_000);
  for (let s = 1; s <= 3; s++) r.push("g", s, ev("create", s));
  r.push("g", 7, ev("create", 7));
  t.same(seqsKept(r, "g", 7), [7], "no run with a hole in it");
  t.equal(r.bytes, 100);
  r.push("g", 8, ev("create", 8, 2_000));
  t.same(seqsKept(r, "g", 9), [], "8 is larger than the group's bytes");
  t.equal(r.bytes, 0);
  r.push("g", 9, ev("create", 9));
  t.same(seqsKept(r, "g", 9), [9], "the run goes on after it");
});

t.test("drop frees the group's events; zero bytes keeps nothing", async (t) => {
  const r = new RecentEvents(10_000, 100_000);
  for (let s = 1; s <= 3; s++) r.push("g", s, ev("create", s));
  r.drop("g");
  t.equal(r.get("g", 1), undefined);
  t.equal(r.bytes, 0);
  t.equal(r.size, 0);
  r.push("g", 10, ev("create", 10));
  t.same(seqsKept(r, "g", 10), [10], "following the group again starts a new run");
  for (const [g, n] of [[0, 100_000], [10_000, 0]]) {
    const off = new RecentEvents(g!, n!);
    off.push("g", 1, ev("create", 1));
    t.equal(off.get("g", 1), undefined, `groupBytes ${g}, totalBytes ${n}: nothing kept`);
  }
});

t.test("a bus payload is copied: the buffer it came in is not kept alive or shared", async (t) => {
  const r = new RecentEvents(10_000, 100_000);
  const chunk = Buffer.alloc(64 * 1024);
  const payload = ev("create", 1);
  chunk.write(payload, 100, "latin1");
  const view = chunk.subarray(100, 100 + payload.length);
  r.push("g", 1, view);
  chunk.fill(0);
  const kept = r.get("g", 1) as Uint8Array;
  t.equal(Buffer.from(kept).toString("latin1"), payload, "unchanged when the read buffer is reused");
  t.equal(kept.buffer.byteLength, payload.length, "its own memory, not the 64 KiB chunk");
});

t.test("the bookkeeping stays bounded over a long run", async (t) => {
  const r = new RecentEvents(1_000, 5_000);
  for (let s = 1; s <= 100_000; s++) r.push(`g${s % 7}`, Math.ceil(s / 7) + 1, ev("create", Math.ceil(s / 7) + 1));
  const internals = r as unknown as { order: unknown[]; orderHead: number; runs: Map<string, { entries: unknown[] }> };
  t.ok(internals.order.length - internals.orderHead <= Math.max(1024, 2 * r.size) + 1, `the order list holds ${internals.order.length - internals.orderHead} entries for ${r.size} events`);
  for (const run of internals.runs.values()) t.ok(run.entries.length <= 200, "each run's array is compacted");
  t.ok(r.bytes <= 5_000);
});

t.test("events read from the database just before what is kept are kept too, as the node's oldest", async (t) => {
  const db = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => ({ seq: from + i, payload: ev("create", from + i) }));
  const r = new RecentEvents(1_000, 1_300);
  for (let s = 8; s <= 10; s++) r.push("g", s, ev("create", s));
  r.prepend("g", db(3, 9), 11);
  t.same(seqsKept(r, "g", 10), [3, 4, 5, 6, 7, 8, 9, 10], "3..7 adjoin 8..10 (the overlap is ignored)");
  t.equal(r.get("g", 5), ev("create", 5));
  t.equal(r.bytes, 800);
  r.prepend("g", db(1, 1), 11);
  t.same(seqsKept(r, "g", 10), [3, 4, 5, 6, 7, 8, 9, 10], "1 does not adjoin 3: not kept");
  r.prepend("g", db(1, 2), 11);
  t.same(seqsKept(r, "g", 10), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], "1..2 fill the group's 1,000 bytes");
  r.prepend("h", db(1, 5), 6);
  t.same(seqsKept(r, "h", 5), [3, 4, 5], "a group with nothing kept: the events just before `next`, the newest that fit the node's 1,300 bytes");
  r.push("h", 6, ev("create", 6));
  t.same(seqsKept(r, "h", 6), [4, 5, 6], "the live events continue the run; the node was full, and its oldest event went: h3, read last but counted oldest");
  t.same(seqsKept(r, "g", 10), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  t.equal(r.bytes, 1_300);
  r.prepend("x", db(1, 4), 9);
  t.equal(r.get("x", 4), undefined, "events that do not end right before `next` are not kept");
});

t.test("events read before the group's newest update or delete are not kept (the read may predate it)", async (t) => {
  const r = new RecentEvents(10_000, 100_000);
  r.push("g", 5, ev("create", 5));
  r.push("g", 6, ev("update", 6));
  r.prepend("g", [1, 2, 3, 4].map((seq) => ({ seq, payload: ev("create", seq) })), 7);
  t.same(seqsKept(r, "g", 6), [6]);
  t.equal(r.bytes, 200, "nothing was added");
});

t.test("at the defaults: 256 KiB per group, 32 MiB per node", async (t) => {
  const { RESUME_MEMORY_GROUP_BYTES: group, RESUME_MEMORY_BYTES: total } = loadConfig({});
  t.equal(group, 256 * 1024);
  t.equal(total, 32 * 1024 * 1024);
  const r = new RecentEvents(group, total);
  // ~24 kB events, as at the default MAX_BODY_CHARS of 6-byte characters: 10 fit in a group.
  for (let s = 1; s <= 30; s++) r.push("big", s, ev("create", s, 24_000));
  t.same(seqsKept(r, "big", 30), Array.from({ length: 10 }, (_, i) => 21 + i), "the newest 10 of 24 kB");
  // 1 kB events over 200 groups: 200 × 256 KiB would be 50 MiB, past the node's 32 MiB.
  for (let s = 1; s <= 256; s++) for (let g = 0; g < 200; g++) r.push(`g${g}`, s, ev("create", s, 1_024));
  t.ok(r.bytes <= total, `the node keeps ${r.bytes} bytes`);
  t.ok(r.bytes > total - 1_024, "and uses its budget");
  for (const g of ["g0", "g199"]) {
    const kept = seqsKept(r, g, 256);
    t.ok(kept.length >= 150 && kept.every((s, i) => s === 257 - kept.length + i), `${g} keeps its newest ${kept.length} events, a run ending at 256`);
  }
  t.equal(r.get("big", 30), undefined, "the oldest group's events went first");
});
