// The Redis Cluster bus keeps the EventBus contract, on a private 3-primary/3-replica cluster;
// and its channels are the sharded `chat:{<group>}` ones, subscribed on the group's own shard.
import t from "tap";
import calculateSlot from "cluster-key-slot";
import { Redis } from "ioredis";
import { RedisClusterBus } from "../../src/bus/redis-cluster-bus.ts";
import { uniqueGroup } from "../helpers/probe.ts";
import { privateRedisCluster, type PrivateRedisCluster } from "../helpers/redis-cluster.ts";
import { busContract } from "./contract.ts";

let cluster!: PrivateRedisCluster;
t.before(async () => {
  cluster = await privateRedisCluster(t);
});
const make = async (onPayload: (g: string, p: Uint8Array | string) => void) => {
  const nodes = cluster.nodesEnv.split(",").slice(0, 1).map((a) => ({ host: "127.0.0.1", port: Number(a.split(":")[1]) }));
  const bus = new RedisClusterBus({ nodes }, onPayload);
  await bus.ready();
  return bus;
};

busContract(t, { shared: true, make });

t.test("a group's shard channel chat:{<group>} is subscribed on the primary that owns the group's slot, and only there", async (t) => {
  const bus = await make(() => {});
  t.teardown(() => bus.close());
  const g = uniqueGroup("shard");
  await bus.subscribe(g);
  const owner = await cluster.primaryOf(`{${g}}`);
  const counts = await Promise.all(
    cluster.nodes.map(async (n) => {
      const r = new Redis(n.port, "127.0.0.1", { maxRetriesPerRequest: 0 });
      try {
        const [, count] = (await r.call("PUBSUB", "SHARDNUMSUB", `chat:{${g}}`)) as [string, number];
        return [n.port, Number(count)] as const;
      } finally {
        r.disconnect();
      }
    }),
  );
  t.same(counts.filter(([, c]) => c > 0).map(([p]) => p), [owner], "one subscription, on the owning primary");
  await bus.unsubscribe(g);
  const r = new Redis(owner, "127.0.0.1", { maxRetriesPerRequest: 0 });
  t.teardown(() => void r.disconnect());
  const [, after] = (await r.call("PUBSUB", "SHARDNUMSUB", `chat:{${g}}`)) as [string, number];
  t.equal(Number(after), 0, "gone after unsubscribe");
});

t.test("publishes go straight to the slot's primary; one that primary rejects (MOVED) goes again through ioredis' routing and arrives once", async (t) => {
  const heard: string[] = [];
  const bus = await make((_g, p) => heard.push(Buffer.from(p as Uint8Array).toString()));
  t.teardown(() => bus.close());
  const g = uniqueGroup("direct");
  await bus.subscribe(g);
  // The first publish to a primary whose connection ioredis has not opened yet takes the routed path (which opens it).
  await bus.publish(g, "first");
  t.equal(bus.publishes.direct + bus.publishes.routed, 1);
  bus.publishes.direct = 0;
  bus.publishes.routed = 0;
  for (let i = 0; i < 20; i++) await bus.publish(g, `d${i}`);
  t.equal(bus.publishes.direct, 20, "all 20 sent on the primary's own connection");
  t.equal(bus.publishes.routed, 0);
  // ioredis' slot map now names the wrong primary for the group's slot: the direct send gets MOVED.
  const internals = (bus as unknown as { cluster: { slots: string[][] } }).cluster;
  const slot = calculateSlot(`chat:{${g}}`);
  const owner = await cluster.primaryOf(`{${g}}`);
  const other = (await cluster.primaries()).find((p) => p !== owner)!;
  // The wrong primary's connection must be open for the direct path to take it: publish once to a group it owns.
  let elsewhere = uniqueGroup("other");
  while ((await cluster.primaryOf(`{${elsewhere}}`)) !== other) elsewhere = uniqueGroup("other");
  await bus.publish(elsewhere, "warm");
  t.equal(bus.publishes.direct + bus.publishes.routed, 21);
  bus.publishes.direct = 0;
  bus.publishes.routed = 0;
  internals.slots[slot] = [`127.0.0.1:${other}`];
  await bus.publish(g, "after-moved");
  t.equal(bus.publishes.direct, 1, "tried on the wrong primary first");
  t.equal(bus.publishes.routed, 1, "then once through the routed path");
  for (let i = 0; i < 50 && heard.length < 22; i++) await new Promise((r) => setTimeout(r, 20));
  t.same(heard, ["first", ...Array.from({ length: 20 }, (_, i) => `d${i}`), "after-moved"], "every payload heard once, in order");
});

t.test("each shard's subscriber connection hands its messages straight to the bus, undecoded, each once and in order", async (t) => {
  const heard = new Map<string, string[]>();
  const bus = await make((g, p) => heard.set(g, [...(heard.get(g) ?? []), Buffer.from(p as Uint8Array).toString()]));
  t.teardown(() => bus.close());
  // A group on every primary.
  const primaries = await cluster.primaries();
  const groups = new Map<number, string>();
  while (groups.size < primaries.length) {
    const g = uniqueGroup("recv");
    groups.set(await cluster.primaryOf(`{${g}}`), g);
  }
  for (const g of groups.values()) await bus.subscribe(g);
  t.equal(bus.directReceivers(), 3, "all three shard connections taken over");
  const subs = (bus as unknown as { cluster: { shardedSubscribers: { shardedSubscribers: Map<string, { instance: NodeJS.EventEmitter }> } } }).cluster.shardedSubscribers.shardedSubscribers;
  t.same([...subs.values()].map((s) => s.instance.listenerCount("smessage")), [0, 0, 0], "no string listener: ioredis decodes nothing");
  for (let i = 0; i < 10; i++) for (const g of groups.values()) await bus.publish(g, `m${i}`);
  const all = () => [...groups.values()].every((g) => (heard.get(g)?.length ?? 0) >= 10);
  for (let i = 0; i < 100 && !all(); i++) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 100)); // a duplicate would arrive by now
  for (const g of groups.values()) t.same(heard.get(g), Array.from({ length: 10 }, (_, i) => `m${i}`), `${g}: each once, in order`);
});

t.test("directPublish: false keeps every publish on ioredis' routed path", async (t) => {
  const nodes = cluster.nodesEnv.split(",").slice(0, 1).map((a) => ({ host: "127.0.0.1", port: Number(a.split(":")[1]) }));
  let heard = 0;
  const bus = new RedisClusterBus({ nodes, directPublish: false }, () => heard++);
  t.teardown(() => bus.close());
  await bus.ready();
  const g = uniqueGroup("routed");
  await bus.subscribe(g);
  for (let i = 0; i < 5; i++) await bus.publish(g, `r${i}`);
  for (let i = 0; i < 50 && heard < 5; i++) await new Promise((r) => setTimeout(r, 20));
  t.same(bus.publishes, { direct: 0, routed: 5 });
  t.equal(heard, 5);
});

t.test("the slot watch leaves a right slot map alone, and has ioredis refresh a wrong one; publishes then go direct again", async (t) => {
  const nodes = cluster.nodesEnv.split(",").slice(0, 1).map((a) => ({ host: "127.0.0.1", port: Number(a.split(":")[1]) }));
  const heard: string[] = [];
  const bus = new RedisClusterBus({ nodes, slotCheckMs: 100 }, (_g, p) => heard.push(Buffer.from(p as Uint8Array).toString()));
  t.teardown(() => bus.close());
  await bus.ready();
  const internals = (bus as unknown as { cluster: { slots: string[][]; on(e: string, f: () => void): void } }).cluster;
  let refreshes = 0;
  internals.on("refresh", () => refreshes++);
  await new Promise((r) => setTimeout(r, 1_000));
  t.equal(bus.slotRefreshes, 0, "ten checks of a right map: no refresh asked");
  t.equal(refreshes, 0, "and ioredis refreshed nothing");

  const g = uniqueGroup("watch");
  await bus.subscribe(g);
  const slot = calculateSlot(`chat:{${g}}`);
  const owner = await cluster.primaryOf(`{${g}}`);
  const other = (await cluster.primaries()).find((p) => p !== owner)!;
  internals.slots[slot] = [`127.0.0.1:${other}`];
  for (let i = 0; i < 100 && internals.slots[slot]![0] !== `127.0.0.1:${owner}`; i++) await new Promise((r) => setTimeout(r, 20));
  t.equal(internals.slots[slot]![0], `127.0.0.1:${owner}`, "the slot's primary is right again");
  t.ok(bus.slotRefreshes >= 1, "the watch asked for the refresh");
  await bus.publish(g, "x"); // opens the owner's connection if the routed path has to
  bus.publishes.direct = 0;
  bus.publishes.routed = 0;
  await bus.publish(g, "after");
  t.same(bus.publishes, { direct: 1, routed: 0 }, "sent straight to the right primary");
  for (let i = 0; i < 50 && heard.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
  t.same(heard, ["x", "after"]);
});

// Last: it kills a primary of this file's cluster.
t.test("while a group's shard has no primary, its publishes wait within the byte budget and the excess is refused at once", async (t) => {
  const BUDGET = 4_096;
  const heard: string[] = [];
  const nodes = cluster.nodes.filter((n) => n.running()).map((n) => ({ host: "127.0.0.1", port: n.port }));
  const dropped: number[] = [];
  const bus = new RedisClusterBus({ nodes }, (_g, p) => heard.push(Buffer.from(p as Uint8Array).toString()), { onPublishDropped: () => dropped.push(1) }, BUDGET);
  t.teardown(() => bus.close());
  await bus.ready();
  const g = uniqueGroup("budget");
  await bus.subscribe(g);
  await cluster.kill(await cluster.primaryOf(`{${g}}`));
  const outcomes = await Promise.all(
    Array.from({ length: 100 }, async (_, i) => {
      const p = bus.publish(g, `${i}:${"x".repeat(100)}`);
      // The budget, plus at most a quarter of it set aside (each group's newest dropped publish).
      if (i === 99) t.ok(bus.queuedBytes <= BUDGET * 1.25, `at most ${BUDGET} + ${BUDGET / 4} bytes held (${bus.queuedBytes})`);
      return p.then(() => "sent", (err: Error) => err.constructor.name);
    }),
  );
  const refused = outcomes.filter((o) => o === "PublishBudgetExceeded").length;
  t.ok(refused >= 60, `${refused} of 100 publishes refused past the budget`);
  t.equal(dropped.length, refused, "each refusal is reported");
  const sent = outcomes.filter((o) => o === "sent").length;
  // The rest were held: sent once a replica was promoted, or failed when ioredis' retries ran out
  // first. Either way they settled, and the bus is at most once (the sequencer repairs the rest).
  t.comment(`held ${100 - refused}: ${sent} sent after the promotion, ${100 - refused - sent} failed after ioredis' retries; ${heard.length} heard`);
  for (let i = 0; i < 100 && bus.queuedBytes > 0; i++) await new Promise((r) => setTimeout(r, 100));
  t.equal(bus.queuedBytes, 0, "nothing held afterwards (what was set aside went out too)");
  // The promoted replica's subscriber connection is a new one: taken over too, and heard once.
  for (let i = 0; i < 100 && bus.directReceivers() < 3; i++) await new Promise((r) => setTimeout(r, 50));
  t.equal(bus.directReceivers(), 3, "the new primary's subscriber connection hands its messages straight to the bus");
  await bus.publish(g, "after-failover");
  const count = () => heard.filter((p) => p === "after-failover").length;
  for (let i = 0; i < 50 && count() === 0; i++) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 100)); // a duplicate would arrive by now
  t.equal(count(), 1, "a publish after the failover is heard once");
});
