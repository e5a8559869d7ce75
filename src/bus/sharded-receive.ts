// Sharded messages straight from each shard's subscriber connection to the bus. ioredis' Cluster
// (`shardedSubscribers`) gives every subscriber connection a listener for `smessage` as well as
// `smessageBuffer` and re-emits both through two emitters of its own; the `smessage` listener
// alone makes the connection decode each channel and payload to strings that nobody reads. So
// when ioredis announces a new subscriber connection (`+subscriber`), its two forwarding
// listeners are replaced by one that hands the buffers to `onMessage`: the same events, one hop,
// no decoding. A connection this cannot reach (ioredis' internals of another shape) keeps its
// forwarding, so the caller keeps listening on the Cluster's own `smessageBuffer` too: each
// connection delivers through exactly one of the two.
import type { Cluster } from "ioredis";

type Listener = (...args: unknown[]) => void;

/** The parts of ioredis' Cluster and its ShardedSubscriber this reads (not in its typings). */
interface Internals {
  shardedSubscribers?: { shardedSubscribers?: Map<string, { instance?: NodeJS.EventEmitter | null; messageListeners?: Map<string, Listener> }> };
}

/** Takes over the message listeners of every sharded subscriber connection ioredis creates; returns how many it holds now (tests read it). */
export function receiveShardedDirectly(cluster: Cluster, onMessage: (channel: Buffer, message: Buffer) => void): () => number {
  const taken = new WeakSet<object>();
  const takeOver = () => {
    const subs = (cluster as unknown as Internals).shardedSubscribers?.shardedSubscribers;
    if (!(subs instanceof Map)) return;
    for (const sub of subs.values()) {
      const instance = sub.instance;
      const listeners = sub.messageListeners;
      if (!instance || taken.has(instance) || !(listeners instanceof Map)) continue;
      const text = listeners.get("smessage");
      const buffers = listeners.get("smessageBuffer");
      if (!text || !buffers) continue;
      instance.removeListener("smessage", text);
      instance.removeListener("smessageBuffer", buffers);
      listeners.delete("smessage");
      listeners.delete("smessageBuffer");
      instance.on("smessageBuffer", onMessage);
      taken.add(instance);
    }
  };
  cluster.on("+subscriber", takeOver);
  takeOver();
  return () => {
    const subs = (cluster as unknown as Internals).shardedSubscribers?.shardedSubscribers;
    return subs instanceof Map ? [...subs.values()].filter((s) => s.instance && taken.has(s.instance)).length : 0;
  };
}
