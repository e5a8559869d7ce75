// Keeps a failing database from turning into silence. Every store call gets a deadline; a call
// that times out or loses its connection opens the circuit, and while it is open stored
// operations answer `unavailable` at once instead of queueing behind a dead connection (and
// running late when it comes back). A background ping closes the circuit when the database
// answers again. It also keeps when a store call last succeeded (answeredAt): proof that the
// database answered then, which spares the node's dependency probe a query while calls succeed.
import { withDeadline } from "../deadline.ts";
import { ChatError } from "../protocol/index.ts";

const UNAVAILABLE_CODES = ["P1001", "P1002", "P1008", "P1017", "P2024", "P2028", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "57P01", "57P03", "08000", "08003", "08006", "08001", "25P03", "57014"];
// Prisma's driver-adapter error kinds that mean the database could not be reached or answered.
const UNAVAILABLE_KINDS = ["ConnectionClosed", "DatabaseNotReachable", "SocketTimeout", "TooManyConnections", "TransactionAlreadyClosed"];
const UNAVAILABLE_TEXT = /ECONNREFUSED|ECONNRESET|connection (?:terminated|refused|timeout)|Connection terminated|timeout exceeded when trying to connect|Can't reach database|server (?:has )?closed the connection|Query read timeout|Transaction already closed|Unable to start a transaction|statement timeout/i;

/** Database errors that mean "try again later", not "bug". */
export function isUnavailable(err: unknown, depth = 0): boolean {
  if (depth > 5 || typeof err !== "object" || err === null) return false;
  const e = err as { code?: unknown; kind?: unknown; message?: unknown; cause?: unknown; meta?: { driverAdapterError?: unknown } };
  if (typeof e.code === "string" && UNAVAILABLE_CODES.includes(e.code)) return true;
  if (typeof e.kind === "string" && UNAVAILABLE_KINDS.includes(e.kind)) return true;
  if (typeof e.message === "string" && UNAVAILABLE_TEXT.test(e.message)) return true;
  return isUnavailable(e.cause, depth + 1) || isUnavailable(e.meta?.driverAdapterError, depth + 1);
}

/** What a client is told when the database cannot be reached or does not answer in time. */
export const storageUnavailable = () => new ChatError("unavailable", "storage is unavailable, try again");

/**
 * A failure as the client is told it, the same for frames, HTTP routes and the server API: a
 * ChatError as it is, a database that could not answer (isUnavailable) as `unavailable`, and
 * null for anything else (the node's own fault: `internal`, logged by the caller).
 */
export function clientError(err: unknown): ChatError | null {
  if (err instanceof ChatError) return err;
  return isUnavailable(err) ? storageUnavailable() : null;
}

class DeadlineExceeded extends Error {}

export interface StoreGuardOptions {
  /** The longest a store call may take before the client is told `unavailable`. */
  deadlineMs: number;
  /** How often the database is pinged while the circuit is open. */
  probeMs: number;
}

export class StoreGuard {
  private open = false;
  /** performance.now() when a store call last succeeded (-Infinity before the first). */
  private lastAnswer = -Infinity;

  constructor(
    private readonly ping: () => Promise<void>,
    private readonly opts: StoreGuardOptions,
    private readonly onChange: (up: boolean, err?: unknown) => void = () => {},
  ) {}

  get up(): boolean {
    return !this.open;
  }

  /** When a store call last succeeded (performance.now() ms; -Infinity before the first). */
  get answeredAt(): number {
    return this.lastAnswer;
  }

  async run<T>(call: () => Promise<T>): Promise<T> {
    if (this.open) throw storageUnavailable();
    try {
      const result = await this.bounded(call(), this.opts.deadlineMs);
      this.lastAnswer = performance.now();
      return result;
    } catch (err) {
      if (err instanceof DeadlineExceeded || isUnavailable(err)) {
        this.trip(err);
        throw storageUnavailable();
      }
      throw err;
    }
  }

  private bounded<T>(p: Promise<T>, ms: number): Promise<T> {
    return withDeadline(p, ms, () => new DeadlineExceeded(`store call exceeded ${ms} ms`));
  }

  private trip(err: unknown): void {
    if (this.open) return;
    this.open = true;
    this.onChange(false, err);
    const probe = () => {
      this.bounded(this.ping(), Math.max(this.opts.probeMs, 1_000)).then(
        () => {
          this.open = false;
          this.onChange(true);
        },
        () => setTimeout(probe, this.opts.probeMs).unref(),
      );
    };
    setTimeout(probe, this.opts.probeMs).unref();
  }
}
