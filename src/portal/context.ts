/**
 * The options of the pages plugin and what its page modules share.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Config } from '../config/schema.js';
import type { GuardOptions } from '../identity/guards.js';
import type { GatewayServices } from '../services.js';
import type { TrustList } from '../trust/trust-list.js';
import type { Lang } from './i18n.js';

/** Everything the pages need, all of it from `GatewayDeps` (src/app.ts). */
export interface PortalOptions {
  /** Country and NCP id, `sandbox` (viewer sign-in), the SAML IdP, cookie security, public URL. */
  readonly config: Readonly<Config>;
  /** consents, auditLog and audit (portal); identity, peers and audit (viewer). */
  readonly services: GatewayServices;
  /**
   * `guardOptions(deps)`: verifies citizen sessions and HCP assertions as the API does; its signing
   * key also signs the viewer's HCP assertions and is the root the form-token key is derived from.
   */
  readonly guard: GuardOptions;
  /** The trust list in force: the countries a consent can name and a professional can search. */
  readonly trustList: () => TrustList;
  /** `deps.onQueued`: wakes the outbox worker when the viewer queued a note for delivery. */
  readonly onQueued?: () => void;
}

/** What the page modules share. */
export interface PortalContext {
  readonly opts: PortalOptions;
  readonly csrfKey: Buffer;
  readonly secureCookies: boolean;
  portalLang(request: FastifyRequest): Lang;
  viewerLang(request: FastifyRequest): Lang;
  /** Sends a full page with status `status`. */
  sendPage(reply: FastifyReply, status: number, page: string): FastifyReply;
}

/** The Fastify instance inside the plugin (zod type provider). */
export type PortalApp = Parameters<FastifyPluginAsyncZod<PortalOptions>>[0];
