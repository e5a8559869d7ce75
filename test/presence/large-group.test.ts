// A large group: 5,000 present users over three nodes, at the default PRESENCE_MAX_BROADCAST
// (1000). Exactly the joins up to the cap are broadcast; past it, joins and leaves of other users
// cost the group's sockets nothing (not one byte), while the presence answer stays exact.
// Users are raw TCP sockets doing a bare WebSocket upgrade that only count the bytes they get.
import net from "node:net";
import t from "tap";
import { connect } from "../helpers/client.ts";
import { spawnNode } from "../helpers/node.ts";
import { eventually, httpGet, uniqueGroup, untilReady } from "../helpers/probe.ts";
import { privateRedis } from "../helpers/redis-server.ts";
import { freshDatabase } from "../helpers/services.ts";

const USERS = 5_000;
const CAP = 1_000; // the default, not set below
const GRACE_MS = 300;

const redis = await privateRedis(t);
const url = await freshDatabase(t);
const env = { DATABASE_URL: url, REDIS_URL: redis.url, PRESENCE_GRACE_MS: String(GRACE_MS) };
const ports = (await Promise.all([0, 1, 2].map(() => spawnNode(t, env)))).map((n) => n.port);
const g = uniqueGroup("large");
for (const port of ports) await untilReady(port);

let bytes = 0;
const raw: net.Socket[] = [];
t.teardown(() => raw.forEach((s) => s.destroy()));

/** A WebSocket upgrade on a bare socket; afterwards it only counts what it receives. */
function rawUser(port: number, user: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: "127.0.0.1", port });
    raw.push(s);
    let head = "";
    const timer = setTimeout(() => reject(new Error(`upgrade of ${user} took over 30 s`)), 30_000);
    s.on("error", reject);
    s.once("connect", () =>
      s.write(`GET /ws/chat/${g}/?user=${user}&presence=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`),
    );
    const onData = (chunk: Buffer) => {
      head += chunk.toString("latin1");
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      clearTimeout(timer);
      s.off("data", onData);
      if (!head.startsWith("HTTP/1.1 101")) return reject(new Error(`upgrade of ${user} refused: ${head.split("\r\n")[0]}`));
      bytes += head.length - end - 4;
      s.on("data", (c: Buffer) => (bytes += c.length));
      resolve(s);
    };
    s.on("data", onData);
  });
}

const presence = async (port: number) => {
  const r = await httpGet(port, `/api/groups/${g}/presence`, 5_000);
  return "status" in r && r.status === 200 ? (JSON.parse(r.body) as { count: number; users: unknown[] }) : null;
};

t.test(`${USERS} present users over three nodes: ${CAP} joins broadcast, then nothing`, async (t) => {
  const watcher = await connect(t, ports[0]!, g, { user: "watcher" }, { presence: true });
  // Each node follows the group first (one upgrade each), then the crowd comes.
  await rawUser(ports[1]!, "u1");
  await rawUser(ports[2]!, "u2");
  const started = Date.now();
  for (let i = 0; i < USERS - 1; i += 250) {
    await Promise.all(Array.from({ length: Math.min(250, USERS - 1 - i) }, (_, k) => i + k).filter((n) => n !== 1 && n !== 2).map((n) => rawUser(ports[n % 3]!, `u${n}`)));
  }
  t.comment(`${USERS - 1} raw users connected in ${Date.now() - started} ms`);
  t.ok(await eventually(async () => (await presence(ports[1]!))?.count === USERS, 30_000, 250), `count is exactly ${USERS}`);
  const answer = (await presence(ports[2]!))!;
  t.equal(answer.users.length, 100, "the answer lists 100 users");
  // Joins are decided in Redis one at a time, so exactly the first CAP (counts 1..CAP) went out.
  t.ok(await eventually(() => watcher.received.filter((f) => f.operation === "join").length >= CAP, 15_000), "the watcher got the joins up to the cap");
  await new Promise((r) => setTimeout(r, 500));
  const joins = watcher.received.filter((f) => f.operation === "join");
  t.equal(joins.length, CAP, `exactly ${CAP} joins, its own included`);
  t.equal(watcher.received.filter((f) => f.operation === "leave").length, 0);
  watcher.received.length = 0;

  // Past the cap: others joining and leaving send nothing to anyone.
  const before = bytes;
  const extra = await Promise.all([0, 1, 2].map((i) => rawUser(ports[i]!, `late${i}`)));
  t.ok(await eventually(async () => (await presence(ports[0]!))?.count === USERS + 3, 10_000, 100), "three more present");
  for (const s of [...extra, ...raw.slice(0, 3)]) s.destroy();
  t.ok(await eventually(async () => (await presence(ports[0]!))?.count === USERS - 3, GRACE_MS + 10_000, 100), "six left after the grace");
  await new Promise((r) => setTimeout(r, 300));
  t.equal(bytes - before, 0, "the group's sockets received not one byte");
  t.same(watcher.received, [], "nor did the watcher");
});
