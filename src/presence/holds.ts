// A node's own share of presence: how many of its sockets each (group, user) has open, and the
// grace timer of a pair whose last socket closed. Only transitions reach the backend: `acquire`
// on the pair's first socket, `release` when its grace ran out with no socket back.

interface Hold {
  sockets: number;
  since: number;
  timer: NodeJS.Timeout | null;
}

/** `group user`: group names have no space (src/protocol/names.ts), so the first space splits. */
export const pairKey = (group: string, user: string) => `${group} ${user}`;
export function splitPair(key: string): [group: string, user: string] {
  const i = key.indexOf(" ");
  return [key.slice(0, i), key.slice(i + 1)];
}

export class LocalHolds {
  private readonly holds = new Map<string, Hold>();

  constructor(
    private readonly graceMs: number,
    private readonly acquire: (group: string, user: string, since: number) => void,
    private readonly release: (group: string, user: string) => void,
  ) {}

  open(group: string, user: string): void {
    const key = pairKey(group, user);
    const h = this.holds.get(key);
    if (!h) {
      const since = Date.now();
      this.holds.set(key, { sockets: 1, since, timer: null });
      this.acquire(group, user, since);
      return;
    }
    h.sockets++;
    if (h.timer) {
      clearTimeout(h.timer);
      h.timer = null;
    }
  }

  close(group: string, user: string): void {
    const key = pairKey(group, user);
    const h = this.holds.get(key);
    if (!h || h.sockets === 0) return;
    if (--h.sockets > 0) return;
    h.timer = setTimeout(() => {
      h.timer = null;
      if (h.sockets > 0 || this.holds.get(key) !== h) return;
      this.holds.delete(key);
      this.release(group, user);
    }, this.graceMs);
  }

  /** Every pair held, grace included, with the time it was first held here. */
  *entries(): Iterable<[key: string, since: number]> {
    for (const [key, h] of this.holds) yield [key, h.since];
  }

  get size(): number {
    return this.holds.size;
  }

  /** Forgets everything (the node stops); no release is sent. */
  clear(): void {
    for (const h of this.holds.values()) if (h.timer) clearTimeout(h.timer);
    this.holds.clear();
  }
}
