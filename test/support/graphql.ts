import { createAdminClient, type AdminClient } from '../../clients/admin/index.ts';
import type { TestApp } from './start-test-app.ts';

/** Helpers for the GraphQL admin plane tests: raw requests (to see status, headers, body) and the typed client. */

export interface GraphQLErrorJson {
  message: string;
  path?: Array<string | number>;
  extensions?: { code?: string } & Record<string, unknown>;
}

export interface GqlResponse<TData = Record<string, unknown>> {
  status: number;
  headers: Headers;
  /** The raw body (to assert what it does NOT contain). */
  text: string;
  data: TData | null | undefined;
  errors: GraphQLErrorJson[];
}

export function adminToken(t: TestApp, userId = 'ops'): Promise<string> {
  return t.token(userId, { role: 'admin' });
}

export async function adminClient(t: TestApp): Promise<AdminClient> {
  return createAdminClient({ url: t.baseUrl, token: await adminToken(t) });
}

/**
 * POSTs one GraphQL request to /graphql. `token: null` sends no Authorization header;
 * `authorization` sends that header verbatim.
 */
export async function gql<TData = Record<string, unknown>>(
  t: TestApp,
  query: string,
  options: { variables?: Record<string, unknown>; token?: string | null; authorization?: string; headers?: Record<string, string> } = {},
): Promise<GqlResponse<TData>> {
  const auth = options.authorization ?? (options.token ? `Bearer ${options.token}` : undefined);
  const res = await fetch(`${t.baseUrl}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json', ...(auth !== undefined && { authorization: auth }), ...options.headers },
    body: JSON.stringify({ query, ...(options.variables && { variables: options.variables }) }),
  });
  const text = await res.text();
  let body: { data?: TData | null; errors?: GraphQLErrorJson[] } = {};
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    // not JSON: the caller looks at status and text
  }
  return { status: res.status, headers: res.headers, text, data: body.data, errors: body.errors ?? [] };
}

/** Runs a query as admin and fails on any GraphQL error; returns `data`. */
export async function adminQuery<TData = Record<string, unknown>>(t: TestApp, query: string, variables?: Record<string, unknown>): Promise<TData> {
  const res = await gql<TData>(t, query, { token: await adminToken(t), ...(variables && { variables }) });
  if (res.errors.length > 0 || res.status !== 200 || !res.data) throw new Error(`admin query failed (${res.status}): ${res.text}`);
  return res.data;
}

export interface SseEvent {
  event: string;
  data: unknown;
}

/**
 * Reads a text/event-stream response until `enough(events)` says so (or the stream ends), and
 * returns the `event:`/`data:` pairs seen; comment lines (Yoga's `:` pings) are skipped.
 */
export async function readSse(response: Response, enough: (events: readonly SseEvent[]) => boolean): Promise<SseEvent[]> {
  if (!response.body) throw new Error('response has no body');
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const events: SseEvent[] = [];
  let buffer = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return events;
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.search(/\r?\n\r?\n/)) !== -1) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, '');
        let event = 'message';
        const data: string[] = [];
        for (const line of block.split(/\r?\n/)) {
          if (line.startsWith('event:')) event = line.slice(6).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
        }
        if (data.length === 0 || data.join('') === '') {
          if (event !== 'message') events.push({ event, data: null });
          continue;
        }
        events.push({ event, data: JSON.parse(data.join('\n')) as unknown });
        if (enough(events)) return events;
      }
    }
  } finally {
    reader.releaseLock();
  }
}

/** Resolves once the wall clock has moved past the current millisecond (timestamps then differ). */
export async function nextMillisecond(): Promise<void> {
  const start = Date.now();
  while (Date.now() === start) await new Promise((resolve) => setImmediate(resolve));
}
