// The chat page across several conversations, in headless Chromium (as page.test.ts): two users,
// three groups, one WebSocket per page whatever the switching. Unread badges and last messages
// appear live from events in the groups not on screen, clear once the messages were on screen
// (the read marker goes out as they scroll into view), and both the badges and "seen by"
// survive a reload, because they come from the server's read markers. A user in more
// conversations than the first page of the list (20) and than the server's subscriptions per
// socket: the page follows all it may, lists the rest, and opening one of those makes room.
import { existsSync } from "node:fs";
import { chromium, type Browser, type Page } from "playwright-core";
import t from "tap";
import WebSocket from "ws";
import { connectMux, type ChatClient } from "../helpers/client.ts";
import { startInProcess } from "../helpers/node.ts";
import { eventually, uniqueGroup, untilDatabaseWarm } from "../helpers/probe.ts";
import { freshDatabase, sql } from "../helpers/services.ts";

const CHROMIUM = "/usr/bin/chromium";
if (!existsSync(CHROMIUM)) throw new Error(`chromium is missing at ${CHROMIUM} (apt-get install -y chromium; .ci/run installs it)`);

const node = await startInProcess(t, { DATABASE_URL: await freshDatabase(t) });
await untilDatabaseWarm(node.port);
const base = `http://127.0.0.1:${node.port}`;
const browser: Browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
t.teardown(() => browser.close());

/** Makes `user` a member of `group` (a subscribe does), as if they had joined it earlier. */
async function member(group: string, user: string, at = base): Promise<void> {
  const ws = new WebSocket(`${at.replace("http", "ws")}/ws/chat/${group}/?user=${user}`);
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  ws.close();
}

/** A page in its own browser context, counting the WebSockets it opens. */
async function open(name: string) {
  const context = await browser.newContext({ viewport: { width: 900, height: 700 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const problems: string[] = [];
  page.on("pageerror", (err) => problems.push(`${name}: ${err.message}`));
  page.on("console", (m) => void (m.type() === "error" && !/WebSocket/.test(m.text()) && problems.push(`${name} console: ${m.text()}`)));
  const sockets: string[] = [];
  page.on("websocket", (ws) => sockets.push(ws.url()));
  return { page, problems, sockets };
}

async function join(page: Page, group: string, user: string, at = base): Promise<void> {
  await page.goto(at + "/");
  await page.fill("#join input[name=group]", group);
  await page.fill("#join input[name=user]", user);
  await page.click("#join button[type=submit]");
  await page.waitForSelector('#state[data-state="live"]');
}

const chip = (page: Page, group: string) => page.locator(`#conv-list li[data-group="${group}"]`);
const badge = (page: Page, group: string, n: number) => chip(page, group).locator(`.badge:text-is("${n}")`).waitFor();
const noBadge = (page: Page, group: string) => page.waitForSelector(`#conv-list li[data-group="${group}"]:not(:has(.badge))`);
const row = (page: Page, text: string) => page.locator("#messages li", { hasText: text });

async function switchTo(page: Page, group: string): Promise<void> {
  await chip(page, group).click();
  await page.waitForSelector(`#conv-list li[data-group="${group}"].current`);
  await page.waitForSelector('#state[data-state="live"]');
}

async function say(page: Page, text: string): Promise<void> {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
  await row(page, text).waitFor();
}

t.test("two users, three conversations: badges appear live and clear, receipts survive a reload, one socket each", async (t) => {
  const [home, work, fun] = [uniqueGroup("home"), uniqueGroup("work"), uniqueGroup("fun")];
  for (const user of ["alice", "bob"]) for (const g of [work, fun]) await member(g, user);
  const alice = await open("alice");
  const bob = await open("bob");
  await join(alice.page, home, "alice");
  await join(bob.page, home, "bob");
  for (const p of [alice.page, bob.page]) for (const g of [home, work, fun]) await chip(p, g).waitFor();
  t.pass("each page lists the three conversations");

  // Bob writes in work (twice) and fun (once); alice stays on home and sees the badges come.
  await switchTo(bob.page, work);
  await say(bob.page, "standup at ten");
  await say(bob.page, "bring the notes");
  await badge(alice.page, work, 2);
  t.match(await chip(alice.page, work).locator(".last").textContent(), /bob: bring the notes/, "the last message follows too");
  await switchTo(bob.page, fun);
  await say(bob.page, "lunch?");
  await badge(alice.page, fun, 1);
  t.equal(await chip(alice.page, home).locator(".badge").count(), 0, "no badge on the group on screen");

  // Alice opens work: its messages are on screen, so its badge goes; fun keeps its own.
  await switchTo(alice.page, work);
  await row(alice.page, "bring the notes").waitFor();
  await switchTo(alice.page, home);
  await noBadge(alice.page, work);
  await badge(alice.page, fun, 1);
  t.pass("reading work cleared its badge only");

  // Bob sees alice's marker on his messages in work: "seen by alice".
  await switchTo(bob.page, work);
  await row(bob.page, "bring the notes").locator(".seen:has-text('seen by alice')").waitFor();
  t.pass("bob sees that alice read his messages");

  // Both reload. Bob's receipts and alice's remaining badge come back from the server's markers.
  await join(bob.page, work, "bob");
  await row(bob.page, "bring the notes").locator(".seen:has-text('seen by alice')").waitFor();
  t.equal(await row(bob.page, "lunch?").count(), 0, "bob's page shows work, not fun");
  t.pass("seen by survives bob's reload");
  await join(alice.page, home, "alice");
  await badge(alice.page, fun, 1);
  await noBadge(alice.page, work);
  t.pass("alice's badges survive her reload: fun unread, work read");

  // A new message in fun while alice is elsewhere adds to the badge; opening fun clears it.
  await switchTo(bob.page, fun);
  await say(bob.page, "pizza or sushi");
  await badge(alice.page, fun, 2);
  await switchTo(alice.page, fun);
  await row(alice.page, "pizza or sushi").waitFor();
  await switchTo(alice.page, work);
  await noBadge(alice.page, fun);
  await row(bob.page, "pizza or sushi").locator(".seen:has-text('seen by alice')").waitFor();
  t.pass("opening fun cleared its badge, and bob sees it read");

  t.same(alice.sockets.map((u) => new URL(u).pathname), ["/ws/", "/ws/"], "alice's page used one /ws/ socket per page load, whatever the switching");
  t.same(bob.sockets.map((u) => new URL(u).pathname), ["/ws/", "/ws/"], "so did bob's");
  t.same([...alice.problems, ...bob.problems], [], "no page errors");
  await alice.page.context().close();
  await bob.page.context().close();
});

t.test("more conversations than the list's first page and the socket's subscriptions: all listed, all it may followed live, the rest opened on demand", async (t) => {
  // No presence grace: a socket that closed (the set-up's) is gone from presence at once.
  const limited = await startInProcess(t, { DATABASE_URL: await freshDatabase(t), MAX_SUBSCRIPTIONS_PER_SOCKET: "23", PRESENCE_GRACE_MS: "0" });
  await untilDatabaseWarm(limited.port);
  const at = `http://127.0.0.1:${limited.port}`;
  const prefix = uniqueGroup("many");
  const groups = Array.from({ length: 25 }, (_, i) => `${prefix}-${String(i).padStart(2, "0")}`);
  const quinn: ChatClient = await connectMux(t, limited.port, { user: "quinn" });
  /** Quinn writes in a group (subscribed only for that: his socket has the same limit). */
  const post = async (group: string, body: string) => {
    await quinn.request({ operation: "subscribe", group });
    await quinn.request({ operation: "create", group, type: "text", body });
    await quinn.request({ operation: "unsubscribe", group });
  };
  for (const [i, g] of groups.entries()) {
    await member(g, "pat", at);
    await post(g, `hello ${i}`); // groups[24] is the most recently active
  }
  const pat = await open("pat");
  await join(pat.page, groups[24]!, "pat", at);
  for (const g of groups) await chip(pat.page, g).waitFor();
  t.pass("all 25 conversations are listed (the list's first page holds 20)");
  // 23 subscriptions: the group on screen and the 22 most recent others; the two oldest are listed only.
  for (const g of groups.slice(0, 2)) await pat.page.waitForSelector(`#conv-list li.unfollowed[data-group="${g}"]`);
  t.same(await pat.page.locator("#conv-list li.unfollowed").count(), 2, "past MAX_SUBSCRIPTIONS_PER_SOCKET (23 here) the rest is listed, not followed");
  for (const g of groups.slice(0, 24)) await badge(pat.page, g, 1);
  t.pass("every conversation but the one on screen has its badge, followed or not");

  // Presence as the contract defines it: a user is present where one of their sockets is subscribed.
  const presence = async (g: string) => (await (await fetch(`${at}/api/groups/${g}/presence`)).json()) as { count: number; users: { user: string }[] };
  t.ok(await eventually(async () => JSON.stringify((await presence(groups[3]!)).users.map((u) => u.user)) === '["pat"]', 10_000), "pat is present in a followed conversation not on screen");
  t.ok(await eventually(async () => (await presence(groups[1]!)).count === 0, 10_000), "and not in one past the limit, which the page does not follow");

  await post(groups[3]!, "beyond the first twenty");
  await badge(pat.page, groups[3]!, 2);
  t.match(await chip(pat.page, groups[3]!).locator(".last").textContent(), /quinn: beyond the first/, "a group past the first 20 follows live");
  t.equal(await pat.page.locator("#conv-list li").first().getAttribute("data-group"), groups[3], "and moves to the top of the list, most recent activity first");

  // Opening a conversation that is not followed makes room: the least recently active one is unfollowed.
  await switchTo(pat.page, groups[0]!);
  await row(pat.page, "hello 0").waitFor();
  await pat.page.waitForSelector(`#conv-list li.unfollowed[data-group="${groups[2]}"]`);
  t.equal(await chip(pat.page, groups[0]!).getAttribute("class"), "current", "the opened group is followed");
  await post(groups[0]!, "live in the opened group");
  await row(pat.page, "live in the opened group").waitFor();
  t.pass("the opened group is live");

  const metrics = await (await fetch(`${at}/metrics`)).text();
  const asked = Number(/chat_frames_received_total\{operation="presence"\} (\d+)/.exec(metrics)?.[1] ?? 0);
  t.ok(asked >= 1 && asked <= 3, `presence is asked for the groups on screen only, not for 23 followed ones (${asked})`);
  t.same(pat.sockets.map((u) => new URL(u).pathname), ["/ws/"], "one socket");
  t.same(pat.problems, [], "no page errors");
  await pat.page.context().close();
});

t.test("at the server's default MAX_SUBSCRIPTIONS_PER_SOCKET (500): a user in 501 conversations gets 500 followed on one socket, the least recently active one listed", async (t) => {
  const url = await freshDatabase(t);
  const defaults = await startInProcess(t, { DATABASE_URL: url });
  await untilDatabaseWarm(defaults.port);
  const at = `http://127.0.0.1:${defaults.port}`;
  const prefix = uniqueGroup("five");
  const groups = Array.from({ length: 501 }, (_, i) => `${prefix}-${String(i).padStart(3, "0")}`);
  // Memberships as if rob had joined one group a second over the last 501 seconds (groups[500] last).
  const db = await sql(t, url);
  await db.query(
    `INSERT INTO memberships (user_id, group_name, joined_at) SELECT 'rob', g, now() - ((501 - n) || ' seconds')::interval FROM unnest($1::text[]) WITH ORDINALITY AS x(g, n)`,
    [groups],
  );
  const rob = await open("rob");
  await join(rob.page, groups[500]!, "rob", at);
  await rob.page.waitForFunction((n) => document.querySelectorAll("#conv-list li").length === n, 501, { timeout: 60_000 });
  await rob.page.waitForSelector(`#conv-list li.unfollowed[data-group="${groups[0]}"]`, { timeout: 60_000 });
  t.equal(await rob.page.locator("#conv-list li.unfollowed").count(), 1, "the 501st subscription of the socket is refused: one conversation listed, not followed");

  const quinn = await connectMux(t, defaults.port, { user: "quinn" });
  await quinn.request({ operation: "subscribe", group: groups[1]! });
  await quinn.request({ operation: "create", group: groups[1]!, type: "text", body: "still followed" });
  await badge(rob.page, groups[1]!, 1);
  t.pass("the least recently active followed conversation is live");

  await switchTo(rob.page, groups[0]!);
  await rob.page.waitForSelector(`#conv-list li.unfollowed[data-group="${groups[2]}"]`);
  t.equal(await rob.page.locator("#conv-list li.unfollowed").count(), 1, "opening it unfollowed the least recently active other one");
  t.same(rob.sockets.map((u) => new URL(u).pathname), ["/ws/"], "one socket");
  t.same(rob.problems, [], "no page errors");
  await rob.page.context().close();
});
