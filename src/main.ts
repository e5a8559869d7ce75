// The process entry (`npm start`, the image: `node dist/main.js`). V8 takes the node's settings
// (v8-flags.ts) before it reads the node's code, which is why the node itself (src/node.ts) is
// a file of its own in the build, dist/node.js, loaded from here.
import "./v8-flags.ts";

const node = new URL(import.meta.url.endsWith(".ts") ? "./node.ts" : "./node.js", import.meta.url);
await import(node.href);
