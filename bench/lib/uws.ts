// Loads uWebSockets.js's native binary directly: the package's entry point silently falls back
// to a JS implementation on `ws` when the binary does not load, which would make the baseline
// measure the wrong thing.
import { createRequire } from "node:module";
import type * as uws from "uWebSockets.js";

export type { uws };

export function loadUws(): typeof uws {
  const require = createRequire(import.meta.url);
  const binary = `uWebSockets.js/binaries/uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
  return require(binary) as typeof uws;
}
