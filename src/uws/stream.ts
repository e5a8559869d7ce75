// Writing HTTP answers with backpressure. uWS's `end` buffers whatever the client has not read
// yet, without limit; a client that pipelines requests and never reads used to make the node
// hold every answer (30 pipelined 3 MiB downloads: 100+ MB). Here an answer is handed over with
// `tryEnd` and, when the socket is full, continued from `onWritable`, so it stays pending until
// the client has taken it. uWS closes a connection that sends another request while an answer
// is pending, and aborts an answer that makes no progress for 10 s: a connection holds at most
// one answer, for a bounded time. Bodies from a store are read a chunk at a time, the next
// chunk only once the last one is out.
import type { HttpResponse } from "uWebSockets.js";

export type Headers = Record<string, string>;

/** A response answered later: whether the client went away, and a hook for when it does. */
export class PendingResponse {
  private aborted = false;
  private onAbort: (() => void) | null = null;

  constructor(readonly res: HttpResponse) {
    res.onAborted(() => {
      this.aborted = true;
      this.onAbort?.();
    });
  }

  readonly isAborted = (): boolean => this.aborted;

  /**
   * Hands `chunk` (the body's bytes from `at`; the body is `total` bytes) to uWS, after the
   * status and headers when `head` is given. Resolves true once all of it is out, false when the
   * client went away first.
   */
  write(chunk: Uint8Array, at: number, total: number, head?: { status: string; headers: Headers }): Promise<boolean> {
    if (this.aborted) return Promise.resolve(false);
    const { res } = this;
    let before = 0;
    let taken = false;
    res.cork(() => {
      if (head) {
        res.writeStatus(head.status);
        for (const [k, v] of Object.entries(head.headers)) res.writeHeader(k, v);
      }
      before = res.getWriteOffset();
      const [ok, done] = res.tryEnd(chunk, total);
      taken = ok || done;
    });
    if (taken) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      this.onAbort = () => resolve(false);
      res.onWritable((offset) => {
        const [ok, done] = res.tryEnd(chunk.subarray(offset - before), total);
        if (ok || done) {
          this.onAbort = null;
          resolve(true);
        }
        return ok;
      });
    });
  }
}

/** Writes a whole in-memory answer with backpressure; resolves true once sent, false if the client left. */
export function writeAnswer(p: PendingResponse, status: string, headers: Headers, body: Uint8Array): Promise<boolean> {
  return p.write(body, 0, body.byteLength, { status, headers });
}

/** A body read piecewise: `read` returns the bytes at [offset, offset + length), or null when gone. */
export interface BodySource {
  size: number;
  read(offset: number, length: number): Promise<Uint8Array | null>;
}

export class SourceGone extends Error {}

/**
 * Streams `source` as the answer, `chunkBytes` at a time, holding one chunk. The first chunk is
 * read before anything is written, so a failure there (thrown, or SourceGone) can still be
 * answered properly; a failure later closes the connection, since the length was promised.
 * Resolves true when the whole body went out, false when the client left.
 */
export async function streamAnswer(p: PendingResponse, status: string, headers: Headers, source: BodySource, chunkBytes: number): Promise<boolean> {
  let offset = 0;
  for (;;) {
    const length = Math.min(chunkBytes, source.size - offset);
    let chunk: Uint8Array | null;
    try {
      chunk = length === 0 ? new Uint8Array(0) : await source.read(offset, length);
    } catch (err) {
      if (offset === 0) throw err;
      chunk = null;
    }
    if (p.isAborted()) return false;
    if (chunk === null || chunk.byteLength !== length) {
      if (offset === 0) throw new SourceGone("the body is gone");
      p.res.close();
      return false;
    }
    if (!(await p.write(chunk, offset, source.size, offset === 0 ? { status, headers } : undefined))) return false;
    offset += length;
    if (offset >= source.size) return true;
  }
}
