// Where a measured pass's CPU went, from the V8 CPU profiles that BENCH_CPU_PROF_DIR makes every
// node write, restricted to the windows a bench noted beside them (`windows.jsonl`: pid, tag,
// fromUs, toUs, connects; bench/presence.ts writes one per measured pass). Samples are grouped by
// mode (the tag after its `pr<time>` prefix) and reported in µs per connect, mode against mode:
//
//   npx tsx bench/profile-window.ts <dir> [--top 40] [--base off] [--under <regex of a frame's label>]
//
// By category (the innermost src/ file on the sample's stack, else the package, node's own
// JavaScript, GC or native code the leaf is in), self time per function (name and source
// file:line, through dist's source maps), and inclusive time (the function anywhere on the
// sample's stack, counted once per sample) for every function, so that "what did presence add"
// reads as the rows where the modes differ. A profile's sampling interval makes each sample
// ~1 ms of wall time on a busy thread; the figures are sample time, not CPU time (idle samples,
// `(idle)`, are left out of the totals).
import { existsSync, readFileSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { SourceMap } from "node:module";
import path from "node:path";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}
interface Window {
  pid: number;
  tag: string;
  fromUs: number;
  toUs: number;
  connects: number;
}

const dir = process.argv[2];
if (!dir) throw new Error("usage: npx tsx bench/profile-window.ts <dir> [--top 40] [--base off]");
const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : def;
};
const TOP = Number(arg("top", "40"));
const BASE = arg("base", "off");
/** --under <regex>: only samples with a frame whose label matches on their stack (what a function costs, and in what). */
const UNDER = process.argv.includes("--under") ? new RegExp(arg("under", "")) : null;

/** A bundled file's source map (dist/*.js.map), so frames read as src/…:line and node_modules/<package>. */
const maps = new Map<string, SourceMap | null>();
function mapOf(file: string): SourceMap | null {
  if (!maps.has(file)) maps.set(file, existsSync(`${file}.map`) ? new SourceMap(JSON.parse(readFileSync(`${file}.map`, "utf8"))) : null);
  return maps.get(file)!;
}
/** Where a frame's code comes from: `src/…`, `node_modules/<package>/…`, `node:…`, or "" (native, GC). */
function sourceOf(f: CallFrame): { file: string; line: number } {
  if (!f.url) return { file: "", line: 0 };
  const file = f.url.replace(/^file:\/\//, "");
  const entry = mapOf(file)?.findEntry(f.lineNumber, f.columnNumber) as { originalSource?: string; originalLine?: number } | undefined;
  if (!entry?.originalSource) return { file: file.split("/").slice(-2).join("/"), line: f.lineNumber + 1 };
  const orig = entry.originalSource;
  const at = Math.max(orig.lastIndexOf("/src/"), orig.lastIndexOf("node_modules/") - 1);
  return { file: at >= 0 ? orig.slice(at + 1) : orig, line: (entry.originalLine ?? 0) + 1 };
}
const labels = new Map<CallFrame, string>();
const label = (f: CallFrame) => {
  let l = labels.get(f);
  if (l === undefined) {
    const { file, line } = sourceOf(f);
    l = `${f.functionName || "(anonymous)"}${file ? ` ${file}:${line}` : ""}`;
    labels.set(f, l);
  }
  return l;
};
/**
 * A sample's category: the innermost frame from this repository's src/ (its file), else what the
 * leaf is: a package (node_modules/<name>), node's own JavaScript, GC, or native.
 */
function categoryOf(stack: CallFrame[]): string {
  for (const f of stack) {
    const { file } = sourceOf(f);
    if (file.startsWith("src/")) return file;
  }
  const leaf = stack[0]!;
  const { file } = sourceOf(leaf);
  if (file.startsWith("node_modules/")) return file.split("/").slice(0, file.startsWith("node_modules/@") ? 3 : 2).join("/");
  if (file.startsWith("node:") || leaf.url.startsWith("node:")) return "node internals";
  return leaf.functionName || "(native)";
}

/** Per function label: self and inclusive µs within the window. */
function tally(p: Profile, w: Window) {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  const cats = new Map<string, number>();
  let total = 0;
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i]!;
    // A sample stands for the time until the next one.
    const dt = p.timeDeltas[i + 1] ?? 0;
    if (t < w.fromUs || t > w.toUs) continue;
    const leaf = byId.get(p.samples[i]!)!;
    if (leaf.callFrame.functionName === "(idle)") continue;
    const seen = new Set<string>();
    const stack: CallFrame[] = [];
    for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) stack.push(byId.get(id)!.callFrame);
    if (UNDER && !stack.some((f) => UNDER.test(label(f)))) continue;
    total += dt;
    const l = label(leaf.callFrame);
    self.set(l, (self.get(l) ?? 0) + dt);
    const cat = categoryOf(stack);
    cats.set(cat, (cats.get(cat) ?? 0) + dt);
    for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
      const name = label(byId.get(id)!.callFrame);
      if (seen.has(name)) continue;
      seen.add(name);
      incl.set(name, (incl.get(name) ?? 0) + dt);
    }
  }
  return { self, incl, cats, total };
}

const windows: Window[] = (await readFile(path.join(dir, "windows.jsonl"), "utf8"))
  .split("\n")
  .filter(Boolean)
  .map((l) => JSON.parse(l) as Window);
const files = (await readdir(dir)).filter((f) => f.endsWith(".cpuprofile"));
const modeOf = (tag: string) => /^pr[0-9a-z]{8}(.+)$/.exec(tag)?.[1] ?? tag;

interface Acc {
  self: Map<string, number>;
  incl: Map<string, number>;
  cats: Map<string, number>;
  total: number;
  connects: number;
  passes: number;
}
const modes = new Map<string, Acc>();
for (const w of windows) {
  const file = files.find((f) => f.split(".").includes(String(w.pid)));
  if (!file) {
    console.warn(`no profile for pid ${w.pid} (${w.tag})`);
    continue;
  }
  const p = JSON.parse(await readFile(path.join(dir, file), "utf8")) as Profile;
  if (w.fromUs < p.startTime || w.toUs > p.endTime) console.warn(`${file}: window outside the profile (clocks differ?)`);
  const r = tally(p, w);
  const mode = modeOf(w.tag);
  const acc = modes.get(mode) ?? { self: new Map(), incl: new Map(), cats: new Map(), total: 0, connects: 0, passes: 0 };
  for (const [k, v] of r.self) acc.self.set(k, (acc.self.get(k) ?? 0) + v);
  for (const [k, v] of r.incl) acc.incl.set(k, (acc.incl.get(k) ?? 0) + v);
  for (const [k, v] of r.cats) acc.cats.set(k, (acc.cats.get(k) ?? 0) + v);
  acc.total += r.total;
  acc.connects += w.connects;
  acc.passes++;
  modes.set(mode, acc);
}

const per = (a: Acc, us: number) => us / a.connects;
const fmt = (x: number) => x.toFixed(1).padStart(7);
const base = modes.get(BASE);
for (const [mode, a] of modes) {
  console.log(`${mode}: ${a.passes} passes, ${a.connects} connects, ${fmt(per(a, a.total))} µs of samples per connect`);
}
for (const [mode, a] of modes) {
  if (mode === BASE || !base) continue;
  console.log(`\n${mode} - ${BASE}: ${fmt(per(a, a.total) - per(base, base.total))} µs per connect`);
  for (const kind of ["cats", "self", "incl"] as const) {
    const keys = new Set([...a[kind].keys(), ...base[kind].keys()]);
    const rows = [...keys].map((k) => ({ k, on: per(a, a[kind].get(k) ?? 0), off: per(base, base[kind].get(k) ?? 0) }));
    rows.sort((x, y) => Math.abs(y.on - y.off) - Math.abs(x.on - x.off));
    console.log(`  ${kind} (µs per connect: ${mode}, ${BASE}, difference)`);
    for (const r of rows.slice(0, TOP)) console.log(`  ${fmt(r.on)} ${fmt(r.off)} ${fmt(r.on - r.off)}  ${r.k}`);
  }
}
