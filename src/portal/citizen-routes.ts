/**
 * Citizen portal routes (country A). The session is the one the OIDC sign-in set
 * (`ncpeh_session`, src/identity/routes.ts), verified by `requireCitizen` exactly as the consent API
 * verifies it. Every POST passes, in order: same-origin check -> session -> form token bound to
 * that session -> the form's own validation (`validateConsentInput`, as the API) -> the change ->
 * its audit record -> 303 back to the page (post/redirect/get).
 */
import { SIGNED_OUT_SCOPE } from '../identity/routes.js';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { validateConsentInput } from '../consent/model.js';
import type { StoredConsent } from '../consent/repository.js';
import { GatewayError, isGatewayError } from '../http/errors.js';
import { SESSION_COOKIE, type CitizenSession } from '../identity/citizen-session.js';
import { requireCitizen } from '../identity/guards.js';
import { accessLogFor } from '../audit/access-log.js';
import { accessLogBody, consentsBody, PORTAL_LANGS, PORTAL_PATH, signInBody, type FieldProblem, type GrantFormState } from './citizen-views.js';
import type { PortalApp, PortalContext } from './context.js';
import { url } from './html.js';
import { MESSAGES, type Lang, type Messages } from './i18n.js';
import { renderPage } from './layout.js';
import { checkCsrfToken, checkSameOrigin, csrfToken, field, fields, FormRefusedError, isFormBody, ownOrigin, type FormBody } from './security.js';

const PageQuery = z.object({ lang: z.string().max(8).optional(), notice: z.enum(['created', 'revoked']).optional() }).loose();
const LangQuery = z.object({ lang: z.string().max(8).optional() }).loose();
const ConsentParams = z.object({ id: z.string().min(1).max(64) });

/** Policy URI the portal's consents name, as the consent API does. */

function formOf(body: unknown): FormBody {
  if (!isFormBody(body)) throw new GatewayError('request.unsupported-media-type');
  return body;
}

/** The zod issues behind `consent.invalid`, as form problems in the reader's language. */
function problemsOf(e: GatewayError, m: Messages): FieldProblem[] {
  const issues = e.cause instanceof z.ZodError ? e.cause.issues : [];
  const seen = new Set<string>();
  const out: FieldProblem[] = [];
  for (const issue of issues) {
    const [first, second] = issue.path.map(String);
    const name = first === 'period' ? `period.${second ?? 'start'}` : (first ?? 'form');
    const message = m.fieldMessages[issue.message] ?? (/at least one/.test(issue.message) ? m.fieldMessages['required'] : /^not an? /.test(issue.message) ? m.fieldMessages['unknown'] : undefined) ?? issue.message;
    const key = `${name}\n${message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ field: name, message });
  }
  if (out.length === 0) out.push({ field: 'form', message: e.detail ?? e.message });
  return out;
}

export function registerCitizenPages(app: PortalApp, ctx: PortalContext): void {
  const { opts } = ctx;
  const audit = opts.services.audit;
  const grantable = (): string[] => Object.keys(opts.trustList().countries).filter((c) => c !== opts.config.country).sort();
  const today = (): string => opts.guard.now().toISOString().slice(0, 10);
  const emptyForm = (): GrantFormState => ({ countries: [], roles: [], purposes: [], sections: [], start: today(), end: '' });

  const frame = (lang: Lang, title: string, body: Parameters<typeof renderPage>[0]['body'], session?: { csrf: string }, current?: 'consents' | 'log'): string => {
    const m = MESSAGES[lang];
    return renderPage({
      lang,
      title,
      site: { name: m.portalTitle, home: PORTAL_PATH },
      langSwitch: { path: current === 'log' ? `${PORTAL_PATH}/access-log` : PORTAL_PATH, offered: PORTAL_LANGS },
      ...(session === undefined
        ? {}
        : {
            nav: [
              { href: url(PORTAL_PATH, { lang }), label: m.consentsLink, current: current === 'consents' },
              { href: url(`${PORTAL_PATH}/access-log`, { lang }), label: m.accessLogLink, current: current === 'log' },
            ],
            signOut: { action: url(`${PORTAL_PATH}/sign-out`, { lang }), csrf: session.csrf },
          }),
      body,
    });
  };

  /** The session and its form token, or undefined when there is no valid session (sign-in page). */
  const sessionOf = async (request: FastifyRequest): Promise<{ session: CitizenSession; csrf: string } | undefined> => {
    try {
      const session = await requireCitizen(request, opts.guard);
      return { session, csrf: csrfToken(ctx.csrfKey, 'portal', request.cookies[SESSION_COOKIE] ?? '') };
    } catch (e) {
      if (isGatewayError(e) && (e.code === 'citizen.session-missing' || e.code === 'citizen.session-invalid')) return undefined;
      throw e;
    }
  };

  /** Rules every state-changing portal request passes before it does anything. */
  const checkPost = async (request: FastifyRequest): Promise<{ session: CitizenSession; form: FormBody; csrf: string }> => {
    checkSameOrigin(request, ownOrigin(request, opts.config.api.publicUrl));
    // Pages act for the cookie's session only, the one the form token is bound to; API clients
    // with a Bearer token use /api/v1/me/consents.
    if (request.headers.authorization !== undefined) throw new FormRefusedError('csrf');
    const session = await requireCitizen(request, opts.guard);
    const form = formOf(request.body);
    const binding = request.cookies[SESSION_COOKIE] ?? '';
    checkCsrfToken(ctx.csrfKey, 'portal', binding, field(form, 'csrf'));
    return { session, form, csrf: csrfToken(ctx.csrfKey, 'portal', binding) };
  };

  const recordChange = async (action: 'create' | 'revoke', session: CitizenSession, consent: StoredConsent, requestId: string): Promise<void> =>
    audit.record(
      {
        kind: 'consent-change',
        outcome: 'success',
        interaction: action === 'create' ? 'create' : 'update',
        user: { id: { iss: opts.config.ncpId, sub: session.personId }, ...(session.name === undefined ? {} : { name: session.name }) },
        transactionId: requestId,
        entityExtra: [{ what: { reference: `Consent/${consent.id}` }, description: action }],
      },
      { patientKey: session.patientKey },
    );

  const consentsPage = async (
    lang: Lang,
    s: { session: CitizenSession; csrf: string },
    form: GrantFormState,
    problems: readonly FieldProblem[],
    notice: 'created' | 'revoked' | undefined,
  ): Promise<string> => {
    const consents = await opts.services.consents.listForPatient(s.session.patientKey);
    const body = consentsBody({ lang, name: s.session.name, consents, grantableCountries: grantable(), form, problems, notice, csrf: s.csrf, now: opts.guard.now() });
    return frame(lang, MESSAGES[lang].yourConsents, body, s, 'consents');
  };

  app.get(PORTAL_PATH, { schema: { hide: true, querystring: PageQuery } }, async (request, reply) => {
    const lang = ctx.portalLang(request);
    const s = await sessionOf(request);
    if (s === undefined) return ctx.sendPage(reply, 200, frame(lang, MESSAGES[lang].signInHeading, signInBody(lang)));
    return ctx.sendPage(reply, 200, await consentsPage(lang, s, emptyForm(), [], request.query.notice));
  });

  app.post(`${PORTAL_PATH}/consents`, { schema: { hide: true, querystring: LangQuery } }, async (request, reply) => {
    const lang = ctx.portalLang(request);
    const { session, form, csrf } = await checkPost(request);
    const state: GrantFormState = {
      countries: fields(form, 'countries'),
      roles: fields(form, 'roles'),
      purposes: fields(form, 'purposes'),
      sections: fields(form, 'sections'),
      start: field(form, 'start') ?? '',
      end: field(form, 'end') ?? '',
    };
    const now = opts.guard.now();
    let terms;
    try {
      terms = validateConsentInput(
        {
          kind: 'permit',
          countries: state.countries,
          roles: state.roles,
          purposes: state.purposes,
          sections: state.sections,
          period: state.end === '' ? { start: state.start } : { start: state.start, end: state.end },
        },
        { knownCountries: grantable(), now },
      );
    } catch (e) {
      if (!isGatewayError(e) || e.code !== 'consent.invalid') throw e;
      return ctx.sendPage(reply, 422, await consentsPage(lang, { session, csrf }, state, problemsOf(e, MESSAGES[lang]), undefined));
    }
    const stored = await opts.services.consents.grant(session, terms, { grantedAt: now, ourCountry: opts.config.country });
    await recordChange('create', session, stored, request.id);
    return reply.redirect(url(PORTAL_PATH, { lang, notice: 'created' }), 303);
  });

  app.post(`${PORTAL_PATH}/consents/:id/revoke`, { schema: { hide: true, params: ConsentParams, querystring: LangQuery } }, async (request, reply) => {
    const lang = ctx.portalLang(request);
    const { session } = await checkPost(request);
    const revoked = await opts.services.consents.revoke(session.patientKey, request.params.id, opts.guard.now());
    await recordChange('revoke', session, revoked, request.id);
    return reply.redirect(url(PORTAL_PATH, { lang, notice: 'revoked' }), 303);
  });

  app.get(`${PORTAL_PATH}/access-log`, { schema: { hide: true, querystring: LangQuery } }, async (request, reply) => {
    const lang = ctx.portalLang(request);
    const s = await sessionOf(request);
    if (s === undefined) return ctx.sendPage(reply, 200, frame(lang, MESSAGES[lang].signInHeading, signInBody(lang)));
    const view = await accessLogFor(opts.services.auditLog, s.session.patientKey);
    return ctx.sendPage(reply, 200, frame(lang, MESSAGES[lang].accessLogHeading, accessLogBody(lang, view, opts.config.ncpId), s, 'log'));
  });

  app.post(`${PORTAL_PATH}/sign-out`, { schema: { hide: true, querystring: LangQuery } }, async (request, reply) => {
    const lang = ctx.portalLang(request);
    await checkPost(request);
    // Like POST /api/v1/auth/logout: the session token itself stops working, not only the cookie.
    const current = await sessionOf(request);
    if (current !== undefined) await opts.services.replay.remember(SIGNED_OUT_SCOPE, current.session.sessionId, current.session.expiresAt);
    void reply.clearCookie(SESSION_COOKIE, { path: '/' });
    return reply.redirect(url(PORTAL_PATH, { lang }), 303);
  });
}
