// Conversation list benchmark (issue 12): the list of a user in 500 groups, with 1M messages
// stored, must answer in <= 20 ms p99. Fills a fresh PostgreSQL database with SQL (2,000 groups
// x 500 messages and their events; the user is a member of every 4th group with a random
// marker, 20 other members per group), then times the store's one-statement query, a page of 50
// and of 100, beside the cheapest store call (a group's last seq, by primary key) and the
// statement as it was before groups.last_event_at (alternating with it) in the same run.
//
//   npx tsx bench/conversations.ts [--groups 2000] [--per-group 500] [--member-of 500] [--runs 300]
//
// Writes bench/results/conversations-<time>.json and prints a summary with the query plan.
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { openDatabase } from "../src/store/database.ts";
import { CONVERSATIONS_SQL, PrismaReadState } from "../src/store/prisma-read-state.ts";
import { newHistogram, summarize } from "./lib/histogram.ts";
import { benchDir } from "./lib/paths.ts";

const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return Number(i > 0 ? process.argv[i + 1]! : def);
};
const GROUPS = arg("groups", "2000");
const PER_GROUP = arg("per-group", "500");
const MEMBER_OF = arg("member-of", "500");
const RUNS = arg("runs", "300");
const PG_ADMIN = process.env.BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** The list as it was before groups.last_event_at (each group's newest event looked up in group_events). */
const BEFORE_SQL = CONVERSATIONS_SQL.replace(
  `COALESCE(g."last_event_at", mb."joined_at") AS last_activity`,
  `COALESCE(ge."created_at", mb."joined_at") AS last_activity`,
)
  .replace(`LEFT JOIN "groups" g ON g."name" = mb."group_name"`, `LEFT JOIN "groups" g ON g."name" = mb."group_name"
    LEFT JOIN "group_events" ge ON ge."group_name" = mb."group_name" AND ge."seq" = g."last_seq"`)
  .replace(`(COALESCE(g."last_event_at", mb."joined_at"), mb."group_name") <`, `(COALESCE(ge."created_at", mb."joined_at"), mb."group_name") <`);
if (!BEFORE_SQL.includes("group_events") || BEFORE_SQL.includes("last_event_at")) throw new Error("BEFORE_SQL no longer matches CONVERSATIONS_SQL's shape");

const name = `chat_bench_conv_${process.pid}_${randomBytes(3).toString("hex")}`;
const admin = new pg.Client({ connectionString: PG_ADMIN });
await admin.connect();
await admin.query(`CREATE DATABASE "${name}"`);
const url = new URL(PG_ADMIN);
url.pathname = `/${name}`;
const db = await openDatabase({ databaseUrl: url.toString(), dataDir: "unused" });
const sql = new pg.Client({ connectionString: url.toString() });
await sql.connect();

try {
  const t0 = performance.now();
  const every = Math.max(1, Math.floor(GROUPS / MEMBER_OF));
  await sql.query(`INSERT INTO groups (name, last_seq, created_at) SELECT 'g' || g, $2, now() FROM generate_series(1, $1) g`, [GROUPS, PER_GROUP]);
  // Messages by 20 users; every 10th deleted; created one second apart per seq, groups staggered.
  await sql.query(`
    INSERT INTO messages (id, group_name, user_id, type, body, created_at, seq, deleted)
    SELECT 'm' || g || '_' || s, 'g' || g, 'u' || ((g + s) % 20), 'text', CASE WHEN s % 10 = 0 THEN NULL ELSE 'message ' || s END,
           now() - interval '1 day' + (s * interval '1 second') + (g * interval '1 millisecond'), s, s % 10 = 0
    FROM generate_series(1, $1) g, generate_series(1, $2) s`, [GROUPS, PER_GROUP]);
  await sql.query(`
    INSERT INTO group_events (group_name, seq, operation, message_id, user_id, created_at)
    SELECT group_name, seq, 'create', id, user_id, created_at FROM messages`);
  // As the writers keep it (and migration 20261206140000 filled it): the newest event's time.
  await sql.query(`UPDATE groups g SET last_event_at = ge.created_at FROM group_events ge WHERE ge.group_name = g.name AND ge.seq = g.last_seq`);
  await sql.query(`
    INSERT INTO memberships (user_id, group_name, read_seq, joined_at)
    SELECT 'me', 'g' || g, (random() * $2)::int, now() - interval '2 days' FROM generate_series(1, $1) g WHERE g % $3 = 0`, [GROUPS, PER_GROUP, every]);
  await sql.query(`
    INSERT INTO memberships (user_id, group_name, read_seq, joined_at)
    SELECT 'u' || u, 'g' || g, (random() * $2)::int, now() - interval '2 days' FROM generate_series(1, $1) g, generate_series(0, 19) u`, [GROUPS, PER_GROUP]);
  await sql.query("VACUUM ANALYZE"); // old messages are all-visible, as autovacuum leaves them
  const fillS = (performance.now() - t0) / 1000;
  const counts = (await sql.query(`SELECT (SELECT count(*) FROM messages)::int AS messages, (SELECT count(*) FROM memberships WHERE user_id = 'me')::int AS mine`)).rows[0];

  const reads = new PrismaReadState(db.prisma);
  /** Times `runs` in turn (so that each sees the same machine), RUNS times each after a warm-up. */
  type Summary = ReturnType<typeof summarize>;
  const time = async (...runs: (() => Promise<unknown>)[]): Promise<Summary[]> => {
    for (let i = 0; i < 20; i++) for (const run of runs) await run(); // warm-up
    const hs = runs.map(() => newHistogram());
    for (let i = 0; i < RUNS; i++) {
      for (const [k, run] of runs.entries()) {
        const s = performance.now();
        await run();
        hs[k]!.recordValue(Math.max(1, Math.round((performance.now() - s) * 1000)));
      }
    }
    return hs.map((h) => summarize(h));
  };
  // The statement before groups.last_event_at, timed on the same database in the same run.
  const before = (limit: number) => db.prisma.$queryRawUnsafe(BEFORE_SQL, "me", limit + 1, null, null);
  const first = await reads.conversations("me", { limit: 50 });
  const [page50, page50Before] = (await time(() => reads.conversations("me", { limit: 50 }), () => before(50))) as [Summary, Summary];
  const [page100, page100Before] = (await time(() => reads.conversations("me", { limit: 100 }), () => before(100))) as [Summary, Summary];
  const cursor = first.conversations.at(-1)!;
  const [later] = (await time(() => reads.conversations("me", { limit: 50, before: { at: cursor.lastActivity, group: cursor.group } }))) as [Summary];
  let g = 0;
  const [baseline] = (await time(() => db.store.lastSeq(`g${(g++ % GROUPS) + 1}`))) as [Summary];
  const explain = async (text: string) => (await sql.query(`EXPLAIN (ANALYZE, BUFFERS) ${text}`, ["me", 51, null, null])).rows.map((r) => r["QUERY PLAN"]).join("\n");
  const plan = await explain(CONVERSATIONS_SQL);
  const planBefore = await explain(BEFORE_SQL);
  const loadavg = os.loadavg();

  const result = {
    at: new Date().toISOString(),
    loadavg,
    groups: GROUPS,
    perGroup: PER_GROUP,
    ...counts,
    fillS,
    runs: RUNS,
    page50,
    page100,
    secondPage50: later,
    baselineLastSeq: baseline,
    before: { page50: page50Before, page100: page100Before },
    plan,
    planBefore,
  };
  const file = path.join(benchDir, "results", `conversations-${Date.now()}.json`);
  await writeFile(file, JSON.stringify(result, null, 2));
  console.log(`${counts.messages} messages in ${GROUPS} groups (filled in ${fillS.toFixed(1)} s); the user is in ${counts.mine} groups`);
  console.log(`conversation list, page of 50:  p50 ${page50.p50} ms, p99 ${page50.p99} ms`);
  console.log(`conversation list, page of 100: p50 ${page100.p50} ms, p99 ${page100.p99} ms`);
  console.log(`second page of 50 (cursor):     p50 ${later.p50} ms, p99 ${later.p99} ms`);
  console.log(`baseline, last seq by key:      p50 ${baseline.p50} ms, p99 ${baseline.p99} ms`);
  console.log(`before last_event_at, page of 50:  p50 ${page50Before.p50} ms, p99 ${page50Before.p99} ms`);
  console.log(`before last_event_at, page of 100: p50 ${page100Before.p50} ms, p99 ${page100Before.p99} ms`);
  console.log(`load average ${loadavg.map((l) => l.toFixed(1)).join(" ")}`);
  console.log(plan);
  console.log(`written to ${file}`);
} finally {
  await sql.end();
  await db.store.close();
  await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await admin.end();
}
