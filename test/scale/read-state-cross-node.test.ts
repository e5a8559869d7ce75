// Read state across nodes: two devices of one user mark a group read at once on different nodes;
// the marker ends at the highest seq either sent, never moves back, every node answers the same
// marker and unread count, and the `read` events reach the group's sockets on every node. The
// SDK on a device per node keeps its unread count equal to every node's list, live.
import t from "tap";
import { connect, type ChatClient, type Frame } from "../helpers/client.ts";
import { startInProcess } from "../helpers/node.ts";
import { eventually, uniqueGroup } from "../helpers/probe.ts";
import { connection, until } from "../helpers/sdk.ts";
import { freshDatabase, REDIS_URL, requireRedis } from "../helpers/services.ts";
import type { GroupView } from "../../src/client/index.ts";

await requireRedis();
const url = await freshDatabase(t);
const nodes: Awaited<ReturnType<typeof startInProcess>>[] = [];
for (let i = 0; i < 3; i++) nodes.push(await startInProcess(t, { DATABASE_URL: url, REDIS_URL }));

const getJson = async (port: number, path: string) => (await (await fetch(`http://127.0.0.1:${port}${path}`)).json()) as Record<string, unknown>;

t.test("concurrent reads from two devices on two nodes: one forward-only marker, the same answer on every node", async (t) => {
  const group = uniqueGroup("xread");
  const writer = await connect(t, nodes[2]!.port, group, { user: "wes" });
  const N = 40;
  for (let i = 0; i < N; i++) await writer.request({ operation: "create", type: "text", body: `m${i}` });
  const phone = await connect(t, nodes[0]!.port, group, { user: "ann" });
  const laptop = await connect(t, nodes[1]!.port, group, { user: "ann" });
  // Each device walks the seqs in its own order, both at once, without waiting for acks.
  const phoneSeqs = Array.from({ length: 20 }, (_, i) => 2 * i + 1); // 1, 3, … 39
  const laptopSeqs = Array.from({ length: 20 }, (_, i) => N - 2 * i); // 40, 38, … 2
  const acks = await Promise.all([
    Promise.all(phoneSeqs.map((seq) => phone.request({ operation: "read", seq }, 15_000))),
    Promise.all(laptopSeqs.map((seq) => laptop.request({ operation: "read", seq }, 15_000))),
  ]);
  for (const [device, list, seqs] of [["phone", acks[0], phoneSeqs], ["laptop", acks[1], laptopSeqs]] as const) {
    t.ok(list.every((a, i) => a.operation === "ack" && (a.read_seq as number) >= seqs[i]!), `${device}: every ack's marker is at least what it asked`);
  }
  t.equal(Math.max(...acks.flat().map((a) => a.read_seq as number)), N, "the highest ack is the highest seq sent");

  // Every node answers the same marker and count, from the database.
  for (const [i, n] of nodes.entries()) {
    const list = await getJson(n.port, `/api/me/groups?user=ann`);
    t.match(list, { groups: [{ group, last_seq: N, read_seq: N, unread: 0 }] }, `node ${i}: conversation list`);
    const members = (await getJson(n.port, `/api/groups/${group}/members`)).members as { user: string; read_seq: number }[];
    t.same(members.map((m) => [m.user, m.read_seq]).sort(), [["ann", N], ["wes", 0]], `node ${i}: members and markers`);
    const wes = (await getJson(n.port, `/api/me/groups?user=wes`)).groups as { unread: number }[];
    t.equal(wes[0]!.unread, 0, `node ${i}: the writer has nothing unread (all messages are his)`);
  }

  // The read events reach sockets on every node; their highest marker is the final one.
  const highest = async (c: ChatClient) => {
    let max = 0;
    const ok = await eventually(() => {
      for (const f of c.received.filter((x: Frame) => x.operation === "read")) max = Math.max(max, (f as { read_seq: number }).read_seq);
      return max === N;
    }, 5_000);
    return ok ? max : -1;
  };
  t.equal(await highest(writer), N, "a socket on the third node hears the moves, up to the final marker");
  t.equal(await highest(phone), N, "so does the other device");
  const events = writer.received.filter((f) => f.operation === "read") as { user: string; group: string }[];
  t.ok(events.every((e) => e.user === "ann" && e.group === group), "each names the reader and the group");
  t.ok(events.length <= phoneSeqs.length + laptopSeqs.length, "at most one event per move");

  // A later lower read from either device changes nothing anywhere.
  t.match(await phone.request({ operation: "read", seq: 5 }), { read_seq: N });
  await writer.request({ operation: "create", type: "text", body: "one more" });
  for (const n of nodes) t.match(await getJson(n.port, `/api/me/groups?user=ann`), { groups: [{ read_seq: N, unread: 1 }] });
});

t.test("the SDK on three devices of one user, one per node: unread counts equal every node's list after concurrent reads and deletes", async (t) => {
  const group = uniqueGroup("xunread");
  const writer = await connect(t, nodes[2]!.port, group, { user: "wes" });
  const ids: string[] = [];
  for (let i = 0; i < 30; i++) ids.push(((await writer.request({ operation: "create", type: "text", body: `m${i + 1}` })) as { message_id: string }).message_id);
  await connect(t, nodes[0]!.port, group, { user: "bea" });
  t.ok(await eventually(async () => ((await getJson(nodes[0]!.port, `/api/me/groups?user=bea`)).groups as unknown[]).length === 1), "bea is a member");
  const views: GroupView[] = [];
  for (const n of nodes) {
    const device = connection(t, { url: `http://127.0.0.1:${n.port}`, user: "bea" });
    device.connect();
    const entry = (await device.conversations()).groups.find((g) => g.group === group)!;
    views.push(await device.subscribe(group, { known: entry }));
  }
  const agree = async (what: string) => {
    const answers = await Promise.all(nodes.map(async (n) => ((await getJson(n.port, `/api/me/groups?user=bea`)).groups as { unread: number; last_seq: number }[])[0]!));
    t.same(new Set(answers.map((a) => `${a.last_seq}/${a.unread}`)).size, 1, `${what}: every node's list answers the same`);
    const { unread, last_seq } = answers[0]!;
    await until(`${what}: devices ${views.map((v) => v.unread).join(", ")} vs the lists' ${unread}`, () => views.every((v) => v.lastSeq === last_seq && v.unread === unread));
    return unread;
  };
  t.equal(await agree("from the list"), 30);
  // Two devices read at once on two nodes, each in its own order; the writer deletes unread messages meanwhile.
  await Promise.all([
    ...[3, 9, 5, 14].map((s) => views[0]!.read(s)),
    ...[12, 4, 11, 7].map((s) => views[1]!.read(s)),
    writer.request({ operation: "delete", message_id: ids[19]! }), // m20
    writer.request({ operation: "delete", message_id: ids[1]! }), // m2
  ]);
  t.equal(await agree("after concurrent reads on two nodes and two deletes"), 15, "m15 to m30 but the deleted m20");
  await views[2]!.read(29);
  await writer.request({ operation: "create", type: "text", body: "one more" });
  t.equal(await agree("after the third device read and a new message"), 2, "m30 and the new one");
});
