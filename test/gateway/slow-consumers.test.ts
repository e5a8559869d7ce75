// The slow-consumer check on its own (no sockets): a group's sockets are checked once per check
// interval however many events it got, and at once when the events since its last check reach
// half the limit; a socket over the limit is reported once per check.
import t from "tap";
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

t.test("many events over several turns: each socket is read once, within the interval", async (t) => {
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
  t.equal(a.reads + b.reads, 0, "nothing read while the events come");
  await interval();
  t.same([a.reads, b.reads], [1, 1], "one read per socket");
  t.same(slow, [b], "the socket over the limit is reported");
  await interval();
  t.same([a.reads, b.reads], [1, 1], "no events, no more reads");
});

t.test("the events since the last check reaching half the limit check the group at once", async (t) => {
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
  await interval();
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
