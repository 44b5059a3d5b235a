/**
 * The HCP assertion (issue 4, DESIGN.md section 2 step 2): after the eID and the registry, the
 * gateway vouches for a health professional with a short-lived JWT access token in the IHE IUA
 * shape (ITI TF Suppl IUA section 3.71.4.2.2.1, JSON Web Token option), signed with the gateway's
 * ES256 key. The hospital EHR presents it as a Bearer token (RFC 6750) on every hospital-API call,
 * and every peer request carries it, where the receiving gateway checks it was issued by the
 * calling country's key from the trust list.
 *
 * Verification is an ordered list of one-rule checks. Shape, header allowlist, kid and signature
 * are the peer envelope's own checks (src/crossborder/envelope.ts), so both token kinds obey one
 * JOSE policy (ES256 only, no embedded or referenced keys: RFC 8725 sections 2.1, 3.1, 3.10); their
 * `envelope.*` refusals are reported as `hcp.assertion-invalid`.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import {
  checkCompactShape,
  checkHeaderAllowlist,
  checkKidKnown,
  checkSignature,
  signCompact,
  type JwksLike,
  type PublicJwk,
  type SigningKey,
} from '../crossborder/envelope.js';
import { GatewayError, isGatewayError } from '../http/errors.js';
import { countryEntry, signingKeysFor, type TrustList } from '../trust/trust-list.js';
import { LOA_URIS, loaAtLeast, type LevelOfAssurance, type VerifiedEid } from './eid.js';
import { FACILITY_TYPES, ISCO_08_SYSTEM, isIscoCode, type Professional } from './registry.js';
import { deepFreeze } from '../shared/freeze.js';

// ---------------------------------------------------------------------------------------------
// Profile constants

/** IHE IUA JWT access tokens are typed `IUA-JWT` (explicit typing, RFC 8725 section 3.11). */
export const HCP_ASSERTION_TYP = 'IUA-JWT';
/** eHDSI audience for HCP identity assertions (STANDARDS.md "eHDSI"). */
export const HCP_ASSERTION_AUDIENCE = 'urn:ehdsi:assertions.audience:x-border';
export const V3_ACT_REASON_SYSTEM = 'http://terminology.hl7.org/CodeSystem/v3-ActReason';

export type PurposeOfUse = 'TREAT' | 'ETREAT';
const PURPOSE_DISPLAY: Readonly<Record<PurposeOfUse, string>> = { TREAT: 'treatment', ETREAT: 'Emergency Treatment' };
const ALL_PURPOSES: readonly PurposeOfUse[] = ['TREAT', 'ETREAT'];

export const DEFAULT_TTL_SECONDS = 3600;
/** eHDSI: an HCP identity assertion is valid for at most 4 h. */
export const MAX_LIFETIME_SECONDS = 4 * 3600;
/** eHDSI / DESIGN.md section 6: 60 s clock skew. */
const DEFAULT_SKEW_SECONDS = 60;
/** A few kilobytes of claims; anything much larger is not ours. */
const MAX_TOKEN_CHARS = 16 * 1024;

// ---------------------------------------------------------------------------------------------
// Claims

const codingSchema = z.object({ system: z.string().min(1), code: z.string().min(1), display: z.string().optional() });
const loaUris = [LOA_URIS.low, LOA_URIS.substantial, LOA_URIS.high] as const;

/** The claims we issue and accept; unknown members are dropped from the result, not trusted. */
const hcpClaimsSchema = z.object({
  iss: z.string().min(1).max(256),
  sub: z.string().min(1).max(256),
  // RFC 7519 section 4.1.3: a string or an array of strings.
  aud: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
  jti: z.string().min(16).max(128),
  iat: z.int(),
  nbf: z.int().optional(),
  exp: z.int(),
  client_id: z.string().min(1).max(256),
  scope: z.string().max(1024),
  extensions: z.object({
    ihe_iua: z.object({
      subject_name: z.string().min(1),
      subject_organization: z.string().min(1),
      subject_organization_id: z.string().min(1),
      subject_role: z.array(codingSchema).min(1),
      purpose_of_use: z.array(codingSchema).min(1),
      home_community_id: z.string().min(1),
      national_provider_identifier: z.string().min(1),
      // IUA: the patient the token is about. Unknown at sign-in, so we never set it; accepted when a
      // later token carries it.
      person_id: z.string().min(1).optional(),
    }),
    ncpeh: z.object({
      country: z.string().regex(/^[A-Z]{2}$/),
      loa: z.enum(loaUris),
      auth_time: z.int(),
      facility_type: z.enum(FACILITY_TYPES),
    }),
  }),
});

/** A verified HCP assertion: the claims, as parsed by the schema above. */
export type HcpAssertion = z.infer<typeof hcpClaimsSchema>;
type Coding = z.infer<typeof codingSchema>;

function epochSeconds(date: Date): number {
  return Math.floor(date.getTime() / 1000);
}

function loaOfUri(uri: string): LevelOfAssurance | undefined {
  for (const level of ['low', 'substantial', 'high'] as const) if (LOA_URIS[level] === uri) return level;
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Issue

export interface IssueHcpAssertionOptions {
  readonly eid: VerifiedEid;
  readonly professional: Professional;
  /** The authenticated hospital client (src/identity/clients.ts). */
  readonly clientId: string;
  readonly purposeOfUse: PurposeOfUse;
  /** Space-separated OAuth scopes granted (RFC 6749 section 3.3). */
  readonly scope: string;
  /** Our NCP id: `iss` and `home_community_id`. */
  readonly ourNcpId: string;
  /** Our ISO 3166-1 alpha-2 country code. */
  readonly country: string;
  readonly signingKey: SigningKey;
  /** Default 3600, at most 14400 (eHDSI 4 h). */
  readonly ttlSeconds?: number;
  readonly now?: Date;
}

export interface IssuedHcpAssertion {
  readonly token: string;
  readonly claims: HcpAssertion;
  readonly expiresAt: Date;
}

export async function issueHcpAssertion(opts: IssueHcpAssertionOptions): Promise<IssuedHcpAssertion> {
  const ttl = opts.ttlSeconds ?? DEFAULT_TTL_SECONDS;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_LIFETIME_SECONDS) {
    throw new RangeError(`ttlSeconds must be an integer in 1..${MAX_LIFETIME_SECONDS}`);
  }
  // The assertion binds one eID sign-in to one registry entry; never vouch across the two.
  if (opts.eid.personId !== opts.professional.personId) {
    throw new GatewayError('hcp.not-registered', 'registry entry is for another person');
  }
  // Health data needs eIDAS substantial or high (STANDARDS.md "eIDAS"); eid verification already
  // refuses lower levels, this keeps the issuer from ever signing one.
  if (!loaAtLeast(opts.eid.loa, 'substantial')) throw new GatewayError('eid.insufficient-loa');
  if (opts.professional.roles.length === 0) throw new GatewayError('hcp.not-registered');

  const iat = epochSeconds(opts.now ?? new Date());
  const org = opts.professional.organization;
  const claims: HcpAssertion = {
    iss: opts.ourNcpId,
    sub: opts.eid.personId,
    aud: HCP_ASSERTION_AUDIENCE,
    jti: randomUUID(),
    iat,
    nbf: iat,
    exp: iat + ttl,
    client_id: opts.clientId,
    scope: opts.scope,
    extensions: {
      ihe_iua: {
        subject_name: opts.professional.name,
        subject_organization: org.name,
        subject_organization_id: org.identifier === undefined ? org.id : org.identifier.value,
        subject_role: opts.professional.roles.map((r) => ({ system: ISCO_08_SYSTEM, code: r.code, display: r.display })),
        purpose_of_use: [{ system: V3_ACT_REASON_SYSTEM, code: opts.purposeOfUse, display: PURPOSE_DISPLAY[opts.purposeOfUse] }],
        home_community_id: opts.ourNcpId,
        national_provider_identifier: opts.professional.personId,
      },
      ncpeh: {
        country: opts.country,
        loa: LOA_URIS[opts.eid.loa],
        auth_time: epochSeconds(opts.eid.authTime),
        facility_type: opts.professional.facilityType,
      },
    },
  };
  // What we sign must be what we would accept: a schema failure here is a programming error.
  const checked = hcpClaimsSchema.parse(claims);
  const token = await signCompact(opts.signingKey, HCP_ASSERTION_TYP, checked);
  return { token, claims: checked, expiresAt: new Date(checked.exp * 1000) };
}

// ---------------------------------------------------------------------------------------------
// Verify: one rule per check, in order

export interface VerifyHcpAssertionOptions {
  /** Keys allowed to have signed it: our own public JWK, or the caller's keys from the trust list. */
  readonly trustedKeys: JwksLike;
  /** NCP id of the gateway that must have issued it. */
  readonly expectedIss: string;
  readonly now?: Date;
  /** Default 60. */
  readonly skewSeconds?: number;
  /** Default 14400 (eHDSI 4 h). */
  readonly maxLifetimeSeconds?: number;
  /** Default both TREAT and ETREAT. */
  readonly allowedPurposes?: readonly PurposeOfUse[];
}

/** Runs an envelope check and reports its refusal in the HCP assertion's terms. */
async function asAssertionCheck<T>(check: () => T | Promise<T>): Promise<T> {
  try {
    return await check();
  } catch (cause) {
    if (isGatewayError(cause)) throw new GatewayError('hcp.assertion-invalid', cause.detail ?? cause.code, { cause });
    throw cause;
  }
}

/**
 * `typ` must be exactly `IUA-JWT` (IHE IUA; RFC 8725 section 3.11: a token of another kind, such as
 * a peer request or a client assertion, must never pass as this one). Not the envelope's
 * `checkType`: it lowercases the header value and compares it with the expected string as given,
 * so with `IUA-JWT` it would refuse every token. We issue exactly one spelling and accept only it.
 */
export function checkAssertionType(header: Record<string, unknown>): void {
  if (header['typ'] !== HCP_ASSERTION_TYP) throw new GatewayError('hcp.assertion-invalid', `typ must be ${HCP_ASSERTION_TYP}`);
}

function checkClaimsShape(payload: Buffer): HcpAssertion {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
  } catch {
    throw new GatewayError('hcp.assertion-invalid', 'claims are not JSON');
  }
  const parsed = hcpClaimsSchema.safeParse(json);
  if (!parsed.success) throw new GatewayError('hcp.assertion-invalid', 'claims do not match the IUA profile');
  return parsed.data;
}

/** The issuer must be the gateway whose key verified the signature (ours, or the caller's). */
export function checkIssuer(claims: HcpAssertion, expectedIss: string): void {
  if (claims.iss !== expectedIss) throw new GatewayError('hcp.assertion-invalid', 'unexpected issuer');
  // IUA home_community_id names the issuing community; ours is always the issuer.
  if (claims.extensions.ihe_iua.home_community_id !== expectedIss) {
    throw new GatewayError('hcp.assertion-invalid', 'home_community_id differs from the issuer');
  }
}

/** RFC 7519 section 4.1.3: a recipient not named in `aud` must reject the token. */
export function checkAudience(claims: HcpAssertion): void {
  const audiences = typeof claims.aud === 'string' ? [claims.aud] : claims.aud;
  if (!audiences.includes(HCP_ASSERTION_AUDIENCE)) throw new GatewayError('hcp.assertion-invalid', 'wrong audience');
}

/** RFC 7519 sections 4.1.4-4.1.6 with a small skew (eHDSI: 60 s). */
export function checkTimes(claims: HcpAssertion, now: number, skew: number): void {
  if (claims.exp <= claims.iat) throw new GatewayError('hcp.assertion-invalid', 'exp must be after iat');
  if (now >= claims.exp + skew) throw new GatewayError('hcp.assertion-expired', 'expired');
  if (claims.nbf !== undefined && claims.nbf > now + skew) throw new GatewayError('hcp.assertion-expired', 'not yet valid');
  if (claims.iat > now + skew) throw new GatewayError('hcp.assertion-expired', 'issued in the future');
}

/** eHDSI: an HCP identity assertion lives at most 4 h, however its issuer was configured. */
export function checkLifetime(claims: HcpAssertion, maxLifetime: number): void {
  const start = Math.min(claims.iat, claims.nbf ?? claims.iat);
  if (claims.exp - start > maxLifetime) throw new GatewayError('hcp.assertion-invalid', 'lifetime exceeds the maximum');
}

/** Health data needs eIDAS LoA substantial or high (STANDARDS.md "eIDAS"). */
export function checkLevelOfAssurance(claims: HcpAssertion): void {
  const loa = loaOfUri(claims.extensions.ncpeh.loa);
  if (loa === undefined || !loaAtLeast(loa, 'substantial')) throw new GatewayError('hcp.assertion-invalid', 'LoA below substantial');
}

/** Every role must be an ISCO-08 code eHDSI accepts; one unknown role taints the assertion. */
export function checkRoles(claims: HcpAssertion): void {
  for (const role of claims.extensions.ihe_iua.subject_role) {
    if (role.system !== ISCO_08_SYSTEM || !isIscoCode(role.code)) {
      throw new GatewayError('hcp.assertion-invalid', 'role is not an accepted ISCO-08 code');
    }
  }
}

/** Exactly one purpose, from v3-ActReason, and one the caller allows here (IUA purpose_of_use). */
export function checkPurpose(claims: HcpAssertion, allowed: readonly PurposeOfUse[]): void {
  const [purpose, ...more] = claims.extensions.ihe_iua.purpose_of_use;
  if (purpose === undefined || more.length > 0 || purpose.system !== V3_ACT_REASON_SYSTEM) {
    throw new GatewayError('hcp.assertion-invalid', 'purpose_of_use must be one v3-ActReason coding');
  }
  if (!allowed.some((p) => p === purpose.code)) throw new GatewayError('hcp.purpose-not-allowed', purpose.code);
}

/** The verified purpose of use (after `verifyHcpAssertion`, always TREAT or ETREAT). */
export function purposeOf(assertion: HcpAssertion): PurposeOfUse {
  const code = assertion.extensions.ihe_iua.purpose_of_use[0]?.code;
  const purpose = ALL_PURPOSES.find((p) => p === code);
  if (purpose === undefined) throw new GatewayError('hcp.assertion-invalid', 'purpose_of_use');
  return purpose;
}

/** The verified roles as ISCO-08 codings. */
export function rolesOf(assertion: HcpAssertion): readonly Coding[] {
  return assertion.extensions.ihe_iua.subject_role;
}

/**
 * An assertion is presented with every request of a session. The signature over the same bytes with
 * the same trusted key verifies the same way every time, so its outcome (with the claims' shape) is
 * remembered per (key, token); every other check, times included, runs on every use. Bounded: the
 * oldest entry goes first.
 */
class VerifiedAssertions {
  readonly #entries = new Map<string, HcpAssertion>();
  readonly #max: number;

  constructor(max: number) {
    this.#max = max;
  }

  async get(signer: PublicJwk, token: string, verify: () => Promise<HcpAssertion>): Promise<HcpAssertion> {
    const key = `${signer.kty === 'EC' ? `${signer.x}.${signer.y}` : signer.n}|${token}`;
    const hit = this.#entries.get(key);
    if (hit !== undefined) return hit;
    // Shared by every later request: nobody may change it.
    const claims = deepFreeze(await verify());
    if (this.#entries.size >= this.#max) {
      const oldest = this.#entries.keys().next();
      if (oldest.done !== true) this.#entries.delete(oldest.value);
    }
    this.#entries.set(key, claims);
    return claims;
  }
}

const verifiedClaims = new VerifiedAssertions(1000);

/** Verifies an HCP assertion; the checks run in the order listed and the first failure is thrown. */
export async function verifyHcpAssertion(token: string, opts: VerifyHcpAssertionOptions): Promise<HcpAssertion> {
  const now = epochSeconds(opts.now ?? new Date());
  const skew = opts.skewSeconds ?? DEFAULT_SKEW_SECONDS;

  const jws = await asAssertionCheck(() => checkCompactShape(token, MAX_TOKEN_CHARS));
  await asAssertionCheck(() => checkHeaderAllowlist(jws.header));
  checkAssertionType(jws.header);
  const signer = await asAssertionCheck(() => checkKidKnown(jws.header, opts.trustedKeys));
  const claims = await verifiedClaims.get(signer, token, async () => checkClaimsShape(await asAssertionCheck(() => checkSignature(jws, signer))));
  checkIssuer(claims, opts.expectedIss);
  checkAudience(claims);
  checkTimes(claims, now, skew);
  checkLifetime(claims, Math.min(opts.maxLifetimeSeconds ?? MAX_LIFETIME_SECONDS, MAX_LIFETIME_SECONDS));
  checkLevelOfAssurance(claims);
  checkRoles(claims);
  checkPurpose(claims, opts.allowedPurposes ?? ALL_PURPOSES);
  return claims;
}

/**
 * Peer API: the assertion in a peer request must have been issued by the gateway of the country
 * whose TLS certificate and request signature authenticated the call, i.e. signed by one of that
 * country's trust-list signing keys and naming its NCP id as issuer; the country it claims must be
 * that country too. `callerCountry` comes from the authenticated connection, never from the token.
 */
export async function verifyPeerHcpAssertion(
  token: string,
  list: TrustList,
  callerCountry: string,
  now: Date,
  options: { skewSeconds?: number; allowedPurposes?: readonly PurposeOfUse[] } = {},
): Promise<HcpAssertion> {
  const entry = countryEntry(list, callerCountry);
  const assertion = await verifyHcpAssertion(token, {
    trustedKeys: { keys: signingKeysFor(list, callerCountry) },
    expectedIss: entry.ncpId,
    now,
    ...(options.skewSeconds === undefined ? {} : { skewSeconds: options.skewSeconds }),
    ...(options.allowedPurposes === undefined ? {} : { allowedPurposes: options.allowedPurposes }),
  });
  if (assertion.extensions.ncpeh.country !== callerCountry) {
    throw new GatewayError('hcp.assertion-invalid', 'assertion country differs from the calling country');
  }
  return assertion;
}

/**
 * The HCP assertion from an `Authorization: Bearer <token>` header (RFC 6750 section 2.1; the scheme
 * name is case-insensitive, RFC 9110 section 11.1). Anything else counts as no assertion.
 */
export function bearerToken(authorizationHeader: string | undefined): string {
  const match = authorizationHeader === undefined ? null : /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(authorizationHeader);
  const token = match?.[1];
  if (token === undefined) throw new GatewayError('hcp.assertion-missing');
  return token;
}
