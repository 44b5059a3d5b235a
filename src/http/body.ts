/**
 * JSON body parsing for `application/json` and `application/fhir+json`. Property names that can
 * reach an object's prototype (`__proto__`, `constructor`) are refused outright: no FHIR resource
 * or API body uses them, and refusing is simpler to reason about than stripping.
 */
import type { FastifyInstance } from 'fastify';
import { GatewayError } from './errors.js';

export const JSON_MEDIA_TYPES = ['application/json', 'application/fhir+json'] as const;

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** Depth bound: hostile documents nested thousands deep are refused rather than walked. */
const MAX_DEPTH = 64;

export function parseJsonBody(text: string): unknown {
  if (text.length === 0) throw new GatewayError('request.malformed-json');
  let forbidden = false;
  let value: unknown;
  try {
    value = JSON.parse(text, function reviver(key: string, v: unknown) {
      if (FORBIDDEN_KEYS.has(key)) forbidden = true;
      return v;
    });
  } catch (cause) {
    throw new GatewayError('request.malformed-json', undefined, { cause });
  }
  if (forbidden) throw new GatewayError('request.forbidden-key');
  if (depthExceeds(value, MAX_DEPTH)) throw new GatewayError('request.invalid', `JSON nesting deeper than ${MAX_DEPTH}`);
  return value;
}

function depthExceeds(value: unknown, limit: number): boolean {
  const stack: Array<{ v: unknown; d: number }> = [{ v: value, d: 0 }];
  while (stack.length > 0) {
    const top = stack.pop();
    if (top === undefined) break;
    if (typeof top.v !== 'object' || top.v === null) continue;
    if (top.d >= limit) return true;
    for (const child of Object.values(top.v)) stack.push({ v: child, d: top.d + 1 });
  }
  return false;
}

export function installJsonParsers(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser([...JSON_MEDIA_TYPES], { parseAs: 'string' }, (_request, body, done) => {
    try {
      done(null, parseJsonBody(typeof body === 'string' ? body : body.toString('utf8')));
    } catch (e) {
      done(e instanceof Error ? e : new GatewayError('request.malformed-json'), undefined);
    }
  });
}
