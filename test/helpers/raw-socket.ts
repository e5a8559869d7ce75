// A WebSocket client that never reads: a bare TCP socket that sends the upgrade request and then
// leaves everything the server sends in the kernel, like a phone that lost signal. Destroyed at
// teardown.
import net from "node:net";
import type { Test } from "tap";

export function neverReading(t: Test, port: number, path: string): Promise<net.Socket> {
  const socket = net.connect({ port, host: "127.0.0.1" });
  t.teardown(() => void socket.destroy());
  socket.pause(); // and no 'data' listener: the stream stays paused, so nothing past the first chunk is read
  socket.write(
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
  );
  return new Promise((resolve, reject) => {
    socket.once("connect", () => resolve(socket));
    socket.once("error", reject);
  });
}
