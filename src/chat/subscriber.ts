// One socket's subscriptions, by group. `/ws/chat/<group>/` sockets hold exactly one; a
// multiplexed socket may hold many. The socket's transport tells it when the send buffer drains
// and when the socket closes; closing closes every subscription exactly once.
import type { Outlet, Subscription, SubscriptionOwner } from "./subscription.ts";
import type { Subscriptions } from "./subscriptions.ts";

export class Subscriber implements SubscriptionOwner {
  private readonly byGroup = new Map<string, Subscription>();
  private closed = false;

  constructor(
    readonly node: Subscriptions,
    readonly outlet: Outlet,
    /** The socket's user, or null when each frame names its own (open dev mode). */
    readonly user: string | null,
  ) {}

  /**
   * Starts following `group` (live at once, or replaying from `since` first), with its join/leave
   * events when `presence`. The caller has
   * taken one membership of the group (`Subscriptions.join`); the subscription gives it back when
   * it closes. Returns null when this socket already follows the group or has closed.
   */
  subscribe(group: string, since: number | null, presence = false): Subscription | null {
    if (this.closed || this.byGroup.has(group)) return null;
    const sub = this.node.open(group, this, presence);
    this.byGroup.set(sub.group, sub);
    sub.start(since);
    this.node.opened(sub);
    return sub;
  }

  /** Its subscription closed: the socket no longer follows the group. */
  forget(sub: Subscription): void {
    if (this.byGroup.get(sub.group) === sub) this.byGroup.delete(sub.group);
  }

  /** Stops following `group`; false when this socket did not follow it. */
  unsubscribe(group: string): boolean {
    const sub = this.byGroup.get(group);
    if (!sub) return false;
    sub.close();
    return true;
  }

  get(group: string): Subscription | undefined {
    return this.byGroup.get(group);
  }

  get size(): number {
    return this.byGroup.size;
  }

  groups(): IterableIterator<string> {
    return this.byGroup.keys();
  }

  /** The socket's send buffer drained: paused replays may go on. */
  drained(): void {
    for (const sub of this.byGroup.values()) sub.drained();
  }

  /** The socket closed: every subscription ends (exactly once, even if called again). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const sub of [...this.byGroup.values()]) sub.close();
  }
}
