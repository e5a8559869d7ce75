// Where the node finds its files. src/ and dist/ both sit one level below the repository root,
// so `../` from this module is the root whether it runs from sources (tsx) or bundled into
// dist/main.js.
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../", import.meta.url));
/** True when running the TypeScript sources (tsx, tests); false in the compiled dist/ build. */
export const FROM_SOURCES = import.meta.url.endsWith(".ts");
