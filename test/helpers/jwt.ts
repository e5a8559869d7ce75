// Short-lived HS256 tokens for tests of JWT mode (a node started with JWT_SECRET = TEST_JWT_SECRET).
import { SignJWT } from "jose";

export const TEST_JWT_SECRET = "test-secret-that-is-at-least-32-bytes-long";

/** A token for `sub` that expires in `seconds` (whole seconds, as JWT `exp` is). */
export function signToken(sub: string, seconds: number): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ sub }).setProtectedHeader({ alg: "HS256" }).setIssuedAt(now).setExpirationTime(now + seconds).sign(new TextEncoder().encode(TEST_JWT_SECRET));
}
