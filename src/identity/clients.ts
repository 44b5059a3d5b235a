/**
 * Registered hospital EHR clients (issue 4, DESIGN.md section 1): each one authenticates to the
 * hospital API with `private_key_jwt`, a JWT it signs with its own private key and we verify with the
 * public keys registered for it (RFC 7523 sections 2.2 and 3, OpenID Connect Core 1.0 section 9).
 * Unknown clients are refused.
 *
 * The checks run as an ordered list, each one rule. Keys are selected from the one client the token
 * names and nowhere else, so a client can never authenticate with another client's key. JOSE policy
 * follows RFC 8725: an explicit algorithm allowlist decided before any key is touched (section 3.1),
 * never `none` or HMAC (section 2.1: an HMAC "signed" with a public key), no keys carried in or
 * pointed to by the token (section 3.10), `jti` replay protection (section 3.10, RFC 7523 section 3
 * item 7).
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import { refusePrivateJwkMembers } from '../trust/jwk.js';
import { checkCompactShape } from '../crossborder/envelope.js';
import { verifyEs256, verifyRsaJws } from '../crossborder/jose-core.js';
import type { ReplayStore } from '../crossborder/replay-store.js';
import { GatewayError, isGatewayError } from '../http/errors.js';

// ---------------------------------------------------------------------------------------------
// Configuration

export type ClientSigningAlg = 'ES256' | 'PS256' | 'RS256';
const CLIENT_ALGS: readonly ClientSigningAlg[] = ['ES256', 'PS256', 'RS256'];

const BASE64URL = /^[A-Za-z0-9_-]+$/;
const MIN_RSA_BITS = 2048;

const kid = z.string().min(1).max(256);
const ecKeySchema = z.object({
  kty: z.literal('EC'),
  crv: z.literal('P-256'),
  x: z.string().length(43).regex(BASE64URL),
  y: z.string().length(43).regex(BASE64URL),
  kid,
  use: z.literal('sig').optional(),
  alg: z.literal('ES256').optional(),
});
const rsaKeySchema = z.object({
  kty: z.literal('RSA'),
  n: z.string().regex(BASE64URL),
  e: z.string().min(1).max(8).regex(BASE64URL),
  kid,
  use: z.literal('sig').optional(),
  // One key, one algorithm (RFC 8725 section 3.1): an RSA key must say whether it is for PKCS#1 v1.5
  // or PSS signatures.
  alg: z.enum(['RS256', 'PS256']),
});

/**
 * A client's public signing key. Private members are refused with their own message: a registration
 * holding a private key means the secret has leaked into our configuration.
 */
const ClientJwkSchema = z
  .unknown()
  .superRefine(refusePrivateJwkMembers)
  .pipe(z.discriminatedUnion('kty', [ecKeySchema, rsaKeySchema]))
  .superRefine((jwk, ctx) => {
    // Let OpenSSL import it once at boot: points off the curve and malformed moduli fail here.
    try {
      const members = jwk.kty === 'EC' ? { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y } : { kty: jwk.kty, n: jwk.n, e: jwk.e };
      const details = createPublicKey({ key: members, format: 'jwk' }).asymmetricKeyDetails;
      if (jwk.kty === 'RSA' && (details?.modulusLength ?? 0) < MIN_RSA_BITS) {
        ctx.addIssue({ code: 'custom', message: `RSA keys must have at least ${MIN_RSA_BITS} bits` });
      }
    } catch {
      ctx.addIssue({ code: 'custom', message: 'not a valid public key' });
    }
  })
  .transform((jwk) => (jwk.kty === 'EC' ? { ...jwk, alg: 'ES256' as const } : jwk));
export type ClientJwk = z.output<typeof ClientJwkSchema>;

/** RFC 6749 section 3.3 scope-token. */
const scopeToken = z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, 'RFC 6749 scope token');

export const ClientSchema = z
  .strictObject({
    /** Our `client_id`; the `iss` and `sub` of its assertions (RFC 7523 section 3 items 1-2). */
    id: z.string().min(1).max(256).regex(/^[\x21-\x7E]+$/, 'printable ASCII without spaces'),
    name: z.string().min(1).max(200),
    scopes: z.array(scopeToken),
    jwks: z.strictObject({ keys: z.array(ClientJwkSchema) }),
    /** SHA-256 fingerprints (lowercase hex) of client certificates, for mutual TLS. */
    certSha256: z.array(z.string().regex(/^[0-9a-f]{64}$/, 'lowercase hex SHA-256')).optional(),
  })
  .superRefine((client, ctx) => {
    const kids = new Set<string>();
    for (const key of client.jwks.keys) {
      if (kids.has(key.kid)) ctx.addIssue({ code: 'custom', message: `kid ${key.kid} is used twice`, path: ['jwks', 'keys'] });
      kids.add(key.kid);
    }
    if (client.jwks.keys.length === 0 && (client.certSha256 ?? []).length === 0) {
      ctx.addIssue({ code: 'custom', message: 'a client needs a signing key or a certificate fingerprint', path: ['jwks', 'keys'] });
    }
  });
export type RegisteredClient = z.output<typeof ClientSchema>;

export const ClientsConfigSchema = z.array(ClientSchema).superRefine((clients, ctx) => {
  const ids = new Set<string>();
  for (const [index, client] of clients.entries()) {
    if (ids.has(client.id)) ctx.addIssue({ code: 'custom', message: `client id ${client.id} is used twice`, path: [index, 'id'] });
    ids.add(client.id);
  }
});
export type ClientsConfig = z.output<typeof ClientsConfigSchema>;

// ---------------------------------------------------------------------------------------------
// Authentication

export interface AuthenticateClientOptions {
  readonly clients: readonly RegisteredClient[];
  /** Our token endpoint URL, e.g. `${publicUrl}/api/v1/auth/hcp` (RFC 7523 section 3 item 3). */
  readonly expectedAudience: string;
  readonly replay: ReplayStore;
  readonly now?: Date;
  /** Default 60 (DESIGN.md section 6). */
  readonly skewSeconds?: number;
  /** Largest accepted lifetime, default 300 s. */
  readonly maxLifetimeSeconds?: number;
}

const DEFAULT_SKEW_SECONDS = 60;
const DEFAULT_MAX_LIFETIME_SECONDS = 300;
const MAX_ASSERTION_CHARS = 8 * 1024;

/** Header members the profile uses; everything else is refused rather than ignored. */
const HEADER_MEMBERS: ReadonlySet<string> = new Set(['alg', 'kid', 'typ']);
/** Named so the refusal says why (RFC 8725 section 3.10, RFC 7515 sections 4.1.2-4.1.6 and 4.1.11). */
const FORBIDDEN_HEADER_MEMBERS: readonly string[] = ['jwk', 'jku', 'x5u', 'x5c', 'x5t', 'x5t#S256', 'zip', 'crit', 'b64'];
/**
 * Accepted `typ` values (compared case-insensitively, RFC 7515 section 4.1.9): none, plain `JWT`, or
 * the explicit type of draft-ietf-oauth-rfc7523bis. Anything else is another kind of token (an HCP
 * assertion, a peer request) and must not pass as a client assertion (RFC 8725 section 3.11).
 */
const ACCEPTED_TYPES: readonly string[] = ['jwt', 'client-authentication+jwt'];

function failed(reason: string, cause?: unknown): GatewayError {
  return new GatewayError('client.authentication-failed', reason, cause === undefined ? {} : { cause });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseJsonObject(bytes: Buffer): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
    return isRecord(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

type Jws = ReturnType<typeof checkCompactShape>;

/** Three base64url parts with a JSON-object header (RFC 7515 section 7.1): the envelope's rule. */
export function checkShape(assertion: string): Jws {
  try {
    return checkCompactShape(assertion, MAX_ASSERTION_CHARS);
  } catch (cause) {
    if (isGatewayError(cause)) throw failed(cause.detail ?? 'malformed', cause);
    throw cause;
  }
}

/** ES256, PS256 or RS256 only; never `none`, never HMAC; no key-bearing or critical headers. */
export function checkHeaderAllowlist(header: Record<string, unknown>): ClientSigningAlg {
  for (const name of FORBIDDEN_HEADER_MEMBERS) {
    if (Object.hasOwn(header, name)) throw failed(`header ${name} is not allowed`);
  }
  const alg = CLIENT_ALGS.find((a) => a === header['alg']);
  if (alg === undefined) throw failed(`alg must be one of ${CLIENT_ALGS.join(', ')}`);
  for (const name of Object.keys(header)) {
    if (!HEADER_MEMBERS.has(name)) throw failed(`header ${name} is not allowed`);
  }
  const typ = header['typ'];
  if (typ !== undefined && (typeof typ !== 'string' || !ACCEPTED_TYPES.includes(typ.toLowerCase()))) {
    throw failed('typ is not a client assertion type');
  }
  return alg;
}

/**
 * RFC 7523 section 3 items 1-2 and OIDC Core section 9: `iss` and `sub` are both the client_id.
 * Read from the not-yet-verified payload only to choose the key; the signed claims are checked again
 * after the signature.
 */
export function checkIssuerIsSubject(assertion: string): string {
  const payloadPart = assertion.split('.')[1] ?? '';
  const payload = parseJsonObject(Buffer.from(payloadPart, 'base64url'));
  const iss = payload?.['iss'];
  const sub = payload?.['sub'];
  if (typeof iss !== 'string' || iss.length === 0) throw failed('iss missing');
  if (iss !== sub) throw failed('iss and sub differ');
  return iss;
}

/** The client must be registered; this is the one refusal with its own code. */
export function checkRegistered(clientId: string, clients: readonly RegisteredClient[]): RegisteredClient {
  const client = clients.find((c) => c.id === clientId);
  if (client === undefined) throw new GatewayError('client.unknown');
  return client;
}

/** The `kid` must name one of THIS client's keys, registered for the algorithm in the header. */
export function checkKidKnown(header: Record<string, unknown>, alg: ClientSigningAlg, client: RegisteredClient): ClientJwk {
  const wanted = header['kid'];
  if (typeof wanted !== 'string' || wanted.length === 0) throw failed('kid missing');
  const key = client.jwks.keys.find((k) => k.kid === wanted);
  if (key === undefined) throw failed('kid is not registered for this client');
  if (key.alg !== alg) throw failed(`key ${key.kid} is registered for ${key.alg}, not ${alg}`);
  return key;
}

/** Verifies with exactly that key and only its algorithm; nothing in the token can choose another. */
export async function checkSignature(jws: Jws, key: ClientJwk): Promise<Buffer> {
  // RFC 7518 section 3.4: an ES256 signature is the 64-byte R||S pair, nothing else.
  if (key.alg === 'ES256' && jws.signature.length !== 64) throw failed('ES256 signature must be 64 bytes');
  let publicKey: KeyObject;
  try {
    const members = key.kty === 'EC' ? { kty: key.kty, crv: key.crv, x: key.x, y: key.y } : { kty: key.kty, n: key.n, e: key.e };
    publicKey = createPublicKey({ key: members, format: 'jwk' });
  } catch (cause) {
    throw failed('registered key is unusable', cause);
  }
  let valid: boolean;
  try {
    valid = key.alg === 'ES256' ? verifyEs256(publicKey, jws.signingInput, jws.signature) : verifyRsaJws(key.alg, publicKey, jws.signingInput, jws.signature);
  } catch (cause) {
    throw failed('signature does not verify', cause);
  }
  if (!valid) throw failed('signature does not verify');
  return Promise.resolve(jws.payload);
}

const clientClaimsSchema = z.object({
  iss: z.string().min(1),
  sub: z.string().min(1),
  aud: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
  exp: z.int(),
  iat: z.int().optional(),
  nbf: z.int().optional(),
  jti: z.string().optional(),
});
type ClientClaims = z.infer<typeof clientClaimsSchema>;

function checkClaimsShape(payload: Buffer, clientId: string): ClientClaims {
  const json = parseJsonObject(payload);
  const parsed = clientClaimsSchema.safeParse(json);
  if (!parsed.success) throw failed('claims do not match RFC 7523');
  // Same bytes as read before the signature, but the decision must rest on signed data.
  if (parsed.data.iss !== clientId || parsed.data.sub !== clientId) throw failed('iss and sub must be the client id');
  return parsed.data;
}

/** RFC 7523 section 3 item 3: the audience must identify us (our token endpoint URL). */
export function checkAudience(claims: ClientClaims, expectedAudience: string): void {
  const audiences = typeof claims.aud === 'string' ? [claims.aud] : claims.aud;
  if (!audiences.includes(expectedAudience)) throw failed('wrong audience');
}

/** RFC 7523 section 3 items 4-6: expired, not yet valid, or issued in the future -> refused. */
export function checkTimes(claims: ClientClaims, now: number, skew: number): void {
  if (now >= claims.exp + skew) throw failed('expired');
  if (claims.nbf !== undefined && claims.nbf > now + skew) throw failed('not yet valid');
  if (claims.iat !== undefined && claims.iat > now + skew) throw failed('issued in the future');
}

/** A short lifetime bounds how long the replay cache must remember each `jti`. */
export function checkLifetime(claims: ClientClaims, now: number, maxLifetime: number, skew: number): void {
  const lifetime = claims.iat === undefined ? claims.exp - now - skew : claims.exp - claims.iat;
  if (lifetime > maxLifetime) throw failed('lifetime exceeds the maximum');
}

/** OIDC Core section 9 makes `jti` required; RFC 7523 section 3 item 7 lets us refuse reuse. */
export async function checkNotReplayed(claims: ClientClaims, clientId: string, replay: ReplayStore, skew: number): Promise<void> {
  const jti = claims.jti;
  if (jti === undefined || jti.length === 0 || jti.length > 256) throw failed('jti missing');
  const first = await replay.remember(`client:${clientId}`, jti, new Date((claims.exp + skew) * 1000));
  if (!first) throw failed('jti replayed');
}

/**
 * Authenticates a hospital client from its `client_assertion` (RFC 7523 section 2.2). The checks run
 * in the order listed and the first failure is thrown: `client.unknown` when no such client is
 * registered, `client.authentication-failed` for everything else.
 */
export async function authenticateClient(clientAssertion: string, opts: AuthenticateClientOptions): Promise<RegisteredClient> {
  const now = Math.floor((opts.now ?? new Date()).getTime() / 1000);
  const skew = opts.skewSeconds ?? DEFAULT_SKEW_SECONDS;

  const jws = checkShape(clientAssertion);
  const alg = checkHeaderAllowlist(jws.header);
  const clientId = checkIssuerIsSubject(clientAssertion);
  const client = checkRegistered(clientId, opts.clients);
  const key = checkKidKnown(jws.header, alg, client);
  const claims = checkClaimsShape(await checkSignature(jws, key), client.id);
  checkAudience(claims, opts.expectedAudience);
  checkTimes(claims, now, skew);
  checkLifetime(claims, now, opts.maxLifetimeSeconds ?? DEFAULT_MAX_LIFETIME_SECONDS, skew);
  await checkNotReplayed(claims, client.id, opts.replay, skew);
  return client;
}

/** The client must be registered for the scope it uses (RFC 6749 section 3.3). */
export function requireScope(client: RegisteredClient, scope: string): void {
  if (!client.scopes.includes(scope)) throw new GatewayError('client.scope-not-allowed', scope);
}
