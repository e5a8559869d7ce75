// decodeFile, the pure part: base64 and data-URL checks are linear passes that agree with the
// base64 grammar, and no input shape (however large) makes them throw anything but a ChatError.
import t from "tap";
import { base64DecodedSize, decodeFile, parseDataUrl } from "../../src/chat/files.ts";
import { ChatError } from "../../src/protocol/index.ts";

// The grammar the service has always accepted, as a regular expression (fine on short strings).
const GRAMMAR = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2,3})?$/;
const MiB = 1024 * 1024;

t.test("base64 validity and decoded bytes agree with the grammar and with Buffer on every short string", async (t) => {
  const alphabet = ["A", "z", "0", "+", "/", "=", "=", " ", "\n", "-", "_", "!", "é", "\u0100", "\ud800", "\u00a0"];
  let seed = 42;
  const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
  let disagreements = 0;
  for (let i = 0; i < 50_000; i++) {
    let s = "";
    for (let n = rand(14); n > 0; n--) s += alphabet[rand(alphabet.length)];
    const stripped = s.replace(/\s+/g, "");
    const valid = GRAMMAR.test(stripped);
    const expected = valid ? Buffer.from(stripped, "base64").byteLength : -1;
    let got: number;
    try {
      got = decodeFile(s, 100).data.byteLength;
    } catch (err) {
      got = (err as ChatError).code === "bad_request" ? -1 : -2;
    }
    // base64DecodedSize (the loop for wrapped text) keeps to ASCII whitespace; \s has a few more.
    const loop = /[^\S \t\n\v\f\r]/.test(s) ? expected : base64DecodedSize(s);
    if (got !== expected || loop !== expected) {
      disagreements++;
      if (disagreements < 5) t.fail(`${JSON.stringify(s)}: decoded ${got}, loop ${loop}, expected ${expected}`);
    }
  }
  t.equal(disagreements, 0);
});

t.test("the decoded bytes are the encoder's, with or without line wrapping", async (t) => {
  const bytes = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 7) & 255));
  const b64 = bytes.toString("base64");
  const wrapped = b64.replace(/.{76}/g, "$&\r\n");
  t.same(Buffer.from(decodeFile(b64, 1000).data), bytes);
  t.same(Buffer.from(decodeFile(wrapped, 1000).data), bytes, "MIME line breaks");
  t.same(Buffer.from(decodeFile({ name: "a.bin", content_type: "application/x-a", data: ` ${wrapped}\n` }, 1000).data), bytes);
  t.throws(() => decodeFile(b64, 999), { code: "too_large", limit: "file_size" });
});

t.test("data URLs: the type comes from the head, parameters are allowed, anything else is bare base64", async (t) => {
  t.same(parseDataUrl("data:image/PNG;base64,QUJD"), { contentType: "image/png", start: 22 });
  t.same(parseDataUrl("data:text/plain;charset=utf-8;base64,QUJD"), { contentType: "text/plain", start: 37 });
  t.same(parseDataUrl("data:;base64,QUJD"), { contentType: null, start: 13 });
  t.equal(parseDataUrl("data:text/plain,QUJD"), null, "not base64");
  t.equal(parseDataUrl("data:nonsense;base64,QUJD"), null, "not a MIME type");
  t.equal(parseDataUrl("QUJD"), null);
  t.match(decodeFile("data:image/png;base64,QUJD", 10), { name: "file", contentType: "image/png" });
  t.throws(() => decodeFile("data:text/plain,QUJD", 100), { code: "bad_request" });
});

t.test("inputs of MAX_FRAME_BYTES (8 MiB) in hostile shapes get a ChatError, never a stack overflow", async (t) => {
  const size = 8 * MiB;
  // A cap above what the text could hold, so that validity is what gets checked.
  const shapes: [string, string, string][] = [
    ["valid base64 over a 5 MiB cap", "A".repeat(size), "too_large"],
    ["base64 with a bad last character", "A".repeat(size - 1) + "!", "bad_request"],
    ["padding in the middle", "AAA=" + "A".repeat(size), "bad_request"],
    ["a data URL head of semicolons", "data:a/b" + ";".repeat(size), "bad_request"],
    ["a data URL head of ;a segments", "data:a/b" + ";a".repeat(size / 2), "bad_request"],
    ["a data URL with an endless type", "data:" + "a".repeat(size), "bad_request"],
    ["only whitespace", " \n".repeat(size / 2), "ok"],
  ];
  for (const [name, input, code] of shapes) {
    try {
      decodeFile(input, name.includes("5 MiB cap") ? 5 * MiB : size);
      t.equal("ok", code, name);
    } catch (err) {
      t.ok(err instanceof ChatError, `${name}: a ChatError (${(err as Error).message})`);
      t.equal((err as ChatError).code, code, name);
    }
  }
  t.equal(decodeFile(Buffer.alloc(5 * MiB, 1).toString("base64"), 5 * MiB).data.byteLength, 5 * MiB, "exactly the default cap");
});
