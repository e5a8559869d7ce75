// Presence across three real node processes sharing a private redis-server (presence keeps
// state in Redis, so never the shared one): tabs count once, quiet reconnects, one leave after
// the grace, a SIGKILLed node's users leave within PRESENCE_TTL_S + PRESENCE_GRACE_MS, and a
// Redis restart sends no join or leave for users still connected.
import t, { type Test } from "tap";
import { loadConfig } from "../../src/config/env.ts";
import { connect, type ChatClient, type Frame } from "../helpers/client.ts";
import { spawnNode } from "../helpers/node.ts";
import { eventually, httpGet, metric, uniqueGroup } from "../helpers/probe.ts";
import { privateRedis } from "../helpers/redis-server.ts";
import { freshDatabase } from "../helpers/services.ts";

const GRACE_MS = 800;
const TTL_S = 3;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test("the documented defaults: grace 5000 ms, lease 15 s, broadcast cap 1000", async (t) => {
  const c = loadConfig({});
  t.equal(c.PRESENCE_GRACE_MS, 5_000);
  t.equal(c.PRESENCE_TTL_S, 15);
  t.equal(c.PRESENCE_MAX_BROADCAST, 1_000);
  t.throws(() => loadConfig({ PRESENCE_TTL_S: "0" }), /PRESENCE_TTL_S must be at least 1/);
});

const redis = await privateRedis(t);
const url = await freshDatabase(t);
const env = { DATABASE_URL: url, REDIS_URL: redis.url, PRESENCE_GRACE_MS: String(GRACE_MS), PRESENCE_TTL_S: String(TTL_S) };
const nodes = await Promise.all([0, 1, 2].map(() => spawnNode(t, env)));
const [n1, n2, n3] = nodes.map((n) => n.port) as [number, number, number];

const presenceOf = (fs: Frame[], user?: string) =>
  fs.filter((f) => (f.operation === "join" || f.operation === "leave") && (user === undefined || f.user === user)).map((f) => `${f.operation} ${(f as { user: string }).user}`);

/**
 * Observers on every node, connected one after the other: each one's join has reached every
 * observer before the next connects (so no join published earlier can arrive late).
 */
async function observers(t: Test, g: string): Promise<ChatClient[]> {
  const obs: ChatClient[] = [];
  for (const [i, port] of [n1, n2, n3].entries()) {
    obs.push(await connect(t, port, g, { user: `observer${i}` }, { presence: true }));
    for (const o of obs) await o.next((f) => f.operation === "join" && f.user === `observer${i}`);
  }
  return obs;
}

const tab = (t: Test, port: number, g: string, user: string) => connect(t, port, g, { user }, { presence: true });

t.test("several tabs of one user on two nodes count once; a tab closing while another stays sends nothing", async (t) => {
  const g = uniqueGroup("tabs");
  const obs = await observers(t, g);
  const tabs = [await tab(t, n1, g, "alice"), await tab(t, n1, g, "alice"), await tab(t, n2, g, "alice")];
  for (const o of obs) t.same(await o.next((f) => f.operation === "join" && f.user === "alice"), { operation: "join", group: g, user: "alice" });
  const answer = await obs[2]!.request({ operation: "presence" });
  t.match(answer, { operation: "presence", group: g, count: 4 }, "alice once, plus the three observers");
  t.same((answer as { users: { user: string }[] }).users.map((u) => u.user).sort(), ["alice", "observer0", "observer1", "observer2"]);
  const http = await httpGet(n3, `/api/groups/${g}/presence`);
  t.equal("status" in http && http.status, 200);
  t.match(JSON.parse("status" in http ? http.body : "{}"), { group: g, count: 4 });
  await tabs[0]!.close();
  await tabs[2]!.close();
  await sleep(GRACE_MS + 400);
  for (const [i, o] of obs.entries()) t.same(presenceOf(o.received), [], `nothing while one tab stays (observer${i})`);
  t.equal(await metric(n1, "chat_presence_users"), 2, "n1 holds alice and observer0");
});

t.test("the last tab closing sends one leave, after the grace", async (t) => {
  const g = uniqueGroup("last");
  const obs = await observers(t, g);
  const bob = await tab(t, n1, g, "bob");
  for (const o of obs) await o.next((f) => f.operation === "join" && f.user === "bob");
  const closedAt = Date.now();
  await bob.close();
  const leave = await obs[1]!.next((f) => f.operation === "leave", GRACE_MS + 5_000);
  const took = Date.now() - closedAt;
  t.same(leave, { operation: "leave", group: g, user: "bob" });
  t.ok(took >= GRACE_MS - 20, `not before the grace (${took} ms)`);
  await sleep(300);
  for (const o of obs) t.same(presenceOf(o.received, "bob"), o === obs[1] ? [] : ["leave bob"], "exactly one leave on every node");
});

t.test("a reconnect within the grace, to another node, sends nothing", async (t) => {
  const g = uniqueGroup("reconnect");
  const obs = await observers(t, g);
  const carol = await tab(t, n1, g, "carol");
  for (const o of obs) await o.next((f) => f.operation === "join" && f.user === "carol");
  await carol.close();
  await sleep(GRACE_MS / 4);
  await tab(t, n3, g, "carol");
  await sleep(GRACE_MS + 500);
  for (const o of obs) t.same(presenceOf(o.received), [], "no leave, no join");
  t.match(await obs[0]!.request({ operation: "presence" }), { count: 4 });
});

t.test("SIGKILL of a node: its users leave within PRESENCE_TTL_S + PRESENCE_GRACE_MS; users also elsewhere stay", async (t) => {
  const g = uniqueGroup("kill");
  const doomed = await spawnNode(t, env);
  const obs = await observers(t, g);
  await tab(t, doomed.port, g, "dan");
  await tab(t, doomed.port, g, "eve");
  await tab(t, n2, g, "eve");
  for (const o of obs) for (const u of ["dan", "eve"]) await o.next((f) => f.operation === "join" && f.user === u);
  const killedAt = Date.now();
  doomed.child.kill("SIGKILL");
  const bound = TTL_S * 1000 + GRACE_MS;
  const leave = await obs[0]!.next((f) => f.operation === "leave", bound + 5_000);
  const took = Date.now() - killedAt;
  t.same(leave, { operation: "leave", group: g, user: "dan" });
  t.ok(took <= bound, `dan left ${took} ms after the kill (bound ${bound} ms)`);
  t.comment(`leave latency after SIGKILL: ${took} ms (PRESENCE_TTL_S=${TTL_S}, PRESENCE_GRACE_MS=${GRACE_MS})`);
  await sleep(500);
  for (const o of obs) t.same(presenceOf(o.received, "eve"), [], "eve is still on n2: no leave");
  t.match(await obs[1]!.request({ operation: "presence" }), { count: 4 }, "eve and three observers");
  t.ok(await eventually(async () => ((await metric(n1, "chat_presence_lease_expiries_total")) ?? 0) + ((await metric(n2, "chat_presence_lease_expiries_total")) ?? 0) + ((await metric(n3, "chat_presence_lease_expiries_total")) ?? 0) >= 1, 2_000), "a survivor counted the expiry");
});

t.test("a Redis restart sends no join or leave for users still connected, and presence is rebuilt", async (t) => {
  const g = uniqueGroup("redis-restart");
  const obs = await observers(t, g);
  await tab(t, n1, g, "fred");
  await tab(t, n2, g, "gina");
  for (const o of obs) for (const u of ["fred", "gina"]) await o.next((f) => f.operation === "join" && f.user === u);
  const before = JSON.parse(((await httpGet(n1, `/api/groups/${g}/presence`)) as { body: string }).body);
  await redis.stop("SIGKILL");
  await sleep(500);
  await redis.start();
  t.ok(await eventually(async () => {
    const r = await httpGet(n3, `/api/groups/${g}/presence`);
    return "status" in r && r.status === 200 && JSON.parse(r.body).count === 5;
  }, 15_000, 200), "rebuilt from the live nodes");
  await sleep(TTL_S * 1000 + GRACE_MS);
  for (const o of obs) t.same(presenceOf(o.received), [], "no join or leave");
  if (obs.some((o) => presenceOf(o.received).length > 0)) {
    for (const [i, n] of nodes.entries()) t.comment(`n${i + 1}: ${JSON.stringify(n.logs.filter((l) => String(l.msg).startsWith("presence")))}`);
  }
  const after = JSON.parse(((await httpGet(n2, `/api/groups/${g}/presence`)) as { body: string }).body);
  t.same(after, before, "same users with the same since");
  // And it keeps working: a new user joins everywhere.
  await tab(t, n3, g, "hank");
  for (const o of obs) t.same(await o.next((f) => f.operation === "join", 10_000), { operation: "join", group: g, user: "hank" });
});
