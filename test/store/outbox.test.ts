// The webhook outbox's claim rules against PostgreSQL: a group goes to one claimer at a time with
// its rows in seq order; a group backing off or whose head is leased is skipped whole; dead rows
// no longer block their group; an expired lease goes to the next claimer; under more groups than
// room, every group gets its turn; only the lease's owner can settle its rows.
import t from "tap";
import { openDatabase } from "../../src/store/database.ts";
import { PrismaWebhookOutbox } from "../../src/store/prisma-outbox.ts";
import { freshDatabase, sql } from "../helpers/services.ts";

const url = await freshDatabase(t);
const db = await openDatabase({ databaseUrl: url, dataDir: "unused" });
t.teardown(() => db.store.close());
const pg = await sql(t, url);
const add = (group: string, seqs: number[]) => pg.query(`INSERT INTO webhook_outbox (group_name, seq) SELECT $1, unnest($2::int[])`, [group, seqs]);
const reset = () => pg.query(`DELETE FROM webhook_outbox`);
const claimShape = (c: { group: string; seq: number }[][]) => c.map((rows) => [rows[0]!.group, rows.map((r) => r.seq)]).sort();

t.test("a group is claimed by one owner at a time, its rows in seq order, up to perGroup", async (t) => {
  await reset();
  await add("a", [3, 1, 2]);
  await add("b", [7]);
  const box = new PrismaWebhookOutbox(db.prisma);
  const first = await box.claim("n1", { groups: 10, perGroup: 2, leaseMs: 60_000 });
  t.same(claimShape(first), [["a", [1, 2]], ["b", [7]]]);
  t.same(await new PrismaWebhookOutbox(db.prisma).claim("n2", { groups: 10, perGroup: 10, leaseMs: 60_000 }), [], "another owner gets nothing: a's head is leased, and so is b's");
  await box.delivered("n1", "a", [1]);
  t.same((await pg.query(`SELECT seq, lease_owner FROM webhook_outbox WHERE group_name = 'a' ORDER BY seq`)).rows, [{ seq: 2, lease_owner: null }, { seq: 3, lease_owner: null }], "delivered rows are gone, the rest released");
  await box.delivered("n2", "b", [7]);
  t.equal((await pg.query(`SELECT count(*)::int AS n FROM webhook_outbox WHERE group_name = 'b'`)).rows[0].n, 1, "only the lease's owner can settle its rows");
});

t.test("a failing head backs its group off and is dead-lettered on the last attempt; dead rows do not block", async (t) => {
  await reset();
  await add("a", [1, 2]);
  await add("b", [1]);
  const box = new PrismaWebhookOutbox(db.prisma);
  await box.claim("n1", { groups: 10, perGroup: 10, leaseMs: 60_000 });
  await box.failed("n1", "a", 1, "HTTP 500", 60_000, false);
  await box.delivered("n1", "b", [1]);
  t.same(await box.claim("n1", { groups: 10, perGroup: 10, leaseMs: 60_000 }), [], "a backs off (its seq 2 waits behind seq 1)");
  await pg.query(`UPDATE webhook_outbox SET next_attempt_at = now() WHERE group_name = 'a'`);
  t.same(claimShape(await box.claim("n1", { groups: 10, perGroup: 10, leaseMs: 60_000 })), [["a", [1, 2]]], "due again");
  await box.failed("n1", "a", 1, "HTTP 500", 0, true);
  t.same(claimShape(await box.claim("n1", { groups: 10, perGroup: 10, leaseMs: 60_000 })), [["a", [2]]], "the dead row no longer blocks");
  t.same(await box.counts(), { pending: 1, dead: 1 });
  t.match(await box.deadLetters(10), [{ group: "a", seq: 1, attempts: 2, lastError: "HTTP 500" }]);
  t.equal(await box.requeue({ group: "a" }), 1);
  t.same(await box.counts(), { pending: 2, dead: 0 });
});

t.test("an expired lease goes to the next claimer; releaseAll frees a node's groups", async (t) => {
  await reset();
  await add("a", [1]);
  await add("b", [1]);
  const box = new PrismaWebhookOutbox(db.prisma);
  t.equal((await box.claim("dead-node", { groups: 1, perGroup: 10, leaseMs: 1 })).length, 1);
  await new Promise((r) => setTimeout(r, 20));
  const taken = await box.claim("n2", { groups: 10, perGroup: 10, leaseMs: 60_000 });
  t.same(claimShape(taken), [["a", [1]], ["b", [1]]], "the expired lease is taken over");
  await box.releaseAll("n2");
  t.equal((await box.claim("n3", { groups: 10, perGroup: 10, leaseMs: 60_000 })).length, 2);
});

t.test("with more groups than room, successive claims take every group in turn", async (t) => {
  await reset();
  const groups = Array.from({ length: 10 }, (_, i) => `g${i}`);
  for (const g of groups) await add(g, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  const box = new PrismaWebhookOutbox(db.prisma);
  const served = new Set<string>();
  for (let round = 0; round < 4; round++) {
    const claimed = await box.claim("n1", { groups: 3, perGroup: 1, leaseMs: 60_000 });
    t.equal(claimed.length, 3);
    for (const rows of claimed) {
      served.add(rows[0]!.group);
      await box.delivered("n1", rows[0]!.group, [rows[0]!.seq]);
    }
  }
  t.same([...served].sort(), groups.sort(), "no group waits while others are served again");
});
