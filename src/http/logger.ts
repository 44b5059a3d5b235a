/**
 * The pino logger. DESIGN.md section 6: no health data in logs. Request logging is our own
 * (src/http/common.ts) and writes route pattern, status, duration and request id only; the
 * redaction below is the safety net for anything else that logs a request, a body or a token.
 */
import { pino, type Logger, type LoggerOptions } from 'pino';

export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-hcp-assertion"]',
  'req.headers["dpop"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  'body',
  'req.body',
  'payload',
  'token',
  'idToken',
  'id_token',
  'access_token',
  'assertion',
  'SAMLResponse',
  'identifier',
  'patient',
  '*.token',
  '*.idToken',
  '*.id_token',
  '*.access_token',
  '*.assertion',
  '*.SAMLResponse',
  '*.identifier',
  '*.body',
  '*.payload',
  '*.password',
  '*.secret',
  '*.privateKey',
];

export function createLogger(opts: { level: LoggerOptions['level']; country: string; destination?: NodeJS.WritableStream }): Logger {
  const options: LoggerOptions = {
    level: opts.level ?? 'info',
    base: { country: opts.country },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  // Asynchronous writes: a synchronous write per log line cost ~0.5-1 ms of CPU per request under
  // load (bench/README.md). main.ts flushes before the process exits.
  return opts.destination === undefined ? pino(options, pino.destination({ dest: 1, sync: false })) : pino(options, opts.destination as pino.DestinationStream);
}
