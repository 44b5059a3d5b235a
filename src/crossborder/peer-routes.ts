/**
 * The peer API (`/ncp/v1`, mutual TLS listener). Every request passes, in order: the TLS client
 * certificate checks (src/trust/peer-tls.ts), then the signed-envelope checks
 * (src/crossborder/envelope.ts) with the keys the trust list gives for the certificate's country.
 * Operations receive verified claims and return a result, which leaves sealed to the caller.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { GatewayError } from '../http/errors.js';
import { CAPACITY_DEFAULTS, callerLeft, WorkLimiter } from '../http/work-limiter.js';
import type { GatewayKeys } from '../trust/keys.js';
import { authenticatePeerSocket } from '../trust/peer-tls.js';
import { countryEntry, encryptionKeyFor, signingKeysFor, type TrustList } from '../trust/trust-list.js';
import { sealResponse, unverifiedClaim, verifyRequest, type VerifiedRequest } from './envelope.js';
import { JOSE_MEDIA_TYPE } from './peer-client.js';
import type { ReplayStore } from './replay-store.js';

export interface PeerContext {
  /** The country authenticated by the TLS client certificate. */
  readonly country: string;
  readonly request: VerifiedRequest;
  /** Correlation id of this request (x-request-id). */
  readonly requestId: string;
  readonly remoteAddress: string;
}

/** One peer operation: validates its own payload, returns a JSON result (sealed by the caller). */
export interface PeerOperation {
  readonly path: `/${string}`;
  handle(ctx: PeerContext, fastifyRequest: FastifyRequest): Promise<unknown>;
}

export interface PeerRoutesOptions {
  readonly ourCountry: string;
  readonly ourNcpId: string;
  readonly keys: GatewayKeys;
  readonly trustList: () => TrustList;
  readonly replay: ReplayStore;
  readonly operations: readonly PeerOperation[];
  readonly clockSkewSeconds: number;
  readonly now?: () => Date;
  /**
   * Our latest signed audit checkpoint, with a consistency proof from `fromSize` (what the caller
   * last witnessed). Every sealed answer carries it, and `GET /ncp/v1/audit/checkpoint` serves it,
   * so each peer witnesses our log (issue 7).
   */
  readonly checkpoint?: (fromSize: number | undefined) => Promise<unknown>;
  /**
   * The bulkhead every peer operation runs in, keyed by the calling country (config `capacity`);
   * by default 8 at once, 64 waiting per country and 256 in all, at most 4 s.
   */
  readonly limiter?: WorkLimiter;
  /** Audit hook for refused peer requests (certificate, envelope or HCP assertion checks). */
  readonly onRefused?: (refusal: { code: string; country: string | undefined; remoteAddress: string; requestId: string }) => Promise<void>;
}

/** Refusals that say something about who is calling: worth a security audit record. */
const AUTH_FAILURE = /^(peer|envelope|hcp|trust-list)\./;

declare module 'fastify' {
  interface FastifyRequest {
    peerCountry?: string;
  }
}

/**
 * Compact serialisation only (RFC 7515 section 7.1): three base64url parts, or five for JWE.
 * The size bound is the listener's body limit.
 */
const COMPACT = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]*){2,4}$/;

// Built once: a zod schema is an object graph, and building one per request was a third of the
// provider's time in zod (bench/README.md, hot spots).
const AuditFromClaim = z.number().int().nonnegative().optional();
const AuditFromQuery = z.coerce.number().int().nonnegative().optional();
const NonceClaim = z.string().max(128).optional();

export function checkIssuerMatchesCertificate(jws: string, certificateCountryNcpId: string): void {
  // Refusal only: the unverified `iss` of a certificate-authenticated request naming another country.
  const iss = unverifiedClaim(jws, 'iss');
  if (iss !== undefined && iss !== certificateCountryNcpId) throw new GatewayError('peer.country-mismatch');
}

export const pingOperation: PeerOperation = {
  path: '/ping',
  handle: async (ctx) => {
    const nonce = NonceClaim.safeParse(ctx.request.claims['nonce']);
    if (!nonce.success) throw new GatewayError('request.invalid', 'nonce');
    return { pong: true, from: ctx.country, nonce: nonce.data ?? null };
  },
};

export const peerRoutes: FastifyPluginAsync<PeerRoutesOptions> = async (app: FastifyInstance, opts) => {
  const now = opts.now ?? (() => new Date());

  app.addContentTypeParser(JOSE_MEDIA_TYPE, { parseAs: 'string' }, (_request, body, done) => {
    const text = (typeof body === 'string' ? body : body.toString('utf8')).trim();
    if (!COMPACT.test(text)) return done(new GatewayError('envelope.malformed'), undefined);
    done(null, text);
  });

  if (opts.onRefused !== undefined) {
    const onRefused = opts.onRefused;
    app.addHook('onError', async (request, _reply, error) => {
      if (!(error instanceof GatewayError) || !AUTH_FAILURE.test(error.code)) return;
      // Best effort: the request is refused either way; a failed audit write must not change that.
      await onRefused({ code: error.code, country: request.peerCountry, remoteAddress: request.ip, requestId: request.id }).catch(() => undefined);
    });
  }

  const limiter = opts.limiter ?? new WorkLimiter(CAPACITY_DEFAULTS);

  // Authenticate the connection before anything is read or parsed; an operation that could not be
  // worked on is refused before its body is read.
  app.addHook('onRequest', async (request) => {
    const list = opts.trustList();
    request.peerCountry = authenticatePeerSocket(request.raw.socket, list, opts.ourCountry, now());
    if (request.method === 'POST') limiter.checkRoom(request.peerCountry);
  });

  if (opts.checkpoint !== undefined) {
    const checkpoint = opts.checkpoint;
    app.get(
      '/audit/checkpoint',
      { schema: { hide: true } },
      async (request) => {
        const from = AuditFromQuery.safeParse((request.query as Record<string, unknown> | undefined)?.['from']);
        if (!from.success) throw new GatewayError('request.invalid', 'from', { expression: ['query.from'] });
        const cp = await checkpoint(from.data);
        if (cp === undefined) throw new GatewayError('audit.proof-unavailable', 'nothing recorded yet');
        return cp;
      },
    );
  }

  for (const op of opts.operations) {
    app.post(op.path, { schema: { hide: true } }, async (request, reply) => {
      const country = request.peerCountry;
      if (country === undefined) throw new GatewayError('peer.certificate-required');
      const body = request.body;
      if (typeof body !== 'string') throw new GatewayError('request.unsupported-media-type');
      // Queued by the certificate's country, after the connection was authenticated: an unknown
      // caller never takes a place in the queue.
      const sealed = await limiter.run(country, () => answer(country, body, request, op), { signal: callerLeft(reply) });
      // Sent as bytes (a compact JWE is ASCII): the text, about 93 KB for a summary, built by
      // concatenation, would otherwise be flattened for its length and held on the heap until the
      // TLS socket has taken it, which under load outlives young-generation collections
      // (bench/promotion.ts: a fifth of what the provider promoted).
      return reply.code(200).header('content-type', JOSE_MEDIA_TYPE).send(Buffer.from(sealed, 'latin1'));
    });
  }

  async function answer(country: string, body: string, request: FastifyRequest, op: PeerOperation): Promise<string> {
    const list = opts.trustList();
    const caller = countryEntry(list, country);
    checkIssuerMatchesCertificate(body, caller.ncpId);
    const verified = await verifyRequest(body, {
      trustedKeys: { keys: signingKeysFor(list, country) },
      expectedIss: caller.ncpId,
      expectedAud: opts.ourNcpId,
      now: now(),
      skewSeconds: opts.clockSkewSeconds,
      replay: opts.replay,
    });
    const auditFrom = AuditFromClaim.safeParse(verified.claims['auditFrom']);
    // The latest signed checkpoint does not depend on the operation (checkpoints are signed on
    // their own schedule), so it is fetched while the operation runs: one database round trip fewer
    // in sequence, and the operation's result (a whole summary) is not held across it. When the
    // operation fails the checkpoint is dropped; at most it signed the log's first checkpoint, which
    // the next request would have signed anyway.
    const checkpointRead = opts.checkpoint?.(auditFrom.success ? auditFrom.data : undefined);
    checkpointRead?.catch(() => undefined);
    const result = await op.handle({ country, request: verified, requestId: request.id, remoteAddress: request.ip }, request);
    const checkpoint = await checkpointRead;
    return sealResponse(
      { inResponseTo: verified.jti, result, ...(checkpoint === undefined ? {} : { checkpoint }) },
      { signingKey: opts.keys.signing, recipientKey: encryptionKeyFor(list, country), now: now() },
    );
  }
};
