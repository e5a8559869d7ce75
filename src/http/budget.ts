// The node-wide budget for HTTP answers being written. uWS closes a connection that pipelines a
// request while its previous answer is still being written, so a connection holds at most one
// answer; this bounds how many, and how many bytes, all connections together hold. An answer
// that does not fit is refused (503) rather than queued: queueing would itself be memory.
//
// - File downloads: at most `maxFileReads` at once, each holding one chunk (`fileChunkBytes`).
// - Bytes: every answer reserves what it holds (a file's chunk, a history page's JSON) until it
//   has been handed to the kernel or the client went away; at most `maxBytes` in all.
/** A download reads and holds this much of a file at a time. */
export const FILE_CHUNK_BYTES = 256 * 1024;

export interface HttpBudgetOptions {
  maxBytes: number;
  maxFileReads: number;
  fileChunkBytes: number;
}

export type Reservation = { release(): void };

export class HttpBudget {
  private bytes = 0;
  private fileReads = 0;

  constructor(readonly opts: HttpBudgetOptions) {}

  get held(): { bytes: number; fileReads: number } {
    return { bytes: this.bytes, fileReads: this.fileReads };
  }

  /** Reserves `bytes` (and a file read when `file`), or names the limit that refuses it. */
  reserve(bytes: number, file = false): Reservation | "file_reads" | "http_buffer" {
    if (file && this.fileReads >= this.opts.maxFileReads) return "file_reads";
    // One answer alone may always be written: a budget smaller than the largest page must not refuse everything.
    if (this.bytes > 0 && this.bytes + bytes > this.opts.maxBytes) return "http_buffer";
    this.bytes += bytes;
    if (file) this.fileReads++;
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.bytes -= bytes;
        if (file) this.fileReads--;
      },
    };
  }
}
