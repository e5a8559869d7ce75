// The local cluster end to end: clients reach three replicas through a real HAProxy (the
// Kubernetes Service's stand-in, scripts/cluster) and chat across them. While they send, a
// fourth replica is added and one that has clients is stopped with SIGTERM. Its clients get
// 1001, reconnect through the load balancer with ?since=<last seq seen> and resend their
// unacknowledged creates with the same request_id. Nothing acknowledged is lost: every ack is
// in the database exactly once, and every client sees seq 1..N with no gap and no duplicate.
import * as v from "valibot";
import WebSocket from "ws";
import t from "tap";
import { Cluster, type ClusterNode } from "../../scripts/cluster/cluster.ts";
import { ServerEvent } from "../../src/protocol/index.ts";
import { describeSeqs, range, repeats } from "../helpers/delivery.ts";
import { uniqueGroup } from "../helpers/probe.ts";
import { freshDatabase, REDIS_URL, requireRedis, sql } from "../helpers/services.ts";
import { Signal } from "../helpers/signal.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
type Json = Record<string, unknown>;
type Ack = { operation: "ack"; request_id: string; message_id: string; seq: number };

/**
 * One user across connections through the load balancer. Records every stored event in arrival
 * order, every answer by request_id, and for each connection the replica that served it
 * (HAProxy's X-Chat-Replica header on the 101) and how it closed.
 */
class LbClient {
  readonly events: { seq: number; id: string; body: string; conn: number }[] = [];
  readonly answers = new Map<string, Json[]>();
  readonly conns: { replica: string; since: number; closed?: { code: number; reason: string }; error?: string }[] = [];
  readonly violations: string[] = [];
  /** Errors without a request_id: every frame this client sends carries one, so each is a contract breach. */
  readonly bareErrors: string[] = [];
  failedConnects = 0;
  private ws: WebSocket | null = null;
  private readonly signal = new Signal();

  constructor(
    readonly cluster: Cluster,
    readonly group: string,
    readonly user: string,
  ) {}

  get lastSeq(): number {
    return this.events.at(-1)?.seq ?? 0;
  }

  get open(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  get replica(): string | undefined {
    return this.conns.at(-1)?.replica;
  }

  private wake(): void {
    this.signal.wake();
  }

  /** Waits until `check` holds, re-checked on every frame and close; false after `ms`. */
  until(check: () => boolean, ms: number): Promise<boolean> {
    return this.signal.until(check, ms, 200);
  }

  /** One attempt: connect through the load balancer with since = the last seq seen. */
  private attempt(): Promise<void> {
    const since = this.lastSeq;
    const ws = new WebSocket(this.cluster.wsUrl(this.group, { user: this.user, since: String(since) }), { perMessageDeflate: false });
    const conn = this.conns.length;
    let replica = "?";
    ws.on("upgrade", (res) => (replica = String(res.headers["x-chat-replica"] ?? "?")));
    ws.on("message", (data, isBinary) => {
      const raw = JSON.parse(data.toString()) as Json;
      const parsed = v.safeParse(ServerEvent, raw);
      if (isBinary || !parsed.success) this.violations.push(`outside the protocol: ${data.toString().slice(0, 200)}`);
      const op = raw.operation;
      if (op === "create" || op === "reply" || op === "update" || op === "delete") {
        const m = raw.message as { id: string; body: string } | undefined;
        this.events.push({ seq: raw.seq as number, id: m?.id ?? String(raw.message_id), body: m?.body ?? "", conn });
      } else if (op === "ack" || op === "error") {
        const rid = raw.request_id as string | undefined;
        if (rid === undefined) this.bareErrors.push(data.toString());
        else this.answers.set(rid, [...(this.answers.get(rid) ?? []), raw]);
      }
      this.wake();
    });
    return new Promise((resolve, reject) => {
      ws.once("open", () => {
        this.conns.push({ replica, since });
        this.ws = ws;
        // A socket error (a reset, say) is what turns a close into 1006: keep it for the report.
        ws.on("error", (err) => (this.conns[conn]!.error ??= `${(err as NodeJS.ErrnoException).code ?? ""} ${err.message}`));
        ws.on("close", (code, reason) => {
          this.conns[conn]!.closed = { code, reason: reason.toString() };
          this.wake();
        });
        resolve();
      });
      ws.once("unexpected-response", (_req, res) => {
        res.resume();
        reject(new Error(`HTTP ${res.statusCode}`));
      });
      ws.once("error", reject);
    });
  }

  /** Connects, retrying with jittered backoff as a real client would (the LB may answer 503 for a moment). */
  async connect(ms = 20_000): Promise<void> {
    const deadline = Date.now() + ms;
    for (let backoff = 50; ; backoff = Math.min(backoff * 2, 1_000)) {
      try {
        await this.attempt();
        return;
      } catch (err) {
        this.failedConnects++;
        if (Date.now() > deadline) throw new Error(`${this.user} could not connect through the load balancer: ${(err as Error).message}`);
        await sleep(backoff / 2 + Math.random() * backoff);
      }
    }
  }

  /** Sends a frame with this request_id and waits for its answer; "closed" if the socket went first. */
  async ask(frame: Json, rid: string, ms: number): Promise<Json | "closed" | "timeout"> {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return "closed";
    const before = this.answers.get(rid)?.length ?? 0;
    ws.send(JSON.stringify({ ...frame, request_id: rid }));
    let result: Json | "closed" | "timeout" = "timeout";
    await this.until(() => {
      const list = this.answers.get(rid);
      if (list && list.length > before) {
        result = list[before]!;
        return true;
      }
      if (ws.readyState !== WebSocket.OPEN) {
        result = "closed";
        return true;
      }
      return false;
    }, ms);
    return result;
  }

  send(frame: Json): void {
    this.ws?.send(JSON.stringify(frame));
  }

  close(): void {
    this.ws?.terminate();
  }
}

/**
 * Creates messages until stopped, keeping up to `window` of them in flight on the socket (so a
 * drain catches some mid-way). A create answered `unavailable`, or whose socket closed before its
 * answer, is resent with the same request_id (after a reconnect with since, if needed) until it
 * is acknowledged; so when the loop ends every create it attempted has been acknowledged.
 */
class Sender {
  readonly acks: (Ack & { body: string })[] = [];
  readonly resent: { rid: string; why: string }[] = [];
  readonly refusals: Json[] = [];
  private stopped = false;
  private k = 0;
  done: Promise<void> = Promise.resolve();

  constructor(
    readonly c: LbClient,
    readonly window: number,
    readonly pauseMs: number,
  ) {}

  start(deadline: number): this {
    this.done = (async () => {
      // request_id -> body, the answers already seen for it, and whether it is on the current socket
      const pending = new Map<string, { body: string; seen: number; sent: boolean }>();
      while (!this.stopped || pending.size > 0) {
        if (Date.now() > deadline) throw new Error(`${this.c.user}: ${[...pending.keys()].join(", ")} still unacknowledged at the deadline; last resends: ${JSON.stringify(this.resent.slice(-5))}`);
        if (!this.c.open) {
          for (const [rid, p] of pending) if (p.sent) this.resent.push({ rid, why: "closed" });
          for (const p of pending.values()) p.sent = false;
          await this.c.connect();
        }
        while (!this.stopped && pending.size < this.window) {
          const rid = `${this.c.user}-${this.k}`;
          pending.set(rid, { body: `${this.c.user} #${this.k}`, seen: this.c.answers.get(rid)?.length ?? 0, sent: false });
          this.k++;
        }
        for (const [rid, p] of pending) {
          if (p.sent || !this.c.open) continue;
          this.c.send({ operation: "create", type: "text", body: p.body, request_id: rid });
          p.sent = true;
        }
        const answered = () => [...pending].some(([rid, p]) => (this.c.answers.get(rid)?.length ?? 0) > p.seen);
        await this.c.until(() => answered() || !this.c.open, 10_000);
        let unavailable = false;
        for (const [rid, p] of pending) {
          const list = this.c.answers.get(rid) ?? [];
          if (list.length <= p.seen) continue;
          const a = list[p.seen]!;
          p.seen = list.length;
          if (a.operation === "ack") {
            this.acks.push({ ...(a as Ack), body: p.body });
            pending.delete(rid);
          } else if (a.code === "unavailable") {
            this.resent.push({ rid, why: "unavailable" });
            p.sent = false;
            unavailable = true;
          } else {
            this.refusals.push(a); // a refusal other than "shutting down, retry" is a failure
            pending.delete(rid);
          }
        }
        await sleep(unavailable ? 50 + Math.random() * 50 : this.pauseMs);
      }
    })();
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}

await requireRedis(); // fails loudly, naming Redis, when it is down
const databaseUrl = await freshDatabase(t);
const db = await sql(t, databaseUrl);
const started = Date.now();
// Throws, naming HAProxy and how to install it, when it is missing: this test never skips.
const cluster = await Cluster.start({
  nodes: 3,
  databaseUrl,
  redisUrl: REDIS_URL,
  drainDelayMs: 1_000,
  check: { interMs: 500, fall: 1, rise: 1 },
  env: { ORDER_GAP_WAIT_MS: "50" },
});
t.teardown(() => cluster.stop({ timeoutMs: 5_000 }));
t.comment(`cluster of ${cluster.live.length} nodes behind HAProxy ${cluster.haproxyVersion} at ${cluster.url} up in ${Date.now() - started} ms`);

t.test("clients chat across replicas while one is drained with SIGTERM and another is added; nothing acknowledged is lost", async (t) => {
  const group = uniqueGroup("cluster");
  const clients: LbClient[] = [];
  t.teardown(() => clients.forEach((c) => c.close()));

  // Six clients, connected one after the other: leastconn puts two on each replica.
  for (let i = 0; i < 6; i++) {
    const c = new LbClient(cluster, group, `u${i}`);
    await c.connect();
    clients.push(c);
  }
  const initial = clients.map((c) => c.replica!);
  t.same(new Set(initial).size, 3, `the load balancer spread the clients over all three replicas (${initial.join(" ")})`);

  // Cross-replica chat before any fault: one message from each client reaches everyone.
  for (const c of clients) t.match(await c.ask({ operation: "create", type: "text", body: `hello from ${c.user}` }, `${c.user}-hello`, 10_000), { operation: "ack" }, `${c.user} on ${c.replica} is acknowledged`);
  for (const c of clients) t.ok(await c.until(() => c.lastSeq >= clients.length, 10_000), `${c.user} on ${c.replica} received all ${clients.length} greetings`);

  const deadline = Date.now() + 60_000;
  const senders = clients.map((c) => new Sender(c, 4, 40).start(deadline));
  await sleep(1_000);

  // Scale up while traffic flows.
  const added: ClusterNode = await cluster.addNode();
  t.pass(`${added.name} added while clients send`);
  await sleep(500);

  // Scale down: SIGTERM the replica with the most clients.
  const count = (name: string) => clients.filter((c) => c.replica === name).length;
  const victim = [...new Set(initial)].sort((a, b) => count(b) - count(a))[0]!;
  const onVictim = clients.filter((c) => c.replica === victim);
  t.ok(onVictim.length >= 1, `${victim} serves ${onVictim.map((c) => c.user).join(", ")}`);
  const victimConn = new Map(onVictim.map((c) => [c, c.conns.length - 1]));
  const stopping = cluster.stopNode(victim, "SIGTERM");

  // A new client arriving while the victim drains is routed elsewhere, and catches up from 0.
  await sleep(700);
  const late = new LbClient(cluster, group, "late");
  await late.connect();
  clients.push(late);
  t.not(late.replica, victim, `a client connecting during the drain lands on ${late.replica}, not on the draining ${victim}`);

  const code = await stopping;
  if (!t.equal(code, 0, `${victim} exits 0 after SIGTERM`)) t.comment(cluster.node(victim).logs.slice(-40).join("\n"));
  const down = cluster.haproxyOutput.find((l) => l.includes(`Server chat/${victim} is DOWN`)) ?? "";
  if (!t.match(down, /Layer7 wrong status, code: 503/, `HAProxy took ${victim} out because its /readyz answered 503, before it stopped listening`)) {
    t.comment(cluster.haproxyOutput.join("\n"));
  }

  await sleep(1_500); // more traffic after the stop, through the reconnected clients
  await Promise.all(senders.map((s) => s.stop()));

  for (const [c, i] of victimConn) {
    await c.until(() => c.conns[i]!.closed !== undefined, 10_000);
    const closed = c.conns[i]!.closed;
    if (closed?.code !== 1001) {
      t.comment(cluster.haproxyOutput.filter((l) => l.includes(victim) && l.includes("/ws/")).join("\n"));
      // What the node's close handler saw for this user's sockets (code, reason), and the drain's progress.
      t.comment(cluster.node(victim).logs.filter((l) => l.includes(`"user":"${c.user}"`) || l.includes("drain")).join("\n"));
    }
    t.equal(closed?.code, 1001, `${c.user}'s socket on ${victim} was closed with 1001 (${closed ? `${closed.code} ${closed.reason}` : "still open"}${c.conns[i]!.error ? `; socket error: ${c.conns[i]!.error}` : ""})`);
    t.ok(c.conns.length > i + 1, `${c.user} reconnected (through ${c.conns.slice(i + 1).map((x) => `${x.replica} since=${x.since}`).join(", ")})`);
  }
  const reconnectedTo = onVictim.map((c) => c.replica);
  t.ok(reconnectedTo.every((r) => r !== victim), `no reconnect went to the stopped replica (${reconnectedTo.join(" ")})`);
  t.ok(reconnectedTo.includes(added.name), `leastconn sent reconnecting clients to the new replica ${added.name} (${reconnectedTo.join(" ")})`);
  const others = clients.filter((c) => !victimConn.has(c));
  t.same(others.filter((c) => c.conns.length !== 1).map((c) => c.user), [], "clients on the other replicas kept their one connection");

  // Every create was acknowledged (unanswered ones were resent until they were).
  t.same(senders.flatMap((s) => s.refusals), [], "no create was refused except with unavailable");
  const acks = [...clients.slice(0, 6).map((c) => ({ ...(c.answers.get(`${c.user}-hello`)![0] as Ack), body: `hello from ${c.user}` })), ...senders.flatMap((s) => s.acks)];
  const n = acks.length;
  t.comment(`${n} creates acknowledged; ${senders.reduce((k, s) => k + s.resent.length, 0)} resent (${[...new Set(senders.flatMap((s) => s.resent.map((r) => r.why)))].join(", ") || "none"})`);
  t.ok(n > 60, `enough traffic to mean something (${n} creates)`);
  t.same(acks.map((a) => a.seq).sort((a, b) => a - b), range(n), `the acks hand out seq 1..${n}, each once`);

  // Every ack a request got (several when resent; an `unavailable` refusal during the drain is
  // what made the client resend) names the same message.
  const split = clients.flatMap((c) =>
    [...c.answers]
      .filter(([, list]) => new Set(list.filter((a) => a.operation === "ack").map((a) => `${a.message_id} ${a.seq}`)).size > 1)
      .map(([rid, list]) => ({ rid, list })),
  );
  t.same(split, [], "a resent create is answered with the original ack, never a second message");

  // The database holds exactly the acknowledged messages, once each.
  const rows = (await db.query("SELECT id, seq, body, user_id, request_id FROM messages WHERE group_name = $1 ORDER BY seq", [group])).rows as { id: string; seq: number; body: string; user_id: string; request_id: string }[];
  t.equal(rows.length, n, `the database holds ${n} messages, one per acknowledged create`);
  t.same(repeats(rows.map((r) => r.request_id)), [], "no request_id is stored twice");
  const byId = new Map(rows.map((r) => [r.id, r]));
  const wrong = acks.filter((a) => {
    const r = byId.get(a.message_id);
    return !r || r.seq !== a.seq || r.body !== a.body || r.request_id !== a.request_id;
  });
  t.same(wrong, [], "every acknowledged create is stored with its ack's seq, its body and its request_id");
  const [{ last_seq }] = (await db.query("SELECT last_seq FROM groups WHERE name = $1", [group])).rows as [{ last_seq: number }];
  t.equal(last_seq, n, "the group's last seq is the number of messages (no event beyond them)");

  // Every client, across its reconnects, saw 1..N once each, in order, as stored.
  for (const c of clients) {
    await c.until(() => c.lastSeq >= n, 15_000);
    const seqs = c.events.map((e) => e.seq);
    const ok = seqs.length === n && seqs.every((s, i) => s === i + 1);
    t.ok(ok, `${c.user} (${c.conns.map((x) => x.replica).join(" -> ")}) saw seq 1..${n} in order, each once${ok ? "" : `: ${describeSeqs(seqs, n)}`}`);
    const mismatched = c.events.filter((e) => byId.get(e.id)?.seq !== e.seq || byId.get(e.id)?.body !== e.body);
    t.same(mismatched.slice(0, 5), [], `${c.user}: each event is the stored message with that seq`);
    t.same(c.violations, [], `${c.user}: every frame followed the protocol`);
    // The contract: a frame's request_id "is echoed in the ack or error for that frame". Without
    // it a client cannot tell which of its pipelined creates to resend.
    t.same(c.bareErrors, [], `${c.user}: every error echoes the request_id of the frame it answers`);
  }

  const servers = await cluster.servers();
  t.same(servers.map((s) => s.name).sort(), cluster.live.map((x) => x.name).sort(), `HAProxy's backends are the live replicas (${servers.map((s) => `${s.name} ${s.status}`).join(", ")})`);
  t.comment(`scenario took ${Date.now() - started} ms in total`);
});
