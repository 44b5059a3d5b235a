/**
 * TLS settings shared by the peer listener and the peer client, and the checks that turn a verified
 * client certificate into an authenticated country.
 */
import { X509Certificate, createHash } from 'node:crypto';
import type { Socket } from 'node:net';
import { TLSSocket, type PeerCertificate } from 'node:tls';
import { GatewayError } from '../http/errors.js';
import { countryByClientFingerprint, type TrustList } from './trust-list.js';

/**
 * TLS 1.2 suites restricted to ECDHE key exchange (forward secrecy) with AEAD ciphers; every TLS 1.3
 * suite already has both properties (RFC 8446 section 1.2). BSI TR-02102-2 and Mozilla "intermediate".
 */
export const PEER_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

export const PEER_TLS_MIN_VERSION = 'TLSv1.2' as const;

export function sha256Hex(der: Buffer): string {
  return createHash('sha256').update(der).digest('hex');
}

/** Ordered checks on the peer listener (STYLE.md guideline 2); the result is the caller's country. */

export function checkTlsAuthorized(socket: Socket | undefined): TLSSocket {
  // With requestCert + rejectUnauthorized OpenSSL already refused unverified chains; this is the
  // second lock for a listener misconfigured without them (or a plain-HTTP listener).
  if (!(socket instanceof TLSSocket) || !socket.authorized) {
    throw new GatewayError('peer.certificate-required');
  }
  return socket;
}

export function checkClientCertificatePresent(socket: TLSSocket): PeerCertificate {
  const cert = socket.getPeerCertificate(false);
  if (cert === null || typeof cert !== 'object' || !Buffer.isBuffer(cert.raw) || cert.raw.length === 0) {
    throw new GatewayError('peer.certificate-required');
  }
  return cert;
}

/** What the checks need of a client certificate: parsed once per TLS connection. */
export interface ClientCertificateFacts {
  readonly fingerprint: string;
  readonly validFrom: Date;
  readonly validTo: Date;
}

export function certificateFacts(cert: PeerCertificate): ClientCertificateFacts {
  const x509 = new X509Certificate(cert.raw);
  return { fingerprint: sha256Hex(cert.raw), validFrom: new Date(x509.validFrom), validTo: new Date(x509.validTo) };
}

export function checkCertificateCurrent(cert: ClientCertificateFacts, now: Date): void {
  if (now < cert.validFrom || now >= cert.validTo) {
    throw new GatewayError('peer.untrusted', 'client certificate outside its validity period');
  }
}

export function checkCertificateListed(cert: ClientCertificateFacts, list: TrustList, now: Date): string {
  const country = countryByClientFingerprint(list, cert.fingerprint, now);
  if (country === undefined) throw new GatewayError('peer.untrusted', 'client certificate not in the trust list');
  return country;
}

export function checkNotOurselves(country: string, ours: string): void {
  // Cross-border exchange is between different countries; a gateway calling itself on the peer API
  // is a misconfiguration or a stolen certificate replayed at its owner.
  if (country === ours) throw new GatewayError('peer.untrusted', 'a gateway does not call itself');
}

/**
 * A TLS connection's client certificate cannot change once renegotiation is disabled on it (the
 * peer listener does so for every connection, see `disableRenegotiation`), so keep-alive requests
 * reuse what the first request parsed. The time and the trust list are judged on every request.
 */
const factsBySocket = new WeakMap<TLSSocket, ClientCertificateFacts>();

/** For the peer listener's 'secureConnection': the certificate checked once stays the connection's. */
export function disableRenegotiation(socket: TLSSocket): void {
  socket.disableRenegotiation();
}

export function authenticatePeerSocket(socket: Socket | undefined, list: TrustList, ourCountry: string, now: Date): string {
  const tls = checkTlsAuthorized(socket);
  let cert = factsBySocket.get(tls);
  if (cert === undefined) {
    cert = certificateFacts(checkClientCertificatePresent(tls));
    factsBySocket.set(tls, cert);
  }
  checkCertificateCurrent(cert, now);
  const country = checkCertificateListed(cert, list, now);
  checkNotOurselves(country, ourCountry);
  return country;
}
