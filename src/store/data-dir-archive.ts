// A PostgreSQL data directory as a gzipped tar (POSIX ustar: directories and regular files
// only), written by the build and unpacked by a node whose embedded data directory is fresh
// (see embedded.ts).
import { closeSync, ftruncateSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import { readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";

const BLOCK = 512;

/** A name the archive may hold: relative, `/`-separated, no `.`/`..` segment, ustar-sized. */
function checkName(name: string): string {
  const segments = name.split("/");
  if (name === "" || name.length > 100 || name.startsWith("/") || name.includes("\\") || name.includes("\0") || segments.some((s) => s === "" || s === "." || s === ".."))
    throw new Error(`data directory archive: unsafe or over-long entry name ${JSON.stringify(name)}`);
  return name;
}

function header(name: string, kind: "file" | "dir", mode: number, size: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  const field = (offset: number, length: number, value: string) => h.write(value, offset, length, "latin1");
  const octal = (offset: number, length: number, n: number) => field(offset, length, n.toString(8).padStart(length - 1, "0") + "\0");
  field(0, 100, kind === "dir" ? `${name}/` : name);
  octal(100, 8, mode & 0o777);
  octal(108, 8, 0);
  octal(116, 8, 0);
  octal(124, 12, size);
  octal(136, 12, 0);
  field(148, 8, "        ");
  field(156, 1, kind === "dir" ? "5" : "0");
  field(257, 6, "ustar\0");
  field(263, 2, "00");
  let sum = 0;
  for (const b of h) sum += b;
  field(148, 8, sum.toString(8).padStart(6, "0") + "\0 ");
  return h;
}

/** The directory `dir` (its contents, not itself) as a gzipped tar, entries in name order. */
export async function packDirectory(dir: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  const walk = async (rel: string) => {
    const entries = (await readdir(path.join(dir, rel), { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of entries) {
      const name = checkName(rel ? `${rel}/${e.name}` : e.name);
      const full = path.join(dir, name);
      const { mode } = await stat(full);
      if (e.isDirectory()) {
        parts.push(header(name, "dir", mode, 0));
        await walk(name);
      } else if (e.isFile()) {
        const data = await readFile(full);
        parts.push(header(name, "file", mode, data.length), data, Buffer.alloc((BLOCK - (data.length % BLOCK)) % BLOCK));
      } else {
        throw new Error(`data directory archive: ${full} is neither a file nor a directory`);
      }
    }
  };
  await walk("");
  parts.push(Buffer.alloc(2 * BLOCK));
  return gzipSync(Buffer.concat(parts), { level: 9 });
}

function parseOctal(h: Buffer, offset: number, length: number, what: string): number {
  const text = h.toString("latin1", offset, offset + length).replace(/[\0 ]+$/, "").trim();
  if (!/^[0-7]+$/.test(text)) throw new Error(`data directory archive: bad ${what} field ${JSON.stringify(text)}`);
  return parseInt(text, 8);
}

/** Writes `data` at the start of `fd`, skipping whole 8 KiB blocks of zeros (the file stays sparse there). */
function writeSparse(fd: number, data: Buffer): void {
  const SPARSE = 8192;
  let from = 0;
  while (from < data.length) {
    // Runs of non-zero blocks are written together; zero blocks are only seeked over.
    let to = from;
    while (to < data.length && !isZero(data, to, Math.min(to + SPARSE, data.length))) to = Math.min(to + SPARSE, data.length);
    if (to > from) writeSync(fd, data, from, to - from, from);
    while (to < data.length && isZero(data, to, Math.min(to + SPARSE, data.length))) to = Math.min(to + SPARSE, data.length);
    from = to;
  }
}

function isZero(b: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (b[i] !== 0) return false;
  return true;
}

/**
 * Unpacks the archive at `file` into `dir`, which must not exist yet. The entries land in a
 * sibling scratch directory first, renamed to `dir` only once all are written, so a start that
 * dies half-way leaves no half-made data directory behind (a scratch directory at worst, removed
 * by the next attempt). Refuses, writing nothing at `dir`, an archive that is truncated, fails a
 * header checksum, or holds anything but relative directories and regular files. Blocks of
 * zeros are not written (most of a fresh WAL segment): the files are sparse there.
 *
 * Synchronous on purpose: it runs once, before the node listens, and on a loaded machine the
 * ~300 hand-overs of a streamed unpack to the thread pool (inflate, writes) each wait for a
 * core, which made it 3-10 times slower than inflating in one go (a transient buffer of the
 * directory's size, ~40 MB, given back when unpacking ends).
 */
export function unpackArchive(file: string, dir: string): { files: number; bytes: number } {
  const scratch = `${dir}.unpacking`;
  rmSync(scratch, { recursive: true, force: true });
  mkdirSync(scratch, { recursive: true, mode: 0o700 });
  let files = 0;
  let bytes = 0;
  try {
    const tar = gunzipSync(readFileSync(file));
    let at = 0;
    for (;;) {
      if (at + BLOCK > tar.length) throw new Error("data directory archive: truncated");
      const h = tar.subarray(at, at + BLOCK);
      at += BLOCK;
      if (isZero(h, 0, BLOCK)) break;
      const stored = parseOctal(h, 148, 8, "checksum");
      let sum = 0;
      for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
      if (sum !== stored) throw new Error("data directory archive: header checksum mismatch (corrupt archive)");
      if (h.toString("latin1", 257, 262) !== "ustar") throw new Error("data directory archive: not a ustar archive");
      const type = String.fromCharCode(h[156]!);
      const rawName = h.toString("latin1", 0, 100).replace(/\0.*$/s, "");
      const mode = parseOctal(h, 100, 8, "mode") & 0o700;
      if (type === "5") {
        mkdirSync(path.join(scratch, checkName(rawName.replace(/\/$/, ""))), { recursive: true, mode: mode | 0o700 });
      } else if (type === "0" || type === "\0") {
        const target = path.join(scratch, checkName(rawName));
        const size = parseOctal(h, 124, 12, "size");
        if (at + size > tar.length) throw new Error("data directory archive: truncated");
        mkdirSync(path.dirname(target), { recursive: true, mode: 0o700 });
        const fd = openSync(target, "wx", mode | 0o600);
        try {
          writeSparse(fd, tar.subarray(at, at + size));
          ftruncateSync(fd, size); // the length, when the file ends in zeros not written
        } finally {
          closeSync(fd);
        }
        files++;
        bytes += size;
        at += size + ((BLOCK - (size % BLOCK)) % BLOCK);
      } else {
        throw new Error(`data directory archive: entry ${JSON.stringify(rawName)} has unsupported type ${JSON.stringify(type)}`);
      }
    }
    renameSync(scratch, dir);
    return { files, bytes };
  } catch (err) {
    rmSync(scratch, { recursive: true, force: true });
    throw err;
  }
}
