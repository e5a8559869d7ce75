// The chatroom client SDK, for browsers and Node. Types come from the server's own protocol
// schemas (src/protocol), re-exported here so an application imports everything from one place.
export { ChatClient, CLOSE_TOKEN_EXPIRED, connectChat, socketUrl } from "./chat-client.ts";
export type {
  Answer,
  ChatClientEvents,
  ChatClientOptions,
  ConnectionState,
  HistoryPage,
  MessageType,
  RequestInput,
  RestoredOperation,
  StateChange,
  WebSocketConstructor,
  WebSocketLike,
} from "./chat-client.ts";
export { ChatRequestError, type ClientErrorCode } from "./errors.ts";
export { ChatConnection, muxUrl, type ChatConnectionOptions, type MuxState } from "./connection.ts";
export { GroupView, type GroupViewState } from "./group-view.ts";
export { ReadMarkers } from "./read-markers.ts";
export { attachmentPath, fileFromBlob, type NamedFile } from "./files.ts";
export type { BackoffOptions } from "./backoff.ts";
export type { OutboxStorage } from "./saved-outbox.ts";
export type { PresenceState } from "./presence.ts";
export type { TypingOptions } from "./typing.ts";
export type {
  AckEvent,
  DeleteEvent,
  ErrorCode,
  ErrorEvent,
  FileInput,
  GroupEvent,
  HistoryEvent,
  MessageEvent,
  MessageView,
  Operation,
  SeenEvent,
  TypingEvent,
} from "../protocol/index.ts";
