// The chatroom client SDK, for browsers and Node. Types come from the server's own protocol
// schemas (src/protocol), re-exported here so an application imports everything from one place.
export { ChatClient, connectChat } from "./chat-client.ts";
export type { Answer, ChatClientEvents, ChatClientOptions, ConnectionState, StateChange } from "./chat-client.ts";
export { ChatConnection, type ChatConnectionEvents, type ChatConnectionOptions, type ConnectionChange, type MuxState } from "./connection.ts";
export { GroupView, type GroupViewEvents, type GroupViewState, type HistoryPage, type MessageType, type RequestInput } from "./group-view.ts";
export { CLOSE_REBALANCE, CLOSE_TOKEN_EXPIRED, muxUrl, socketUrl, type WebSocketConstructor, type WebSocketLike } from "./socket.ts";
export type { RestoredOperation } from "./outbox.ts";
export { ChatRequestError, type ClientErrorCode } from "./errors.ts";
export { ReadMarkers } from "./read-markers.ts";
export { attachmentPath, fileFromBlob, type NamedFile } from "./files.ts";
export type { BackoffOptions } from "./backoff.ts";
export type { OutboxStorage } from "./saved-outbox.ts";
export type { PresenceState } from "./presence.ts";
export type { TypingOptions } from "./typing.ts";
export type {
  AckEvent,
  ConversationView,
  DeleteEvent,
  ErrorCode,
  ErrorEvent,
  FileInput,
  GroupEvent,
  GroupsEvent,
  HistoryEvent,
  MessageEvent,
  MessageView,
  Operation,
  SeenEvent,
  TypingEvent,
} from "../protocol/index.ts";
