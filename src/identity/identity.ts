// Who is connecting: the one seam identity passes through at the edge (WebSocket upgrade and
// HTTP routes). Open dev mode trusts `?user=`; the JWT provider (jwt-identity.ts) replaces it
// when a key is configured. Every provider answers before anything else happens for the request:
// a refused upgrade never joins its group.
import * as v from "valibot";
import { jwtConfigured, type Config } from "../config/env.ts";
import type { Metrics } from "../metrics/metrics.ts";
import { UserId } from "../protocol/index.ts";
import { JwtIdentity } from "./jwt-identity.ts";

export interface Credentials {
  /** The Authorization header, or "" */
  authorization: string;
  query: URLSearchParams;
  /** The group the request is for; absent to authenticate only (the groups claim is not checked). */
  group?: string;
}

export type IdentityResult =
  /** `groups`: the groups the identity may use (a token's `groups` claim); null or absent allows any. */
  /** `expiresAt`: when the identity stops being valid, in ms since the epoch (a token's `exp` plus the clock tolerance); null or absent: never. */
  | { ok: true; user: string | null; groups?: readonly string[] | null; expiresAt?: number | null }
  | { ok: false; status: 400 | 401 | 403 | 503; message: string };

/** The `error` code of an HTTP error body for a refused identity. */
export const refusalCode = (status: 400 | 401 | 403 | 503): string =>
  ({ 400: "bad_request", 401: "unauthorized", 403: "forbidden", 503: "unavailable" })[status];

export interface IdentityProvider {
  identify(c: Credentials): Promise<IdentityResult>;
}

/** No authentication: the connection's user is `?user=` when given, else each frame's `user`. */
export class OpenIdentity implements IdentityProvider {
  async identify(c: Credentials): Promise<IdentityResult> {
    const user = c.query.get("user");
    if (user === null) return { ok: true, user: null };
    const parsed = v.safeParse(UserId, user);
    return parsed.success ? { ok: true, user: parsed.output } : { ok: false, status: 400, message: parsed.issues[0].message };
  }
}

/** The provider the configuration asks for: JWT when any key is set, else open dev mode. */
export function identityFromConfig(config: Config, metrics: Metrics): { provider: IdentityProvider; jwt: JwtIdentity | null } {
  if (!jwtConfigured(config)) return { provider: new OpenIdentity(), jwt: null };
  const jwt = new JwtIdentity({
    secret: config.JWT_SECRET,
    publicKeyPem: config.JWT_PUBLIC_KEY,
    jwksUrl: config.JWT_JWKS_URL,
    issuer: config.JWT_ISSUER,
    audience: config.JWT_AUDIENCE?.split(",").map((a) => a.trim()).filter((a) => a !== ""),
    clockToleranceS: config.JWT_CLOCK_TOLERANCE_S,
    onRefused: (status) => {
      if (status !== 503) metrics.authFailures.inc({ status: String(status) });
    },
  });
  return { provider: jwt, jwt };
}
