// A subscription gets the group's join/leave events only when its client asked for them: live, it
// follows the group's presence topic beside the group's own (and leaves both on close); while it
// resumes, it holds the join/leave frames the node hands it only if it asked, and sends them
// with the other held events as it goes live.
import t from "tap";
import { presenceTopic, Subscription, type Outlet, type SubscriptionContext, type SubscriptionOwner } from "../../src/chat/subscription.ts";
import type { ReplaySource } from "../../src/chat/replay.ts";

function setup(presence: boolean) {
  const sent: string[] = [];
  const topics: string[] = [];
  let releaseLastSeq: (seq: number) => void = () => {};
  const source: ReplaySource = {
    // The replay waits here: the subscription stays resuming until the test lets it go on.
    lastSeq: () => new Promise<number>((resolve) => (releaseLastSeq = resolve)),
    delivered: () => 0,
    deliveredExactly: () => null,
    page: async () => [],
    recent: () => undefined,
  };
  const outlet: Outlet = {
    id: "s1",
    open: true,
    send: (p) => void sent.push(String(p)),
    buffered: () => 0,
    cork: (fn) => fn(),
    live: (topic, join) => void topics.push(`${join ? "+" : "-"}${topic}`),
    end: () => {},
  };
  const node: SubscriptionContext = {
    maxHeldBytes: 1 << 20,
    replayBufferBytes: 1 << 20,
    takeHeld: () => true,
    giveHeld: () => {},
    replaySlot: (fn) => fn(),
    source,
    setResuming: () => {},
    closed: () => {},
    hit: () => {},
    replayFailed: () => {},
  };
  const owner: SubscriptionOwner = { outlet, user: "u", node, forget: () => {} };
  const sub = new Subscription("g", owner, presence);
  return { sub, sent, topics, release: (seq: number) => releaseLastSeq(seq) };
}

const JOIN = JSON.stringify({ operation: "join", group: "g", user: "bob" });
const settle = () => new Promise((r) => setImmediate(r));

t.test("live at once: the group's topic, and its presence topic only when asked", async (t) => {
  const asked = setup(true);
  asked.sub.start(null);
  t.same(asked.topics, ["+g", `+${presenceTopic("g")}`]);
  asked.sub.close();
  t.same(asked.topics.slice(2), ["-g", `-${presenceTopic("g")}`], "both left on close");

  const not = setup(false);
  not.sub.start(null);
  not.sub.close();
  t.same(not.topics, ["+g", "-g"], "no presence topic");
  t.not(presenceTopic("g"), "g");
  t.notOk(presenceTopic("g").match(/^[A-Za-z0-9._-]+$/), "no group name can be a presence topic");
});

t.test("resuming: a join/leave frame is held only when asked, and sent as the subscription goes live", async (t) => {
  for (const presence of [true, false]) {
    const { sub, sent, topics, release } = setup(presence);
    sub.start(0);
    t.equal(sub.state, "replaying");
    sub.holdPresence(JOIN);
    sub.hold(JSON.stringify({ operation: "typing", group: "g", user: "bob", typing_status: "typing" }), null);
    release(0);
    await settle();
    await settle();
    t.equal(sub.state, "live");
    const ops = sent.map((p) => JSON.parse(p).operation as string);
    t.same(ops, presence ? ["resumed", "join", "typing"] : ["resumed", "typing"], presence ? "the held join goes out" : "no join held");
    t.same(topics, presence ? ["+g", `+${presenceTopic("g")}`] : ["+g"]);
  }
});
