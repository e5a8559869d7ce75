// The slot watch's comparison (src/bus/cluster-slot-watch.ts): ioredis' slot map against a
// CLUSTER SLOTS answer. The watch on a live cluster is tested in redis-cluster-bus.test.ts.
import t from "tap";
import { slotMapAgrees } from "../../src/bus/cluster-slot-watch.ts";

const A = "10.0.0.1:7000";
const B = "10.0.0.2:7000";
/** ioredis' shape: slot -> [primary, replicas…]. */
const mapOf = (ranges: [number, number, string][]) => {
  const slots: string[][] = [];
  for (const [start, end, primary] of ranges) for (let s = start; s <= end; s++) slots[s] = [primary, "10.0.0.9:7000"];
  return { slots };
};
const node = (key: string, id: string) => [key.split(":")[0]!, Number(key.split(":")[1]), id, []] as [string, number, string, unknown[]];
type Reply = Parameters<typeof slotMapAgrees>[1];

t.test("a map naming each range's primary agrees, whatever the replicas", async (t) => {
  const reply: Reply = [
    [0, 8191, node(A, "a"), node("10.0.0.3:7000", "r1")],
    [8192, 16383, node(B, "b")],
  ];
  t.equal(slotMapAgrees(mapOf([[0, 8191, A], [8192, 16383, B]]), reply), true);
});

t.test("one slot on another primary than the cluster says disagrees (a failover, a moved slot)", async (t) => {
  const reply: Reply = [[0, 16383, node(A, "a")]];
  const map = mapOf([[0, 16383, A]]);
  map.slots[12_345] = [B];
  t.equal(slotMapAgrees(map, reply), false);
});

t.test("a slot the map does not know, or no map at all, disagrees", async (t) => {
  const reply: Reply = [[0, 16383, node(A, "a")]];
  t.equal(slotMapAgrees(mapOf([[0, 100, A]]), reply), false, "slots 101.. missing");
  t.equal(slotMapAgrees({}, reply), false, "ioredis' internals not where expected: refresh as ioredis would");
});

t.test("a range whose primary has no address (an unknown endpoint) is skipped, as ioredis skips it", async (t) => {
  const reply: Reply = [
    [0, 99, node(A, "a")],
    [100, 16383, ["", 7000, "x", []]],
  ];
  t.equal(slotMapAgrees(mapOf([[0, 99, A]]), reply), true);
});
