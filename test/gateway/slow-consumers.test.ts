// The slow-consumer check on its own (no sockets): a group's sockets are checked once per check
// interval however many events it got, and at once when the events since its last check reach
// half the limit; a socket over the limit is reported once per check. Once a check finds every
// watched socket empty with nothing but group events sent, nothing is checked until the events
// since reach half the limit, a frame goes to one socket, or a socket is watched.
import { mock } from "node:test";
import t, { type Test } from "tap";
import { SlowConsumers } from "../../src/gateway/backpressure.ts";

class Sock {
  reads = 0;
  constructor(public bytes = 0) {}
  buffered(): number {
    this.reads++;
    return this.bytes;
  }
}
const EVERY_MS = 30;
const interval = () => new Promise((r) => setTimeout(r, EVERY_MS * 3));
const turn = () => new Promise((r) => setImmediate(r));
/**
 * The check's timer on a mocked clock, for the tests that say what happens within one interval:
 * their loop turns take however long a busy machine makes them. (performance.now() stays real;
 * these tests do not reach the sweep, which reads it.)
 */
function mockedTimers(t: Test): void {
  mock.timers.enable({ apis: ["setTimeout"] });
  t.teardown(() => mock.timers.reset());
}

t.test("many events over several turns: each socket is read once, within the interval", async (t) => {
  mockedTimers(t);
  const slow: Sock[] = [];
  const s = new SlowConsumers<Sock>(1_000, (x) => slow.push(x), EVERY_MS);
  const a = new Sock(10);
  const b = new Sock(2_000);
  s.watch("g", a);
  s.watch("g", b);
  for (let i = 0; i < 50; i++) {
    s.published("g", 5);
    if (i % 10 === 0) await turn();
  }
  mock.timers.tick(EVERY_MS - 1);
  t.equal(a.reads + b.reads, 0, "nothing read while the events come");
  mock.timers.tick(1);
  t.same([a.reads, b.reads], [1, 1], "one read per socket, an interval after the first event");
  t.same(slow, [b], "the socket over the limit is reported");
  mock.timers.tick(EVERY_MS * 3);
  t.same([a.reads, b.reads], [1, 1], "no events, no more reads");
});

t.test("the events since the last check reaching half the limit check the group at once", async (t) => {
  mockedTimers(t);
  const slow: Sock[] = [];
  const s = new SlowConsumers<Sock>(1_000, (x) => slow.push(x), EVERY_MS);
  const a = new Sock(1_200);
  s.watch("g", a);
  s.published("g", 300);
  await turn();
  t.equal(a.reads, 0);
  s.published("g", 200);
  t.equal(a.reads, 1, "500 bytes since the last check: checked now");
  t.same(slow, [a]);
  s.published("g", 100);
  mock.timers.tick(EVERY_MS);
  t.equal(a.reads, 2, "and again within the interval for what came after");
});

t.test("groups are checked separately; an unwatched socket is not read", async (t) => {
  const s = new SlowConsumers<Sock>(1_000, () => {}, EVERY_MS);
  const a = new Sock();
  const b = new Sock();
  s.watch("g1", a);
  s.watch("g2", b);
  s.published("g1", 1);
  await interval();
  t.same([a.reads, b.reads], [1, 0], "only g1's sockets");
  s.unwatch("g1", a);
  s.published("g1", 1);
  await interval();
  t.equal(a.reads, 1, "not read once unwatched");
});

/** Three empty sockets, a and b in g1, c in g2, and a counter of frames sent to one socket. */
function rested() {
  let direct = 0;
  const slow: Sock[] = [];
  const s = new SlowConsumers<Sock>(1_000, (x) => slow.push(x), EVERY_MS, () => direct);
  const [a, b, c] = [new Sock(), new Sock(), new Sock()];
  s.watch("g1", a);
  s.watch("g1", b);
  s.watch("g2", c);
  const reads = () => a.reads + b.reads + c.reads;
  return { s, a, b, c, slow, reads, sendDirect: () => direct++ };
}

/** Two intervals of events to g1: the first check learns the send count, the second finds all empty (reading g2 too) and rests. */
async function toRest(s: SlowConsumers<Sock>) {
  s.published("g1", 5);
  await interval();
  s.published("g1", 5);
  await interval();
}

t.test("every socket read empty with only group events sent: events check nothing until they reach half the limit", async (t) => {
  const { s, a, b, c, slow, reads } = rested();
  await toRest(s);
  t.same([a.reads, b.reads, c.reads], [2, 2, 1], "g1 at each check; g2, which got no event, read once to find every socket empty");
  for (let i = 0; i < 4; i++) s.published("g1", 100);
  await interval();
  t.equal(reads(), 5, "400 bytes since (plus the 5 the resting check covered): nothing read, no timer");
  a.bytes = 2_000; // (cannot happen with only 405 bytes sent: shows that nothing looks)
  s.published("g2", 90);
  t.equal(reads(), 5, "nor at 495");
  s.published("g2", 10);
  t.equal(reads(), 5, "505 bytes: not at once (each socket holds at most 505)");
  await interval();
  t.same([a.reads, b.reads, c.reads], [3, 3, 2], "but every watched socket within the interval");
  t.same(slow, [a]);
});

t.test("a frame sent to one socket ends the rest: the next event has every socket checked within the interval", async (t) => {
  const { s, a, b, c, reads, sendDirect } = rested();
  await toRest(s);
  const at = reads();
  s.published("g1", 5);
  await interval();
  t.equal(reads(), at, "resting");
  sendDirect();
  s.published("g2", 5);
  await interval();
  t.same([a.reads, b.reads, c.reads], [3, 3, 2], "every socket read after the direct send (and found empty)");
  await new Promise((r) => setTimeout(r, EVERY_MS * 10)); // (a check reads every socket at most every 10 intervals)
  s.published("g2", 5);
  await interval();
  t.equal(c.reads, 3, "that check saw a direct send since the one before, so it could not rest: g2 is checked again");
  t.same([a.reads, b.reads], [4, 4], "this one saw only events, read every socket empty, and rests");
  s.published("g2", 5);
  s.published("g1", 5);
  await interval();
  t.same([a.reads, b.reads, c.reads], [4, 4, 3], "resting again");
});

t.test("a socket that holds bytes keeps the checks going; watching a socket ends the rest", async (t) => {
  const { s, a } = rested();
  a.bytes = 10;
  await toRest(s);
  s.published("g1", 5);
  await interval();
  t.equal(a.reads, 3, "a holds 10 bytes: g1 checked at every interval with events");
  a.bytes = 0;
  s.published("g1", 5);
  await interval();
  s.published("g1", 5);
  await interval();
  t.equal(a.reads, 4, "a is empty again: that check read every socket empty and rests");
  const d = new Sock(3_000);
  s.watch("g2", d);
  s.published("g2", 5);
  await interval();
  t.equal(d.reads, 1, "a new socket may hold anything: its group is checked");
});
