// One suite for every Presence implementation: what src/presence/presence.ts promises. Each
// implementation's test file hands in a factory; `node()` makes another node sharing the same
// presence (null for the in-process one, which serves one node).
import type { Test } from "tap";
import type { Presence, PresenceChange } from "../../src/presence/presence.ts";
import { eventually, uniqueGroup } from "../helpers/probe.ts";

export const GRACE_MS = 300;

export interface Recorded {
  presence: Presence;
  changes: PresenceChange[];
}

export type MakeNode = (t: Test, onChange: (c: PresenceChange) => void) => Promise<Presence>;

/** A node recording the changes of one group (other tests' nodes are reaped by this one too). */
async function node(t: Test, make: MakeNode, group: string): Promise<Recorded> {
  const changes: PresenceChange[] = [];
  const presence = await make(t, (c) => c.group === group && changes.push(c));
  return { presence, changes };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const brief = (cs: PresenceChange[]) => cs.map((c) => `${c.kind} ${c.user} ${c.count}`);

export function presenceSuite(t: Test, make: MakeNode, opts: { cluster: boolean }): void {
  t.test("several sockets of one user count once: one join, count 1", async (t) => {
    const g = uniqueGroup("pres");
    const a = await node(t, make, g);
    for (let i = 0; i < 3; i++) a.presence.open(g, "alice");
    t.ok(await eventually(() => a.changes.length >= 1, 3_000), "join arrives");
    await sleep(50);
    t.same(brief(a.changes), ["join alice 1"]);
    t.equal(a.changes[0]!.group, g, "the change names its group");
    const snap = await a.presence.snapshot(g, 100);
    t.equal(snap.count, 1);
    t.same(snap.users.map((u) => u.user), ["alice"]);
    t.ok(Math.abs(snap.users[0]!.since - Date.now()) < 5_000, "since is when she became present");
    t.equal(a.presence.held, 1);
  });

  t.test("a socket closing while another stays sends nothing; the last one sends one leave after the grace", async (t) => {
    const g = uniqueGroup("pres");
    const a = await node(t, make, g);
    a.presence.open(g, "bob");
    a.presence.open(g, "bob");
    t.ok(await eventually(() => a.changes.length === 1, 3_000));
    a.presence.close(g, "bob");
    await sleep(GRACE_MS + 200);
    t.same(brief(a.changes), ["join bob 1"], "one tab closing: nothing");
    const closedAt = Date.now();
    a.presence.close(g, "bob");
    await sleep(GRACE_MS / 2);
    t.equal(a.changes.length, 1, "no leave within the grace");
    t.ok(await eventually(() => a.changes.length === 2, 3_000), "leave after the grace");
    t.ok(Date.now() - closedAt >= GRACE_MS, "not before the grace");
    t.same(brief(a.changes), ["join bob 1", "leave bob 0"]);
    t.same(await a.presence.snapshot(g, 100), { count: 0, users: [] });
  });

  t.test("a reconnect within the grace sends nothing", async (t) => {
    const g = uniqueGroup("pres");
    const a = await node(t, make, g);
    a.presence.open(g, "carol");
    t.ok(await eventually(() => a.changes.length === 1, 3_000));
    a.presence.close(g, "carol");
    await sleep(GRACE_MS / 3);
    a.presence.open(g, "carol");
    await sleep(GRACE_MS + 200);
    t.same(brief(a.changes), ["join carol 1"]);
    t.equal((await a.presence.snapshot(g, 10)).count, 1);
  });

  t.test("snapshot: count exact, at most `limit` users, longest present first", async (t) => {
    const g = uniqueGroup("pres");
    const a = await node(t, make, g);
    for (let i = 0; i < 12; i++) {
      a.presence.open(g, `u${i}`);
      await sleep(3);
    }
    t.ok(await eventually(() => a.changes.length === 12, 3_000));
    t.same(a.changes.map((c) => c.count), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], "each join carries the count after it");
    const snap = await a.presence.snapshot(g, 5);
    t.equal(snap.count, 12);
    t.same(snap.users.map((u) => u.user), ["u0", "u1", "u2", "u3", "u4"]);
    t.same(await a.presence.snapshot(uniqueGroup("empty"), 5), { count: 0, users: [] }, "an unknown group is empty");
    const other = uniqueGroup("pres");
    a.presence.open(other, "u0");
    t.ok(await eventually(async () => (await a.presence.snapshot(other, 5)).count === 1, 3_000), "groups are separate");
    t.equal((await a.presence.snapshot(g, 5)).count, 12);
  });

  if (!opts.cluster) return;

  t.test("two nodes: the same user on both counts once; one node letting go sends nothing", async (t) => {
    const g = uniqueGroup("pres");
    const a = await node(t, make, g);
    const b = await node(t, make, g);
    a.presence.open(g, "dave");
    t.ok(await eventually(() => a.changes.length === 1, 3_000));
    b.presence.open(g, "dave");
    await sleep(100);
    t.equal(b.changes.length, 0, "no second join");
    t.equal((await b.presence.snapshot(g, 10)).count, 1);
    a.presence.close(g, "dave");
    await sleep(GRACE_MS + 300);
    t.same([...brief(a.changes), ...brief(b.changes)], ["join dave 1"], "no leave while b holds him");
    b.presence.close(g, "dave");
    t.ok(await eventually(() => b.changes.length === 1, 3_000));
    t.same(brief(b.changes), ["leave dave 0"], "the last holder sends the leave");
    t.equal(a.changes.length, 1);
  });

  t.test("two nodes: reconnecting to the other node within the grace sends nothing", async (t) => {
    const g = uniqueGroup("pres");
    const a = await node(t, make, g);
    const b = await node(t, make, g);
    a.presence.open(g, "erin");
    t.ok(await eventually(() => a.changes.length === 1, 3_000));
    a.presence.close(g, "erin");
    await sleep(GRACE_MS / 3);
    b.presence.open(g, "erin");
    await sleep(GRACE_MS + 300);
    t.same([...brief(a.changes), ...brief(b.changes)], ["join erin 1"]);
    const snap = await a.presence.snapshot(g, 10);
    t.equal(snap.count, 1);
    t.equal(snap.users[0]!.user, "erin");
  });

  t.test("a stopped node's users leave after the grace, through a survivor, unless they came back", async (t) => {
    const g = uniqueGroup("pres");
    const a = await node(t, make, g);
    const b = await node(t, make, g);
    a.presence.open(g, "fay");
    a.presence.open(g, "gus");
    t.ok(await eventually(() => a.changes.length === 2, 3_000));
    const stoppedAt = Date.now();
    await a.presence.stop();
    b.presence.open(g, "gus"); // gus reconnected to b
    t.ok(await eventually(() => b.changes.length >= 1, 5_000), "b announces fay's leave");
    t.ok(Date.now() - stoppedAt >= GRACE_MS - 50, "after the grace");
    await sleep(300);
    t.same(brief(b.changes), ["leave fay 1"], "gus stays: no leave, no join");
    t.same((await b.presence.snapshot(g, 10)).users.map((u) => u.user), ["gus"]);
  });
}
