// The SDK's unread count is the server's, live, on every device of a user at once: a read on one
// device, a delete of an older unread message the device never loaded, new messages, and a read
// made while a device was offline all leave every device's count equal to the conversation list
// (GET /api/me/groups) without waiting for a reconnect.
import t from "tap";
import { connect } from "../helpers/client.ts";
import { startInProcess } from "../helpers/node.ts";
import { eventually, uniqueGroup, untilDatabaseWarm } from "../helpers/probe.ts";
import { connection, until } from "../helpers/sdk.ts";
import { freshDatabase } from "../helpers/services.ts";
import { TcpProxy } from "../helpers/tcp-proxy.ts";
import type { GroupView } from "../../src/client/index.ts";

const url = await freshDatabase(t);
const node = await startInProcess(t, { DATABASE_URL: url });
await untilDatabaseWarm(node.port);
const base = `http://127.0.0.1:${node.port}`;

async function listed(user: string, group: string): Promise<{ unread: number; read_seq: number; last_seq: number } | undefined> {
  const body = (await (await fetch(`${base}/api/me/groups?user=${user}&limit=100`)).json()) as { groups: { group: string; unread: number; read_seq: number; last_seq: number }[] };
  return body.groups.find((g) => g.group === group)!;
}

/** Every view's unread equals the list's, once each view has applied the group's last event. */
async function agree(what: string, group: string, views: GroupView[]): Promise<number> {
  const entry = (await listed("ann", group))!;
  await until(`${what}: ${views.map((v) => v.unread).join(", ")} vs the list's ${entry.unread}`, () => views.every((v) => v.lastSeq === entry.last_seq && v.unread === entry.unread));
  return entry.unread;
}

t.test("two devices of one user: reads, deletes of unloaded unread messages and new messages keep both counts exact live", async (t) => {
  const group = uniqueGroup("unread-live");
  const wes = await connect(t, node.port, group, { user: "wes" });
  const ids: string[] = [];
  for (let i = 1; i <= 30; i++) ids.push(((await wes.request({ operation: "create", type: "text", body: `m${i}` })) as { message_id: string }).message_id);
  await connect(t, node.port, group, { user: "ann" }); // ann becomes a member
  t.ok(await eventually(async () => (await listed("ann", group)) !== undefined), "ann is a member");

  const proxy = await TcpProxy.start(t, node.port);
  const phone = connection(t, { url: base, user: "ann" });
  const laptop = connection(t, { url: `http://127.0.0.1:${proxy.port}`, user: "ann" });
  const views: GroupView[] = [];
  for (const device of [phone, laptop]) {
    device.connect();
    const entry = (await device.conversations({ limit: 100 })).groups.find((g) => g.group === group)!;
    t.match(entry, { last_seq: 30, read_seq: 0, unread: 30 }, "the device's list entry");
    views.push(await device.subscribe(group, { known: entry }));
  }
  const [p, l] = views as [GroupView, GroupView];
  t.equal(p.messages.length, 1, "a view started from the list holds the last message only");
  t.equal(await agree("from the list", group, views), 30);

  await p.read(10);
  await until("the laptop hears the phone's read", () => l.unread === 20);
  t.equal(await agree("after the phone read up to 10", group, views), 20);

  await wes.request({ operation: "delete", message_id: ids[14]! }); // seq 15: unread, loaded on neither device
  await wes.request({ operation: "delete", message_id: ids[4]! }); // seq 5: read already
  t.equal(await agree("after deleting an unread and a read message", group, views), 19);

  // The laptop is offline while the phone reads: the read event is lost to it, its reconnect catches up.
  await proxy.cut("reset");
  await until("the laptop is offline", () => laptop.state !== "live");
  await p.read(12);
  await wes.request({ operation: "create", type: "text", body: "while the laptop was away" }); // seq 33
  await proxy.restore();
  t.equal(await agree("after the laptop reconnected", group, views), 18, "m13 to m30 but the deleted m15, and the new one");

  // Both devices read at once, each in its own order, without waiting.
  await Promise.all([...[14, 20, 16, 25].map((s) => p.read(s)), ...[24, 13, 28, 17].map((s) => l.read(s))]);
  t.equal(await agree("after concurrent reads from both devices", group, views), 3, "m29, m30 and the new one are left");

  await wes.request({ operation: "create", type: "text", body: "newer" });
  await wes.request({ operation: "delete", message_id: ids[28]! }); // m29: unread
  t.equal(await agree("a new message and a delete", group, views), 3);
});

t.test("a view followed without a list entry asks for the count: older unread messages than it loaded are counted", async (t) => {
  const group = uniqueGroup("unread-fresh");
  const wes = await connect(t, node.port, group, { user: "wes" });
  for (let i = 1; i <= 12; i++) await wes.request({ operation: "create", type: "text", body: `m${i}` });
  const ann = await connect(t, node.port, group, { user: "ann" });
  await ann.request({ operation: "read", seq: 3 });
  const device = connection(t, { url: base, user: "ann", historyLimit: 5 });
  const view = await device.subscribe(group);
  await until("the newest page", () => view.messages.length === 5);
  t.equal(await agree("a fresh view", group, [view]), 9, "9 unread although 5 are loaded");
});
