// Where a replay's events come from. A resume at exactly the position the node has delivered (the
// usual case after a drain or a rebalance) costs no read: `resumed` at once. A resume behind the
// node takes each event from the node's recent events while they hold it, and reads the database
// only for what they do not (a page per read, under a replay slot), never asking for the group's
// last seq (the node's position is below it). A node that does not know its position, or a client
// ahead of it, reads the group's last seq first, as before.
import t from "tap";
import { replay, type ReplaySink, type ReplaySource } from "../../src/chat/replay.ts";
import type { ResumeSource } from "../../src/metrics/metrics.ts";

const event = (s: number) => JSON.stringify({ operation: "create", seq: s });

function setup(delivered: number | null, stored: number, kept: number[] = []) {
  const reads: string[] = [];
  const source: ReplaySource = {
    lastSeq: async () => {
      reads.push("lastSeq");
      return stored;
    },
    delivered: () => delivered ?? 0,
    deliveredExactly: () => delivered,
    async page(_g, after, until) {
      reads.push(`page ${after}..${until}`);
      const page = [];
      for (let s = after + 1; s <= until && page.length < 100; s++) page.push({ seq: s, payload: event(s) });
      return page;
    },
    recent: (_g, seq) => (kept.includes(seq) ? `kept ${event(seq)}` : undefined),
  };
  const sent: string[] = [];
  let slots = 0;
  let served: ResumeSource | undefined;
  const sink: ReplaySink = {
    source,
    isOpen: () => true,
    send: (p) => void sent.push(String(p)),
    writable: async () => {},
    slot: (fn) => (slots++, fn()),
    served: (s) => void (served = s),
  };
  const seqs = () => sent.map((p) => JSON.parse(p.replace(/^kept /, "")).seq as number);
  const fromMemory = () => sent.filter((p) => p.startsWith("kept ")).map((p) => JSON.parse(p.slice(5)).seq as number);
  return { sink, reads, sent, seqs, fromMemory, slots: () => slots, served: () => served };
}

t.test("since == the node's delivered seq: resumed at once, no read", async (t) => {
  const { sink, reads, sent, served } = setup(7, 7);
  t.equal(await replay(sink, "g", 7), 7);
  t.same(reads, [], "the store was not read");
  t.same(sent.map((p) => JSON.parse(p)), [{ operation: "resumed", group: "g", seq: 7 }]);
  t.equal(served(), "none");
});

t.test("since behind the node, nothing kept: one page read, no last-seq read", async (t) => {
  const { sink, reads, seqs, slots, served } = setup(7, 7);
  t.equal(await replay(sink, "g", 5), 7);
  t.same(reads, ["page 5..7"]);
  t.same(seqs(), [6, 7, 7], "6 and 7, then resumed at 7");
  t.equal(slots(), 1, "one slot taken, for the one read");
  t.equal(served(), "database");
});

t.test("since behind the node, all kept in memory: no read and no slot", async (t) => {
  const { sink, reads, seqs, fromMemory, slots, served } = setup(9, 9, [6, 7, 8, 9]);
  t.equal(await replay(sink, "g", 5), 9);
  t.same(reads, [], "nothing read");
  t.equal(slots(), 0, "no replay slot taken");
  t.same(seqs(), [6, 7, 8, 9, 9], "6..9 then resumed at 9");
  t.same(fromMemory(), [6, 7, 8, 9]);
  t.equal(served(), "memory");
});

t.test("since older than what memory holds: the older part from the database, the rest from memory, no gap or repeat", async (t) => {
  const { sink, reads, seqs, fromMemory, served } = setup(250, 250, Array.from({ length: 20 }, (_, i) => 231 + i));
  t.equal(await replay(sink, "g", 0), 250);
  t.same(reads, ["page 0..250", "page 100..250", "page 200..250"], "pages of 100 until memory takes over");
  t.same(seqs(), [...Array.from({ length: 250 }, (_, i) => i + 1), 250], "1..250 exactly once, in order, then resumed");
  t.same(fromMemory(), [], "a page read up to 250 leaves nothing for memory");
  t.equal(served(), "database");

  const mid = setup(250, 250, Array.from({ length: 20 }, (_, i) => 231 + i));
  await replay(mid.sink, "g", 120);
  t.same(mid.reads, ["page 120..250", "page 220..250"], "121..220, then 221..250 in the next page");
  t.same(mid.seqs().slice(0, -1), Array.from({ length: 130 }, (_, i) => 121 + i), "121..250 exactly once");
});

t.test("a hole in memory (an event not kept) is read from the database, then memory goes on", async (t) => {
  const kept = [6, 7, 9, 10];
  const { sink, reads, seqs, fromMemory } = setup(10, 10, kept);
  await replay(sink, "g", 5);
  t.same(reads, ["page 7..10"]);
  t.same(seqs(), [6, 7, 8, 9, 10, 10]);
  t.same(fromMemory(), [6, 7], "after the read reached 10, nothing more from memory");
});

t.test("a node that does not know its position yet reads the store, even for since 0", async (t) => {
  const { sink, reads } = setup(null, 3);
  await replay(sink, "g", 0);
  t.same(reads.slice(0, 1), ["lastSeq"]);
});

t.test("a client ahead of the node: the group's last seq decides (error beyond it)", async (t) => {
  const ahead = setup(5, 8);
  t.equal(await replay(ahead.sink, "g", 7), 7, "ahead of the node but not the group: resumed at 7, the node catches up");
  t.same(ahead.reads, ["lastSeq"]);
  const beyond = setup(5, 8);
  t.equal(await replay(beyond.sink, "g", 9), 8);
  t.match(JSON.parse(beyond.sent[0]!), { operation: "error", code: "bad_request" });
});

t.test("replays queued behind another's read of the same events take them from memory once their turn comes", async (t) => {
  const { sink, reads, seqs } = setup(9, 9);
  const kept: number[] = [];
  // One slot, first come first served; the read leaves its events in memory, as the service does.
  let busy: Promise<unknown> = Promise.resolve();
  const source = {
    ...sink.source,
    page: async (g: string, after: number, until: number) => {
      const page = await sink.source.page(g, after, until);
      kept.push(...page.map((e) => e.seq));
      return page;
    },
    recent: (_g: string, seq: number) => (kept.includes(seq) ? event(seq) : undefined),
  };
  const sinks = [0, 1, 2].map((): ReplaySink => {
    let served: string | undefined;
    return {
      ...sink,
      source,
      slot: <T>(fn: () => Promise<T>) => {
        const run = busy.then(fn);
        busy = run.catch(() => {});
        return run;
      },
      served: (s) => void (served = s),
      get servedAs() {
        return served;
      },
    } as ReplaySink;
  });
  const ends = await Promise.all(sinks.map((s, i) => replay(s, "g", 5 + i)));
  t.same(ends, [9, 9, 9]);
  t.same(reads, ["page 5..9"], "one database read for the three");
  t.same(sinks.map((s) => (s as unknown as { servedAs: string }).servedAs), ["database", "memory", "memory"]);
  const bySeq = (xs: number[]) => [...xs].sort((a, b) => a - b);
  t.same(bySeq(seqs()), bySeq([6, 7, 8, 9, 9, 7, 8, 9, 9, 8, 9, 9]), "each got its events (6..9, 7..9, 8..9) and its resumed");
});
