/**
 * What keeps the pages safe, as a list of small rules:
 *
 * 1. `CONTENT_SECURITY_POLICY` on every page: no script at all, styles and images from us only,
 *    forms post to us only, never framed, no `<base>` (CSP Level 3).
 * 2. `parseForm`: `application/x-www-form-urlencoded` bodies (WHATWG URL "application/x-www-form-urlencoded
 *    parsing"), small, into a null-prototype record; prototype-reaching names are refused.
 * 3. `checkSameOrigin`: a state-changing request must not come from another site (Fetch Metadata
 *    `Sec-Fetch-Site`, then `Origin`; OWASP CSRF cheat sheet "Verifying origin with standard headers").
 * 4. `csrfToken`/`checkCsrfToken`: every form carries a token bound to the session it was rendered
 *    for (HMAC-SHA256 under a key derived from the gateway's signing key: the synchronizer token
 *    pattern without server state), checked in constant time.
 */
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { SigningKey } from '../crossborder/envelope.js';
import { GatewayError } from '../http/errors.js';

/**
 * `same-origin`, not `no-referrer`: under `no-referrer` browsers send `Origin: null` with form posts,
 * which would defeat the Origin check; other sites still get no Referer.
 */
export const REFERRER_POLICY = 'same-origin';

export const CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/** Forms are a few checkboxes and dates; anything larger is not from our pages. */
export const FORM_BODY_LIMIT = 8 * 1024;
const MAX_FIELDS = 200;
const FORBIDDEN_NAMES = new Set(['__proto__', 'constructor', 'prototype']);

export type FormBody = Readonly<Record<string, readonly string[]>>;

export function parseForm(text: string): FormBody {
  const params = new URLSearchParams(text);
  const out: Record<string, string[]> = Object.create(null) as Record<string, string[]>;
  let count = 0;
  for (const [name, value] of params) {
    count += 1;
    if (count > MAX_FIELDS) throw new GatewayError('request.too-large');
    if (FORBIDDEN_NAMES.has(name)) throw new GatewayError('request.forbidden-key');
    (out[name] ??= []).push(value);
  }
  return out;
}

export function isFormBody(body: unknown): body is FormBody {
  return typeof body === 'object' && body !== null && Object.getPrototypeOf(body) === null;
}

/** The first value of a field, if any. */
export function field(form: FormBody, name: string): string | undefined {
  return Object.hasOwn(form, name) ? form[name]?.[0] : undefined;
}

/** Every value of a repeated field (checkboxes). */
export function fields(form: FormBody, name: string): readonly string[] {
  return Object.hasOwn(form, name) ? (form[name] ?? []) : [];
}

/** Raised by the checks below; the page answers 403 with a plain explanation. */
export class FormRefusedError extends Error {
  constructor(readonly reason: 'cross-site' | 'csrf') {
    super(`form refused: ${reason}`);
    this.name = 'FormRefusedError';
  }
}

/**
 * Fetch Metadata decides when the browser sends it: `same-origin` is ours, `none` is the user's
 * own action (typed URL, bookmark), anything else (`same-site`, `cross-site`) is refused. Browsers
 * without Fetch Metadata are judged by `Origin`, which, when present, must be our own origin
 * (`null` never is). The pages send `Referrer-Policy: same-origin`, so such browsers do send it.
 */
export function checkSameOrigin(request: FastifyRequest, ownOrigin: string): void {
  const site = request.headers['sec-fetch-site'];
  if (site !== undefined) {
    if (site !== 'same-origin' && site !== 'none') throw new FormRefusedError('cross-site');
    return;
  }
  const origin = request.headers.origin;
  if (origin !== undefined && origin !== ownOrigin) throw new FormRefusedError('cross-site');
}

/** Our origin as the browser sees it: the configured public URL, else the request's own host. */
export function ownOrigin(request: FastifyRequest, publicUrl: string | undefined): string {
  if (publicUrl !== undefined) return new URL(publicUrl).origin;
  return `${request.protocol}://${request.host}`;
}

/**
 * A key for form tokens, derived (HKDF-SHA256, RFC 5869) from the private part of the gateway's
 * signing key: stable across replicas and restarts, never usable to sign anything.
 */
export function deriveCsrfKey(signingKey: SigningKey): Buffer {
  const jwk = signingKey.privateKey.export({ format: 'jwk' });
  if (typeof jwk.d !== 'string') throw new TypeError('the signing key has no private part');
  return Buffer.from(hkdfSync('sha256', Buffer.from(jwk.d, 'base64url'), 'ncpeh-portal', 'ncpeh portal form token v1', 32));
}

/** The token a form rendered for `binding` (a session token, or a pre-session nonce) carries. */
export function csrfToken(key: Buffer, purpose: 'portal' | 'viewer' | 'viewer-sign-in', binding: string): string {
  return createHmac('sha256', key).update(`${purpose}\n${binding}`).digest('base64url');
}

export function checkCsrfToken(key: Buffer, purpose: 'portal' | 'viewer' | 'viewer-sign-in', binding: string, presented: string | undefined): void {
  if (presented === undefined || presented.length === 0 || presented.length > 128) throw new FormRefusedError('csrf');
  const expected = Buffer.from(csrfToken(key, purpose, binding));
  const given = Buffer.from(presented);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new FormRefusedError('csrf');
}
