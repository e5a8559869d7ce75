// seen receipts (stored, idempotent per message and user) and typing (never stored).
import t from "tap";
import { connect } from "../helpers/client.ts";
import { startInProcess } from "../helpers/node.ts";
import { freshDatabase, sql } from "../helpers/services.ts";

const url = await freshDatabase(t);
const node = await startInProcess(t, { DATABASE_URL: url });
const db = await sql(t, url);

t.test("the first seen is stored and broadcast; a repeat is acknowledged with the same seen_at only", async (t) => {
  const a = await connect(t, node.port, "seen", { user: "alice" });
  const b = await connect(t, node.port, "seen", { user: "bob" });
  const c = await a.request({ operation: "create", type: "text", body: "read me" });
  await a.next((f) => f.operation === "create");
  await b.next((f) => f.operation === "create");
  const first = await b.request({ operation: "seen", message_id: c.message_id });
  t.match(first, { operation: "ack", message_id: c.message_id, seen_at: String });
  t.notOk("seq" in first, "seen carries no seq");
  const ev = await a.next((f) => f.operation === "seen");
  t.same(ev, { operation: "seen", group: "seen", message_id: c.message_id, user: "bob", seen_at: first.seen_at });
  await b.next((f) => f.operation === "seen");
  t.match(await a.next((f) => f.operation === "read"), { operation: "read", group: "seen", user: "bob", read_seq: 1 }, "and it moved bob's read marker");
  await b.next((f) => f.operation === "read");

  const again = await b.request({ operation: "seen", message_id: c.message_id });
  t.equal(again.seen_at, first.seen_at, "same seen_at");
  await a.nothingMore(t);
  t.equal((await db.query("SELECT count(*)::int AS n FROM seen_receipts")).rows[0].n, 1);

  const byAlice = await a.request({ operation: "seen", message_id: c.message_id });
  t.match(byAlice, { operation: "ack" }, "another user's receipt is its own");
  t.equal((await db.query("SELECT count(*)::int AS n FROM seen_receipts")).rows[0].n, 2);
});

t.test("typing reaches the group, is acknowledged, and is never stored", async (t) => {
  const a = await connect(t, node.port, "typing", { user: "alice" });
  const b = await connect(t, node.port, "typing");
  const ack = await a.request({ operation: "typing", typing_status: "typing" });
  t.same(ack, { operation: "ack", group: "typing", request_id: ack.request_id });
  t.same(await b.next(), { operation: "typing", group: "typing", user: "alice", typing_status: "typing" });
  b.send({ operation: "typing", group: "typing", user: "bob", typing_status: "not_typing" });
  t.same(await a.next((f) => f.operation === "typing" && f.user === "bob"), { operation: "typing", group: "typing", user: "bob", typing_status: "not_typing" });
  t.match(await a.request({ operation: "typing", typing_status: "Typing!" }), { code: "bad_request" });
  t.match(await a.request({ operation: "typing", typing_status: "x".repeat(33) }), { code: "bad_request" });
  t.match(await b.request({ operation: "typing", typing_status: "typing" }), { code: "bad_request" }, "without ?user= a frame needs user");
  const rows = (await db.query(`SELECT count(*)::int AS n FROM groups WHERE name = 'typing'`)).rows[0].n;
  t.equal(rows, 0, "typing touched no table");
});
