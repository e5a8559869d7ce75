// The backstop that keeps ioredis' Redis Cluster slot map current when no failure says it is
// stale. ioredis' own periodic refresh (`slotsRefreshInterval`) opens a new connection, reads
// CLUSTER SLOTS, rebuilds its 16,384-slot map and compares the sharded subscribers' copy through
// two JSON.stringify of it: 30-110 ms of CPU a node, each time, even when nothing changed (at
// 15 s, about 5 % of a node's CPU in the cross-node bench, and all of the Cluster's excess over
// one Redis there). Instead, every `intervalMs` this asks one node for CLUSTER SLOTS on a
// connection ioredis already holds and compares each slot's primary with ioredis' map; only a
// difference (or a node that does not answer) makes ioredis refresh. Failures are found sooner
// anyway: a publish answered MOVED, a connection that closes or a sharded subscriber that ends
// each refresh the map at once.
import type { Cluster } from "ioredis";
import { withDeadline } from "../deadline.ts";

/** The part of ioredis' Cluster this reads (not in its typings): slot -> [primary "host:port", replicas…]. */
export interface ClusterSlotMap {
  slots?: (string[] | undefined)[];
}

type SlotsReply = [number, number, ...[string, number, ...unknown[]][]][];

/** Whether ioredis' map names, for every slot the cluster serves, the primary the cluster names. */
export function slotMapAgrees(map: ClusterSlotMap, reply: SlotsReply): boolean {
  const slots = map.slots;
  if (!slots) return false;
  for (const [start, end, primary] of reply) {
    // ioredis skips nodes without an address (an unknown endpoint): so does this.
    if (!primary?.[0]) continue;
    const key = `${primary[0]}:${primary[1]}`;
    for (let s = start; s <= end; s++) if (slots[s]?.[0] !== key) return false;
  }
  return true;
}

/** Starts the watch; returns its stop. `onRefresh` is told of each refresh it asked for (tests read it). */
export function watchClusterSlots(cluster: Cluster, intervalMs: number, onRefresh: (reason: string) => void = () => {}): () => void {
  let busy = false;
  const refresh = (reason: string) => {
    onRefresh(reason);
    cluster.refreshSlotsCache();
  };
  const check = async () => {
    if (busy || cluster.status !== "ready") return;
    busy = true;
    try {
      // A node that stalls must not stop the watch: the answer is due within the interval.
      const asked = cluster.cluster("SLOTS") as unknown as Promise<SlotsReply>;
      const reply = await withDeadline(asked, intervalMs, () => new Error("CLUSTER SLOTS timed out"));
      if (!slotMapAgrees(cluster as unknown as ClusterSlotMap, reply)) refresh("slot map differs");
    } catch {
      if (cluster.status === "ready") refresh("CLUSTER SLOTS failed");
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => void check(), intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
