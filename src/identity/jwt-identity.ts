// JWT mode: every WebSocket upgrade and HTTP request carries a token, verified with jose, and the
// token's `sub` is the user. Keys: an HS256 secret, and/or one asymmetric source (a PEM public
// key, or a JWKS URL for rotation). A token names its algorithm; only the algorithms of the
// configured keys are accepted, so an HS256 token can never be checked against a public key.
//
// Refusals: no token, a malformed, expired, not-yet-valid or badly signed one, a wrong issuer or
// audience, or no usable `sub` -> 401; a `groups` claim that does not list the group -> 403; the
// JWKS cannot be fetched -> 503 (our fault, not the client's). Tokens are never logged.
import { createPublicKey, type KeyObject } from "node:crypto";
import { createRemoteJWKSet, errors, jwtVerify, type JWSHeaderParameters, type JWTPayload } from "jose";
import * as v from "valibot";
import { UserId } from "../protocol/index.ts";
import type { Credentials, IdentityProvider, IdentityResult } from "./identity.ts";

export interface JwtOptions {
  /** HS256 shared secret (its UTF-8 bytes are the key). */
  secret?: string;
  /** PEM public key (RSA, EC or Ed25519). */
  publicKeyPem?: string;
  /** JWKS document URL; keys are cached and refetched for an unknown `kid`. */
  jwksUrl?: string;
  issuer?: string;
  /** Accepted audiences: the token's `aud` must contain one of them. */
  audience?: string[];
  clockToleranceS: number;
  /** Told about every refusal (for metrics). */
  onRefused?: (status: 401 | 403 | 503) => void;
}

/** Longer than any sane token: refused before any parsing. */
const MAX_TOKEN_CHARS = 8192;
const ASYMMETRIC = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"];

type KeySource = (header: JWSHeaderParameters) => Promise<KeyObject | CryptoKey | Uint8Array>;

/** The signature algorithms a PEM public key can verify. */
export function algorithmsFor(key: KeyObject): string[] {
  switch (key.asymmetricKeyType) {
    case "rsa":
      return ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"];
    case "ec": {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      const alg = { prime256v1: "ES256", secp384r1: "ES384", secp521r1: "ES512" }[curve ?? ""];
      if (!alg) throw new Error(`unsupported EC curve ${curve}`);
      return [alg];
    }
    case "ed25519":
      return ["EdDSA", "Ed25519"];
    default:
      throw new Error(`unsupported public key type ${key.asymmetricKeyType}`);
  }
}

/** The JWKS could not be read: the request is refused with 503, not blamed on the token. */
class KeysUnavailable extends Error {}

/** The token of a request: the Bearer header wins over `?token=`; undefined for a malformed header. */
export function tokenOf(c: Credentials): string | null | undefined {
  if (c.authorization !== "") {
    const m = /^Bearer +([A-Za-z0-9._~+/=-]+) *$/i.exec(c.authorization);
    return m ? m[1]! : undefined;
  }
  return c.query.get("token");
}

export class JwtIdentity implements IdentityProvider {
  private readonly algorithms: string[] = [];
  private readonly secret: Uint8Array | null = null;
  private readonly asymmetric: KeySource | null = null;

  constructor(private readonly opts: JwtOptions) {
    if (opts.secret !== undefined) {
      this.secret = new TextEncoder().encode(opts.secret);
      this.algorithms.push("HS256");
    }
    if (opts.publicKeyPem !== undefined) {
      const key = createPublicKey(opts.publicKeyPem);
      this.algorithms.push(...algorithmsFor(key));
      this.asymmetric = async () => key;
    } else if (opts.jwksUrl !== undefined) {
      const jwks = createRemoteJWKSet(new URL(opts.jwksUrl), { timeoutDuration: 5_000 });
      this.algorithms.push(...ASYMMETRIC);
      this.asymmetric = async (header) => {
        try {
          return await jwks(header);
        } catch (err) {
          // No key for this kid/alg is the token's problem; a JWKS we cannot fetch or read is ours.
          if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) throw err;
          throw new KeysUnavailable((err as Error).message);
        }
      };
    }
    if (this.algorithms.length === 0) throw new Error("JwtIdentity needs a secret, a public key or a JWKS URL");
  }

  /** What the node accepts, for the start-up log. */
  describe(): object {
    return { identity: "jwt", algorithms: this.algorithms, issuer: this.opts.issuer ?? null, audience: this.opts.audience ?? null, jwks: this.opts.jwksUrl ?? null };
  }

  async identify(c: Credentials): Promise<IdentityResult> {
    const token = tokenOf(c);
    if (token === undefined) return this.refuse(401, "the Authorization header must be Bearer <token>");
    if (token === null || token === "") return this.refuse(401, "a token is required: Authorization: Bearer <token>, or ?token=");
    if (token.length > MAX_TOKEN_CHARS) return this.refuse(401, "token is too long");
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, (header) => this.keyFor(header), {
        algorithms: this.algorithms,
        issuer: this.opts.issuer,
        audience: this.opts.audience,
        clockTolerance: this.opts.clockToleranceS,
      }));
    } catch (err) {
      if (err instanceof KeysUnavailable) return this.refuse(503, "cannot fetch the keys to check the token; retry");
      return this.refuse(401, reason(err));
    }
    if (payload.sub === undefined) return this.refuse(401, "token has no sub");
    const sub = v.safeParse(UserId, payload.sub);
    if (!sub.success) return this.refuse(401, "token sub is not a valid user id");
    if (c.group !== undefined && payload.groups !== undefined && !allows(payload.groups, c.group)) {
      return this.refuse(403, `token does not allow group ${c.group}`);
    }
    const groups = payload.groups === undefined ? null : Array.isArray(payload.groups) ? payload.groups.filter((g): g is string => typeof g === "string") : [];
    // An open socket is closed when its token expires (with the same tolerance as the check above).
    const expiresAt = payload.exp === undefined ? null : (payload.exp + this.opts.clockToleranceS) * 1000;
    return { ok: true, user: sub.output, groups, expiresAt };
  }

  private async keyFor(header: JWSHeaderParameters): Promise<KeyObject | CryptoKey | Uint8Array> {
    if (header.alg === "HS256") {
      if (this.secret) return this.secret;
    } else if (this.asymmetric) {
      return this.asymmetric(header);
    }
    throw new errors.JOSEAlgNotAllowed(`"alg" (Algorithm) Header Parameter value not allowed`);
  }

  private refuse(status: 401 | 403 | 503, message: string): IdentityResult {
    this.opts.onRefused?.(status);
    return { ok: false, status, message };
  }
}

const allows = (groups: unknown, group: string): boolean => Array.isArray(groups) && groups.includes(group);

/** Why a token failed, in words safe to tell the client. */
function reason(err: unknown): string {
  if (err instanceof errors.JWTExpired) return "token has expired";
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === "nbf") return "token is not valid yet";
    return `token ${err.claim} is not accepted`;
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return "token signature is invalid";
  if (err instanceof errors.JOSEAlgNotAllowed) return "token algorithm is not accepted";
  if (err instanceof errors.JWKSNoMatchingKey) return "token key id is unknown";
  return "token is malformed";
}
