// The presence seam: who is online in each group, across every node. Beside the bus, not on it:
// the bus carries the resulting join/leave events, presence decides when they happen.
//
// Guarantees every implementation keeps:
// - A user is present in a group while at least one of their sockets, on any node and either
//   endpoint, is open on it (`open` called, `close` not yet). Several sockets count once.
// - Quiet reconnects: when a node's last socket of (group, user) closes, the node keeps holding the
//   user for `graceMs`; a socket of that user opening on any node within it sends nothing.
// - `onChange` is called exactly once per transition, on exactly one node of the cluster: `join`
//   when the user goes from absent to present, `leave` when the last holder lets go. `count` is the
//   group's present users right after the change. Transitions of one (group, user) are in order.
// - `snapshot` is exact in steady state: `count` is the number of present users, `users` the
//   `limit` longest present (oldest `since` first).
// - Node crash (Redis only; the in-process one dies with its only node): every node holds a lease
//   renewed every ttl/3; a node whose lease has run out for `ttl` is reaped by a survivor, which
//   releases its users (a `leave` for each user no other node holds). Bound: a SIGKILLed node's
//   users leave within ttl + graceMs of its death. On SIGTERM (`stop`) the lease is cut to the
//   grace, so its users leave graceMs after it stops unless they reconnect elsewhere.
// - Redis restart (data lost): each node notices (connection ready again, or its lease missing
//   at renewal) and re-registers everything it holds, keeping each user's `since`, without any
//   join or leave. Transitions whose Redis call failed while Redis was down are announced once it
//   is back. A node that dies while Redis is down leaves no trace: its users disappear silently.
// - Cost: at most one Redis script call per (group, user) transition on a node (first socket of
//   the user in the group on that node, and the end of its grace), O(log n) in the group size per
//   transition; a node's transitions within a few milliseconds share one call; one ZADD per
//   lease renewal and one ZRANGEBYSCORE per reap check per node, independent of groups and users.
//   A snapshot is ZCARD + ZRANGE of `limit`. Reaping a dead node costs O(its users).
// - All keys share one hash slot (`{chatpresence}`), so scripts work on Redis Cluster too (on
//   one shard).

export interface PresentUser {
  user: string;
  /** When the user became present in the group, milliseconds since the epoch. */
  since: number;
}

export interface PresenceSnapshot {
  count: number;
  users: PresentUser[];
}

export interface PresenceChange {
  kind: "join" | "leave";
  group: string;
  user: string;
  /** Present users in the group right after this change. */
  count: number;
}

export interface PresenceOptions {
  graceMs: number;
  /** Node lease time to live (Redis implementation). */
  ttlMs: number;
}

export interface Presence {
  /** A socket of `user` opened on `group` on this node. */
  open(group: string, user: string): void;
  /** That socket closed (or unsubscribed). */
  close(group: string, user: string): void;
  snapshot(group: string, limit: number): Promise<PresenceSnapshot>;
  /** Registers the node (Redis: its lease); resolves once it holds. */
  start(): Promise<void>;
  /** The node stops: its users leave after the grace unless they reconnect (elsewhere). */
  stop(): Promise<void>;
  /** Distinct (group, user) pairs this node holds, grace included. */
  readonly held: number;
}

export type PresenceListener = (change: PresenceChange) => void;

/** What the node's metrics learn from presence (all optional). */
export interface PresenceHooks {
  onLeaseRenewed?: () => void;
  onLeaseExpired?: (node: string, users: number) => void;
  onResync?: (reason: "redis_restart" | "lease_lost" | "reconnect") => void;
  /** A transition whose Redis call failed while Redis was away, announced now. */
  onDirtyAnnounced?: (kind: "join" | "leave", group: string, user: string) => void;
  onError?: (err: Error) => void;
}
