// A bare WebSocket client for sockets that only need to stay open (the connections scenario).
// `ws` spends about a millisecond of JavaScript per handshake, which caps a worker near a few
// thousand connects per second: the generator, not the server, would set the connect rate.
// This one writes a fixed upgrade request, waits for the 101, then answers pings and nothing else.
import net from "node:net";
import type { SocketSpec } from "../lib/ipc.ts";

// The server only derives Sec-WebSocket-Accept from the key; it need not be unique per socket.
const KEY = "dGhlIHNhbXBsZSBub25jZQ==";
const HEADERS_END = Buffer.from("\r\n\r\n");
const OPCODE_CLOSE = 0x8;
const OPCODE_PING = 0x9;
const OPCODE_PONG = 0xa;
const HANDSHAKE_TIMEOUT_MS = 30_000;

export function openIdleSocket(spec: SocketSpec): Promise<net.Socket> {
  const url = new URL(spec.url);
  const request =
    `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\n` +
    `Connection: Upgrade\r\nSec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: url.hostname, port: Number(url.port), localAddress: spec.localAddress });
    socket.setNoDelay(true);
    socket.setTimeout(HANDSHAKE_TIMEOUT_MS, () => socket.destroy(new Error("handshake timed out")));
    let head = Buffer.alloc(0);
    const fail = (err: Error) => {
      socket.destroy();
      reject(err);
    };
    const closed = () => fail(new Error("closed during handshake"));
    const onHandshake = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf(HEADERS_END);
      if (end < 0) return;
      const status = head.toString("latin1", 0, head.indexOf("\r\n"));
      if (!/^HTTP\/1\.1 101 /.test(status)) return fail(new Error(`upgrade refused: ${status}`));
      socket.off("data", onHandshake);
      socket.off("error", fail);
      socket.off("close", closed);
      socket.setTimeout(0);
      socket.on("error", () => {});
      answerPings(socket, head.subarray(end + HEADERS_END.length));
      resolve(socket);
    };
    socket.on("data", onHandshake);
    socket.once("error", fail);
    socket.once("close", closed);
    socket.once("connect", () => socket.write(request));
  });
}

/** Reads server frames (never masked) and answers pings, so the server's idle timeout keeps
 *  seeing a live client; a close frame ends the socket. */
function answerPings(socket: net.Socket, initial: Buffer): void {
  let buf = initial;
  const onData = (chunk: Buffer) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    for (;;) {
      if (buf.length < 2) return;
      const opcode = buf[0]! & 0x0f;
      let len = buf[1]! & 0x7f;
      let offset = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        offset = 4;
      } else if (len === 127) {
        if (buf.length < 10) return;
        len = Number(buf.readBigUInt64BE(2));
        offset = 10;
      }
      if (buf.length < offset + len) return;
      const payload = buf.subarray(offset, offset + len);
      buf = buf.subarray(offset + len);
      if (opcode === OPCODE_PING) socket.write(clientFrame(OPCODE_PONG, payload));
      else if (opcode === OPCODE_CLOSE) socket.end(clientFrame(OPCODE_CLOSE, payload.subarray(0, 2)));
    }
  };
  socket.on("data", onData);
  if (initial.length > 0) onData(Buffer.alloc(0));
}

/** A control frame as a client must send it: masked (with a zero mask, which is allowed). */
function clientFrame(opcode: number, payload: Buffer): Buffer {
  const frame = Buffer.alloc(6 + payload.length);
  frame[0] = 0x80 | opcode;
  frame[1] = 0x80 | payload.length; // control frames carry at most 125 bytes
  payload.copy(frame, 6);
  return frame;
}
