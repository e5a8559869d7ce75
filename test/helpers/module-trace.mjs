// Preload (`node --import ./test/helpers/module-trace.mjs …`) that appends every module the
// process loads to the file named by MODULE_TRACE_FILE, one URL or path a line: ES modules
// through a resolve hook (which runs on Node's loader thread), CommonJS through Module._load.
// test/deploy/runtime.test.ts uses it to prove the production start path loads no TypeScript
// loader, compiler or bundler.
import { appendFileSync } from "node:fs";
import Module, { register } from "node:module";

const file = process.env.MODULE_TRACE_FILE;
if (!file) throw new Error("module-trace.mjs needs MODULE_TRACE_FILE");
const record = (what) => appendFileSync(file, `${what}\n`);

const load = Module._load;
Module._load = function (request, parent, isMain) {
  try {
    record(Module._resolveFilename(request, parent, isMain));
  } catch {
    record(request);
  }
  return load.apply(this, arguments);
};

const hook = `
import { appendFileSync } from "node:fs";
let file;
export function initialize(data) { file = data.file; }
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  appendFileSync(file, r.url + "\\n");
  return r;
}`;
register(`data:text/javascript,${encodeURIComponent(hook)}`, { data: { file } });
