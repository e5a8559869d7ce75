// An HTTP route whose database cannot be reached in time answers 503 `unavailable` (retry), as a
// frame does, not 500: the errors here are pg's own, from a pool that cannot connect.
import net from "node:net";
import pg from "pg";
import t, { type Test } from "tap";
import { errorStatus } from "../../src/http/routes.ts";
import { ChatError } from "../../src/protocol/index.ts";

/** The error a query through a pool like the node's (see src/store/database.ts) rejects with. */
async function poolError(t: Test, port: number): Promise<unknown> {
  const pool = new pg.Pool({ host: "127.0.0.1", port, user: "postgres", database: "postgres", connectionTimeoutMillis: 200 });
  pool.on("error", () => {});
  t.teardown(() => pool.end().catch(() => {}));
  return pool.query("SELECT 1").then(
    () => t.fail("the query cannot succeed"),
    (err: unknown) => err,
  );
}

t.test("a pool that cannot get a connection within its timeout (an overloaded or silent database): 503 unavailable", async (t) => {
  // Accepts connections and never says a word, like a database too busy to answer.
  const sockets: net.Socket[] = [];
  const silent = net.createServer((s) => void sockets.push(s));
  await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    silent.close();
  });
  const err = await poolError(t, (silent.address() as net.AddressInfo).port);
  t.match(String(err), /timeout/, "pg's own error");
  t.same(errorStatus(err), { status: 503, code: "unavailable", message: "storage is unavailable, try again" });
});

t.test("a database that refuses connections: 503 unavailable", async (t) => {
  const closed = net.createServer();
  await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
  const port = (closed.address() as net.AddressInfo).port;
  await new Promise((r) => closed.close(r));
  const err = await poolError(t, port);
  t.match(err, { code: "ECONNREFUSED" });
  t.equal(errorStatus(err).status, 503);
});

t.test("a client's mistake keeps its own status; anything else is a 500 that says nothing of the cause", async (t) => {
  t.same(errorStatus(new ChatError("forbidden", "not a member")), { status: 403, code: "forbidden", message: "not a member" });
  t.same(errorStatus(new TypeError("cannot read properties of undefined")), { status: 500, code: "internal", message: "internal error" });
});
