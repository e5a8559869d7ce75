// Opens the configured database: PostgreSQL when DATABASE_URL is set, else embedded PGlite under
// DATA_DIR (embedded.ts). Migrations are applied before the Prisma client is handed out.
import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { PrismaClient } from "./generated/client.ts";
import { openEmbedded } from "./embedded.ts";
import { applyMigrations, readMigrations, type SqlSession } from "./migrate.ts";
import { PrismaChatStore } from "./prisma-store.ts";

export interface DatabaseOptions {
  databaseUrl?: string | undefined;
  dataDir: string;
  poolSize?: number;
  /**
   * The store's deadline (STORE_TIMEOUT_MS): a write that waited this long behind others is
   * refused unrun (see GroupScheduler), no write sends its COMMIT later than this after the call
   * (see PrismaChatStore), and PostgreSQL itself ends any statement, or any transaction left
   * idle, that outlasts it. Default 5000.
   */
  writeTimeoutMs?: number;
  /** Write batches in flight at once, never two holding one group (see GroupScheduler). Default 4. */
  writeConcurrency?: number;
  /**
   * Under load, write batches start at most this often, each carrying what came meanwhile.
   * Default 5 ms; 0 starts one at once for every ready group, up to `writeConcurrency`.
   */
  writeBatchLingerMs?: number;
  /** Webhooks configured: write a webhook outbox row with every stored event (see outbox.ts). */
  webhookOutbox?: boolean;
  /** Told the size of every write batch the store starts (items; a solo update or delete is not a batch). */
  onWriteBatch?: (items: number) => void;
  /** An idle pooled connection failed (PostgreSQL ended it: a restart, a failover, an admin); the pool drops it. */
  onPoolError?: (err: Error) => void;
  /** Embedded only: told why a fresh data directory is made by initdb instead of unpacked from the build's template. */
  onTemplateSkipped?: (reason: string) => void;
}

export interface Database {
  store: PrismaChatStore;
  prisma: PrismaClient;
  kind: "postgresql" | "pglite";
  migrationsApplied: string[];
  /** Embedded only: where its data directory came from (see embedded.ts). */
  dataDirFrom?: "template" | "initdb" | "existing";
}

/** Applies pending migrations to the PostgreSQL at `url` on one dedicated connection. */
export async function migratePostgres(url: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const session: SqlSession = { query: (sql, params) => client.query(sql, params) as never, exec: (sql) => client.query(sql) };
    return await applyMigrations(session, await readMigrations());
  } finally {
    await client.end();
  }
}

/**
 * The write scheduler's pacing (see group-scheduler.ts): one batch at a time, at most every
 * WRITE_BATCH_LINGER_MS under load; a second one (up to WRITE_CONCURRENCY) only for groups kept
 * waiting 50 ms by a slow batch, or when a full batch (500) waits.
 */
const STALL_MS = 50;

/**
 * A write may wait in the scheduler's queue for four fifths of the store's deadline at most: the
 * rest is its batch's, so under overload the excess is refused `unavailable` (load shed) rather
 * than started with no time left. A write that still cannot send its COMMIT within the deadline
 * is refused by PrismaChatStore without opening the store's circuit (the store guard waits the
 * deadline plus a margin), so the queue may use most of the deadline.
 */
export const batchingFor = (opts: DatabaseOptions) => {
  const deadlineMs = opts.writeTimeoutMs ?? 5_000;
  return { concurrency: opts.writeConcurrency ?? 4, maxBatch: 500, maxWaitMs: Math.floor((deadlineMs * 4) / 5), deadlineMs, fillBatch: 500, lingerMs: opts.writeBatchLingerMs ?? 5, stallMs: STALL_MS, onBatch: opts.onWriteBatch };
};

export async function openDatabase(opts: DatabaseOptions): Promise<Database> {
  if (opts.databaseUrl) {
    const migrationsApplied = await migratePostgres(opts.databaseUrl);
    const deadlineMs = opts.writeTimeoutMs ?? 5_000;
    // One pool for Prisma and for the create batch's statement, which goes to pg directly so that
    // files reach PostgreSQL as binary parameters (see create-batch.ts).
    const pool = new pg.Pool({
      connectionString: opts.databaseUrl,
      max: opts.poolSize ?? 10,
      // Every bound below the store's deadline: by the time a frame is answered `unavailable`,
      // whatever it started is over or doomed, and cannot commit much later.
      connectionTimeoutMillis: Math.max(50, Math.floor(deadlineMs / 2)),
      // A silent network (no RST, no answer) must end in `unavailable`, not in frames that hang
      // and then run much later: give up on a query at the deadline, and notice dead peers.
      query_timeout: deadlineMs,
      keepAlive: true,
      // The server's side of the same bound: a statement (a lock wait included) that outlasts
      // the deadline is cancelled there.
      statement_timeout: deadlineMs,
      // A node cut off mid-transaction must not hold its groups' row locks, and a COMMIT stuck in
      // a stalled network must not arrive later and apply: the server aborts a transaction left
      // idle this long.
      idle_in_transaction_session_timeout: deadlineMs,
    });
    // An idle client that PostgreSQL ends emits 'error' on the pool; with no listener that would
    // end the process. The pool has already dropped it; the next query opens a new one.
    pool.on("error", (err) => opts.onPoolError?.(err));
    const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
    const driver = { query: async <T>(sql: string, params: unknown[]) => (await pool.query(sql, params)).rows as T[], close: () => pool.end() };
    return { store: new PrismaChatStore(prisma, driver, batchingFor(opts), opts.webhookOutbox), prisma, kind: "postgresql", migrationsApplied };
  }
  const embedded = await openEmbedded(opts.dataDir, await readMigrations(), { onTemplateSkipped: opts.onTemplateSkipped });
  const { PrismaPGlite } = await import("pglite-prisma-adapter");
  const prisma = new PrismaClient({ adapter: new PrismaPGlite(embedded.lite) });
  const store = new PrismaChatStore(prisma, { close: embedded.close }, batchingFor(opts), opts.webhookOutbox);
  return { store, prisma, kind: "pglite", migrationsApplied: embedded.migrationsApplied, dataDirFrom: embedded.dataDirFrom };
}
