// `/ws/` across nodes: one multiplexed socket following 50 groups on node 1, per-group sockets of
// the same groups on nodes 2 and 3; every event reaches every socket of its group exactly once,
// naming the right group, in seq order; and 20 groups resume at once after the node restarts,
// each contiguous from its own since.
import t from "tap";
import { connect, connectMux, type Frame } from "../helpers/client.ts";
import { spawnNode, startInProcess, type NodeProcess } from "../helpers/node.ts";
import { uniqueGroup, untilReady } from "../helpers/probe.ts";
import { freshDatabase, REDIS_URL, requireRedis } from "../helpers/services.ts";

await requireRedis();
const url = await freshDatabase(t);

const isStored = (f: Frame) => f.operation === "create" || f.operation === "reply" || f.operation === "update" || f.operation === "delete";
const groupOf = (f: Frame) => (f as { group?: string }).group;

t.test("one /ws/ socket in 50 groups on node 1, per-group sockets on nodes 2 and 3: each event once, with its group", async (t) => {
  const nodes: Awaited<ReturnType<typeof startInProcess>>[] = [];
  for (let i = 0; i < 3; i++) nodes.push(await startInProcess(t, { DATABASE_URL: url, REDIS_URL }));
  const prefix = uniqueGroup("x50");
  const groups = Array.from({ length: 50 }, (_, i) => `${prefix}-${i}`);
  const mux = await connectMux(t, nodes[0]!.port, { user: "hub" });
  await Promise.all(groups.map((group) => mux.request({ operation: "subscribe", group }, 20_000)));
  const on2 = await Promise.all(groups.map((g, i) => connect(t, nodes[1]!.port, g, { user: `b${i}` })));
  const on3 = await Promise.all(groups.map((g, i) => connect(t, nodes[2]!.port, g, { user: `c${i}` })));
  const PER = 3;
  // Writers on nodes 2 and 3 and on the /ws/ socket itself, all at once.
  await Promise.all(groups.map(async (g, i) => {
    await on2[i]!.request({ operation: "create", type: "text", body: `from 2 in ${g}` }, 20_000);
    await on3[i]!.request({ operation: "create", type: "text", body: `from 3 in ${g}` }, 20_000);
    await mux.request({ operation: "create", group: g, type: "text", body: `from 1 in ${g}` }, 20_000);
    await on2[i]!.request({ operation: "typing", typing_status: "typing" }, 20_000);
  }));
  const expected = groups.length * PER;
  const muxEvents: Frame[] = [];
  while (muxEvents.length < expected) muxEvents.push(await mux.next(isStored, 20_000));
  const seqsBy = new Map<string, number[]>();
  for (const e of muxEvents) seqsBy.set(groupOf(e)!, [...(seqsBy.get(groupOf(e)!) ?? []), (e as { seq: number }).seq]);
  t.same([...seqsBy.keys()].sort(), [...groups].sort(), "the /ws/ socket heard every group");
  t.ok([...seqsBy.values()].every((s) => s.join() === "1,2,3"), "each group's events once, in seq order");
  const typings = [];
  while (typings.length < groups.length) typings.push(await mux.next((f) => f.operation === "typing", 20_000));
  t.same(new Set(typings.map(groupOf)).size, groups.length, "a typing event per group, each naming its group");
  for (const [name, socks] of [["node 2", on2], ["node 3", on3]] as const) {
    let ok = true;
    for (const [i, s] of socks.entries()) {
      const got: Frame[] = [];
      while (got.length < PER) got.push(await s.next(isStored, 20_000));
      ok &&= got.every((f) => groupOf(f) === groups[i]) && got.map((f) => (f as { seq: number }).seq).join() === "1,2,3";
    }
    t.ok(ok, `${name}: every per-group socket got its group's three events, once, in order`);
  }
  await new Promise((r) => setTimeout(r, 300));
  t.same(mux.received.filter(isStored), [], "no duplicates on the /ws/ socket");
  t.ok(on2.every((s) => s.received.filter(isStored).length === 0), "none on node 2");
});

t.test("20 groups resume at once after their node restarts, each contiguous from its own since", async (t) => {
  const spawn = () => spawnNode(t, { DATABASE_URL: url, REDIS_URL });
  let n1: NodeProcess = await spawn();
  const n2 = await spawn();
  await Promise.all([untilReady(n1.port), untilReady(n2.port)]);
  const prefix = uniqueGroup("r20");
  const groups = Array.from({ length: 20 }, (_, i) => `${prefix}-${i}`);
  const writer = await connectMux(t, n2.port, { user: "writer" });
  await Promise.all(groups.map((group) => writer.request({ operation: "subscribe", group })));
  const write = (k: number) => Promise.all(groups.map((g, i) => Promise.all(Array.from({ length: k + (i % 3) }, (_, j) => writer.request({ operation: "create", group: g, type: "text", body: `${g} ${j}` }, 20_000)))));
  await write(2);
  const reader = await connectMux(t, n1.port, { user: "reader" });
  await Promise.all(groups.map((group) => reader.request({ operation: "subscribe", group, since: 0 }, 20_000)));
  // The reader has each group up to some seq: what it last processed (different per group).
  const last = new Map<string, number>();
  for (const [i, g] of groups.entries()) {
    for (let k = 0; k < 2 + (i % 3); k++) {
      const f = await reader.next((x) => isStored(x) && groupOf(x) === g, 20_000);
      last.set(g, (f as { seq: number }).seq);
    }
  }
  n1.child.kill("SIGKILL");
  await n1.exited;
  await write(3); // written while the reader's node is down
  n1 = await spawn();
  await untilReady(n1.port);
  const again = await connectMux(t, n1.port, { user: "reader" });
  await Promise.all(groups.map((group) => again.request({ operation: "subscribe", group, since: last.get(group)! }, 20_000)));
  for (const [i, g] of groups.entries()) {
    const total = (2 + (i % 3)) + (3 + (i % 3));
    const got: number[] = [];
    for (;;) {
      const f = await again.next((x) => (isStored(x) || x.operation === "resumed") && groupOf(x) === g, 20_000);
      if (f.operation === "resumed") break;
      got.push((f as { seq: number }).seq);
    }
    t.same(got, Array.from({ length: total - last.get(g)! }, (_, k) => last.get(g)! + 1 + k), `${g}: contiguous from its since ${last.get(g)}`);
  }
});
