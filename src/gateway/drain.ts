// The paced drain: on shutdown a node closes its sockets at an even rate over a window instead of
// all at once, so the nodes that take its clients see a bounded reconnect rate (about n / window
// per second) rather than a storm.

/** How often the pacer closes its next share of sockets. */
export const DRAIN_TICK_MS = 25;

/**
 * Closes the items of `current()` (re-read each tick, so sockets that leave by themselves are not
 * counted twice) at an even rate over `spreadMs`: by time t, ceil(n × t / spreadMs) of the n open
 * at the start have been closed. `close` answers false for an item that cannot close yet (a frame
 * of it still in flight); it is tried again on a later tick. Resolves when nothing is left open
 * or the window is over, whichever is first; the caller closes what remains.
 */
export async function pacedClose<T>(
  current: () => T[],
  spreadMs: number,
  close: (item: T) => boolean,
  /** Told about once a second: how many were closed since the last report, and how many are left. */
  onProgress: (closedSinceLast: number, left: number) => void = () => {},
): Promise<void> {
  const total = current().length;
  if (total === 0 || spreadMs <= 0) return;
  const start = Date.now();
  let closed = 0;
  let reportedAt = start;
  let reported = 0;
  for (;;) {
    const elapsed = Date.now() - start;
    const items = current();
    const due = Math.min(total, Math.ceil((total * Math.min(elapsed, spreadMs)) / spreadMs)) - closed;
    for (let i = 0, n = 0; i < items.length && n < due; i++) {
      if (close(items[i]!)) {
        n++;
        closed++;
      }
    }
    const left = current().length;
    if (Date.now() - reportedAt >= 1_000 || left === 0 || elapsed >= spreadMs) {
      onProgress(closed - reported, left);
      reported = closed;
      reportedAt = Date.now();
    }
    if (left === 0 || elapsed >= spreadMs) return;
    await new Promise((r) => setTimeout(r, Math.min(DRAIN_TICK_MS, spreadMs - elapsed)));
  }
}
