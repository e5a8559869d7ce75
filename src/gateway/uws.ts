// Loads uWebSockets.js's native binary directly. The package we depend on (a republished build,
// see README) quietly falls back to a slow pure-JS server when its binary does not load; we
// would rather not start than serve at a fraction of the speed without anyone noticing.
import { createRequire } from "node:module";
import type * as UWS from "uWebSockets.js";

export type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket, us_socket_context_t, WebSocket } from "uWebSockets.js";

function loadNative(): typeof UWS {
  const binary = `uWebSockets.js/binaries/uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
  try {
    return createRequire(import.meta.url)(binary) as typeof UWS;
  } catch (err) {
    console.error(`fatal: cannot load uWebSockets.js native binary ${binary} (Node ${process.version}): ${(err as Error).message}`);
    process.exit(1);
  }
}

export const uws = loadNative();
