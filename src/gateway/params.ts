// Path and query parameters shared by the WebSocket upgrade and the HTTP routes.
import * as v from "valibot";
import { GroupName } from "../protocol/index.ts";

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
