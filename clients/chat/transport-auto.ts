/**
 * `transport: 'auto'`: the WebSocket, or SSE for the client's life when the server answers over
 * HTTP but its WebSocket cannot open — a front that refuses the upgrade (4xx/5xx), closes it, or
 * swallows it for `autoFallbackMs`. A server that is merely unreachable (refused, reset, no
 * answer: it is restarting, the network is down) is no reason for SSE: the client keeps trying
 * the WebSocket, 'connecting' with the error, and decides again at the next failure. So a
 * WebSocket that closes before it opened asks the server's /trpc URL over HTTP (a HEAD, through
 * the global `fetch`: this module imports no Node built-in), and SSE is chosen when HTTP answered
 * before that socket was tried and answers again after it failed; a socket still opening after
 * `autoFallbackMs` asks too, and SSE is chosen when HTTP answers while it hangs. A deferring
 * link holds calls until the choice is made.
 */
import { createTRPCClient, TRPCClientError, type OperationLink, type TRPCLink } from '@trpc/client';
import { observable, type Unsubscribable } from '@trpc/server/observable';
import type { AppRouter } from '../../src/transport/router.ts';
import { webSocketTransport } from './transport-ws.ts';
import { sseTransport } from './transport-sse.ts';
import { checkedUrl, httpUrlOf, randomClientId, resolveUrl, type ChatTransport, type TransportHooks, type TransportOptions } from './transport.ts';

type Outcome = 'websocket' | 'sse' | 'closed';

/** A gateway's "no server behind me": HTTP reaches the front, not the server. */
const NO_SERVER = new Set([502, 503, 504]);

/**
 * Whether the server answers over HTTP at `url` (its /trpc URL in any scheme): any HTTP answer
 * does — even 401 or 404 — but a gateway's 502, 503 or 504. A network error, or no answer before
 * `signal` aborts, means unreachable. `no-cors`: a page on another origin gets an opaque answer,
 * which is an answer all the same (its status cannot be read).
 */
export async function answersOverHttp(url: string, signal: AbortSignal): Promise<boolean> {
  try {
    const response = await fetch(httpUrlOf(url), { method: 'HEAD', mode: 'no-cors', signal });
    return response.type === 'opaque' || !NO_SERVER.has(response.status);
  } catch {
    return false;
  }
}

export function autoTransport(options: TransportOptions, hooks: TransportHooks): ChatTransport {
  const clientId = randomClientId();
  const fallbackMs = options.autoFallbackMs ?? 3000;
  let chosen: ChatTransport | null = null;
  let outcome: Outcome | null = null;
  let settle!: (outcome: Outcome) => void;
  const decided = new Promise<Outcome>((resolve) => (settle = resolve));
  /** The latest WebSocket made while undecided (closed when SSE is chosen), and how many were made. */
  let socket: WebSocket | null = null;
  let made = 0;
  /** How many WebSockets had been made when HTTP last answered (those made later tried after it). */
  let madeBeforeAnswer = Number.POSITIVE_INFINITY;
  /** HTTP questions in flight and sockets' open timers, withdrawn once decided. */
  const asking = new Set<AbortController>();
  const timers = new Set<ReturnType<typeof setTimeout>>();

  function decide(next: Outcome): void {
    if (outcome) return;
    outcome = next;
    for (const timer of timers) clearTimeout(timer);
    for (const question of asking) question.abort();
    settle(next);
  }

  /** Whether HTTP reaches the server now (no answer within autoFallbackMs: no). */
  async function httpAnswers(): Promise<boolean> {
    const question = new AbortController();
    asking.add(question);
    const deadline = setTimeout(() => question.abort(), fallbackMs);
    try {
      const url = ws.url ?? checkedUrl(await resolveUrl(options.url));
      const answered = await answersOverHttp(url, question.signal);
      if (answered) madeBeforeAnswer = made;
      return answered;
    } catch {
      return false; // the url function failed: the WebSocket's state says so
    } finally {
      clearTimeout(deadline);
      asking.delete(question);
    }
  }

  // The WebSocket's state counts once it is chosen; before, its failures show as 'connecting'.
  let wsLatest: [status: 'connected' | 'down', error: Error | null] | null = null;
  const ws = webSocketTransport(options, {
    ...hooks,
    state(status, error) {
      wsLatest = [status, error];
      if (chosen === ws) hooks.state(status, error);
      else if (chosen === null && status === 'down') hooks.state('down', error);
    },
  }, clientId, (opening) => {
    if (outcome) return;
    socket = opening;
    const number = ++made;
    // Not open in time, a front may be holding the upgrade: SSE if HTTP answers while it still
    // hangs (a restarting server refuses, it does not hold); asked again while HTTP does not.
    const stillOpening = () => {
      timers.delete(timer);
      void httpAnswers().then((answered) => {
        if (outcome || opening.readyState !== 0) return;
        if (answered) decide('sse');
        else timers.add((timer = setTimeout(stillOpening, fallbackMs)));
      });
    };
    let timer = setTimeout(stillOpening, fallbackMs);
    timers.add(timer);
    opening.addEventListener('open', () => {
      clearTimeout(timer);
      decide('websocket');
    });
    // Refused, or closed before it opened. SSE only when HTTP answered before this socket was
    // made and answers again now: the server was reachable all along, the WebSocket is not. A
    // server that was down, or came up meanwhile, gets the next WebSocket (the wsClient retries).
    opening.addEventListener('close', () => {
      clearTimeout(timer);
      if (outcome) return;
      const afterAnswer = number > madeBeforeAnswer;
      void httpAnswers().then((answered) => void (answered && afterAnswer && decide('sse')));
    });
  });

  const choice = decided.then((result): { transport: ChatTransport; links: TRPCLink<AppRouter>[] } => {
    if (result === 'websocket') {
      chosen = ws;
      hooks.kindChanged?.();
      if (wsLatest) hooks.state(...wsLatest);
      return { transport: ws, links: [ws.link] };
    }
    // No WebSocket: stop trying it — the socket still opening too — and use SSE from now on.
    void ws.close().catch(() => undefined);
    (socket as WebSocket | null)?.close();
    if (result === 'closed') throw new Error('the chat client is closed');
    const sse = sseTransport(options, hooks, clientId);
    chosen = sse;
    hooks.kindChanged?.();
    return { transport: sse, links: sse.links };
  });
  choice.catch(() => undefined);
  const trpc = createTRPCClient<AppRouter>({ links: [deferredLink(choice.then((c) => c.links))] });
  return {
    trpc,
    get kind() {
      return chosen?.kind;
    },
    clientId,
    get url() {
      return chosen?.url ?? ws.url;
    },
    async admit(input) {
      return (chosen ?? (await choice).transport).admit(input);
    },
    explain: (error) => (chosen ? chosen.explain(error) : error),
    async close() {
      decide('closed'); // calls still held fail as closed
      await choice.catch(() => undefined);
      await chosen?.close();
    },
  };
}

/**
 * A link that holds every operation until `chain` is known, then runs it through that chain
 * (which ends in a terminating link). Keeps `client.trpc` usable before `auto` has decided.
 */
function deferredLink(chain: Promise<TRPCLink<AppRouter>[]>): TRPCLink<AppRouter> {
  return (runtime) => {
    let ready: OperationLink<AppRouter> | null = null;
    const readying = chain.then((links) => (ready = compose(links.map((link) => link(runtime)))));
    return ({ op }) =>
      observable((observer) => {
        let subscription: Unsubscribable | null = null;
        let cancelled = false;
        const start = (run: OperationLink<AppRouter>) => {
          if (!cancelled) subscription = run({ op, next: () => { throw new Error('unreachable: the chain ends in a terminating link'); } }).subscribe(observer);
        };
        if (ready) start(ready);
        else readying.then(start, (error: unknown) => observer.error(TRPCClientError.from(error instanceof Error ? error : new Error(String(error)))));
        return () => {
          cancelled = true;
          subscription?.unsubscribe();
        };
      });
  };
}

/** Operation links as one: each one's `next` is the following one. */
function compose(links: OperationLink<AppRouter>[]): OperationLink<AppRouter> {
  return ({ op }) => {
    const run = (index: number, current: typeof op): ReturnType<OperationLink<AppRouter>> =>
      links[index]!({ op: current, next: (nextOp) => run(index + 1, nextOp) });
    return run(0, op);
  };
}
