// Fault injection: the node's link to PostgreSQL is cut (through a TCP proxy in this test) and
// restored, without restarting the node. While it is cut every stored operation is answered
// `unavailable` (one answer per frame, within seconds: never an ack, never silence), typing keeps
// working, /readyz stays 200 and reports the database down (readiness fails only for a node's own
// reasons: a shared outage must not empty the load balancer); once restored the node recovers by itself. Nothing answered
// `unavailable` is stored, everything acknowledged is, and a sender that retries `unavailable`
// with the same request_id ends up with each message stored exactly once.
import t, { type Test } from "tap";
import { spawnNode } from "../helpers/node.ts";
import { eventually, httpGet, metric, statusOf, uniqueGroup } from "../helpers/probe.ts";
import { freshDatabase, PG_ADMIN_URL, sql } from "../helpers/services.ts";
import { TcpProxy, type ProxyMode } from "../helpers/tcp-proxy.ts";
import { assertSeqs, range, Recorder, repeats, type Answer } from "../helpers/delivery.ts";

const url = await freshDatabase(t);
const pgTarget = new URL(PG_ADMIN_URL);
const proxy = await TcpProxy.start(t, Number(pgTarget.port || 5432), pgTarget.hostname);
const proxied = new URL(url);
proxied.hostname = "127.0.0.1";
proxied.port = String(proxy.port);
const node = await spawnNode(t, { DATABASE_URL: proxied.toString() });
const db = await sql(t, url); // direct, not through the proxy
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Every answer must come within this long, even while the database is unreachable. */
const ANSWER_MS = 15_000;

/** /readyz's status and what its body says about the database (from the node's background probe). */
const readyz = async () => {
  const r = await httpGet(node.port, "/readyz", 5_000);
  if (!("status" in r)) return r.error;
  const up = (JSON.parse(r.body) as { dependencies?: { database?: { up?: boolean } } }).dependencies?.database?.up;
  return `${r.status} database ${up ? "up" : "down"}`;
};

interface Retrying {
  rec: Recorder;
  /** Per request_id: every answer it got (the last is an ack unless given up). */
  log: Map<string, { body: string; answers: (Answer | "closed" | "timeout")[] }>;
  stop(): Promise<void>;
}

/** Creates messages one after another; an `unavailable` (or silence) is retried with the same request_id until acknowledged. */
function retryingSender(rec: Recorder): Retrying {
  const log: Retrying["log"] = new Map();
  let stopped = false;
  const done = (async () => {
    for (let k = 0; !stopped; k++) {
      const rid = `${rec.name}-${k}`;
      const entry = { body: `${rec.name} #${k}`, answers: [] as (Answer | "closed" | "timeout")[] };
      log.set(rid, entry);
      for (;;) {
        const a = await rec.ask({ operation: "create", type: "text", body: entry.body }, rid, ANSWER_MS);
        entry.answers.push(a);
        if (typeof a !== "string" && a.operation === "ack") break;
        if (typeof a !== "string" && a.operation === "error" && a.code !== "unavailable") break;
        if (a === "closed") return;
        await sleep(100); // unavailable or silence: retry the same request
      }
      await sleep(10);
    }
  })();
  return {
    rec,
    log,
    stop: async () => {
      stopped = true;
      await done;
    },
  };
}

async function outage(t: Test, mode: Exclude<ProxyMode, "open">) {
  const g = uniqueGroup(`pg-${mode}`);
  const logsFrom = node.logs.length;

  const alice = new Recorder("alice", "alice");
  const bob = new Recorder("bob", "bob");
  const carol = new Recorder("carol", "carol");
  const dave = new Recorder("dave", "dave");
  for (const r of [alice, bob, carol, dave]) await r.connect(t, node.port, g);
  t.ok(await eventually(async () => (await readyz()) === "200 database up", 10_000, 100), "ready, and the database reported up, before the cut");
  const first = await alice.ask({ operation: "create", type: "text", body: "before the cut" }, "a-first", ANSWER_MS);
  t.match(first, { operation: "ack", seq: 1 }, "a create is acknowledged before the cut");
  const m0 = (first as { message_id: string }).message_id;

  const carolLoop = retryingSender(carol);
  await sleep(700);

  // --- the cut ---
  const cutAt = Date.now();
  await proxy.cut(mode);
  t.ok(await eventually(async () => (await readyz()) === "200 database down", 8_000, 100), `/readyz reports the database down and stays 200 (${Date.now() - cutAt} ms after the cut)`);
  t.equal(await metric(node.port, "chat_db_up"), 0, "chat_db_up is 0");

  // Every stored operation, sent only after the cut, answered `unavailable`; typing still works.
  const probes: { rid: string; frame: Record<string, unknown> }[] = [
    ...[0, 1, 2].map((i) => ({ rid: `a-create-${i}`, frame: { operation: "create", type: "text", body: `${g} during the cut ${i}` } })),
    { rid: "a-reply", frame: { operation: "reply", message_id: m0, type: "text", body: `${g} reply during the cut` } },
    { rid: "a-update", frame: { operation: "update", message_id: m0, body: `${g} edited during the cut` } },
    { rid: "a-delete", frame: { operation: "delete", message_id: m0 } },
    { rid: "a-seen", frame: { operation: "seen", message_id: m0 } },
    { rid: "a-history", frame: { operation: "history" } },
  ];
  const sentAt = Date.now();
  // All at once, pipelined on one socket: each must still get its own answer.
  for (const p of probes) alice.client!.send({ ...p.frame, request_id: p.rid });
  const typing = await dave.ask({ operation: "typing", typing_status: "typing" }, "d-typing", 5_000);
  t.same(typing, { operation: "ack", group: g, request_id: "d-typing" }, "typing is acknowledged while the database is cut");
  t.ok(await bob.until(() => bob.client!.received.some((f) => f.operation === "typing" && f.user === "dave"), 3_000), "and broadcast");

  const answered = await alice.until(() => probes.every((p) => alice.answers.has(p.rid)), ANSWER_MS + probes.length * 1_000);
  const slowest = Date.now() - sentAt;
  t.ok(answered, `every frame sent during the cut is answered (the last after ${slowest} ms)`);
  t.ok(slowest <= ANSWER_MS, `all answered within ${ANSWER_MS} ms (${slowest} ms)`);
  for (const p of probes) {
    t.match(alice.answers.get(p.rid), [{ operation: "error", code: "unavailable", request_id: p.rid }], `${p.frame.operation} during the cut: unavailable`);
  }

  // The cut lasts; the node stays ready, reports it, and does not crash.
  await sleep(500);
  t.equal(await readyz(), "200 database down", "still reported down while the database is cut");
  t.equal(await statusOf(node.port, "/healthz"), 200, "but alive");

  // --- restore ---
  await proxy.restore();
  const restoredAt = Date.now();
  let firstAckMs = -1;
  const retries: string[] = [];
  for (let i = 0; Date.now() - restoredAt < 30_000; i++) {
    const rid = `a-after-${i}`;
    retries.push(rid);
    const a = await alice.ask({ operation: "create", type: "text", body: `${g} after the restore ${i}` }, rid, ANSWER_MS);
    if (typeof a !== "string" && a.operation === "ack") {
      firstAckMs = Date.now() - restoredAt;
      break;
    }
    t.match(a, { operation: "error", code: "unavailable" }, `before recovery a create is still answered unavailable (${rid})`);
    await sleep(100);
  }
  t.ok(firstAckMs >= 0, `creates are acknowledged again without a restart (${firstAckMs} ms after the restore)`);
  const readyMs = (await eventually(async () => (await readyz()) === "200 database up", 15_000, 100)) ? Date.now() - restoredAt : -1;
  t.ok(readyMs >= 0, `/readyz reports the database up again (${readyMs} ms after the restore)`);
  t.equal(await metric(node.port, "chat_db_up"), 1, "chat_db_up is 1 again");
  t.comment(`pg ${mode}: slowest answer during the cut ${slowest} ms; first ack ${firstAckMs} ms and database up in readyz ${readyMs} ms after the restore`);
  t.comment(
    `pg ${mode}: answers to the frames sent during the cut: ${JSON.stringify(
      probes.map((p) => {
        const a = alice.answers.get(p.rid)?.[0];
        const at = alice.answeredAt.get(p.rid);
        return { rid: p.rid, answer: a ? (a.operation === "error" ? a.code : a.operation) : null, ms: at ? at - sentAt : null, afterRestore: at ? at >= restoredAt : null };
      }),
    )}`,
  );
  await sleep(700);
  await carolLoop.stop();

  // --- the verdict ---
  await sleep(300);
  const doubles = [...alice.answers].filter(([, as]) => as.length > 1);
  t.same(doubles, [], "no frame is answered twice");
  const carolAnswers = [...carolLoop.log.values()].flatMap((e) => e.answers);
  t.same(carolAnswers.filter((a) => typeof a === "string"), [], "carol's creates were never met with silence");
  t.same(
    carolAnswers.filter((a) => typeof a !== "string" && !(a.operation === "ack" || (a.operation === "error" && a.code === "unavailable"))),
    [],
    "carol's creates were only acknowledged or refused as unavailable",
  );
  const carolUnavailable = [...carolLoop.log.values()].filter((e) => e.answers.some((a) => typeof a !== "string" && a.operation === "error")).length;
  t.ok(carolUnavailable > 0, `the cut was felt by the continuous sender (${carolUnavailable} of its creates were retried)`);

  const rows = (await db.query("SELECT id, seq, body, user_id, request_id, deleted, updated_at FROM messages WHERE group_name = $1 ORDER BY seq", [g])).rows as {
    id: string;
    seq: number;
    body: string;
    user_id: string;
    request_id: string | null;
    deleted: boolean;
    updated_at: Date | null;
  }[];
  const bodies = new Set(rows.map((r) => r.body));
  const unavailable = (rid: string) => {
    const as = alice.answers.get(rid);
    return as !== undefined && as.every((a) => a.operation === "error" && a.code === "unavailable");
  };
  const bodyOf = (rid: string) => (rid.startsWith("a-after-") ? `${g} after the restore ${rid.slice(8)}` : (probes.find((p) => p.rid === rid)?.frame.body as string | undefined));
  const refused = [...probes.map((p) => p.rid), ...retries].filter((rid) => unavailable(rid) && bodyOf(rid) !== undefined);
  t.same(refused.filter((rid) => bodies.has(bodyOf(rid)!)), [], `nothing answered unavailable was stored (${refused.length} creates and replies refused)`);
  const m0row = rows.find((r) => r.id === m0);
  if (unavailable("a-update")) t.match(m0row, { body: "before the cut", updated_at: null }, "the update refused during the cut changed nothing");
  if (unavailable("a-delete")) t.match(m0row, { deleted: false }, "the delete refused during the cut changed nothing");
  const changes = (await db.query("SELECT operation FROM group_events WHERE group_name = $1 AND operation IN ('update', 'delete')", [g])).rows.map((r: { operation: string }) => r.operation);
  t.same(changes.sort(), ["update", "delete"].filter((op) => !unavailable(`a-${op}`)).sort(), "an update or delete is logged only if it was not refused");
  if (unavailable("a-seen")) t.equal((await db.query("SELECT count(*)::int AS n FROM seen_receipts WHERE message_id = $1", [m0])).rows[0].n, 0, "the refused seen stored nothing");

  const isCreate = (rid: string) => rid === "a-first" || rid.startsWith("a-after-") || rid.startsWith("a-create-") || rid.startsWith("carol-");
  const acked = [...alice.answers.values(), ...carol.answers.values()]
    .flat()
    .filter((a): a is Extract<Answer, { operation: "ack" }> => a.operation === "ack" && isCreate(a.request_id));
  const byId = new Map(rows.map((r) => [r.id, r]));
  t.same(acked.filter((a) => !byId.has(a.message_id!) || byId.get(a.message_id!)!.seq !== a.seq), [], "every acknowledged create is stored with its seq");
  t.same(repeats(rows.filter((r) => r.request_id !== null).map((r) => `${r.user_id}/${r.request_id}`)), [], "no request stored twice");
  const carolAcked = [...carolLoop.log].filter(([, e]) => e.answers.some((a) => typeof a !== "string" && a.operation === "ack"));
  const ackedRids = new Set(carolAcked.map(([rid]) => rid));
  t.same(
    rows.filter((r) => r.user_id === "carol" && !ackedRids.has(r.request_id!)).map((r) => ({ rid: r.request_id, seq: r.seq, answers: carolLoop.log.get(r.request_id!)?.answers })),
    [],
    "carol: nothing stored for a request that was never acknowledged",
  );
  t.equal(rows.filter((r) => r.user_id === "carol").length, carolAcked.length, "carol: one stored message per acknowledged request");
  for (const [rid, e] of carolAcked) {
    const row = rows.find((r) => r.user_id === "carol" && r.request_id === rid);
    if (!row || row.body !== e.body) t.fail(`carol's ${rid} is stored with its body`);
  }

  const logged = (await db.query("SELECT seq FROM group_events WHERE group_name = $1 ORDER BY seq", [g])).rows.map((r: { seq: number }) => r.seq);
  const N = logged.length;
  t.same(logged, range(N), `the group's event log holds seq 1..${N}: refusals took no seq`);
  const last = (await db.query("SELECT last_seq FROM groups WHERE name = $1", [g])).rows[0]?.last_seq;
  t.equal(last, N, "the group's counter is N");
  for (const r of [alice, bob, carol, dave]) await r.until(() => r.seqs.length >= N, 5_000);
  await sleep(300);
  for (const r of [alice, bob, carol, dave]) assertSeqs(t, r, N);
  for (const r of [alice, bob, carol, dave]) r.client?.ws.terminate();
  // The node's own account of frames it could not classify (answered `internal`), for diagnosis.
  for (const l of node.logs.slice(logsFrom).filter((l) => (l.level as number) >= 50)) t.comment(`node log: ${JSON.stringify(l).slice(0, 2500)}`);
}

t.test("cut by closing the port (connections reset, new ones refused) and restored", (t) => outage(t, "refuse"));
t.test("cut by resetting every connection (accepted, then destroyed) and restored", (t) => outage(t, "reset"));
t.test("cut by a black hole (connections hang, nothing flows) and restored", (t) => outage(t, "stall"));
