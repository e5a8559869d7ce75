// What the SDK needs of a WebSocket and of the server's addresses: the socket type both the
// browser's and `ws`'s classes fit, the two endpoint URLs built from a base URL, the close codes
// the client acts on, and the subject of a JWT (read, not verified, to tell our own typing
// indicators from others').

/** The part of the WebSocket API the SDK uses: the browser's and `ws`'s both fit. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  onopen: ((ev: any) => void) | null;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  onmessage: ((ev: any) => void) | null;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  onclose: ((ev: any) => void) | null;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  onerror: ((ev: any) => void) | null;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export const OPEN = 1;
/** The server closed the socket because the token expired: ask the token function for a fresh one. */
export const CLOSE_TOKEN_EXPIRED = 4001;
/** The server holds more than its share of the fleet's sockets: reconnect (to another node) and resume. */
export const CLOSE_REBALANCE = 4012;
/** Closes the client makes itself: a seq gap it could not have replayed otherwise, an attempt that took too long. */
export const CLOSE_GAP = 4000;
export const CLOSE_CONNECT_TIMEOUT = 4002;

function wsBase(base: string): URL {
  const url = new URL(base);
  if (url.protocol === "http:") url.protocol = "ws:";
  else if (url.protocol === "https:") url.protocol = "wss:";
  url.hash = "";
  return url;
}

/** `ws(s)://host[/prefix]/ws/chat/<group>/?…` from a base URL of any of the usual shapes. */
export function socketUrl(base: string, group: string, params: URLSearchParams): string {
  const url = wsBase(base);
  url.pathname = `${url.pathname.replace(/\/+$/, "")}/ws/chat/${encodeURIComponent(group)}/`;
  url.search = params.toString();
  return url.toString();
}

/** `ws(s)://host[/prefix]/ws/?…` (the multiplexed endpoint) from a base URL. */
export function muxUrl(base: string, params: URLSearchParams): string {
  const url = wsBase(base);
  url.pathname = `${url.pathname.replace(/\/+$/, "")}/ws/`;
  url.search = params.toString();
  return url.toString();
}

const decoder = new TextDecoder();

/** The `sub` of a JWT, read without verifying it (only to tell our own typing from others'). */
export function jwtSubject(token: string): string | undefined {
  try {
    const part = token.split(".")[1]!.replace(/-/g, "+").replace(/_/g, "/");
    const json = decoder.decode(Uint8Array.from(atob(part + "=".repeat((4 - (part.length % 4)) % 4)), (c) => c.charCodeAt(0)));
    const sub = (JSON.parse(json) as { sub?: unknown }).sub;
    return typeof sub === "string" ? sub : undefined;
  } catch {
    return undefined;
  }
}

/** A frame's text, whatever the socket handed over (string, ArrayBuffer, a view of one). */
export function frameText(data: unknown): string {
  if (typeof data === "string") return data;
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return decoder.decode(data as ArrayBuffer);
  return String(data);
}

export function randomPrefix(): string {
  const bytes = new Uint8Array(9);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(36).padStart(2, "0")).join("");
}
