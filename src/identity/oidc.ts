/**
 * OpenID Connect relying party for national eIDs (issue 4, STANDARDS.md "OpenID Connect").
 *
 * Two ways in, one output shape (`VerifiedEid`, src/identity/eid.ts):
 * - Bare ID tokens posted by a hospital EHR (`POST /api/v1/auth/hcp`): verified here, by an ordered
 *   list of one-rule checks, against the provider's published JWKS. openid-client v6 has no public
 *   API for verifying an ID token that did not come from its own token request, and the rules are few
 *   and security-critical, so they are written out with node:crypto where they can be read.
 * - Citizens: authorization code flow with PKCE, `state` and `nonce`, driven by openid-client v6.
 *   The ID token it returns then goes through the same checks as a bare one.
 *
 * Every refusal is a `GatewayError` with an `eid.*` code; nothing here touches an HTTP reply.
 */
import { createHash, createPublicKey, constants, verify, type JsonWebKey, type KeyObject } from 'node:crypto';
import * as client from 'openid-client';
import { z } from 'zod';
import type { ReplayStore } from '../crossborder/replay-store.js';
import { GatewayError, isGatewayError, type ErrorCode } from '../http/errors.js';
import { LOA_URIS, loaAtLeast, type LevelOfAssurance, type VerifiedEid } from './eid.js';

// ---------------------------------------------------------------------------------------------
// Options and public shapes

export type OidcSigningAlg = 'RS256' | 'PS256' | 'ES256' | 'EdDSA';
const KNOWN_ALGS: readonly OidcSigningAlg[] = ['RS256', 'PS256', 'ES256', 'EdDSA'];

export interface OidcProviderOptions {
  /** The configured provider id (config `eid.oidc[].id`); copied into `VerifiedEid.providerId`. */
  readonly providerId: string;
  /** Issuer identifier, pinned: discovery and every token must name exactly this (OIDC Core 3.1.3.7 step 2). */
  readonly issuer: string;
  readonly clientId: string;
  readonly clientSecret?: string;
  /** Needed only for the citizen code flow. */
  readonly redirectUri?: string;
  /** Accepted `aud` values for EHR-posted ID tokens; default `[clientId]`. */
  readonly audiences?: readonly string[];
  /** Provider `acr` value -> eIDAS level; default `DEFAULT_ACR_MAPPING`. */
  readonly acrMapping?: Readonly<Record<string, LevelOfAssurance>>;
  /** `acr_values` sent in the authorization request, in order of preference (OIDC Core 3.1.2.1). */
  readonly requestAcrValues?: readonly string[];
  /** Default `['RS256', 'PS256', 'ES256']`. */
  readonly allowedAlgs?: readonly OidcSigningAlg[];
  /** Default 60 (issue 4). */
  readonly clockSkewSeconds?: number;
  /** `iat` may not be older than this; default 3600. */
  readonly maxIdTokenAgeSeconds?: number;
  /** Claim holding the national person identifier; default `sub`. */
  readonly personIdClaim?: string;
  /** Least time between two JWKS fetches caused by an unknown `kid`; default 60. */
  readonly jwksRefetchIntervalSeconds?: number;
  /** A JWKS older than this is fetched again before use; default 3600. */
  readonly jwksMaxAgeSeconds?: number;
  readonly replay: ReplayStore;
  readonly now?: () => Date;
  /**
   * Lets discovery, token and JWKS requests use plain http. Only for loopback tests and the sandbox,
   * whose OP runs on http://127.0.0.1 (openid-client's `allowInsecureRequests`).
   */
  readonly allowInsecureHttp?: boolean;
}

/**
 * What `beginLogin` hands the caller to keep (server-side or in a sealed cookie) until the callback.
 * All three secrets bind the callback to this browser's request: `state` against CSRF (RFC 6749
 * section 10.12), `nonce` against ID token injection (OIDC Core 3.1.2.1), `codeVerifier` against code
 * interception (RFC 7636 section 1).
 */
export interface LoginState {
  readonly state: string;
  readonly nonce: string;
  readonly codeVerifier: string;
  /** Epoch milliseconds. */
  readonly createdAt: number;
}

/** For callers restoring a `LoginState` from a cookie or a session store. */
export const loginStateSchema = z
  .object({
    state: z.string().min(1).max(512),
    nonce: z.string().min(1).max(512),
    codeVerifier: z.string().regex(/^[A-Za-z0-9._~-]{43,128}$/),
    createdAt: z.number().int().nonnegative(),
  })
  .strict();

export interface OidcProvider {
  readonly providerId: string;
  readonly issuer: string;
  /** Verifies an ID token posted by a hospital EHR. */
  verifyIdToken(idToken: string): Promise<VerifiedEid>;
  /** Starts a citizen sign-in: the URL to send the browser to, and what to keep until the callback. */
  beginLogin(): Promise<{ url: string; state: LoginState }>;
  /** Finishes a citizen sign-in from the URL the provider redirected the browser back to. */
  completeLogin(callbackUrl: URL, saved: LoginState): Promise<VerifiedEid>;
}

export const DEFAULT_ACR_MAPPING: Readonly<Record<string, LevelOfAssurance>> = {
  [LOA_URIS.low]: 'low',
  [LOA_URIS.substantial]: 'substantial',
  [LOA_URIS.high]: 'high',
  low: 'low',
  substantial: 'substantial',
  high: 'high',
};

/** Health data needs at least substantial (issue 4; eIDAS LoA, Implementing Regulation 2015/1502). */
const REQUIRED_LOA: LevelOfAssurance = 'substantial';
const LOGIN_STATE_MAX_AGE_MS = 10 * 60 * 1000;
const MAX_TOKEN_CHARS = 64 * 1024;
const MAX_JWKS_BYTES = 256 * 1024;
export const HTTP_TIMEOUT_SECONDS = 10;
const MIN_RSA_BITS = 2048;

// ---------------------------------------------------------------------------------------------
// The checks. Each enforces one rule and throws its own code; `verifyIdTokenWith` runs them in order.

/** A compact JWS split and decoded; nothing in it is trusted yet. */
export interface CompactJws {
  readonly header: Record<string, unknown>;
  readonly payload: Record<string, unknown>;
  /** `BASE64URL(header) || '.' || BASE64URL(payload)`: the bytes the signature covers (RFC 7515 section 5.2). */
  readonly signingInput: Buffer;
  readonly signature: Buffer;
}

export interface CheckedHeader {
  readonly alg: OidcSigningAlg;
  readonly kid: string;
}

export interface IdTokenTimes {
  readonly exp: number;
  readonly iat: number;
}

const B64URL = /^[A-Za-z0-9_-]*$/;
const jsonObject = z.record(z.string(), z.unknown());

function decodeSegment(segment: string): Buffer | undefined {
  if (!B64URL.test(segment)) return undefined;
  const bytes = Buffer.from(segment, 'base64url');
  // Non-canonical encodings (stray trailing bits) would let one token have several spellings,
  // which defeats a replay cache keyed on the token hash.
  return bytes.toString('base64url') === segment ? bytes : undefined;
}

function decodeJsonObject(segment: string): Record<string, unknown> | undefined {
  const bytes = decodeSegment(segment);
  if (bytes === undefined || bytes.length === 0) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    return undefined;
  }
  const result = jsonObject.safeParse(parsed);
  return result.success ? result.data : undefined;
}

/**
 * Three base64url segments, a JSON-object header and payload (RFC 7515 section 7.1, RFC 7519
 * section 7.2). An empty signature is let through here so that `alg: none` is refused by name in
 * `checkHeader` rather than as a shape error.
 */
export function checkCompactShape(token: string): CompactJws {
  if (token.length === 0 || token.length > MAX_TOKEN_CHARS) throw new GatewayError('eid.malformed', 'token length');
  const parts = token.split('.');
  if (parts.length !== 3) throw new GatewayError('eid.malformed', 'not a compact JWS (JWE and unsecured forms are refused)');
  const [h = '', p = '', s = ''] = parts;
  const header = decodeJsonObject(h);
  const payload = decodeJsonObject(p);
  const signature = decodeSegment(s);
  if (header === undefined || payload === undefined || signature === undefined) {
    throw new GatewayError('eid.malformed', 'segments are not base64url JSON objects');
  }
  return { header, payload, signingInput: Buffer.from(`${h}.${p}`, 'ascii'), signature };
}

/**
 * Header members that would let the token choose or carry its own verification key (RFC 8725
 * section 3.10; RFC 7515 sections 4.1.2-4.1.6), `crit`, which obliges us to understand extensions
 * we do not implement (RFC 7515 section 4.1.11), and `b64`, which changes what is signed (RFC 7797).
 */
const FORBIDDEN_HEADER_MEMBERS: readonly string[] = ['jku', 'jwk', 'x5u', 'x5c', 'crit', 'b64'];
/**
 * `typ` values an ID token may carry. Other JWTs from the same provider (RFC 9068 access tokens
 * `at+jwt`, logout tokens `logout+jwt`) are signed with the same keys; explicit typing keeps them
 * from being passed off as ID tokens (RFC 8725 sections 2.8 and 3.11).
 */
const ID_TOKEN_TYPES: ReadonlySet<string> = new Set(['jwt', 'application/jwt']);

/**
 * `alg` from our allowlist only (RFC 8725 section 3.1): `none` and every HS* are refused whatever the
 * configuration, since an HMAC "verified" with a public key is forgeable by anyone (RFC 8725
 * section 2.1). `kid` is required: key selection is by `kid` from the pinned JWKS and nothing else.
 */
export function checkHeader(header: Record<string, unknown>, allowedAlgs: readonly OidcSigningAlg[]): CheckedHeader {
  const alg = header.alg;
  if (typeof alg !== 'string') throw new GatewayError('eid.malformed', 'header has no alg');
  const allowed = allowedAlgs.find((a) => a === alg);
  if (allowed === undefined || alg === 'none' || alg.startsWith('HS')) {
    throw new GatewayError('eid.algorithm-forbidden', `alg ${alg.slice(0, 20)} is not allowed`);
  }
  for (const member of FORBIDDEN_HEADER_MEMBERS) {
    if (Object.hasOwn(header, member)) throw new GatewayError('eid.algorithm-forbidden', `header member ${member} is refused`);
  }
  const typ = header.typ;
  if (typ !== undefined && (typeof typ !== 'string' || !ID_TOKEN_TYPES.has(typ.toLowerCase()))) {
    throw new GatewayError('eid.malformed', 'typ is not an ID token type');
  }
  const kid = header.kid;
  if (typeof kid !== 'string' || kid.length === 0 || kid.length > 256) throw new GatewayError('eid.malformed', 'header has no kid');
  return { alg: allowed, kid };
}

/** One key from the provider's JWKS, imported once. */
export interface ProviderKey {
  readonly kid: string;
  /** The JWK's own `alg`, when it declares one (RFC 7517 section 4.4). */
  readonly alg: string | undefined;
  readonly key: KeyObject;
}

/** Keys published under `kid`; several only when one `kid` is reused across key types. */
export function checkKidKnown(kid: string, keys: ReadonlyMap<string, readonly ProviderKey[]>): readonly ProviderKey[] {
  const found = keys.get(kid);
  if (found === undefined || found.length === 0) throw new GatewayError('eid.unknown-key', 'kid is not in the provider JWKS');
  return found;
}

/** Whether `key` is of the type `alg` is defined for (RFC 7518 sections 3.3, 3.4, 3.5; RFC 8037 section 3.1). */
function keyFitsAlg(key: KeyObject, alg: OidcSigningAlg): boolean {
  const details = key.asymmetricKeyDetails;
  switch (alg) {
    case 'RS256':
    case 'PS256':
      return key.asymmetricKeyType === 'rsa' && (details?.modulusLength ?? 0) >= MIN_RSA_BITS;
    case 'ES256':
      return key.asymmetricKeyType === 'ec' && details?.namedCurve === 'prime256v1';
    case 'EdDSA':
      return key.asymmetricKeyType === 'ed25519';
  }
}

function signatureVerifies(alg: OidcSigningAlg, key: KeyObject, data: Buffer, signature: Buffer): boolean {
  switch (alg) {
    case 'RS256':
      return verify('sha256', data, { key, padding: constants.RSA_PKCS1_PADDING }, signature);
    case 'PS256':
      // RFC 7518 section 3.5: MGF1 with SHA-256 and a salt as long as the hash.
      return verify('sha256', data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, signature);
    case 'ES256':
      // RFC 7518 section 3.4: JOSE carries R || S (64 bytes), not DER.
      return signature.length === 64 && verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, signature);
    case 'EdDSA':
      return verify(null, data, key, signature);
  }
}

/**
 * The signature verifies with a key the provider publishes under `kid`, used only with the algorithm
 * its type is for: a key of another type, or one whose JWK declares another `alg`, is not tried
 * (RFC 8725 section 3.1: each key is used with exactly one algorithm).
 */
export function checkSignature(jws: CompactJws, header: CheckedHeader, candidates: readonly ProviderKey[]): void {
  const usable = candidates.filter((k) => keyFitsAlg(k.key, header.alg) && (k.alg === undefined || k.alg === header.alg));
  if (usable.length === 0) throw new GatewayError('eid.signature-invalid', `key ${header.kid} cannot be used with ${header.alg}`);
  for (const candidate of usable) {
    try {
      if (signatureVerifies(header.alg, candidate.key, jws.signingInput, jws.signature)) return;
    } catch {
      // A signature node:crypto cannot even parse is simply not a valid one.
    }
  }
  throw new GatewayError('eid.signature-invalid');
}

/** `iss` exactly equals the pinned issuer; no normalisation (OIDC Core 3.1.3.7 step 2). */
export function checkIssuer(claims: Record<string, unknown>, issuer: string): void {
  if (claims.iss !== issuer) throw new GatewayError('eid.unknown-issuer');
}

/**
 * OIDC Core 3.1.3.7 steps 3-5: `aud` lists an accepted audience and no audience we do not trust; with
 * several audiences `azp` must be present; when present `azp` must be one of ours.
 */
export function checkAudience(claims: Record<string, unknown>, accepted: readonly string[]): void {
  const aud = claims.aud;
  const list = typeof aud === 'string' ? [aud] : isStringArray(aud) ? aud : undefined;
  if (list === undefined || list.length === 0) throw new GatewayError('eid.malformed', 'aud is not a string or array of strings');
  if (!list.some((a) => accepted.includes(a))) throw new GatewayError('eid.wrong-audience');
  if (!list.every((a) => accepted.includes(a))) throw new GatewayError('eid.wrong-audience', 'aud lists an untrusted audience');
  const azp = claims.azp;
  if (list.length > 1 && azp === undefined) throw new GatewayError('eid.wrong-audience', 'several audiences and no azp');
  if (azp !== undefined && (typeof azp !== 'string' || !accepted.includes(azp))) {
    throw new GatewayError('eid.wrong-audience', 'azp is not an accepted party');
  }
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'string');
}

function numericDate(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

/**
 * `exp` in the future, `iat` not in the future and not older than `maxAgeSeconds`, `nbf` (when
 * present) reached; each with `skewSeconds` of tolerance (RFC 7519 sections 4.1.4-4.1.6, OIDC Core
 * 3.1.3.7 steps 9-10). `exp` and `iat` are required in an ID token (OIDC Core section 2).
 */
export function checkTimes(
  claims: Record<string, unknown>,
  now: Date,
  skewSeconds: number,
  maxAgeSeconds: number,
): IdTokenTimes {
  const exp = numericDate(claims.exp);
  const iat = numericDate(claims.iat);
  if (exp === undefined || iat === undefined) throw new GatewayError('eid.malformed', 'exp and iat are required');
  const t = now.getTime() / 1000;
  if (t >= exp + skewSeconds) throw new GatewayError('eid.expired', 'exp has passed');
  if (iat > t + skewSeconds) throw new GatewayError('eid.expired', 'iat is in the future');
  if (t - iat > maxAgeSeconds + skewSeconds) throw new GatewayError('eid.expired', 'iat is too old');
  if (claims.nbf !== undefined) {
    const nbf = numericDate(claims.nbf);
    if (nbf === undefined) throw new GatewayError('eid.malformed', 'nbf is not a number');
    if (nbf > t + skewSeconds) throw new GatewayError('eid.expired', 'nbf is in the future');
  }
  return { exp, iat };
}

/**
 * `acr` (OIDC Core section 2) mapped to an eIDAS level, which must be at least substantial for
 * health data (issue 4). A missing or unmapped `acr` proves nothing, so it is refused the same way.
 */
export function checkLoa(claims: Record<string, unknown>, mapping: Readonly<Record<string, LevelOfAssurance>>): LevelOfAssurance {
  const acr = claims.acr;
  const loa = typeof acr === 'string' && Object.hasOwn(mapping, acr) ? mapping[acr] : undefined;
  if (loa === undefined) throw new GatewayError('eid.insufficient-loa', 'acr missing or not mapped');
  if (!loaAtLeast(loa, REQUIRED_LOA)) throw new GatewayError('eid.insufficient-loa');
  return loa;
}

export interface PersonClaims {
  readonly personId: string;
  readonly givenName: string | undefined;
  readonly familyName: string | undefined;
  readonly birthDate: string | undefined;
  readonly authTime: Date;
}

function optionalString(claims: Record<string, unknown>, name: string): string | undefined {
  const value = claims[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new GatewayError('eid.malformed', `${name} is not a string`);
  return value.length === 0 ? undefined : value;
}

/**
 * `sub` is required (OIDC Core section 2); the person identifier comes from `personIdClaim`. Names
 * and `birthdate` are optional (OIDC Core 5.1); `birthdate` is kept only as a full YYYY-MM-DD date,
 * since 5.1 also allows a bare year.
 */
export function readClaims(claims: Record<string, unknown>, personIdClaim: string, iat: number): PersonClaims {
  const sub = claims.sub;
  if (typeof sub !== 'string' || sub.length === 0 || sub.length > 255) throw new GatewayError('eid.missing-attribute', 'sub');
  const personId = claims[personIdClaim];
  if (typeof personId !== 'string' || personId.length === 0 || personId.length > 256) {
    throw new GatewayError('eid.missing-attribute', personIdClaim);
  }
  const birthdate = optionalString(claims, 'birthdate');
  const authTime = numericDate(claims.auth_time) ?? iat;
  return {
    personId,
    givenName: optionalString(claims, 'given_name'),
    familyName: optionalString(claims, 'family_name'),
    birthDate: birthdate !== undefined && /^\d{4}-\d{2}-\d{2}$/.test(birthdate) ? birthdate : undefined,
    authTime: new Date(authTime * 1000),
  };
}

/**
 * Each ID token is accepted once (RFC 8725 section 3.10 asks recipients to keep state against
 * replay). The handle is `jti` (RFC 7519 section 4.1.7), or the token's SHA-256 when the provider
 * sets none; it is kept until the token could no longer pass `checkTimes` anyway.
 */
export async function checkNotReplayed(
  token: string,
  claims: Record<string, unknown>,
  issuer: string,
  exp: number,
  skewSeconds: number,
  replay: ReplayStore,
): Promise<string> {
  const jti = claims.jti;
  if (jti !== undefined && (typeof jti !== 'string' || jti.length === 0 || jti.length > 256)) {
    throw new GatewayError('eid.malformed', 'jti is not a usable string');
  }
  const id = jti ?? `sha256:${createHash('sha256').update(token).digest('base64url')}`;
  const first = await replay.remember(`oidc:${issuer}`, id, new Date((exp + skewSeconds) * 1000));
  if (!first) throw new GatewayError('eid.replayed');
  return id;
}

// ---------------------------------------------------------------------------------------------
// JWKS: fetched from the discovered `jwks_uri`, refetched on an unknown `kid` at most once per
// interval so rotation works but a stream of made-up `kid`s cannot make us hammer the provider.

const jwksSchema = z.object({ keys: z.array(z.unknown()).max(100) });
const b64u = z.string().min(1).regex(B64URL);
const jwkMeta = {
  kid: z.string().min(1).max(256),
  use: z.string().optional(),
  alg: z.string().optional(),
  key_ops: z.array(z.string()).optional(),
};
const publicJwkSchema = z.discriminatedUnion('kty', [
  z.object({ kty: z.literal('RSA'), n: b64u, e: b64u, ...jwkMeta }),
  z.object({ kty: z.literal('EC'), crv: z.string(), x: b64u, y: b64u, ...jwkMeta }),
  z.object({ kty: z.literal('OKP'), crv: z.string(), x: b64u, ...jwkMeta }),
]);

/**
 * Imports the signing keys of a JWKS. Keys we cannot use (encryption keys, symmetric keys, unknown
 * types, private members are ignored) are skipped rather than failing the set, so one odd key at the
 * provider does not lock everyone out. Only public members reach `createPublicKey`.
 */
export function importJwks(body: unknown): Map<string, ProviderKey[]> {
  const parsed = jwksSchema.safeParse(body);
  if (!parsed.success) throw new GatewayError('service.unavailable', 'provider JWKS is not a JWK set');
  const keys = new Map<string, ProviderKey[]>();
  for (const raw of parsed.data.keys) {
    const result = publicJwkSchema.safeParse(raw);
    if (!result.success) continue;
    const jwk = result.data;
    if (jwk.use !== undefined && jwk.use !== 'sig') continue;
    if (jwk.key_ops !== undefined && !jwk.key_ops.includes('verify')) continue;
    const publicPart: JsonWebKey =
      jwk.kty === 'RSA'
        ? { kty: jwk.kty, n: jwk.n, e: jwk.e }
        : jwk.kty === 'EC'
          ? { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y }
          : { kty: jwk.kty, crv: jwk.crv, x: jwk.x };
    let key: KeyObject;
    try {
      key = createPublicKey({ key: publicPart, format: 'jwk' });
    } catch {
      continue;
    }
    const entry: ProviderKey = { kid: jwk.kid, alg: jwk.alg, key };
    keys.set(jwk.kid, [...(keys.get(jwk.kid) ?? []), entry]);
  }
  return keys;
}

async function fetchJwks(uri: string, allowInsecureHttp: boolean): Promise<Map<string, ProviderKey[]>> {
  const url = new URL(uri);
  if (url.protocol !== 'https:' && !(allowInsecureHttp && url.protocol === 'http:')) {
    throw new GatewayError('service.unavailable', 'jwks_uri is not https');
  }
  let response: Response;
  try {
    // No redirects: the keys come from the URI the pinned issuer's metadata names, nowhere else.
    response = await fetch(url, {
      redirect: 'error',
      headers: { accept: 'application/jwk-set+json, application/json' },
      signal: AbortSignal.timeout(HTTP_TIMEOUT_SECONDS * 1000),
    });
  } catch (cause) {
    throw new GatewayError('service.unavailable', 'provider JWKS unreachable', { cause });
  }
  const declared = Number(response.headers.get('content-length') ?? '0');
  if (!response.ok || declared > MAX_JWKS_BYTES) {
    await response.body?.cancel();
    throw new GatewayError('service.unavailable', `provider JWKS answered ${response.status}`);
  }
  const bytes = Buffer.from(await response.arrayBuffer());
  if (bytes.length > MAX_JWKS_BYTES) throw new GatewayError('service.unavailable', 'provider JWKS too large');
  let body: unknown;
  try {
    body = JSON.parse(bytes.toString('utf8'));
  } catch (cause) {
    throw new GatewayError('service.unavailable', 'provider JWKS is not JSON', { cause });
  }
  return importJwks(body);
}

// ---------------------------------------------------------------------------------------------
// openid-client error mapping

/** The claim an oauth4webapi JWT_CLAIM_COMPARISON failure is about, found along the `cause` chain. */
function failedClaim(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && typeof current === 'object' && current !== null; depth += 1) {
    if ('claim' in current && typeof current.claim === 'string') return current.claim;
    current = 'cause' in current ? current.cause : undefined;
  }
  return undefined;
}

/**
 * openid-client refusals become our codes. Where the failing rule is clear the precise code is used;
 * everything the browser could have tampered with (state, code, PKCE, nonce) is `eid.login-failed`.
 */
function mapClientError(error: unknown): GatewayError {
  if (isGatewayError(error)) return error;
  if (error instanceof client.ClientError) {
    if (error.code === 'OAUTH_JWT_TIMESTAMP_CHECK_FAILED') return new GatewayError('eid.expired', 'ID token times', { cause: error });
    if (error.code === 'OAUTH_JWT_CLAIM_COMPARISON_FAILED') {
      const claim = failedClaim(error);
      const code: ErrorCode = claim === 'iss' ? 'eid.unknown-issuer' : claim === 'aud' || claim === 'azp' ? 'eid.wrong-audience' : 'eid.login-failed';
      return new GatewayError(code, `ID token ${claim ?? 'claim'} mismatch`, { cause: error });
    }
    if (error.code === 'OAUTH_HTTP_REQUEST_FORBIDDEN' || error.code === 'OAUTH_REQUEST_PROTOCOL_FORBIDDEN') {
      return new GatewayError('service.unavailable', 'provider endpoint is not https', { cause: error });
    }
    return new GatewayError('eid.login-failed', error.code ?? 'client error', { cause: error });
  }
  if (error instanceof client.AuthorizationResponseError || error instanceof client.ResponseBodyError) {
    return new GatewayError('eid.login-failed', error.error, { cause: error });
  }
  // fetch() failures (provider down, timeout) surface as TypeError / DOMException.
  return new GatewayError('service.unavailable', 'provider unreachable', { cause: error });
}

// ---------------------------------------------------------------------------------------------
// The provider

export function createOidcProvider(opts: OidcProviderOptions): OidcProvider {
  return new OidcRelyingParty(opts);
}

interface VerifyPolicy {
  readonly audiences: readonly string[];
}

class OidcRelyingParty implements OidcProvider {
  readonly providerId: string;
  readonly issuer: string;
  readonly #opts: OidcProviderOptions;
  readonly #now: () => Date;
  readonly #skew: number;
  readonly #maxAge: number;
  readonly #allowedAlgs: readonly OidcSigningAlg[];
  readonly #acrMapping: Readonly<Record<string, LevelOfAssurance>>;
  readonly #audiences: readonly string[];
  readonly #personIdClaim: string;
  #config: Promise<client.Configuration> | undefined;
  #keys: Map<string, ProviderKey[]> | undefined;
  #keysFetchedAt = Number.NEGATIVE_INFINITY;
  #keysInFlight: Promise<Map<string, ProviderKey[]>> | undefined;

  constructor(opts: OidcProviderOptions) {
    const allowedAlgs = opts.allowedAlgs ?? ['RS256', 'PS256', 'ES256'];
    // Refuse at boot what checkHeader would refuse at every request: a config typo must not open HS*.
    if (allowedAlgs.length === 0 || !allowedAlgs.every((a) => KNOWN_ALGS.includes(a))) {
      throw new TypeError(`provider ${opts.providerId}: allowedAlgs must be a non-empty subset of ${KNOWN_ALGS.join(', ')}`);
    }
    this.providerId = opts.providerId;
    this.issuer = opts.issuer;
    this.#opts = opts;
    this.#now = opts.now ?? (() => new Date());
    this.#skew = opts.clockSkewSeconds ?? 60;
    this.#maxAge = opts.maxIdTokenAgeSeconds ?? 3600;
    this.#allowedAlgs = allowedAlgs;
    this.#acrMapping = opts.acrMapping ?? DEFAULT_ACR_MAPPING;
    this.#audiences = opts.audiences ?? [opts.clientId];
    this.#personIdClaim = opts.personIdClaim ?? 'sub';
  }

  async verifyIdToken(idToken: string): Promise<VerifiedEid> {
    return this.#verify(idToken, { audiences: this.#audiences });
  }

  async beginLogin(): Promise<{ url: string; state: LoginState }> {
    const redirectUri = this.#requireRedirectUri();
    const config = await this.#configuration();
    const codeVerifier = client.randomPKCECodeVerifier();
    const state: LoginState = {
      state: client.randomState(),
      nonce: client.randomNonce(),
      codeVerifier,
      createdAt: this.#now().getTime(),
    };
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      response_type: 'code',
      scope: 'openid profile',
      state: state.state,
      nonce: state.nonce,
      // RFC 7636 section 4.2: S256 only; `plain` would hand the verifier to whoever sees the request.
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      // OIDC Core 3.1.2.1: a request, not a guarantee; `checkLoa` decides on what comes back.
      acr_values: (this.#opts.requestAcrValues ?? [LOA_URIS.substantial]).join(' '),
    });
    return { url: url.href, state };
  }

  async completeLogin(callbackUrl: URL, saved: LoginState): Promise<VerifiedEid> {
    this.#checkLoginStateFresh(saved);
    const config = await this.#configuration();
    let idToken: string | undefined;
    try {
      // Checks state (RFC 6749 section 10.12), sends the PKCE verifier (RFC 7636 section 4.5), and
      // validates the ID token's iss, aud, azp, exp, iat and nonce (OIDC Core 3.1.3.7).
      const tokens = await client.authorizationCodeGrant(config, callbackUrl, {
        pkceCodeVerifier: saved.codeVerifier,
        expectedState: saved.state,
        expectedNonce: saved.nonce,
        idTokenExpected: true,
      });
      if (tokens.claims() === undefined) throw new GatewayError('eid.login-failed', 'no ID token');
      idToken = tokens.id_token;
    } catch (error) {
      throw mapClientError(error);
    }
    if (idToken === undefined) throw new GatewayError('eid.login-failed', 'no ID token');
    // The same checks as a bare token: the signature against the pinned JWKS and our algorithm
    // allowlist (openid-client may skip it for a token from the token endpoint, OIDC Core 3.1.3.7
    // step 6), our LoA rule, and one use per ID token. Only our own client id is an audience here.
    return this.#verify(idToken, { audiences: [this.#opts.clientId] });
  }

  /** The ordered list of checks every ID token goes through. */
  async #verify(token: string, policy: VerifyPolicy): Promise<VerifiedEid> {
    const jws = checkCompactShape(token);
    const header = checkHeader(jws.header, this.#allowedAlgs);
    const candidates = checkKidKnown(header.kid, await this.#keysFor(header.kid));
    checkSignature(jws, header, candidates);
    const claims = jws.payload;
    checkIssuer(claims, this.issuer);
    checkAudience(claims, policy.audiences);
    const times = checkTimes(claims, this.#now(), this.#skew, this.#maxAge);
    const loa = checkLoa(claims, this.#acrMapping);
    const person = readClaims(claims, this.#personIdClaim, times.iat);
    const assertionId = await checkNotReplayed(token, claims, this.issuer, times.exp, this.#skew, this.#opts.replay);
    return {
      protocol: 'oidc',
      providerId: this.providerId,
      issuer: this.issuer,
      personId: person.personId,
      givenName: person.givenName,
      familyName: person.familyName,
      birthDate: person.birthDate,
      loa,
      authTime: person.authTime,
      assertionId,
      expiresAt: new Date(times.exp * 1000),
    };
  }

  /** A login left unfinished for more than 10 minutes is refused: its secrets have been around too long. */
  #checkLoginStateFresh(saved: LoginState): void {
    const age = this.#now().getTime() - saved.createdAt;
    if (!Number.isFinite(age) || age > LOGIN_STATE_MAX_AGE_MS || age < -this.#skew * 1000) {
      throw new GatewayError('eid.login-failed', 'login state expired');
    }
  }

  #requireRedirectUri(): string {
    const uri = this.#opts.redirectUri;
    if (uri === undefined) throw new TypeError(`provider ${this.providerId} has no redirectUri; it cannot run the code flow`);
    return uri;
  }

  /** Discovery runs once, on first use; a failure is not cached, so the next request retries. */
  #configuration(): Promise<client.Configuration> {
    this.#config ??= this.#discover().catch((error: unknown) => {
      this.#config = undefined;
      throw error;
    });
    return this.#config;
  }

  async #discover(): Promise<client.Configuration> {
    const { clientId, clientSecret, redirectUri, allowInsecureHttp } = this.#opts;
    const metadata: Partial<client.ClientMetadata> = {
      [client.clockTolerance]: this.#skew,
      ...(redirectUri === undefined ? {} : { redirect_uris: [redirectUri] }),
    };
    try {
      // discovery() refuses metadata whose `issuer` differs from the one asked for (OIDC Discovery
      // 1.0 section 4.3), so the pinned issuer also pins every endpoint and the jwks_uri.
      return await client.discovery(
        new URL(this.issuer),
        clientId,
        metadata,
        clientSecret === undefined ? client.None() : client.ClientSecretBasic(clientSecret),
        {
          timeout: HTTP_TIMEOUT_SECONDS,
          ...(allowInsecureHttp === true ? { execute: [client.allowInsecureRequests] } : {}),
        },
      );
    } catch (cause) {
      throw new GatewayError('service.unavailable', `discovery failed for ${this.providerId}`, { cause });
    }
  }

  /**
   * The key set to look `kid` up in. Fetched on first use and when older than the max age; fetched
   * again when `kid` is unknown, but only if the last fetch is older than the refetch interval.
   */
  async #keysFor(kid: string): Promise<ReadonlyMap<string, readonly ProviderKey[]>> {
    const now = this.#now().getTime();
    const age = now - this.#keysFetchedAt;
    const maxAge = (this.#opts.jwksMaxAgeSeconds ?? 3600) * 1000;
    const interval = (this.#opts.jwksRefetchIntervalSeconds ?? 60) * 1000;
    const keys = this.#keys;
    if (keys !== undefined && age <= maxAge && (keys.has(kid) || age < interval)) return keys;
    if (keys === undefined && age < interval) {
      throw new GatewayError('service.unavailable', 'provider JWKS could not be fetched recently', { retryAfter: Math.ceil((interval - age) / 1000) });
    }
    return this.#refreshKeys();
  }

  /** One fetch at a time: concurrent callers share it. */
  #refreshKeys(): Promise<Map<string, ProviderKey[]>> {
    this.#keysInFlight ??= (async () => {
      try {
        const config = await this.#configuration();
        const jwksUri = config.serverMetadata().jwks_uri;
        if (jwksUri === undefined) throw new GatewayError('service.unavailable', 'provider metadata has no jwks_uri');
        // Stamped before the fetch so that a failing provider is not retried by every request.
        this.#keysFetchedAt = this.#now().getTime();
        const keys = await fetchJwks(jwksUri, this.#opts.allowInsecureHttp === true);
        this.#keys = keys;
        return keys;
      } finally {
        this.#keysInFlight = undefined;
      }
    })();
    return this.#keysInFlight;
  }
}
