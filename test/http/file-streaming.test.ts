// Files and history pages are written with backpressure under a node-wide budget: a client
// that pipelines downloads without reading is cut off instead of making the node hold every
// answer, downloads past MAX_FILE_READS (or answers past HTTP_BUFFER_BYTES) are refused with
// 503, and a client that goes away frees what it held.
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import net from "node:net";
import t from "tap";
import { connect } from "../helpers/client.ts";
import { spawnNode, startInProcess } from "../helpers/node.ts";
import { eventually, metric, uniqueGroup, untilReady, within } from "../helpers/probe.ts";
import { freshDatabase, sql } from "../helpers/services.ts";

const MiB = 1024 * 1024;
const url = await freshDatabase(t);
const db = await sql(t, url);
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const rssOf = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) * 1024;

/** Stores an attachment directly (larger than a frame could carry), returns its id. */
async function storeFile(bytes: Buffer): Promise<string> {
  const id = randomUUID();
  await db.query(`INSERT INTO "attachments" ("id", "group_name", "name", "content_type", "size", "data") VALUES ($1, $2, 'big.bin', 'application/octet-stream', $3, $4)`, [id, uniqueGroup("files"), bytes.byteLength, bytes]);
  return id;
}

/** A raw connection that sends requests and never reads (until `drain`). */
function stalledClient(port: number) {
  const s = net.connect(port, "127.0.0.1");
  s.pause();
  let received = "";
  const closed = new Promise<void>((resolve) => s.on("close", () => resolve()));
  s.on("error", () => {});
  return {
    get: (path: string) => s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`),
    /** Starts reading; resolves with what arrived once the server closed the connection. */
    drain: async (ms: number) => {
      s.on("data", (d: Buffer) => (received += d.toString("latin1")));
      s.resume();
      await within(closed, ms, "the server closing the connection");
      return received;
    },
    destroy: () => s.destroy(),
  };
}

t.test("a client that pipelines 24 downloads of a 5 MiB file without reading is cut off; the node holds at most one of them", async (t) => {
  const node = await spawnNode(t, { DATABASE_URL: url });
  await untilReady(node.port);
  const c = await connect(t, node.port, uniqueGroup("pipe"), { user: "u" });
  const bytes = randomBytes(5 * MiB);
  const ack = await c.request({ operation: "create", type: "file", file: bytes.toString("base64") }, 30_000);
  const ev = await c.next((f) => f.operation === "create", 10_000);
  if (ack.operation !== "ack" || ev.operation !== "create" || !ev.message.file) throw new Error(`no file stored: ${JSON.stringify(ack)}`);
  const rss0 = rssOf(node.child.pid!);

  const hostile = stalledClient(node.port);
  let peakRss = rss0;
  let peakReads = 0;
  // One request every 250 ms: each arrives after the node answered the one before (a node that
  // buffers whole answers has ended it by then and takes the next), as a phone pipelining
  // image loads on a stalled connection does.
  for (let i = 0; i < 24; i++) {
    hostile.get(ev.message.file);
    await new Promise((r) => setTimeout(r, 250));
    peakRss = Math.max(peakRss, rssOf(node.child.pid!));
    peakReads = Math.max(peakReads, (await metric(node.port, "chat_file_reads")) ?? 0);
  }
  const got = await hostile.drain(15_000);
  const answers = got.split("HTTP/1.1 200").length - 1;
  t.ok(answers < 24, `the connection was closed after ${answers} of 24 answers`);
  t.ok(peakReads <= 1, `at most one download of that connection at a time (saw ${peakReads})`);
  t.ok(peakRss - rss0 < 64 * MiB, `the node's RSS grew by ${((peakRss - rss0) / MiB).toFixed(1)} MiB (24 answers held whole would be 120 MiB)`);
  t.ok(await eventually(async () => (await metric(node.port, "chat_file_reads")) === 0, 5_000), "and nothing is held once it is gone");

  const res = await fetch(`http://127.0.0.1:${node.port}${ev.message.file}`);
  t.equal(sha(new Uint8Array(await res.arrayBuffer())), sha(bytes), "a client that reads gets the file, byte-identical");
});

t.test("MAX_FILE_READS and HTTP_BUFFER_BYTES: past them downloads and history pages get 503; a client that leaves frees its share", async (t) => {
  const node = await startInProcess(t, { DATABASE_URL: url, MAX_FILE_READS: "4", HTTP_BUFFER_BYTES: String(MiB) });
  const big = randomBytes(24 * MiB); // more than loopback's socket buffers take, so an unread download stays stuck
  const id = await storeFile(big);
  const small = await storeFile(Buffer.from("small file"));
  const group = uniqueGroup("budget");
  const c = await connect(t, node.port, group, { user: "u" });
  await c.request({ operation: "create", type: "text", body: "hello" });

  const stuck = Array.from({ length: 4 }, () => stalledClient(node.port));
  for (const s of stuck) s.get(`/files/${id}`);
  t.teardown(() => stuck.forEach((s) => s.destroy()));
  t.ok(await eventually(async () => (await metric(node.port, "chat_file_reads")) === 4, 10_000), "four downloads held by clients that do not read");
  t.equal(await metric(node.port, "chat_http_buffer_bytes"), MiB, "each holding one 256 KiB chunk");

  const refused = await fetch(`http://127.0.0.1:${node.port}/files/${small}`);
  t.equal(refused.status, 503, "a fifth download is refused");
  t.match(await refused.json(), { error: "unavailable" });
  t.equal(await metric(node.port, `chat_limit_hits_total{limit="file_reads"}`), 1);
  const page = await fetch(`http://127.0.0.1:${node.port}/api/groups/${group}/messages`);
  t.equal(page.status, 503, "a history page does not fit in the HTTP budget either");
  await page.arrayBuffer();
  t.equal(await metric(node.port, `chat_limit_hits_total{limit="http_buffer"}`), 1);

  stuck[0]!.destroy();
  t.ok(await eventually(async () => (await metric(node.port, "chat_file_reads")) === 3, 5_000), "a client that goes away frees its download");
  const ok = await fetch(`http://127.0.0.1:${node.port}/files/${small}`);
  t.equal(await ok.text(), "small file");
  t.match(await (await fetch(`http://127.0.0.1:${node.port}/api/groups/${group}/messages`)).json(), { messages: [{ body: "hello" }] });
  for (const s of stuck) s.destroy();
  t.ok(await eventually(async () => (await metric(node.port, "chat_http_buffer_bytes")) === 0, 5_000), "all freed");
  const whole = await fetch(`http://127.0.0.1:${node.port}/files/${id}`);
  t.equal(sha(new Uint8Array(await whole.arrayBuffer())), sha(big), "a 24 MiB file streams through in chunks, byte-identical");
});
