// The chat page: a small UI over the client SDK. One ChatConnection (one `/ws/` socket) follows
// every conversation in the user's list (all its pages), up to the server's subscriptions per
// socket (MAX_SUBSCRIPTIONS_PER_SOCKET, default 500): past it, the rest of the list shows the
// badges and last messages of the list as fetched when the socket opened, and opening one of them
// unfollows the least recently active conversation to follow it. Switching groups shows another
// GroupView on the same socket, unread badges and last messages follow each group's events, read
// markers are sent as others' messages scroll into view, and "seen by" comes from members'
// markers (loaded for the group on screen only), so it survives a reload. Everything a user typed reaches the DOM
// as text (textContent, input values), never as HTML; attachment links and images point only at
// `/files/<id>`, built from the attachment id.
import * as v from "valibot";
import { UserId } from "../../protocol/index.ts";
import {
  attachmentPath,
  ChatConnection,
  CLOSE_TOKEN_EXPIRED,
  fileFromBlob,
  type AckEvent,
  type ConnectionChange,
  type ConversationView,
  type GroupView,
  type MessageView,
  type OutboxStorage,
  type PresenceState,
} from "../index.ts";

const $ = <T extends HTMLElement>(selector: string): T => {
  const el = document.querySelector<T>(selector);
  if (!el) throw new Error(`the page has no ${selector}`);
  return el;
};

const joinForm = $<HTMLFormElement>("#join");
const chatSection = $<HTMLElement>("#chat");
const roomLabel = $<HTMLElement>("#room");
const stateBadge = $<HTMLElement>("#state");
const leaveButton = $<HTMLButtonElement>("#leave");
const scroller = $<HTMLElement>("#scroller");
const olderButton = $<HTMLButtonElement>("#older");
const list = $<HTMLOListElement>("#messages");
const outbox = $<HTMLOListElement>("#outbox");
const typingLine = $<HTMLElement>("#typing");
const onlineLine = $<HTMLElement>("#online");
const replying = $<HTMLElement>("#replying");
const replyingTo = $<HTMLElement>("#replying-to");
const composer = $<HTMLFormElement>("#composer");
const textInput = $<HTMLInputElement>("#text");
const fileInput = $<HTMLInputElement>("#file");
const fileName = $<HTMLElement>("#file-name");
const notice = $<HTMLElement>("#notice");
const renewForm = $<HTMLFormElement>("#renew");
const convList = $<HTMLUListElement>("#conv-list");

const RASTER = /^image\/(?:png|jpeg|gif|webp|avif|bmp)$/;

let conn: ChatConnection | null = null;
/** The group on screen. */
let chat: GroupView | null = null;
let token: string | undefined;
let me: string | undefined;
let editing: string | null = null;
let replyTarget: string | null = null;
/** Each row and what it last showed, so a change re-renders only the rows it touched. */
const rows = new Map<string, { li: HTMLLIElement; shown: MessageView | null; extra: string }>();
/** Groups whose newest page was loaded (a group followed from the list starts from its last message only). */
const pageLoaded = new Set<string>();
/** Each listed group's most recent activity, for the list's order. */
const activity = new Map<string, string>();
/** The conversation list as last fetched: every group of the user, followed or not. */
const listed = new Map<string, ConversationView>();
/** The server refused a subscribe as one too many: no more groups are followed from the list. */
let full = false;
/** Groups opened past the limit and refused even so: room is made once, not again and again. */
const refusedOnScreen = new Set<string>();

// ---- small DOM helpers --------------------------------------------------------------------

function el<K extends keyof HTMLElementTagNameMap>(tag: K, props: { className?: string; text?: string } = {}, ...children: Node[]): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (props.className) node.className = props.className;
  if (props.text !== undefined) node.textContent = props.text;
  node.append(...children);
  return node;
}

let noticeTimer: ReturnType<typeof setTimeout> | undefined;
function showNotice(text: string): void {
  notice.textContent = text;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => (notice.textContent = ""), 6000);
}

const time = (iso: string) => new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
const size = (n: number) => (n < 1024 ? `${n} B` : n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KB` : `${(n / 1024 / 1024).toFixed(1)} MB`);
const nearBottom = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;

// ---- rendering ----------------------------------------------------------------------------

function summary(id: string): string {
  const m = chat?.message(id);
  if (!m) return "an earlier message";
  if (m.deleted) return `${m.user}: (deleted)`;
  return `${m.user}: ${m.body || m.attachment?.name || ""}`;
}

function fill(li: HTMLLIElement, m: MessageView, seenBy: string[]): void {
  li.className = [m.user === me ? "mine" : "", m.deleted ? "deleted" : ""].join(" ").trim();
  li.dataset.id = m.id;
  li.dataset.user = m.user;
  const meta = el("div", { className: "meta" }, el("span", { className: "author", text: m.user }), el("time", { text: time(m.created) }));
  if (m.updated && !m.deleted) meta.append(el("span", { className: "edited", text: "edited" }));
  const parts: Node[] = [meta];
  if (m.reply_to) parts.push(el("div", { className: "quote", text: `↪ ${summary(m.reply_to)}` }));
  parts.push(el("div", { className: "body", text: m.deleted ? "message deleted" : (m.body ?? "") }));
  const path = m.deleted ? null : attachmentPath(m, token);
  if (path && m.attachment) {
    const link = el("a");
    link.href = path;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    if (m.type === "image" && RASTER.test(m.attachment.content_type)) {
      const img = el("img");
      img.src = path;
      img.alt = m.attachment.name;
      link.append(img);
    } else {
      link.className = "file";
      link.textContent = `${m.attachment.name} (${size(m.attachment.size)})`;
    }
    parts.push(el("div", { className: "attachment" }, link));
  }
  if (m.user === me && seenBy.length > 0 && !m.deleted) parts.push(el("div", { className: "seen", text: `seen by ${seenBy.join(", ")}` }));
  if (!m.deleted) {
    const actions = el("div", { className: "actions" });
    const action = (name: string) => {
      const b = el("button", { text: name });
      b.type = "button";
      b.dataset.action = name;
      actions.append(b);
    };
    action("reply");
    if (m.user === me) {
      action("edit");
      action("delete");
    }
    parts.push(actions);
  }
  li.replaceChildren(...parts);
}

function render(): void {
  if (!chat) return;
  const stick = nearBottom();
  const keep = new Set<string>();
  let previous: Element | null = null;
  for (const m of chat.messages) {
    keep.add(m.id);
    let row = rows.get(m.id);
    if (!row) rows.set(m.id, (row = { li: el("li"), shown: null, extra: "" }));
    // Receipts seen live, and members whose read marker reached the message (so they survive a reload).
    const seenBy = [...new Set([...chat.seenBy(m.id).keys(), ...chat.readBy(m.id)])].filter((u) => u !== m.user).sort();
    // Besides the message itself, a row shows who saw it and the message it replies to.
    const extra = `${seenBy.join(",")}\n${m.reply_to ? summary(m.reply_to) : ""}`;
    if (editing !== m.id && (row.shown !== m || row.extra !== extra)) {
      fill(row.li, m, seenBy);
      row.shown = m;
      row.extra = extra;
    }
    const expected: Element | null = previous ? previous.nextElementSibling : list.firstElementChild;
    if (expected !== row.li) list.insertBefore(row.li, expected);
    previous = row.li;
  }
  for (const [id, row] of rows) {
    if (!keep.has(id)) {
      row.li.remove();
      rows.delete(id);
    }
  }
  olderButton.hidden = !chat.hasMore;
  if (stick) scroller.scrollTop = scroller.scrollHeight;
  for (const [id, row] of rows) if (!observed.has(id)) (observed.add(id), visibility.observe(row.li));
}

let lastChange: ConnectionChange | undefined;
function renderState(change?: ConnectionChange): void {
  if (change) lastChange = change;
  const socket = conn?.state ?? "closed";
  // The socket's state, and once it is open the shown group's (as a ChatClient reports it).
  const state = socket !== "live" ? socket : chat?.state === "live" ? "live" : chat?.state === "syncing" ? "syncing" : "connecting";
  stateBadge.dataset.state = state;
  const unsent = outbox.querySelectorAll("li:not([hidden])").length;
  const text: Record<string, string> = {
    idle: "not connected",
    connecting: renewForm.hidden ? "connecting…" : "session expired · waiting for a new token",
    syncing: "catching up…",
    live: "● live",
    reconnecting:
      lastChange?.code === CLOSE_TOKEN_EXPIRED
        ? "session expired · renewing…"
        : lastChange?.delayMs !== undefined
          ? `offline · retrying in ${Math.ceil(lastChange.delayMs / 1000)} s`
          : "offline",
    closed: "disconnected",
  };
  stateBadge.textContent = (text[state] ?? state) + (unsent > 0 ? ` · ${unsent} unsent` : "");
}

function renderTypers(users: string[]): void {
  typingLine.textContent =
    users.length === 0 ? "" : users.length === 1 ? `${users[0]} is typing…` : users.length <= 3 ? `${users.join(", ")} are typing…` : `${users.length} people are typing…`;
}

/** Who is online: names as text only (never markup), the rest as a count. */
function renderOnline(state: PresenceState | null): void {
  onlineLine.hidden = state === null;
  if (state === null) return;
  const shown = state.users.slice(0, 5);
  const more = state.count - shown.length;
  onlineLine.textContent = `● ${state.count} online: ${shown.join(", ")}${more > 0 ? ` and ${more} more` : ""}`;
}

// ---- read markers: others' messages that scrolled into view --------------------------------

/** Rows on screen now (at least half visible), by message id. */
const onScreen = new Set<string>();
const observed = new Set<string>();
const visibility = new IntersectionObserver(
  (entries) => {
    for (const e of entries) {
      const id = (e.target as HTMLElement).dataset.id;
      if (!id) continue;
      if (e.isIntersecting) onScreen.add(id);
      else onScreen.delete(id);
    }
    markRead();
  },
  { root: scroller, threshold: 0.5 },
);
/** The highest marker asked for per group, so a scroll does not send the same `read` twice. */
const readAsked = new Map<string, number>();

/**
 * Moves the read marker to the newest message of others on screen, while the page is visible.
 * Called as the observer reports rows (once per frame at most), so a switch right after a
 * message came into view has read it already.
 */
function markRead(): void {
  const view = chat;
  if (!view || document.visibilityState !== "visible") return;
  let seq = 0;
  for (const id of onScreen) {
    const m = view.message(id);
    if (m && m.user !== me && m.seq > seq) seq = m.seq;
  }
  if (seq <= view.readMarker() || seq <= (readAsked.get(view.group) ?? 0)) return;
  readAsked.set(view.group, seq);
  view.read(seq).catch(() => {
    if (readAsked.get(view.group) === seq) readAsked.delete(view.group); // the next scroll tries again
  });
}

/** Shows an operation waiting for its answer, greyed, until `result` settles. */
function showPending(group: string, text: string, result: Promise<AckEvent>): void {
  const pending = el("li", {}, el("div", { className: "meta", text: "sending…" }), el("div", { className: "body", text }));
  pending.dataset.group = group;
  pending.hidden = group !== chat?.group;
  outbox.append(pending);
  scroller.scrollTop = scroller.scrollHeight;
  renderState();
  result.then(
    () => pending.remove(),
    (err: Error) => {
      pending.classList.add("failed");
      pending.querySelector(".meta")!.textContent = `not sent: ${err.message}`;
      showNotice(err.message);
    },
  ).finally(renderState);
}

/** The page's outbox survives a reload in localStorage (when the browser allows it). */
function pageStorage(): OutboxStorage | undefined {
  try {
    localStorage.getItem("chatroom");
    return localStorage;
  } catch {
    return undefined;
  }
}

/** The token for the next connection; once the server said it expired, a new one is asked for. */
function renewedToken(): Promise<string> {
  renewForm.hidden = false;
  renderState();
  const input = renewForm.elements.namedItem("token") as HTMLInputElement;
  input.value = "";
  input.focus();
  return new Promise((resolve) => {
    renewForm.onsubmit = (ev) => {
      ev.preventDefault();
      const fresh = input.value.trim();
      if (!fresh) return;
      renewForm.hidden = true;
      renewForm.onsubmit = null;
      token = fresh;
      resolve(fresh);
    };
  });
}

// ---- the conversation list ----------------------------------------------------------------

let convFrame = false;
/** Re-renders the list (badges, last messages, order) once per frame at most. */
function renderConversations(): void {
  if (convFrame) return;
  convFrame = true;
  requestAnimationFrame(() => {
    convFrame = false;
    if (!conn) return;
    const groups = [...new Set([...conn.groups, ...listed.keys()])].sort((a, b) => (activity.get(b) ?? "").localeCompare(activity.get(a) ?? ""));
    convList.replaceChildren(
      ...groups.map((g) => {
        const view = conn!.view(g);
        const entry = listed.get(g);
        // A group past the subscription limit shows the list's figures, as fetched.
        const li = el("li", { className: [g === chat?.group ? "current" : "", view ? "" : "unfollowed"].join(" ").trim(), text: `#${g}` });
        li.dataset.group = g;
        const unread = view ? view.unread : (entry?.unread ?? 0);
        if (unread > 0 && g !== chat?.group) li.append(el("span", { className: "badge", text: String(unread) }));
        const last = view ? [...view.messages].reverse().find((m) => m.seq > 0) : entry?.last_message;
        if (last) li.append(el("span", { className: "last", text: last.deleted ? "(deleted)" : `${last.user}: ${(last.body ?? last.attachment?.name ?? "").slice(0, 24)}` }));
        return li;
      }),
    );
  });
}

convList.addEventListener("click", (ev) => {
  const g = (ev.target as HTMLElement).closest<HTMLLIElement>("li[data-group]")?.dataset.group;
  if (g && conn && g !== chat?.group) show(g);
});

/** Follows a group on the connection (its view's events keep the list current); `known`: its list entry. */
function follow(group: string, known?: ConversationView): GroupView {
  const existing = conn!.view(group);
  if (existing) return existing;
  const view = conn!.follow(group, known ? { known } : {});
  if (!activity.has(group) || known) activity.set(group, known?.last_activity ?? new Date().toISOString());
  view.subscribed.catch((err: { code?: string }) => {
    if (err.code !== "too_large") return;
    // One subscription too many for the server: the rest of the list is not followed; the group
    // on screen is followed instead of the least recently active one.
    full = true;
    if (chat === view && conn && !refusedOnScreen.has(group)) {
      refusedOnScreen.add(group);
      show(group);
    } else if (chat === view) {
      showNotice(`cannot follow #${group}: ${(err as Error).message}`);
    }
    renderConversations();
  });
  if (!known) pageLoaded.add(group); // followed without a position: it loads its newest page itself
  const ifShown = <A extends unknown[]>(fn: (...args: A) => void) => (...args: A) => {
    if (chat === view) fn(...args);
  };
  // Every stored event moves the group up, as the server's last_activity does (an edit or a
  // delete of an older message included); a delete carries no time, so it is taken as now.
  view.on("event", (e) => {
    if (e.operation !== "create" && e.operation !== "reply" && e.operation !== "update" && e.operation !== "delete") return;
    const at = e.operation === "delete" ? new Date().toISOString() : e.operation === "update" ? (e.message.updated ?? e.message.created) : e.message.created;
    if (at > (activity.get(group) ?? "")) activity.set(group, at);
  });
  view.on("change", () => {
    renderConversations();
    if (chat === view) {
      render();
      renderState();
    }
  });
  view.on("state", ifShown(() => {
    loadPage(view);
    renderState();
  }));
  view.on("history", (_page, reset) => void (reset && pageLoaded.add(group)));
  view.on("typers", ifShown(renderTypers));
  view.on("presence", ifShown(renderOnline));
  view.on("error", ifShown((err: Error) => showNotice(err.message)));
  // What the page had not sent when it was reloaded goes out again (with its original request_ids).
  view.on("restored", (ops) => {
    for (const op of ops) {
      if (op.operation === "create" || op.operation === "reply") showPending(group, String(op.frame.body ?? ""), op.result);
    }
  });
  return view;
}

/** A group followed from the list holds its last message only: once shown and live, its newest page (once). */
function loadPage(view: GroupView): void {
  if (pageLoaded.has(view.group) || view.state !== "live") return;
  pageLoaded.add(view.group);
  view.loadLatest().catch(() => pageLoaded.delete(view.group));
}

/** Shows a group: its view on the same socket (subscribed now if it was not followed). */
function show(group: string): void {
  if (!conn) return;
  chat?.stopTyping();
  chat?.blur();
  if (full && !conn.view(group)) makeRoom();
  const view = follow(group, listed.get(group));
  view.focus();
  view.subscribed.then(() => refusedOnScreen.delete(group), () => {});
  chat = view;
  for (const row of rows.values()) row.li.remove();
  rows.clear();
  onScreen.clear();
  observed.clear();
  visibility.disconnect();
  editing = null;
  setReply(null);
  for (const li of outbox.querySelectorAll<HTMLLIElement>("li")) li.hidden = li.dataset.group !== group;
  loadPage(view);
  roomLabel.textContent = me === undefined ? `#${group}` : `#${group} as ${me}`;
  renderTypers(view.typers);
  renderOnline(view.presence);
  render();
  renderState();
  renderConversations();
  try {
    localStorage.setItem("chatroom", JSON.stringify({ group, user: joinedUser }));
  } catch {
    // storage disabled: nothing to remember
  }
}

/** Past the subscription limit: unfollows the least recently active group not on screen. */
function makeRoom(): void {
  const c = conn!;
  const victim = c.groups.filter((g) => g !== chat?.group).sort((a, b) => (activity.get(a) ?? "").localeCompare(activity.get(b) ?? ""))[0];
  if (victim !== undefined) void c.unsubscribe(victim);
}

let joinedUser = "";
/**
 * Follows every group of the user's list (all pages, most recent first, until the server's
 * subscription limit), as it is each time the socket opens. Groups already followed take the
 * entry's counts (their marker may have moved on another device while this socket was away).
 */
async function loadConversations(): Promise<void> {
  const c = conn;
  if (!c) return;
  try {
    const seen = new Set<string>();
    let before: string | undefined;
    for (let page = 0; page < 1000; page++) {
      const answer = await c.conversations({ limit: 100, ...(before === undefined ? {} : { before }) });
      if (conn !== c) return;
      for (const entry of answer.groups) {
        seen.add(entry.group);
        listed.set(entry.group, entry);
        if (entry.last_activity > (activity.get(entry.group) ?? "")) activity.set(entry.group, entry.last_activity);
        const view = c.view(entry.group);
        if (view) view.seed(entry);
        else if (!full) follow(entry.group, entry);
      }
      renderConversations();
      if (!answer.has_more || answer.next === undefined) break;
      before = answer.next;
    }
    // Groups no longer in the list (left on another device) stop costing a subscription (the one shown stays).
    for (const g of [...listed.keys()]) if (!seen.has(g)) listed.delete(g);
    for (const g of c.groups) {
      if (!seen.has(g) && g !== chat?.group) {
        void c.unsubscribe(g);
        full = false;
      }
    }
    renderConversations();
  } catch {
    // the list is a convenience: the next connection asks again
  }
}

// ---- joining and leaving ------------------------------------------------------------------

function join(group: string, user: string, jwt: string | undefined): void {
  token = jwt;
  const name = v.safeParse(UserId, user);
  if (!jwt && !name.success) return showNotice(name.issues[0].message);
  try {
    const identity = jwt ? { token: ({ expired }: { expired: boolean }) => (expired ? renewedToken() : token!) } : { user };
    conn = new ChatConnection({ ...identity, outboxStorage: pageStorage(), presence: true, focusOnly: true });
    me = conn.user ?? (jwt ? undefined : user);
    joinedUser = user;
    show(group);
  } catch (err) {
    conn?.close();
    conn = null;
    chat = null;
    showNotice((err as Error).message);
    return;
  }
  const c = conn;
  c.on("state", (change) => {
    // With a token, who we are is known once the first token is fetched (its `sub`).
    if (c.user !== undefined && c.user !== me) {
      me = c.user;
      if (chat) roomLabel.textContent = `#${chat.group} as ${me}`;
    }
    renderState(change);
    if (change.state === "live") void loadConversations();
  });
  c.on("error", (err) => showNotice(err.message));
  joinForm.hidden = true;
  chatSection.hidden = false;
  leaveButton.hidden = false;
  renderState();
  c.connect();
  textInput.focus();
}

function leave(): void {
  conn?.close();
  conn = null;
  chat = null;
  lastChange = undefined;
  convList.replaceChildren();
  pageLoaded.clear();
  activity.clear();
  listed.clear();
  full = false;
  readAsked.clear();
  renewForm.hidden = true;
  renewForm.onsubmit = null;
  for (const row of rows.values()) row.li.remove();
  rows.clear();
  onScreen.clear();
  observed.clear();
  visibility.disconnect();
  outbox.replaceChildren();
  setReply(null);
  renderTypers([]);
  renderOnline(null);
  renderState();
  roomLabel.textContent = "";
  chatSection.hidden = true;
  leaveButton.hidden = true;
  joinForm.hidden = false;
}

joinForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const data = new FormData(joinForm);
  join(String(data.get("group")).trim(), String(data.get("user")).trim(), String(data.get("token") ?? "").trim() || undefined);
});
leaveButton.addEventListener("click", leave);

// ---- composing ----------------------------------------------------------------------------

function setReply(id: string | null): void {
  replyTarget = id;
  replying.hidden = id === null;
  replyingTo.textContent = id === null ? "" : `Replying to ${summary(id)}`;
  if (id !== null) textInput.focus();
}

$<HTMLButtonElement>("#cancel-reply").addEventListener("click", () => setReply(null));
textInput.addEventListener("input", () => {
  if (textInput.value) chat?.typing();
  else chat?.stopTyping();
});
fileInput.addEventListener("change", () => (fileName.textContent = fileInput.files?.[0]?.name ?? ""));

composer.addEventListener("submit", (ev) => {
  ev.preventDefault();
  if (!chat) return;
  const client = chat;
  const body = textInput.value.trim();
  const file = fileInput.files?.[0];
  if (!body && !file) return;
  const target = replyTarget;
  textInput.value = "";
  fileInput.value = "";
  fileName.textContent = "";
  setReply(null);
  // Shown at once, greyed until the server acknowledges it (it may wait offline in the outbox).
  showPending(
    client.group,
    body || file?.name || "",
    (async () => {
      const attachment = file ? await fileFromBlob(file) : undefined;
      const opts = attachment ? { file: attachment } : {};
      return target ? client.reply(target, body, opts) : client.send(body, opts);
    })(),
  );
});

// ---- message actions ----------------------------------------------------------------------

function startEdit(li: HTMLLIElement, m: MessageView): void {
  editing = m.id;
  const input = el("input", { className: "edit-input" });
  input.value = m.body ?? "";
  input.setAttribute("aria-label", "edit message");
  const finish = () => {
    editing = null;
    const row = rows.get(m.id);
    if (row) row.shown = null; // show its current state again
    render();
  };
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") return finish();
    if (ev.key !== "Enter") return;
    ev.preventDefault();
    const body = input.value.trim();
    if (!body || body === m.body) return finish();
    input.disabled = true;
    chat!.edit(m.id, body).then(finish, (err: Error) => {
      input.disabled = false;
      showNotice(err.message);
    });
  });
  li.querySelector(".body")!.replaceWith(input);
  input.focus();
}

list.addEventListener("click", (ev) => {
  const button = (ev.target as HTMLElement).closest<HTMLButtonElement>("button[data-action]");
  const li = button?.closest<HTMLLIElement>("li[data-id]");
  if (!chat || !button || !li) return;
  const m = chat.message(li.dataset.id!);
  if (!m || m.deleted) return;
  if (button.dataset.action === "reply") setReply(m.id);
  else if (button.dataset.action === "edit") startEdit(li, m);
  else if (button.dataset.action === "delete") chat.delete(m.id).catch((err: Error) => showNotice(err.message));
});

olderButton.addEventListener("click", () => {
  if (!chat) return;
  const before = scroller.scrollHeight;
  chat.loadOlder().then(
    () => (scroller.scrollTop += scroller.scrollHeight - before),
    (err: Error) => showNotice(err.message),
  );
});

document.addEventListener("visibilitychange", markRead);

// ---- start --------------------------------------------------------------------------------

{
  let saved: { group?: string; user?: string } = {};
  try {
    saved = JSON.parse(localStorage.getItem("chatroom") ?? "{}") as typeof saved;
  } catch {
    // nothing remembered
  }
  const query = new URLSearchParams(location.search);
  const group = joinForm.elements.namedItem("group") as HTMLInputElement;
  const user = joinForm.elements.namedItem("user") as HTMLInputElement;
  group.value = query.get("group") ?? saved.group ?? "lobby";
  user.value = query.get("user") ?? saved.user ?? `guest-${Math.random().toString(36).slice(2, 6)}`;
  if (query.has("group") && query.has("user")) join(group.value, user.value, undefined);
}
