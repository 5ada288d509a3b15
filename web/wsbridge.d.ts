// Type declarations of wsbridge.js, the browser client of wsbridge's JSON protocol
// (docs/PROTOCOL.md).

/** The part of the WebSocket interface the client uses; `globalThis.WebSocket` by default. */
export interface WebSocketLike {
  readonly readyState: number;
  binaryType: string;
  // `any` events keep the DOM's WebSocket (MessageEvent, CloseEvent) assignable.
  onopen: ((event: any) => void) | null;
  onmessage: ((event: any) => void) | null;
  onclose: ((event: any) => void) | null;
  onerror: ((event: any) => void) | null;
  send(data: string | ArrayBuffer | ArrayBufferView | Blob): void;
  close(code?: number, reason?: string): void;
}

/** What carries a connection (docs/FALLBACK.md). */
export type Transport = 'websocket' | 'sse' | 'polling';

/** The part of the EventSource interface the SSE transport uses when an EventSource class is given. */
export interface EventSourceLike {
  onmessage: ((event: any) => void) | null;
  onerror: ((event: any) => void) | null;
  addEventListener(type: string, listener: (event: any) => void): void;
  close(): void;
}

export type EventSourceConstructor = new (url: string, init?: { withCredentials?: boolean }) => EventSourceLike;

/** Where the broken-WebSocket memory is kept; `globalThis.sessionStorage` by default. */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export interface TransportOptions {
  /** WebSocket subprotocols. */
  protocols?: string | string[];
  /**
   * The transports to try, in order, each until it brings wsbridge's welcome. Default
   * ['websocket', 'sse', 'polling']; those this environment lacks (no fetch, no WebSocket) are
   * skipped. ['websocket'] alone is a plain WebSocket as before the fallbacks: no welcome is
   * awaited, and no timeout.
   */
  transports?: Transport[];
  /** One transport only, with nothing to fall back to (tests). */
  forceTransport?: Transport;
  /** How long each attempt may take to bring the welcome, in ms. Default 5000. */
  transportTimeout?: number;
  /**
   * How long an upstream POST of a fallback may go unanswered, in ms; then it fails and is sent
   * again as it was (the bridge applies it once), up to 3 times, then the session closes (1006).
   * Default: the welcome's `poll_timeout` plus `transportTimeout` (30000 with the bridge's
   * defaults). The bridge holds a POST's answer while the route has paused the session's reading.
   */
  postTimeout?: number;
  /**
   * While a fallback carries the session, a WebSocket is tried this often (ms; 0: never), and the
   * server moves the session onto it once it works (docs/FALLBACK.md). Default 30000.
   */
  fallbackProbeInterval?: number;
  /**
   * How long a WebSocket that failed where a fallback worked is skipped (sessionStorage), in ms;
   * also SSE, when its streams brought nothing after their welcome and long-polling took over.
   * Default 600000.
   */
  brokenWebSocketMemoryMs?: number;
  /** The WebSocket class. Default `globalThis.WebSocket`; null: none. */
  WebSocket?: WebSocketConstructor | null;
  /**
   * An EventSource class to read the SSE stream with. Default: none, the stream is read over
   * `fetch`, which sees the bridge's heartbeat comments (an EventSource hides them): a stream that
   * brings nothing for two heartbeats plus `transportTimeout` is resumed as a lost one. With an
   * EventSource given a stream that goes silent without ending is not noticed. null: no SSE.
   */
  EventSource?: EventSourceConstructor | null;
  /** fetch (the SSE stream, polling and the upstream POSTs). Default `globalThis.fetch`; null: none. */
  fetch?: typeof fetch | null;
  /** Default `globalThis.sessionStorage`; null: remember nothing. */
  sessionStorage?: StorageLike | null;
}

/** The welcome wsbridge sends first on every session (docs/FALLBACK.md). */
export interface Welcome {
  type: 'welcome';
  session: string;
  conn: number;
  transport: Transport;
  last: number;
  heartbeat?: number;
  poll_timeout?: number;
}

/**
 * One wsbridge session on the first transport that works, with a WebSocket's interface: what
 * WsbridgeClient uses underneath, and usable alone on any route (echo, MQTT pass-through...).
 * Text arrives as strings, binary as an ArrayBuffer or a Blob (binaryType), on every transport.
 * On a fallback it tries a WebSocket every `fallbackProbeInterval` and moves the session onto it
 * once one works: the same session, nothing lost or repeated either way (`ontransport`).
 * What a handler throws is reported as a browser reports an exception from an event listener
 * (`reportError`) and the socket goes on; an `onmessage` that throws on a fallback is reported
 * through `onerror` instead.
 */
export class WsbridgeSocket implements WebSocketLike {
  constructor(url: string | URL, options?: TransportOptions & { welcome?: boolean });
  readonly url: string;
  /** 0 connecting, 1 open, 2 closing, 3 closed. */
  readonly readyState: number;
  binaryType: string;
  /** Bytes queued for sending. */
  readonly bufferedAmount: number;
  /** null until open. */
  readonly transport: Transport | null;
  /** The welcome that opened it (null for a plain WebSocket). */
  readonly session: Welcome | null;
  onopen: ((event: any) => void) | null;
  onmessage: ((event: { data: string | ArrayBuffer | Blob }) => void) | null;
  onclose: ((event: { code: number; reason: string; wasClean: boolean }) => void) | null;
  onerror: ((event: any) => void) | null;
  /** A fallback session's resume buffer no longer had messages `from` to `to`. */
  onlost: ((info: { from: number; to: number }) => void) | null;
  /**
   * The session moved to another transport (`transport` is the new one): from a fallback to a
   * WebSocket, or from SSE to long-polling when streams brought nothing after their welcome.
   */
  ontransport: ((info: { type: 'transport'; transport: Transport; previous: Transport | null }) => void) | null;
  send(data: string | ArrayBuffer | ArrayBufferView | Blob): void;
  /**
   * On a fallback the bridge is told with a close record (a keepalive POST); the close event
   * follows at once. Every timer and request of the session (a retry's backoff, a poll, a POST)
   * ends with it: nothing else is sent after it, and nothing keeps a page or process busy.
   */
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export interface ReconnectOptions {
  /** Delay before the first reconnect attempt. Default 500. */
  initialDelayMs?: number;
  /** Upper bound of the delay. Default 15000. */
  maxDelayMs?: number;
  /** Growth of the delay per failed attempt. Default 2. */
  factor?: number;
  /** Random spread of each delay, as a fraction of it (0.3: ±30 %). Default 0.3. */
  jitter?: number;
  /**
   * A connection open this long was a success: the backoff starts over after it. One closed
   * sooner counts as a failed attempt (a bridge or proxy that accepts and drops at once is
   * not retried ever faster). Default 5000.
   */
  stableAfterMs?: number;
}

export interface ConnectOptions extends TransportOptions {
  /** Sent as the `access_token` query parameter (browsers cannot set headers). */
  token?: string;
  reconnect?: ReconnectOptions;
  /** Interval of application-level pings; 0 disables them. Default 15000. */
  pingIntervalMs?: number;
  /** Without any frame this long after a ping, the socket is closed (4000) and reopened. Default 5000. */
  pongTimeoutMs?: number;
  /** Publishes held while disconnected; beyond, publish() rejects with "queue_full". Default 100. */
  maxQueuedPublishes?: number;
  /** Requests without an answer this long reject with "timeout"; 0 disables. Default 10000. */
  requestTimeoutMs?: number;
  /** Source of randomness for the jitter (tests). Default `Math.random`. */
  random?: () => number;
}

export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';
export type UpstreamState = 'up' | 'down' | 'unknown';

/**
 * Error codes: those of the bridge's error frames ("bad_request", "forbidden",
 * "upstream_unavailable", "rate_limited", "internal") and the client's own: "disconnected"
 * (the socket closed before the answer, or not connected), "closed" (close() was called, or the
 * bridge refused with 1008), "queue_full", "timeout", "cancelled" (a subscribe waiting for the
 * reconnect, then unsubscribed), "bad_frame" (an unreadable frame from the bridge).
 */
export type WsbridgeErrorCode =
  | 'bad_request'
  | 'forbidden'
  | 'upstream_unavailable'
  | 'rate_limited'
  | 'internal'
  | 'disconnected'
  | 'closed'
  | 'queue_full'
  | 'timeout'
  | 'cancelled'
  | 'bad_frame'
  | (string & {});

export class WsbridgeError extends Error {
  constructor(code: WsbridgeErrorCode, message?: string, details?: { id?: string; topic?: string });
  readonly name: 'WsbridgeError';
  readonly code: WsbridgeErrorCode;
  /** The id of the request it answers, when it answers one. */
  readonly id?: string;
  /** The topic or filter concerned, when known. */
  readonly topic?: string;
}

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export interface Message {
  topic: string;
  /** The JSON payload, or the string; the same Uint8Array as `payloadBytes` for binary payloads. */
  payload: JsonValue | Uint8Array | undefined;
  /** Set when the bridge sent the payload as base64 (`payload_b64`: not UTF-8). */
  payloadBytes?: Uint8Array;
  qos: 0 | 1 | 2;
  retain: boolean;
}

export type MessageHandler = (message: Message) => void;

export interface SubscribeOptions {
  qos?: 0 | 1 | 2;
}

export interface PublishOptions {
  qos?: 0 | 1 | 2;
  retain?: boolean;
}

export interface RequestOptions {
  headers?: Record<string, string>;
}

export interface RpcResponse {
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

export interface CloseEventInfo {
  code: number;
  reason: string;
  willReconnect: boolean;
}

export type StatusEventInfo = { upstream: UpstreamState } | { dropped: number };

export interface ReconnectingEventInfo {
  /** 1 for the first attempt after a disconnection; reset by a successful open, and by a close with 1012. */
  attempt: number;
  /**
   * The backoff's delay; after a close with 1012 ("service restart": the bridge is draining) the
   * bridge's `retry_ms=N` hint from the close reason (at most 120000), else a random 500 to 5000.
   */
  delayMs: number;
}

export interface TransportEventInfo {
  transport: Transport;
  /** The transport of the connection before, null for the first. */
  previous: Transport | null;
}

export interface WsbridgeEvents {
  /**
   * A connection opened on another transport than the last one (the first included), or the
   * session moved from a fallback to a WebSocket, or from SSE streams that do not work to
   * long-polling (no 'close' or 'open' then: the same session).
   */
  transport: (info: TransportEventInfo) => void;
  open: () => void;
  close: (info: CloseEventInfo) => void;
  status: (info: StatusEventInfo) => void;
  reconnecting: (info: ReconnectingEventInfo) => void;
  error: (error: WsbridgeError | Error) => void;
  message: (message: Message) => void;
}

export class WsbridgeClient {
  /** Starts connecting at once; `connect()` is the usual way in. */
  constructor(url: string | URL, options?: ConnectOptions);

  readonly state: ConnectionState;
  /** 'unknown' until the bridge's first status frame, and while disconnected. */
  readonly upstream: UpstreamState;
  /** The remembered subscription filters. */
  readonly subscriptions: string[];
  /** What carries the connection while open, else null. */
  readonly transport: Transport | null;

  /**
   * Subscribes to an MQTT filter (`+`, `#`). The handler gets every message matching the filter;
   * a message reaches each handler once, however many of its filters match. Remembered and
   * restored after every reconnect. Resolves on the bridge's ack; rejects with a WsbridgeError.
   * Made while disconnected, it settles when the resubscription after the reconnect is answered.
   */
  subscribe(filter: string, handler?: MessageHandler, options?: SubscribeOptions): Promise<void>;

  /** Forgets the filter and its handlers; resolves on the ack (at once when disconnected). */
  unsubscribe(filter: string): Promise<void>;

  /**
   * Publishes. Strings, numbers, booleans, null and objects travel as JSON `payload`;
   * Uint8Array, ArrayBuffer and other ArrayBuffer views as `payload_b64`. Queued while
   * disconnected (up to maxQueuedPublishes, then "queue_full") and sent after the reconnect.
   */
  publish(topic: string, payload?: JsonValue | Uint8Array | ArrayBuffer | ArrayBufferView, options?: PublishOptions): Promise<void>;

  /** An HTTP-style request on an rpc route; rejects with "disconnected" when not connected. */
  request(method: string, path: string, body?: unknown, options?: RequestOptions): Promise<RpcResponse>;

  /** Sends a fresh token (`auth` frame) and keeps it for later reconnects. */
  refreshToken(token: string): Promise<void>;

  /** Closes with 1000 and stops reconnecting, at once (no timer or request of it is left). */
  close(): void;

  on<E extends keyof WsbridgeEvents>(event: E, listener: WsbridgeEvents[E]): this;
  off<E extends keyof WsbridgeEvents>(event: E, listener: WsbridgeEvents[E]): this;
}

/** Creates a client and starts connecting. */
export function connect(url: string | URL, options?: ConnectOptions): WsbridgeClient;

/** Long-poll body: `<first id>\n` then `t|b|c<byte length>:<bytes>` records. Throws when malformed. */
export function parsePollBody(body: Uint8Array | ArrayBuffer): { firstId: number; records: { kind: 't' | 'b' | 'c'; bytes: Uint8Array }[] };
/** Upstream POST body: `<seq>\n` then a `t` (string) or `b` (bytes) record per message. */
export function encodePostBody(seq: number, messages: (string | ArrayBuffer | ArrayBufferView)[]): Uint8Array;
/** One SSE event of a fallback stream, by its type (`message`, `frame`, `control`). */
export function decodeSseEvent(type: string, data: string):
  | { kind: 'text'; text: string }
  | { kind: 'binary'; bytes: Uint8Array }
  | { kind: 'control'; control: { type: string; [key: string]: unknown } };
/** True while the WebSocket to `url` is remembered broken in `storage`. */
export function webSocketRemembered(storage: StorageLike | null, url: URL): boolean;
/** Remembers (ms > 0) or forgets (0) that the WebSocket to `url` is broken. */
export function rememberWebSocketBroken(storage: StorageLike | null, url: URL, ms: number): void;
export const TRANSPORTS: readonly Transport[];

/** MQTT filter matching: `+` one level, `#` the rest, and no wildcard match of `$` topics. */
export function topicMatches(filter: string, topic: string): boolean;
