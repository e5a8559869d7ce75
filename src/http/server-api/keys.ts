// API keys of the server API (SERVER_API_KEYS). Several keys are accepted at once so a key can be
// rotated without downtime: add the new one, move the backends over, remove the old one.
import { createHash, timingSafeEqual } from "node:crypto";

const digest = (s: string) => createHash("sha256").update(s, "utf8").digest();

export class ApiKeys {
  private readonly digests: Buffer[];

  constructor(keys: readonly string[]) {
    this.digests = keys.map(digest);
  }

  /**
   * Whether an `Authorization: Bearer <key>` header names a configured key. Constant time: the
   * candidate is hashed to a fixed length and compared with every key, without stopping early,
   * so neither the key's length nor its matching prefix nor which key matched leaks by timing.
   */
  allows(authorization: string): boolean {
    const m = /^Bearer ([^\s]+)$/.exec(authorization);
    const candidate = digest(m ? m[1]! : "");
    let ok = false;
    for (const d of this.digests) ok = timingSafeEqual(d, candidate) || ok;
    return ok && m !== null;
  }
}
