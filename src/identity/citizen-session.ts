/**
 * The citizen's session after an eID sign-in: a short-lived JWT signed by this gateway (typ
 * `ncpeh-citizen+jwt`), carried as an HttpOnly cookie by browsers or as a Bearer token by API
 * clients. It names the national patient identifier that consents and the access log are keyed by.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { signCompact, verifySignedClaims, type SigningKey } from '../crossborder/envelope.js';
import { patientKeyOf } from '../consent/repository.js';
import { GatewayError } from '../http/errors.js';
import { loaAtLeast, type LevelOfAssurance, type VerifiedEid } from './eid.js';

export const CITIZEN_TOKEN_TYP = 'ncpeh-citizen+jwt';
export const SESSION_COOKIE = 'ncpeh_session';
export const LOGIN_COOKIE = 'ncpeh_login';

const CitizenClaims = z.object({
  iss: z.string(),
  aud: z.string(),
  sub: z.string().min(1).max(256),
  jti: z.string().min(16).max(128),
  iat: z.number().int(),
  exp: z.number().int(),
  patient: z.object({ system: z.string().min(1), value: z.string().min(1).max(64) }).strict(),
  name: z.string().max(256).optional(),
  loa: z.enum(['low', 'substantial', 'high']),
  auth_time: z.number().int(),
});

export interface CitizenSession {
  /** The token's jti: what sign-out revokes. */
  readonly sessionId: string;
  readonly personId: string;
  readonly patient: { readonly system: string; readonly value: string };
  /** `system|value`: the key consents and access-log entries are stored under. */
  readonly patientKey: string;
  readonly name: string | undefined;
  readonly loa: LevelOfAssurance;
  readonly expiresAt: Date;
}

export async function issueCitizenToken(
  eid: VerifiedEid,
  opts: { ourNcpId: string; patientIdentifierSystem: string; signingKey: SigningKey; ttlSeconds: number; now: Date },
): Promise<{ token: string; expiresAt: Date }> {
  // Health data needs eIDAS substantial or higher (eIDAS Implementing Regulation 2015/1502); the
  // verifiers already refuse less, this keeps the session itself honest.
  if (!loaAtLeast(eid.loa, 'substantial')) throw new GatewayError('eid.insufficient-loa');
  const iat = Math.floor(opts.now.getTime() / 1000);
  const exp = Math.min(iat + opts.ttlSeconds, Math.floor(eid.expiresAt.getTime() / 1000) + opts.ttlSeconds);
  const name = [eid.givenName, eid.familyName].filter((p) => p !== undefined).join(' ');
  const claims = {
    iss: opts.ourNcpId,
    aud: opts.ourNcpId,
    sub: eid.personId,
    jti: randomUUID(),
    iat,
    exp,
    patient: { system: opts.patientIdentifierSystem, value: eid.personId },
    ...(name.length > 0 ? { name } : {}),
    loa: eid.loa,
    auth_time: Math.floor(eid.authTime.getTime() / 1000),
  };
  return { token: await signCompact(opts.signingKey, CITIZEN_TOKEN_TYP, claims), expiresAt: new Date(exp * 1000) };
}

/** Verifies a session token this gateway issued: our key, our `iss`/`aud`, not expired, LoA kept. */
export async function verifyCitizenToken(
  token: string,
  opts: { ourNcpId: string; signingKey: SigningKey; now: Date; skewSeconds: number },
): Promise<CitizenSession> {
  let raw: Record<string, unknown>;
  try {
    raw = await verifySignedClaims(token, { typ: CITIZEN_TOKEN_TYP, trustedKeys: { keys: [opts.signingKey.publicJwk] } });
  } catch (cause) {
    throw new GatewayError('citizen.session-invalid', undefined, { cause });
  }
  const parsed = CitizenClaims.safeParse(raw);
  if (!parsed.success) throw new GatewayError('citizen.session-invalid', 'claims');
  const c = parsed.data;
  if (c.iss !== opts.ourNcpId || c.aud !== opts.ourNcpId) throw new GatewayError('citizen.session-invalid', 'issuer');
  const now = Math.floor(opts.now.getTime() / 1000);
  if (now >= c.exp + opts.skewSeconds || c.iat > now + opts.skewSeconds) throw new GatewayError('citizen.session-invalid', 'expired');
  if (!loaAtLeast(c.loa, 'substantial')) throw new GatewayError('eid.insufficient-loa');
  return {
    sessionId: c.jti,
    personId: c.sub,
    patient: c.patient,
    patientKey: patientKeyOf(c.patient),
    name: c.name,
    loa: c.loa,
    expiresAt: new Date(c.exp * 1000),
  };
}

