// A tiny typed event emitter: `on` returns the function that unsubscribes. A listener that
// throws is reported (so one bad listener cannot stop the others or the SDK) and skipped.

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Listener = (...args: any[]) => void;

export class Emitter<Events extends { [K in keyof Events]: Listener }> {
  private readonly listeners = new Map<keyof Events, Set<Listener>>();

  constructor(private readonly onListenerError: (err: unknown) => void = (err) => console.error(err)) {}

  /** Calls `fn` on every `event`; returns the unsubscribe function. */
  on<E extends keyof Events>(event: E, fn: Events[E]): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(fn);
    return () => void set.delete(fn);
  }

  /** Calls `fn` on the next `event` only. */
  once<E extends keyof Events>(event: E, fn: Events[E]): () => void {
    const off = this.on(event, ((...args: unknown[]) => {
      off();
      fn(...args);
    }) as Events[E]);
    return off;
  }

  protected emit<E extends keyof Events>(event: E, ...args: Parameters<Events[E]>): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(...args);
      } catch (err) {
        this.onListenerError(err);
      }
    }
  }
}
