import { GatewayError, isGatewayError } from '../http/errors.js';

/**
 * Tells "the database could not be reached or dropped us" apart from "the database refused this
 * statement". Only the first becomes a 503 with Retry-After: a constraint violation must reach the
 * caller untouched so it can read the SQLSTATE (e.g. 23505 for a replayed jti).
 */

/** Seconds a caller should wait; long enough for a PostgreSQL restart or a failover to finish. */
export const STORAGE_RETRY_AFTER_SECONDS = 5;

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * SQLSTATEs outside class 08 that still mean "this connection is gone or cannot be had"
 * (PostgreSQL appendix A): admin_shutdown, crash_shutdown, cannot_connect_now (starting up or in
 * recovery), too_many_connections; and query_canceled, which is what a statement gets when it
 * outlives `statement_timeout` (config database.statementTimeoutMs: stuck behind a lock, a server
 * overloaded) or an operator cancels it: the statement did nothing, and a retry may succeed.
 */
const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300', '57014']);

/** node-postgres reports these without a code; matched on its (stable) messages. */
const UNAVAILABLE_MESSAGES = [
  'timeout exceeded when trying to connect',
  'Connection terminated',
  'connection error and is not queryable',
  'Client was closed and is not queryable',
  'Cannot use a pool after calling end on the pool',
];

function codeOf(e: Error): string | undefined {
  return 'code' in e && typeof e.code === 'string' ? e.code : undefined;
}

export function isConnectionFailure(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  // Node's happy-eyeballs connect (localhost -> ::1 and 127.0.0.1) fails with an AggregateError.
  if (e instanceof AggregateError && e.errors.some(isConnectionFailure)) return true;
  const code = codeOf(e);
  if (code !== undefined) {
    if (NETWORK_CODES.has(code) || UNAVAILABLE_SQLSTATES.has(code)) return true;
    if (/^08[0-9A-Z]{3}$/.test(code)) return true;
  }
  return UNAVAILABLE_MESSAGES.some((m) => e.message.includes(m));
}

export function storageUnavailable(cause: unknown, detail = 'database connection failed'): GatewayError {
  return new GatewayError('storage.unavailable', detail, { cause, retryAfter: STORAGE_RETRY_AFTER_SECONDS });
}

/** Connection failures become `storage.unavailable`; everything else is returned unchanged. */
export function translateStorageError(e: unknown): unknown {
  if (isGatewayError(e)) return e;
  return isConnectionFailure(e) ? storageUnavailable(e) : e;
}

export function isStorageUnavailable(e: unknown): boolean {
  return isGatewayError(e) && e.code === 'storage.unavailable';
}
