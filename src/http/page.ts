// The chat page: `GET /` (HTML), `GET /app.css` and `GET /app.js`, the page's script bundled
// with the client SDK by esbuild on the first request and kept in memory. Nothing is built at
// start, so a node that never serves the page never loads esbuild.
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type { TemplatedApp } from "../gateway/uws.ts";
import { deferred, send } from "./respond.ts";

const PAGE_DIR = new URL("../client/page/", import.meta.url);

/**
 * The page loads only its own script and style, talks only to its own origin, and shows images
 * only from it (attachments are `/files/<id>`); no inline script can run even if some text were
 * ever rendered as HTML.
 */
const PAGE_HEADERS = {
  "Content-Security-Policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  "Cache-Control": "no-cache",
};

/** Bundles the page script (SDK and protocol schemas included) for browsers. */
export async function buildPageScript(): Promise<string> {
  // esbuild's service process is left running (unref'd): stopping it would also stop the
  // worker tsx's loader shares with this process.
  const esbuild = await import("esbuild");
  const out = await esbuild.build({
    entryPoints: [fileURLToPath(new URL("app.ts", PAGE_DIR))],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    minify: true,
    write: false,
    legalComments: "none",
    logLevel: "silent",
  });
  return out.outputFiles[0]!.text;
}

type Asset = { type: string; body: () => Promise<string> };

export function registerPageRoutes(app: TemplatedApp, log: { error(obj: object, msg: string): void }): void {
  const cached = new Map<string, Promise<string>>();
  const once = (key: string, make: () => Promise<string>) => () => {
    let p = cached.get(key);
    if (!p) {
      p = make();
      cached.set(key, p);
      p.catch(() => cached.delete(key)); // a failed build is tried again on the next request
    }
    return p;
  };
  const file = (name: string) => once(name, () => readFile(new URL(name, PAGE_DIR), "utf8"));
  const assets: Record<string, Asset> = {
    "/": { type: "text/html; charset=utf-8", body: file("index.html") },
    "/app.css": { type: "text/css; charset=utf-8", body: file("app.css") },
    "/app.js": { type: "text/javascript; charset=utf-8", body: once("app.js", buildPageScript) },
  };
  for (const [path, asset] of Object.entries(assets)) {
    app.get(path, (res) => {
      const aborted = deferred(res);
      asset.body().then(
        (body) => send(res, 200, body, { "Content-Type": asset.type, ...PAGE_HEADERS }, aborted),
        (err) => {
          log.error({ err, path }, "cannot serve the chat page");
          send(res, 500, "the chat page is unavailable", { "Content-Type": "text/plain" }, aborted);
        },
      );
    });
  }
}
