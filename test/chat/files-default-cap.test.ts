// MAX_FILE_BYTES at its default (5 MiB): a file exactly at the cap is stored and downloads
// byte-identical in every form a client may send it; one byte more is too_large. Files above
// ~3.2 MiB used to be answered `internal` (the base64 check overflowed V8's regexp stack).
import { createHash } from "node:crypto";
import t from "tap";
import { connect } from "../helpers/client.ts";
import { startInProcess } from "../helpers/node.ts";
import { uniqueGroup } from "../helpers/probe.ts";
import { freshDatabase } from "../helpers/services.ts";
import { loadConfig } from "../../src/config/env.ts";

const CAP = loadConfig({}).MAX_FILE_BYTES;
const node = await startInProcess(t, { DATABASE_URL: await freshDatabase(t) });
const bytes = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 131 + (i >> 8)) & 255));
const atCap = bytes(CAP);
const over = bytes(CAP + 1);
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const wrap = (b64: string) => b64.replace(/.{76}/g, "$&\r\n"); // MIME line breaks, as `base64` and mail encoders write

t.test("the default cap is 5 MiB and a file at it fits in a default frame", async (t) => {
  t.equal(CAP, 5 * 1024 * 1024);
  t.ok(wrap(atCap.toString("base64")).length + 200 < loadConfig({}).MAX_FRAME_BYTES);
});

const forms: [string, (b: Buffer) => unknown, string][] = [
  ["a bare base64 string", (b) => b.toString("base64"), "application/octet-stream"],
  ["{name, content_type, data}", (b) => ({ name: "big.png", content_type: "image/png", data: b.toString("base64") }), "image/png"],
  ["a data URL", (b) => `data:image/jpeg;base64,${b.toString("base64")}`, "image/jpeg"],
  ["whitespace-wrapped base64", (b) => ({ name: "big.bin", content_type: "application/x-big", data: wrap(b.toString("base64")) }), "application/x-big"],
];

for (const [name, encode, contentType] of forms) {
  t.test(`${name}: exactly MAX_FILE_BYTES is stored and downloads byte-identical; one byte more is too_large`, async (t) => {
    const c = await connect(t, node.port, uniqueGroup("cap"), { user: "u" });
    const ack = await c.request({ operation: "create", type: "file", file: encode(atCap) }, 30_000);
    if (!t.match(ack, { operation: "ack" }, "at the cap")) return;
    const ev = await c.next((f) => f.operation === "create", 10_000);
    if (ev.operation !== "create" || !ev.message.attachment) throw new Error("no attachment in the event");
    t.match(ev.message.attachment, { size: CAP, content_type: contentType });
    const res = await fetch(`http://127.0.0.1:${node.port}${ev.message.file}`);
    t.equal(res.status, 200);
    t.equal(res.headers.get("content-type"), contentType);
    const got = new Uint8Array(await res.arrayBuffer());
    t.equal(got.byteLength, CAP);
    t.equal(sha(got), sha(atCap), "the same bytes");

    t.match(await c.request({ operation: "create", type: "file", file: encode(over) }, 30_000), { operation: "error", code: "too_large" }, "one byte over");
    t.match(await c.request({ operation: "create", type: "text", body: "still here" }), { operation: "ack" }, "the socket stays usable");
  });
}
