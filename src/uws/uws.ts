// Loads uWebSockets.js's native binary directly. The package we depend on (a republished build,
// see README) quietly falls back to a slow pure-JS server when its binary does not load; we
// would rather not start than serve at a fraction of the speed without anyone noticing.
// Both layouts are looked for: the official uWebSockets.js (binaries at the package root, built
// for Node 20, 22 and 24, glibc ≥ 2.38) and the republished one this machine needs (binaries/,
// Node ≤ 20, glibc 2.36), so swapping the dependency needs no code change.
import { createRequire } from "node:module";
import type * as UWS from "uWebSockets.js";

export type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket, us_socket_context_t, WebSocket } from "uWebSockets.js";

function loadNative(): typeof UWS {
  const require = createRequire(import.meta.url);
  const name = `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
  const candidates = [`uWebSockets.js/${name}`, `uWebSockets.js/binaries/${name}`];
  const errors: string[] = [];
  for (const binary of candidates) {
    let path: string;
    try {
      path = require.resolve(binary);
    } catch {
      continue; // not in this layout
    }
    try {
      return require(path) as typeof UWS;
    } catch (err) {
      errors.push(`${binary}: ${(err as Error).message}`);
    }
  }
  console.error(
    `fatal: cannot load uWebSockets.js native binary ${name} (Node ${process.version}): ${errors.join("; ") || `neither ${candidates.join(" nor ")} exists`}`,
  );
  process.exit(1);
}

export const uws = loadNative();
