// The SDK's read state against a real node: `read()` moves the user's marker, `read` events keep
// every client's markers current, and "seen by" (readBy) survives a reload because a new client
// loads the members' markers when it goes live.
import t from "tap";
import { startInProcess } from "../helpers/node.ts";
import { uniqueGroup } from "../helpers/probe.ts";
import { freshDatabase } from "../helpers/services.ts";
import { client, until } from "../helpers/sdk.ts";

const url = await freshDatabase(t);
const node = await startInProcess(t, { DATABASE_URL: url });
const base = `http://127.0.0.1:${node.port}`;

t.test("read markers: read() and read events; readBy survives a reload; unread counts others' messages", async (t) => {
  const group = uniqueGroup("sdk-read");
  const alice = client(t, { url: base, group, user: "alice" });
  const bob = client(t, { url: base, group, user: "bob" });
  await Promise.all([alice.connect(), bob.connect()]);
  const first = await alice.send("one");
  const second = await alice.send("two");
  await until("bob has both", () => bob.messages.length === 2);
  t.equal(bob.unread, 2, "two of alice's messages are unread for bob");
  t.equal(alice.unread, 0, "none for alice: they are hers");

  const ack = await bob.read(first.seq);
  t.equal(ack.read_seq, first.seq, "the ack carries the marker");
  t.equal(bob.readMarker(), first.seq);
  t.equal(bob.unread, 1);
  await until("alice hears bob's marker", () => alice.readMarker("bob") === first.seq);
  t.same(alice.readBy(first.message_id!), ["bob"], "seen by bob");
  t.same(alice.readBy(second.message_id!), [], "not the second yet");

  await bob.read(); // up to the last event he has
  await until("alice hears the move", () => alice.readMarker("bob") === second.seq);
  t.same(alice.readBy(second.message_id!), ["bob"]);

  alice.close();
  const reloaded = client(t, { url: base, group, user: "alice" });
  await reloaded.connect();
  await until("the members' markers and the latest messages are loaded", () => reloaded.readMarker("bob") === second.seq && reloaded.messages.length === 2);
  t.same(reloaded.readBy(first.message_id!), ["bob"], "seen by survives a reload");
  t.same(reloaded.readBy(second.message_id!), ["bob"]);
});
