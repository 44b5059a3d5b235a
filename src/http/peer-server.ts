/**
 * The peer listener's server: HTTPS demanding a client certificate, with its own timeouts.
 *
 * Fastify applies `connectionTimeout`, `requestTimeout` and `keepAliveTimeout` only to servers it
 * creates itself; a server from `serverFactory` gets none of them, and Node's own defaults leave a
 * TLS handshake 120 s and request headers 60 s checked every 30 s. Here each one is set:
 *
 * - `handshakeMs`: a connection that does not complete its TLS handshake in time is dropped
 *   (before any certificate is known, so this is the bound on unauthenticated sockets).
 * - `headersMs` / `requestMs`: a request's headers, and the whole request with its body, must
 *   arrive in time, or the server answers 408 and closes (slow-loris). Checked every
 *   `checkIntervalMs`.
 * - `keepAliveMs`: how long an idle connection between gateways stays open (Node's default is 5 s,
 *   after which the next call paid a full mTLS handshake again). The server announces it
 *   (`Keep-Alive: timeout=72`) and the peer client (undici) closes an idle connection a little
 *   before, so it never sends a request on a socket the server is closing.
 * - `idleMs`: a connection with no traffic either way while a request is in work or its answer is
 *   being written is closed. This is what ends a peer that stops reading a large answer (the sealed
 *   answer would otherwise stay in memory with the socket). It is longer than any peer client
 *   waits for one call (PEER_CALL_TIMEOUT_MS), so an operation that is slow at home (its national
 *   server, its queue) is never cut here: its caller has given up first.
 */
import { createServer as createHttpServer, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { SecureContextOptions } from 'node:tls';
import { PEER_CALL_TIMEOUT_MS } from '../crossborder/peer-client.js';
import { PEER_CIPHERS, PEER_TLS_MIN_VERSION } from '../trust/peer-tls.js';

export interface PeerListenerTimeouts {
  readonly handshakeMs: number;
  readonly headersMs: number;
  readonly requestMs: number;
  readonly keepAliveMs: number;
  readonly checkIntervalMs: number;
  readonly idleMs: number;
}

export const PEER_LISTENER_TIMEOUTS: Readonly<PeerListenerTimeouts> = Object.freeze({
  handshakeMs: 10_000,
  headersMs: 10_000,
  requestMs: 30_000,
  keepAliveMs: 72_000,
  checkIntervalMs: 5_000,
  idleMs: PEER_CALL_TIMEOUT_MS + 10_000,
});

/**
 * @param tls the listener's certificate, key and the CA its peers' client certificates must chain
 *   to; without it a plain HTTP server (tests that only `inject`).
 */
export function createPeerServer(
  handler: RequestListener,
  tls: Pick<SecureContextOptions, 'cert' | 'key' | 'ca'> | undefined,
  timeouts: Readonly<PeerListenerTimeouts> = PEER_LISTENER_TIMEOUTS,
): Server {
  if (timeouts.headersMs > timeouts.requestMs) throw new RangeError('the headers timeout cannot exceed the request timeout');
  const http = {
    headersTimeout: timeouts.headersMs,
    requestTimeout: timeouts.requestMs,
    connectionsCheckingInterval: timeouts.checkIntervalMs,
  };
  const server =
    tls === undefined
      ? createHttpServer(http, handler)
      : createHttpsServer(
          {
            ...http,
            ...tls,
            requestCert: true,
            rejectUnauthorized: true,
            minVersion: PEER_TLS_MIN_VERSION,
            ciphers: PEER_CIPHERS,
            honorCipherOrder: true,
            handshakeTimeout: timeouts.handshakeMs,
          },
          handler,
        );
  server.keepAliveTimeout = timeouts.keepAliveMs;
  // Applies while a request is in work; between requests Node uses keepAliveTimeout instead.
  server.setTimeout(timeouts.idleMs);
  return server;
}
