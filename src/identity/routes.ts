/**
 * Sign-in routes (`/api/v1/auth/*`): professionals through their hospital EHR (an eID assertion in,
 * an HCP assertion out) and citizens through the OpenID Connect code flow (a session out).
 * Thin: every rule lives in the verifiers; the order of the checks is the order below.
 */
import type {} from '@fastify/cookie';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Config } from '../config/schema.js';
import { unverifiedClaim, type SigningKey } from '../crossborder/envelope.js';
import type { ReplayStore } from '../crossborder/replay-store.js';
import { GatewayError } from '../http/errors.js';
import type { Db } from '../storage/db.js';
import { issueCitizenToken, LOGIN_COOKIE, SESSION_COOKIE } from './citizen-session.js';
import { authenticateClient, requireScope } from './clients.js';
import type { VerifiedEid } from './eid.js';
import { issueHcpAssertion, type PurposeOfUse } from './hcp-assertion.js';
import { requireCitizen, type GuardOptions } from './guards.js';
import type { IdentityServices } from './services.js';
import type { OidcProvider } from './oidc.js';

export const HCP_SCOPE = 'hcp-assertion';
/** Replay-cache scope under which signed-out citizen sessions are remembered until they expire. */
export const SIGNED_OUT_SCOPE = 'citizen-signed-out';
const LOGIN_STATE_MAX_AGE_SECONDS = 600;

export interface AuthRoutesOptions {
  readonly guard: GuardOptions;
  readonly config: Readonly<Config>;
  readonly identity: IdentityServices;
  readonly signingKey: SigningKey;
  readonly replay: ReplayStore;
  readonly db: Db;
  /** Called after every sign-in decision (audit). */
  readonly onSignIn?: (event: SignInEvent) => Promise<void>;
  readonly now?: () => Date;
}

export interface SignInEvent {
  readonly kind: 'hcp' | 'citizen';
  readonly outcome: 'success' | 'failure';
  readonly code?: string;
  readonly subject?: string;
  readonly clientId?: string;
  readonly requestId: string;
  readonly remoteAddress: string;
}

const HcpSignInBody = z
  .object({
    client_assertion_type: z.literal('urn:ietf:params:oauth:client-assertion-type:jwt-bearer'),
    client_assertion: z.string().min(1).max(8192),
    id_token: z.string().min(1).max(16384).optional(),
    saml_response: z.string().min(1).max(400_000).optional(),
    provider: z.string().regex(/^[a-z0-9-]+$/).optional(),
    purpose_of_use: z.enum(['TREAT', 'ETREAT']).default('TREAT'),
  })
  .strict()
  .refine((b) => (b.id_token === undefined) !== (b.saml_response === undefined), {
    message: 'exactly one of id_token or saml_response is required',
    path: ['id_token'],
  });

const HcpSignInAnswer = z.object({
  access_token: z.string(),
  token_type: z.literal('Bearer'),
  expires_in: z.number().int(),
  scope: z.string(),
  hcp: z.object({
    name: z.string(),
    roles: z.array(z.object({ code: z.string(), display: z.string() })),
    organization: z.string(),
    facilityType: z.string(),
    loa: z.string(),
    purposeOfUse: z.enum(['TREAT', 'ETREAT']),
  }),
});

function pickOidc(providers: readonly OidcProvider[], token: string, wanted: string | undefined): OidcProvider {
  const provider =
    wanted === undefined ? providers.find((p) => p.issuer === unverifiedClaim(token, 'iss')) : providers.find((p) => p.providerId === wanted);
  if (provider === undefined) throw new GatewayError('eid.unknown-issuer');
  return provider;
}

/** Only same-site relative paths: an open redirect after sign-in would hand sessions to phishers. */
function safeReturnTo(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  return /^\/(?![/\\])[\x21-\x7e]{0,512}$/.test(value) ? value : undefined;
}

export const authRoutes: FastifyPluginAsyncZod<AuthRoutesOptions> = async (app, opts) => {
  const now = opts.now ?? (() => new Date());
  const { config, identity } = opts;
  const tokenUrl = `${config.api.publicUrl ?? `http://${config.api.host}:${config.api.port}`}/api/v1/auth/hcp`;

  app.post(
    '/api/v1/auth/hcp',
    {
      bodyLimit: 512 * 1024,
      schema: {
        summary: 'Exchange a professional\'s national eID assertion for an HCP assertion (IUA JWT)',
        tags: ['auth'],
        body: HcpSignInBody,
        response: { 200: HcpSignInAnswer },
      },
    },
    async (request) => {
      const body = request.body;
      const report = async (event: Omit<SignInEvent, 'kind' | 'requestId' | 'remoteAddress'>): Promise<void> =>
        opts.onSignIn?.({ kind: 'hcp', requestId: request.id, remoteAddress: request.ip, ...event });
      try {
        // 1. the calling system is a registered hospital client, allowed to ask for HCP assertions
        const client = await authenticateClient(body.client_assertion, {
          clients: identity.clients,
          expectedAudience: tokenUrl,
          replay: opts.replay,
          now: now(),
          skewSeconds: config.policy.clockSkewSeconds,
        });
        requireScope(client, HCP_SCOPE);
        // 2. the professional's national eID assertion (each verifier enforces LoA >= substantial)
        let eid: VerifiedEid;
        if (body.id_token !== undefined) {
          eid = await pickOidc(identity.hcpOidc, body.id_token, body.provider).verifyIdToken(body.id_token);
        } else {
          const saml = body.provider === undefined ? identity.saml[0] : identity.saml.find((s) => s.id === body.provider);
          if (saml === undefined) throw new GatewayError('eid.unknown-issuer');
          eid = await saml.verifier.verify(body.saml_response ?? '');
        }
        // 3. role and organisation from the national registry; not registered -> refused
        if (identity.registry === undefined) throw new GatewayError('registry.unavailable', 'no registry configured');
        const professional = await identity.registry.lookup(eid.personId);
        // 4. the gateway vouches for the result
        const purpose: PurposeOfUse = body.purpose_of_use;
        const issued = await issueHcpAssertion({
          eid,
          professional,
          clientId: client.id,
          purposeOfUse: purpose,
          scope: 'patient/*.read patient/*.write',
          ourNcpId: config.ncpId,
          country: config.country,
          signingKey: opts.signingKey,
          ttlSeconds: config.policy.hcpAssertionTtlSeconds,
          now: now(),
        });
        await report({ outcome: 'success', subject: eid.personId, clientId: client.id });
        return {
          access_token: issued.token,
          token_type: 'Bearer' as const,
          expires_in: Math.max(0, Math.floor((issued.expiresAt.getTime() - now().getTime()) / 1000)),
          scope: issued.claims.scope,
          hcp: {
            name: professional.name,
            roles: professional.roles.map((r) => ({ code: r.code, display: r.display })),
            organization: professional.organization.name,
            facilityType: professional.facilityType,
            loa: eid.loa,
            purposeOfUse: purpose,
          },
        };
      } catch (e) {
        await report({ outcome: 'failure', code: e instanceof GatewayError ? e.code : 'internal.error' });
        throw e;
      }
    },
  );

  const citizenProvider = (id: string | undefined): OidcProvider => {
    const provider = id === undefined ? identity.citizenOidc[0] : identity.citizenOidc.find((p) => p.providerId === id);
    if (provider === undefined) throw new GatewayError('eid.unknown-issuer', 'no citizen eID provider configured');
    return provider;
  };
  const cookieBase = { httpOnly: true, secure: config.citizen?.secureCookies ?? true, sameSite: 'lax' as const };

  app.get(
    '/api/v1/auth/login',
    {
      schema: {
        summary: 'Start a citizen sign-in with the national eID (OpenID Connect code flow with PKCE)',
        tags: ['auth'],
        querystring: z.object({ provider: z.string().regex(/^[a-z0-9-]+$/).optional(), return_to: z.string().max(512).optional() }).strict(),
      },
    },
    async (request, reply) => {
      const provider = citizenProvider(request.query.provider);
      const { url, state } = await provider.beginLogin();
      await opts.db.query(
        'INSERT INTO login_states (state, provider_id, nonce, code_verifier, return_to, created_at) VALUES ($1, $2, $3, $4, $5, $6)',
        [state.state, provider.providerId, state.nonce, state.codeVerifier, safeReturnTo(request.query.return_to) ?? null, new Date(state.createdAt)],
      );
      // Old, abandoned sign-ins are swept here rather than by a timer: it costs one indexed delete.
      await opts.db.query("DELETE FROM login_states WHERE created_at < now() - interval '1 hour'");
      // The state is also bound to this browser: a callback carrying someone else's state (login
      // CSRF, RFC 6749 section 10.12) does not match the cookie.
      void reply.setCookie(LOGIN_COOKIE, state.state, { ...cookieBase, path: '/api/v1/auth', maxAge: LOGIN_STATE_MAX_AGE_SECONDS });
      return reply.redirect(url, 302);
    },
  );

  app.get(
    '/api/v1/auth/callback',
    {
      schema: {
        summary: 'Finish the citizen sign-in; sets the session cookie and returns a bearer token',
        tags: ['auth'],
        querystring: z.object({ state: z.string().min(1).max(512) }).loose(),
      },
    },
    async (request, reply) => {
      const report = async (event: Omit<SignInEvent, 'kind' | 'requestId' | 'remoteAddress'>): Promise<void> =>
        opts.onSignIn?.({ kind: 'citizen', requestId: request.id, remoteAddress: request.ip, ...event });
      try {
        const state = request.query.state;
        if (request.cookies[LOGIN_COOKIE] !== state) throw new GatewayError('eid.login-failed', 'state does not belong to this browser');
        // Consumed exactly once, whichever replica answers the callback.
        const rows = await opts.db.query<{ provider_id: string; nonce: string; code_verifier: string; return_to: string | null; created_at: Date | string }>(
          'DELETE FROM login_states WHERE state = $1 RETURNING provider_id, nonce, code_verifier, return_to, created_at',
          [state],
        );
        const saved = rows.rows[0];
        if (saved === undefined) throw new GatewayError('eid.login-failed', 'unknown or used state');
        const provider = citizenProvider(saved.provider_id);
        const callbackUrl = new URL(request.url, config.eid.oidc.find((o) => o.id === saved.provider_id)?.redirectUri ?? tokenUrl);
        const eid = await provider.completeLogin(callbackUrl, {
          state,
          nonce: saved.nonce,
          codeVerifier: saved.code_verifier,
          createdAt: new Date(saved.created_at).getTime(),
        });
        if (config.citizen === undefined) throw new GatewayError('eid.login-failed', 'citizen sign-in is not configured');
        const session = await issueCitizenToken(eid, {
          ourNcpId: config.ncpId,
          patientIdentifierSystem: config.citizen.patientIdentifierSystem,
          signingKey: opts.signingKey,
          ttlSeconds: config.citizen.sessionTtlSeconds,
          now: now(),
        });
        await report({ outcome: 'success', subject: eid.personId });
        void reply.clearCookie(LOGIN_COOKIE, { path: '/api/v1/auth' });
        void reply.setCookie(SESSION_COOKIE, session.token, { ...cookieBase, path: '/', expires: session.expiresAt });
        const returnTo = safeReturnTo(saved.return_to ?? undefined);
        if (returnTo !== undefined) return reply.redirect(returnTo, 303);
        return {
          access_token: session.token,
          token_type: 'Bearer',
          expires_in: Math.floor((session.expiresAt.getTime() - now().getTime()) / 1000),
        };
      } catch (e) {
        await report({ outcome: 'failure', code: e instanceof GatewayError ? e.code : 'internal.error' });
        throw e;
      }
    },
  );

  app.post('/api/v1/auth/logout', { schema: { summary: 'End the citizen session: the token stops working at once, the cookie is cleared', tags: ['auth'] } }, async (request, reply) => {
    // Sessions are signed tokens; signing out puts this one on the revocation list until it expires.
    const session = await requireCitizen(request, opts.guard).catch(() => undefined);
    if (session !== undefined) await opts.replay.remember(SIGNED_OUT_SCOPE, session.sessionId, session.expiresAt);
    void reply.clearCookie(SESSION_COOKIE, { path: '/' });
    return reply.code(204).send();
  });
};
