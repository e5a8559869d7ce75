// A node's own presence holds (src/presence/holds.ts): a pair held by one socket is kept in its
// compact form, and becoming several sockets, a grace, and back again changes neither its `since`
// nor its place in its group's order; only transitions reach the backend.
import t from "tap";
import { LocalHolds, pairKey } from "../../src/presence/holds.ts";

const GRACE_MS = 50;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function holds() {
  const calls: string[] = [];
  const sinces = new Map<string, number>();
  const h = new LocalHolds(
    GRACE_MS,
    (g, u, since) => {
      calls.push(`acquire ${g} ${u}`);
      sinces.set(pairKey(g, u), since);
    },
    (g, u) => calls.push(`release ${g} ${u}`),
  );
  return { h, calls, sinces };
}

t.test("since and order survive a second socket, a grace and a return", async (t) => {
  const { h, calls, sinces } = holds();
  h.open("g", "ann");
  await sleep(5);
  h.open("g", "bob");
  h.open("h", "ann");
  const annSince = sinces.get(pairKey("g", "ann"))!;
  t.ok(Math.abs(annSince - Date.now()) < 1_000, "since is a timestamp");
  h.open("g", "ann"); // a second socket
  h.close("g", "ann"); // back to one
  h.close("g", "ann"); // none: grace
  h.open("g", "ann"); // back within the grace
  await sleep(GRACE_MS * 2);
  t.same(calls, ["acquire g ann", "acquire g bob", "acquire h ann"], "only the first opens reached the backend");
  t.same([...h.users("g")], [["ann", annSince], ["bob", sinces.get(pairKey("g", "bob"))]], "ann keeps her since and her place");
  t.same(new Map(h.entries()), sinces, "entries: every pair with its since");
  t.equal(h.size, 3);
  t.equal(h.count("g"), 2);
  t.equal(h.count("nowhere"), 0);
});

t.test("the last socket's close releases after the grace; a pair in grace counts until then", async (t) => {
  const { h, calls } = holds();
  h.open("g", "ann");
  h.open("g", "ann");
  h.close("g", "ann");
  h.close("g", "ann");
  h.close("g", "ann"); // one close too many changes nothing
  t.equal(h.size, 1, "held during the grace");
  await sleep(GRACE_MS * 3);
  t.same(calls, ["acquire g ann", "release g ann"]);
  t.equal(h.size, 0);
  t.same([...h.users("g")], []);
  h.close("g", "ann"); // unknown pair: nothing
  t.same(calls.length, 2);
});

t.test("clear forgets every pair and cancels the graces", async (t) => {
  const { h, calls } = holds();
  h.open("g", "ann");
  h.close("g", "ann");
  h.open("g", "bob");
  h.clear();
  await sleep(GRACE_MS * 2);
  t.same(calls, ["acquire g ann", "acquire g bob"], "no release after clear");
  t.equal(h.size, 0);
});
