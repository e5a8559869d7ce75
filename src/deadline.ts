// A promise raced against a timer: the one way this code base bounds how long it waits.

/**
 * Settles like `p`, or rejects with `timeout()` once `ms` have passed. `p` keeps running; if it
 * settles after the deadline its outcome is nobody's to handle, so it is not reported as unhandled.
 */
export function withDeadline<T>(p: Promise<T>, ms: number, timeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  p.catch(() => {});
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(timeout()), ms);
    }),
  ]);
}
