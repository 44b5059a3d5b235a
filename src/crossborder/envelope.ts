/**
 * The peer envelope (DESIGN.md section 3.2). Requests between gateways are compact JWS (ES256) signed
 * by the calling gateway; health-data answers are JWE(JWS(payload)): signed by the provider and
 * encrypted to the consumer's key from the trust list.
 *
 * Every decision on inbound data is an ordered list of one-rule checks, each throwing a typed
 * GatewayError. Headers are judged by our own allowlist before any key is touched, and the
 * cryptography (jose-core.ts, node:crypto) is only ever run with the one key and the one algorithm
 * those checks selected (RFC 8725 sections 2.1, 3.1, 3.2). node-jose, which this module used
 * before, cost 4-5x the raw cryptography per fetch (bench/README.md); it remains, as a development
 * dependency, the independent implementation the tests check interoperability against.
 */
import { createPrivateKey, createPublicKey, randomUUID, sign, verify, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import { GatewayError } from '../http/errors.js';
import { decryptCompact, DecryptionFailed, encryptCompact, signCompactEs256, verifyEs256, type JweParts } from './jose-core.js';
import type { ReplayStore } from './replay-store.js';

// ---------------------------------------------------------------------------------------------
// Profile constants

export const REQUEST_TYP = 'ncpeh-request+jwt';
export const RESPONSE_TYP = 'ncpeh-response+jwt';
/** RFC 7519 section 5.2: a JWE whose plaintext is a JWT says so with `cty: JWT`. */
const NESTED_CTY = 'JWT';
const SIGNATURE_ALG = 'ES256';
const CONTENT_ENC = 'A256GCM';
export type KeyManagementAlg = 'ECDH-ES+A256KW' | 'RSA-OAEP-256';
const KEY_MANAGEMENT_ALGS: readonly string[] = ['ECDH-ES+A256KW', 'RSA-OAEP-256'] satisfies KeyManagementAlg[];

const DEFAULT_TTL_SECONDS = 120;
const MAX_TTL_SECONDS = 300;
const DEFAULT_SKEW_SECONDS = 60;
const DEFAULT_MAX_LIFETIME_SECONDS = 300;
const DEFAULT_MAX_REQUEST_CHARS = 1024 * 1024;
const DEFAULT_MAX_RESPONSE_CHARS = 32 * 1024 * 1024;
const MIN_RSA_BITS = 2048;

/** The only JWS header members our profile uses; anything else is refused, not ignored. */
const JWS_HEADER_MEMBERS: ReadonlySet<string> = new Set(['alg', 'kid', 'typ']);
/** JWE members: `epk` is what ECDH-ES needs (RFC 7518 section 4.6.1.1), `cty` marks nesting. */
const JWE_HEADER_MEMBERS: ReadonlySet<string> = new Set(['alg', 'enc', 'kid', 'epk', 'cty']);
/**
 * Members named explicitly so the refusal says why. Keys carried in or pointed to by the token
 * (`jwk`, `jku`, `x5u`, `x5c`, `x5t`) would let the sender pick the key that verifies it
 * (RFC 8725 section 3.10 / RFC 7515 section 4.1.2-4.1.6); `zip` compresses before encryption and
 * leaks plaintext through length (RFC 8725 section 3.6); `crit` names extensions we do not
 * implement, which RFC 7515 section 4.1.11 obliges us to reject; `b64` (RFC 7797) changes what is
 * signed.
 */
const FORBIDDEN_HEADER_MEMBERS: readonly string[] = ['jwk', 'jku', 'x5u', 'x5c', 'x5t', 'x5t#S256', 'zip', 'crit', 'b64'];

// ---------------------------------------------------------------------------------------------
// Keys

/** Our ES256 signing key (private), loaded with `loadPrivateJwk(json, 'sig')`. */
export interface SigningKey {
  readonly use: 'sig';
  readonly kid: string;
  readonly alg: 'ES256';
  readonly privateKey: KeyObject;
  readonly publicJwk: PublicJwk;
}

/** One of our private encryption keys (several may be valid during rotation). */
export interface DecryptionKey {
  readonly use: 'enc';
  readonly kid: string;
  readonly alg: KeyManagementAlg;
  readonly privateKey: KeyObject;
  readonly publicJwk: PublicJwk;
}

export type PublicJwk =
  | { kty: 'EC'; crv: 'P-256'; x: string; y: string; kid: string; use: 'sig'; alg: 'ES256' }
  | { kty: 'EC'; crv: 'P-256'; x: string; y: string; kid: string; use: 'enc'; alg: 'ECDH-ES+A256KW' }
  | { kty: 'RSA'; n: string; e: string; kid: string; use: 'enc'; alg: 'RSA-OAEP-256' };

/** A JWKS as found in the trust list; members are validated here, not trusted. */
export interface JwksLike {
  readonly keys: readonly unknown[];
}

const b64urlString = z.string().regex(/^[A-Za-z0-9_-]+$/);
const keyMeta = {
  kid: z.string().min(1).max(256),
  use: z.string().optional(),
  alg: z.string().optional(),
};
const ecPublicSchema = z.object({ kty: z.literal('EC'), crv: z.literal('P-256'), x: b64urlString, y: b64urlString, ...keyMeta });
const rsaPublicSchema = z.object({ kty: z.literal('RSA'), n: b64urlString, e: b64urlString, ...keyMeta });
const publicSchema = z.discriminatedUnion('kty', [ecPublicSchema, rsaPublicSchema]);
const ecPrivateSchema = ecPublicSchema.extend({ d: b64urlString });
const rsaPrivateSchema = rsaPublicSchema.extend({
  d: b64urlString,
  p: b64urlString,
  q: b64urlString,
  dp: b64urlString,
  dq: b64urlString,
  qi: b64urlString,
});
const privateSchema = z.discriminatedUnion('kty', [ecPrivateSchema, rsaPrivateSchema]);

type ParsedPublic = z.infer<typeof publicSchema>;

/**
 * Decides the one algorithm a key may be used with, from its type and declared use; `alg`, when the
 * JWK states one, must agree. One key, one algorithm: RFC 8725 section 3.1.
 */
function algorithmFor(jwk: ParsedPublic, use: 'sig' | 'enc'): { ok: true; jwk: PublicJwk } | { ok: false; reason: string } {
  if (jwk.use !== undefined && jwk.use !== use) return { ok: false, reason: `key ${jwk.kid} has use ${jwk.use}, need ${use}` };
  let result: PublicJwk;
  if (jwk.kty === 'EC') {
    const base = { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y, kid: jwk.kid } as const;
    result = use === 'sig' ? { ...base, use: 'sig', alg: 'ES256' } : { ...base, use: 'enc', alg: 'ECDH-ES+A256KW' };
  } else {
    if (use === 'sig') return { ok: false, reason: `key ${jwk.kid}: only ES256 (EC P-256) signing keys are accepted` };
    result = { kty: 'RSA', n: jwk.n, e: jwk.e, kid: jwk.kid, use: 'enc', alg: 'RSA-OAEP-256' };
  }
  if (jwk.alg !== undefined && jwk.alg !== result.alg) {
    return { ok: false, reason: `key ${jwk.kid} declares alg ${jwk.alg}, expected ${result.alg}` };
  }
  // node:crypto rejects points off the curve and malformed moduli; the size rule is ours.
  try {
    const details = createPublicKey({ key: publicMembers(result), format: 'jwk' }).asymmetricKeyDetails;
    if (result.kty === 'RSA' && (details?.modulusLength ?? 0) < MIN_RSA_BITS) {
      return { ok: false, reason: `key ${jwk.kid}: RSA keys must have at least ${MIN_RSA_BITS} bits` };
    }
  } catch {
    return { ok: false, reason: `key ${jwk.kid} is not a valid public key` };
  }
  return { ok: true, jwk: result };
}

function publicMembers(jwk: PublicJwk): { kty: string; crv?: string; x?: string; y?: string; n?: string; e?: string } {
  return jwk.kty === 'EC' ? { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y } : { kty: jwk.kty, n: jwk.n, e: jwk.e };
}

function isSymmetric(json: unknown): boolean {
  return isRecord(json) && json['kty'] === 'oct';
}

/**
 * Loads one of our private keys from a JWK (configuration). Accepts EC P-256 for signing (ES256),
 * EC P-256 or RSA >= 2048 bits for encryption; `kid` is required. Symmetric (`kty: oct`) keys are
 * refused outright: a verifier that accepts an HMAC key can be fed a token "signed" with the public
 * key bytes (RFC 8725 section 2.1, algorithm confusion). Throws TypeError: this runs at boot, and
 * the configuration loader prints the message.
 */
export async function loadPrivateJwk(json: unknown, use: 'sig'): Promise<SigningKey>;
export async function loadPrivateJwk(json: unknown, use: 'enc'): Promise<DecryptionKey>;
export async function loadPrivateJwk(json: unknown, use: 'sig' | 'enc'): Promise<SigningKey | DecryptionKey> {
  if (isSymmetric(json)) throw new TypeError('symmetric (kty "oct") keys are not accepted');
  const parsed = privateSchema.safeParse(json);
  if (!parsed.success) {
    throw new TypeError(`not a usable private JWK (EC P-256 or RSA with kid): ${z.prettifyError(parsed.error)}`);
  }
  const jwk = parsed.data;
  const decided = algorithmFor(jwk, use);
  if (!decided.ok) throw new TypeError(decided.reason);
  const publicJwk = decided.jwk;
  const privateMembers =
    jwk.kty === 'EC'
      ? { ...publicMembers(publicJwk), d: jwk.d }
      : { ...publicMembers(publicJwk), d: jwk.d, p: jwk.p, q: jwk.q, dp: jwk.dp, dq: jwk.dq, qi: jwk.qi };
  // The private half must be well formed and belong to the public half we will publish. node:crypto
  // imports a JWK without checking that `d` matches `x`/`y` (or `n`), so prove it: a probe signed
  // with the private members must verify under the public ones.
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: privateMembers, format: 'jwk' });
    const probe = Buffer.from('ncpeh key pair check');
    const signature = sign('sha256', probe, privateKey);
    if (!verify('sha256', probe, createPublicKey({ key: publicMembers(publicJwk), format: 'jwk' }), signature)) {
      throw new Error('private key does not belong to the public key');
    }
  } catch (cause) {
    throw new TypeError(`key ${jwk.kid} is not a valid private key`, { cause });
  }
  if (publicJwk.use === 'sig') {
    return Promise.resolve({ use: 'sig', kid: publicJwk.kid, alg: 'ES256', privateKey, publicJwk });
  }
  return Promise.resolve({ use: 'enc', kid: publicJwk.kid, alg: publicJwk.alg, privateKey, publicJwk });
}

/** The public halves of our keys, for `/.well-known/jwks.json` and the trust list. */
export function publicJwks(keys: readonly (SigningKey | DecryptionKey)[]): { keys: PublicJwk[] } {
  return { keys: keys.map((k) => ({ ...k.publicJwk })) };
}

// ---------------------------------------------------------------------------------------------
// Small helpers

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const BASE64URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * Strict base64url (RFC 7515 section 2: no padding, no other alphabet), and canonical: one byte
 * string has exactly one accepted spelling. A length of 4n+1 encodes no byte string, and the bits
 * of the last character that carry no data (4 of them at 4n+2, 2 at 4n+3) must be zero, which is
 * what re-encoding the bytes would give, without re-encoding large parts.
 *
 * The alphabet is checked without a regular expression over the whole text (115 µs for a 93 KB
 * answer, 4% of the consumer's CPU): Node's decoder skips every character outside its tables, so
 * any such character makes the output shorter than 3/4 of the length (for lengths that are not
 * 4n+1, one skipped character already drops a byte); and its tables accept exactly this alphabet
 * plus the standard one's `+` and `/`, which are looked for directly.
 */
export function decodeBase64url(text: string): Buffer | undefined {
  const rest = text.length % 4;
  if (rest === 1) return undefined;
  if (text.includes('+') || text.includes('/')) return undefined;
  if (rest !== 0) {
    const last = BASE64URL_ALPHABET.indexOf(text.charAt(text.length - 1));
    if (last < 0 || (last & (rest === 2 ? 0x0f : 0x03)) !== 0) return undefined;
  }
  const bytes = Buffer.from(text, 'base64url');
  return bytes.length === Math.floor((text.length * 3) / 4) ? bytes : undefined;
}

/**
 * Small memo for work that depends only on a key's JSON: validating a trust-list key and importing
 * it into OpenSSL. Keyed by the exact JSON text, so a changed key is a new entry; emptied when full,
 * which bounds it against callers that present many keys.
 */
class KeyMemo<V> {
  readonly #entries = new Map<string, V>();

  get(key: string, make: () => V): V {
    const hit = this.#entries.get(key);
    if (hit !== undefined) return hit;
    const value = make();
    if (this.#entries.size >= 256) this.#entries.clear();
    this.#entries.set(key, value);
    return value;
  }
}

const publicKeyObjects = new KeyMemo<KeyObject>();

/** The OpenSSL handle of a validated public JWK (`algorithmFor` has already imported it once). */
function publicKeyObject(jwk: PublicJwk): KeyObject {
  const members = publicMembers(jwk);
  return publicKeyObjects.get(JSON.stringify(members), () => createPublicKey({ key: members, format: 'jwk' }));
}

/** JSON object or undefined. A `__proto__` member is refused: nothing downstream should merge it. */
function parseJsonObject(bytes: Buffer): Record<string, unknown> | undefined {
  let value: unknown;
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    // The reviver walks every node of a large document; it is needed only when a `__proto__` member
    // could be present, literally or spelled with \u escapes (measured: bench/README.md).
    value =
      text.includes('__proto__') || text.includes('\\u')
        ? JSON.parse(text, (key, v: unknown) => {
            if (key === '__proto__') throw new SyntaxError('__proto__ member');
            return v;
          })
        : JSON.parse(text);
  } catch {
    return undefined;
  }
  return isRecord(value) ? value : undefined;
}

function epochSeconds(date: Date): number {
  return Math.floor(date.getTime() / 1000);
}

// ---------------------------------------------------------------------------------------------
// JWS checks (shared by requests and the inner JWS of responses)

interface CompactJws {
  readonly text: string;
  readonly header: Record<string, unknown>;
  /** `BASE64URL(header) . BASE64URL(payload)`, what the signature covers. */
  readonly signingInput: string;
  readonly payload: Buffer;
  readonly signature: Buffer;
}

/** Three base64url parts (RFC 7515 section 7.1), a JSON-object header, bounded size. */
export function checkCompactShape(token: string, maxChars: number): CompactJws {
  if (token.length > maxChars) throw new GatewayError('envelope.malformed', 'envelope too large');
  const parts = token.split('.');
  if (parts.length !== 3) throw new GatewayError('envelope.malformed', 'not a compact JWS');
  const [headerPart = '', payloadPart = '', signaturePart = ''] = parts;
  const headerBytes = decodeBase64url(headerPart);
  const payloadBytes = decodeBase64url(payloadPart);
  const signature = decodeBase64url(signaturePart);
  // An empty signature is well formed (it is what `alg: none` carries, RFC 7518 section 3.6); the
  // header allowlist and the signature length rule refuse it with the precise reason.
  if (headerBytes === undefined || payloadBytes === undefined || signature === undefined) {
    throw new GatewayError('envelope.malformed', 'JWS parts are not base64url');
  }
  const header = parseJsonObject(headerBytes);
  if (header === undefined) throw new GatewayError('envelope.malformed', 'JWS header is not a JSON object');
  return { text: token, header, signingInput: token.slice(0, headerPart.length + 1 + payloadPart.length), payload: payloadBytes, signature };
}

/**
 * `alg` must be exactly ES256: never `none` (RFC 7518 section 3.6), never HMAC (a public key used
 * as an HMAC secret, RFC 8725 section 2.1), never RSA. Header members outside our profile are
 * refused rather than ignored. Runs before any key is touched.
 */
export function checkHeaderAllowlist(header: Record<string, unknown>): void {
  for (const name of FORBIDDEN_HEADER_MEMBERS) {
    if (Object.hasOwn(header, name)) throw new GatewayError('envelope.algorithm-forbidden', `header ${name} is not allowed`);
  }
  if (header['alg'] !== SIGNATURE_ALG) throw new GatewayError('envelope.algorithm-forbidden', 'alg must be ES256');
  for (const name of Object.keys(header)) {
    if (!JWS_HEADER_MEMBERS.has(name)) throw new GatewayError('envelope.algorithm-forbidden', `header ${name} is not allowed`);
  }
}

/**
 * Explicit typing (RFC 8725 section 3.11): a response can never pass as a request or the other way
 * round. Compared case-insensitively as RFC 7515 section 4.1.9 asks.
 */
export function checkType(header: Record<string, unknown>, expected: string): void {
  const typ = header['typ'];
  if (typeof typ !== 'string' || typ.toLowerCase() !== expected) {
    throw new GatewayError('envelope.malformed', `typ must be ${expected}`);
  }
}

/** Trust-list signing keys already judged (and imported) once: the verdict, or null for unusable. */
const usableSigningKeys = new KeyMemo<PublicJwk | null>();

/**
 * The `kid` must name a signing key the trust list gives for the country in question; a key is
 * only usable for ES256 if it is EC P-256 with `use: sig` (an EC key may otherwise be an encryption
 * key; RFC 8725 section 3.1). Ambiguous `kid`s are refused.
 */
export function checkKidKnown(header: Record<string, unknown>, trustedKeys: JwksLike): PublicJwk {
  const kid = header['kid'];
  if (typeof kid !== 'string' || kid.length === 0) throw new GatewayError('envelope.unknown-key', 'kid missing');
  const matches: PublicJwk[] = [];
  for (const candidate of trustedKeys.keys) {
    if (!isRecord(candidate) || candidate['kid'] !== kid || candidate['use'] !== 'sig') continue;
    const usable = usableSigningKeys.get(JSON.stringify(candidate), () => {
      const parsed = publicSchema.safeParse(candidate);
      if (!parsed.success) return null;
      const decided = algorithmFor(parsed.data, 'sig');
      // Shared by every later verification: frozen, so no caller can change it for the next.
      return decided.ok ? Object.freeze(decided.jwk) : null;
    });
    if (usable !== null) matches.push(usable);
  }
  const [only, ...others] = matches;
  if (only === undefined) throw new GatewayError('envelope.unknown-key', 'kid not among the trusted signing keys');
  if (others.length > 0) throw new GatewayError('envelope.unknown-key', 'kid is ambiguous');
  return only;
}

/**
 * ES256 signature over the JWS signing input with exactly that one key and only ES256. The
 * signature must be the 64-byte R||S form (RFC 7518 section 3.4). Returns the verified payload.
 */
export async function checkSignature(jws: CompactJws, signer: PublicJwk): Promise<Buffer> {
  if (jws.signature.length !== 64) throw new GatewayError('envelope.signature-invalid', 'ES256 signature must be 64 bytes');
  if (signer.kty !== 'EC' || signer.use !== 'sig') throw new GatewayError('envelope.unknown-key', 'trusted key is not an ES256 key');
  let key: KeyObject;
  try {
    key = publicKeyObject(signer);
  } catch (cause) {
    throw new GatewayError('envelope.unknown-key', 'trusted key is unusable', { cause });
  }
  let valid: boolean;
  try {
    valid = verifyEs256(key, jws.signingInput, jws.signature);
  } catch (cause) {
    throw new GatewayError('envelope.signature-invalid', undefined, { cause });
  }
  if (!valid) throw new GatewayError('envelope.signature-invalid');
  return Promise.resolve(jws.payload);
}

function checkClaimsJson(payload: Buffer): Record<string, unknown> {
  const claims = parseJsonObject(payload);
  if (claims === undefined) throw new GatewayError('envelope.malformed', 'claims are not a JSON object');
  return claims;
}

// ---------------------------------------------------------------------------------------------
// Requests

export interface SignRequestOptions {
  key: SigningKey;
  /** Our NCP id. */
  iss: string;
  /** The NCP id of the gateway we call. */
  aud: string;
  /** Default 120, at most 300 (DESIGN.md section 3.2: exp <= 5 min). */
  ttlSeconds?: number;
  now?: Date;
}

const RESERVED_CLAIMS: readonly string[] = ['iss', 'aud', 'iat', 'exp', 'nbf', 'jti'];

/** Signs `claims` as a compact JWS (ES256) with an explicit `typ`; the one signer of every JWT we issue. */
export async function signCompact(key: SigningKey, typ: string, claims: Record<string, unknown>): Promise<string> {
  return Promise.resolve(signCompactEs256(key.privateKey, { alg: SIGNATURE_ALG, kid: key.kid, typ }, JSON.stringify(claims)));
}

/** Signs a peer request: compact JWS, ES256, `typ: ncpeh-request+jwt`, payload + iss/aud/iat/exp/jti. */
export async function signRequest(payload: Record<string, unknown>, opts: SignRequestOptions): Promise<string> {
  const ttl = opts.ttlSeconds ?? DEFAULT_TTL_SECONDS;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TTL_SECONDS) {
    throw new RangeError(`ttlSeconds must be an integer in 1..${MAX_TTL_SECONDS}`);
  }
  for (const name of RESERVED_CLAIMS) {
    if (Object.hasOwn(payload, name)) throw new TypeError(`payload must not set the ${name} claim`);
  }
  const iat = epochSeconds(opts.now ?? new Date());
  return signCompact(opts.key, REQUEST_TYP, { ...payload, iss: opts.iss, aud: opts.aud, iat, exp: iat + ttl, jti: randomUUID() });
}

export interface VerifyRequestOptions {
  /** Signing keys the trust list gives for the TLS-authenticated calling country. */
  trustedKeys: JwksLike;
  /** That country's NCP id. */
  expectedIss: string;
  /** Our NCP id. */
  expectedAud: string;
  now?: Date;
  /** Tolerated clock difference, default 60 s. */
  skewSeconds?: number;
  /** Largest accepted exp - iat, default 300 s. */
  maxLifetimeSeconds?: number;
  /** Size bound on the compact token, default 1 MiB. */
  maxChars?: number;
  replay: ReplayStore;
}

export interface VerifiedRequest {
  /** All claims, including the reserved ones below. */
  readonly claims: Record<string, unknown>;
  readonly jti: string;
  readonly iss: string;
  readonly aud: string;
  readonly iat: number;
  readonly exp: number;
  /** The trusted key that verified the signature (for the audit trail). */
  readonly kid: string;
}

const requestClaimsSchema = z.looseObject({
  iss: z.string().min(1).max(256),
  // Our profile: exactly one audience, a string (RFC 7519 section 4.1.3 also allows arrays).
  aud: z.string().min(1).max(256),
  iat: z.int(),
  exp: z.int(),
  nbf: z.int().optional(),
  jti: z.string().min(16).max(128),
});
type RequestClaims = z.infer<typeof requestClaimsSchema>;

export function checkClaimsShape(claims: Record<string, unknown>): RequestClaims {
  const parsed = requestClaimsSchema.safeParse(claims);
  if (!parsed.success) throw new GatewayError('envelope.malformed', 'claims do not match the request profile');
  if (parsed.data.exp <= parsed.data.iat) throw new GatewayError('envelope.malformed', 'exp must be after iat');
  return parsed.data;
}

/** `iss` must be the country the TLS certificate authenticated (DESIGN.md section 3.2). */
export function checkIssuer(claims: RequestClaims, expectedIss: string): void {
  if (claims.iss !== expectedIss) throw new GatewayError('peer.country-mismatch');
}

/** RFC 7519 section 4.1.3: a recipient not named in `aud` must reject the token. */
export function checkAudience(claims: RequestClaims, expectedAud: string): void {
  if (claims.aud !== expectedAud) throw new GatewayError('envelope.wrong-audience');
}

/** RFC 7519 sections 4.1.4-4.1.6, with a small skew for clocks (RFC 7519 section 4.1.4 allows it). */
export function checkNotExpired(claims: RequestClaims, now: number, skew: number): void {
  if (now >= claims.exp + skew) throw new GatewayError('envelope.expired', 'expired');
  if (claims.iat > now + skew) throw new GatewayError('envelope.expired', 'issued in the future');
  if (claims.nbf !== undefined && claims.nbf > now + skew) throw new GatewayError('envelope.expired', 'not yet valid');
}

/** A short lifetime bounds how long the replay cache must remember a `jti` (DESIGN.md 3.2). */
export function checkLifetime(claims: RequestClaims, maxLifetime: number): void {
  if (claims.exp - claims.iat > maxLifetime) throw new GatewayError('envelope.lifetime-too-long');
}

/**
 * Each `jti` is accepted once per issuer (RFC 7519 section 4.1.7). Kept until the token can no
 * longer pass `checkNotExpired`, i.e. exp + skew. Runs last, so only fully valid requests use
 * the cache.
 */
export async function checkNotReplayed(claims: RequestClaims, replay: ReplayStore, skew: number): Promise<void> {
  const first = await replay.remember(`peer-request:${claims.iss}`, claims.jti, new Date((claims.exp + skew) * 1000));
  if (!first) throw new GatewayError('envelope.replayed');
}

/** Verifies a peer request; the checks run in the order listed and the first failure is thrown. */
export async function verifyRequest(jws: string, opts: VerifyRequestOptions): Promise<VerifiedRequest> {
  const now = epochSeconds(opts.now ?? new Date());
  const skew = opts.skewSeconds ?? DEFAULT_SKEW_SECONDS;

  const token = checkCompactShape(jws, opts.maxChars ?? DEFAULT_MAX_REQUEST_CHARS);
  checkHeaderAllowlist(token.header);
  checkType(token.header, REQUEST_TYP);
  const signer = checkKidKnown(token.header, opts.trustedKeys);
  const claims = checkClaimsJson(await checkSignature(token, signer));
  const typed = checkClaimsShape(claims);
  checkIssuer(typed, opts.expectedIss);
  checkAudience(typed, opts.expectedAud);
  checkNotExpired(typed, now, skew);
  checkLifetime(typed, opts.maxLifetimeSeconds ?? DEFAULT_MAX_LIFETIME_SECONDS);
  await checkNotReplayed(typed, opts.replay, skew);

  return { claims, jti: typed.jti, iss: typed.iss, aud: typed.aud, iat: typed.iat, exp: typed.exp, kid: signer.kid };
}

// ---------------------------------------------------------------------------------------------
// Responses: JWE(JWS(payload))

export interface SealResponseOptions {
  /** Our signing key: the consumer checks that the signer is the country it asked. */
  signingKey: SigningKey;
  /** The consumer's public encryption key from the trust list (EC P-256 or RSA >= 2048, use enc). */
  recipientKey: unknown;
  now?: Date;
}

/**
 * Seals a response. The inner JWS (ES256, `typ: ncpeh-response+jwt`) carries the claims
 * `{ iat, payload }`: the payload is wrapped rather than merged so that any JSON value (array,
 * string, FHIR resource with its own `iat`-looking members) round-trips unchanged, and `iat` lets
 * the consumer refuse stale answers. The JWE uses ECDH-ES+A256KW for an EC recipient or
 * RSA-OAEP-256 for an RSA one, always A256GCM, no `zip` (RFC 8725 section 3.6), `cty: JWT`.
 *
 * For ECDH-ES each message gets a fresh ephemeral P-256 key. Ephemeral keys are never reused: reuse
 * would make every message to one recipient share a key-wrapping key (RFC 7518 section 4.6).
 */
export async function sealResponse(payload: unknown, opts: SealResponseOptions): Promise<string> {
  // JSON has no `undefined`: the member would vanish and the consumer would refuse the claims.
  if (payload === undefined) throw new TypeError('payload must be a JSON value');
  const recipient = recipientPublicKey(opts.recipientKey);
  const iat = epochSeconds(opts.now ?? new Date());
  const inner = await signCompact(opts.signingKey, RESPONSE_TYP, { iat, payload });
  if (recipient.alg === 'ES256') throw new GatewayError('trust-list.invalid', 'recipient key is a signing key');
  return encryptCompact({ alg: recipient.alg, kid: recipient.kid, publicKey: publicKeyObject(recipient) }, inner, { cty: NESTED_CTY });
}

const usableRecipientKeys = new KeyMemo<PublicJwk>();

/** The trust list's encryption key for the consumer; an unusable one is a trust-list defect. */
function recipientPublicKey(value: unknown): PublicJwk {
  if (isRecord(value)) {
    const text = JSON.stringify(value);
    // Only keys that passed every rule below are memoised; a refused one is judged again each time.
    let fresh: PublicJwk | undefined;
    const known = usableRecipientKeys.get(text, () => (fresh = Object.freeze(judgeRecipientKey(value))));
    return fresh ?? known;
  }
  return judgeRecipientKey(value);
}

function judgeRecipientKey(value: unknown): PublicJwk {
  if (isSymmetric(value)) throw new GatewayError('trust-list.invalid', 'symmetric recipient key');
  const parsed = publicSchema.safeParse(value);
  if (!parsed.success) throw new GatewayError('trust-list.invalid', 'recipient key is not an EC P-256 or RSA JWK with kid');
  if (parsed.data.use !== 'enc') throw new GatewayError('trust-list.invalid', 'recipient key must have use enc');
  const decided = algorithmFor(parsed.data, 'enc');
  if (!decided.ok) throw new GatewayError('trust-list.invalid', decided.reason);
  return decided.jwk;
}

export interface OpenResponseOptions {
  /** Our private encryption keys; the JWE `kid` picks one. */
  decryptionKeys: readonly DecryptionKey[];
  /** Signing keys the trust list gives for the country we asked. */
  expectedSignerKeys: JwksLike;
  now?: Date;
  /** Tolerated clock difference, default 60 s. */
  skewSeconds?: number;
  /** Oldest accepted inner `iat`, default 300 s. */
  maxAgeSeconds?: number;
  /** Size bound on the compact JWE, default 32 MiB. */
  maxChars?: number;
}

interface CompactJwe {
  readonly text: string;
  readonly header: Record<string, unknown>;
  readonly parts: JweParts;
}

/**
 * Five base64url parts (RFC 7516 section 7.1); the encrypted key is present (both our algorithms
 * wrap a key, only `dir`/`ECDH-ES` leave it empty); A256GCM needs a 96-bit IV and a 128-bit tag
 * (RFC 7518 section 5.3).
 */
export function checkCompactJweShape(token: string, maxChars: number): CompactJwe {
  if (token.length > maxChars) throw new GatewayError('envelope.malformed', 'envelope too large');
  const parts = token.split('.');
  if (parts.length !== 5) throw new GatewayError('envelope.malformed', 'not a compact JWE');
  const decoded = parts.map(decodeBase64url);
  const [header, encryptedKey, iv, ciphertext, tag] = decoded;
  if (header === undefined || encryptedKey === undefined || iv === undefined || ciphertext === undefined || tag === undefined) {
    throw new GatewayError('envelope.malformed', 'JWE parts are not base64url');
  }
  const parsedHeader = parseJsonObject(header);
  if (parsedHeader === undefined) throw new GatewayError('envelope.malformed', 'JWE header is not a JSON object');
  if (encryptedKey.length === 0) throw new GatewayError('envelope.algorithm-forbidden', 'no encrypted key (dir or ECDH-ES direct)');
  if (iv.length !== 12 || tag.length !== 16) throw new GatewayError('envelope.malformed', 'A256GCM needs a 96-bit IV and a 128-bit tag');
  return { text: token, header: parsedHeader, parts: { protectedHeader: parts[0] ?? '', encryptedKey, iv, ciphertext, tag } };
}

/**
 * Key management only by ECDH-ES+A256KW or RSA-OAEP-256, content only A256GCM. Refused, before any
 * key is touched: RSA1_5 (Bleichenbacher padding oracle, RFC 8725 section 3.2), PBES2* (password
 * based, and a DoS through `p2c`), `dir` and bare A*KW (shared symmetric keys), `zip`, embedded or
 * referenced keys, `crit`, and any member outside the profile.
 */
export function checkJweHeaderAllowlist(header: Record<string, unknown>): KeyManagementAlg {
  for (const name of FORBIDDEN_HEADER_MEMBERS) {
    if (Object.hasOwn(header, name)) throw new GatewayError('envelope.algorithm-forbidden', `header ${name} is not allowed`);
  }
  const alg = header['alg'];
  if (alg !== 'ECDH-ES+A256KW' && alg !== 'RSA-OAEP-256') {
    throw new GatewayError('envelope.algorithm-forbidden', `key management must be one of ${KEY_MANAGEMENT_ALGS.join(', ')}`);
  }
  if (header['enc'] !== CONTENT_ENC) throw new GatewayError('envelope.algorithm-forbidden', 'enc must be A256GCM');
  for (const name of Object.keys(header)) {
    if (!JWE_HEADER_MEMBERS.has(name)) throw new GatewayError('envelope.algorithm-forbidden', `header ${name} is not allowed`);
  }
  return alg;
}

/** RFC 7519 section 5.2: the plaintext is a nested JWT (compared case-insensitively, RFC 7515 4.1.10). */
export function checkNestedContentType(header: Record<string, unknown>): void {
  const cty = header['cty'];
  if (typeof cty !== 'string' || cty.toUpperCase() !== NESTED_CTY) throw new GatewayError('envelope.malformed', 'cty must be JWT');
}

const epkSchema = z.strictObject({ kty: z.literal('EC'), crv: z.literal('P-256'), x: b64urlString, y: b64urlString });

/**
 * ECDH-ES requires `epk` (RFC 7518 section 4.6.1.1) and nothing else may carry a key. It must be a
 * P-256 public key: no `d`, no other curve, and a point on the curve (invalid-curve attacks on
 * ECDH-ES leak the recipient's private key; RFC 7516 section 11.5 / RFC 8725 section 3.4).
 */
export function checkEphemeralKey(header: Record<string, unknown>, alg: KeyManagementAlg): KeyObject | undefined {
  const epk = header['epk'];
  if (alg === 'RSA-OAEP-256') {
    if (epk !== undefined) throw new GatewayError('envelope.algorithm-forbidden', 'epk only belongs with ECDH-ES');
    return undefined;
  }
  const parsed = epkSchema.safeParse(epk);
  if (!parsed.success) throw new GatewayError('envelope.algorithm-forbidden', 'epk must be an EC P-256 public key');
  try {
    // OpenSSL refuses coordinates that are not a point on the named curve.
    return createPublicKey({ key: parsed.data, format: 'jwk' });
  } catch (cause) {
    throw new GatewayError('envelope.algorithm-forbidden', 'epk is not a point on P-256', { cause });
  }
}

/** The JWE `kid` must name one of our decryption keys, for the algorithm that key is meant for. */
export function checkRecipientKid(header: Record<string, unknown>, alg: KeyManagementAlg, keys: readonly DecryptionKey[]): DecryptionKey {
  const kid = header['kid'];
  const key = typeof kid === 'string' ? keys.find((k) => k.kid === kid && k.alg === alg) : undefined;
  if (key === undefined) throw new GatewayError('envelope.unknown-key', 'JWE kid does not name one of our decryption keys');
  return key;
}

/** Decrypts with exactly the selected key and its one algorithm, content always A256GCM. */
export async function checkDecrypts(jwe: CompactJwe, key: DecryptionKey, epk: KeyObject | undefined): Promise<Buffer> {
  if (jwe.header['enc'] !== CONTENT_ENC || jwe.header['alg'] !== key.alg) throw new GatewayError('envelope.algorithm-forbidden', 'JWE algorithms do not match the key');
  try {
    if (key.alg === 'ECDH-ES+A256KW') {
      if (epk === undefined) throw new GatewayError('envelope.algorithm-forbidden', 'ECDH-ES needs epk');
      return Promise.resolve(decryptCompact(jwe.parts, { alg: key.alg, privateKey: key.privateKey, epk }));
    }
    return Promise.resolve(decryptCompact(jwe.parts, { alg: key.alg, privateKey: key.privateKey }));
  } catch (cause) {
    if (cause instanceof GatewayError) throw cause;
    throw new GatewayError('envelope.decryption-failed', undefined, cause instanceof DecryptionFailed ? {} : { cause });
  }
}

const responseClaimsSchema = z.object({ iat: z.int(), payload: z.unknown() });

function checkResponseClaimsShape(claims: Record<string, unknown>): { iat: number; payload: unknown } {
  const parsed = responseClaimsSchema.safeParse(claims);
  if (!parsed.success || !Object.hasOwn(claims, 'payload')) {
    throw new GatewayError('envelope.malformed', 'claims do not match the response profile');
  }
  return { iat: parsed.data.iat, payload: parsed.data.payload };
}

/** A response signed in the future or longer ago than maxAge is refused (stale or replayed). */
function checkResponseFresh(iat: number, now: number, skew: number, maxAge: number): void {
  if (iat > now + skew) throw new GatewayError('envelope.expired', 'issued in the future');
  if (now - iat > maxAge + skew) throw new GatewayError('envelope.expired', 'response too old');
}

/** Opens a sealed response and returns its payload; the checks run in the order listed. */
export async function openResponse(jwe: string, opts: OpenResponseOptions): Promise<unknown> {
  return (await openResponseSigned(jwe, opts)).payload;
}

/** What a verified answer proves about itself: who signed it, when, and the signature to keep. */
export interface OpenedResponse {
  readonly payload: unknown;
  /** The provider's inner compact JWS, verifiable later against its trust-list keys. */
  readonly jws: string;
  readonly signerKid: string;
  readonly signedAt: Date;
}

/** `openResponse`, keeping the inner signature (e.g. as a FHIR Bundle.signature for provenance). */
export async function openResponseSigned(jwe: string, opts: OpenResponseOptions): Promise<OpenedResponse> {
  const now = epochSeconds(opts.now ?? new Date());
  const skew = opts.skewSeconds ?? DEFAULT_SKEW_SECONDS;

  const outer = checkCompactJweShape(jwe, opts.maxChars ?? DEFAULT_MAX_RESPONSE_CHARS);
  const alg = checkJweHeaderAllowlist(outer.header);
  const epk = checkEphemeralKey(outer.header, alg);
  checkNestedContentType(outer.header);
  const key = checkRecipientKid(outer.header, alg, opts.decryptionKeys);
  const plaintext = await checkDecrypts(outer, key, epk);

  let innerText: string;
  try {
    innerText = new TextDecoder('utf-8', { fatal: true }).decode(plaintext);
  } catch {
    throw new GatewayError('envelope.malformed', 'plaintext is not UTF-8');
  }
  const inner = checkCompactShape(innerText, Number.POSITIVE_INFINITY);
  checkHeaderAllowlist(inner.header);
  checkType(inner.header, RESPONSE_TYP);
  const signer = checkKidKnown(inner.header, opts.expectedSignerKeys);
  const claims = checkResponseClaimsShape(checkClaimsJson(await checkSignature(inner, signer)));
  checkResponseFresh(claims.iat, now, skew, opts.maxAgeSeconds ?? DEFAULT_MAX_LIFETIME_SECONDS);
  return { payload: claims.payload, jws: innerText, signerKid: signer.kid, signedAt: new Date(claims.iat * 1000) };
}

/**
 * Verifies a compact ES256 JWS of a given `typ` against a set of trusted keys and returns its claims
 * object, with the same checks as peer requests (shape, header allowlist, explicit type, kid,
 * signature). Claim semantics (iss, aud, times) are the caller's: tokens differ in what they mean.
 */
export async function verifySignedClaims(token: string, opts: { typ: string; trustedKeys: JwksLike; maxChars?: number }): Promise<Record<string, unknown>> {
  const jws = checkCompactShape(token, opts.maxChars ?? 16 * 1024);
  checkHeaderAllowlist(jws.header);
  checkType(jws.header, opts.typ);
  const signer = checkKidKnown(jws.header, opts.trustedKeys);
  return checkClaimsJson(await checkSignature(jws, signer));
}

/**
 * A string claim of a compact JWS read WITHOUT verifying it. Only for routing and for refusing
 * early (which provider must verify a token, whether a request's issuer contradicts its
 * certificate); nothing may ever be granted on it.
 */
export function unverifiedClaim(token: string, name: string): string | undefined {
  try {
    const claims: unknown = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8'));
    if (typeof claims !== 'object' || claims === null || !Object.hasOwn(claims, name)) return undefined;
    const value: unknown = (claims as Record<string, unknown>)[name];
    return typeof value === 'string' ? value : undefined;
  } catch {
    return undefined;
  }
}
