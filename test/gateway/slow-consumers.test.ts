// The slow-consumer check on its own (no sockets): a group's sockets are checked once per turn
// however many events it got, and at once when the turn's events reach half the limit; a socket
// over the limit is reported once per check.
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
const turn = () => new Promise((r) => setImmediate(r));

t.test("many events in one turn: each socket is read once, after the turn", async (t) => {
  const slow: Sock[] = [];
  const s = new SlowConsumers<Sock>(1_000, (x) => slow.push(x));
  const a = new Sock(10);
  const b = new Sock(2_000);
  s.watch("g", a);
  s.watch("g", b);
  for (let i = 0; i < 50; i++) s.published("g", 5);
  t.equal(a.reads + b.reads, 0, "nothing read during the turn");
  await turn();
  t.same([a.reads, b.reads], [1, 1], "one read per socket");
  t.same(slow, [b], "the socket over the limit is reported");
});

t.test("the turn's events reaching half the limit check the group at once", async (t) => {
  const slow: Sock[] = [];
  const s = new SlowConsumers<Sock>(1_000, (x) => slow.push(x));
  const a = new Sock(1_200);
  s.watch("g", a);
  s.published("g", 300);
  t.equal(a.reads, 0);
  s.published("g", 200);
  t.equal(a.reads, 1, "500 bytes this turn: checked now");
  t.same(slow, [a]);
  s.published("g", 100);
  await turn();
  t.equal(a.reads, 2, "and again at the end of the turn for what came after");
});

t.test("groups are checked separately; an unwatched socket is not read", async (t) => {
  const s = new SlowConsumers<Sock>(1_000, () => {});
  const a = new Sock();
  const b = new Sock();
  s.watch("g1", a);
  s.watch("g2", b);
  s.published("g1", 1);
  await turn();
  t.same([a.reads, b.reads], [1, 0], "only g1's sockets");
  s.unwatch("g1", a);
  s.published("g1", 1);
  await turn();
  t.equal(a.reads, 1, "not read once unwatched");
});
