/**
 * The server-rendered pages: the citizen portal (`/portal`, country A: consents and access log) and
 * the professional viewer (`/viewer`, country B: identify a patient abroad and read the Patient
 * Summary). No client script at all; every page works without JavaScript.
 *
 * Encapsulated (not fastify-plugin): its form parser, security headers and HTML error pages apply
 * to these routes only; the API keeps JSON and OperationOutcome.
 *
 * Registered in src/app.ts (buildApiApp, after @fastify/cookie) with options built from GatewayDeps:
 *   { config: deps.config, services, guard: guardOptions(deps), trustList: () => deps.trust.require(), onQueued: deps.onQueued }
 */
import type {} from '@fastify/cookie';
import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { toGatewayError } from '../http/error-handler.js';
import { ERROR_CATALOGUE, GatewayError } from '../http/errors.js';
import { registerCitizenPages } from './citizen-routes.js';
import type { PortalContext, PortalOptions } from './context.js';
import { PORTAL_LANGS, PORTAL_PATH } from './citizen-views.js';
import { html, url } from './html.js';
import { MESSAGES, negotiateLang, type Lang } from './i18n.js';
import { CSS_PATH, renderPage } from './layout.js';
import { CONTENT_SECURITY_POLICY, deriveCsrfKey, FORM_BODY_LIMIT, FormRefusedError, parseForm, REFERRER_POLICY } from './security.js';
import { PORTAL_CSS } from './style.js';
import { registerViewerPages } from './viewer-routes.js';
import { VIEWER_LANGS, VIEWER_PATH } from './viewer-views.js';

export type { PortalOptions } from './context.js';

function defaultLang(country: string, offered: readonly Lang[]): Lang {
  const national: Readonly<Record<string, Lang>> = { DK: 'da', ES: 'es' };
  const l = national[country];
  return l !== undefined && offered.includes(l) ? l : 'en';
}

function queryLang(request: FastifyRequest): unknown {
  const q = request.query;
  return typeof q === 'object' && q !== null && 'lang' in q ? q.lang : undefined;
}

export const portalRoutes: FastifyPluginAsyncZod<PortalOptions> = async (app, opts) => {
  const ctx: PortalContext = {
    opts,
    csrfKey: deriveCsrfKey(opts.guard.signingKey),
    secureCookies: opts.config.citizen?.secureCookies ?? true,
    portalLang: (request) =>
      negotiateLang({ query: queryLang(request), acceptLanguage: request.headers['accept-language'], offered: PORTAL_LANGS, fallback: defaultLang(opts.config.country, PORTAL_LANGS) }),
    viewerLang: (request) =>
      negotiateLang({ query: queryLang(request), acceptLanguage: request.headers['accept-language'], offered: VIEWER_LANGS, fallback: defaultLang(opts.config.country, VIEWER_LANGS) }),
    sendPage: (reply, status, page) => reply.code(status).header('content-type', 'text/html; charset=utf-8').send(page),
  };

  // Forms only, and only here: the API's JSON parsers stay the only ones outside this plugin.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: FORM_BODY_LIMIT }, (_request, body, done) => {
    try {
      done(null, parseForm(typeof body === 'string' ? body : body.toString('utf8')));
    } catch (e) {
      done(e instanceof Error ? e : new GatewayError('request.invalid'), undefined);
    }
  });

  // Runs after helmet's hooks (registered on the root): these headers replace its API defaults.
  app.addHook('onRequest', async (request, reply) => {
    void reply.header('content-security-policy', CONTENT_SECURITY_POLICY);
    void reply.header('referrer-policy', REFERRER_POLICY);
    if (request.url !== CSS_PATH) void reply.header('cache-control', 'no-store');
  });

  app.setErrorHandler((error, request, reply) => {
    const viewer = request.url.startsWith(VIEWER_PATH);
    const lang = viewer ? ctx.viewerLang(request) : ctx.portalLang(request);
    const m = MESSAGES[lang];
    let status: number;
    let message: string;
    let signIn = false;
    if (error instanceof FormRefusedError) {
      request.log.info({ reason: error.reason }, 'form refused');
      status = 403;
      message = m.forbiddenForm;
    } else {
      const { gatewayError, expected } = toGatewayError(error);
      if (expected) request.log.info({ code: gatewayError.code }, 'page request refused');
      else request.log.error({ err: error, code: gatewayError.code }, 'page request failed');
      status = ERROR_CATALOGUE[gatewayError.code].status;
      const code = gatewayError.code;
      if (code.startsWith('citizen.session') || code.startsWith('hcp.assertion')) {
        message = m.sessionExpired;
        signIn = true;
      } else if (status === 404) {
        message = m.notFound;
      } else if (status >= 500) {
        message = expected ? m.unavailable : m.genericError(request.id);
      } else {
        message = ERROR_CATALOGUE[code].title;
      }
    }
    const home = viewer ? VIEWER_PATH : PORTAL_PATH;
    const page = renderPage({
      lang,
      title: m.errorTitle,
      site: { name: viewer ? m.viewerTitle : m.portalTitle, home },
      langSwitch: { path: home, offered: viewer ? VIEWER_LANGS : PORTAL_LANGS },
      body: html`<h1>${m.errorTitle}</h1><div class="errors" role="alert"><p>${message}</p></div><p><a href="${url(home, { lang })}">${signIn ? (viewer ? m.signInButton : m.signInLink) : m.errorBack}</a></p>`,
    });
    return ctx.sendPage(reply, status, page);
  });

  app.get(CSS_PATH, { schema: { hide: true } }, async (_request, reply) =>
    reply.header('content-type', 'text/css; charset=utf-8').header('cache-control', 'public, max-age=3600').send(PORTAL_CSS),
  );

  registerCitizenPages(app, ctx);
  registerViewerPages(app, ctx);
};
