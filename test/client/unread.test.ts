// The SDK's unread arithmetic (src/client/unread.ts): a server count at a seq, plus the stored
// events after it; snapshots arriving out of order, older than what the view knows, or for a
// marker that moved since are not trusted, and a long session forgets what no count needs.
import t from "tap";
import { UnreadCounter } from "../../src/client/unread.ts";

const never = () => -1;

t.test("a snapshot plus the events after it: others' messages count, deletes of unread ones count one less", async (t) => {
  const c = new UnreadCounter();
  c.start(10);
  t.equal(c.needsRefresh(0), true, "nothing counted yet for a marker before where the view started");
  c.snapshot({ lastSeq: 10, readSeq: 2, unread: 6 });
  t.equal(c.needsRefresh(2), false);
  t.equal(c.count("me", 2, never), 6);
  c.message(11, "bob");
  c.message(12, "me");
  t.equal(c.count("me", 2, never), 7, "bob's new message counts, mine does not");
  c.deleted(13, 5, "bob");
  t.equal(c.count("me", 2, never), 6, "a delete of an unread message before the snapshot");
  c.deleted(14, 1, "bob");
  t.equal(c.count("me", 2, never), 6, "a delete of a read message changes nothing");
  c.deleted(15, 4, "me");
  t.equal(c.count("me", 2, never), 6, "nor one of my own");
  c.deleted(16, 11, "bob");
  t.equal(c.count("me", 2, never), 5, "a delete of a message after the snapshot");
  c.deleted(9, 7, "bob");
  t.equal(c.count("me", 2, never), 5, "a delete the snapshot already counted (its seq is before it)");
  t.equal(c.count("me", 12, never), 0, "a marker past the snapshot counts what came after it");
});

t.test("snapshots: a newer marker wins whatever the arrival order; one older than the view's start or for another marker asks again", async (t) => {
  const c = new UnreadCounter();
  c.start(20);
  c.message(21, "bob");
  t.equal(c.snapshot({ lastSeq: 19, readSeq: 3, unread: 9 }), false, "older than the view's start: it cannot be completed");
  t.equal(c.needsRefresh(3), true);
  c.snapshot({ lastSeq: 21, readSeq: 8, unread: 4 });
  c.snapshot({ lastSeq: 22, readSeq: 5, unread: 7 }); // an earlier move, heard later
  t.equal(c.count("me", 8, never), 4, "the later move's count stays");
  t.equal(c.needsRefresh(9), true, "a marker moved without a count (the members list after a reconnect)");
  t.equal(c.count("me", 9, never), 4, "until the fresh count comes, the last one for the old marker (at most a few too many)");
  t.equal(c.needsRefresh(21), false, "a marker at the snapshot's seq needs none");
  c.reset();
  t.equal(c.needsRefresh(0), true, "after the stream was lost nothing holds");
  t.equal(c.count("me", 0, () => 42), 42, "without a count, the fallback (what is loaded)");
  t.equal(c.snapshot({ lastSeq: 3, readSeq: 0, unread: 2 }), true, "the first count sets where the view starts");
  t.equal(c.count("me", 0, never), 2);
});

t.test("a long session folds away what no count needs, and stays exact", async (t) => {
  const c = new UnreadCounter();
  c.start(0);
  c.snapshot({ lastSeq: 0, readSeq: 0, unread: 0 });
  for (let seq = 1; seq <= 5000; seq++) {
    c.message(seq, seq % 2 ? "bob" : "me");
    if (seq % 500 === 0) t.equal(c.count("me", seq - 10, never), 5, `ten after the marker at ${seq}`);
  }
  t.equal(c.count("me", 4990, never), 5);
  t.equal(c.snapshot({ lastSeq: 100, readSeq: 4990, unread: 5 }), false, "a count from before what was folded is refused");
});
