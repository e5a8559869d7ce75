// The chat page: `GET /` (HTML) and its script and style under content-hashed names
// (`/assets/app-<hash>.js`, `/assets/app-<hash>.css`, cached for a year: a new build has new
// names).
// The compiled node serves what `npm run build` wrote to dist/page/, read once at start; it
// never loads a bundler. Only when running from the TypeScript sources (tests, `npm run dev`)
// is the page bundled by esbuild, in memory, on its first request.
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import type { HttpResponse, TemplatedApp } from "../uws/uws.ts";
import { FROM_SOURCES, ROOT } from "../paths.ts";
import { deferred, send } from "../uws/respond.ts";

export const BUILT_PAGE_DIR = path.join(ROOT, "dist/page");

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
};
const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
};

/** The page's files by name (index.html plus hashed assets). */
type PageFiles = Map<string, string>;

/** The compiled page, read once; a missing build is a start-up error, not a 500 later. */
function readBuiltPage(): PageFiles {
  const files: PageFiles = new Map();
  for (const name of readdirSync(BUILT_PAGE_DIR)) files.set(name, readFileSync(path.join(BUILT_PAGE_DIR, name), "utf8"));
  if (!files.has("index.html")) throw new Error(`${BUILT_PAGE_DIR} has no index.html: run npm run build`);
  return files;
}

/** Development only: the same files, bundled in memory by the build script's own function. */
async function bundleFromSources(): Promise<PageFiles> {
  const { bundlePage } = await import("../../scripts/build.mjs");
  return bundlePage();
}

export function registerPageRoutes(app: TemplatedApp, log: { error(obj: object, msg: string): void }): void {
  let page: Promise<PageFiles> | undefined = FROM_SOURCES ? undefined : Promise.resolve(readBuiltPage());
  const load = () => {
    if (!page) {
      page = bundleFromSources();
      page.catch(() => (page = undefined)); // a failed build is tried again on the next request
    }
    return page;
  };
  const serve = (res: HttpResponse, file: string) => {
    const aborted = deferred(res);
    load().then(
      (files) => {
        const body = files.get(file);
        if (body === undefined) return send(res, 404, "not found", { "Content-Type": "text/plain" }, aborted);
        const cache = file === "index.html" ? "no-cache" : "public, max-age=31536000, immutable";
        const type = TYPES[path.extname(file)] ?? "application/octet-stream";
        send(res, 200, body, { "Content-Type": type, "Cache-Control": cache, ...PAGE_HEADERS }, aborted);
      },
      (err) => {
        log.error({ err, file }, "cannot serve the chat page");
        send(res, 500, "the chat page is unavailable", { "Content-Type": "text/plain" }, aborted);
      },
    );
  };
  app.get("/", (res) => serve(res, "index.html"));
  app.get("/assets/:name", (res, req) => {
    const name = req.getParameter(0) ?? "";
    serve(res, name === "index.html" ? "" : name);
  });
}
