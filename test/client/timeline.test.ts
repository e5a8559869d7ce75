// The SDK's message list on its own: events, history pages and the merge between them. A page
// answers a request sent at some version; anything an event changed after that is newer than
// the page and must survive it.
import t from "tap";
import type { MessageView } from "../../src/protocol/index.ts";
import { Timeline } from "../../src/client/timeline.ts";

const view = (id: string, body = id): MessageView => ({
  id,
  user: "u",
  body,
  type: "text",
  file: null,
  attachment: null,
  reply_to: null,
  created: new Date(0).toISOString(),
  updated: null,
  deleted: false,
  seq: 1,
});
const ids = (tl: Timeline) => tl.messages.map((m) => `${m.id}:${m.body}${m.deleted ? ":deleted" : ""}`);

t.test("events append, edit in place and turn deletes into tombstones", async (t) => {
  const tl = new Timeline();
  tl.stored(view("a"), false);
  tl.stored(view("b"), false);
  tl.stored(view("a", "a2"), true);
  tl.stored(view("zz", "edit of an unloaded message"), true);
  const tomb = tl.deleted("b");
  t.same(ids(tl), ["a:a2", "b:null:deleted"], "an edit of a message not in the list is not added");
  t.match(tomb, { id: "b", body: null, deleted: true });
  t.equal(tl.deleted("never-seen"), undefined, "deleting an unknown message yields no tombstone");
  t.ok(tl.wasDeleted("never-seen") && tl.wasDeleted("b"), "both deletes are remembered for retries");
  t.equal(tl.version, 6, "every event counts, even one that changes nothing in the list");
});

t.test("the newest page replaces the list but keeps what events changed after it was asked", async (t) => {
  const tl = new Timeline();
  tl.stored(view("a"), false);
  const asked = tl.version; // the history request goes out here
  tl.stored(view("a", "edited after"), true);
  tl.stored(view("new"), false);
  tl.latest([view("old"), view("a", "page copy")], true, asked);
  t.same(ids(tl), ["old:old", "a:edited after", "new:new"], "the page's copy of a loses to the later edit; the later create stays after the page");
  t.equal(tl.hasMore, true);
  tl.latest([view("a", "page copy 2")], false, tl.version);
  t.same(ids(tl), ["a:page copy 2"], "nothing newer than a page asked now: the page wins");
});

t.test("older pages go in front without repeating known messages", async (t) => {
  const tl = new Timeline();
  tl.latest([view("c"), view("d")], true, 0);
  t.equal(tl.oldestId, "c");
  tl.older([view("a"), view("b"), view("c", "stale copy")], false);
  t.same(ids(tl), ["a:a", "b:b", "c:c", "d:d"]);
  t.equal(tl.hasMore, false);
});

t.test("seen receipts count once per user", async (t) => {
  const tl = new Timeline();
  const e = { operation: "seen" as const, group: "g", message_id: "a", user: "bob", seen_at: "2026-01-01T00:00:00.000Z" };
  t.equal(tl.seen(e), true);
  t.equal(tl.seen({ ...e, seen_at: "2026-01-02T00:00:00.000Z" }), false, "a repeat is not news");
  t.same([...tl.seenBy("a")], [["bob", "2026-01-01T00:00:00.000Z"]]);
  t.equal(tl.seenBy("other").size, 0);
});
