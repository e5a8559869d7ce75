// Membership and read state as the chat sees them (issue 12): who is a member of a group (from
// their first subscribe or first stored operation until they leave), read markers (`read`, and
// `seen` moving the marker), the `read` event, and the conversation list. Nothing here knows
// about sockets: the gateway and the HTTP routes call these with a session or a user.
import type { ClientFrame, ConversationView, GroupEvent, MemberView } from "../protocol/index.ts";
import type { ConversationCursor, ReadMarker, ReadStateStore } from "../store/read-state.ts";
import { actingUser, type Session } from "./identity.ts";
import { toMessageView } from "./message-view.ts";
import { RecentMembers } from "./recent-members.ts";
import type { Outcome } from "./service.ts";

export interface ReadStateDeps {
  store: ReadStateStore;
  /** Broadcasts an event to the group (every node, every socket of it). */
  broadcast: (group: string, event: GroupEvent) => void;
  /** Told when making a user a member failed (it is retried on their next subscribe or write). */
  onError?: (err: unknown, group: string) => void;
}

/** (group, user) pairs this node made members recently (see recent-members.ts): at most 2 x 50,000, for up to a minute. */
const KNOWN_MAX = 50_000;
const KNOWN_TTL_MS = 60_000;

/** `<ms>.<group>`: an opaque place in a conversation list. */
export const cursorOf = (c: ConversationCursor): string => `${c.at.getTime()}.${c.group}`;
export function parseCursor(s: string): ConversationCursor {
  const dot = s.indexOf(".");
  return { at: new Date(Number(s.slice(0, dot))), group: s.slice(dot + 1) };
}

export interface GroupsPage {
  groups: ConversationView[];
  has_more: boolean;
  next?: string;
}

export class ReadState {
  /** The (group, user) pairs made members from this node recently. Bounded, and forgotten after a while. */
  private readonly known = new RecentMembers(KNOWN_TTL_MS, KNOWN_MAX);

  constructor(private readonly deps: ReadStateDeps) {}

  /**
   * The user subscribed to or wrote in the group: they are a member from now on. Cheap to call on
   * every write (a recent one is remembered), and never fails the caller.
   */
  touch(group: string, user: string | null): void {
    if (user === null || this.known.has(group, user)) return;
    this.known.add(group, user);
    this.deps.store.join(group, user).catch((err) => {
      this.known.delete(group, user);
      this.deps.onError?.(err, group);
    });
  }

  async read(s: Session, f: ClientFrame<"read">): Promise<Outcome> {
    const user = actingUser(s, f.user);
    const marker = await this.deps.store.markRead(s.group, user, f.seq);
    this.announce(s.group, user, marker);
    return { kind: "ack", read_seq: marker.readSeq, unread: marker.unread, last_seq: marker.lastSeq };
  }

  /** After a `seen`: the marker moves forward to the message's seq. */
  async seen(s: Session, f: ClientFrame<"seen">): Promise<ReadMarker> {
    const user = actingUser(s, f.user);
    const marker = await this.deps.store.markReadTo(s.group, user, f.message_id);
    this.announce(s.group, user, marker);
    return marker;
  }

  async leave(s: Session, f: ClientFrame<"leave">): Promise<Outcome> {
    const user = actingUser(s, f.user);
    this.known.delete(s.group, user);
    await this.deps.store.leave(s.group, user);
    return { kind: "ack" };
  }

  async groups(user: string, page: { limit: number; before?: string }): Promise<GroupsPage> {
    const out = await this.deps.store.conversations(user, { limit: page.limit, before: page.before === undefined ? undefined : parseCursor(page.before) });
    const groups = out.conversations.map((c) => ({
      group: c.group,
      last_seq: c.lastSeq,
      read_seq: c.readSeq,
      unread: c.unread,
      last_message: c.lastMessage && toMessageView(c.lastMessage),
      last_activity: c.lastActivity.toISOString(),
    }));
    const last = out.conversations[out.conversations.length - 1];
    return out.hasMore && last ? { groups, has_more: true, next: cursorOf({ at: last.lastActivity, group: last.group }) } : { groups, has_more: false };
  }

  /** The `groups` frame: the conversation list of the connection's (or the frame's) user. */
  async groupsFrame(s: Session, f: ClientFrame<"groups">): Promise<Outcome> {
    const user = actingUser(s, f.user);
    return { kind: "groups", ...(await this.groups(user, { limit: f.limit, before: f.before })) };
  }

  async members(group: string, page: { limit: number; before?: string }): Promise<{ members: MemberView[]; has_more: boolean }> {
    const out = await this.deps.store.members(group, page);
    return { members: out.members.map((m) => ({ user: m.user, read_seq: m.readSeq, joined_at: m.joinedAt.toISOString() })), has_more: out.hasMore };
  }

  private announce(group: string, user: string, marker: ReadMarker): void {
    if (!marker.moved || marker.readAt === null) return;
    this.deps.broadcast(group, {
      operation: "read",
      group,
      user,
      read_seq: marker.readSeq,
      read_at: marker.readAt.toISOString(),
      unread: marker.unread,
      last_seq: marker.lastSeq,
    });
  }
}

