// A node's own share of presence: how many of its sockets each (group, user) has open, and the
// grace timer of a pair whose last socket closed. Only transitions reach the backend: `acquire`
// on the pair's first socket, `release` when its grace ran out with no socket back.
//
// Memory (issue 12): a `/ws/` socket in 500 groups holds 500 pairs, so a pair is one entry of its
// group's map, keyed by the user's string (the socket's own), and in the usual case (one socket,
// no grace running) its value is just the time it was first held here (a small integer). Only a
// pair with several sockets or a grace timer gets a Hold.

interface Hold {
  sockets: number;
  since: number;
  timer: NodeJS.Timeout | null;
}

/**
 * One socket and no grace: the pair's `since` alone, in ms after EPOCH (a small integer is kept
 * in the map's slot itself for the first 24 days of the process; a full timestamp would be a
 * 16-byte heap number per pair).
 */
type Pair = number | Hold;
const EPOCH = Date.now();
const sinceOf = (p: Pair) => (typeof p === "number" ? EPOCH + p : p.since);

/** `group user`: group names have no space (src/protocol/names.ts), so the first space splits. */
export const pairKey = (group: string, user: string) => `${group} ${user}`;
export function splitPair(key: string): [group: string, user: string] {
  const i = key.indexOf(" ");
  return [key.slice(0, i), key.slice(i + 1)];
}

export class LocalHolds {
  /** Per group, its users' pairs, in the order they were first held (which is `since` order). */
  private readonly groups = new Map<string, Map<string, Pair>>();
  private pairs = 0;

  constructor(
    private readonly graceMs: number,
    private readonly acquire: (group: string, user: string, since: number) => void,
    private readonly release: (group: string, user: string) => void,
  ) {}

  open(group: string, user: string): void {
    let users = this.groups.get(group);
    if (!users) this.groups.set(group, (users = new Map()));
    const p = users.get(user);
    if (p === undefined) {
      const since = Date.now();
      users.set(user, since - EPOCH);
      this.pairs++;
      this.acquire(group, user, since);
    } else if (typeof p === "number") {
      users.set(user, { sockets: 2, since: EPOCH + p, timer: null });
    } else {
      if (p.timer) {
        clearTimeout(p.timer);
        p.timer = null;
      }
      if (++p.sockets === 1) users.set(user, p.since - EPOCH); // back within its grace: the compact form again
    }
  }

  close(group: string, user: string): void {
    const users = this.groups.get(group);
    const p = users?.get(user);
    if (p === undefined) return;
    let h: Hold;
    if (typeof p === "number") users!.set(user, (h = { sockets: 0, since: EPOCH + p, timer: null }));
    else {
      if (p.sockets === 0) return;
      if (--p.sockets > 0) {
        if (p.sockets === 1 && !p.timer) users!.set(user, p.since - EPOCH); // back to the compact form
        return;
      }
      h = p;
    }
    h.timer = setTimeout(() => {
      h.timer = null;
      const now = this.groups.get(group);
      if (h.sockets > 0 || now?.get(user) !== h) return;
      now.delete(user);
      if (now.size === 0) this.groups.delete(group);
      this.pairs--;
      this.release(group, user);
    }, this.graceMs);
  }

  /** Every pair held, grace included, with the time it was first held here. */
  *entries(): Iterable<[key: string, since: number]> {
    for (const [group, users] of this.groups) for (const [user, p] of users) yield [pairKey(group, user), sinceOf(p)];
  }

  /** The users of one group held here (grace included), in the order they were first held, with that time. */
  *users(group: string): Iterable<[user: string, since: number]> {
    const users = this.groups.get(group);
    if (users) for (const [user, p] of users) yield [user, sinceOf(p)];
  }

  /** How many users of the group are held here. */
  count(group: string): number {
    return this.groups.get(group)?.size ?? 0;
  }

  get size(): number {
    return this.pairs;
  }

  /** Forgets everything (the node stops); no release is sent. */
  clear(): void {
    for (const users of this.groups.values()) for (const p of users.values()) if (typeof p !== "number" && p.timer) clearTimeout(p.timer);
    this.groups.clear();
    this.pairs = 0;
  }
}
