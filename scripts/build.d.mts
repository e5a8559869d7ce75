// Types of scripts/build.mjs for the TypeScript that imports it (the dev-mode page, tests).
export const ROOT: string;
export const DIST: string;
export function sourceHash(): string;
/** The chat page's files by name: index.html and content-hashed assets it links as /assets/<name>. */
export function bundlePage(opts?: { minify?: boolean }): Promise<Map<string, string>>;
/** Builds dist/; resolves with the milliseconds it took. */
export function build(): Promise<number>;
/** Builds unless dist/ matches the sources; resolves with whether it built. */
export function buildIfStale(): Promise<boolean>;
