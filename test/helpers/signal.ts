// Wakes waiters when something they wait for may have changed (a frame arrived, a socket
// closed), so a test waits for a condition rather than sleeping for a guessed time.
export class Signal {
  private waiters: (() => void)[] = [];

  wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Waits until `check` holds, re-checked on every wake and at least every `pollMs`; false after `ms`. */
  async until(check: () => boolean, ms: number, pollMs = 250): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!check()) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, pollMs));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return true;
  }
}
