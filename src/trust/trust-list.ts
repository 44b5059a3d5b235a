/**
 * The signed trust list (DESIGN.md section 3.3): which gateways exist, where they listen, which TLS
 * certificates and JOSE keys they use. It travels as a compact JWS (RFC 7515) signed with ES256 by the
 * trust-anchor key every gateway is configured with; nothing in it is trusted before
 * `verifyTrustList` has run every check below.
 *
 * Pure: no I/O. Loading, reloading and keeping the last good list is src/trust/trust-store.ts.
 */
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { z } from 'zod';
import { refusePrivateJwkMembers } from './jwk.js';
import { signCompactEs256, verifyEs256 } from '../crossborder/jose-core.js';
import { GatewayError } from '../http/errors.js';
import { deepFreeze } from '../shared/freeze.js';

export const TRUST_LIST_TYP = 'ncpeh-trust-list+jws';
export const TRUST_LIST_ALG = 'ES256';
/** DESIGN.md section 6: clock skew tolerance is explicit and small. */
export const CLOCK_SKEW_MS = 60_000;

// ---------------------------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------------------------

const COUNTRY_CODE = /^[A-Z]{2}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** Algorithms a key may announce, by key type and use; these mirror the envelope allowlists (issue 3). */
const ALLOWED_ALG: Readonly<Record<'EC' | 'RSA', Readonly<Record<'sig' | 'enc', readonly string[]>>>> = {
  // Exactly what src/crossborder/envelope.ts accepts: a key the envelope would refuse must not get
  // into the list either (RSA keys may only encrypt; no RSA signing algorithm is allowed).
  EC: { sig: ['ES256'], enc: ['ECDH-ES+A256KW'] },
  RSA: { sig: [], enc: ['RSA-OAEP-256'] },
};

const isoInstant = z.iso.datetime();
const kid = z.string().min(1).max(200);
const use = z.enum(['sig', 'enc']);

const EcPublicJwk = z.strictObject({
  kty: z.literal('EC'),
  crv: z.literal('P-256'),
  // 32-byte coordinates, base64url without padding (RFC 7518 section 6.2.1.2).
  x: z.string().length(43).regex(BASE64URL),
  y: z.string().length(43).regex(BASE64URL),
  kid,
  use,
  alg: z.string().optional(),
});

const RsaPublicJwk = z.strictObject({
  kty: z.literal('RSA'),
  // At least 2048 bits: 256 bytes are 342 base64url characters.
  n: z.string().min(342).regex(BASE64URL),
  e: z.string().min(1).max(8).regex(BASE64URL),
  kid,
  use,
  alg: z.string().optional(),
});

/**
 * A public JWK. Private members are refused with their own message before the strict shape runs, so
 * that a list leaking a private key is reported as exactly that: whoever signed it has also published
 * a secret, and no gateway may start trusting it.
 */
export const PublicJwkSchema = z
  .unknown()
  .superRefine(refusePrivateJwkMembers)
  .pipe(z.discriminatedUnion('kty', [EcPublicJwk, RsaPublicJwk]))
  .superRefine((jwk, ctx) => {
    if (jwk.alg !== undefined && !ALLOWED_ALG[jwk.kty][jwk.use].includes(jwk.alg)) {
      ctx.addIssue({ code: 'custom', message: `alg ${jwk.alg} is not allowed for a ${jwk.kty} ${jwk.use} key`, path: ['alg'] });
    }
    // Well-formed base64url is not yet a key: an EC point off the curve is the classic invalid-curve
    // attack input, so let OpenSSL import it once here rather than fail later inside a handshake.
    try {
      createPublicKey({ key: { ...jwk }, format: 'jwk' });
    } catch {
      ctx.addIssue({ code: 'custom', message: 'not a valid public key' });
    }
  });
export type PublicJwk = z.output<typeof PublicJwkSchema>;

const fingerprints = z.array(z.string().regex(SHA256_HEX, 'lowercase hex SHA-256')).min(1);

export const CountryEntrySchema = z.strictObject({
  ncpId: z.string().min(1).max(200).regex(/^\S+$/, 'no whitespace'),
  peerUrl: z.url({ protocol: /^https$/ }),
  tls: z.strictObject({
    serverCertSha256: fingerprints,
    clientCertSha256: fingerprints,
  }),
  jwks: z.strictObject({ keys: z.array(PublicJwkSchema).min(1) }),
  validFrom: isoInstant,
  validUntil: isoInstant,
});
export type CountryEntry = z.output<typeof CountryEntrySchema>;

export const TrustListSchema = z
  .strictObject({
    version: z.literal(1),
    sequence: z.int().positive(),
    issuedAt: isoInstant,
    nextUpdate: isoInstant,
    countries: z.record(z.string().regex(COUNTRY_CODE, 'ISO 3166-1 alpha-2 country code'), CountryEntrySchema),
  })
  .superRefine((list, ctx) => {
    if (!(Date.parse(list.issuedAt) < Date.parse(list.nextUpdate))) {
      ctx.addIssue({ code: 'custom', message: 'issuedAt must be before nextUpdate', path: ['nextUpdate'] });
    }
    const ncpIdOwner = new Map<string, string>();
    const clientCertOwner = new Map<string, string>();
    for (const [cc, entry] of Object.entries(list.countries)) {
      const at = ['countries', cc];
      if (!(Date.parse(entry.validFrom) < Date.parse(entry.validUntil))) {
        ctx.addIssue({ code: 'custom', message: 'validFrom must be before validUntil', path: [...at, 'validUntil'] });
      }
      // Rotation needs several keys per country, but every gateway needs at least one of each kind to
      // sign requests and to receive encrypted answers.
      if (!entry.jwks.keys.some((k) => k.use === 'sig')) {
        ctx.addIssue({ code: 'custom', message: 'at least one signing key (use "sig") is required', path: [...at, 'jwks', 'keys'] });
      }
      if (!entry.jwks.keys.some((k) => k.use === 'enc')) {
        ctx.addIssue({ code: 'custom', message: 'at least one encryption key (use "enc") is required', path: [...at, 'jwks', 'keys'] });
      }
      const kids = new Set<string>();
      for (const key of entry.jwks.keys) {
        if (kids.has(key.kid)) {
          ctx.addIssue({ code: 'custom', message: `kid ${key.kid} is used twice`, path: [...at, 'jwks', 'keys'] });
        }
        kids.add(key.kid);
      }
      const ncpOwner = ncpIdOwner.get(entry.ncpId);
      if (ncpOwner !== undefined) {
        ctx.addIssue({ code: 'custom', message: `ncpId is also used by ${ncpOwner}`, path: [...at, 'ncpId'] });
      }
      ncpIdOwner.set(entry.ncpId, cc);
      // The client certificate is what authenticates the calling country on the peer listener; one
      // certificate listed for two countries would make that answer ambiguous.
      for (const fp of entry.tls.clientCertSha256) {
        const owner = clientCertOwner.get(fp);
        if (owner !== undefined && owner !== cc) {
          ctx.addIssue({ code: 'custom', message: `client certificate is also listed for ${owner}`, path: [...at, 'tls', 'clientCertSha256'] });
        }
        clientCertOwner.set(fp, cc);
      }
    }
  });
export type TrustList = z.output<typeof TrustListSchema>;

/** The configured trust anchor(s): public EC P-256 keys with a kid. Several are allowed so the anchor can rotate. */
export const AnchorKeySchema = z.strictObject({
  kty: z.literal('EC'),
  crv: z.literal('P-256'),
  x: z.string().length(43).regex(BASE64URL),
  y: z.string().length(43).regex(BASE64URL),
  kid,
  use: z.literal('sig').optional(),
  alg: z.literal(TRUST_LIST_ALG).optional(),
});
export type AnchorKey = z.output<typeof AnchorKeySchema>;

export const AnchorKeysSchema = z
  .array(AnchorKeySchema)
  .min(1)
  .refine((keys) => new Set(keys.map((k) => k.kid)).size === keys.length, 'anchor key kids must be unique');

/** For configuration parsing: throws a readable error at boot when the configured anchors are unusable. */
export function parseAnchorKeys(input: unknown): AnchorKey[] {
  const result = AnchorKeysSchema.safeParse(input);
  if (!result.success) throw new Error(`invalid trust anchor keys: ${z.prettifyError(result.error)}`);
  return result.data;
}

const AnchorPrivateKeySchema = z.object({
  kty: z.literal('EC'),
  crv: z.literal('P-256'),
  x: z.string().regex(BASE64URL),
  y: z.string().regex(BASE64URL),
  d: z.string().regex(BASE64URL),
  kid,
});

// ---------------------------------------------------------------------------------------------
// Signing
// ---------------------------------------------------------------------------------------------

/** Validates `doc` against `TrustListSchema` and signs it as a compact JWS with the anchor's private key. */
export async function signTrustList(doc: unknown, anchorPrivateJwk: unknown): Promise<string> {
  const list = parseListOrThrow(doc);
  const keyResult = AnchorPrivateKeySchema.safeParse(anchorPrivateJwk);
  if (!keyResult.success) {
    throw new Error(`the anchor key must be a private EC P-256 JWK with a kid: ${z.prettifyError(keyResult.error)}`);
  }
  const anchor = keyResult.data;
  const key = createPrivateKey({ key: { kty: anchor.kty, crv: anchor.crv, x: anchor.x, y: anchor.y, d: anchor.d }, format: 'jwk' });
  return Promise.resolve(signCompactEs256(key, { alg: TRUST_LIST_ALG, kid: anchor.kid, typ: TRUST_LIST_TYP }, JSON.stringify(list)));
}

// ---------------------------------------------------------------------------------------------
// Verification: an ordered list of one-rule checks
// ---------------------------------------------------------------------------------------------

/** The `detail` of every `trust-list.invalid` error: which rule refused the list. Stable; usable as a metric label. */
export type TrustListRule =
  | 'compact-jws'
  | 'header.malformed'
  | 'header.alg'
  | 'header.typ'
  | 'header.forbidden-member'
  | 'anchor-kid'
  | 'signature'
  | 'payload.malformed'
  | 'schema'
  | 'expired'
  | 'issued-in-future'
  | 'rollback'
  | 'same-sequence-different-content';

export interface VerifyOptions {
  /** Configured trust anchors; see `parseAnchorKeys`. */
  readonly anchorKeys: readonly AnchorKey[];
  readonly now: Date;
  /** The list currently in force, as returned by an earlier `verifyTrustList`: the rollback baseline. */
  readonly current?: TrustList | undefined;
}

export interface VerifyResult {
  readonly list: TrustList;
  /** Same sequence and byte-identical payload as `current`; `list` is then `current` itself. */
  readonly unchanged: boolean;
}

function refuse(rule: TrustListRule, options: { cause?: unknown; expression?: readonly string[] } = {}): never {
  throw new GatewayError('trust-list.invalid', rule, options);
}

/** The verified payload text of every list this module accepted, for the byte-identical comparison. */
const payloadOf = new WeakMap<TrustList, string>();

interface Parts {
  readonly header: string;
  readonly payload: string;
  readonly signature: string;
}

/**
 * RFC 7515 section 7.1: three base64url parts. An empty signature part is how `alg: none` tokens are
 * written, and a plain JSON file has no dots at all; both end here.
 */
function checkCompactJws(jws: string): Parts {
  const parts = jws.split('.');
  if (parts.length !== 3 || !parts.every((p) => BASE64URL.test(p))) refuse('compact-jws');
  const [header = '', payload = '', signature = ''] = parts;
  return { header, payload, signature };
}

const HEADER_MEMBERS = new Set(['alg', 'kid', 'typ']);

/**
 * Read the protected header before any key is touched. Only `alg`, `kid` and `typ` are allowed, which
 * refuses `jwk`, `jku`, `x5u`, `x5c`, `zip` and `crit` (RFC 8725 section 3.1 and 3.10: fix the
 * algorithm; do not follow key URLs).
 */
function checkHeader(parts: Parts): Readonly<Record<string, unknown>> {
  let header: unknown;
  try {
    header = JSON.parse(decodeUtf8(Buffer.from(parts.header, 'base64url')));
  } catch (cause) {
    refuse('header.malformed', { cause });
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) refuse('header.malformed');
  const fields = new Map(Object.entries(header));
  if (fields.get('alg') !== TRUST_LIST_ALG) refuse('header.alg');
  // RFC 8725 section 3.11: explicit typing keeps an envelope or any other ES256 JWS signed by a key
  // that happens to be an anchor from being accepted as a trust list.
  if (fields.get('typ') !== TRUST_LIST_TYP) refuse('header.typ');
  const extra = [...fields.keys()].filter((name) => !HEADER_MEMBERS.has(name));
  if (extra.length > 0) refuse('header.forbidden-member', { expression: extra.map((name) => `header.${name}`) });
  return Object.fromEntries(fields);
}

function checkAnchorKid(header: Readonly<Record<string, unknown>>, anchorKeys: readonly AnchorKey[]): AnchorKey {
  const headerKid = header['kid'];
  const anchor = typeof headerKid === 'string' ? anchorKeys.find((k) => k.kid === headerKid) : undefined;
  if (anchor === undefined) refuse('anchor-kid');
  return anchor;
}

/** Verifies with that one anchor key only and ES256 only, so nothing in the token can choose the key or the algorithm. */
function checkSignature(parts: Parts, anchor: AnchorKey): string {
  let valid: boolean;
  try {
    const key = createPublicKey({ key: { kty: anchor.kty, crv: anchor.crv, x: anchor.x, y: anchor.y }, format: 'jwk' });
    valid = verifyEs256(key, `${parts.header}.${parts.payload}`, Buffer.from(parts.signature, 'base64url'));
  } catch (cause) {
    refuse('signature', { cause });
  }
  if (!valid) refuse('signature');
  try {
    return decodeUtf8(Buffer.from(parts.payload, 'base64url'));
  } catch (cause) {
    refuse('payload.malformed', { cause });
  }
}

function checkSchema(payloadText: string): TrustList {
  let doc: unknown;
  try {
    doc = JSON.parse(payloadText);
  } catch (cause) {
    refuse('payload.malformed', { cause });
  }
  return parseListOrThrow(doc);
}

/** A list past its nextUpdate is stale: the anchor has promised a newer one, which may revoke a peer. */
function checkNotExpired(list: TrustList, now: Date): void {
  if (isTrustListExpired(list, now)) refuse('expired');
}

function checkNotFromFuture(list: TrustList, now: Date): void {
  if (Date.parse(list.issuedAt) > now.getTime() + CLOCK_SKEW_MS) refuse('issued-in-future');
}

/**
 * Serving an old, validly signed list is the cheapest attack on a signed list (it re-trusts a revoked
 * peer), so the sequence must grow. The same sequence is only accepted when the payload is byte for
 * byte the one in force: that is a re-fetch of the same list, reported as `unchanged`.
 */
function checkNotRolledBack(list: TrustList, payloadText: string, current: TrustList | undefined): VerifyResult {
  if (current === undefined || list.sequence > current.sequence) return { list, unchanged: false };
  if (list.sequence < current.sequence) refuse('rollback');
  // A baseline this module did not verify has no known payload; fail closed rather than guess.
  if (payloadOf.get(current) !== payloadText) refuse('same-sequence-different-content');
  return { list: current, unchanged: true };
}

/**
 * Verifies a compact-JWS trust list. Throws `GatewayError('trust-list.invalid', rule)` naming the first
 * rule that refused it; the returned list is deeply frozen.
 */
export async function verifyTrustList(jws: string, options: VerifyOptions): Promise<VerifyResult> {
  const parts = checkCompactJws(jws);
  const header = checkHeader(parts);
  const anchor = checkAnchorKid(header, options.anchorKeys);
  const payloadText = checkSignature(parts, anchor);
  const list = checkSchema(payloadText);
  checkNotExpired(list, options.now);
  checkNotFromFuture(list, options.now);
  const result = checkNotRolledBack(list, payloadText, options.current);
  if (!result.unchanged) payloadOf.set(result.list, payloadText);
  return result;
}

/** Whether `now` is past the list's nextUpdate (plus the allowed clock skew). Shared with the store's `require()`. */
export function isTrustListExpired(list: TrustList, now: Date): boolean {
  return now.getTime() >= Date.parse(list.nextUpdate) + CLOCK_SKEW_MS;
}

function parseListOrThrow(doc: unknown): TrustList {
  const result = TrustListSchema.safeParse(doc);
  if (!result.success) {
    refuse('schema', {
      cause: result.error,
      expression: result.error.issues.map((issue) => `${issue.path.map(String).join('.')}: ${issue.message}`),
    });
  }
  return deepFreeze(result.data);
}

function decodeUtf8(bytes: Uint8Array): string {
  return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
}

// ---------------------------------------------------------------------------------------------
// Lookups
// ---------------------------------------------------------------------------------------------

/** The entry for `cc`; throws `peer.unknown-country` when the list has none. */
export function countryEntry(list: TrustList, cc: string): CountryEntry {
  // hasOwn: `cc` may come from a request, and "__proto__" or "constructor" must not find anything.
  const entry = COUNTRY_CODE.test(cc) && Object.hasOwn(list.countries, cc) ? list.countries[cc] : undefined;
  if (entry === undefined) throw new GatewayError('peer.unknown-country', cc);
  return entry;
}

/**
 * The country whose client certificate has this SHA-256 fingerprint, counting only entries within
 * their validity period. Accepts lowercase hex or Node's `X509Certificate.fingerprint256` form
 * ("AB:CD:..."); anything else matches nothing.
 */
export function countryByClientFingerprint(list: TrustList, sha256hex: string, now: Date): string | undefined {
  const fp = sha256hex.replaceAll(':', '').toLowerCase();
  if (!SHA256_HEX.test(fp)) return undefined;
  const t = now.getTime();
  for (const [cc, entry] of Object.entries(list.countries)) {
    if (Date.parse(entry.validFrom) <= t && t < Date.parse(entry.validUntil) && entry.tls.clientCertSha256.includes(fp)) {
      return cc;
    }
  }
  return undefined;
}

/** Pins for the outbound client: the peer's server certificate must hash to one of these. */
export function serverFingerprintsFor(list: TrustList, cc: string): readonly string[] {
  return countryEntry(list, cc).tls.serverCertSha256;
}

/** Every signing key of `cc` (several during rotation); select by the JWS `kid`. */
export function signingKeysFor(list: TrustList, cc: string): readonly PublicJwk[] {
  return countryEntry(list, cc).jwks.keys.filter((k) => k.use === 'sig');
}

/** The key to encrypt to `cc`: the first `enc` key listed (lists put the newest key first). */
export function encryptionKeyFor(list: TrustList, cc: string): PublicJwk {
  const key = countryEntry(list, cc).jwks.keys.find((k) => k.use === 'enc');
  // The schema guarantees one; this keeps the type honest without a cast.
  if (key === undefined) throw new GatewayError('peer.unknown-country', cc);
  return key;
}

export function countryByNcpId(list: TrustList, ncpId: string): string | undefined {
  for (const [cc, entry] of Object.entries(list.countries)) {
    if (entry.ncpId === ncpId) return cc;
  }
  return undefined;
}
