// Resume with ?since=: every stored event after since, in order and in its live shape with the
// message's current state, then `resumed`, then live events, with no gap and no repeat at the
// seam even while other clients keep sending.
import t from "tap";
import { connect, upgradeStatus, wsUrl, type ChatClient, type Frame } from "../helpers/client.ts";
import { startInProcess } from "../helpers/node.ts";
import { freshDatabase } from "../helpers/services.ts";

const url = await freshDatabase(t);
const node = await startInProcess(t, { DATABASE_URL: url });
const seqs = (frames: Frame[]) => frames.flatMap((f) => ("seq" in f && f.operation !== "ack" && f.operation !== "resumed" ? [f.seq] : []));
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Frames until (and including) the `resumed` marker. */
async function untilResumed(c: ChatClient): Promise<Frame[]> {
  const out: Frame[] = [];
  for (;;) {
    const f = await c.next();
    out.push(f);
    if (f.operation === "resumed") return out;
  }
}

t.test("since replays every later event in its live shape and current state, then resumed", async (t) => {
  const a = await connect(t, node.port, "resume", { user: "alice" });
  const m1 = await a.request({ operation: "create", type: "text", body: "one" }); // seq 1
  const m2 = await a.request({ operation: "create", type: "text", body: "two" }); // seq 2
  await a.request({ operation: "update", message_id: m1.message_id, body: "one, edited" }); // seq 3
  await a.request({ operation: "reply", type: "text", body: "re", message_id: m1.message_id }); // seq 4
  await a.request({ operation: "delete", message_id: m2.message_id }); // seq 5
  await a.request({ operation: "seen", message_id: m1.message_id });
  await a.request({ operation: "typing", typing_status: "typing" });

  const b = await connect(t, node.port, "resume", { user: "bob", since: "1" });
  const replay = await untilResumed(b);
  t.same(seqs(replay), [2, 3, 4, 5], "events 2..5, in order");
  t.same(replay.map((f) => f.operation), ["create", "update", "reply", "delete", "resumed"], "stored events only: no seen, no typing");
  t.match(replay[0], { operation: "create", seq: 2, message: { id: m2.message_id, deleted: true, body: null } }, "a deleted message replays as a tombstone");
  t.match(replay[1], { operation: "update", seq: 3, message: { id: m1.message_id, body: "one, edited" } });
  t.same(replay[3], { operation: "delete", seq: 5, group: "resume", message_id: m2.message_id, user: "alice", message_seq: 2, author: "alice" });
  t.same(replay[4], { operation: "resumed", group: "resume", seq: 5 });

  await a.request({ operation: "create", type: "text", body: "live" });
  t.match(await b.next(), { operation: "create", seq: 6, message: { body: "live" } }, "then live events");
  await b.nothingMore(t);

  const zero = await connect(t, node.port, "resume", { user: "carol", since: "0" });
  t.same(seqs(await untilResumed(zero)), range(1, 6), "since=0 replays everything");
  const current = await connect(t, node.port, "resume", { user: "dave", since: "6" });
  t.same(await current.next(), { operation: "resumed", group: "resume", seq: 6 }, "nothing to replay: resumed at since");
});

t.test("since beyond the group's last seq is an error, then live events", async (t) => {
  const a = await connect(t, node.port, "ahead", { user: "a" });
  await a.request({ operation: "create", type: "text", body: "x" });
  const b = await connect(t, node.port, "ahead", { user: "b", since: "10" });
  t.match(await b.next(), { operation: "error", code: "bad_request", message: /beyond/ });
  await a.request({ operation: "create", type: "text", body: "y" });
  t.match(await b.next(), { operation: "create", seq: 2 });
  const empty = await connect(t, node.port, "never-written", { user: "b", since: "0" });
  t.same(await empty.next(), { operation: "resumed", group: "never-written", seq: 0 }, "since=0 on an empty group");
});

t.test("an invalid since is refused before the upgrade", async (t) => {
  for (const bad of ["-1", "1.5", "abc", "", "99999999999", "1e3"]) {
    t.equal(await upgradeStatus(`${wsUrl(node.port, "resume")}?user=x&since=${encodeURIComponent(bad)}`), 400, `since=${bad}`);
  }
});

t.test("no gap and no repeat at the seam while others keep sending", async (t) => {
  const group = "seam";
  const senders = await Promise.all([1, 2, 3].map((i) => connect(t, node.port, group, { user: `s${i}` })));
  const burst = async (n: number) => {
    await Promise.all(senders.map(async (s, i) => {
      for (let k = 0; k < n; k++) await s.request({ operation: "create", type: "text", body: `s${i}-${k}` });
    }));
  };
  await burst(40);
  // Connect resumers while the senders are mid-burst, each from a different point.
  const sending = burst(40);
  const resumers = await Promise.all([0, 17, 60, 100].map((since) => connect(t, node.port, group, { user: "r", since: String(since) }).then((c) => ({ c, since }))));
  await sending;
  const total = 240;
  for (const { c, since } of resumers) {
    const got: number[] = [];
    while (got.length < total - since) {
      const f = await c.next((x) => x.operation !== "resumed" && x.operation !== "typing");
      if ("seq" in f && f.operation !== "ack") got.push(f.seq);
    }
    t.same(got, range(since + 1, total), `resumed from ${since}: ${since + 1}..${total} exactly once, in order`);
    const marker = await c.next((x) => x.operation === "resumed");
    t.ok(marker.operation === "resumed" && marker.seq >= since && marker.seq <= total, "one resumed marker within the range");
    await c.nothingMore(t, 100);
  }
});
