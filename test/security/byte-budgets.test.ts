// Budgets in bytes and in concurrent work: frames awaiting an answer count in bytes per socket
// (MAX_PENDING_BYTES: past it a frame is rate_limited, the socket stays open), and replays read
// under a node-wide concurrency budget (MAX_CONCURRENT_REPLAYS: a replay past it waits its turn
// and still delivers everything, in order).
import t from "tap";
import { connect, type ChatClient, type Frame } from "../helpers/client.ts";
import { startInProcess } from "../helpers/node.ts";
import { eventually, metric, uniqueGroup } from "../helpers/probe.ts";
import { freshDatabase } from "../helpers/services.ts";

const db = await freshDatabase(t);
// The replay nodes keep no recent events in memory (RESUME_MEMORY_BYTES=0): these replays are
// short enough to be served from there, and the budget under test is the one on database reads.
const [small, oneSlot, byDefault] = await Promise.all([
  startInProcess(t, { DATABASE_URL: db, MAX_PENDING_BYTES: "1024" }),
  startInProcess(t, { DATABASE_URL: db, MAX_CONCURRENT_REPLAYS: "1", STORE_TIMEOUT_MS: "60000", RESUME_MEMORY_BYTES: "0" }),
  startInProcess(t, { DATABASE_URL: db, STORE_TIMEOUT_MS: "60000", RESUME_MEMORY_BYTES: "0" }),
]);
const hits = async (port: number, limit: string) => (await metric(port, `chat_limit_hits_total{limit="${limit}"}`)) ?? -1;

t.test("frames awaiting an answer past MAX_PENDING_BYTES are rate_limited; a lone frame always passes", async (t) => {
  const c = await connect(t, small.port, uniqueGroup("pend"), { user: "p" });
  const body = "x".repeat(700); // each frame is ~800 bytes: two do not fit in 1024
  for (let i = 0; i < 3; i++) c.send({ operation: "create", type: "text", body, request_id: `b${i}` });
  const answers: Frame[] = [];
  for (let i = 0; i < 3; i++) answers.push(await c.next((f) => "request_id" in f && f.request_id === `b${i}`, 30_000));
  t.match(answers[0], { operation: "ack" }, "the first passes, though alone it is close to the budget");
  t.match(answers[1], { operation: "error", code: "rate_limited", message: /1024 bytes/ }, "the next one would pass 1024 bytes pending: refused, with its request_id");
  t.equal(await hits(small.port, "pending_bytes"), answers.filter((f) => f.operation === "error").length, "counted as pending_bytes");
  t.match(await c.request({ operation: "create", type: "text", body }), { operation: "ack" }, "once answered, the socket takes frames again");
  t.ok(await eventually(async () => (await metric(small.port, "chat_buffer_bytes")) === 0), "and the node holds nothing for it");
});

async function replayed(c: ChatClient, n: number): Promise<number[]> {
  const seqs: number[] = [];
  while (seqs.length < n) {
    const f = await c.next((x) => x.operation === "create", 30_000);
    if (f.operation === "create") seqs.push(f.seq);
  }
  return seqs;
}

for (const [label, port, mustWait] of [["MAX_CONCURRENT_REPLAYS=1", () => oneSlot.port, true], ["the default MAX_CONCURRENT_REPLAYS=4", () => byDefault.port, false]] as const) {
  t.test(`concurrent replays wait for a slot (${label}) and each still gets everything in order`, async (t) => {
    const group = uniqueGroup("slots");
    const w = await connect(t, port(), group, { user: "w" });
    const N = 250; // three pages of 100
    const refused: Frame[] = [];
    for (let from = 0; from < N; from += 100) {
      for (let i = from; i < Math.min(N, from + 100); i++) w.send({ operation: "create", type: "text", body: `m${i}`, request_id: `w${i}` });
      for (let i = from; i < Math.min(N, from + 100); i++) {
        const f = await w.next((f) => "request_id" in f && f.request_id === `w${i}`, 30_000);
        if (f.operation !== "ack") refused.push(f);
      }
    }
    t.same(refused, [], `all ${N} messages stored`);
    const before = await hits(port(), "replay_slots");
    const resumers = await Promise.all(Array.from({ length: 12 }, (_, i) => connect(t, port(), group, { user: `r${i}`, since: "0" })));
    const all = await Promise.all(resumers.map((c) => replayed(c, N)));
    for (const [i, seqs] of all.entries()) t.same(seqs, Array.from({ length: N }, (_, k) => k + 1), `resumer ${i} got 1..${N} in order`);
    const waited = (await hits(port(), "replay_slots")) - before;
    if (mustWait) t.ok(waited > 0, `${waited} replay reads of the 12 replays waited for the one slot`);
    else t.comment(`${waited} replay reads waited for one of the 4 slots`);
    t.equal(await metric(port(), `chat_replays{state="running"}`), 0, "no replay read is left running");
    t.equal(await metric(port(), `chat_replays{state="waiting"}`), 0, "and none waiting");
  });
}
