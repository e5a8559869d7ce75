// Identifiers that arrive from outside (URL paths, query strings, frames). Each is refused by
// its schema when malformed, so hostile strings never reach the store.
import * as v from "valibot";

/** The Django Channels group-name rule: 1 to 99 of A-Z a-z 0-9 - _ . */
export const GroupName = v.pipe(
  v.string(),
  v.regex(/^[A-Za-z0-9._-]{1,99}$/, "group name must be 1 to 99 characters of A-Z a-z 0-9 - _ ."),
);

/** Message and file ids are opaque to clients; the server mints UUIDs, so anything else is unknown. */
export const EntityId = v.pipe(
  v.string("must be a string"),
  v.regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1 to 64 characters of A-Z a-z 0-9 - _"),
);

// No control characters, no lone surrogates, no bidi overrides: ids are shown to other users.
export const PRINTABLE = /^[^\p{Cc}\p{Cs}\u202A-\u202E\u2066-\u2069]+$/u;

export const UserId = v.pipe(
  v.string("user must be a string"),
  v.minLength(1, "user must not be empty"),
  v.maxLength(128, "user must be at most 128 characters"),
  v.regex(PRINTABLE, "user must not contain control characters"),
);

/** PostgreSQL text cannot hold U+0000: a stored string with one would fail the whole write. */
export const noNul = (what: string) => v.check((s: string) => !s.includes("\u0000"), `${what} must not contain U+0000`);

type WellFormedString = string & { isWellFormed?: () => boolean; toWellFormed?: () => string };
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
/**
 * Lone surrogates (half of a UTF-16 pair, e.g. "A\uD800B") become U+FFFD, as PostgreSQL's UTF-8
 * would store them anyway: what is broadcast live, acknowledged and read back from history is
 * the same text. The length does not change (one code unit for one).
 */
export const wellFormed = v.transform((s: string): string => {
  const w = s as WellFormedString;
  if (w.isWellFormed && w.toWellFormed) return w.isWellFormed() ? s : w.toWellFormed();
  return s.replace(LONE_SURROGATE, "\uFFFD");
});

export const RequestId = v.pipe(
  v.string("request_id must be a string"),
  v.minLength(1, "request_id must be 1 to 64 characters"),
  v.maxLength(64, "request_id must be 1 to 64 characters"),
  noNul("request_id"),
);

export const FileName = v.pipe(
  v.string("file name must be a string"),
  v.minLength(1, "file name must not be empty"),
  v.maxLength(255, "file name must be at most 255 characters"),
  v.regex(PRINTABLE, "file name must not contain control characters"),
);

export const ContentType = v.pipe(
  v.string("content_type must be a string"),
  v.maxLength(127, "content_type must be at most 127 characters"),
  v.regex(/^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$/, "content_type must be a MIME type like image/png"),
  v.toLowerCase(),
);

/** A group's event seq as a client names it: an integer from 0 (nothing) to 2^31 - 1. */
export const Seq = v.pipe(
  v.number("seq must be a number"),
  v.integer("seq must be a whole number"),
  v.minValue(0, "seq must be >= 0"),
  v.maxValue(2 ** 31 - 1, "seq must be < 2^31"),
);

/** A place in a conversation list, as the server hands it out in `next`: `<ms>.<group>`. */
export const GroupsCursor = v.pipe(
  v.string("before must be a string"),
  v.regex(/^\d{1,15}\.[A-Za-z0-9._-]{1,99}$/, "before must be a cursor from a previous answer's next"),
);
