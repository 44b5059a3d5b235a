import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import {
  fingerprintPem,
  initPki,
  jwkThumbprint,
  loadPkiLayout,
  loadX509,
  pkiLayout,
  readFingerprints,
  type CountryPkiLayout,
  type PkiLayout,
} from '../src/trust/pki.js';

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

let tmp: string;
let pki: PkiLayout;
let otherPki: PkiLayout;

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'ncpeh-pki-'));
  pki = await initPki({ outDir: path.join(tmp, 'pki'), countries: ['DK', 'ES'] });
  otherPki = await initPki({ outDir: path.join(tmp, 'other'), countries: ['DK'] });
});

after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

function country(layout: PkiLayout, cc: string): CountryPkiLayout {
  const c = layout.countries[cc];
  assert.ok(c, `layout has ${cc}`);
  return c;
}

async function cert(file: string): Promise<X509Certificate> {
  return new X509Certificate(await readFile(file));
}

async function ekuOf(file: string): Promise<string[]> {
  const x509 = await loadX509();
  const parsed = new x509.X509Certificate(await readFile(file, 'utf8'));
  const eku = parsed.getExtension(x509.ExtendedKeyUsageExtension);
  assert.ok(eku, 'certificate has an ExtendedKeyUsage extension');
  return Array.from(eku.usages, String);
}

interface HandshakeResult {
  /** The client got the server's greeting, i.e. both sides accepted the handshake. */
  ok: boolean;
  clientError?: Error;
  serverError?: Error;
  /** SHA-256 of the client certificate as the server saw it. */
  peerFingerprint?: string;
  /** Why the server's chain check failed, when it was told to report instead of refuse. */
  serverAuthorizationError?: string;
}

interface Endpoint {
  cert: string;
  key: string;
}

/** A real mutual-TLS handshake on loopback; both sides verify against their own `ca`. */
async function handshake(opts: {
  server: Endpoint;
  client: Endpoint;
  serverCa: string;
  clientCa: string;
  checkServerIdentity?: typeof tls.checkServerIdentity;
  /** false only to learn the server's verdict from `authorizationError`; production never does this. */
  serverRejectUnauthorized?: boolean;
}): Promise<HandshakeResult> {
  const result: HandshakeResult = { ok: false };
  const server = tls.createServer({
    key: await readFile(opts.server.key),
    cert: await readFile(opts.server.cert),
    ca: await readFile(opts.serverCa),
    requestCert: true,
    rejectUnauthorized: opts.serverRejectUnauthorized ?? true,
  });
  server.on('secureConnection', (socket) => {
    if (!socket.authorized) result.serverAuthorizationError = String(socket.authorizationError);
    const peer = socket.getPeerX509Certificate();
    if (peer) result.peerFingerprint = fingerprintPem(peer.toString());
    socket.end('hello');
  });
  server.on('tlsClientError', (err) => {
    result.serverError = err;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  try {
    const clientCert = await readFile(opts.client.cert);
    const clientKey = await readFile(opts.client.key);
    const clientCa = await readFile(opts.clientCa);
    await new Promise<void>((resolve) => {
      const socket = tls.connect({
        host: '127.0.0.1',
        port,
        servername: 'localhost',
        ca: clientCa,
        cert: clientCert,
        key: clientKey,
        rejectUnauthorized: true,
        ...(opts.checkServerIdentity ? { checkServerIdentity: opts.checkServerIdentity } : {}),
      });
      let received = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => {
        received += chunk;
      });
      socket.on('error', (err) => {
        result.clientError = err;
      });
      socket.on('close', () => {
        result.ok = received === 'hello' && result.clientError === undefined;
        resolve();
      });
    });
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  return result;
}

void describe('dev PKI: certificates', () => {
  void test('generated certificates chain to the anchor CA, which is a self-signed CA', async () => {
    const ca = await cert(pki.ca.cert);
    assert.equal(ca.ca, true);
    assert.equal(ca.checkIssued(ca), true);
    assert.equal(ca.verify(ca.publicKey), true);
    assert.match(ca.subject, /CN=ncpeh sandbox trust anchor/);
    for (const cc of ['DK', 'ES']) {
      for (const file of [country(pki, cc).tlsServerCert, country(pki, cc).tlsClientCert]) {
        const leaf = await cert(file);
        assert.equal(leaf.checkIssued(ca), true, `${file} names the anchor as issuer`);
        assert.equal(leaf.verify(ca.publicKey), true, `${file} is signed by the anchor key`);
        assert.equal(leaf.ca, false, `${file} is not a CA (RFC 5280 4.2.1.9)`);
      }
    }
  });

  void test('a certificate from an independently generated PKI does not chain to this anchor', async () => {
    const ca = await cert(pki.ca.cert);
    const foreign = await cert(country(otherPki, 'DK').tlsClientCert);
    assert.equal(foreign.verify(ca.publicKey), false);
  });

  void test('anchor CA carries critical BasicConstraints pathLen 0 and KeyUsage keyCertSign+cRLSign', async () => {
    const x509 = await loadX509();
    const ca = new x509.X509Certificate(await readFile(pki.ca.cert, 'utf8'));
    const bc = ca.getExtension(x509.BasicConstraintsExtension);
    assert.ok(bc);
    assert.equal(bc.critical, true);
    assert.equal(bc.ca, true);
    assert.equal(bc.pathLength, 0);
    const ku = ca.getExtension(x509.KeyUsagesExtension);
    assert.ok(ku);
    assert.equal(ku.critical, true);
    assert.equal(ku.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
    assert.ok(ca.getExtension(x509.SubjectKeyIdentifierExtension));
  });

  void test('server certificates carry only serverAuth and client certificates only clientAuth', async () => {
    for (const cc of ['DK', 'ES']) {
      assert.deepEqual(await ekuOf(country(pki, cc).tlsServerCert), [SERVER_AUTH]);
      assert.deepEqual(await ekuOf(country(pki, cc).tlsClientCert), [CLIENT_AUTH]);
    }
  });

  void test('leaf certificates name their country in C= and carry the agreed SANs', async () => {
    for (const cc of ['DK', 'ES']) {
      const server = await cert(country(pki, cc).tlsServerCert);
      const client = await cert(country(pki, cc).tlsClientCert);
      assert.deepEqual(server.subject.split('\n'), [`C=${cc}`, `O=ncpeh sandbox NCP ${cc}`, `CN=ncp-${cc}-server`]);
      assert.deepEqual(client.subject.split('\n'), [`C=${cc}`, `O=ncpeh sandbox NCP ${cc}`, `CN=ncp-${cc}-client`]);
      assert.equal(server.subjectAltName, 'DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
      assert.equal(client.subjectAltName, `DNS:ncp.${cc.toLowerCase()}.sandbox`);
      assert.equal(server.checkHost('localhost'), 'localhost');
      assert.equal(server.checkIP('127.0.0.1'), '127.0.0.1');
    }
  });

  void test('leaf certificates have digitalSignature KeyUsage, an AuthorityKeyIdentifier and a positive 16-byte serial', async () => {
    const x509 = await loadX509();
    const ca = new x509.X509Certificate(await readFile(pki.ca.cert, 'utf8'));
    const caSki = ca.getExtension(x509.SubjectKeyIdentifierExtension);
    assert.ok(caSki);
    const serials = new Set<string>();
    for (const cc of ['DK', 'ES']) {
      for (const file of [country(pki, cc).tlsServerCert, country(pki, cc).tlsClientCert]) {
        const leaf = new x509.X509Certificate(await readFile(file, 'utf8'));
        const ku = leaf.getExtension(x509.KeyUsagesExtension);
        assert.ok(ku);
        assert.equal(ku.critical, true);
        assert.equal(ku.usages, x509.KeyUsageFlags.digitalSignature);
        const aki = leaf.getExtension(x509.AuthorityKeyIdentifierExtension);
        assert.equal(aki?.keyId, caSki.keyId);
        // RFC 5280 4.1.2.2: positive, at most 20 octets. Leading zero octets are dropped by DER.
        assert.ok(leaf.serialNumber.length <= 32 && leaf.serialNumber.length >= 2);
        assert.ok(Number.parseInt(leaf.serialNumber.slice(0, 2), 16) < 0x80);
        serials.add(leaf.serialNumber);
      }
    }
    assert.equal(serials.size, 4);
  });

  void test('fingerprints.json holds the SHA-256 of each certificate DER, as fingerprintPem computes it', async () => {
    const fp = await readFingerprints(country(pki, 'DK'));
    const server = await cert(country(pki, 'DK').tlsServerCert);
    assert.equal(fp.serverCertSha256, server.fingerprint256.replaceAll(':', '').toLowerCase());
    assert.equal(fp.clientCertSha256, fingerprintPem(await readFile(country(pki, 'DK').tlsClientCert, 'utf8')));
  });
});

void describe('dev PKI: mutual TLS', () => {
  void test('a DK client certificate and an ES server certificate complete a mutual TLS handshake', async () => {
    const es = country(pki, 'ES');
    const dk = country(pki, 'DK');
    const result = await handshake({
      server: { cert: es.tlsServerCert, key: es.tlsServerKey },
      client: { cert: dk.tlsClientCert, key: dk.tlsClientKey },
      serverCa: pki.ca.cert,
      clientCa: pki.ca.cert,
    });
    assert.equal(result.clientError, undefined);
    assert.equal(result.serverError, undefined);
    assert.equal(result.ok, true);
    const fp = await readFingerprints(dk);
    assert.equal(result.peerFingerprint, fp.clientCertSha256);
  });

  void test('the server refuses a client certificate from an independently generated PKI', async () => {
    const es = country(pki, 'ES');
    const foreign = country(otherPki, 'DK');
    const result = await handshake({
      server: { cert: es.tlsServerCert, key: es.tlsServerKey },
      client: { cert: foreign.tlsClientCert, key: foreign.tlsClientKey },
      serverCa: pki.ca.cert,
      clientCa: pki.ca.cert,
    });
    assert.equal(result.ok, false);
    assert.equal(result.peerFingerprint, undefined);
    assert.ok(result.serverError, 'the server drops the connection');
    const verdict = await handshake({
      server: { cert: es.tlsServerCert, key: es.tlsServerKey },
      client: { cert: foreign.tlsClientCert, key: foreign.tlsClientKey },
      serverCa: pki.ca.cert,
      clientCa: pki.ca.cert,
      serverRejectUnauthorized: false,
    });
    assert.equal(verdict.serverAuthorizationError, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  });

  void test('a client refuses a client certificate presented as a TLS server certificate (EKU purpose check)', async () => {
    const dk = country(pki, 'DK');
    const es = country(pki, 'ES');
    const result = await handshake({
      server: { cert: es.tlsClientCert, key: es.tlsClientKey },
      client: { cert: dk.tlsClientCert, key: dk.tlsClientKey },
      serverCa: pki.ca.cert,
      clientCa: pki.ca.cert,
      // Skip the host-name check so only the purpose check can reject (the SAN would not match).
      checkServerIdentity: () => undefined,
    });
    assert.equal(result.ok, false);
    assert.equal((result.clientError as NodeJS.ErrnoException | undefined)?.code, 'INVALID_PURPOSE');
  });

  void test('a server refuses a server certificate presented as a TLS client certificate (EKU purpose check)', async () => {
    const dk = country(pki, 'DK');
    const es = country(pki, 'ES');
    const result = await handshake({
      server: { cert: es.tlsServerCert, key: es.tlsServerKey },
      client: { cert: dk.tlsServerCert, key: dk.tlsServerKey },
      serverCa: pki.ca.cert,
      clientCa: pki.ca.cert,
    });
    assert.equal(result.ok, false);
    assert.equal(result.peerFingerprint, undefined);
    // The refusal above gives no reason on the wire; ask the server for its verdict.
    const verdict = await handshake({
      server: { cert: es.tlsServerCert, key: es.tlsServerKey },
      client: { cert: dk.tlsServerCert, key: dk.tlsServerKey },
      serverCa: pki.ca.cert,
      clientCa: pki.ca.cert,
      serverRejectUnauthorized: false,
    });
    assert.equal(verdict.serverAuthorizationError, 'INVALID_PURPOSE');
  });
});

void describe('dev PKI: JOSE keys', () => {
  void test('kids are RFC 7638 thumbprints (RFC 7638 section 3.1 example)', () => {
    const rfcExample = {
      kty: 'RSA',
      n:
        '0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw',
      e: 'AQAB',
      alg: 'RS256',
      kid: '2011-04-29',
    };
    assert.equal(jwkThumbprint(rfcExample), 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs');
  });

  void test('private key files hold d, the published JWKS holds only public members, and kids are thumbprints', async () => {
    for (const cc of ['DK', 'ES']) {
      const c = country(pki, cc);
      const sig = JSON.parse(await readFile(c.signingJwk, 'utf8'));
      const enc = JSON.parse(await readFile(c.encryptionJwk, 'utf8'));
      assert.equal(typeof sig.d, 'string');
      assert.equal(typeof enc.d, 'string');
      assert.deepEqual([sig.kty, sig.crv, sig.use, sig.alg], ['EC', 'P-256', 'sig', 'ES256']);
      assert.deepEqual([enc.kty, enc.crv, enc.use, enc.alg], ['EC', 'P-256', 'enc', 'ECDH-ES+A256KW']);
      assert.equal(sig.kid, jwkThumbprint(sig));
      assert.equal(enc.kid, jwkThumbprint(enc));
      assert.notEqual(sig.kid, enc.kid);

      const jwks = JSON.parse(await readFile(c.jwksPub, 'utf8'));
      assert.equal(jwks.keys.length, 2);
      for (const key of jwks.keys) {
        assert.deepEqual(Object.keys(key).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
      }
      assert.deepEqual(jwks.keys[0], { kty: 'EC', crv: 'P-256', x: sig.x, y: sig.y, kid: sig.kid, use: 'sig', alg: 'ES256' });
      assert.deepEqual(jwks.keys[1], { kty: 'EC', crv: 'P-256', x: enc.x, y: enc.y, kid: enc.kid, use: 'enc', alg: 'ECDH-ES+A256KW' });
    }
    const anchor = JSON.parse(await readFile(pki.ca.signingJwk, 'utf8'));
    const anchorPub = JSON.parse(await readFile(pki.ca.signingPubJwk, 'utf8'));
    assert.equal(typeof anchor.d, 'string');
    assert.equal(anchorPub.d, undefined);
    assert.deepEqual([anchorPub.use, anchorPub.alg, anchorPub.kid], ['sig', 'ES256', jwkThumbprint(anchor)]);
  });
});

void describe('dev PKI: files and regeneration', () => {
  void test('private key files have mode 0600 and the PKI directory 0700', async () => {
    const modeOf = async (file: string): Promise<number> => (await stat(file)).mode & 0o777;
    assert.equal(await modeOf(pki.outDir), 0o700);
    const privateFiles = [pki.ca.key, pki.ca.signingJwk];
    for (const cc of ['DK', 'ES']) {
      const c = country(pki, cc);
      privateFiles.push(c.tlsServerKey, c.tlsClientKey, c.signingJwk, c.encryptionJwk);
    }
    for (const file of privateFiles) assert.equal(await modeOf(file), 0o600, file);
    assert.match(await readFile(pki.ca.key, 'utf8'), /^-----BEGIN PRIVATE KEY-----\n/);
  });

  void test('a second initPki on the same directory returns the existing PKI without regenerating', async () => {
    const before = await readFingerprints(country(pki, 'DK'));
    const caBefore = await readFile(pki.ca.cert, 'utf8');
    const again = await initPki({ outDir: pki.outDir, countries: ['ES', 'DK'] });
    assert.deepEqual(again, pki);
    assert.deepEqual(await readFingerprints(country(again, 'DK')), before);
    assert.equal(await readFile(pki.ca.cert, 'utf8'), caBefore);
  });

  void test('initPki regenerates everything when a certificate has a day or less left', async () => {
    const dir = path.join(tmp, 'expiring');
    const first = await initPki({ outDir: dir, countries: ['DK'], validDays: 10 });
    const fpFirst = await readFingerprints(country(first, 'DK'));
    const nineDaysOn = new Date(Date.now() + 9 * 24 * 60 * 60 * 1000 + 60_000);
    const second = await initPki({ outDir: dir, countries: ['DK'], validDays: 10, now: nineDaysOn });
    assert.notDeepEqual(await readFingerprints(country(second, 'DK')), fpFirst);
    const leftovers = (await readdir(tmp)).filter((name) => name.startsWith('expiring.'));
    assert.deepEqual(leftovers, [], 'no temporary or retired directories are left behind');
  });

  void test('initPki regenerates when a requested country is missing, and loadPkiLayout finds all countries', async () => {
    const dir = path.join(tmp, 'grow');
    const first = await initPki({ outDir: dir, countries: ['DK'] });
    const caFirst = fingerprintPem(await readFile(first.ca.cert, 'utf8'));
    const second = await initPki({ outDir: dir, countries: ['DK', 'SE'] });
    assert.notEqual(fingerprintPem(await readFile(second.ca.cert, 'utf8')), caFirst);
    assert.deepEqual(Object.keys((await loadPkiLayout(dir)).countries), ['DK', 'SE']);
  });

  void test('country codes must be ISO 3166-1 alpha-2 in upper case', async () => {
    for (const bad of ['dk', 'DNK', 'D', '../x', '']) {
      await assert.rejects(initPki({ outDir: path.join(tmp, 'bad'), countries: [bad] }), RangeError);
      assert.throws(() => pkiLayout(path.join(tmp, 'bad'), [bad]), RangeError);
    }
  });
});
