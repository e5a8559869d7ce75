// A token bucket: `rate` tokens a second, at most `burst` saved up; each frame takes one. Refilled
// lazily from the clock on each take, so an idle bucket costs nothing.
import { performance } from "node:perf_hooks";

export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    now = performance.now(),
  ) {
    this.tokens = burst;
    this.last = now;
  }

  /** Takes a token if one is left; false (and nothing taken) when the bucket is empty. */
  take(now = performance.now()): boolean {
    const tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.rate) / 1000);
    this.last = now;
    if (tokens < 1) {
      this.tokens = tokens;
      return false;
    }
    this.tokens = tokens - 1;
    return true;
  }
}
