import { GraphQLError } from 'graphql';
import { describe, expect, it } from 'vitest';
import { DomainError } from '../domain/errors.ts';
import { maskError } from './graphql-errors.ts';

describe('maskError (the GraphQL plane\'s error mapping)', () => {
  it('gives a Redis outage its 503, its code and how long to wait', () => {
    const error = maskError(new GraphQLError('x', { originalError: new DomainError('UNAVAILABLE', 'the cluster store (Redis) is unreachable; retry shortly', 1000) }), 'Unexpected error.');
    expect(error).toBeInstanceOf(GraphQLError);
    expect(error.message).toBe('the cluster store (Redis) is unreachable; retry shortly');
    expect((error as GraphQLError).extensions).toEqual({ code: 'SERVICE_UNAVAILABLE', retryAfterMs: 1000, http: { status: 503 } });
  });

  it('gives a rate limit 429 with retryAfterMs', () => {
    const error = maskError(new DomainError('RATE_LIMITED', 'too many messages; retry in 250 ms', 250), 'Unexpected error.') as GraphQLError;
    expect(error.extensions).toEqual({ code: 'TOO_MANY_REQUESTS', retryAfterMs: 250, http: { status: 429 } });
  });

  it('masks anything that is not a DomainError', () => {
    const error = maskError(new GraphQLError('boom', { originalError: new Error('redis: ECONNREFUSED 10.1.2.3') }), 'Unexpected error.');
    expect(error.message).toBe('Unexpected error.');
    expect(JSON.stringify(error)).not.toContain('ECONNREFUSED');
  });
});
