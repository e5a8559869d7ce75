// Membership and read state: members from their first subscribe or stored operation until they
// leave, read markers that only move forward (`read`, and `seen` moving them), the `read` event,
// unread counts, the conversation list (frame and HTTP) and members with their markers.
import { SignJWT } from "jose";
import t, { type Test } from "tap";
import { connect, type ChatClient, type Frame } from "../helpers/client.ts";
import { startInProcess } from "../helpers/node.ts";
import { eventually, uniqueGroup } from "../helpers/probe.ts";
import { freshDatabase, sql } from "../helpers/services.ts";

const url = await freshDatabase(t);
const node = await startInProcess(t, { DATABASE_URL: url });
const get = async (path: string) => {
  const r = await fetch(`http://127.0.0.1:${node.port}${path}`);
  return { status: r.status, body: (await r.json()) as Record<string, unknown> & { members: { user: string; read_seq: number; joined_at: string }[]; groups: Record<string, unknown>[] } };
};
const members = async (group: string, q = "") => (await get(`/api/groups/${group}/members${q}`)).body.members;
const memberNames = async (group: string) => (await members(group)).map((m) => m.user).sort();
const isRead = (f: Frame) => f.operation === "read";
/** Fails if a `read` event reaches the socket within `ms`. */
async function noReadEvent(t: Test, c: ChatClient, ms = 200): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
  t.same(c.received.filter(isRead), [], "no read event");
}

async function post(c: ChatClient, body: string): Promise<{ message_id: string; seq: number }> {
  return (await c.request({ operation: "create", type: "text", body })) as never;
}

t.test("a user is a member from their first subscribe or first stored operation, until they leave", async (t) => {
  const group = uniqueGroup("members");
  await connect(t, node.port, group, { user: "alice" });
  t.ok(await eventually(async () => (await memberNames(group)).includes("alice")), "subscribing made alice a member");
  const open = await connect(t, node.port, group); // open dev mode without ?user=: frames name their user
  t.ok(await eventually(async () => (await memberNames(group)).length === 1), "a socket without a user makes no one a member");
  await open.request({ operation: "create", type: "text", body: "hi", user: "carol" });
  t.ok(await eventually(async () => (await memberNames(group)).includes("carol")), "carol's first write made her a member");
  const m = await members(group);
  t.same(Object.keys(m[0]!).sort(), ["joined_at", "read_seq", "user"], "a member's exact fields");
  t.equal(m.find((x) => x.user === "alice")!.read_seq, 0, "read_seq is 0 until the first read");

  const left = await open.request({ operation: "leave", user: "carol" });
  t.same(left, { operation: "ack", group, request_id: left.request_id }, "leave is acknowledged");
  t.same(await memberNames(group), ["alice"], "carol is no longer a member");
  t.same((await get(`/api/me/groups?user=carol`)).body.groups, [], "nor in her conversation list");
});

t.test("read markers only move forward; each move is broadcast and acknowledged with read_seq and the reader's count", async (t) => {
  const group = uniqueGroup("markers");
  const alice = await connect(t, node.port, group, { user: "alice" });
  const bob = await connect(t, node.port, group, { user: "bob" });
  const m1 = await post(alice, "one");
  await post(alice, "two");
  const m3 = await post(alice, "three");

  const ack = await bob.request({ operation: "read", seq: 2 });
  t.same(ack, { operation: "ack", group, request_id: ack.request_id, read_seq: 2, unread: 1, last_seq: 3 }, "the ack carries the marker, and bob's unread count as of the last seq");
  const ev = (await alice.next(isRead)) as Frame & { read_at: string };
  t.same(ev, { operation: "read", group, user: "bob", read_seq: 2, read_at: ev.read_at, unread: 1, last_seq: 3 }, "the group hears the move, with the reader's count");
  t.match(ev.read_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  await bob.next(isRead);

  const lower = await bob.request({ operation: "read", seq: 1 });
  t.same(lower, { operation: "ack", group, request_id: lower.request_id, read_seq: 2, unread: 1, last_seq: 3 }, "a lower seq answers the current marker and count");
  const same = await bob.request({ operation: "read", seq: 2 });
  t.equal(same.read_seq, 2, "the same seq changes nothing either");
  await noReadEvent(t, alice);

  const beyond = await bob.request({ operation: "read", seq: 4 });
  t.same(beyond, { operation: "error", group, code: "bad_request", message: "seq 4 is beyond the group's last seq 3", request_id: beyond.request_id }, "beyond the last seq");
  for (const bad of [-1, 1.5, "2", null]) {
    t.match(await bob.request({ operation: "read", seq: bad }), { operation: "error", group, code: "bad_request" }, `seq ${JSON.stringify(bad)} is refused`);
  }
  t.match(await bob.request({ operation: "read" }), { code: "bad_request" }, "seq is required");

  await bob.request({ operation: "seen", message_id: m3.message_id });
  t.match(await alice.next(isRead), { operation: "read", group, user: "bob", read_seq: 3, unread: 0, last_seq: 3 }, "seen moves the marker to the message's seq");
  await bob.request({ operation: "seen", message_id: m1.message_id });
  await noReadEvent(t, alice);
  t.equal((await members(group)).find((m) => m.user === "bob")!.read_seq, 3, "an older seen does not move it back");
});

t.test("unread counts messages after the marker, by others, not deleted", async (t) => {
  const group = uniqueGroup("unread");
  const alice = await connect(t, node.port, group, { user: "alice" });
  const bob = await connect(t, node.port, group, { user: "bob" });
  const first = await post(alice, "a1");
  await post(bob, "b1");
  const a2 = await post(alice, "a2");
  await post(alice, "a3");
  await alice.request({ operation: "reply", type: "text", body: "a4", message_id: first.message_id });
  await alice.request({ operation: "delete", message_id: a2.message_id });
  const entry = async (user: string) => (await get(`/api/me/groups?user=${user}`)).body.groups.find((g) => g.group === group)!;
  t.match(await entry("bob"), { last_seq: 6, read_seq: 0, unread: 3 }, "a1, a3 and the reply a4: not his own b1, not the deleted a2");
  t.match(await entry("alice"), { unread: 1 }, "alice has bob's one");
  await bob.request({ operation: "read", seq: 4 });
  t.match(await entry("bob"), { read_seq: 4, unread: 1 }, "after reading up to a3, only the reply is unread");
});

t.test("every device of a reader hears their marker move with the count; deletes name the deleted message's seq and author", async (t) => {
  const group = uniqueGroup("devices");
  const alice = await connect(t, node.port, group, { user: "alice" });
  const phone = await connect(t, node.port, group, { user: "bob" });
  const laptop = await connect(t, node.port, group, { user: "bob" });
  const m = [];
  for (const body of ["a1", "a2", "a3", "a4"]) m.push(await post(alice, body));
  await post(phone, "b5"); // seq 5, bob's own: never unread for him

  const ack = await phone.request({ operation: "read", seq: 2 });
  t.same(ack, { operation: "ack", group, request_id: ack.request_id, read_seq: 2, unread: 2, last_seq: 5 }, "a3 and a4 are unread; b5 is his");
  const ev = (await laptop.next(isRead)) as Frame & { read_at: string };
  t.same(ev, { operation: "read", group, user: "bob", read_seq: 2, read_at: ev.read_at, unread: 2, last_seq: 5 }, "the other device hears the move and the count");
  t.same(await phone.next(isRead), ev, "so does the device that read");

  const del = await alice.request({ operation: "delete", message_id: m[2]!.message_id });
  t.same(del, { operation: "ack", group, request_id: del.request_id, message_id: m[2]!.message_id, seq: 6 });
  t.same(
    await laptop.next((f) => f.operation === "delete"),
    { operation: "delete", seq: 6, group, message_id: m[2]!.message_id, user: "alice", message_seq: 3, author: "alice" },
    "a delete of an unread message carries its seq and author: the device counts one less without having loaded it",
  );
  const again = await laptop.request({ operation: "read", seq: 0 });
  t.same(again, { operation: "ack", group, request_id: again.request_id, read_seq: 2, unread: 1, last_seq: 6 }, "a read that moves nothing answers the count now");
  await noReadEvent(t, phone);
  const entry = (await get(`/api/me/groups?user=bob`)).body.groups.find((g) => g.group === group);
  t.match(entry, { last_seq: 6, read_seq: 2, unread: 1 }, "the conversation list agrees");
});

t.test("the conversation list: most recent activity first, exact shapes, paging, frame and HTTP agree", async (t) => {
  const user = uniqueGroup("dana");
  const groups = [uniqueGroup("conv-a"), uniqueGroup("conv-b"), uniqueGroup("conv-c")];
  const sockets = [];
  for (const g of groups) sockets.push(await connect(t, node.port, g, { user }));
  t.ok(await eventually(async () => (await get(`/api/me/groups?user=${user}`)).body.groups.length === 3), "dana is a member of three groups");
  const other = await connect(t, node.port, groups[0]!, { user: "erin" });
  const pic = await sockets[1]!.request({ operation: "create", type: "image", body: "look", file: { name: "p.png", content_type: "image/png", data: Buffer.from("png").toString("base64") } });
  await new Promise((r) => setTimeout(r, 5));
  const hello = await post(other, "hello dana");

  const all = (await get(`/api/me/groups?user=${user}`)).body;
  t.same(all.groups.map((g) => g.group), [groups[0], groups[1], groups[2]], "newest activity first; a group without messages last");
  const top = all.groups[0] as { last_message: { created: string }; last_activity: string };
  t.same(all.groups[0], {
    group: groups[0], last_seq: 1, read_seq: 0, unread: 1,
    last_message: { id: hello.message_id, user: "erin", body: "hello dana", type: "text", file: null, attachment: null, reply_to: null, created: top.last_message.created, updated: null, deleted: false, seq: 1 },
    last_activity: top.last_activity,
  }, "an entry's exact shape");
  t.match(all.groups[1], { last_seq: 1, unread: 0, last_message: { id: pic.message_id, file: /^\/files\//, attachment: { name: "p.png", content_type: "image/png", size: 3 } } }, "the last message with its attachment");
  t.match(all.groups[2], { last_seq: 0, read_seq: 0, unread: 0, last_message: null }, "an empty group");
  t.equal(all.has_more, false);
  t.notOk("next" in all, "no next on the last page");

  const p1 = (await get(`/api/me/groups?user=${user}&limit=2`)).body;
  t.same(p1.groups.map((g) => g.group), [groups[0], groups[1]]);
  t.equal(p1.has_more, true);
  t.type(p1.next, "string");
  const p2 = (await get(`/api/me/groups?user=${user}&limit=2&before=${encodeURIComponent(p1.next as string)}`)).body;
  t.same(p2, { groups: [all.groups[2]], has_more: false }, "the next page holds the rest");

  const frame = await sockets[2]!.request({ operation: "groups", limit: 2 });
  t.same(frame, { operation: "groups", request_id: frame.request_id, ...p1 }, "the groups frame answers the same, without a group");
  const frame2 = await sockets[2]!.request({ operation: "groups", limit: 2, before: p1.next });
  t.same(frame2, { operation: "groups", request_id: frame2.request_id, ...p2 });
  t.match(await sockets[2]!.request({ operation: "groups", before: "nonsense" }), { operation: "error", code: "bad_request" });
  t.match(await sockets[2]!.request({ operation: "groups", limit: 101 }), { operation: "error", code: "bad_request" });
});

t.test("last_activity is the time of the group's newest stored event, an update or a delete included", async (t) => {
  const db = await sql(t, url);
  const user = uniqueGroup("fay");
  const [a, b] = [uniqueGroup("act-a"), uniqueGroup("act-b")];
  const ca = await connect(t, node.port, a, { user });
  const cb = await connect(t, node.port, b, { user });
  const newest = async (g: string) =>
    ((await db.query(`SELECT created_at FROM group_events WHERE group_name = $1 ORDER BY seq DESC LIMIT 1`, [g])).rows[0]!.created_at as Date).toISOString();
  const list = async () => ((await get(`/api/me/groups?user=${user}`)).body.groups as { group: string; last_activity: string }[]).map((g) => ({ group: g.group, last_activity: g.last_activity }));
  const expect = async (...order: string[]) => Promise.all(order.map(async (g) => ({ group: g, last_activity: await newest(g) })));
  const later = () => new Promise((r) => setTimeout(r, 5));

  const first = await post(ca, "first");
  await later();
  await post(cb, "second");
  t.same(await list(), await expect(b, a), "after two creates: the newer first, each at its create's time");
  await later();
  await ca.request({ operation: "update", message_id: first.message_id, body: "edited" });
  t.same(await list(), await expect(a, b), "an update is activity: its event's time");
  await later();
  const third = await post(cb, "third");
  await later();
  await cb.request({ operation: "delete", message_id: third.message_id });
  t.same(await list(), await expect(b, a), "a delete is activity: its event's time");
  const rows = (await db.query(`SELECT g.last_event_at, e.created_at FROM groups g JOIN group_events e ON e.group_name = g.name AND e.seq = g.last_seq WHERE g.name = ANY($1)`, [[a, b]])).rows;
  t.equal(rows.length, 2);
  for (const r of rows) t.same(r.last_event_at, r.created_at, "the group row keeps its newest event's created_at");
});

t.test("HTTP: bad queries are 400, an unknown members cursor 404, the list needs a user", async (t) => {
  const group = uniqueGroup("http");
  for (const u of ["u1", "u2", "u3"]) {
    await connect(t, node.port, group, { user: u });
    // One joins after the other: each is recorded before the next connects.
    t.ok(await eventually(async () => (await memberNames(group)).includes(u)), `${u} is a member`);
    await new Promise((r) => setTimeout(r, 5));
  }
  const page1 = (await get(`/api/groups/${group}/members?limit=2`)).body;
  t.same(page1.members.map((m) => m.user), ["u3", "u2"], "most recently joined first");
  t.equal(page1.has_more, true);
  const page2 = (await get(`/api/groups/${group}/members?limit=2&before=u2`)).body;
  t.same(page2.members.map((m) => m.user), ["u1"]);
  t.equal(page2.has_more, false);
  t.match(await get(`/api/groups/${group}/members?before=nobody`), { status: 404, body: { error: "not_found" } });
  t.match(await get(`/api/groups/${group}/members?limit=0`), { status: 400, body: { error: "bad_request" } });
  t.match(await get(`/api/groups/bad%20name/members`), { status: 400 });
  t.same(await get(`/api/groups/${uniqueGroup("nobody")}/members`), { status: 200, body: { members: [], has_more: false } }, "a group without members");
  t.match(await get(`/api/me/groups`), { status: 400, body: { error: "bad_request", message: /user/ } }, "no user, no list");
  t.match(await get(`/api/me/groups?user=x&limit=500`), { status: 400 });
  t.match(await get(`/api/me/groups?user=x&before=zzz`), { status: 400 });
});

t.test("JWT mode: the list is the token's user's; members need a token whose groups claim lists the group", async (t) => {
  const secret = "s".repeat(32);
  const jwtNode = await startInProcess(t, { DATABASE_URL: url, JWT_SECRET: secret });
  const sign = (claims: Record<string, unknown>) => new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setIssuedAt().setExpirationTime("5m").sign(new TextEncoder().encode(secret));
  const group = uniqueGroup("jwt");
  const fay = await sign({ sub: "fay", groups: [group] });
  const c = await connect(t, jwtNode.port, group, { token: fay, user: "mallory" });
  await c.request({ operation: "create", type: "text", body: "hi" });
  const call = async (path: string, token?: string) => {
    const r = await fetch(`http://127.0.0.1:${jwtNode.port}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  };
  t.ok(await eventually(async () => ((await call(`/api/me/groups?user=mallory`, fay)).body.groups as unknown[]).length === 1), "the token's sub is the user, ?user= is ignored");
  t.match(await call(`/api/me/groups`, fay), { status: 200, body: { groups: [{ group, last_seq: 1, unread: 0 }] } });
  t.match(await call(`/api/me/groups?user=fay`), { status: 401, body: { error: "unauthorized" } }, "no token: 401");
  t.match(await call(`/api/groups/${group}/members`, fay), { status: 200, body: { members: [{ user: "fay" }] } });
  t.match(await call(`/api/groups/${group}/members`, await sign({ sub: "gus", groups: ["elsewhere"] })), { status: 403, body: { error: "forbidden" } }, "a groups claim without the group: 403");
  t.match(await call(`/api/groups/${group}/members`), { status: 401 });
});
