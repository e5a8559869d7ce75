// The SDK's read markers: forward-only, fed by events and the members list, and the "seen by"
// and unread figures the server defines (seen by: members other than the author whose marker
// reached the message's seq; unread: messages by others after the marker, not deleted).
import t from "tap";
import { ReadMarkers } from "../../src/client/read-markers.ts";

t.test("markers only move forward, whatever order events arrive in", async (t) => {
  const m = new ReadMarkers();
  t.equal(m.read({ user: "bob", read_seq: 5 }), true);
  t.equal(m.read({ user: "bob", read_seq: 3 }), false, "a lower marker from a slower node is not news");
  t.equal(m.read({ user: "bob", read_seq: 5 }), false);
  t.equal(m.of("bob"), 5);
  m.load([{ user: "bob", read_seq: 4 }, { user: "cat", read_seq: 2 }]);
  t.equal(m.of("bob"), 5, "a stale members page does not move it back");
  t.equal(m.of("cat"), 2);
  t.equal(m.of("nobody"), 0);
});

t.test("seen by: every member but the author whose marker reached the message", async (t) => {
  const m = new ReadMarkers();
  m.load([{ user: "alice", read_seq: 9 }, { user: "bob", read_seq: 4 }, { user: "cat", read_seq: 3 }, { user: "dan", read_seq: 0 }]);
  t.same(m.seenBy({ seq: 4, user: "alice" }), ["bob"], "not the author, not those behind");
  t.same(m.seenBy({ seq: 3, user: "dan" }), ["alice", "bob", "cat"]);
  t.same(m.seenBy({ seq: 10, user: "bob" }), []);
});

t.test("unread: after the marker, by others, not deleted", async (t) => {
  const m = new ReadMarkers();
  m.set("me", 2);
  const msgs = [
    { seq: 1, user: "x", deleted: false },
    { seq: 3, user: "x", deleted: false },
    { seq: 4, user: "me", deleted: false },
    { seq: 5, user: "y", deleted: true },
    { seq: 6, user: "y", deleted: false },
  ];
  t.equal(m.unread("me", msgs), 2);
  m.set("me", 6);
  t.equal(m.unread("me", msgs), 0);
});
