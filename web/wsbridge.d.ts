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
  send(data: string): void;
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
}

export interface ConnectOptions {
  /** Sent as the `access_token` query parameter (browsers cannot set headers). */
  token?: string;
  /** WebSocket subprotocols. */
  protocols?: string | string[];
  reconnect?: ReconnectOptions;
  /** Interval of application-level pings; 0 disables them. Default 15000. */
  pingIntervalMs?: number;
  /** Without any frame this long after a ping, the socket is closed (4000) and reopened. Default 5000. */
  pongTimeoutMs?: number;
  /** Publishes held while disconnected; beyond, publish() rejects with "queue_full". Default 100. */
  maxQueuedPublishes?: number;
  /** Requests without an answer this long reject with "timeout"; 0 disables. Default 10000. */
  requestTimeoutMs?: number;
  /** The WebSocket class to use. Default `globalThis.WebSocket`. */
  WebSocket?: WebSocketConstructor;
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
  /** 1 for the first attempt after a disconnection; reset by a successful open. */
  attempt: number;
  delayMs: number;
}

export interface WsbridgeEvents {
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

  /** Closes with 1000 and stops reconnecting. */
  close(): void;

  on<E extends keyof WsbridgeEvents>(event: E, listener: WsbridgeEvents[E]): this;
  off<E extends keyof WsbridgeEvents>(event: E, listener: WsbridgeEvents[E]): this;
}

/** Creates a client and starts connecting. */
export function connect(url: string | URL, options?: ConnectOptions): WsbridgeClient;

/** MQTT filter matching: `+` one level, `#` the rest, and no wildcard match of `$` topics. */
export function topicMatches(filter: string, topic: string): boolean;
