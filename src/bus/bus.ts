// The event bus seam: how a node hears the group events other nodes (and itself) publish.
//
// Guarantees every implementation keeps:
// - A payload published to a group reaches, at most once, every node subscribed to that group
//   when it is published, this node included; payloads of one publisher to one group arrive in
//   publish order (except those retried across a Redis Cluster failover, see
//   redis-cluster-bus.ts). There is no history: a node that is not subscribed (or is disconnected) misses
//   the payload, and seq in the payload is what lets a client see the gap.
// - Payloads are opaque: a node relays the bytes to its sockets as they are, never re-parsing.
// - subscribe/unsubscribe calls for one group take effect in call order; `subscribe` resolves
//   once payloads published afterwards will be delivered.

export type BusHandler = (group: string, payload: Uint8Array | string) => void;

export interface EventBus {
  publish(group: string, payload: string): Promise<void>;
  /**
   * A bus that delivers inside the call (the in-process one): publishes and delivers before it
   * returns, throwing what delivery threw. Lets the typing path skip a promise per frame.
   */
  publishNow?(group: string, payload: string): void;
  subscribe(group: string): Promise<void>;
  unsubscribe(group: string): Promise<void>;
  /** Whether the bus can deliver now (for readiness). */
  isUp(): boolean;
  close(): Promise<void>;
}

export type BusFactory = (onPayload: BusHandler) => EventBus;
