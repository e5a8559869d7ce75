// Read markers of one group's members, kept current from `read` events and the members list
// (GET /api/groups/<group>/members), so "seen by" survives a reload: a message was seen by every
// member other than its author whose marker reached its seq. Markers only move forward here too,
// so events arriving in any order (from several nodes) leave the highest.
import type { MemberView, ReadEvent } from "../protocol/index.ts";

export class ReadMarkers {
  private readonly markers = new Map<string, number>();

  /** Takes a marker; false when it is not news (not higher than the one known). */
  set(user: string, readSeq: number): boolean {
    if ((this.markers.get(user) ?? -1) >= readSeq) return false;
    this.markers.set(user, readSeq);
    return true;
  }

  /** A `read` event of the group. */
  read(e: Pick<ReadEvent, "user" | "read_seq">): boolean {
    return this.set(e.user, e.read_seq);
  }

  /** A page of the members list. */
  load(members: readonly Pick<MemberView, "user" | "read_seq">[]): void {
    for (const m of members) this.set(m.user, m.read_seq);
  }

  /** A member's marker (0 for one not known yet). */
  of(user: string): number {
    return this.markers.get(user) ?? 0;
  }

  /** Who has read a message: members other than its author whose marker reached its seq, sorted. */
  seenBy(message: { seq: number; user: string }): string[] {
    const out: string[] = [];
    for (const [user, seq] of this.markers) if (user !== message.user && seq >= message.seq) out.push(user);
    return out.sort();
  }

  /** Messages (create, reply) by others after `user`'s marker, not deleted. */
  unread(user: string, messages: Iterable<{ seq: number; user: string; deleted: boolean }>): number {
    const marker = this.of(user);
    let n = 0;
    for (const m of messages) if (m.seq > marker && m.user !== user && !m.deleted) n++;
    return n;
  }
}
