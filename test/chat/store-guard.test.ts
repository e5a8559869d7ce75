// The store guard's record of the database's last answer: a store call that succeeded is proof
// the database answered then (the dependency probe skips its query on it); a failed or refused
// call is not.
import t from "tap";
import { StoreGuard } from "../../src/chat/store-guard.ts";

t.test("answeredAt moves on a success only", async (t) => {
  const guard = new StoreGuard(() => Promise.resolve(), { deadlineMs: 1_000, probeMs: 60_000 });
  t.equal(guard.answeredAt, -Infinity, "no answer yet");
  const before = performance.now();
  t.equal(await guard.run(() => Promise.resolve(7)), 7);
  const first = guard.answeredAt;
  t.ok(first >= before && first <= performance.now(), "a success is recorded when it returns");
  await t.rejects(guard.run(() => Promise.reject(new Error("a unique violation"))), /unique violation/);
  t.equal(guard.answeredAt, first, "an error that is not unavailability does not count");
  await t.rejects(guard.run(() => Promise.reject(Object.assign(new Error("refused"), { code: "ECONNREFUSED" }))), { code: "unavailable" });
  t.equal(guard.answeredAt, first, "nor does an unreachable database");
  t.equal(guard.up, false, "which opens the circuit");
  await t.rejects(guard.run(() => Promise.resolve(1)), { code: "unavailable" });
  t.equal(guard.answeredAt, first, "and a call refused by the open circuit is no answer either");
});
