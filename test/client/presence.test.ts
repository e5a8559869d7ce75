// The SDK's presence state: the server's answer on every live connection, kept current by join
// and leave events (PresenceList unit-tested first, then against a real node).
import t from "tap";
import { PresenceList, type PresenceState } from "../../src/client/presence.ts";
import { startInProcess } from "../helpers/node.ts";
import { untilReady } from "../helpers/probe.ts";
import { freshDatabase } from "../helpers/services.ts";
import { client, until } from "../helpers/sdk.ts";

const g = "g";
const answer = (count: number, users: string[]) => ({ operation: "presence" as const, group: g, count, users: users.map((user) => ({ user, since: new Date(0).toISOString() })) });

t.test("PresenceList: an answer replaces, joins and leaves adjust, repeats change nothing", async (t) => {
  const seen: PresenceState[] = [];
  const p = new PresenceList((s) => seen.push(s));
  p.answer(answer(3, ["a", "b"])); // a third user present but not named (past the answer's 100)
  t.same(p.state, { count: 3, users: ["a", "b"] });
  p.event({ operation: "join", group: g, user: "c" });
  p.event({ operation: "join", group: g, user: "c" });
  t.same(p.state, { count: 4, users: ["a", "b", "c"] }, "a repeated join counts once");
  p.event({ operation: "leave", group: g, user: "a" });
  p.event({ operation: "leave", group: g, user: "unnamed" });
  t.same(p.state, { count: 2, users: ["b", "c"] }, "a leave of an unnamed user lowers the count");
  p.event({ operation: "leave", group: g, user: "zed" });
  t.same(p.state, { count: 2, users: ["b", "c"] }, "but never below the named ones");
  t.equal(seen.length, 4, "one notification per change, none for repeats");
  p.clear();
  t.same(p.state, { count: 0, users: [] });
});

const db = await freshDatabase(t);
const node = await startInProcess(t, { DATABASE_URL: db, PRESENCE_GRACE_MS: "200" });
await untilReady(node.port); // warms the database pool: a cold one on a loaded machine answers the first upgrade 503
const base = `http://127.0.0.1:${node.port}`;

t.test("a client with presence knows who is online and follows joins and leaves", async (t) => {
  const group = "sdk-presence";
  const alice = client(t, { url: base, group, user: "alice", presence: true });
  const states: PresenceState[] = [];
  alice.on("presence", (s) => states.push(s));
  await alice.connect();
  await until("alice sees herself", () => alice.presence.users.includes("alice"));
  const bob = client(t, { url: base, group, user: "bob", presence: true });
  await bob.connect();
  await until("bob's join", () => alice.presence.count === 2);
  t.same(alice.presence.users, ["alice", "bob"]);
  await until("bob's answer", () => bob.presence.count === 2);
  t.same(bob.presence.users, ["alice", "bob"], "a late joiner gets the list from the answer");
  bob.close();
  await until("bob's leave, after the grace", () => alice.presence.count === 1, 5_000);
  t.same(alice.presence.users, ["alice"]);
  t.ok(states.length >= 3, "presence events were emitted");
  t.same(bob.presence, { count: 0, users: [] }, "a closed client knows nobody");
  const typed = await alice.request("presence", {});
  t.match(typed, { operation: "presence", group, count: 1, users: [{ user: "alice" }] }, "request('presence') answers the frame");
});
