import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { z } from 'zod';

/**
 * Configuration, validated once at start. Environment variable names and defaults follow
 * CONTRACT.md §1; the ones below the line are ours. Options passed to createRealtimeServer
 * override the environment.
 */

const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .trim()
    .regex(/^-?\d+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

/**
 * The variables whose values are secret. An error about one names the variable and the rule it
 * broke, never the value; `redactSecrets` scrubs their values from any other text.
 */
export const SECRET_VARIABLES = ['AUTH_SECRET', 'METRICS_TOKEN', 'REDIS_URL'] as const;
const secretVariables: ReadonlySet<string> = new Set(SECRET_VARIABLES);

/**
 * The rule texts of the secret variables' checks: the only words a ConfigError about one of them
 * may carry. A message zod builds itself (which may quote what it received) is never printed for
 * them; a check added without `secretRule` reads "is invalid".
 */
const secretRules = new Set<string>();
const secretRule = (text: string): string => {
  secretRules.add(text);
  return text;
};

const bool = z
  .enum(['true', 'false', '1', '0'], { message: 'must be true or false' })
  .transform((v) => v === 'true' || v === '1');

export const envSchema = z.object({
  NODE_ENV: z.string().default('development'),
  PORT: int(0, 65535).default(3000),
  HOST: z.string().min(1).default('0.0.0.0'),
  AUTH_SECRET: z.string().min(32, secretRule('must be at least 32 characters')).optional(),
  ACK_TIMEOUT_MS: int(1, 3_600_000).default(5000),
  ACK_RETRY_MS: int(0, 3_600_000).default(1000),
  TYPING_TIMEOUT_MS: int(1, 3_600_000).default(5000),
  PRESENCE_GRACE_MS: int(0, 3_600_000).default(3000),
  HISTORY_SIZE: int(0, 1_000_000).default(256),
  HISTORY_TTL_MS: int(1, 86_400_000).default(300_000),
  MAX_MESSAGE_BYTES: int(1, 16 * 1024 * 1024).default(16_384),
  MAX_BUFFERED_BYTES: int(1024).default(4_194_304),
  REDIS_URL: z.string().url({ protocol: /^rediss?$/, message: secretRule('must be a redis:// or rediss:// URL') }).optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  // ---- ours ----
  /** Presence changes after a leading single event are coalesced into one `presence_diff` per window this long; 0 = off. */
  PRESENCE_BATCH_MS: int(0, 60_000).default(50),
  /** Per-user message rate (token bucket refill per second) and burst. */
  MESSAGE_RATE_PER_SEC: int(1).default(50),
  MESSAGE_RATE_BURST: int(1).default(100),
  /** Per-user typing.set calls per second (burst is twice this). */
  TYPING_RATE_PER_SEC: int(1).default(10),
  /** Largest inbound WebSocket frame (a whole batch of calls); default 1 MiB, more for large bodies. */
  MAX_FRAME_BYTES: int(1024).optional(),
  /** Per-user `conversation.events` starts per second (token bucket refill) and burst. */
  SUBSCRIBE_RATE_PER_SEC: int(1).default(20),
  SUBSCRIBE_RATE_BURST: int(1).default(200),
  /**
   * Per-user tokens a second (and burst) for the read procedures — history, presence, mine,
   * deliveryStatus — a read costing tokens by its size (service/read-rates.ts).
   */
  READ_RATE_PER_SEC: int(1).default(100),
  READ_RATE_BURST: int(1).default(1000),
  /**
   * What empty rooms leave behind, node-wide: histories of rooms without members (count and
   * bytes), and idempotency keys and finished delivery reports (count each). Oldest evicted first.
   */
  MAX_RETAINED_ROOMS: int(1).default(10_000),
  MAX_RETAINED_HISTORY_BYTES: int(1024).default(64 * 1024 * 1024),
  MAX_RETAINED_RECORDS: int(1).default(100_000),
  /** Most calls in one HTTP batch request / one WebSocket frame; larger batches are refused whole. */
  MAX_HTTP_BATCH: int(1, 10_000).default(50),
  MAX_WS_BATCH: int(1, 100_000).default(5_000),
  /** Production: most seconds a token's `exp` may lie ahead (tokens without `exp` refused) unless ALLOW_LONG_LIVED_TOKENS. */
  TOKEN_MAX_LIFETIME_SEC: int(60).default(86_400),
  ALLOW_LONG_LIVED_TOKENS: bool.optional(),
  /** HTTP server: headers and whole-request timeouts, keep-alive idle timeout, and the cap on open TCP connections (WebSockets included). */
  HTTP_HEADERS_TIMEOUT_MS: int(1000, 600_000).default(10_000),
  HTTP_REQUEST_TIMEOUT_MS: int(1000, 3_600_000).default(30_000),
  HTTP_KEEPALIVE_TIMEOUT_MS: int(100, 600_000).default(5_000),
  MAX_CONNECTIONS: int(1).default(20_000),
  /** Production: serve /metrics without METRICS_TOKEN (it is off in production without one of them). */
  METRICS_PUBLIC: bool.optional(),
  /** Per-node limits: open connections per user, rooms per connection, subscriptions per connection. */
  MAX_CONNECTIONS_PER_USER: int(1).default(20),
  MAX_ROOMS_PER_CONNECTION: int(1).default(100),
  MAX_SUBSCRIPTIONS_PER_CONNECTION: int(1).default(200),
  /** Most acknowledged messages one sender may have waiting at once. */
  MAX_PENDING_ACKS_PER_SENDER: int(1).default(1000),
  /** After its token expires, how long a connection has to reconnect with a fresh one before it is closed with 4001. */
  TOKEN_REFRESH_GRACE_MS: int(0, 3_600_000).default(10_000),
  /** A `?connectionParams=1` socket that sends none within this is refused (UNAUTHORIZED). */
  AUTH_TIMEOUT_MS: int(100, 3_600_000).default(5_000),
  /** Sockets not yet authenticated (waiting for or checking connectionParams) one node keeps; beyond, upgrades get 503. */
  MAX_UNAUTHENTICATED_SOCKETS: int(1).default(1_000),
  /** A refused connection answers every call with its error for this long, then is closed. */
  AUTH_REJECT_LINGER_MS: int(0, 60_000).default(5000),
  /** Server PING interval for tRPC keep-alive (text PING/PONG frames). */
  KEEPALIVE_PING_MS: int(1000).default(30_000),
  /**
   * SSE streams (`conversation.events` over httpSubscriptionLink): a ping this often (proxies
   * close silent streams; the client reconnects after 3 missed), the reconnect delay a client's
   * EventSource uses, and the longest a stream stays open before it is ended for a resume
   * (re-authenticated, rebalanced; 0 = no limit).
   */
  SSE_PING_MS: int(1000, 600_000).default(15_000),
  SSE_RETRY_MS: int(100, 60_000).default(1000),
  SSE_MAX_DURATION_MS: int(0).default(1_800_000),
  /** The drain's budget: close() reports pending acks, tells clients to move and waits up to this long for them to go; then it closes what is left (allow ~1–3 s more in all). */
  SHUTDOWN_DRAIN_MS: int(0).default(5000),
  /** Admin plane: GraphiQL and introspection (default: on outside production, off in it). */
  GRAPHIQL: bool.optional(),
  GRAPHQL_INTROSPECTION: bool.optional(),
  /** The web chat page at /chat (default: on outside production, off in it). */
  WEB_CHAT: bool.optional(),
  /** Admin plane: largest request body, and the origins allowed by CORS (comma-separated; none by default). */
  ADMIN_MAX_BODY_BYTES: int(1024, 16 * 1024 * 1024).default(102_400),
  ADMIN_CORS_ORIGINS: z.string().optional(),
  /**
   * Browser origins allowed to open the WebSocket (comma-separated). Unset: any origin, since
   * the token travels in connectionParams, not in a cookie a foreign page could ride on.
   */
  WS_ALLOWED_ORIGINS: z.string().optional(),
  /**
   * Browser origins allowed to call /trpc over HTTP and SSE from another origin (CORS;
   * comma-separated exact origins such as https://app.example.com; none by default).
   */
  TRPC_CORS_ORIGINS: z
    .string()
    .optional()
    .refine((list) => originList(list).every(isOrigin), 'must be comma-separated origins such as https://app.example.com (scheme, host and port only)'),
  /** When set, GET /metrics needs `Authorization: Bearer <METRICS_TOKEN>`. */
  METRICS_TOKEN: z.string().min(16, secretRule('must be at least 16 characters')).optional(),
  /**
   * REDIS_URL is a seed node of a Redis Cluster (7+): the other masters are discovered from it,
   * its user, password and TLS (rediss://) apply to every node. Default false: one Redis.
   */
  REDIS_CLUSTER: bool.optional(),
  /** Cluster mode (REDIS_URL set): key and channel prefix, so several services can share one Redis. */
  REDIS_KEY_PREFIX: z.string().regex(/^[A-Za-z0-9:_.-]{1,64}$/, 'must be 1–64 of A-Z a-z 0-9 : _ . -').default('rt:'),
  /** Cluster mode: how often a node refreshes its heartbeat, and after how long without one it counts as dead. */
  CLUSTER_HEARTBEAT_MS: int(50, 60_000).default(1000),
  CLUSTER_NODE_TTL_MS: int(150, 600_000).default(5000),
  /** The address other operators see for this node in `nodes` (default host:port it listens on). */
  NODE_ADDRESS: z.string().min(1).optional(),
  /** This process's identity in `nodes` and in cluster state (default host name + random suffix). */
  NODE_ID: z.string().min(1).optional(),
});

export interface Config {
  nodeEnv: string;
  production: boolean;
  port: number;
  host: string;
  /** HS256 key; generated when absent outside production (`generatedSecret` then true). */
  authSecret: string;
  generatedSecret: boolean;
  ackTimeoutMs: number;
  ackRetryMs: number;
  typingTimeoutMs: number;
  presenceGraceMs: number;
  presenceBatchMs: number;
  historySize: number;
  historyTtlMs: number;
  maxMessageBytes: number;
  maxBufferedBytes: number;
  maxFrameBytes: number;
  redisUrl: string | undefined;
  /** REDIS_CLUSTER: `redisUrl` is a seed node of a Redis Cluster rather than the one Redis. */
  redisCluster: boolean;
  logLevel: z.infer<typeof envSchema>['LOG_LEVEL'];
  messageRatePerSec: number;
  messageRateBurst: number;
  typingRatePerSec: number;
  maxPendingAcksPerSender: number;
  maxConnectionsPerUser: number;
  maxRoomsPerConnection: number;
  maxSubscriptionsPerConnection: number;
  keepAlivePingMs: number;
  ssePingMs: number;
  sseRetryMs: number;
  sseMaxDurationMs: number;
  tokenRefreshGraceMs: number;
  authTimeoutMs: number;
  rejectLingerMs: number;
  maxUnauthenticatedSockets: number;
  subscribeRatePerSec: number;
  subscribeRateBurst: number;
  readRatePerSec: number;
  readRateBurst: number;
  maxRetainedRooms: number;
  maxRetainedHistoryBytes: number;
  maxRetainedRecords: number;
  maxHttpBatch: number;
  maxWsBatch: number;
  /** Seconds; enforced when `production` and not `allowLongLivedTokens`. */
  tokenMaxLifetimeSec: number;
  allowLongLivedTokens: boolean;
  httpHeadersTimeoutMs: number;
  httpRequestTimeoutMs: number;
  httpKeepAliveTimeoutMs: number;
  maxConnections: number;
  /** /metrics answers without a token (always true outside production unless METRICS_TOKEN is set). */
  metricsPublic: boolean;
  shutdownDrainMs: number;
  graphiql: boolean;
  introspection: boolean;
  /** Serve the web chat at /chat (WEB_CHAT; default true outside production, false in it). */
  webChat: boolean;
  adminMaxBodyBytes: number;
  adminCorsOrigins: string[];
  wsAllowedOrigins: string[];
  /** TRPC_CORS_ORIGINS: origins whose pages may call /trpc over HTTP and SSE. */
  trpcCorsOrigins: string[];
  metricsToken: string | undefined;
  redisKeyPrefix: string;
  clusterHeartbeatMs: number;
  clusterNodeTtlMs: number;
  nodeAddress: string | undefined;
  /** NODE_ID: this process's identity in `nodes` and in cluster state; a restart under the same id cleans up after its predecessor. */
  nodeId: string;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/**
 * Reads and validates the environment; throws ConfigError with one line naming the variable (and,
 * unless it is one of SECRET_VARIABLES, the value).
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Config> = {}): Config {
  const relevant: Record<string, string> = {};
  for (const key of Object.keys(envSchema.shape)) {
    const value = env[key];
    if (value !== undefined && value !== '') relevant[key] = value;
  }
  const parsed = envSchema.safeParse(relevant);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const name = String(issue.path[0] ?? 'environment');
    if (secretVariables.has(name)) {
      const rule = secretRules.has(issue.message) ? issue.message : 'is invalid';
      throw new ConfigError(`Invalid configuration: ${name} ${rule} (value not shown)`);
    }
    throw new ConfigError(`Invalid configuration: ${name}=${JSON.stringify(relevant[name] ?? '')} ${issue.message}`);
  }
  const e = parsed.data;
  const production = e.NODE_ENV === 'production';
  const secret = overrides.authSecret ?? e.AUTH_SECRET;
  if (!secret && production) {
    throw new ConfigError('Invalid configuration: AUTH_SECRET is required when NODE_ENV=production');
  }
  if (e.CLUSTER_NODE_TTL_MS < e.CLUSTER_HEARTBEAT_MS * 3) {
    throw new ConfigError(`Invalid configuration: CLUSTER_NODE_TTL_MS=${e.CLUSTER_NODE_TTL_MS} must be at least 3 × CLUSTER_HEARTBEAT_MS (${e.CLUSTER_HEARTBEAT_MS * 3})`);
  }
  if (e.REDIS_CLUSTER && !e.REDIS_URL) {
    throw new ConfigError('Invalid configuration: REDIS_CLUSTER=true needs REDIS_URL (a seed node of the Redis Cluster)');
  }
  if (e.REDIS_CLUSTER && e.REDIS_URL && !/^\/?0?$/.test(new URL(e.REDIS_URL).pathname)) {
    // Redis Cluster has database 0 only; a URL that names another would silently use 0.
    throw new ConfigError('Invalid configuration: REDIS_URL must not select a database other than 0 when REDIS_CLUSTER=true (value not shown)');
  }
  const maxMessageBytes = overrides.maxMessageBytes ?? e.MAX_MESSAGE_BYTES;
  const config: Config = {
    nodeEnv: e.NODE_ENV,
    production,
    port: e.PORT,
    host: e.HOST,
    authSecret: secret ?? randomSecret(),
    generatedSecret: !secret,
    ackTimeoutMs: e.ACK_TIMEOUT_MS,
    ackRetryMs: e.ACK_RETRY_MS,
    typingTimeoutMs: e.TYPING_TIMEOUT_MS,
    presenceGraceMs: e.PRESENCE_GRACE_MS,
    presenceBatchMs: e.PRESENCE_BATCH_MS,
    historySize: e.HISTORY_SIZE,
    historyTtlMs: e.HISTORY_TTL_MS,
    maxMessageBytes,
    maxBufferedBytes: e.MAX_BUFFERED_BYTES,
    // JSON may escape a control character as six bytes; leave room for that plus the envelope.
    // A stock client batches a tick's calls into one frame: room for bursts (20 × 8 KB sends, a
    // catch-up's acks), and for a maximal body after JSON escaping.
    maxFrameBytes: e.MAX_FRAME_BYTES ?? Math.max(1024 * 1024, maxMessageBytes * 6 + 16 * 1024),
    redisUrl: e.REDIS_URL,
    redisCluster: e.REDIS_CLUSTER ?? false,
    logLevel: e.LOG_LEVEL,
    messageRatePerSec: e.MESSAGE_RATE_PER_SEC,
    messageRateBurst: e.MESSAGE_RATE_BURST,
    typingRatePerSec: e.TYPING_RATE_PER_SEC,
    maxPendingAcksPerSender: e.MAX_PENDING_ACKS_PER_SENDER,
    maxConnectionsPerUser: e.MAX_CONNECTIONS_PER_USER,
    maxRoomsPerConnection: e.MAX_ROOMS_PER_CONNECTION,
    maxSubscriptionsPerConnection: e.MAX_SUBSCRIPTIONS_PER_CONNECTION,
    keepAlivePingMs: e.KEEPALIVE_PING_MS,
    ssePingMs: e.SSE_PING_MS,
    sseRetryMs: e.SSE_RETRY_MS,
    sseMaxDurationMs: e.SSE_MAX_DURATION_MS,
    tokenRefreshGraceMs: e.TOKEN_REFRESH_GRACE_MS,
    authTimeoutMs: e.AUTH_TIMEOUT_MS,
    rejectLingerMs: e.AUTH_REJECT_LINGER_MS,
    maxUnauthenticatedSockets: e.MAX_UNAUTHENTICATED_SOCKETS,
    subscribeRatePerSec: e.SUBSCRIBE_RATE_PER_SEC,
    subscribeRateBurst: e.SUBSCRIBE_RATE_BURST,
    readRatePerSec: e.READ_RATE_PER_SEC,
    readRateBurst: e.READ_RATE_BURST,
    maxRetainedRooms: e.MAX_RETAINED_ROOMS,
    maxRetainedHistoryBytes: e.MAX_RETAINED_HISTORY_BYTES,
    maxRetainedRecords: e.MAX_RETAINED_RECORDS,
    maxHttpBatch: e.MAX_HTTP_BATCH,
    maxWsBatch: e.MAX_WS_BATCH,
    tokenMaxLifetimeSec: e.TOKEN_MAX_LIFETIME_SEC,
    allowLongLivedTokens: e.ALLOW_LONG_LIVED_TOKENS ?? !production,
    httpHeadersTimeoutMs: e.HTTP_HEADERS_TIMEOUT_MS,
    httpRequestTimeoutMs: e.HTTP_REQUEST_TIMEOUT_MS,
    httpKeepAliveTimeoutMs: e.HTTP_KEEPALIVE_TIMEOUT_MS,
    maxConnections: e.MAX_CONNECTIONS,
    metricsPublic: e.METRICS_PUBLIC ?? !production,
    shutdownDrainMs: e.SHUTDOWN_DRAIN_MS,
    graphiql: e.GRAPHIQL ?? !production,
    introspection: e.GRAPHQL_INTROSPECTION ?? !production,
    webChat: e.WEB_CHAT ?? !production,
    adminMaxBodyBytes: e.ADMIN_MAX_BODY_BYTES,
    adminCorsOrigins: (e.ADMIN_CORS_ORIGINS ?? '').split(',').map((o) => o.trim()).filter(Boolean),
    wsAllowedOrigins: (e.WS_ALLOWED_ORIGINS ?? '').split(',').map((o) => o.trim()).filter(Boolean),
    trpcCorsOrigins: originList(e.TRPC_CORS_ORIGINS),
    metricsToken: e.METRICS_TOKEN,
    redisKeyPrefix: e.REDIS_KEY_PREFIX,
    clusterHeartbeatMs: e.CLUSTER_HEARTBEAT_MS,
    clusterNodeTtlMs: e.CLUSTER_NODE_TTL_MS,
    nodeAddress: e.NODE_ADDRESS,
    nodeId: e.NODE_ID ?? `${hostname()}-${randomUUID().slice(0, 8)}`,
  };
  const result = { ...config, ...withoutUndefined(overrides), generatedSecret: config.generatedSecret };
  // Node refuses to create an HTTP server whose headers may take longer than the whole request.
  if (result.httpHeadersTimeoutMs > result.httpRequestTimeoutMs) {
    throw new ConfigError(`Invalid configuration: HTTP_HEADERS_TIMEOUT_MS=${result.httpHeadersTimeoutMs} must not exceed HTTP_REQUEST_TIMEOUT_MS (${result.httpRequestTimeoutMs})`);
  }
  return result;
}

function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function randomSecret(): string {
  const bytes = new Uint8Array(32);
  crypto.getRandomValues(bytes);
  return Buffer.from(bytes).toString('base64url');
}

/**
 * `url` with its password masked (`redis://:***@host:6379`), or its user name when there is no
 * password (`redis://secret@host` is read as a password by some tools); `[redacted]` when it does
 * not parse.
 */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url.trim());
    if (parsed.password) parsed.password = '***';
    else if (parsed.username) parsed.username = '***';
    return parsed.href;
  } catch {
    return '[redacted]';
  }
}

/**
 * `text` with the values of the SECRET_VARIABLES set in `env` masked: REDIS_URL as `redactUrl`
 * shows it, then what `redactUrl` masks in it and every other secret (raw and URL-decoded) as
 * `***`. For text that did not come from us, such as an unexpected error at start-up.
 */
export function redactSecrets(text: string, env: NodeJS.ProcessEnv = process.env): string {
  const masks: Array<[string, string]> = [];
  const url = env.REDIS_URL;
  if (url) {
    masks.push([url, redactUrl(url)], [url.trim(), redactUrl(url)]);
    try {
      const { username, password } = new URL(url.trim());
      const secret = password || username;
      masks.push([secret, '***'], [safeDecode(secret), '***']);
    } catch {
      // Unparseable: the whole value is all there is to mask.
    }
  }
  for (const name of SECRET_VARIABLES) {
    const value = env[name];
    if (value && name !== 'REDIS_URL') masks.push([value, '***'], [value.trim(), '***']);
  }
  let result = text;
  // Longest first, so a whole URL is shown redacted before its password alone is masked.
  for (const [value, shown] of masks.sort(([a], [b]) => b.length - a.length)) if (value) result = result.split(value).join(shown);
  return result;
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

function originList(list: string | undefined): string[] {
  return (list ?? '').split(',').map((o) => o.trim()).filter(Boolean);
}

/** An origin as a browser sends it: http(s), a host, maybe a port — no path, no trailing slash. */
function isOrigin(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.origin === text;
  } catch {
    return false;
  }
}
