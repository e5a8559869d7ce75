// One clock for every process of a run: process.hrtime reads CLOCK_MONOTONIC, which Linux shares
// across processes, so a timestamp taken in a publisher worker can be subtracted in a receiver
// worker. Microseconds keep the value well inside a double's exact integer range.
export function nowUs(): number {
  const [s, ns] = process.hrtime();
  return s * 1_000_000 + Math.floor(ns / 1000);
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
