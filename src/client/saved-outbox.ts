// Keeps the outbox across page reloads. Each stored operation waiting for its answer (create,
// reply, update, delete, seen) is written, frame and `request_id` as sent, to a Storage-like
// adapter (`localStorage` in a page); a client started later under the same group and user
// claims what is there and sends it again with the original request_ids, which the server
// de-duplicates, so an operation made before a reload is stored once, never twice and never
// lost while its lifetime lasts. Several tabs may share one key: each keeps the entries it does
// not own, and an entry two tabs both send is still stored once.
import * as v from "valibot";

/** The part of the Web Storage API used (`localStorage` and `sessionStorage` fit). */
export interface OutboxStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** Operations worth sending after a reload; history and typing are only worth it now. */
export const SAVED_OPERATIONS = ["create", "reply", "update", "delete", "seen"] as const;
/** A frame larger than this (a big attachment) is not saved: storage quotas are a few MB. */
export const MAX_SAVED_FRAME_CHARS = 256 * 1024;

const Saved = v.object({
  request_id: v.string(),
  operation: v.picklist(SAVED_OPERATIONS),
  payload: v.string(),
  target: v.optional(v.string()),
  /** When it was made (ms since the epoch): its lifetime counts from here, reloads included. */
  at: v.number(),
});
export type SavedOperation = v.InferOutput<typeof Saved>;
const SavedList = v.array(Saved);

export const isSaved = (op: string): op is SavedOperation["operation"] => (SAVED_OPERATIONS as readonly string[]).includes(op);

export class SavedOutbox {
  /** Entries this client wrote or claimed; the others belong to another tab. */
  private readonly mine = new Set<string>();

  constructor(
    private readonly storage: OutboxStorage,
    readonly key: string,
    private readonly onError: (err: Error) => void,
  ) {}

  /** Takes over what an earlier client left, oldest first, skipping entries made before `notBefore`. */
  claim(notBefore: number): SavedOperation[] {
    const left = this.read().filter((s) => s.at >= notBefore);
    for (const s of left) this.mine.add(s.request_id);
    return left.sort((a, b) => a.at - b.at);
  }

  /** Replaces this client's entries with `current` (the operations still waiting). */
  save(current: SavedOperation[]): void {
    const kept = current.filter((s) => s.payload.length <= MAX_SAVED_FRAME_CHARS);
    for (const s of kept) this.mine.add(s.request_id);
    const others = this.read().filter((s) => !this.mine.has(s.request_id));
    const list = [...others, ...kept];
    try {
      if (list.length === 0) this.storage.removeItem(this.key);
      else this.storage.setItem(this.key, JSON.stringify(list));
    } catch (err) {
      this.onError(err as Error);
    }
  }

  private read(): SavedOperation[] {
    try {
      const raw = this.storage.getItem(this.key);
      if (raw === null) return [];
      const parsed = v.safeParse(SavedList, JSON.parse(raw));
      return parsed.success ? parsed.output : [];
    } catch {
      return [];
    }
  }
}
