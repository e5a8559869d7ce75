// The multiplexed connection in JWT mode when tokens expire mid-conversation: the server closes
// the socket with 4001 at `exp`; the connection asks its token function for a fresh token
// (`expired: true`), reconnects after its backoff and resumes every group from its own seq,
// so no message of any group is lost or repeated and every send is acknowledged once.
import { setTimeout as sleep } from "node:timers/promises";
import t from "tap";
import type { AckEvent, ConnectionChange } from "../../src/client/index.ts";
import { signToken, TEST_JWT_SECRET } from "../helpers/jwt.ts";
import { startInProcess } from "../helpers/node.ts";
import { uniqueGroup, untilDatabaseWarm } from "../helpers/probe.ts";
import { connection, recorder, until } from "../helpers/sdk.ts";
import { freshDatabase } from "../helpers/services.ts";

t.test("across token expiries every group resumes from its own seq: nothing lost, nothing repeated", async (t) => {
  const node = await startInProcess(t, { DATABASE_URL: await freshDatabase(t), JWT_SECRET: TEST_JWT_SECRET, JWT_CLOCK_TOLERANCE_S: "0" });
  await untilDatabaseWarm(node.port, { token: await signToken("warm-up", 60) }); // not in the middle of the 2 s tokens below
  const url = `http://127.0.0.1:${node.port}`;
  const groups = [uniqueGroup("exp-a"), uniqueGroup("exp-b")];
  const asked: Record<string, boolean[]> = { alice: [], bob: [] };
  const tokenOf = (user: string) => ({ expired }: { expired: boolean }) => {
    asked[user]!.push(expired);
    return signToken(user, 2);
  };
  const alice = connection(t, { url, token: tokenOf("alice"), historyLimit: 0 });
  const bob = connection(t, { url, token: tokenOf("bob"), historyLimit: 0 });
  const closes: number[] = [];
  alice.on("state", (s: ConnectionChange) => void (s.state === "reconnecting" && closes.push(s.code ?? 0)));
  const av = await Promise.all(groups.map((g) => alice.subscribe(g)));
  const bv = await Promise.all(groups.map((g) => bob.subscribe(g)));
  t.equal(alice.user, "alice", "who the connection is comes from the token's sub");
  const atBob = bv.map((v) => recorder(v));
  const atAlice = av.map((v) => recorder(v));
  const sent: Promise<AckEvent>[][] = [[], []];
  const started = Date.now();
  let i = 0;
  while (Date.now() - started < 5_000) {
    const k = i % 2;
    sent[k]!.push(av[k]!.send(`m${++i}`));
    await sleep(50);
  }
  const acks = await Promise.all(sent.map((s) => Promise.all(s)));
  const counts = acks.map((a) => a.length);
  await until("every event of both groups at both", () => [0, 1].every((k) => atBob[k]!.seqs().length === counts[k] && atAlice[k]!.seqs().length === counts[k]), 15_000);
  t.ok(closes.includes(4001), `alice's socket was closed for an expired token (closes: ${closes.join(", ")})`);
  t.ok(asked.alice!.includes(true) && asked.bob!.includes(true), "both asked their token function for a fresh token after a 4001");
  for (const k of [0, 1]) {
    const expected = Array.from({ length: counts[k]! }, (_, n) => n + 1);
    t.same(acks[k]!.map((a) => a.seq), expected, `group ${k}: every send acknowledged once, in order`);
    t.same(atBob[k]!.seqs(), expected, `group ${k}: bob got every event once, in order`);
    t.same(atAlice[k]!.seqs(), expected, `group ${k}: so did alice`);
  }
});
