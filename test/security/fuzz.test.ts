// Hostile-input fuzzing against a real node process: 10,000+ generated bad frames (random
// bytes, binary frames, deep nesting, huge numbers, __proto__ keys, long and odd Unicode, wrong
// types per field, valid-looking ids of other groups, ...) pipelined over 8 connections.
// Afterwards the process is up, every bad frame got exactly one error (with the code its one
// fault calls for, echoing its request_id when it had a valid one), no row of the database
// changed, nothing was `internal`, and normal traffic still works.
//
// The generator is seeded (FUZZ_SEED, printed) so a failure can be replayed. Each frame carries
// exactly one fault on top of a base frame; the frame-rate limits are raised for this node so
// that the frames reach the parser and the schemas rather than the token bucket.
import { randomUUID } from "node:crypto";
import t from "tap";
import * as v from "valibot";
import WebSocket from "ws";
import { connect, wsUrl } from "../helpers/client.ts";
import { spawnNode } from "../helpers/node.ts";
import { httpGet, metric } from "../helpers/probe.ts";
import { freshDatabase, sql } from "../helpers/services.ts";
import { OPERATIONS, ServerEvent, type ErrorCode } from "../../src/protocol/index.ts";

const FRAMES = 10_000;
const SOCKETS = 8;
const WINDOW = 64; // frames in flight per socket, under MAX_PENDING_FRAMES
const MAX_BODY = 1000;
const MAX_FILE = 1024;
const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed_c0de);

// --- a small seeded generator -------------------------------------------------------------

/** mulberry32: a tiny, good-enough seeded PRNG. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = Math.imul(s ^ (s >>> 15), 1 | s);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = Record<string, Json>;
interface Hostile {
  category: string;
  data: string | Uint8Array;
  binary?: boolean;
  code: ErrorCode;
  /** The request_id the error must echo; absent when none (or an invalid one) was sent. */
  rid?: string;
}

const FIELDS = new Set(["operation", "request_id", "user", "type", "body", "file", "message_id", "typing_status", "before", "limit", "seq"]);
/** Fields of each operation a wrong value can go into (history's only ones are optional). */
const OP_FIELDS: Record<string, string[]> = {
  create: ["user", "type", "body", "file"],
  update: ["user", "message_id", "body", "file"],
  delete: ["user", "message_id"],
  reply: ["user", "message_id", "type", "body", "file"],
  seen: ["user", "message_id"],
  typing: ["user", "typing_status"],
  history: ["before", "limit"],
  read: ["user", "seq"],
  leave: ["user"],
  groups: ["user", "before", "limit"],
  // /ws/ only: on a per-group socket any subscribe or unsubscribe is bad_request, so never a base.
  subscribe: [],
  unsubscribe: [],
};
const REQUIRED: Record<string, string[]> = {
  create: ["type"],
  update: ["message_id", "body"],
  delete: ["message_id"],
  reply: ["message_id", "type"],
  seen: ["message_id"],
  typing: ["typing_status"],
  presence: [],
  history: [],
  read: ["seq"],
  leave: [],
  groups: [],
  subscribe: [],
  unsubscribe: [],
};
const WITH_ID = ["update", "delete", "seen", "reply"];
/** Number literals that no numeric field accepts (history's limit is 1 to 100, whole). */
const BAD_NUMBERS = ["1e309", "-1e309", "1e-400", "123456789012345678901234567890", "9007199254740993", "0", "101", "-1", "1.5", "-0", "100.5", "2e2", "-1e-7"];
const PROTO_OPS = ["__proto__", "constructor", "prototype", "toString", "hasOwnProperty", "valueOf", "__defineGetter__", "isPrototypeOf", "Create", "CREATE", " create", "create ", "create\u0000", "typing\n", "histor", "deletee"];

class Generator {
  private n = 0;
  constructor(
    private readonly r: () => number,
    private readonly socket: { index: number; user: string | null; foreignIds: string[] },
  ) {}

  int = (n: number) => Math.floor(this.r() * n);
  pick = <T>(a: readonly T[]): T => a[this.int(a.length)]!;
  chance = (p: number) => this.r() < p;

  /** One code point from a pool of trouble: controls, bidi, zero-width, combining, surrogates, astral, RTL... */
  oddChar(): string {
    const pools: [number, number][] = [
      [0x00, 0x1f], [0x7f, 0x9f], [0x202a, 0x202e], [0x2066, 0x2069], [0x200b, 0x200f], [0xfeff, 0xfeff],
      [0x0300, 0x036f], [0xd800, 0xdfff], [0x1f600, 0x1f64f], [0x10000, 0x10ffff], [0x05d0, 0x05ea], [0x0600, 0x06ff],
      [0x2028, 0x2029], [0xfff0, 0xffff], [0x4e00, 0x9fff], [0x20, 0x7e],
    ];
    const [lo, hi] = this.pick(pools);
    return String.fromCodePoint(lo + this.int(hi - lo + 1));
  }
  oddString(max: number): string {
    let s = "";
    const len = 1 + this.int(max);
    while (s.length < len) s += this.oddChar();
    return s;
  }
  /** A printable string the user schema accepts (no controls, surrogates or bidi overrides). */
  printable(max: number): string {
    let s = "";
    const len = 1 + this.int(max);
    while (s.length < len) s += this.pick(["é", "ß", "😀", "漢", "א", "ع", "x", "'", '"', ";", "-", " ", "\\", "/", "%", "$"]);
    return s.slice(0, 128);
  }
  jsonValue(depth = 0): Json {
    const k = this.int(depth > 2 ? 4 : 7);
    if (k === 0) return null;
    if (k === 1) return this.chance(0.5);
    if (k === 2) return this.pick([0, -1, 1e308, -1e-308, 2 ** 53 + 1, 3.14159, -0]);
    if (k === 3) return this.oddString(40);
    if (k === 4) return Array.from({ length: this.int(4) }, () => this.jsonValue(depth + 1));
    const o: Obj = {};
    for (let i = this.int(4); i > 0; i--) o[this.noiseKey()] = this.jsonValue(depth + 1);
    return o;
  }
  noiseKey(): string {
    const key = this.chance(0.5) ? this.oddString(12) : this.pick(["group", "room", "admin", "role", "seq", "id", "is_admin", "$where", "toString"]);
    return FIELDS.has(key) || key === "__proto__" ? `x${key}` : key;
  }
  wrongValue(field: string): Json {
    const values: Json[] = [123, -1.5, 0, true, false, [], ["x"], {}, { nested: { deep: [1] } }];
    if (field !== "file") values.push(null); // file: null is valid (no attachment)
    if (field === "limit" || field === "seq") return this.pick(values.filter((x) => typeof x !== "number"));
    return this.pick(values);
  }
  foreignId(): string {
    return this.chance(0.7) ? this.pick(this.socket.foreignIds) : randomUUID();
  }

  /** A frame of `op` that the schemas accept; for update, delete, seen and reply its id is another group's. */
  base(op: string): Obj {
    const f: Obj = { operation: op };
    if (this.socket.user === null && op !== "history") f.user = `open-${this.socket.index}`;
    switch (op) {
      case "create":
        return { ...f, type: "text", body: "hello" };
      case "reply":
        return { ...f, message_id: this.foreignId(), type: "text", body: "re" };
      case "update":
        return { ...f, message_id: this.foreignId(), body: "edited" };
      case "delete":
      case "seen":
        return { ...f, message_id: this.foreignId() };
      case "typing":
        return { ...f, typing_status: "typing" };
      case "read":
        return { ...f, seq: 0 };
      case "leave":
        return f;
      case "groups":
        return { ...f, limit: 10 };
      default:
        return { ...f, limit: 10 };
    }
  }

  rid(): string {
    // Any string of 1 to 64 but U+0000 (which PostgreSQL cannot store) is a valid request_id.
    return `s${this.socket.index}-${this.n}${this.chance(0.1) ? `:${this.oddString(8)}` : ""}`.replace(/\u0000/g, "0").slice(0, 64);
  }

  /** Serialises with a valid request_id (usually), extra noise keys (sometimes) and a raw __proto__ key (rarely). */
  finish(category: string, frame: Obj, code: ErrorCode, opts: { rid?: boolean } = {}): Hostile {
    let rid: string | undefined;
    if (opts.rid !== false && !("request_id" in frame) && this.chance(0.85)) frame.request_id = rid = this.rid();
    if (this.chance(0.3)) for (let i = 1 + this.int(3); i > 0; i--) frame[this.noiseKey()] = this.jsonValue();
    let text = this.chance(0.1) ? JSON.stringify(frame, null, 2) : JSON.stringify(frame);
    if (this.chance(0.15)) {
      const proto = `"__proto__":${JSON.stringify(this.jsonValue())}`;
      text = text === "{}" ? `{${proto}}` : `{${proto},${text.slice(1)}`;
    }
    return { category, data: text, code, rid };
  }

  next(): Hostile {
    this.n++;
    const connUser = this.socket.user !== null;
    const kinds = [
      ["binary", 5], ["not-json", 7], ["json-not-object", 4], ["deep-nesting", 5], ["huge-number", 7], ["proto-keys", 7],
      ["odd-unicode", 12], ["wrong-type", 14], ["other-group-id", 10], ["user-mismatch", connUser ? 5 : 0], ["bad-operation", 6],
      ["too-large", 7], ["missing-field", 6], ["bad-request-id", 4],
    ] as const;
    let roll = this.r() * kinds.reduce((s, [, w]) => s + w, 0);
    const kind = kinds.find(([, w]) => (roll -= w) < 0)![0];
    // Operations with fields to corrupt (presence has none), in OPERATIONS order so seeds replay.
    const op = this.pick(OPERATIONS.filter((o) => (OP_FIELDS[o]?.length ?? 0) > 0) as readonly string[]);
    switch (kind) {
      case "binary": {
        const bytes = new Uint8Array(this.int(3000));
        for (let i = 0; i < bytes.length; i++) bytes[i] = this.int(256);
        return { category: kind, data: bytes, binary: true, code: "bad_request" };
      }
      case "not-json": {
        for (;;) {
          const whole = JSON.stringify(this.base(op));
          const text = this.pick([
            () => this.oddString(200),
            () => whole.slice(0, this.int(whole.length)),
            () => `${whole}${this.oddString(5)}`,
            () => whole.replace(/"/g, "'"),
            () => `{${whole}`,
            () => whole.replace(":", "::"),
            () => "",
            () => "NaN",
            () => `{"operation": "create", "limit": ${this.pick(["NaN", "Infinity", "0x10", "01", "+1", ".5", "1."])}}`,
          ])();
          try {
            const parsed: unknown = JSON.parse(text);
            if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)) continue; // happens to be an object: try again
          } catch {
            /* not JSON: what we want */
          }
          return { category: kind, data: text, code: "bad_request" };
        }
      }
      case "json-not-object": {
        const value = this.pick<Json>([[this.base(op)], "create", 42, null, true, [], [1, [2, [3]]], this.oddString(30)]);
        return { category: kind, data: JSON.stringify(value), code: "bad_request" };
      }
      case "deep-nesting": {
        const depth = 50 + this.int(5000);
        const [open, close] = this.chance(0.5) ? ["[", "]"] : ['{"a":', "}"];
        const deep = `${open.repeat(depth)}${open === "[" ? "1" : "1"}${close.repeat(depth)}`;
        const where = this.pick(["body", "user", "file", "message_id", "typing_status", "limit", "type", "frame"]);
        // The deep value sits in a field the schemas check (or is the whole frame): never valid.
        if (where === "frame") return { category: kind, data: deep, code: "bad_request" };
        const frame = this.base(where === "limit" ? "history" : where === "typing_status" ? "typing" : where === "message_id" ? "seen" : "create");
        delete frame[where];
        const text = JSON.stringify(frame);
        return { category: kind, data: `{"${where}":${deep},${text.slice(1)}`, code: "bad_request" };
      }
      case "huge-number": {
        const field = this.pick(["limit", "limit", "limit", "message_id", "body", "user", "type", "typing_status", "before", "request_id"]);
        const frame = this.base(field === "limit" || field === "before" ? "history" : field === "typing_status" ? "typing" : field === "message_id" ? "delete" : "create");
        frame[field] = "__NUM__";
        const h = this.finish(kind, frame, "bad_request", { rid: field !== "request_id" });
        h.data = (h.data as string).replace('"__NUM__"', this.pick(BAD_NUMBERS));
        return h;
      }
      case "proto-keys": {
        const variant = this.int(3);
        if (variant === 0) {
          // The whole frame under __proto__: no own `operation`.
          const rid = this.rid();
          return { category: kind, data: `{"__proto__":${JSON.stringify(this.base(op))},"request_id":${JSON.stringify(rid)}}`, code: "bad_request", rid };
        }
        if (variant === 1) {
          const withRequired = OPERATIONS.filter((o) => REQUIRED[o]!.length > 0);
          const o = this.pick(withRequired);
          const frame = this.base(o);
          const field = this.pick(REQUIRED[o]!);
          const hidden = { [field]: frame[field]! };
          delete frame[field];
          const rid = this.rid();
          frame.request_id = rid;
          return { category: kind, data: `{"__proto__":${JSON.stringify(hidden)},${JSON.stringify(frame).slice(1)}`, code: "bad_request", rid };
        }
        const frame = this.base(op);
        frame.operation = this.pick(PROTO_OPS);
        (frame as Record<string, Json>)["constructor"] = { prototype: { polluted: true } };
        return this.finish(kind, frame, "unknown_operation");
      }
      case "odd-unicode": {
        const variant = this.int(8);
        if (variant === 6) {
          // U+0000 anywhere in a stored string (PostgreSQL text cannot hold it).
          const frame = this.base(this.pick(["create", "update", "reply"]));
          frame.body = `${this.oddString(10)}\u0000${this.oddString(10)}`;
          return this.finish(kind, frame, "bad_request");
        }
        if (variant === 7) {
          const frame = this.base(this.pick(["create", "reply", "typing"]));
          frame.request_id = `r\u0000${this.n}`;
          return this.finish(kind, frame, "bad_request", { rid: false });
        }
        if (variant === 0 && op !== "history") {
          const frame = this.base(op);
          // Lone surrogates go out as JSON escapes; controls and bidi overrides as themselves.
          frame.user = this.pick(["\ud800", "a\u202eb", "x\u0000", "\u2066rtl", "\u001b[2J", "\udfff\ud800", "u".repeat(129), `${this.oddString(10)}\u0007`]);
          return this.finish(kind, frame, "bad_request");
        }
        if (variant === 1 && connUser && op !== "history") {
          const frame = this.base(op);
          frame.user = this.printable(60);
          return this.finish(kind, frame, "forbidden");
        }
        if (variant === 2) {
          const frame = this.base("typing");
          frame.typing_status = `${this.oddString(40)}\u0000`; // never ^[a-z_]{1,32}$
          return this.finish(kind, frame, "bad_request");
        }
        if (variant === 3) {
          const o = this.pick([...WITH_ID, "history"]);
          const frame = this.base(o);
          frame[o === "history" ? "before" : "message_id"] = `${this.oddString(70)}!`; // never an id's shape
          return this.finish(kind, frame, "bad_request");
        }
        if (variant === 4) {
          const o = this.pick(["create", "update", "reply"]);
          const frame = this.base(o);
          let body = "";
          while (body.length <= MAX_BODY) body += this.pick(["😀", "𝕏", "é", "漢", "\u200b", "\u202e", "a"]);
          frame.body = body;
          return this.finish(kind, frame, "too_large");
        }
        const frame = this.base(op);
        frame.request_id = `${this.oddString(30)}${"\u00e9".repeat(65)}`;
        return this.finish(kind, frame, "bad_request", { rid: false });
      }
      case "wrong-type": {
        const frame = this.base(op);
        const field = this.pick(OP_FIELDS[op]!);
        frame[field] = this.wrongValue(field);
        return this.finish(kind, frame, "bad_request");
      }
      case "other-group-id": {
        const o = this.pick([...WITH_ID, "history"]);
        const frame = this.base(o);
        if (o === "history") frame.before = this.foreignId();
        return this.finish(kind, frame, "not_found");
      }
      case "user-mismatch": {
        const o = this.pick(["create", "update", "delete", "reply", "seen", "typing"]);
        const frame = this.base(o);
        frame.user = this.pick(["mallory", "admin", "root", `${this.socket.user}x`, `open-${this.socket.index}`]);
        return this.finish(kind, frame, "forbidden");
      }
      case "bad-operation": {
        const frame = this.base(op);
        const variant = this.int(3);
        if (variant === 0) {
          let name = this.oddString(20);
          if ((OPERATIONS as readonly string[]).includes(name)) name += "!";
          frame.operation = name;
          return this.finish(kind, frame, "unknown_operation");
        }
        if (variant === 1) {
          frame.operation = this.pick<Json>(["", 0, 1, null, true, [], ["create"], { create: true }]);
          return this.finish(kind, frame, "bad_request");
        }
        delete frame.operation;
        return this.finish(kind, frame, "bad_request");
      }
      case "too-large": {
        const variant = this.int(4);
        if (variant === 0) {
          const frame = this.base(this.pick(["create", "update", "reply"]));
          frame.body = "x".repeat(MAX_BODY + 1 + this.int(2000));
          return this.finish(kind, frame, "too_large");
        }
        const frame = this.base("create");
        frame.type = this.pick(["file", "image"]);
        const big = Buffer.alloc(MAX_FILE + 1 + this.int(4000), 1).toString("base64");
        if (variant === 1) frame.file = big;
        else if (variant === 2) frame.file = { name: "big.bin", content_type: "application/octet-stream", data: big };
        else {
          // Broken attachments: bad base64, bad names and types.
          const [file] = this.pick<[Json]>([
            ["!!!not base64!!!"], ["QUJD=A"], ["data:image/png;base64,@@@"], [{ name: "a\u0000b", content_type: "text/plain", data: "QUJD" }],
            [{ name: "a", content_type: "text/html; x=1", data: "QUJD" }], [{ name: "a", content_type: "image/png", data: 5 }], [{ name: "", content_type: "a/b", data: "QUJD" }],
          ]);
          frame.file = file;
          return this.finish(kind, frame, "bad_request");
        }
        return this.finish(kind, frame, "too_large");
      }
      case "missing-field": {
        const variant = this.int(3);
        if (variant === 0 && this.socket.user === null && op !== "history") {
          const frame = this.base(op);
          delete frame.user;
          return this.finish(kind, frame, "bad_request");
        }
        if (variant === 1) {
          const frame = this.chance(0.5) ? { ...this.base("create"), body: "" } : { ...this.base("create"), type: this.pick(["file", "image"]) };
          return this.finish(kind, frame, "bad_request");
        }
        const o = this.pick(OPERATIONS.filter((x) => REQUIRED[x]!.length > 0));
        const frame = this.base(o);
        delete frame[this.pick(REQUIRED[o]!)];
        return this.finish(kind, frame, "bad_request");
      }
      default: {
        const frame = this.base(op);
        frame.request_id = this.pick<Json>([123, "", "r".repeat(65), null, [], {}, true, ["r1"]]);
        return this.finish(kind, frame, "bad_request", { rid: false });
      }
    }
  }
}

/** A TAP-safe rendering: everything outside printable ASCII escaped. */
const show = (s: string) => JSON.stringify(s).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);

// --- the run ----------------------------------------------------------------------------------

const url = await freshDatabase(t);
const db = await sql(t, url);
const node = await spawnNode(t, {
  DATABASE_URL: url,
  MAX_BODY_CHARS: String(MAX_BODY),
  MAX_FILE_BYTES: String(MAX_FILE),
  MAX_FRAME_BYTES: String(256 * 1024),
  MAX_FRAMES_PER_SECOND: "1000000",
  MAX_FRAMES_BURST: "1000000",
  MAX_USER_FRAMES_PER_SECOND: "1000000",
});

/** Every row of each table, hashed: any insert, update or delete changes it. */
async function snapshot(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const table of ["messages", "seen_receipts", "attachments", "group_events"]) {
    out[table] = (await db.query(`SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS h FROM ${table} t`)).rows[0].h;
  }
  const groups = (await db.query(`SELECT name, last_seq, created_at FROM groups ORDER BY name`)).rows;
  out.groups = JSON.stringify(groups);
  return out;
}

t.test(`${FRAMES} hostile frames over ${SOCKETS} connections: one error each, nothing stored, the node stays up`, async (t) => {
  // Another group's messages, whose ids the fuzz frames use.
  const victim = await connect(t, node.port, "victim", { user: "victim" });
  const foreignIds: string[] = [];
  for (const body of ["one", "two", "three"]) foreignIds.push(String((await victim.request({ operation: "create", type: "text", body })).message_id));
  foreignIds.push(String((await victim.request({ operation: "create", type: "file", file: Buffer.from("f").toString("base64") })).message_id));
  await victim.request({ operation: "seen", message_id: foreignIds[0] });
  const before = await snapshot();

  const sockets = await Promise.all(
    Array.from({ length: SOCKETS }, async (_, index) => {
      const user = index < SOCKETS - 2 ? `fuzz-${index}` : null; // the last two in open mode, a user per frame
      const ws = new WebSocket(wsUrl(node.port, index % 2 ? "fuzz-a" : "fuzz-b", user ? { user } : {}), { perMessageDeflate: false });
      t.teardown(() => ws.terminate());
      await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
      return { index, user, ws, gen: new Generator(prng(SEED + index), { index, user, foreignIds }) };
    }),
  );

  const started = performance.now();
  const results = await Promise.all(
    sockets.map(({ ws, gen }) => {
      const expected = new Map<string, { code: ErrorCode; category: string }>();
      const withoutRid: ErrorCode[] = [];
      const errors: { code: string; request_id?: string }[] = [];
      const others: unknown[] = [];
      const outOfProtocol: string[] = [];
      const categories = new Map<string, number>();
      let wake: (() => void) | null = null;
      ws.on("message", (data) => {
        const frame: unknown = JSON.parse(data.toString());
        if (!v.is(ServerEvent, frame)) outOfProtocol.push(data.toString().slice(0, 200));
        // Presence: the group hears each ?user= socket arrive (and leave); not an answer to a frame.
        const op = (frame as { operation?: string }).operation;
        if (op === "join" || op === "leave") return;
        if ((frame as { operation?: string }).operation === "error") errors.push(frame as { code: string });
        else others.push(frame);
        wake?.();
      });
      const waitFor = async (cond: () => boolean, ms: number) => {
        const deadline = Date.now() + ms;
        while (!cond() && Date.now() < deadline) await new Promise<void>((r) => ((wake = r), setTimeout(r, 50)));
        return cond();
      };
      return (async () => {
        const n = FRAMES / SOCKETS;
        for (let i = 0; i < n; i++) {
          if (i - errors.length >= WINDOW) await waitFor(() => i - errors.length < WINDOW, 30_000);
          const h = gen.next();
          categories.set(h.category, (categories.get(h.category) ?? 0) + 1);
          if (h.rid !== undefined) expected.set(h.rid, { code: h.code, category: h.category });
          else withoutRid.push(h.code);
          ws.send(h.data, { binary: h.binary === true });
        }
        const allAnswered = await waitFor(() => errors.length >= n, 60_000);
        return { n, expected, withoutRid, errors, others, outOfProtocol, categories, allAnswered };
      })();
    }),
  );
  const elapsedMs = performance.now() - started;
  await new Promise((r) => setTimeout(r, 500)); // anything extra would arrive now

  const sent = results.reduce((s, r) => s + r.n, 0);
  const errorCount = results.reduce((s, r) => s + r.errors.length, 0);
  const categories = new Map<string, number>();
  for (const r of results) for (const [k, c] of r.categories) categories.set(k, (categories.get(k) ?? 0) + c);
  t.comment(`fuzz: seed ${SEED}, ${sent} frames over ${SOCKETS} sockets, ${errorCount} errors, ${Math.round(elapsedMs)} ms (${Math.round((sent / elapsedMs) * 1000)} frames/s)`);
  t.comment(`fuzz categories: ${[...categories].map(([k, c]) => `${k} ${c}`).join(", ")}`);

  t.ok(sent >= 10_000, `${sent} frames sent`);
  for (const [i, r] of results.entries()) {
    t.ok(r.allAnswered, `socket ${i}: every frame answered`);
    t.equal(r.errors.length, r.n, `socket ${i}: exactly one error per frame (${r.errors.length} for ${r.n})`);
    t.same(r.others, [], `socket ${i}: no ack, event or anything else`);
    t.same(r.outOfProtocol, [], `socket ${i}: every frame it got is in the protocol`);
    const echoed = new Map<string, string[]>();
    const bare: string[] = [];
    for (const e of r.errors) {
      if (e.request_id === undefined) bare.push(e.code);
      else echoed.set(e.request_id, [...(echoed.get(e.request_id) ?? []), e.code]);
    }
    const wrong = [...r.expected].filter(([rid, x]) => echoed.get(rid)?.length !== 1 || echoed.get(rid)![0] !== x.code);
    t.same(
      wrong.slice(0, 5).map(([rid, x]) => ({ rid: show(rid), expected: x.code, category: x.category, got: echoed.get(rid) ?? [] })),
      [],
      `socket ${i}: each of ${r.expected.size} frames with a request_id got exactly one error, with the expected code`,
    );
    t.equal(echoed.size, r.expected.size, `socket ${i}: no error echoes a request_id that was not sent`);
    t.same(bare.sort(), [...r.withoutRid].sort(), `socket ${i}: the ${r.withoutRid.length} frames without a usable request_id got one error each, with the expected codes`);
  }

  t.equal(node.child.exitCode, null, "the process is still running");
  const health = await httpGet(node.port, "/healthz");
  t.match(health, { status: 200 }, "and healthy");
  const after = await snapshot();
  for (const table of ["messages", "seen_receipts", "attachments", "group_events"]) t.equal(after[table], before[table], `no row of ${table} changed`);
  const groupsBefore = JSON.parse(before.groups!) as { name: string }[];
  const groupsAfter = JSON.parse(after.groups!) as { name: string }[];
  t.same(groupsAfter.filter((g) => groupsBefore.some((b) => b.name === g.name)), groupsBefore, "no existing groups row changed (no seq was taken)");
  t.same(groupsAfter.map((g) => g.name), groupsBefore.map((g) => g.name), "no groups row was added");
  t.equal(await metric(node.port, 'chat_errors_total{code="internal"}'), 0, "no frame was an internal error");
  t.same(node.logs.filter((l) => Number(l.level) >= 50), [], "nothing was logged as an error");

  // Normal traffic still works, on the very sockets that sent the garbage.
  for (const { ws, user, index } of sockets) {
    const rid = `normal-${index}`;
    const answer = new Promise<Record<string, unknown>>((resolve) =>
      ws.on("message", (d) => {
        const f = JSON.parse(d.toString());
        if (f.request_id === rid) resolve(f);
      }),
    );
    ws.send(JSON.stringify({ operation: "create", type: "text", body: "still fine", request_id: rid, ...(user ? {} : { user: `open-${index}` }) }));
    t.match(await answer, { operation: "ack", seq: Number }, `socket ${index}: a normal create is acknowledged`);
  }
  t.not((await snapshot()).messages, before.messages, "and stored");
});

t.test("invalid UTF-8 in a text frame closes that socket only", async (t) => {
  const bad = await connect(t, node.port, "utf8", { user: "u" });
  const good = await connect(t, node.port, "utf8", { user: "w" });
  bad.ws.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false });
  t.ok([1006, 1007].includes((await bad.closed).code), "closed");
  t.match(await good.request({ operation: "typing", typing_status: "typing" }), { operation: "ack" }, "the other socket is fine");
  t.equal(node.child.exitCode, null, "the process is still running");
});
