/**
 * Professional viewer routes (country B): a minimal EHR front end for the sandbox. The
 * professional's HCP assertion (the same JWT `POST /api/v1/auth/hcp` issues) lives in an HttpOnly
 * cookie scoped to /viewer and is verified on every request as `requireHcp` verifies a Bearer token.
 * Every POST passes: same-origin check -> (assertion) -> form token bound to the assertion (or, for
 * sign-in, to a pre-session nonce cookie) -> the search mask -> the cross-border call.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { GatewayError, isGatewayError } from '../http/errors.js';
import { callerLeft } from '../http/work-limiter.js';
import type { HcpAssertion } from '../identity/hcp-assertion.js';
import type { PortalApp, PortalContext } from './context.js';
import { url, type HtmlValue } from './html.js';
import { MESSAGES, ROLE_TITLES, type Lang } from './i18n.js';
import { renderPage } from './layout.js';
import { SEARCH_MASKS, type SearchMask } from './search-masks.js';
import { checkCsrfToken, checkSameOrigin, csrfToken, field, isFormBody, ownOrigin, type FormBody } from './security.js';
import { renderSummary } from './summary-view.js';
import {
  fetchSummary,
  identifyPatient,
  isExplainedRefusal,
  MAX_NOTE_CHARS,
  sandboxSignIn,
  sendNoteHome,
  verifyViewerAssertion,
  type ViewerDeps,
} from './viewer-service.js';
import {
  noteForm,
  noteQueuedBody,
  VIEWER_LANGS,
  VIEWER_PATH,
  viewerHomeBody,
  viewerRefusedBody,
  viewerResultsBody,
  viewerSignInBody,
  type SearchState,
} from './viewer-views.js';

export const HCP_COOKIE = 'ncpeh_hcp';
/** Binds the sign-in form to this browser before there is any session (login CSRF). */
export const VIEWER_NONCE_COOKIE = 'ncpeh_viewer_nonce';
const NONCE_MAX_AGE_SECONDS = 3600;

const LangQuery = z.object({ lang: z.string().max(8).optional() }).loose();
const SummaryParams = z.object({ country: z.string().regex(/^[A-Z]{2}$/), ref: z.string().min(1).max(128) });
const PersonId = z.string().trim().min(1).max(256).regex(/^[\x21-\x7e]+$/);
const BirthDate = z.iso.date();
/** The form's idempotency key: a UUID the page generated (it also becomes the resource's fullUrl). */
const IdempotencyKey = z.uuid();

function formOf(body: unknown): FormBody {
  if (!isFormBody(body)) throw new GatewayError('request.unsupported-media-type');
  return body;
}

export function registerViewerPages(app: PortalApp, ctx: PortalContext): void {
  const { opts } = ctx;
  const deps: ViewerDeps = { config: opts.config, services: opts.services, guard: opts.guard, ...(opts.onQueued === undefined ? {} : { onQueued: opts.onQueued }) };
  const cookieBase = { httpOnly: true, secure: ctx.secureCookies, sameSite: 'strict' as const, path: VIEWER_PATH };

  const frame = (lang: Lang, title: string, body: HtmlValue, hcpToken?: string): string => {
    const m = MESSAGES[lang];
    return renderPage({
      lang,
      title,
      site: { name: m.viewerTitle, home: VIEWER_PATH },
      langSwitch: { path: VIEWER_PATH, offered: VIEWER_LANGS },
      ...(hcpToken === undefined
        ? {}
        : {
            nav: [{ href: url(VIEWER_PATH, { lang }), label: m.newSearch }],
            signOut: { action: url(`${VIEWER_PATH}/sign-out`, { lang }), csrf: csrfToken(ctx.csrfKey, 'viewer', hcpToken) },
          }),
      body,
    });
  };

  const who = (a: HcpAssertion, lang: Lang): string => {
    const iua = a.extensions.ihe_iua;
    const roles = iua.subject_role.map((r) => ROLE_TITLES[r.code]?.[lang] ?? r.display ?? r.code);
    return MESSAGES[lang].signedInAsHcp(iua.subject_name, roles.join(', '), iua.subject_organization);
  };

  /** Countries a professional here can search: in the trust list, not ours, with a search mask. */
  const masks = (): SearchMask[] =>
    Object.keys(opts.trustList().countries)
      .filter((c) => c !== opts.config.country)
      .sort()
      .map((c) => SEARCH_MASKS.get(c))
      .filter((m): m is SearchMask => m !== undefined);

  /** The verified assertion from the cookie; throws `hcp.assertion-*` (the error page offers sign-in). */
  const requireViewerHcp = async (request: FastifyRequest): Promise<{ token: string; assertion: HcpAssertion }> => {
    const token = request.cookies[HCP_COOKIE];
    if (token === undefined || token.length === 0) throw new GatewayError('hcp.assertion-missing');
    return { token, assertion: await verifyViewerAssertion(deps, token) };
  };

  /** Rules every state-changing viewer request of a signed-in professional passes before it does anything. */
  const checkPost = async (request: FastifyRequest): Promise<{ hcp: { token: string; assertion: HcpAssertion }; form: FormBody; csrf: string }> => {
    checkSameOrigin(request, ownOrigin(request, opts.config.api.publicUrl));
    const hcp = await requireViewerHcp(request);
    const form = formOf(request.body);
    checkCsrfToken(ctx.csrfKey, 'viewer', hcp.token, field(form, 'csrf'));
    return { hcp, form, csrf: csrfToken(ctx.csrfKey, 'viewer', hcp.token) };
  };

  const signInPage = (reply: FastifyReply, request: FastifyRequest, lang: Lang, status: number, failed: boolean, personId: string): FastifyReply => {
    let nonce = request.cookies[VIEWER_NONCE_COOKIE];
    if (nonce === undefined || !/^[A-Za-z0-9_-]{43}$/.test(nonce)) {
      nonce = randomBytes(32).toString('base64url');
      void reply.setCookie(VIEWER_NONCE_COOKIE, nonce, { ...cookieBase, maxAge: NONCE_MAX_AGE_SECONDS });
    }
    const csrf = csrfToken(ctx.csrfKey, 'viewer-sign-in', nonce);
    const m = MESSAGES[lang];
    return ctx.sendPage(reply, status, frame(lang, m.viewerSignInHeading, viewerSignInBody({ lang, sandbox: opts.config.sandbox, csrf, failed, personId })));
  };

  app.get(VIEWER_PATH, { schema: { hide: true, querystring: LangQuery } }, async (request, reply) => {
    const lang = ctx.viewerLang(request);
    let hcp;
    try {
      hcp = await requireViewerHcp(request);
    } catch (e) {
      if (!isGatewayError(e) || !e.code.startsWith('hcp.assertion')) throw e;
      if (e.code !== 'hcp.assertion-missing') void reply.clearCookie(HCP_COOKIE, { path: VIEWER_PATH });
      return signInPage(reply, request, lang, 200, false, '');
    }
    const csrf = csrfToken(ctx.csrfKey, 'viewer', hcp.token);
    return ctx.sendPage(reply, 200, frame(lang, MESSAGES[lang].viewerTitle, viewerHomeBody({ lang, who: who(hcp.assertion, lang), masks: masks(), csrf }), hcp.token));
  });

  app.post(`${VIEWER_PATH}/sign-in`, { schema: { hide: true, querystring: LangQuery } }, async (request, reply) => {
    const lang = ctx.viewerLang(request);
    checkSameOrigin(request, ownOrigin(request, opts.config.api.publicUrl));
    const form = formOf(request.body);
    checkCsrfToken(ctx.csrfKey, 'viewer-sign-in', request.cookies[VIEWER_NONCE_COOKIE] ?? '', field(form, 'csrf'));
    if (!opts.config.sandbox) return signInPage(reply, request, lang, 403, false, '');
    const personId = PersonId.safeParse(field(form, 'personId') ?? '');
    const purpose = field(form, 'purpose') === 'ETREAT' ? 'ETREAT' : 'TREAT';
    if (!personId.success) return signInPage(reply, request, lang, 422, true, field(form, 'personId')?.slice(0, 256) ?? '');
    let signedIn;
    try {
      signedIn = await sandboxSignIn(deps, personId.data, purpose, { requestId: request.id, remoteAddress: request.ip });
    } catch (e) {
      // Refusals of the person (unknown to the IdP, not registered, LoA) are a message on the page.
      if (isGatewayError(e) && e.status < 500) return signInPage(reply, request, lang, 401, true, personId.data);
      throw e;
    }
    void reply.clearCookie(VIEWER_NONCE_COOKIE, { path: VIEWER_PATH });
    void reply.setCookie(HCP_COOKIE, signedIn.token, { ...cookieBase, expires: signedIn.expiresAt });
    return reply.redirect(url(VIEWER_PATH, { lang }), 303);
  });

  app.post(`${VIEWER_PATH}/sign-out`, { schema: { hide: true, querystring: LangQuery } }, async (request, reply) => {
    const lang = ctx.viewerLang(request);
    checkSameOrigin(request, ownOrigin(request, opts.config.api.publicUrl));
    const form = formOf(request.body);
    checkCsrfToken(ctx.csrfKey, 'viewer', request.cookies[HCP_COOKIE] ?? '', field(form, 'csrf'));
    void reply.clearCookie(HCP_COOKIE, { path: VIEWER_PATH });
    return reply.redirect(url(VIEWER_PATH, { lang }), 303);
  });

  app.post(`${VIEWER_PATH}/identify`, { schema: { hide: true, querystring: LangQuery } }, async (request, reply) => {
    const lang = ctx.viewerLang(request);
    const m = MESSAGES[lang];
    const { hcp, form, csrf } = await checkPost(request);
    const country = field(form, 'country') ?? '';
    const mask = masks().find((x) => x.country === country);
    if (mask === undefined) throw new GatewayError('peer.unknown-country', country.slice(0, 2));
    // The search mask, before anything leaves this gateway.
    const rawIdentifier = (field(form, 'identifier') ?? '').slice(0, 64);
    const birthDate = (field(form, 'birthDate') ?? '').slice(0, 10);
    const problems: Array<SearchState['problems'][number]> = [];
    const identifier = mask.normalise(rawIdentifier);
    if (identifier === undefined) problems.push({ field: 'identifier', message: m.identifierInvalid });
    if (!BirthDate.safeParse(birthDate).success) problems.push({ field: 'birthDate', message: m.birthDateInvalid });
    if (identifier !== undefined && problems.length === 0) {
      const rule = mask.check(identifier, birthDate);
      if (rule !== undefined) {
        problems.push({ field: rule === 'birthDateInvalid' ? 'birthDate' : 'identifier', message: m[rule] });
      }
    }
    if (identifier === undefined || problems.length > 0) {
      const state: SearchState = { country, identifier: rawIdentifier, birthDate, problems };
      return ctx.sendPage(reply, 422, frame(lang, m.viewerTitle, viewerHomeBody({ lang, who: who(hcp.assertion, lang), masks: masks(), csrf, state }), hcp.token));
    }
    const result = await identifyPatient(deps, hcp, { country, identifier: { system: mask.system, value: identifier }, birthDate }, { requestId: request.id, remoteAddress: request.ip, signal: callerLeft(reply) });
    return ctx.sendPage(reply, 200, frame(lang, m.viewerTitle, viewerResultsBody({ lang, who: who(hcp.assertion, lang), country, result }), hcp.token));
  });

  app.get(`${VIEWER_PATH}/patients/:country/:ref`, { schema: { hide: true, params: SummaryParams, querystring: LangQuery } }, async (request, reply) => {
    const lang = ctx.viewerLang(request);
    const m = MESSAGES[lang];
    const hcp = await requireViewerHcp(request);
    const { country, ref } = request.params;
    let fetched;
    try {
      fetched = await fetchSummary(deps, hcp, country, ref, { requestId: request.id, remoteAddress: request.ip, signal: callerLeft(reply) });
    } catch (e) {
      if (!isExplainedRefusal(e) || !isGatewayError(e) || e.code.startsWith('hcp.assertion')) throw e;
      return ctx.sendPage(reply, e.status, frame(lang, m.viewerTitle, viewerRefusedBody(lang, who(hcp.assertion, lang)), hcp.token));
    }
    const summary = renderSummary(fetched.bundle, { signerNcpId: fetched.signerNcpId, signerCountry: country, signedAt: fetched.signedAt, basis: fetched.basis }, lang);
    const note = noteForm({ lang, country, ref, csrf: csrfToken(ctx.csrfKey, 'viewer', hcp.token), idempotencyKey: randomUUID() });
    return ctx.sendPage(reply, 200, frame(lang, m.summaryOf(summary.patientName), [summary.body, note], hcp.token));
  });

  app.post(`${VIEWER_PATH}/patients/:country/:ref/notes`, { schema: { hide: true, params: SummaryParams, querystring: LangQuery } }, async (request, reply) => {
    const lang = ctx.viewerLang(request);
    const m = MESSAGES[lang];
    const { hcp, form, csrf } = await checkPost(request);
    const { country, ref } = request.params;
    const key = IdempotencyKey.safeParse(field(form, 'idempotencyKey'));
    if (!key.success) throw new GatewayError('request.invalid', 'idempotencyKey');
    const note = (field(form, 'note') ?? '').replace(/\r\n/g, '\n').trim();
    const problem = note.length === 0 ? m.noteEmpty : note.length > MAX_NOTE_CHARS ? m.noteTooLong(MAX_NOTE_CHARS) : undefined;
    if (problem !== undefined) {
      const again = noteForm({ lang, country, ref, csrf, idempotencyKey: key.data, note: note.slice(0, MAX_NOTE_CHARS), problem });
      return ctx.sendPage(reply, 422, frame(lang, m.noteHeading, again, hcp.token));
    }
    const queued = await sendNoteHome(deps, hcp, { country, ref, note, idempotencyKey: key.data, lang }, { requestId: request.id, remoteAddress: request.ip });
    return ctx.sendPage(reply, 202, frame(lang, m.noteHeading, noteQueuedBody({ lang, who: who(hcp.assertion, lang), country, ref, trackingId: queued.trackingId }), hcp.token));
  });
}
