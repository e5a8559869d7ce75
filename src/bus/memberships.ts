// Follows local group membership: the node subscribes to a group's channel when its first
// socket joins and unsubscribes when its last socket leaves, so each node hears only the groups
// it serves.
import type { EventBus } from "./bus.ts";

interface Membership {
  /** The group's name as the first joiner gave it: the node's one copy of it. */
  name: string;
  sockets: number;
  subscribed: Promise<void>;
}

export class GroupMemberships {
  private readonly groups = new Map<string, Membership>();

  constructor(
    private readonly bus: EventBus,
    private readonly onError: (err: Error, group: string) => void = () => {},
  ) {}

  /** Resolves once the node hears the group's events (rejects if the subscribe failed). */
  join(group: string): Promise<void> {
    let m = this.groups.get(group);
    if (m) {
      m.sockets++;
    } else {
      m = { name: group, sockets: 1, subscribed: this.bus.subscribe(group) };
      this.groups.set(group, m);
    }
    return m.subscribed;
  }

  leave(group: string): void {
    const m = this.groups.get(group);
    if (!m) return;
    if (--m.sockets > 0) return;
    this.groups.delete(group);
    // The bus applies a group's calls in order, so a later join's subscribe lands after this.
    this.bus.unsubscribe(group).catch((err: Error) => this.onError(err, group));
  }

  /** Groups with at least one local socket. */
  get size(): number {
    return this.groups.size;
  }

  has(group: string): boolean {
    return this.groups.has(group);
  }

  /** The node's copy of the name of a group it is a member of (undefined when it is not). */
  name(group: string): string | undefined {
    return this.groups.get(group)?.name;
  }
}
