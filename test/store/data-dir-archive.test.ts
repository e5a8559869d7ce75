// The data directory archive: what packDirectory writes, unpackArchive gives back byte for byte
// (sparse where the file holds zeros), and a damaged or hostile archive is refused with a clear
// error, leaving no directory behind.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import t from "tap";
import { packDirectory, unpackArchive } from "../../src/store/data-dir-archive.ts";
import { tempDir } from "../helpers/probe.ts";

/** Every file under `dir`, by relative path, with its bytes. */
function files(dir: string, rel = ""): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const e of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const name = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) for (const [k, v] of files(dir, name)) out.set(k, v);
    else out.set(name, readFileSync(path.join(dir, name)));
  }
  return out;
}

async function sampleDir(root: string): Promise<string> {
  const src = path.join(root, "src");
  await mkdir(path.join(src, "base/5"), { recursive: true });
  await mkdir(path.join(src, "pg_tblspc"), { recursive: true }); // an empty directory survives too
  await writeFile(path.join(src, "PG_VERSION"), "17\n");
  await writeFile(path.join(src, "base/5/empty"), "");
  const wal = Buffer.alloc(3 * 8192 + 100); // zeros, with data in the middle block and at the very end
  wal.fill(7, 8192, 8192 + 10);
  wal[wal.length - 1] = 9;
  await writeFile(path.join(src, "base/5/wal-like"), wal);
  await writeFile(path.join(src, "base/5/trailing-zeros"), Buffer.concat([Buffer.from("head"), Buffer.alloc(4 * 8192)]));
  await writeFile(path.join(src, "base/5/odd"), Buffer.from("x".repeat(513)));
  return src;
}

t.test("a directory packed and unpacked comes back identical: names, bytes, lengths, empty directories", async (t) => {
  const root = await tempDir(t, "chat-archive-");
  const src = await sampleDir(root);
  const archive = path.join(root, "a.tar.gz");
  await writeFile(archive, await packDirectory(src));
  const out = path.join(root, "out");
  const r = unpackArchive(archive, out);
  const want = files(src);
  t.same([...files(out).keys()].sort(), [...want.keys()].sort(), "the same files");
  for (const [name, bytes] of want) t.ok(files(out).get(name)!.equals(bytes), `${name}: the same bytes`);
  t.ok(statSync(path.join(out, "pg_tblspc")).isDirectory(), "the empty directory is there");
  t.equal(r.files, want.size);
  t.equal(r.bytes, [...want.values()].reduce((a, b) => a + b.length, 0));
  // Zero blocks are not written: the file takes fewer disk blocks than its length needs.
  const trailing = statSync(path.join(out, "base/5/trailing-zeros"));
  t.equal(trailing.size, 4 + 4 * 8192, "a file ending in zeros keeps its length");
  t.ok(trailing.blocks * 512 < trailing.size, `and is sparse (${trailing.blocks * 512} bytes on disk for ${trailing.size})`);
  t.notOk(existsSync(`${out}.unpacking`), "no scratch directory left");
});

t.test("the target must not exist: an existing directory is never unpacked over", async (t) => {
  const root = await tempDir(t, "chat-archive-");
  const archive = path.join(root, "a.tar.gz");
  await writeFile(archive, await packDirectory(await sampleDir(root)));
  const out = path.join(root, "out");
  await mkdir(out);
  await writeFile(path.join(out, "mine"), "keep");
  t.throws(() => unpackArchive(archive, out), /ENOTEMPTY|EEXIST/);
  t.same([...files(out).keys()], ["mine"], "the directory is as it was");
  t.notOk(existsSync(`${out}.unpacking`), "no scratch directory left");
});

/** A raw ustar header for a hostile or odd entry. */
function rawHeader(name: string, type: string, size = 0): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, "latin1");
  h.write("0000644\0", 100, "latin1");
  h.write("0000000\0", 108, "latin1");
  h.write("0000000\0", 116, "latin1");
  h.write(size.toString(8).padStart(11, "0") + "\0", 124, "latin1");
  h.write("00000000000\0", 136, "latin1");
  h.write("        ", 148, "latin1");
  h.write(type, 156, "latin1");
  h.write("ustar\0", 257, "latin1");
  h.write("00", 263, "latin1");
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, "latin1");
  return h;
}
const tarOf = (...blocks: Buffer[]) => gzipSync(Buffer.concat([...blocks, Buffer.alloc(1024)]));

const refused: [string, () => Promise<Buffer>, RegExp][] = [
  ["a parent-directory name", async () => tarOf(rawHeader("../escape", "0", 1), Buffer.alloc(512)), /unsafe or over-long entry name "\.\.\/escape"/],
  ["an absolute name", async () => tarOf(rawHeader("/etc/passwd", "0", 1), Buffer.alloc(512)), /unsafe or over-long entry name/],
  ["a symbolic link", async () => tarOf(rawHeader("link", "2")), /unsupported type "2"/],
  ["a header with a wrong checksum", async () => {
    const h = rawHeader("PG_VERSION", "0", 3);
    h[0] = "Q".charCodeAt(0);
    return tarOf(h, Buffer.alloc(512));
  }, /checksum mismatch/],
  ["an archive cut short inside a file", async () => gzipSync(rawHeader("big", "0", 4096)), /truncated/],
  ["an archive with no end marker", async () => gzipSync(Buffer.concat([rawHeader("f", "0", 3), Buffer.alloc(512)])), /truncated/],
  ["a file that is not gzip", async () => Buffer.from("not an archive"), /incorrect header check|unknown compression/],
];
for (const [what, make, error] of refused) {
  t.test(`${what} is refused with a clear error, and nothing is left at the target`, async (t) => {
    const root = await tempDir(t, "chat-archive-");
    const archive = path.join(root, "bad.tar.gz");
    await writeFile(archive, await make());
    const out = path.join(root, "out");
    t.throws(() => unpackArchive(archive, out), error);
    t.notOk(existsSync(out), "no target directory");
    t.notOk(existsSync(`${out}.unpacking`), "no scratch directory");
    t.notOk(existsSync(path.join(root, "escape")), "nothing written outside");
  });
}

t.test("the refusal cases are real archives apart from their one defect", async (t) => {
  // The same shapes with the defect removed unpack fine, so each case above fails for its defect.
  const root = await tempDir(t, "chat-archive-");
  const archive = path.join(root, "ok.tar.gz");
  await writeFile(archive, tarOf(rawHeader("PG_VERSION", "0", 3), Buffer.concat([Buffer.from("17\n"), Buffer.alloc(509)])));
  const out = path.join(root, "out");
  unpackArchive(archive, out);
  t.equal(readFileSync(path.join(out, "PG_VERSION"), "utf8"), "17\n");
  t.equal(gunzipSync(readFileSync(archive)).length % 512, 0);
});

t.test("packing refuses what it could not give back: a symbolic link", async (t) => {
  const root = await tempDir(t, "chat-archive-");
  const src = await sampleDir(root);
  const { symlink } = await import("node:fs/promises");
  await symlink("PG_VERSION", path.join(src, "link"));
  await t.rejects(packDirectory(src), /neither a file nor a directory/);
});
