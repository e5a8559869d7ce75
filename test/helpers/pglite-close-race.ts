// Run as its own process by test/store/embedded.test.ts: PGlite closed while queries and a
// transaction are in flight. Its own process because the failure this guards against
// (electric-sql/pglite#1058) is a synchronous loop that never returns: the test process must
// be able to kill it and report, not hang with it.
//
//   node --import tsx test/helpers/pglite-close-race.ts <data dir, unpacked from the template>
//
// Prints one JSON line: each operation's outcome, and whether a timer fired meanwhile.
import { PGlite } from "@electric-sql/pglite";
import { closeWhenIdle, EMBEDDED_SETTINGS } from "../../src/store/embedded.ts";

const lite = await PGlite.create({ dataDir: process.argv[2]!, startParams: [...PGlite.defaultStartParams, ...EMBEDDED_SETTINGS] });
const close = closeWhenIdle(lite);
let ticks = 0;
const ticker = setInterval(() => ticks++, 5);

const outcome = (p: Promise<unknown>) =>
  p.then(
    (v) => ({ ok: true, value: (v as { rows?: unknown[] })?.rows ?? null }),
    (e: Error) => ({ ok: false, error: e.message }),
  );
await lite.exec("CREATE TABLE t (n int)");
// In flight when close() is called: lone queries, and a transaction that is between statements.
const inflight = [
  outcome(lite.query("SELECT 1 AS n")),
  outcome(lite.query("INSERT INTO t VALUES (1) RETURNING n")),
  outcome(
    lite.transaction(async (tx) => {
      await tx.query("INSERT INTO t VALUES (2)");
      await new Promise((r) => setTimeout(r, 50));
      await tx.query("INSERT INTO t VALUES (3)");
      return { rows: [(await tx.query<{ c: number }>("SELECT count(*)::int AS c FROM t")).rows[0]!.c] };
    }),
  ),
];
const closed = outcome(close());
const closedAgain = outcome(close());
const late = outcome(lite.query("SELECT 3"));
const [queries, closedResult, closedAgainResult, lateResult] = await Promise.all([Promise.all(inflight), closed, closedAgain, late]);
clearInterval(ticker);
console.log(JSON.stringify({ queries, closed: closedResult, closedAgain: closedAgainResult, late: lateResult, ticks, isClosed: lite.closed }));
