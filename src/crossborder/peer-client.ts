/**
 * The outbound side of the peer API: one keep-alive connection pool per peer country (a full mutual
 * TLS handshake costs milliseconds of CPU, so never one per request), the server certificate
 * verified against the trust anchor AND pinned to the fingerprints the trust list gives for the
 * country being called, hostname checked, redirects never followed, every phase time-bounded.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { Agent, errors as undiciErrors, request } from 'undici';
import type { z } from 'zod';
import { GatewayError } from '../http/errors.js';
import { CAPACITY_DEFAULTS, KeyedWorkLimiters, type RunOptions } from '../http/work-limiter.js';
import type { GatewayKeys } from '../trust/keys.js';
import { PEER_CIPHERS, PEER_TLS_MIN_VERSION, sha256Hex } from '../trust/peer-tls.js';
import { countryEntry, serverFingerprintsFor, type TrustList } from '../trust/trust-list.js';
import { openResponseSigned, signRequest, unverifiedClaim, type JwksLike } from './envelope.js';

export const JOSE_MEDIA_TYPE = 'application/jose';

/**
 * The longest one peer call may take, connection, answer and body together (each phase has its own
 * bound too: 15 s for the answer's headers, which leaves at least 15 s for its body). A peer that
 * trickles its answer cannot hold a caller longer than this; the API listener's idle timeout is set
 * above it (src/app.ts), so an EHR waiting on a silent peer gets `peer.unreachable`, not a dropped
 * connection.
 */
export const PEER_CALL_TIMEOUT_MS = 30_000;

export interface PeerClientOptions {
  readonly ourNcpId: string;
  readonly keys: GatewayKeys;
  /** The trust list in force (throws `trust-list.unavailable` when there is none). */
  readonly trustList: () => TrustList;
  readonly tls: { readonly cert: Buffer; readonly key: Buffer; readonly ca: Buffer };
  readonly connectTimeoutMs?: number;
  readonly headersTimeoutMs?: number;
  readonly bodyTimeoutMs?: number;
  /** The whole call (default PEER_CALL_TIMEOUT_MS). */
  readonly callTimeoutMs?: number;
  readonly maxResponseBytes?: number;
  readonly now?: () => Date;
  /**
   * The per-country bulkhead `withSlot` runs in (config `capacity`); by default 8 at once and 64
   * waiting per country, for at most 4 s.
   */
  readonly slots?: KeyedWorkLimiters;
  /**
   * Witnessing of peers' audit logs: the size we last witnessed goes out with each request, and the
   * checkpoint (with its consistency proof) that comes back is recorded. A refused checkpoint
   * (rollback, fork) is reported to `onRefused`; the answer itself is still checked on its own.
   */
  readonly witness?: {
    lastSize(country: string): Promise<number | undefined>;
    /** `askedFrom`: the size this request asked the peer to prove consistency from (auditFrom). */
    record(country: string, checkpoint: unknown, askedFrom: number | undefined): Promise<void>;
    onRefused(country: string, error: unknown): void;
  };
}

/**
 * A peer answered with an error: its status and stable code tell the caller what happened and
 * whether a retry can help (5xx, 408, 429 are transient; see `isTransient`).
 */
export class PeerRefusedError extends GatewayError {
  readonly peerStatus: number;
  readonly peerCode: string | undefined;
  constructor(peerStatus: number, peerCode: string | undefined) {
    super('peer.refused', `peer answered ${peerStatus}${peerCode === undefined ? '' : ` ${peerCode}`}`);
    this.peerStatus = peerStatus;
    this.peerCode = peerCode;
  }
}

export function isTransientPeerFailure(e: unknown): boolean {
  if (e instanceof PeerRefusedError) return e.peerStatus >= 500 || e.peerStatus === 408 || e.peerStatus === 429;
  return e instanceof GatewayError && (e.code === 'peer.unreachable' || e.code === 'trust-list.unavailable');
}

class PinMismatchError extends Error {
  readonly code = 'NCPEH_SERVER_PIN_MISMATCH';
}

function isPinMismatch(e: unknown): boolean {
  for (let cur: unknown = e, depth = 0; cur instanceof Error && depth < 5; cur = cur.cause, depth++) {
    if (cur instanceof PinMismatchError || ('code' in cur && cur.code === 'NCPEH_SERVER_PIN_MISMATCH')) return true;
  }
  return false;
}

/** Reads the stable error code out of a peer's OperationOutcome, if it sent one. */
function outcomeCode(body: string): string | undefined {
  try {
    const parsed: unknown = JSON.parse(body);
    if (typeof parsed !== 'object' || parsed === null || !('issue' in parsed) || !Array.isArray(parsed.issue)) return undefined;
    const first: unknown = parsed.issue[0];
    if (typeof first !== 'object' || first === null || !('details' in first)) return undefined;
    const details: unknown = first.details;
    if (typeof details !== 'object' || details === null || !('coding' in details) || !Array.isArray(details.coding)) return undefined;
    const coding: unknown = details.coding[0];
    if (typeof coding !== 'object' || coding === null || !('code' in coding) || typeof coding.code !== 'string') return undefined;
    return /^[a-z0-9.-]{1,64}$/.test(coding.code) ? coding.code : undefined;
  } catch {
    return undefined;
  }
}

export interface PeerAnswer<T = unknown> {
  readonly payload: T;
  /** The `jti` of the request this answers. */
  readonly requestId: string;
  /** The provider's signature over the answer, and when it was made. */
  readonly signature: { readonly jws: string; readonly signedAt: Date; readonly signerNcpId: string };
}

export class PeerClient {
  readonly #opts: PeerClientOptions;
  readonly #agents = new Map<string, Agent>();
  readonly #slots: KeyedWorkLimiters;

  constructor(opts: PeerClientOptions) {
    this.#opts = opts;
    this.#slots = opts.slots ?? new KeyedWorkLimiters(CAPACITY_DEFAULTS);
  }

  /**
   * Runs `work` (calls to `country` and what is done with their answers) in that country's
   * bulkhead: at most so many at once per peer, so a slow or dead peer holds its own slots only,
   * and the answers in memory at once stay bounded. Refuses with `service.busy` when it is full.
   */
  withSlot<T>(country: string, work: () => Promise<T>, opts?: RunOptions): Promise<T> {
    // Only countries of the trust list get a bulkhead (and metric series) of their own.
    countryEntry(this.#opts.trustList(), country);
    return this.#slots.run(country, work, opts);
  }

  #agentFor(country: string): Agent {
    let agent = this.#agents.get(country);
    if (agent !== undefined) return agent;
    const { tls } = this.#opts;
    agent = new Agent({
      connect: {
        ca: tls.ca,
        cert: tls.cert,
        key: tls.key,
        minVersion: PEER_TLS_MIN_VERSION,
        ciphers: PEER_CIPHERS,
        rejectUnauthorized: true,
        timeout: this.#opts.connectTimeoutMs ?? 5_000,
        // Runs after OpenSSL verified the chain to the anchor: the usual hostname check, then the
        // pin. The pin is read from the list in force at connect time, so a rotated list applies to
        // the next connection (and close() drops pooled ones when the list changes).
        checkServerIdentity: (host: string, cert: PeerCertificate): Error | undefined => {
          const hostError = checkServerIdentity(host, cert);
          if (hostError !== undefined) return hostError;
          let pins: readonly string[];
          try {
            pins = serverFingerprintsFor(this.#opts.trustList(), country);
          } catch {
            return new PinMismatchError(`no trusted server certificate for ${country}`);
          }
          return pins.includes(sha256Hex(cert.raw)) ? undefined : new PinMismatchError(`server certificate of ${country} is not pinned`);
        },
      },
      // An idle connection is closed after at most 60 s, even when the peer announces longer:
      // firewalls between countries may drop idle flows silently, and a request sent on such a
      // connection would wait for its timeout.
      keepAliveTimeout: 60_000,
      keepAliveMaxTimeout: 60_000,
      headersTimeout: this.#opts.headersTimeoutMs ?? 15_000,
      bodyTimeout: this.#opts.bodyTimeoutMs ?? 30_000,
      maxResponseSize: this.#opts.maxResponseBytes ?? 32 * 1024 * 1024,
    });
    this.#agents.set(country, agent);
    return agent;
  }

  /**
   * Sends a signed request to `country`'s peer API and returns the verified, decrypted answer.
   * Answers must be JWE(JWS) signed by that country and bound to this request's `jti`.
   *
   * @param opts.signal the caller's own reason to stop (e.g. the EHR hung up): the call is abandoned
   *   and its connection closed, as at the deadline
   */
  async call<T>(country: string, path: `/ncp/v1/${string}`, payload: Record<string, unknown>, resultSchema: z.ZodType<T>, opts: RunOptions = {}): Promise<PeerAnswer<T>> {
    const list = this.#opts.trustList();
    const entry = countryEntry(list, country);
    const now = this.#opts.now?.() ?? new Date();
    const witnessed = await this.#opts.witness?.lastSize(country).catch(() => undefined);
    const jws = await signRequest(witnessed === undefined ? payload : { ...payload, auditFrom: witnessed }, {
      key: this.#opts.keys.signing,
      iss: this.#opts.ourNcpId,
      aud: entry.ncpId,
      now,
    });
    const requestId = unverifiedClaim(jws, 'jti');
    if (requestId === undefined) throw new Error('signRequest produced no jti');
    const opened = await this.#receive(country, new URL(path, entry.peerUrl), jws, entry.jwks, now, opts.signal);
    const result = resultSchema.safeParse(checkInResponseTo(opened.payload, requestId));
    if (this.#opts.witness !== undefined && typeof opened.payload === 'object' && opened.payload !== null && 'checkpoint' in opened.payload) {
      const witness = this.#opts.witness;
      await witness.record(country, opened.payload.checkpoint, witnessed).catch((e: unknown) => witness.onRefused(country, e));
    }
    if (!result.success) throw new GatewayError('peer.bad-response', 'answer does not match the operation schema', { cause: result.error });
    return { payload: result.data, requestId, signature: { jws: opened.jws, signedAt: opened.signedAt, signerNcpId: entry.ncpId } };
  }

  /**
   * Sends the request and opens the answer. A call of its own, so that the answer's text (about
   * 93 KB for a summary) is unreachable once it is opened, not held while the witness record is
   * written.
   */
  async #receive(country: string, url: URL, jws: string, signerKeys: JwksLike, now: Date, signal: AbortSignal | undefined): ReturnType<typeof openResponseSigned> {
    const res = await this.#exchange(country, url, jws, signal);
    if (res.statusCode !== 200) {
      // Redirects are an error too: a peer API never redirects, and following one would leave the
      // pinned connection.
      if (res.statusCode >= 300 && res.statusCode < 400) throw new GatewayError('peer.bad-response', `peer redirected (${res.statusCode})`);
      throw new PeerRefusedError(res.statusCode, outcomeCode(res.body));
    }
    const contentType = String(res.headers['content-type'] ?? '');
    if (!contentType.startsWith(JOSE_MEDIA_TYPE)) throw new GatewayError('peer.bad-response', 'answer is not application/jose');
    return openResponseSigned(res.body.trim(), { decryptionKeys: this.#opts.keys.decryption, expectedSignerKeys: signerKeys, now });
  }

  /**
   * POSTs `jws` and reads the whole answer, within the call's deadline and only while the caller
   * is there. The deadline is a controller held by its own timer: one made with
   * `AbortSignal.timeout` and joined to the caller's with `AbortSignal.any` is held only weakly on
   * Node 20 and can be garbage-collected during the call, after which it never fires
   * (nodejs/node#57736).
   */
  async #exchange(country: string, url: URL, jws: string, callerSignal: AbortSignal | undefined): Promise<{ statusCode: number; headers: IncomingHttpHeaders; body: string }> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new DOMException('peer call deadline', 'TimeoutError')), this.#opts.callTimeoutMs ?? PEER_CALL_TIMEOUT_MS);
    timer.unref();
    const onLeft = (): void => controller.abort(callerSignal?.reason);
    if (callerSignal?.aborted === true) onLeft();
    else callerSignal?.addEventListener('abort', onLeft, { once: true });
    // A caller that left is not the peer's failure: said as the bulkheads say it.
    const failure = (e: unknown): GatewayError => {
      if (callerSignal?.aborted === true) return new GatewayError('service.busy', 'the caller left', { cause: e });
      if (e instanceof undiciErrors.ResponseExceededMaxSizeError) return new GatewayError('peer.bad-response', 'response too large', { cause: e });
      return new GatewayError('peer.unreachable', country, { cause: e });
    };
    try {
      let res;
      try {
        res = await request(url, {
          method: 'POST',
          dispatcher: this.#agentFor(country),
          headers: { 'content-type': JOSE_MEDIA_TYPE, accept: `${JOSE_MEDIA_TYPE}, application/fhir+json;q=0.5` },
          body: jws,
          signal: controller.signal,
        });
      } catch (e) {
        if (isPinMismatch(e)) throw new GatewayError('peer.server-untrusted', country, { cause: e });
        throw failure(e);
      }
      try {
        return { statusCode: res.statusCode, headers: res.headers, body: await res.body.text() };
      } catch (e) {
        throw failure(e);
      }
    } finally {
      clearTimeout(timer);
      callerSignal?.removeEventListener('abort', onLeft);
    }
  }

  /** Drops pooled connections, e.g. after the trust list changed, so new pins apply at once. */
  async reset(): Promise<void> {
    const agents = [...this.#agents.values()];
    this.#agents.clear();
    await Promise.allSettled(agents.map((a) => a.close()));
  }

  async close(): Promise<void> {
    await this.reset();
  }
}

/**
 * Every sealed answer names the request it answers: a validly signed answer to another request
 * (replayed or swapped by anyone on the path) is refused.
 */
function checkInResponseTo(opened: unknown, requestId: string): unknown {
  if (typeof opened !== 'object' || opened === null || !('inResponseTo' in opened) || !('result' in opened)) {
    throw new GatewayError('peer.bad-response', 'answer lacks inResponseTo');
  }
  if (opened.inResponseTo !== requestId) throw new GatewayError('peer.bad-response', 'answer is for another request');
  return opened.result;
}
