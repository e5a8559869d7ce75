// The read state's memory of recent memberships (src/chat/recent-members.ts): a pair is
// remembered for at least half the TTL and at most the TTL, forgotten on delete, and the number
// kept is bounded.
import t from "tap";
import { RecentMembers } from "../../src/chat/recent-members.ts";

t.test("a pair is remembered for between half the TTL and the TTL after it was added", async (t) => {
  let now = 1_000;
  const r = new RecentMembers(60_000, 1_000, () => now);
  t.notOk(r.has("g", "ann"));
  r.add("g", "ann");
  t.ok(r.has("g", "ann"));
  t.notOk(r.has("g", "bob"), "another user of the group");
  t.notOk(r.has("h", "ann"), "the user in another group");
  now += 29_999;
  t.ok(r.has("g", "ann"), "just under half the TTL");
  now += 1;
  t.ok(r.has("g", "ann"), "at half the TTL: still in the older generation");
  r.add("g", "bob"); // added to the newer generation
  now += 30_000;
  t.notOk(r.has("g", "ann"), "a TTL after it was added: forgotten");
  t.ok(r.has("g", "bob"), "half a TTL after it was added: remembered");
  now += 30_000;
  t.notOk(r.has("g", "bob"), "a TTL after: forgotten");
});

t.test("delete forgets a pair in either generation", async (t) => {
  let now = 0;
  const r = new RecentMembers(60_000, 1_000, () => now);
  r.add("g", "ann");
  now = 30_000;
  r.add("g", "bob");
  r.delete("g", "ann");
  r.delete("g", "bob");
  t.notOk(r.has("g", "ann"), "older generation");
  t.notOk(r.has("g", "bob"), "newer generation");
});

t.test("at most twice maxPairs are kept: a full generation starts the next one", async (t) => {
  const r = new RecentMembers(60_000, 3, () => 0);
  for (const u of ["a", "b", "c"]) r.add("g", u); // the third fills the generation
  r.add("g", "d");
  t.ok(["a", "b", "c", "d"].every((u) => r.has("g", u)), "the full generation is still remembered");
  for (const u of ["e", "f"]) r.add("h", u); // fills the second: the first is dropped
  t.same(["a", "b", "c"].map((u) => r.has("g", u)), [false, false, false], "the oldest generation is gone");
  t.ok(r.has("g", "d") && r.has("h", "e") && r.has("h", "f"));
  r.add("g", "d");
  t.ok(r.has("g", "d"), "adding a known pair again counts it once");
});
