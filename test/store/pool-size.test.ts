// DATABASE_POOL_SIZE bounds the PostgreSQL connections a node opens, whatever the load: many
// concurrent history reads queue for a connection instead of opening more.
import t, { type Test } from "tap";
import { loadConfig } from "../../src/config/env.ts";
import { startInProcess } from "../helpers/node.ts";
import { uniqueGroup } from "../helpers/probe.ts";
import { freshDatabase, PG_ADMIN_URL, sql } from "../helpers/services.ts";

/** The most connections the node held to its database while 60 history reads ran at once. */
async function peakConnections(t: Test, poolSize?: string): Promise<number> {
  const url = await freshDatabase(t);
  const node = await startInProcess(t, { DATABASE_URL: url, ...(poolSize ? { DATABASE_POOL_SIZE: poolSize } : {}) });
  const admin = await sql(t, PG_ADMIN_URL);
  const name = new URL(url).pathname.slice(1);
  const count = async () =>
    Number((await admin.query(`SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, [name])).rows[0].n);
  let peak = 0;
  let reading = true;
  const sampler = (async () => {
    while (reading) {
      peak = Math.max(peak, await count());
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  const base = `http://127.0.0.1:${node.port}/api/groups`;
  const reads = Array.from({ length: 60 }, () => fetch(`${base}/${uniqueGroup("pool")}/messages?user=u`).then((r) => r.status));
  const statuses = await Promise.all(reads);
  reading = false;
  await sampler;
  t.same(new Set(statuses), new Set([200]), "every read is answered");
  return peak;
}

t.test("the default pool is 10 connections", async (t) => {
  t.equal(loadConfig({}).DATABASE_POOL_SIZE, 10);
  t.ok((await peakConnections(t)) <= 10, "never more than 10 connections");
});

t.test("DATABASE_POOL_SIZE=2: at most 2 connections under 60 concurrent reads", async (t) => {
  const peak = await peakConnections(t, "2");
  t.ok(peak >= 1 && peak <= 2, `peak ${peak}`);
});

t.test("a pool size that is not a positive integer stops the node", async (t) => {
  for (const bad of ["0", "-1", "abc", "1001"]) t.throws(() => loadConfig({ DATABASE_POOL_SIZE: bad }), /DATABASE_POOL_SIZE/);
});
