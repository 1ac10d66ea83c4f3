import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { EnvelopArmorPlugin } from '@escape.tech/graphql-armor';
import { NoSchemaIntrospectionCustomRule } from 'graphql';
import type { renderGraphiQL } from '@graphql-yoga/render-graphiql';
import { createSchema, createYoga, type Plugin } from 'graphql-yoga';
import type { Config } from '../config.ts';
import type { Principal } from '../domain/types.ts';
import type { Logger } from '../logger.ts';
import { LogLimiter } from '../util/log-limiter.ts';
import type { AdminOperations } from './admin-operations.ts';
import type { AdminContext } from './context.ts';
import { domainRefusal, maskError } from './graphql-errors.ts';
import { resolvers } from './graphql/resolvers.generated.ts';
import { typeDefs } from './graphql/typeDefs.generated.ts';
import { useRequireAdmin } from './require-admin.plugin.ts';
import { useServiceScope } from './service-scope.plugin.ts';

export interface AdminPlane {
  /** Node request listener for `/graphql` (the router sends only that exact path here). */
  handle(req: IncomingMessage, res: ServerResponse): void;
  dispose(): Promise<void>;
}

/**
 * The GraphQL admin plane. Every Yoga default that matters is set explicitly from validated
 * configuration — GraphiQL, introspection, CORS, body size, multipart, batching — never from
 * NODE_ENV (Yoga serves GraphiQL in production and reflects any Origin unless told otherwise).
 */
export function createAdminPlane(options: { config: Config; ops: AdminOperations; verify: (token: string, req: IncomingMessage | undefined) => Promise<Principal>; log: Logger }): AdminPlane {
  const { config, ops, verify, log } = options;
  const principals = new WeakMap<Request, Principal>();
  // GraphiQL's page, rendered once per set of options, with the policy that lets exactly its scripts run.
  // Its renderer holds GraphiQL's whole bundle as strings (~30 MiB of heap once loaded), so it is
  // loaded on the first request for the page — never on a server with GraphiQL off (production).
  let graphiqlPage: { key: string; html: string; csp: string } | null = null;
  let renderer: Promise<typeof renderGraphiQL> | null = null;
  const renderPage = async (opts: Parameters<typeof renderGraphiQL>[0]): Promise<string> => {
    const key = JSON.stringify(opts ?? {});
    if (graphiqlPage?.key !== key) {
      renderer ??= import('@graphql-yoga/render-graphiql').then((m) => m.renderGraphiQL);
      const html = (await renderer)(opts);
      graphiqlPage = { key, html, csp: graphiqlCsp(html) };
    }
    return graphiqlPage.html;
  };
  // Malformed requests at warn, one line per kind a minute at most (the count held back on the next).
  const malformed = new LogLimiter();
  const logMalformed = (kind: string, fields: Record<string, unknown>) => {
    const allowed = malformed.allow(kind);
    if (allowed) log.warn({ transport: 'graphql', code: kind, ...fields, heldBack: allowed.suppressed }, 'malformed request refused');
  };
  const plugins: Plugin[] = [
    {
      onResponse({ response }) {
        // GraphiQL's page is the plane's only HTML: no framing, no foreign script.
        if (graphiqlPage && (response.headers.get('content-type') ?? '').startsWith('text/html')) {
          response.headers.set('content-security-policy', graphiqlPage.csp);
          response.headers.set('x-frame-options', 'DENY');
          response.headers.set('x-content-type-options', 'nosniff');
          response.headers.set('referrer-policy', 'no-referrer');
          response.headers.set('cache-control', 'no-store');
        }
        if (MALFORMED_STATUSES.has(response.status)) logMalformed(`HTTP_${response.status}`, { status: response.status });
      },
    },
    useRequireAdmin({ verify, principals, graphiql: config.graphiql }),
    useServiceScope(principals),
    EnvelopArmorPlugin({
      maxDepth: { n: 8 },
      maxAliases: { n: 15 },
      maxDirectives: { n: 20 },
      maxTokens: { n: 2000 },
      costLimit: { maxCost: 5000 },
      blockFieldSuggestion: { enabled: true },
    }),
  ];
  if (!config.introspection) {
    plugins.push({
      onValidate({ addValidationRule }) {
        addValidationRule(NoSchemaIntrospectionCustomRule);
      },
    });
  }
  // Only a listed Origin gets CORS headers. (Given the list itself, Yoga answers every other
  // origin with the single listed one, or with `null` — which a sandboxed page's Origin matches.)
  const allowedOrigins = new Set(config.adminCorsOrigins);
  const cors =
    allowedOrigins.size > 0
      ? (request: Request) => {
          const origin = request.headers.get('origin');
          return origin !== null && allowedOrigins.has(origin)
            ? { origin: [origin], credentials: false, methods: ['GET', 'POST'], allowedHeaders: ['authorization', 'content-type'] }
            : (false as const);
        }
      : false;

  const yoga = createYoga<{ req: IncomingMessage; res: ServerResponse }, AdminContext>({
    schema: createSchema<{ req: IncomingMessage; res: ServerResponse } & AdminContext>({ typeDefs, resolvers }),
    graphqlEndpoint: '/graphql',
    graphiql: config.graphiql ? { title: 'Realtime admin', headers: JSON.stringify({ Authorization: 'Bearer <admin token>' }) } : false,
    // GraphiQL bundled from npm rather than Yoga's default page, which loads it from a CDN.
    renderGraphiQL: renderPage,
    landingPage: false,
    cors,
    maskedErrors: { isDev: false, maskError },
    multipart: false,
    batching: false,
    maxRequestBodySize: config.adminMaxBodyBytes,
    // Yoga answers any URL ending in its health path; ours are /healthz and /readyz.
    healthCheckEndpoint: '/graphql/__yoga-health',
    logging: {
      debug: (...args) => log.debug(yogaLogFields(args), 'yoga'),
      info: (...args) => log.info(yogaLogFields(args), 'yoga'),
      warn: (...args) => log.warn(yogaLogFields(args), 'yoga'),
      error: (...args) => {
        const refusal = domainRefusal(args);
        if (refusal) log.debug({ code: refusal.code, message: refusal.message }, 'admin request refused');
        else log.error(yogaLogFields(args), 'yoga');
      },
    },
    context: ({ request }) => {
      const principal = principals.get(request);
      // useRequireAdmin ends every request without one; this is a second line, not the check.
      if (!principal) throw new Error('admin principal missing');
      return { principal, ops, request };
    },
    plugins,
  });

  return {
    handle(req, res) {
      // Yoga builds a URL from Host and the path before any plugin runs, and answers a failure
      // with a 500 carrying the stack trace: refuse such a request here (no token needed to send one).
      if (!URL.canParse(`http://${req.headers.host ?? 'localhost'}${req.url ?? '/'}`)) {
        logMalformed('INVALID_URL', {});
        const body = JSON.stringify({ errors: [{ message: 'malformed request: the Host header and path do not form a URL', extensions: { code: 'BAD_REQUEST' } }] });
        res.writeHead(400, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' }).end(body);
        return;
      }
      void yoga(req, res);
    },
    dispose: async () => {
      await yoga.dispose();
    },
  };
}

/** What Yoga answers a malformed request with: bad JSON or parameters, wrong method, body too large, wrong media type. */
const MALFORMED_STATUSES = new Set([400, 405, 413, 415]);

/**
 * The Content-Security-Policy of GraphiQL's page (@graphql-yoga/render-graphiql: everything
 * inline, nothing from a CDN): its inline scripts by hash — no other script, no eval — Monaco's
 * workers from the blob: URLs the page makes, the styles and style attributes GraphiQL and Monaco
 * insert at run time, its data: icon and fonts, requests to this origin only, and no framing.
 */
export function graphiqlCsp(html: string): string {
  const hashes = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => `'sha256-${createHash('sha256').update(m[1]!).digest('base64')}'`);
  return [
    "default-src 'none'",
    `script-src ${hashes.length > 0 ? hashes.join(' ') : "'none'"}`,
    'worker-src blob:',
    "style-src 'unsafe-inline'",
    "img-src 'self' data:",
    'font-src data:',
    "connect-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'none'",
  ].join('; ');
}

/**
 * Yoga logs positional arguments (the error behind a masked "Unexpected error." among them);
 * pino serializes an Error only under `err` — inside `args` it would be logged as `{}`.
 */
function yogaLogFields(args: unknown[]): Record<string, unknown> {
  const err = args.find((a): a is Error => a instanceof Error);
  const rest = args.filter((a) => a !== err);
  return { ...(err && { err }), ...(rest.length > 0 && { args: rest }) };
}
