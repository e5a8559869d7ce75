// A `/ws/` socket's Multiplex (src/chat/multiplex.ts) over its Subscriber: who may follow which
// group (the token's `groups` claim), how many (MAX_SUBSCRIPTIONS_PER_SOCKET) and whether the node
// may serve one more group (MAX_GROUPS_PER_NODE). Everything about delivery (replay, `resumed`,
// held events, going live) stays in the Subscription the Subscriber opens.
import type { Multiplex } from "../chat/multiplex.ts";
import type { Subscriptions } from "../chat/subscriptions.ts";
import { ChatError } from "../protocol/index.ts";
import type { Connection } from "./connection.ts";
import type { GroupCount } from "./limits.ts";

export interface MultiplexDeps {
  subscriptions: Subscriptions;
  /** The node's groups (MAX_GROUPS_PER_NODE counts them). */
  groups: GroupCount;
  maxGroupsPerNode: number;
  maxSubscriptions: number;
  lastSeq(group: string): Promise<number>;
}

export class SocketMultiplex implements Multiplex {
  /** Groups whose subscribe is between its membership and its start. */
  private readonly starting = new Set<string>();

  constructor(
    private readonly conn: Connection,
    /** The token's `groups` claim; null allows any group. */
    private readonly allowed: readonly string[] | null,
    private readonly deps: MultiplexDeps,
  ) {}

  /** Following, or about to (its subscribe is acknowledged, its delivery starts next). */
  has(group: string): boolean {
    return this.conn.subscriber?.get(group) !== undefined || this.starting.has(group);
  }

  async subscribe(group: string, since: number | null, presence = false): Promise<{ seq: number; start: () => void }> {
    const subscriber = this.conn.subscriber;
    if (!subscriber || !this.conn.open) throw new ChatError("unavailable", "the socket is closing");
    if (this.allowed !== null && !this.allowed.includes(group)) throw new ChatError("forbidden", `token does not allow group ${group}`);
    if (this.has(group)) return { seq: await this.deps.lastSeq(group), start: () => {} };
    if (subscriber.size + this.starting.size >= this.deps.maxSubscriptions) {
      throw new ChatError("too_large", `more than ${this.deps.maxSubscriptions} subscriptions on one socket`, "subscriptions_per_socket");
    }
    if (!this.deps.groups.has(group) && this.deps.groups.size >= this.deps.maxGroupsPerNode) {
      throw new ChatError("unavailable", `this node already serves ${this.deps.maxGroupsPerNode} groups; retry later`, "groups_per_node");
    }
    this.starting.add(group);
    let seq: number;
    try {
      await this.deps.subscriptions.join(group);
    } catch {
      this.starting.delete(group);
      throw new ChatError("unavailable", "event bus unavailable, try again");
    }
    try {
      seq = await this.deps.lastSeq(group);
    } catch (err) {
      this.starting.delete(group);
      this.deps.subscriptions.leave(group);
      throw err;
    }
    return {
      seq,
      start: () => {
        this.starting.delete(group);
        // The membership taken above goes to the subscription, or back when there is none.
        if (!this.conn.open || this.conn.subscriber?.subscribe(group, since, presence) == null) this.deps.subscriptions.leave(group);
      },
    };
  }

  unsubscribe(group: string): boolean {
    return this.conn.subscriber?.unsubscribe(group) ?? false;
  }
}
