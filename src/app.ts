/**
 * Builds the gateway's two Fastify instances from explicit dependencies, with no I/O of its own:
 * the hospital/citizen API and the peer API. src/main.ts supplies real dependencies; tests supply
 * their own (in-memory PGlite, generated keys) and use `inject` or real listeners.
 */
import { randomUUID } from 'node:crypto';
import type { SecureContextOptions, TLSSocket } from 'node:tls';
import cookie from '@fastify/cookie';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from './config/schema.js';
import { peerRoutes, pingOperation, type PeerOperation } from './crossborder/peer-routes.js';
import { RefusalCoalescer, refusalDescription } from './audit/refusal-coalescer.js';
import { accessLogRoutes, checkpointForPeer } from './audit/routes.js';
import { consentRoutes } from './consent/routes.js';
import { consumerRoutes } from './crossborder/consumer-routes.js';
import { PEER_CALL_TIMEOUT_MS } from './crossborder/peer-client.js';
import { discoveryOperation, summaryOperation } from './crossborder/provider.js';
import { documentsOperation, GP_WEBHOOK_TIMEOUT_MS, gpNotifier } from './crossborder/receiver.js';
import { citizenReadingsRoutes } from './national/citizen-routes.js';
import { submissionRoutes } from './outbox/routes.js';
import { healthRoutes, type ReadinessCheck } from './health/routes.js';
import type { GuardOptions } from './identity/guards.js';
import { authRoutes, SIGNED_OUT_SCOPE, type SignInEvent } from './identity/routes.js';
import { HTTP_TIMEOUT_SECONDS as OIDC_HTTP_TIMEOUT_SECONDS } from './identity/oidc.js';
import { portalRoutes } from './portal/routes.js';
import type { GatewayServices } from './services.js';
import { registerCommon, serverOptions } from './http/common.js';
import type { Metrics } from './http/metrics.js';
import { WorkLimiter } from './http/work-limiter.js';
import { registerOpenApi } from './http/openapi.js';
import type { Db } from './storage/db.js';
import type { GatewayKeys } from './trust/keys.js';
import { disableRenegotiation } from './trust/peer-tls.js';
import { createPeerServer } from './http/peer-server.js';
import { jwksRoutes } from './trust/routes.js';
import type { TrustList } from './trust/trust-list.js';

/** The part of the trust store the app needs: the list in force, and whether there is one. */
export interface TrustSource {
  require(): TrustList;
  isReady(): boolean;
}

export interface GatewayDeps {
  readonly config: Readonly<Config>;
  readonly db: Db;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly keys: GatewayKeys;
  readonly trust: TrustSource;
  readonly services: GatewayServices;
  /** Extra readiness checks beyond the database and the trust list. */
  readonly readiness?: readonly ReadinessCheck[];
  /** Called when a submission was queued (main.ts kicks the outbox worker). */
  readonly onQueued?: () => void;
  /** Peer operations beyond the built-in ping. */
  readonly peerOperations?: readonly PeerOperation[];
  /**
   * TLS for the peer listener. Without it the peer app still builds (for `inject` tests) but every
   * peer route refuses, because no request can present a verified client certificate.
   */
  readonly peerTls?: Pick<SecureContextOptions, 'cert' | 'key' | 'ca'>;
  readonly now?: () => Date;
}

export interface Gateway {
  readonly api: FastifyInstance;
  readonly peer: FastifyInstance;
}

/** The API listener's request timeout: slow-loris protection (the peer listener's: http/peer-server.ts). */
const REQUEST_TIMEOUT_MS = 30_000;

/**
 * The most national FHIR calls one API request makes one after another: recording a citizen's
 * readings finds the patient and registers them, then notifies the GP (reads the patient, registers
 * the notification) and calls the webhook (5 s).
 */
const NATIONAL_CALLS_IN_SEQUENCE = 4;
/** A sign-in's calls to the eID provider, one after another (discovery, token, keys). */
const EID_CALLS_MS = 3 * OIDC_HTTP_TIMEOUT_SECONDS * 1000;

/**
 * The API listener's socket idle timeout while a request is in work (Fastify's connectionTimeout;
 * idle keep-alive connections have their own, 72 s). It closes connections whose client stopped
 * reading, and must stay above the longest a request may legitimately be silent: its national FHIR
 * calls, a sign-in's eID calls, or a slot for a peer country and then the peer call. Below that,
 * the listener dropped the connection of an EHR waiting on a slow peer without any answer, instead
 * of letting `peer.unreachable` reach it. 55 s with the defaults.
 */
export function apiIdleTimeoutMs(config: Readonly<Config>): number {
  const national = (config.nationalFhir?.timeoutMs ?? 0) * NATIONAL_CALLS_IN_SEQUENCE + GP_WEBHOOK_TIMEOUT_MS;
  const peer = config.capacity.queueTimeoutMs + PEER_CALL_TIMEOUT_MS;
  return Math.max(national, peer, EID_CALLS_MS) + 10_000;
}

function childLogger(deps: GatewayDeps, listener: 'api' | 'peer'): FastifyBaseLogger {
  return deps.logger.child({ listener });
}

function readinessChecks(deps: GatewayDeps): ReadinessCheck[] {
  return [
    { name: 'database', check: () => deps.db.ping() },
    {
      name: 'trust-list',
      check: async () => {
        if (!deps.trust.isReady()) throw new Error('no valid trust list');
      },
    },
    ...(deps.readiness ?? []),
  ];
}

function guardOptions(deps: GatewayDeps): GuardOptions {
  return {
    ourNcpId: deps.config.ncpId,
    signingKey: deps.keys.signing,
    skewSeconds: deps.config.policy.clockSkewSeconds,
    now: deps.now ?? (() => new Date()),
    sessionRevoked: (sessionId) => deps.services.replay.has(SIGNED_OUT_SCOPE, sessionId),
  };
}

/** Every sign-in, permitted or refused, becomes an audit record (BALP user authentication). */
function signInAuditor(deps: GatewayDeps): (event: SignInEvent) => Promise<void> {
  return (event) =>
    deps.services.audit.record({
      kind: 'sign-in',
      outcome: event.outcome === 'success' ? 'success' : 'minor',
      ...(event.subject === undefined ? {} : { user: { id: { iss: `urn:ncpeh:eid:${event.kind}`, sub: event.subject } } }),
      client: { id: event.clientId ?? (event.kind === 'citizen' ? 'citizen-browser' : 'unknown-client'), network: event.remoteAddress },
      transactionId: event.requestId,
      ...(event.code === undefined ? {} : { outcomeDesc: event.code }),
    });
}

export async function buildApiApp(deps: GatewayDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: childLogger(deps, 'api'),
    bodyLimit: deps.config.api.bodyLimitBytes,
    requestTimeout: REQUEST_TIMEOUT_MS,
    connectionTimeout: apiIdleTimeoutMs(deps.config),
    return503OnClosing: true,
    ...serverOptions(),
  });
  await registerCommon(app, { listener: 'api', metrics: deps.metrics });
  await registerOpenApi(app, { country: deps.config.country, publicUrl: deps.config.api.publicUrl });
  await app.register(healthRoutes, { checks: readinessChecks(deps), metrics: deps.metrics });
  await app.register(jwksRoutes, { keys: deps.keys });
  await app.register(cookie);
  const { services } = deps;
  await app.register(authRoutes, {
    guard: guardOptions(deps),
    config: deps.config,
    identity: services.identity,
    signingKey: deps.keys.signing,
    replay: services.replay,
    db: deps.db,
    onSignIn: signInAuditor(deps),
    ...(deps.now === undefined ? {} : { now: deps.now }),
  });
  await app.register(consentRoutes, {
    guard: guardOptions(deps),
    consents: services.consents,
    ourCountry: deps.config.country,
    trustList: () => deps.trust.require(),
    onChange: async ({ action, session, consent, requestId }) =>
      services.audit.record(
        {
          kind: 'consent-change',
          outcome: 'success',
          interaction: action === 'create' ? 'create' : 'update',
          user: { id: { iss: deps.config.ncpId, sub: session.personId }, ...(session.name === undefined ? {} : { name: session.name }) },
          transactionId: requestId,
          entityExtra: [{ what: { reference: `Consent/${consent.id}` }, description: action }],
        },
        { patientKey: session.patientKey },
      ),
  });
  await app.register(accessLogRoutes, { guard: guardOptions(deps), log: services.auditLog, ourNcpId: deps.config.ncpId });
  await app.register(submissionRoutes, {
    guard: guardOptions(deps),
    ourCountry: deps.config.country,
    store: services.submissions,
    audit: services.audit,
    maxBodyBytes: deps.config.submissions.maxBodyBytes,
    ...(deps.onQueued === undefined ? {} : { onQueued: deps.onQueued }),
  });
  if (services.national !== undefined) {
    await app.register(citizenReadingsRoutes, {
      guard: guardOptions(deps),
      national: services.national,
      audit: services.audit,
      notify: gpNotifier(services.national, deps.config.submissions.webhookUrl, deps.logger),
      country: deps.config.country,
    });
  }
  await app.register(consumerRoutes, {
    guard: guardOptions(deps),
    ourCountry: deps.config.country,
    ourNcpId: deps.config.ncpId,
    peers: services.peers,
    audit: services.audit,
  });
  await app.register(portalRoutes, {
    config: deps.config,
    services,
    guard: guardOptions(deps),
    trustList: () => deps.trust.require(),
    ...(deps.onQueued === undefined ? {} : { onQueued: deps.onQueued }),
  });
  return app;
}

/** Country A operations, when this gateway has a national FHIR server to answer from. */
function providerOperations(deps: GatewayDeps): PeerOperation[] {
  const national = deps.services.national;
  if (national === undefined) return [];
  const providerDeps = {
    config: deps.config,
    national,
    consents: deps.services.consents,
    refs: deps.services.refs,
    audit: deps.services.audit,
    trustList: () => deps.trust.require(),
    now: deps.now ?? (() => new Date()),
  };
  return [
    discoveryOperation(providerDeps),
    summaryOperation(providerDeps),
    documentsOperation({
      ...providerDeps,
      db: deps.db,
      signingKey: deps.keys.signing,
      notify: gpNotifier(national, deps.config.submissions.webhookUrl, deps.logger),
    }),
  ];
}

/** Refused TLS handshakes: sources (reason, address) tracked per window; refusals from more share one record per reason. */
const HANDSHAKE_REFUSAL_SOURCES = 256;

export async function buildPeerApp(deps: GatewayDeps): Promise<FastifyInstance> {
  const tls = deps.peerTls;
  const app = Fastify({
    loggerInstance: childLogger(deps, 'peer'),
    bodyLimit: deps.config.peer.bodyLimitBytes,
    return503OnClosing: true,
    ...serverOptions(),
    // One instance type for both cases: the peer listener is an https.Server demanding client
    // certificates whenever TLS material is given (always, outside of inject tests). It sets its
    // own timeouts (http/peer-server.ts): Fastify applies its timeout options only to servers it
    // creates itself.
    serverFactory: (handler) => createPeerServer(handler, tls),
  });
  await registerCommon(app, { listener: 'peer', metrics: deps.metrics });
  // A client certificate is judged once per connection (peer-tls.ts): no renegotiation may swap it.
  app.server.on('secureConnection', disableRenegotiation);
  // Refused handshakes never reach a route: count, log and audit them here, with the reason OpenSSL
  // gave (certificate missing, unknown CA, expired...) and the remote address, never certificate
  // content. Anyone can cause them, so the log and the audit log get the first of each source per
  // window (config peer.refusedHandshakeAuditSeconds) and then a count (src/audit/refusal-coalescer.ts);
  // the metric counts every one.
  const handshakeRefusals = new RefusalCoalescer({
    windowMs: deps.config.peer.refusedHandshakeAuditSeconds * 1000,
    maxSources: HANDSHAKE_REFUSAL_SOURCES,
    write: async (refusal) => {
      app.log.warn({ reason: refusal.reason, remoteAddress: refusal.remoteAddress, repeated: refusal.repeated }, 'peer TLS handshake refused');
      await deps.services.audit.record({
        kind: 'peer-auth-failure',
        outcome: 'serious',
        client: { id: 'unauthenticated', network: refusal.remoteAddress },
        transactionId: randomUUID(),
        outcomeDesc: refusalDescription('tls:', refusal),
      });
    },
    onError: (err) => app.log.warn({ err }, 'could not audit a refused handshake'),
  });
  app.addHook('onClose', async () => handshakeRefusals.close());
  app.server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
    // Node verifies the client chain after the handshake and destroys the socket on failure
    // (rejectUnauthorized); the verification result is left in authorizationError.
    const raw = String(socket.authorizationError ?? err.code ?? 'UNKNOWN');
    const reason = /^[A-Z0-9_]{1,64}$/.test(raw) ? raw : 'UNKNOWN';
    deps.metrics.peerTlsRefusals.inc({ reason });
    handshakeRefusals.refuse(reason, socket.remoteAddress ?? 'unknown');
  });
  app.get('/health/live', { schema: { hide: true } }, async () => ({ status: 'live' }));
  await app.register(jwksRoutes, { keys: deps.keys });
  await app.register(peerRoutes, {
    prefix: '/ncp/v1',
    ourCountry: deps.config.country,
    ourNcpId: deps.config.ncpId,
    keys: deps.keys,
    trustList: () => deps.trust.require(),
    replay: deps.services.replay,
    operations: [pingOperation, ...providerOperations(deps), ...(deps.peerOperations ?? [])],
    clockSkewSeconds: deps.config.policy.clockSkewSeconds,
    limiter: new WorkLimiter({
      concurrency: deps.config.capacity.peerOperations,
      maxQueuedPerKey: deps.config.capacity.queuePerKey,
      maxQueued: deps.config.capacity.queueTotal,
      queueTimeoutMs: deps.config.capacity.queueTimeoutMs,
      onChange: (running, queued) => {
        deps.metrics.workRunning.set({ pool: 'peer-operations', key: 'all' }, running);
        deps.metrics.workQueued.set({ pool: 'peer-operations', key: 'all' }, queued);
      },
      onRefused: (_country, reason) => deps.metrics.workRefused.inc({ pool: 'peer-operations', reason }),
    }),
    checkpoint: (fromSize) => checkpointForPeer(deps.services.auditLog, fromSize),
    onRefused: async (refusal) =>
      deps.services.audit.record({
        kind: 'peer-auth-failure',
        outcome: 'serious',
        client: { id: refusal.country === undefined ? 'unauthenticated' : (deps.trust.require().countries[refusal.country]?.ncpId ?? refusal.country), network: refusal.remoteAddress },
        ...(refusal.country === undefined ? {} : { sourceCountry: refusal.country }),
        transactionId: refusal.requestId,
        outcomeDesc: refusal.code,
      }),
    ...(deps.now === undefined ? {} : { now: deps.now }),
  });
  return app;
}

export async function buildGateway(deps: GatewayDeps): Promise<Gateway> {
  const [api, peer] = await Promise.all([buildApiApp(deps), buildPeerApp(deps)]);
  return { api, peer };
}
