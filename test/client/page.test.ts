// The chat page at GET /, end to end in headless Chromium (Debian's chromium, driven by
// playwright-core; no browser is ever downloaded): two people join one group from the join
// form, see each other type, exchange, reply, edit and delete messages, send a picture and a
// file, see seen receipts, and watch the connection state. Screenshots go to
// test-artifacts/page/ (UPDATE_SCREENSHOT=1 also refreshes docs/screenshot.png for the README).
import { existsSync } from "node:fs";
import { copyFile, mkdir } from "node:fs/promises";
import { crc32, deflateSync } from "node:zlib";
import { chromium, type Browser, type Page } from "playwright-core";
import t from "tap";
import WebSocket from "ws";
import { startInProcess } from "../helpers/node.ts";
import { freshDatabase } from "../helpers/services.ts";

const CHROMIUM = "/usr/bin/chromium";
const ARTIFACTS = new URL("../../test-artifacts/page/", import.meta.url);
const DOCS_SCREENSHOT = new URL("../../docs/screenshot.png", import.meta.url);

/** A small RGB PNG, so the picture message shows something. */
function png(width: number, height: number, pixel: (x: number, y: number) => [number, number, number]): Buffer {
  const row = width * 3 + 1;
  const raw = Buffer.alloc(row * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) raw.set(pixel(x, y), y * row + 1 + x * 3);
  }
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, "latin1"), data]);
    const out = Buffer.alloc(body.length + 8);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc32(body), body.length + 4);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8 bits per channel, RGB
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk("IHDR", header), chunk("IDAT", deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
}

if (!existsSync(CHROMIUM)) {
  throw new Error(`chromium is missing at ${CHROMIUM}: the page test needs Debian's chromium package (apt-get install -y chromium; .ci/run installs it)`);
}

const node = await startInProcess(t, { DATABASE_URL: await freshDatabase(t) });
const base = `http://127.0.0.1:${node.port}`;
const browser: Browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
t.teardown(() => browser.close());
await mkdir(ARTIFACTS, { recursive: true });

/** A page in its own browser context (own storage), with its console errors collected. */
async function open(name: string): Promise<{ page: Page; problems: string[] }> {
  const context = await browser.newContext({ viewport: { width: 900, height: 700 } });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  const problems: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`${name} console: ${m.text()}`);
  });
  page.on("pageerror", (err) => problems.push(`${name} page error: ${err.message}`));
  return { page, problems };
}

async function join(page: Page, group: string, user: string): Promise<void> {
  await page.goto(base + "/");
  await page.fill("#join input[name=group]", group);
  await page.fill("#join input[name=user]", user);
  await page.click("#join button[type=submit]");
  await page.waitForSelector('#state[data-state="live"]');
}

const row = (page: Page, text: string) => page.locator("#messages li", { hasText: text });

/** A plain WebSocket from the test itself (a user without a page). */
function openSocket(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}

t.test("GET / serves the page; its script and style are same-origin assets", async (t) => {
  const html = await fetch(base + "/");
  t.equal(html.status, 200);
  t.match(html.headers.get("content-type"), /^text\/html/);
  t.match(html.headers.get("content-security-policy"), /script-src 'self'/);
  const text = await html.text();
  const script = /<script type="module" src="(\/assets\/app-[A-Z0-9]+\.js)">/.exec(text)?.[1];
  const style = /<link rel="stylesheet" href="(\/assets\/app-[A-Z0-9]+\.css)">/.exec(text)?.[1];
  t.ok(script && style, "links a content-hashed script and style");
  const js = await fetch(base + script);
  t.equal(js.status, 200);
  t.match(js.headers.get("content-type"), /^text\/javascript/);
  t.equal(js.headers.get("cache-control"), "public, max-age=31536000, immutable", "hashed names are cached for good");
  t.ok((await js.text()).length > 1000, "the bundled SDK and page");
  const css = await fetch(base + style);
  t.equal(css.status, 200);
  t.match(css.headers.get("content-type"), /^text\/css/);
  await css.text();
  const unknown = await fetch(base + "/assets/app-NOPE.js");
  t.equal(unknown.status, 404, "an unknown asset is 404");
  await unknown.text();
});

t.test("the conversation list: unread badges appear for other groups, and switching clears them", async (t) => {
  const [home, other] = [`conv-home-${process.pid}`, `conv-other-${process.pid}`];
  // erin is a member of both groups (a subscribe makes one); dan writes in the other one.
  const erinThere = await openSocket(`${base.replace("http", "ws")}/ws/chat/${other}/?user=erin`);
  erinThere.close();
  const dan = await openSocket(`${base.replace("http", "ws")}/ws/chat/${other}/?user=dan`);
  const { page: erin, problems } = await open("erin");
  await join(erin, home, "erin");
  await erin.waitForSelector(`#conv-list li[data-group="${home}"].current`);
  dan.send(JSON.stringify({ operation: "create", type: "text", body: "are you there?" }));
  dan.send(JSON.stringify({ operation: "create", type: "text", body: "erin?" }));
  const chip = erin.locator(`#conv-list li[data-group="${other}"]`);
  await chip.locator(".badge:has-text('2')").waitFor();
  t.match(await chip.textContent(), /dan: erin\?/, "the other group shows two unread and its last message");
  await chip.click();
  await row(erin, "are you there?").waitFor();
  t.match(await erin.textContent("#room"), new RegExp(`#${other}`), "switched to the other group");
  await erin.waitForSelector(`#conv-list li[data-group="${other}"].current`);
  // Back home: the other group's messages were seen, so its badge is gone.
  await erin.locator(`#conv-list li[data-group="${home}"]`).click();
  await erin.waitForSelector(`#conv-list li[data-group="${home}"].current`);
  await erin.waitForSelector(`#conv-list li[data-group="${other}"]:not(:has(.badge))`);
  t.pass("the badge clears once the messages were seen");
  dan.close();
  t.same(problems, [], "no console errors");
  await erin.context().close();
});

t.test("two people chat in one group: typing, send, reply, seen, edit, files, delete", async (t) => {
  const group = "e2e-room";
  const { page: alice, problems: aliceProblems } = await open("alice");
  const { page: bob, problems: bobProblems } = await open("bob");
  await join(alice, group, "alice");
  await join(bob, group, "bob");
  t.match(await alice.textContent("#room"), /e2e-room as alice/);
  t.match(await alice.textContent("#state"), /live/, "the connection state is shown");
  await alice.waitForSelector("#online:has-text('2 online: alice, bob')");
  await bob.waitForSelector("#online:has-text('2 online: alice, bob')");
  t.pass("both see who is online");

  // Alice types: Bob sees it; she sends: Bob sees the message and the indicator goes.
  await alice.locator("#text").pressSequentially("hello bob", { delay: 20 });
  await bob.waitForSelector("#typing:has-text('alice is typing')");
  t.pass("bob sees alice typing");
  await alice.press("#text", "Enter");
  await row(bob, "hello bob").waitFor();
  await bob.waitForFunction(() => document.querySelector("#typing")!.textContent === "");
  t.pass("bob sees the message, and the typing indicator is gone");
  t.equal(await row(bob, "hello bob").locator(".author").textContent(), "alice");

  // Bob's page was visible when the message came: Alice sees the receipt.
  await row(alice, "hello bob").locator(".seen:has-text('seen by bob')").waitFor();
  t.pass("alice sees that bob saw it");
  // The receipt survives a reload: bob's seen moved his read marker, which the page loads again.
  await join(alice, group, "alice");
  await row(alice, "hello bob").locator(".seen:has-text('seen by bob')").waitFor();
  t.pass("and still after a reload");

  // Bob replies to it; Alice sees the reply quoting her message.
  await bob.locator("#text").pressSequentially("hi alice", { delay: 10 });
  await alice.waitForSelector("#typing:has-text('bob is typing')");
  await row(bob, "hello bob").locator("button[data-action=reply]").click();
  t.match(await bob.textContent("#replying-to"), /Replying to alice: hello bob/);
  await bob.press("#text", "Enter");
  const reply = row(alice, "hi alice");
  await reply.waitFor();
  t.equal(await reply.locator(".quote").textContent(), "↪ alice: hello bob", "the reply quotes the message");

  // Alice edits her message; Bob sees the new text, marked edited.
  await row(alice, "hello bob").locator("button[data-action=edit]").click();
  await alice.fill("#messages .edit-input", "hello bob, edited");
  await alice.press("#messages .edit-input", "Enter");
  await row(bob, "hello bob, edited").locator(".edited").waitFor();
  t.pass("bob sees the edit");
  await bob.waitForSelector("#messages li .quote:has-text('hello bob, edited')");
  t.pass("and the reply's quote follows it");
  t.equal(await row(bob, "hi alice").locator("button[data-action=edit]").count(), 1, "bob may edit his own message");
  t.equal(await row(bob, "hello bob").first().locator("button[data-action=edit]").count(), 0, "but not alice's");

  // A picture and a file.
  const picture = png(160, 100, (x, y) => [40 + x, 90 + y, 200]);
  await alice.setInputFiles("#file", { name: "gradient.png", mimeType: "image/png", buffer: picture });
  await alice.fill("#text", "a picture");
  await alice.press("#text", "Enter");
  const img = row(bob, "a picture").locator(".attachment img");
  await img.waitFor();
  t.match(await img.getAttribute("src"), /^\/files\/[A-Za-z0-9_-]+$/, "the image comes from /files/<id>");
  await bob.waitForFunction(() => {
    const i = [...document.querySelectorAll<HTMLImageElement>("#messages .attachment img")].at(-1);
    return i?.complete && i.naturalWidth === 160;
  });
  t.pass("and loads");
  await bob.setInputFiles("#file", { name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("some notes\n") });
  await bob.press("#text", "Enter"); // a file needs no text
  const link = row(alice, "notes.txt").locator("a.file");
  await link.waitFor();
  t.match(await link.getAttribute("href"), /^\/files\/[A-Za-z0-9_-]+$/);
  const file = await fetch(base + (await link.getAttribute("href")));
  t.equal(await file.text(), "some notes\n", "the link serves the file");

  // A screenshot while Bob is typing: the README's picture of the page.
  await bob.locator("#text").pressSequentially("nice!", { delay: 10 });
  await alice.waitForSelector("#typing:has-text('bob is typing')");
  await row(alice, "a picture").locator(".seen").waitFor();
  await alice.screenshot({ path: new URL("alice.png", ARTIFACTS).pathname });
  if (process.env.UPDATE_SCREENSHOT === "1") await copyFile(new URL("alice.png", ARTIFACTS), DOCS_SCREENSHOT);
  await bob.press("#text", "Enter");
  await row(alice, "nice!").waitFor();

  // Text that looks like HTML stays text.
  const hostile = `<img src=x onerror="window.pwned=1"><b>bold?</b>`;
  await alice.fill("#text", hostile);
  await alice.press("#text", "Enter");
  const shown = row(bob, "bold?");
  await shown.waitFor();
  t.equal(await shown.locator(".body").textContent(), hostile, "the body is shown as typed");
  t.equal(await shown.locator(".body *").count(), 0, "no element was made of it");
  t.equal(await bob.evaluate(() => (window as unknown as { pwned?: number }).pwned), undefined, "no script ran");

  // Alice deletes her first message: both see a tombstone, and the reply's quote says so.
  await row(alice, "hello bob, edited").first().locator("button[data-action=delete]").click();
  const tomb = bob.locator("#messages li.deleted");
  await tomb.waitFor();
  t.equal(await tomb.locator(".body").textContent(), "message deleted");
  t.equal(await tomb.locator(".actions").count(), 0, "no actions on a deleted message");
  await bob.waitForSelector("#messages li .quote:has-text('(deleted)')");
  t.pass("the reply's quote shows the deletion");
  t.equal(await row(alice, "hello bob, edited").count(), 0, "the text is gone for alice too");

  const bodies = async (p: Page) => p.locator("#messages li .body").allTextContents();
  const expected = ["message deleted", "hi alice", "a picture", "", "nice!", hostile];
  t.same(await bodies(alice), expected, "alice's list, each message once, in order");
  t.same(await bodies(bob), expected, "bob's list is the same");
  t.equal(await alice.locator("#outbox li").count(), 0, "nothing left waiting to be sent");
  await bob.screenshot({ path: new URL("bob.png", ARTIFACTS).pathname });

  // A third person arriving later sees the same history.
  const { page: carol, problems: carolProblems } = await open("carol");
  await join(carol, group, "carol");
  await carol.waitForFunction((n) => document.querySelectorAll("#messages li").length === n, expected.length);
  t.same(await bodies(carol), expected, "a newcomer sees the history");

  // The server goes away: every page says so.
  await node.shutdown();
  await alice.waitForSelector('#state[data-state="reconnecting"]');
  t.match(await alice.textContent("#state"), /offline/, "the page shows it is offline");
  await alice.screenshot({ path: new URL("alice-offline.png", ARTIFACTS).pathname });

  const problems = [...aliceProblems, ...bobProblems, ...carolProblems].filter((p) => !/WebSocket|ERR_CONNECTION_REFUSED/.test(p));
  t.same(problems, [], "no console errors (CSP violations included) and no page errors");
});
