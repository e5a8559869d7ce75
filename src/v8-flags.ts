// V8 settings of the node process, set by src/main.ts before it loads the node's code. Tests that
// start nodes inside their own process keep V8's defaults.
import v8 from "node:v8";

// WebAssembly (Prisma's query compiler; PGlite's whole PostgreSQL when embedded) runs on V8's
// baseline compiler only. TurboFan's optimised copies of those modules cost ~50 MB of RSS per
// node (bench/performance-log.md, issue 11); Prisma caches query plans, so the compiler runs
// once per query shape and its speed does not show in the write path.
v8.setFlagsFromString("--liftoff-only");

// Start-up (reading the bundle, Prisma's query compiler, migrations) leaves V8's young generation
// at its largest and the heap holding start-up garbage, ~15 MB of RSS that only V8's memory
// reducer gives back: a memory-reducing full collection, made once the allocation rate since the
// last collection is low. The reducer first looks 8 s after start-up grew the heap; start-up's
// allocations still weigh too much then, and the next look is 8 s later, so an idle node shed
// them ~16-17 s after start, or later (`--trace-gc`: "Mark-Compact (reduce)" at 16.3-16.6 s).
// Its first look after 1 s fails just the same, but puts the next one, and the collection, at
// ~9-10 s. V8 uses this delay only when heap growth before any full collection starts the
// reducer, i.e. at start-up.
// It must be set before the node's code is read, which already grows the heap: hence main.ts.
v8.setFlagsFromString("--gc-memory-reducer-start-delay-ms=1000");
