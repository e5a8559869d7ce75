// The chat page when the network or the session fails it (headless Chromium, as in
// page.test.ts): a message sent while the connection hangs, then the page closed and opened
// again, goes out from the new page with its original request_id (the outbox lives in
// localStorage) and is stored once; and in JWT mode, a token that expires makes the page say so
// and ask for a new one, after which it resumes without missing or repeating a message.
import { existsSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";
import t from "tap";
import { startInProcess } from "../helpers/node.ts";
import { uniqueGroup } from "../helpers/probe.ts";
import { client, recorder, until } from "../helpers/sdk.ts";
import { freshDatabase } from "../helpers/services.ts";
import { signToken, TEST_JWT_SECRET } from "../helpers/jwt.ts";
import { TcpProxy } from "../helpers/tcp-proxy.ts";

const CHROMIUM = "/usr/bin/chromium";
if (!existsSync(CHROMIUM)) throw new Error(`chromium is missing at ${CHROMIUM} (apt-get install -y chromium; .ci/run installs it)`);

const node = await startInProcess(t, { DATABASE_URL: await freshDatabase(t) });
const browser: Browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
t.teardown(() => browser.close());

t.test("a message the page could not send survives closing the page and is sent, once, by the next one", async (t) => {
  const group = uniqueGroup("page-reload");
  // The page reaches the node through a proxy that can freeze its connection.
  const proxy = await TcpProxy.start(t, node.port);
  const context = await browser.newContext({ viewport: { width: 900, height: 700 } });
  t.teardown(() => context.close());
  const problems: string[] = [];
  const pageUrl = `http://127.0.0.1:${proxy.port}/?group=${group}&user=alice`;
  const openPage = async () => {
    const page = await context.newPage();
    page.setDefaultTimeout(10_000);
    page.on("pageerror", (err) => problems.push(err.message));
    await page.goto(pageUrl);
    await page.waitForSelector('#state[data-state="live"]');
    return page;
  };
  const bob = client(t, { url: `http://127.0.0.1:${node.port}`, group, user: "bob", historyLimit: 0 });
  await bob.connect();
  const atBob = recorder(bob);

  const first = await openPage();
  await first.fill("#text", "before the freeze");
  await first.click("#send");
  await until("bob gets the first message", () => atBob.seqs().length === 1);

  await proxy.cut("stall"); // the page's socket hangs: what it sends never arrives
  await first.fill("#text", "written while frozen");
  await first.click("#send");
  await first.waitForSelector("#outbox li:has-text('written while frozen')");
  const saved = await first.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith("chatroom.outbox.")).map((k) => localStorage.getItem(k)));
  t.match(saved.join(""), /written while frozen/, "the unsent message is in localStorage");
  await first.close(); // the page is gone (a reload, a closed tab)
  await proxy.restore();

  const second = await openPage();
  await second.locator("#messages li", { hasText: "written while frozen" }).waitFor();
  await second.waitForFunction(() => document.querySelectorAll("#outbox li").length === 0);
  await until("bob gets it", () => atBob.seqs().length === 2);
  t.same(atBob.bodies(), ["before the freeze", "written while frozen"], "stored and delivered once");
  t.equal(await second.locator("#messages li", { hasText: "written while frozen" }).count(), 1, "shown once on the new page");
  t.same(await second.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith("chatroom.outbox."))), [], "and no longer saved");
  t.same(problems, [], "no page errors");
});


t.test("in JWT mode the page shows an expired session, takes a new token and misses nothing", async (t) => {
  const jwtNode = await startInProcess(t, { DATABASE_URL: await freshDatabase(t), JWT_SECRET: TEST_JWT_SECRET, JWT_CLOCK_TOLERANCE_S: "0" });
  const url = `http://127.0.0.1:${jwtNode.port}`;
  const group = uniqueGroup("page-jwt");
  const context = await browser.newContext({ viewport: { width: 900, height: 700 } });
  t.teardown(() => context.close());
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  const problems: string[] = [];
  page.on("pageerror", (err) => problems.push(err.message));
  await page.goto(url + "/");
  await page.fill("#join input[name=group]", group);
  await page.fill("#join input[name=user]", "alice");
  await page.fill("#join input[name=token]", await signToken("alice", 3));
  await page.click("#join button[type=submit]");
  await page.waitForSelector('#state[data-state="live"]');
  t.match(await page.textContent("#room"), /as alice/, "the page knows who it is from the token");
  const bob = client(t, { url, group, token: () => signToken("bob", 60), historyLimit: 0 });
  await bob.connect();
  const atBob = recorder(bob);
  // Sent while the 3 s token lasts, or, on a machine slow enough that it has expired already,
  // kept in the outbox and sent after the renewal: either way it must arrive once.
  await page.fill("#text", "before the expiry");
  await page.click("#send");

  // The token expires: the server closes the socket (4001), the page asks for a new token.
  await page.waitForSelector("#renew:not([hidden])", { timeout: 8_000 });
  t.match(await page.textContent("#state"), /session expired/, "the state says why");
  await bob.send("while alice renews");
  await page.fill("#renew input[name=token]", await signToken("alice", 60));
  await page.click("#renew button[type=submit]");
  await page.waitForSelector('#state[data-state="live"]');
  await page.locator("#messages li", { hasText: "while alice renews" }).waitFor();
  await page.fill("#text", "after the renewal");
  await page.click("#send");
  await until("bob gets the last", () => atBob.seqs().length === 3);
  t.same([...atBob.bodies()].sort(), ["after the renewal", "before the expiry", "while alice renews"], "every message once");
  t.equal(atBob.bodies().at(-1), "after the renewal", "the message sent after the renewal comes last");
  for (const text of ["before the expiry", "while alice renews", "after the renewal"]) {
    t.equal(await page.locator("#messages li", { hasText: text }).count(), 1, `"${text}" shown once`);
  }
  t.same(problems, [], "no page errors");
});
