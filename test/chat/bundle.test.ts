// The bundle decoder against both bus payload forms: a bundle (as a string from the in-process bus
// and as bytes from Redis) splits into its frames byte for byte; a plain frame (the only form
// nodes before bundles send) is never taken for one; anything else that starts like a bundle is
// refused whole.
import t from "tap";
import { encodeBundle, isBundle, isPresenceFrame, splitBundle } from "../../src/chat/bundle.ts";
import { seqOf, serialize } from "../../src/chat/events.ts";

const frames = [
  serialize({ operation: "join", group: "lobby", user: "ann" }),
  serialize({ operation: "leave", group: "lobby", user: "bö\nb \"quoted\" 😀" }),
  serialize({ operation: "join", group: "lobby", user: "c" }),
];
const text = (parts: (Uint8Array | string)[] | null) => parts?.map((p) => (typeof p === "string" ? p : Buffer.from(p).toString("utf8")));

t.test("a bundle splits into its frames, unchanged and in order, from a string and from bytes", async (t) => {
  const bundle = encodeBundle(frames);
  t.ok(isBundle(bundle));
  t.ok(isBundle(Buffer.from(bundle)));
  t.same(splitBundle(bundle), frames, "string form");
  const bytes = Buffer.from(bundle);
  const parts = splitBundle(bytes)!;
  t.same(text(parts), frames, "byte form, multi-byte UTF-8 and escaped newlines included");
  t.ok(parts.every((p) => p instanceof Uint8Array && p.buffer === bytes.buffer), "byte parts are slices of the payload, not copies");
  t.same(text(splitBundle(Buffer.from(encodeBundle([frames[0]!])))), [frames[0]], "a bundle of one");
  t.equal(seqOf(bundle), null, "a bundle carries no seq (the sequencer passes it through)");
});

t.test("a plain frame, the only form older nodes send, is not a bundle", async (t) => {
  for (const f of [...frames, serialize({ operation: "typing", group: "lobby", user: "x", typing_status: "typing" }), '{"operation":"create","seq":7,"group":"g"}']) {
    t.notOk(isBundle(f), f);
    t.notOk(isBundle(Buffer.from(f)), `${f} as bytes`);
  }
});

t.test("what starts like a bundle but is not one this node reads is refused whole", async (t) => {
  const bad = [
    "#frames\n", // no frame
    "#frames2\n{}", // another head
    "#other\n{\"operation\":\"join\"}",
    `#frames\n${frames[0]}\n`, // an empty part
    `#frames\n${frames[0]}\nnot json`,
    `#frames\n${frames[0]}\n{"operation":"join"`, // cut short
    "#",
  ];
  for (const b of bad) {
    t.equal(splitBundle(b), null, JSON.stringify(b));
    t.equal(splitBundle(Buffer.from(b)), null, `${JSON.stringify(b)} as bytes`);
  }
});

t.test("isPresenceFrame: a join or leave frame on its own, as a string or bytes; nothing else", async (t) => {
  const frames = [
    { operation: "join", group: "g", user: "bob" },
    { operation: "leave", group: "g", user: "bob" },
    { operation: "typing", group: "g", user: "bob", typing_status: "typing" },
    { operation: "create", seq: 1, group: "g" },
    { operation: "read", group: "g", user: "joiner" },
  ].map((f) => JSON.stringify(f));
  const expected = [true, true, false, false, false];
  t.same(frames.map((f) => isPresenceFrame(f)), expected, "strings");
  t.same(frames.map((f) => isPresenceFrame(Buffer.from(f))), expected, "bytes");
  t.notOk(isPresenceFrame(encodeBundle([frames[0]!, frames[1]!])), "a bundle is not one frame");
  t.notOk(isPresenceFrame(Buffer.from('{"operation":"jo')), "a short payload");
});
