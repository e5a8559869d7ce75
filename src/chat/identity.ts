// Who is acting for a frame. The connection may fix the user (a token's `sub`, or `?user=` in
// open dev mode); otherwise each frame names its own. This is the one seam identity passes
// through.
import { ChatError } from "../protocol/index.ts";

export interface Session {
  group: string;
  /** The connection's user, or null when each frame must carry `user` (open dev mode). */
  user: string | null;
}

export function actingUser(session: Session, frameUser: string | undefined): string {
  if (session.user !== null) {
    if (frameUser !== undefined && frameUser !== session.user) {
      throw new ChatError("forbidden", "user does not match the connection's user");
    }
    return session.user;
  }
  if (frameUser === undefined) throw new ChatError("bad_request", "user is required");
  return frameUser;
}
