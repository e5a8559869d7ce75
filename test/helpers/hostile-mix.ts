// The hostile mix of issue 10, against one node: clients that stop reading, drop mid-replay,
// pipeline file downloads without reading, upload past every limit, upload files at the cap
// back to back without waiting for their answers, and hold tokens that expire, all at once,
// while a victim measures its typing round trips. Used by
// test/security/hostile-mix.test.ts and the `hostile` benchmark scenario.
import { spawn } from "node:child_process";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { SignJWT } from "jose";
import WebSocket from "ws";

/**
 * The node's RSS budget under the mix, MiB: the Deployment's 512 MiB memory limit less 64 MiB
 * (test/security/hostile-mix.test.ts says what fits under it). The test and the `hostile`
 * benchmark scenario hold the node to it.
 */
export const RSS_BUDGET_MIB = 448;

export interface MixTarget {
  port: number;
  /** HS256 secret of the node (JWT mode); the mix signs every client's token with it. */
  jwtSecret: string;
  /** A group whose `?since=0` replay is a few MB (see prepareMix). */
  bigGroup: string;
  /** `/files/<id>` of a file of a few MB. */
  filePath: string;
  maxFileBytes: number;
  maxFrameBytes: number;
}

export interface MixStats {
  /** Victim typing round trips (send to its own typing event), ms, in order. */
  rtts: number[];
  /** Victim frames that got no ack within the deadline. */
  victimLost: number;
  /** Share of the mix the victim's main thread waited for a core (0 to 1). */
  victimWaited: number;
  /** What each actor did: its sessions, and how they ended (close codes). */
  actors: Record<string, { sessions: number; closes: Record<string, number> }>;
}

const enc = new TextEncoder();
const VICTIM = fileURLToPath(new URL("./hostile-victim.ts", import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function signer(secret: string) {
  return (sub: string, ttlS = 3600) =>
    new SignJWT({ sub })
      .setProtectedHeader({ alg: "HS256" })
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + ttlS)
      .sign(enc.encode(secret));
}

const wsUrl = (port: number, group: string, query = "") => `ws://127.0.0.1:${port}/ws/chat/${group}/${query}`;

/** `cheapSend`: an all-zero masking key, which ws then skips applying: megabyte frames cost the mix's process nothing to send. */
function open(url: string, token: string, ms = 10_000, cheapSend = false): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${token}` }, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024, ...(cheapSend ? { generateMask: () => {} } : {}) });
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error("open timed out"));
    }, ms);
    ws.once("open", () => {
      clearTimeout(timer);
      resolve(ws);
    });
    ws.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    ws.once("unexpected-response", (_req, res) => {
      clearTimeout(timer);
      res.resume();
      reject(new Error(`upgrade refused: ${res.statusCode}`));
    });
  });
}

const closedCode = (ws: WebSocket, ms: number) =>
  new Promise<string>((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) return resolve("closed");
    const timer = setTimeout(() => resolve("timeout"), ms);
    ws.once("close", (code) => {
      clearTimeout(timer);
      resolve(String(code));
    });
  });

/** Stores the mix's fixtures: `messages` messages of ~24 KB of JSON each in `bigGroup`, and a file of `fileBytes`. */
export async function prepareMix(port: number, jwtSecret: string, bigGroup: string, opts: { messages: number; fileBytes: number }): Promise<string> {
  const token = await signer(jwtSecret)("feeder");
  const ws = await open(wsUrl(port, bigGroup), token);
  const answers = new Map<string, (f: Record<string, unknown>) => void>();
  let fileEvent: string | null = null;
  ws.on("message", (data) => {
    const f = JSON.parse(data.toString()) as Record<string, unknown>;
    if (f.operation === "create" && (f.message as { file?: string }).file) fileEvent = (f.message as { file: string }).file;
    const rid = f.request_id as string | undefined;
    if (rid && (f.operation === "ack" || f.operation === "error")) answers.get(rid)?.(f);
  });
  const ask = (frame: Record<string, unknown>, rid: string) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer to ${rid}`)), 60_000);
      answers.set(rid, (f) => {
        clearTimeout(timer);
        resolve(f);
      });
      ws.send(JSON.stringify({ ...frame, request_id: rid }));
    });
  // \u0001 is 6 bytes once JSON-escaped: a 4000-character body is a 24 KB event.
  const body = "\u0001".repeat(4000);
  const acks = await Promise.all(Array.from({ length: opts.messages }, (_, i) => ask({ operation: "create", type: "text", body }, `m${i}`)));
  if (acks.some((a) => a.operation !== "ack")) throw new Error(`fixture creates failed: ${JSON.stringify(acks.find((a) => a.operation !== "ack"))}`);
  const bytes = Buffer.alloc(opts.fileBytes, 0x5a);
  const ack = await ask({ operation: "create", type: "file", file: { name: "big.bin", content_type: "application/octet-stream", data: bytes.toString("base64") } }, "file");
  if (ack.operation !== "ack") throw new Error(`fixture file failed: ${JSON.stringify(ack)}`);
  for (let i = 0; i < 100 && !fileEvent; i++) await sleep(50);
  ws.close();
  if (!fileEvent) throw new Error("the file's create event never came");
  return fileEvent;
}

/** Runs the mix for `durationMs`; resolves with the victim's figures once every actor stopped. */
export async function runMix(target: MixTarget, durationMs: number, opts: { victimEveryMs?: number; victimGroup: string; skip?: string[] }): Promise<MixStats> {
  const sign = signer(target.jwtSecret);
  const until = Date.now() + durationMs;
  const running = () => Date.now() < until;
  const stats: MixStats = { rtts: [], victimLost: 0, victimWaited: 0, actors: {} };
  const actor = (name: string) => (stats.actors[name] ??= { sessions: 0, closes: {} });
  const ended = (name: string, how: string) => {
    const a = actor(name);
    a.closes[how] = (a.closes[how] ?? 0) + 1;
  };
  /** Repeats `session` until the time is up; an error (refused upgrade, reset) counts as an ending. */
  const loop = async (name: string, session: () => Promise<string>, pauseMs = 100) => {
    while (running() && !opts.skip?.includes(name)) {
      actor(name).sessions++;
      const how = await session().catch((err: Error) => `error: ${err.message.slice(0, 60)}`);
      ended(name, how);
      await sleep(pauseMs);
    }
  };

  // Slow readers: stop reading and ask for 2.4 MB history pages they do not read, for 3 s;
  // then read again, to see how the node ended it (a close frame waits behind the unread data).
  const slowReader = (i: number) => async () => {
    const ws = await open(wsUrl(target.port, target.bigGroup), await sign(`slow-${i}`));
    const socket = (ws as unknown as { _socket: net.Socket })._socket;
    socket.pause();
    const closed = closedCode(ws, 30_000);
    let n = 0;
    const timer = setInterval(() => {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ operation: "history", limit: 100, request_id: `h${n++}` }));
    }, 250);
    await sleep(3_000);
    clearInterval(timer);
    socket.resume();
    const how = await Promise.race([closed, sleep(5_000).then(() => "still open")]);
    ws.terminate();
    return how;
  };

  // Replay droppers: ask for the whole group from seq 0, read nothing, drop the TCP connection after 1.5 s.
  const replayDropper = (i: number) => async () => {
    const ws = await open(wsUrl(target.port, target.bigGroup, "?since=0"), await sign(`dropper-${i}`));
    const socket = (ws as unknown as { _socket: net.Socket })._socket;
    socket.pause();
    await sleep(1_500);
    socket.destroy();
    return "dropped";
  };

  // Pipelined downloads: 24 GETs of the file, one every 250 ms, on one connection that never reads.
  const pipeliner = (i: number) => async () => {
    const token = await sign(`pipe-${i}`);
    const s = net.connect(target.port, "127.0.0.1");
    s.on("error", () => {});
    s.pause();
    let closedByServer = false;
    s.once("close", () => (closedByServer = true));
    for (let k = 0; k < 24 && running() && !s.destroyed; k++) {
      s.write(`GET ${target.filePath} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n\r\n`);
      await sleep(250);
    }
    s.destroy();
    return closedByServer ? "closed by the node" : "gave up";
  };

  // Oversize uploads: a file one byte over MAX_FILE_BYTES (too_large), then a frame over MAX_FRAME_BYTES (closes the socket).
  const overFile = Buffer.alloc(target.maxFileBytes + 1, 1).toString("base64");
  const overFrame = JSON.stringify({ operation: "create", type: "text", body: "x".repeat(target.maxFrameBytes) });
  const uploader = async () => {
    const ws = await open(wsUrl(target.port, `${opts.victimGroup}-up`), await sign("uploader"));
    const answered = new Promise<string>((resolve) => ws.once("message", (d) => resolve((JSON.parse(d.toString()) as { code?: string }).code ?? "answered")));
    ws.send(JSON.stringify({ operation: "create", type: "file", file: overFile, request_id: "big" }));
    const code = await Promise.race([answered, sleep(15_000).then(() => "no answer")]);
    const closed = closedCode(ws, 15_000);
    ws.send(overFrame);
    const how = await closed;
    ws.terminate();
    return `${code}, then ${how}`;
  };

  // Large uploads: files at MAX_FILE_BYTES (~7 MB frames), two in flight at all times, each
  // answer (stored, or rate_limited past the upload budget) followed at once by the next: a
  // client uploading as fast as the node answers, never backing off. 10 s per session.
  const atCap = (rid: string) => Buffer.from(JSON.stringify({ operation: "create", type: "file", file: { name: "cap.bin", content_type: "application/octet-stream", data: Buffer.alloc(target.maxFileBytes, 2).toString("base64") }, request_id: rid }));
  const capFrames = [atCap("up-0"), atCap("up-1")];
  const largeUploader = (i: number) => async () => {
    const ws = await open(wsUrl(target.port, `${opts.victimGroup}-large-${i}`), await sign(`large-${i}`), 10_000, true);
    const a = actor("large upload");
    const closed = closedCode(ws, 60_000);
    let inflight = 0;
    const sessionEnd = Date.now() + 10_000;
    const next = (k: number) => {
      if (ws.readyState !== WebSocket.OPEN || !running() || Date.now() > sessionEnd) return;
      inflight++;
      ws.send(capFrames[k]!, { binary: false });
    };
    ws.on("message", (d) => {
      const f = JSON.parse(d.toString()) as { operation?: string; code?: string; request_id?: string };
      if (f.operation !== "ack" && f.operation !== "error") return;
      const outcome = f.operation === "ack" ? "stored" : f.code!;
      a.closes[outcome] = (a.closes[outcome] ?? 0) + 1;
      inflight--;
      next(f.request_id === "up-1" ? 1 : 0);
    });
    next(0);
    next(1);
    while (inflight > 0 && ws.readyState === WebSocket.OPEN) await sleep(100);
    ws.close();
    await Promise.race([closed, sleep(5_000)]);
    ws.terminate();
    return "session over";
  };

  // Token expiries: a token valid for 3 s, a typing frame every 500 ms; the node should close the
  // socket (4001). (An upgrade slower than the token's life is refused with 401 instead.)
  const expirer = async () => {
    const ws = await open(wsUrl(target.port, `${opts.victimGroup}-exp`), await sign("expiring", 3));
    const closed = closedCode(ws, 6_000);
    const timer = setInterval(() => {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ operation: "typing", typing_status: "typing" }));
    }, 500);
    ws.on("message", () => {});
    const how = await closed;
    clearInterval(timer);
    ws.terminate();
    return how;
  };

  // The victim: its own process (hostile-victim.ts), a typing frame every 100 ms on its own group.
  const victim = async () => {
    const child = spawn(process.execPath, ["--import", "tsx", VICTIM, wsUrl(target.port, opts.victimGroup), await sign("victim"), String(durationMs), String(opts.victimEveryMs ?? 100)], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    const result = JSON.parse(out.trim().split("\n").at(-1) || "{}") as { rtts?: number[]; unanswered?: number; waited?: number; error?: string };
    if (!result.rtts) throw new Error(`the victim failed (exit ${code}): ${result.error ?? out}`);
    stats.rtts = result.rtts;
    stats.victimLost = result.unanswered ?? 0;
    stats.victimWaited = result.waited ?? 0;
  };

  await Promise.all([
    victim(),
    // The counts keep the node's CPU around half a core on a 2-core machine that also runs these
    // clients: the victim's latency then shows the node's fairness, not the machine's saturation.
    ...[0, 1, 2].map((i) => loop("slow reader", slowReader(i))),
    ...[0, 1].map((i) => loop("replay dropper", replayDropper(i))),
    ...[0, 1].map((i) => loop("pipelined downloads", pipeliner(i))),
    loop("oversize upload", uploader, 500),
    ...[0, 1, 2].map((i) => loop("large upload", largeUploader(i))),
    loop("token expiry", expirer),
  ]);
  return stats;
}

export const percentile = (xs: number[], p: number) => {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
};
