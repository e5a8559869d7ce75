// The EventBus contract (src/bus/bus.ts), one suite run against every implementation: the
// in-process bus, the Redis bus and the Redis Cluster bus. Each guarantee the seam states is a
// test here; implementation files only say how to build a bus.
import type { Test } from "tap";
import type { BusHandler, EventBus } from "../../src/bus/bus.ts";
import { uniqueGroup } from "../helpers/probe.ts";

export interface BusUnderTest {
  /** A new, ready bus (a "node"); closed by the suite. */
  make(onPayload: BusHandler): Promise<EventBus>;
  /** Whether two buses made here reach each other (false for the in-process bus). */
  shared: boolean;
}

/** What one bus heard, as text, per group, in arrival order. */
class Heard {
  readonly byGroup = new Map<string, string[]>();
  private waiters: (() => void)[] = [];
  readonly handler: BusHandler = (group, payload) => {
    const text = typeof payload === "string" ? payload : Buffer.from(payload).toString("utf8");
    const list = this.byGroup.get(group) ?? [];
    list.push(text);
    this.byGroup.set(group, list);
    for (const w of this.waiters.splice(0)) w();
  };
  of(group: string): string[] {
    return this.byGroup.get(group) ?? [];
  }
  /** Resolves true once `pred` holds, false after `ms`. */
  async until(pred: () => boolean, ms = 5_000): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!pred()) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((r) => {
        const timer = setTimeout(r, Math.min(left, 50));
        this.waiters.push(() => {
          clearTimeout(timer);
          r();
        });
      });
    }
    return true;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function busContract(t: Test, impl: BusUnderTest): void {
  const node = async (t: Test) => {
    const heard = new Heard();
    const bus = await impl.make(heard.handler);
    t.teardown(() => bus.close());
    return { bus, heard };
  };

  t.test("a payload published after subscribe resolves reaches the subscriber once, byte for byte, the publisher included", async (t) => {
    const a = await node(t);
    const g = uniqueGroup("bus-once");
    await a.bus.subscribe(g);
    const payload = JSON.stringify({ operation: "typing", user: "zoë ✓ \u{1F600}", typing_status: "typing" });
    await a.bus.publish(g, payload);
    t.ok(await a.heard.until(() => a.heard.of(g).length >= 1), "delivered");
    await sleep(100);
    t.same(a.heard.of(g), [payload], "exactly once, unchanged");
    t.ok(a.bus.isUp(), "isUp while connected");
  });

  t.test("one publisher's payloads to a group arrive in publish order", async (t) => {
    const a = await node(t);
    const g = uniqueGroup("bus-order");
    await a.bus.subscribe(g);
    const sent = Array.from({ length: 500 }, (_, i) => `{"n":${i}}`);
    await Promise.all(sent.map((p) => a.bus.publish(g, p)));
    t.ok(await a.heard.until(() => a.heard.of(g).length >= sent.length), "all delivered");
    t.same(a.heard.of(g), sent, "in order, none repeated");
  });

  t.test("after unsubscribe nothing arrives; other groups are unaffected", async (t) => {
    const a = await node(t);
    const [g, h] = [uniqueGroup("bus-unsub"), uniqueGroup("bus-other")];
    await a.bus.subscribe(g);
    await a.bus.subscribe(h);
    await a.bus.unsubscribe(g);
    await a.bus.publish(g, "gone");
    await a.bus.publish(h, "kept");
    t.ok(await a.heard.until(() => a.heard.of(h).length >= 1), "the other group still arrives");
    await sleep(100);
    t.same(a.heard.of(g), [], "nothing of the unsubscribed group");
  });

  t.test("subscribe and unsubscribe of one group take effect in call order", async (t) => {
    const a = await node(t);
    const g = uniqueGroup("bus-calls");
    // Not awaited in between: the last call wins.
    void a.bus.subscribe(g);
    void a.bus.unsubscribe(g);
    await a.bus.subscribe(g);
    await a.bus.publish(g, "1");
    t.ok(await a.heard.until(() => a.heard.of(g).length >= 1), "subscribed after subscribe, unsubscribe, subscribe");
    void a.bus.unsubscribe(g);
    void a.bus.subscribe(g);
    await a.bus.unsubscribe(g);
    await a.bus.publish(g, "2");
    await sleep(150);
    t.same(a.heard.of(g), ["1"], "unsubscribed after unsubscribe, subscribe, unsubscribe");
  });

  if (!impl.shared) return;

  t.test("every subscribed node hears a payload exactly once; an unsubscribed node does not", async (t) => {
    const [a, b, c] = [await node(t), await node(t), await node(t)];
    // Many groups, so that on a cluster they hash to every shard.
    const groups = Array.from({ length: 30 }, () => uniqueGroup("bus-fan"));
    for (const g of groups) {
      await a.bus.subscribe(g);
      await b.bus.subscribe(g);
    }
    for (const g of groups) for (let i = 0; i < 5; i++) await (i % 2 ? a : c).bus.publish(g, `${g}#${i}`);
    const want = (g: string) => Array.from({ length: 5 }, (_, i) => `${g}#${i}`);
    const done = () => groups.every((g) => a.heard.of(g).length >= 5 && b.heard.of(g).length >= 5);
    t.ok(await a.heard.until(done, 10_000) && (await b.heard.until(done, 10_000)), "both subscribers heard every payload");
    await sleep(150);
    t.same(groups.filter((g) => a.heard.of(g).join() !== want(g).join() || b.heard.of(g).join() !== want(g).join()), [], "each group's payloads once, in order, on both");
    t.same([...c.heard.byGroup.keys()], [], "the publisher that did not subscribe heard nothing");
  });
}
