// Slow consumers. uWS buffers what a socket cannot take yet; a socket whose buffer passes
// MAX_BACKPRESSURE_BYTES is closed with 4008 ("slow consumer") rather than growing without bound
// or, uWS's default, silently skipping events for it. The gateway checks a group's sockets after
// every event it hands to them and a socket after every answer it sends it, so a socket is
// closed before uWS would have to skip anything. uWS's own limit (twice this one plus the largest
// answer, so that the 4008 close frame still fits after one big answer) is set to close the
// socket: the backstop for sends made elsewhere (a resume's replay paces itself).
export interface Buffered {
  buffered(): number;
}

export class SlowConsumers<S extends Buffered> {
  private readonly groups = new Map<string, Set<S>>();

  constructor(
    private readonly limitBytes: number,
    private readonly onSlow: (ws: S) => void,
  ) {}

  watch(group: string, ws: S): void {
    let set = this.groups.get(group);
    if (!set) this.groups.set(group, (set = new Set()));
    set.add(ws);
  }

  unwatch(group: string, ws: S): void {
    const set = this.groups.get(group);
    if (set?.delete(ws) && set.size === 0) this.groups.delete(group);
  }

  /** After an event went to the group's sockets. */
  checkGroup(group: string): void {
    const set = this.groups.get(group);
    if (set) for (const ws of set) this.check(ws);
  }

  /** After a frame went to one socket. */
  check(ws: S): void {
    if (ws.buffered() > this.limitBytes) this.onSlow(ws);
  }
}
