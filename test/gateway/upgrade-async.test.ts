// A WebSocket upgrade finished after an await (identity, the group's bus subscription) keeps its
// socket. In uWebSockets 20.30, the only build that loads here, HttpResponse::cork() could take a
// socket upgraded inside it for an HTTP response and shut it down right after `open` (1006 at
// both ends, no close frame; uWebSockets #1929): about one reconnect in 10,000 at random, and
// every handshake whose `Connection` header was "close". The node now upgrades in its own
// macrotask inside another socket's cork (src/uws/late-upgrade.ts) and refuses a handshake whose
// `Connection` does not ask for an upgrade, as RFC 6455 says; with the old code every raw
// handshake below that sends `Connection: close` was answered 101 and then cut.
import net from "node:net";
import t from "tap";
import { connect } from "../helpers/client.ts";
import { startInProcess } from "../helpers/node.ts";
import { freshDatabase } from "../helpers/services.ts";

const url = await freshDatabase(t);
const node = await startInProcess(t, { DATABASE_URL: url });

/** A client text frame (masked, as RFC 6455 requires of clients) of a short payload. */
function clientFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  if (payload.length > 125) throw new Error("short frames only");
  const mask = Buffer.from([1, 2, 3, 4]);
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, payload.map((b, i) => b ^ mask[i % 4]!)]);
}

/**
 * Upgrades `path` over a bare TCP socket with `Connection: close`, sends `frame` once the 101 is
 * in, and resolves with the first text frame that comes back, or with how the socket ended.
 */
function handshakeThenAsk(port: number, path: string, frame: string, connection = "Upgrade", waitMs = 10_000): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: "127.0.0.1" });
    let buf = Buffer.alloc(0);
    let upgraded = false;
    const done = (what: string) => {
      socket.destroy();
      resolve(what);
    };
    const timer = setTimeout(() => done(`no answer within ${waitMs} ms`), waitMs);
    socket.on("connect", () =>
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: ${connection}\r\n` +
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
      ),
    );
    socket.on("data", (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      if (!upgraded) {
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        const head = buf.subarray(0, end).toString();
        if (!head.startsWith("HTTP/1.1 101")) return done(`refused: ${head.split("\r\n")[0]}`);
        upgraded = true;
        buf = buf.subarray(end + 4);
        socket.write(clientFrame(frame));
      }
      // Server frames are unmasked; skip anything but a text frame.
      while (buf.length >= 2) {
        const op = buf[0]! & 0x0f;
        let len = buf[1]! & 0x7f;
        let at = 2;
        if (len === 126) {
          if (buf.length < 4) return;
          len = buf.readUInt16BE(2);
          at = 4;
        } else if (len === 127) return done("unexpectedly large frame");
        if (buf.length < at + len) return;
        const payload = buf.subarray(at, at + len).toString();
        buf = buf.subarray(at + len);
        if (op === 0x8) return done(`closed with a close frame: ${payload.length >= 2 ? Buffer.from(payload).readUInt16BE(0) : "none"}`);
        if (op === 0x1 && payload.includes('"request_id":"r1"')) {
          clearTimeout(timer);
          return done(payload);
        }
      }
    });
    socket.on("end", () => done(upgraded ? "the socket ended without a close frame (a client sees 1006)" : `refused: ${buf.toString().split("\r\n")[0]}`));
    socket.on("error", (err) => done(`socket error: ${err.message}`));
  });
}

const ask = JSON.stringify({ operation: "history", limit: 1, request_id: "r1" });

t.test("an upgrade finished after an await keeps its socket: the node's first socket, and with others open", async (t) => {
  t.match(await handshakeThenAsk(node.port, "/ws/chat/async-a/?user=first", ask), /"operation":"history"/, "the only socket on the node");
  const others = await Promise.all([0, 1, 2].map((i) => connect(t, node.port, `async-b${i}`, { user: `o${i}` })));
  for (let i = 0; i < 20; i++) {
    t.match(await handshakeThenAsk(node.port, `/ws/chat/async-c${i % 3}/?user=c${i}`, ask, i % 2 ? "keep-alive, Upgrade" : "Upgrade"), /"operation":"history"/, `per-group socket ${i}`);
  }
  const sub = JSON.stringify({ operation: "subscribe", group: "async-m", request_id: "r1" });
  t.match(await handshakeThenAsk(node.port, "/ws/?user=mux", sub), /"request_id":"r1"/, "a /ws/ socket");
  for (const o of others) await o.close();
});

t.test("a handshake whose Connection header does not ask for an upgrade is refused 400, on both endpoints, and takes nothing", async (t) => {
  const before = await fetch(`http://127.0.0.1:${node.port}/metrics`).then((r) => r.text());
  const connections = (text: string) => /^chat_connections (\d+)/m.exec(text)?.[1];
  for (const connection of ["close", "keep-alive", "hello"]) {
    t.equal(await handshakeThenAsk(node.port, "/ws/chat/async-d/?user=d", ask, connection), "refused: HTTP/1.1 400 Bad Request", `/ws/chat/: Connection: ${connection}`);
    t.equal(await handshakeThenAsk(node.port, "/ws/?user=d", ask, connection), "refused: HTTP/1.1 400 Bad Request", `/ws/: Connection: ${connection}`);
  }
  const after = await fetch(`http://127.0.0.1:${node.port}/metrics`).then((r) => r.text());
  t.equal(connections(after), connections(before), "no socket was opened");
  t.match(await handshakeThenAsk(node.port, "/ws/chat/async-d/?user=d", ask), /"operation":"history"/, "the same user connects with a proper handshake");
});

t.test("1,000 upgrades at once, each resuming: none is cut after its 101", async (t) => {
  // A typing frame touches no store; any answer shows the socket is alive. A node that cannot
  // join a group within its deadline refuses the upgrade with 503 (a loaded machine does), which
  // a client retries: that is not a cut socket. The deadline for an answer is wide for the same reason.
  const typing = JSON.stringify({ operation: "typing", typing_status: true, request_id: "r1" });
  const results = await Promise.all(Array.from({ length: 1_000 }, (_, i) => handshakeThenAsk(node.port, `/ws/chat/async-s${i % 20}/?user=s${i % 50}&since=0`, typing, "Upgrade", 30_000)));
  const answered = results.filter((r) => r.includes('"request_id":"r1"')).length;
  const refused = results.filter((r) => r === "refused: HTTP/1.1 503 Service Unavailable").length;
  t.ok(answered > 0, `${answered} upgraded and answered, ${refused} refused with 503`);
  t.same(results.filter((r) => !r.includes('"request_id":"r1"') && !r.startsWith("refused: HTTP/1.1 503")).slice(0, 5), [], "no socket was cut or left unanswered");
});
