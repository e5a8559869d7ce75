// A resume at exactly the position the node has delivered (the usual case after a drain or a
// rebalance) costs no database read: the replay sends `resumed` at once. Any other position, or
// a node that does not know its position yet, reads the store as before.
import t from "tap";
import { replay, type ReplaySink, type ReplaySource } from "../../src/chat/replay.ts";

function setup(delivered: number | null, stored: number) {
  const reads: string[] = [];
  const source: ReplaySource = {
    lastSeq: async () => {
      reads.push("lastSeq");
      return stored;
    },
    delivered: () => delivered ?? 0,
    deliveredExactly: () => delivered,
    async *replay(_g, after, until) {
      reads.push(`replay ${after}..${until}`);
      const page = [];
      for (let s = after + 1; s <= until; s++) page.push({ seq: s, payload: JSON.stringify({ operation: "create", seq: s }) });
      if (page.length) yield page;
    },
  };
  const sent: string[] = [];
  const sink: ReplaySink = { source, isOpen: () => true, send: (p) => void sent.push(String(p)), writable: async () => {}, slot: (fn) => fn() };
  return { sink, reads, sent };
}

t.test("since == the node's delivered seq: resumed at once, no read", async (t) => {
  const { sink, reads, sent } = setup(7, 7);
  t.equal(await replay(sink, "g", 7), 7);
  t.same(reads, [], "the store was not read");
  t.same(sent.map((p) => JSON.parse(p)), [{ operation: "resumed", group: "g", seq: 7 }]);
});

t.test("since behind the node: the missing events are read and replayed", async (t) => {
  const { sink, reads, sent } = setup(7, 7);
  t.equal(await replay(sink, "g", 5), 7);
  t.same(reads, ["lastSeq", "replay 5..7"]);
  t.same(sent.map((p) => JSON.parse(p).seq), [6, 7, 7], "6 and 7, then resumed at 7");
});

t.test("a node that does not know its position yet reads the store, even for since 0", async (t) => {
  const { sink, reads } = setup(null, 3);
  await replay(sink, "g", 0);
  t.same(reads.slice(0, 1), ["lastSeq"]);
});
