import type { BroadcastStatsView } from '../../admin-operations.ts';
import { badInput, requireAdmin } from '../../require-role.ts';
import type { SubscriptionResolvers } from './../types.generated.ts';

/** Stats pushed over SSE every `intervalMs` until the client goes away. */
export const stats: NonNullable<SubscriptionResolvers['stats']> = {
  subscribe: async function* (_parent, { intervalMs }, ctx) {
    requireAdmin(ctx);
    const every = intervalMs ?? 2000;
    if (every < 250 || every > 60_000) throw badInput('intervalMs must be between 250 and 60000');
    const signal = ctx.request.signal;
    while (!signal.aborted) {
      yield { stats: await ctx.ops.stats() } satisfies { stats: BroadcastStatsView };
      await sleep(every, signal);
    }
  },
};

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
