// Path and query parameters shared by the WebSocket upgrade and the HTTP routes.
import * as v from "valibot";
import { GroupName } from "./index.ts";

/** The percent-decoded group name of a path segment, or null when it breaks the group rule. */
export function groupParam(raw: string): string | null {
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    return null;
  }
  return v.is(GroupName, decoded) ? decoded : null;
}

/** A yes/no query parameter (`?presence=`): 1 or true, 0 or false; false when absent, undefined when invalid. */
export function parseFlag(raw: string | null): boolean | undefined {
  if (raw === null || raw === "0" || raw === "false") return false;
  if (raw === "1" || raw === "true") return true;
  return undefined;
}

/** `?since=` as the contract allows it: an integer >= 0; null when absent, undefined when invalid. */
export function parseSince(raw: string | null): number | null | undefined {
  if (raw === null) return null;
  if (!/^\d{1,10}$/.test(raw)) return undefined;
  const n = Number(raw);
  return n <= 2 ** 31 - 1 ? n : undefined;
}
