/**
 * Who is calling the hospital/citizen API: a professional (Bearer HCP assertion this gateway
 * issued) or a citizen (session cookie or Bearer session token this gateway issued). Routes call
 * these first; each throws a typed error that the one error handler renders.
 */
import type {} from '@fastify/cookie';
import type { FastifyRequest } from 'fastify';
import type { SigningKey } from '../crossborder/envelope.js';
import { GatewayError } from '../http/errors.js';
import { SESSION_COOKIE, verifyCitizenToken, type CitizenSession } from './citizen-session.js';
import { bearerToken, verifyHcpAssertion, type HcpAssertion } from './hcp-assertion.js';

export interface GuardOptions {
  readonly ourNcpId: string;
  readonly signingKey: SigningKey;
  readonly skewSeconds: number;
  readonly now: () => Date;
  /** Whether a citizen session was ended by sign-out (sessions are signed tokens; this is their revocation list). */
  readonly sessionRevoked?: (sessionId: string) => Promise<boolean>;
}

export async function requireHcp(request: FastifyRequest, opts: GuardOptions): Promise<{ token: string; assertion: HcpAssertion }> {
  const token = bearerToken(request.headers.authorization);
  const assertion = await verifyHcpAssertion(token, {
    trustedKeys: { keys: [opts.signingKey.publicJwk] },
    expectedIss: opts.ourNcpId,
    now: opts.now(),
    skewSeconds: opts.skewSeconds,
  });
  return { token, assertion };
}

export async function requireCitizen(request: FastifyRequest, opts: GuardOptions): Promise<CitizenSession> {
  const header = request.headers.authorization;
  let token: string | undefined;
  if (header !== undefined) {
    const match = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(header);
    if (match?.[1] === undefined) throw new GatewayError('citizen.session-invalid', 'malformed Authorization header');
    token = match[1];
  } else {
    token = request.cookies[SESSION_COOKIE];
  }
  if (token === undefined || token.length === 0) throw new GatewayError('citizen.session-missing');
  const session = await verifyCitizenToken(token, { ourNcpId: opts.ourNcpId, signingKey: opts.signingKey, now: opts.now(), skewSeconds: opts.skewSeconds });
  if ((await opts.sessionRevoked?.(session.sessionId)) === true) throw new GatewayError('citizen.session-invalid', 'signed out');
  return session;
}
