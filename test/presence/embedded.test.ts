// Presence on one node with the embedded default (in-process presence, in-process bus): the
// frame and the HTTP answer, join/leave on the sockets, the broadcast cap, and bad input.
import t from "tap";
import { connect } from "../helpers/client.ts";
import { startInProcess } from "../helpers/node.ts";
import { eventually, uniqueGroup, untilReady } from "../helpers/probe.ts";
import { freshDatabase } from "../helpers/services.ts";

const url = await freshDatabase(t);
const node = await startInProcess(t, { DATABASE_URL: url, PRESENCE_GRACE_MS: "200", PRESENCE_MAX_BROADCAST: "3" });
await untilReady(node.port); // warms the database pool: a cold one on a loaded machine answers the first upgrade 503
const get = (path: string) => fetch(`http://127.0.0.1:${node.port}${path}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test("join and leave reach the group's sockets; presence answers by frame and over HTTP", async (t) => {
  const g = uniqueGroup("embedded");
  const alice = await connect(t, node.port, g, { user: "alice" }, { presence: true });
  t.same(await alice.next(), { operation: "join", group: g, user: "alice" }, "her own join");
  const bob = await connect(t, node.port, g, { user: "bob" }, { presence: true });
  t.same(await alice.next(), { operation: "join", group: g, user: "bob" });
  const answer = await alice.request({ operation: "presence" });
  t.match(answer, { operation: "presence", group: g, count: 2, users: [{ user: "alice" }, { user: "bob" }] });
  const since = (answer as { users: { since: string }[] }).users[0]!.since;
  t.match(since, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, "since is ISO-8601 UTC");
  const http = await get(`/api/groups/${g}/presence`);
  t.equal(http.status, 200);
  t.same(await http.json(), { group: g, count: 2, users: (answer as { users: unknown[] }).users });
  await bob.close();
  t.same(await alice.next((f) => f.operation === "leave", 3_000), { operation: "leave", group: g, user: "bob" });
  t.same(await (await get(`/api/groups/${g}/presence`)).json(), { group: g, count: 1, users: [{ user: "alice", since }] });
});

t.test("an empty group answers count 0; a bad group name is 400", async (t) => {
  const empty = uniqueGroup("nobody");
  t.same(await (await get(`/api/groups/${empty}/presence`)).json(), { group: empty, count: 0, users: [] });
  const bad = await get(`/api/groups/${encodeURIComponent("a/b")}/presence`);
  t.equal(bad.status, 400);
  t.same(await bad.json(), { error: "bad_request", message: "invalid group name" });
});

t.test("past PRESENCE_MAX_BROADCAST present users, joins and leaves are not broadcast", async (t) => {
  const g = uniqueGroup("cap");
  const watcher = await connect(t, node.port, g, { user: "w" }, { presence: true });
  const others = [];
  for (const u of ["u1", "u2"]) others.push(await connect(t, node.port, g, { user: u }, { presence: true }));
  for (const u of ["w", "u1", "u2"]) await watcher.next((f) => f.operation === "join" && f.user === u);
  const fourth = await connect(t, node.port, g, { user: "u3" }, { presence: true });
  await sleep(200);
  t.same(watcher.received, [], "the 4th user's join (count 4 > 3) is not broadcast");
  t.match(await watcher.request({ operation: "presence" }), { count: 4 }, "the answer still counts them");
  await fourth.close();
  await sleep(500);
  t.same(watcher.received, [], "nor is the leave from 4 to 3");
  await others[0]!.close();
  t.same(await watcher.next((f) => f.operation === "leave", 3_000), { operation: "leave", group: g, user: "u1" }, "from 3 to 2 it is");
  const text = await (await get("/metrics")).text();
  t.match(text, /chat_presence_events_total\{event="join",broadcast="no"\} [1-9]/);
  t.match(text, /chat_presence_events_total\{event="leave",broadcast="no"\} [1-9]/);
});

t.test("PRESENCE=off: no join or leave, and the presence answer is unavailable", async (t) => {
  const off = await startInProcess(t, { DATABASE_URL: url, PRESENCE: "off" });
  const g = uniqueGroup("off");
  const a = await connect(t, off.port, g, { user: "a" }, { presence: true });
  await connect(t, off.port, g, { user: "b" }, { presence: true });
  t.match(await a.request({ operation: "presence" }), { operation: "error", code: "unavailable" });
  const http = await fetch(`http://127.0.0.1:${off.port}/api/groups/${g}/presence`);
  t.equal(http.status, 503);
  await http.text();
  await a.nothingMore(t, 300);
});

t.test("a socket that resumes with ?since= is present too, and hears its own join after the replay", async (t) => {
  const g = uniqueGroup("resume");
  const watcher = await connect(t, node.port, g, { user: "watcher" }, { presence: true });
  await watcher.next((f) => f.operation === "join" && f.user === "watcher");
  await watcher.request({ operation: "create", type: "text", body: "one" });
  const resumer = await connect(t, node.port, g, { user: "resumer", since: "0" }, { presence: true });
  t.same(await watcher.next((f) => f.operation === "join", 3_000), { operation: "join", group: g, user: "resumer" });
  t.ok(await eventually(() => resumer.received.some((f) => f.operation === "join"), 3_000), "the resumer hears its own join");
  const ops = resumer.received.map((f) => f.operation);
  t.same(ops, ["create", "resumed", "join"], "the replay, then resumed, then its join");
  t.match(await watcher.request({ operation: "presence" }), { count: 2 });
});
