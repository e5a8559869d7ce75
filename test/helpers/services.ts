// The real PostgreSQL and Redis every test uses. When one is down the test fails, naming it:
// a suite that skips silently would pass without testing anything.
import { randomBytes } from "node:crypto";
import pg from "pg";
import { Redis } from "ioredis";
import type { Test } from "tap";

export const PG_ADMIN_URL = process.env.TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
export const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

async function adminClient(): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 3_000 });
  try {
    await client.connect();
  } catch (err) {
    throw new Error(`PostgreSQL is required at ${PG_ADMIN_URL} and is not reachable (${(err as Error).message}); start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`);
  }
  return client;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
};

/**
 * Drops test databases whose test process is gone: tap skips teardowns when a file's top-level
 * set-up throws, and a killed run leaves its databases behind too.
 */
async function dropOrphans(admin: pg.Client): Promise<void> {
  const { rows } = await admin.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE 'chat\_test\_%'`);
  for (const { datname } of rows) {
    const pid = Number(/^chat_test_(\d+)_/.exec(datname)?.[1]);
    if (pid && !alive(pid)) await admin.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`).catch(() => {});
  }
}

/** A new, empty database for this test file, dropped when the test ends. */
export async function freshDatabase(t: Test): Promise<string> {
  const name = `chat_test_${process.pid}_${randomBytes(4).toString("hex")}`;
  const admin = await adminClient();
  await dropOrphans(admin);
  await admin.query(`CREATE DATABASE "${name}"`);
  await admin.end();
  t.teardown(async () => {
    const c = await adminClient();
    await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await c.end();
  });
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Fails the test run loudly when Redis is down. */
export async function requireRedis(): Promise<void> {
  const r = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  try {
    await r.connect();
    await r.ping();
  } catch (err) {
    throw new Error(`Redis is required at ${REDIS_URL} and is not reachable (${(err as Error).message}); start it with: redis-server --daemonize yes --port 6379 --save "" --appendonly no`);
  } finally {
    r.disconnect();
  }
}

/** A plain Redis connection for inspecting the server (PUBSUB CHANNELS …), closed at teardown. */
export function redisClient(t: Test): Redis {
  const r = new Redis(REDIS_URL);
  t.teardown(() => void r.disconnect());
  return r;
}

/** A plain SQL connection to a test database, closed at teardown. */
export async function sql(t: Test, url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  t.teardown(() => c.end());
  return c;
}
