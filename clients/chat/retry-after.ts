/**
 * The wait a refusal names: `data.retryAfterMs` of a tRPC error (a per-user rate —
 * TOO_MANY_REQUESTS — or, in a cluster, Redis out of reach — SERVICE_UNAVAILABLE); undefined for
 * any other error. A refused call changed nothing, so it may simply be made again after it.
 */
export function retryAfterOf(error: unknown): number | undefined {
  const data: unknown = typeof error === 'object' && error !== null && 'data' in error ? error.data : undefined;
  const wait = typeof data === 'object' && data !== null && 'retryAfterMs' in data ? data.retryAfterMs : undefined;
  return typeof wait === 'number' && Number.isFinite(wait) && wait >= 0 ? wait : undefined;
}

/** Resolves after `ms` plus up to 100 ms of jitter (callers refused together do not return together); unref'd. */
export function waitOut(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms + Math.floor(Math.random() * 100)).unref?.());
}
