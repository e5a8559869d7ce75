// Opens many client sockets with a bounded number of handshakes in flight, timing each one.
import WebSocket from "ws";
import { nowUs } from "../lib/clock.ts";
import type { Histogram } from "../lib/histogram.ts";
import type { SocketSpec } from "../lib/ipc.ts";

export interface ConnectOutcome {
  failed: number;
  errorSamples: string[];
  firstAttemptUs: number;
  lastOpenUs: number;
}

export function openSocket(spec: SocketSpec): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(spec.url, {
      // Compression would make the generator, not the server, the thing being measured.
      perMessageDeflate: false,
      // The server is trusted here; validating every frame's UTF-8 costs generator CPU.
      skipUTF8Validation: true,
      localAddress: spec.localAddress,
      handshakeTimeout: 30_000,
    });
    const fail = (err: Error) => {
      ws.removeAllListeners();
      ws.on("error", () => {});
      ws.terminate();
      reject(err);
    };
    ws.once("error", fail);
    ws.once("unexpected-response", (_req, res) => fail(new Error(`HTTP ${res.statusCode} on upgrade`)));
    ws.once("open", () => {
      ws.off("error", fail);
      resolve(ws);
    });
  });
}

export async function openAll<S>(
  specs: readonly SocketSpec[],
  concurrency: number,
  handshake: Histogram,
  open: (spec: SocketSpec) => Promise<S>,
  onOpen: (socket: S, spec: SocketSpec, index: number) => void,
): Promise<ConnectOutcome> {
  const outcome: ConnectOutcome = { failed: 0, errorSamples: [], firstAttemptUs: nowUs(), lastOpenUs: 0 };
  let next = 0;
  const lane = async () => {
    while (next < specs.length) {
      const index = next++;
      const spec = specs[index]!;
      const begun = nowUs();
      try {
        const socket = await open(spec);
        const opened = nowUs();
        handshake.recordValue(opened - begun);
        outcome.lastOpenUs = Math.max(outcome.lastOpenUs, opened);
        onOpen(socket, spec, index);
      } catch (err) {
        outcome.failed++;
        if (outcome.errorSamples.length < 5) outcome.errorSamples.push(String(err));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, specs.length)) }, lane));
  return outcome;
}
