// Malformed, mistyped, unknown and oversize frames: a clear error each, nothing written, the
// socket stays open (except a frame over MAX_FRAME_BYTES, which uWebSockets.js drops).
import t from "tap";
import { connect } from "../helpers/client.ts";
import { startInProcess } from "../helpers/node.ts";
import { freshDatabase, sql } from "../helpers/services.ts";

const url = await freshDatabase(t);
const node = await startInProcess(t, { DATABASE_URL: url, MAX_FRAME_BYTES: "4096" });
const db = await sql(t, url);
const rows = async () => (await db.query("SELECT (SELECT count(*) FROM messages) + (SELECT count(*) FROM groups) + (SELECT count(*) FROM seen_receipts) AS n")).rows[0].n;

t.test("each bad frame gets exactly one error with the right code; the socket stays open", async (t) => {
  const c = await connect(t, node.port, "bad", { user: "u" });
  const before = await rows();
  const cases: [string, string, string, string | undefined][] = [
    ["not JSON", "{nope", "bad_request", undefined],
    ["JSON array", "[1,2]", "bad_request", undefined],
    ["JSON string", '"create"', "bad_request", undefined],
    ["null", "null", "bad_request", undefined],
    ["missing operation", JSON.stringify({ request_id: "a" }), "bad_request", "a"],
    ["empty operation", JSON.stringify({ operation: "", request_id: "b" }), "bad_request", "b"],
    ["operation not a string", JSON.stringify({ operation: 5, request_id: "c" }), "bad_request", "c"],
    ["unknown operation", JSON.stringify({ operation: "explode", request_id: "d" }), "unknown_operation", "d"],
    ["__proto__ as operation", JSON.stringify({ operation: "__proto__", request_id: "e" }), "unknown_operation", "e"],
    ["toString as operation", JSON.stringify({ operation: "toString", request_id: "f" }), "unknown_operation", "f"],
    ["request_id too long (not echoed)", JSON.stringify({ operation: "typing", typing_status: "typing", request_id: "x".repeat(65) }), "bad_request", undefined],
    ["request_id not a string (not echoed)", JSON.stringify({ operation: "typing", typing_status: "typing", request_id: 7 }), "bad_request", undefined],
    ["__proto__ payload", '{"operation":"create","type":"text","body":"x","__proto__":{"admin":true},"user":{"length":1},"request_id":"g"}', "bad_request", "g"],
    ["huge number limit", JSON.stringify({ operation: "history", limit: 1e308, request_id: "h" }), "bad_request", "h"],
    ["deep nesting", `{"operation":"create","type":"text","body":${"[".repeat(500)}${"]".repeat(500)},"request_id":"i"}`, "bad_request", "i"],
  ];
  for (const [name, raw, code, rid] of cases) {
    c.send(raw);
    const err = await c.next();
    t.equal(err.operation, "error", name);
    t.match(err, { code }, name);
    t.equal("request_id" in err ? err.request_id : undefined, rid, `${name}: request_id ${rid === undefined ? "not " : ""}echoed`);
  }
  c.ws.send(Buffer.from([1, 2, 3]), { binary: true });
  t.match(await c.next(), { operation: "error", code: "bad_request" }, "binary frame");
  await c.nothingMore(t);
  t.equal(await rows(), before, "nothing was written");
  t.match(await c.request({ operation: "create", type: "text", body: "still here" }), { operation: "ack" }, "the socket still works");
});

t.test("a frame over MAX_FRAME_BYTES closes that socket only; the node keeps serving", async (t) => {
  const big = await connect(t, node.port, "big", { user: "u" });
  const other = await connect(t, node.port, "big", { user: "v" });
  big.send(JSON.stringify({ operation: "create", type: "text", body: "x".repeat(5000) }));
  const closed = await big.closed;
  t.ok([1006, 1009].includes(closed.code), `closed with ${closed.code}`);
  t.match(await other.request({ operation: "create", type: "text", body: "fine" }), { operation: "ack" });
  const fresh = await connect(t, node.port, "big", { user: "w" });
  t.match(await fresh.request({ operation: "typing", typing_status: "typing" }), { operation: "ack" });
});
