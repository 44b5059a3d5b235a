/**
 * Two (and more) real gateways on loopback, real certificates from the dev PKI, the real trust
 * list: every rule of the peer API proved by a request it refuses.
 */
import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync, randomUUID } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import type { AddressInfo, Socket } from 'node:net';
import { createServer as createHttpsServer } from 'node:https';
import { after, before, describe, test } from 'node:test';
import { connect as connectTls } from 'node:tls';
import { Agent, request } from 'undici';
import { z } from 'zod';
import { writeSandboxTrustList } from '../sandbox/trust-list.js';
import { loadPrivateJwk, signRequest, type SigningKey } from '../src/crossborder/envelope.js';
import { PeerClient } from '../src/crossborder/peer-client.js';
import { GatewayError } from '../src/http/errors.js';
import { loadGatewayKeys } from '../src/trust/keys.js';
import { initPki, issueTlsCertificate } from '../src/trust/pki.js';
import type { TrustList } from '../src/trust/trust-list.js';
import { createTestDeployment, type TestDeployment } from './helpers/deployment.js';
import { startTestGateway } from './helpers/gateway.js';
import { handshakeError, type ClientTls } from './helpers/tls.js';

type Running = Awaited<ReturnType<typeof startTestGateway>>;

const PongSchema = z.object({ pong: z.literal(true), from: z.string(), nonce: z.string().nullable() });


/** A bare HTTPS POST with whatever client certificate the test chooses (no pinning, no envelope logic). */
async function rawPost(url: string, body: string, tls: ClientTls): Promise<{ status: number; code: string | undefined; body: string }> {
  const agent = new Agent({ connect: { ...tls, rejectUnauthorized: true, servername: 'localhost' } });
  try {
    const res = await request(url, { method: 'POST', dispatcher: agent, headers: { 'content-type': 'application/jose' }, body });
    const text = await res.body.text();
    let code: string | undefined;
    try {
      code = (JSON.parse(text) as { issue?: Array<{ details?: { coding?: Array<{ code?: string }> } }> }).issue?.[0]?.details?.coding?.[0]?.code;
    } catch {
      code = undefined;
    }
    return { status: res.statusCode, code, body: text };
  } finally {
    await agent.close();
  }
}

function b64url(v: unknown): string {
  return Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
}

describe('peer API between two gateways (mutual TLS, trust list, signed envelopes)', () => {
  let deployment: TestDeployment;
  let dk: Running;
  let es: Running;
  let dkSigning: SigningKey;
  let dkClientTls: ClientTls;
  let ptClientTls: ClientTls;
  let frClientTls: ClientTls;
  let esPeerUrl: string;

  before(async () => {
    // DK, ES and PT are listed; FR has certificates from the same anchor but is not in the list.
    deployment = await createTestDeployment({ countries: ['DK', 'ES', 'PT', 'FR'], listed: ['DK', 'ES', 'PT'] });
    [dk, es] = await Promise.all([startTestGateway(deployment, 'DK'), startTestGateway(deployment, 'ES')]);
    esPeerUrl = es.peerUrl;
    const files = (cc: string) => {
      const c = deployment.pki.countries[cc];
      if (c === undefined) throw new Error(cc);
      return c;
    };
    const ca = await readFile(deployment.pki.ca.cert);
    dkClientTls = { cert: await readFile(files('DK').tlsClientCert), key: await readFile(files('DK').tlsClientKey), ca };
    ptClientTls = { cert: await readFile(files('PT').tlsClientCert), key: await readFile(files('PT').tlsClientKey), ca };
    frClientTls = { cert: await readFile(files('FR').tlsClientCert), key: await readFile(files('FR').tlsClientKey), ca };
    dkSigning = await loadPrivateJwk(JSON.parse(await readFile(files('DK').signingJwk, 'utf8')), 'sig');
  });
  after(async () => {
    await Promise.all([dk.stop(), es.stop()]);
    await deployment.cleanup();
  });

  async function replayRows(): Promise<number> {
    const r = await es.db.query<{ n: string | number }>('SELECT count(*) AS n FROM replay_cache');
    return Number(r.rows[0]?.n ?? 0);
  }

  async function signedByDk(claims: Record<string, unknown> = {}, opts: { aud?: string; now?: Date } = {}): Promise<string> {
    return signRequest({ nonce: 'n', ...claims }, { key: dkSigning, iss: 'urn:ncpeh:ncp:DK', aud: opts.aud ?? 'urn:ncpeh:ncp:ES', ...(opts.now ? { now: opts.now } : {}) });
  }

  test('DK sends a signed request to ES and opens the sealed answer', async () => {
    const answer = await dk.peerClient.call('ES', '/ncp/v1/ping', { nonce: 'hello' }, PongSchema);
    assert.deepEqual(answer.payload, { pong: true, from: 'DK', nonce: 'hello' });
  });

  test('the peer client reuses one TLS connection for consecutive calls (keep-alive)', async () => {
    const sockets = new Set<string>();
    const onConn = (s: Socket) => sockets.add(`${s.remoteAddress}:${s.remotePort}`);
    es.gateway.peer.server.on('secureConnection', onConn);
    try {
      for (let i = 0; i < 5; i++) await dk.peerClient.call('ES', '/ncp/v1/ping', { nonce: `k${i}` }, PongSchema);
    } finally {
      es.gateway.peer.server.off('secureConnection', onConn);
    }
    assert.ok(sockets.size <= 1, `expected at most one new TLS connection, saw ${sockets.size}`);
  });

  test('a TLS 1.2 client cannot renegotiate (its certificate is judged once per connection)', async () => {
    const u = new URL(esPeerUrl);
    const outcome = await new Promise<string>((resolve) => {
      const socket = connectTls({ host: u.hostname, port: Number(u.port), servername: 'localhost', rejectUnauthorized: true, maxVersion: 'TLSv1.2', ...dkClientTls });
      const timer = setTimeout(() => {
        socket.destroy();
        resolve('still open');
      }, 5000);
      const done = (what: string): void => {
        clearTimeout(timer);
        socket.destroy();
        resolve(what);
      };
      socket.once('secureConnect', () => {
        assert.equal(socket.getProtocol(), 'TLSv1.2');
        const started = socket.renegotiate({ rejectUnauthorized: true }, (err) => done(err === null ? 'renegotiated' : 'refused'));
        if (!started) done('refused');
        // The new handshake goes out with the next record.
        socket.write('GET /health/live HTTP/1.1\r\nHost: localhost\r\n\r\n');
        socket.once('data', (chunk: Buffer) => done(/^HTTP\/1\.1 200/.test(chunk.toString('latin1')) ? 'answered after renegotiating' : 'refused'));
      });
      socket.once('error', () => done('refused'));
      socket.once('close', () => done('refused'));
    });
    assert.equal(outcome, 'refused');
    // The listener is unharmed.
    const pong = await dk.peerClient.call('ES', '/ncp/v1/ping', { nonce: 'after-renegotiation' }, PongSchema);
    assert.equal(pong.payload.nonce, 'after-renegotiation');
  });

  async function refusals(reason: string): Promise<number> {
    const metrics = await es.gateway.api.inject({ method: 'GET', url: '/metrics' });
    const m = new RegExp(`ncpeh_peer_tls_refusals_total\\{reason="${reason}",country="ES"\\} (\\d+)`).exec(metrics.body);
    return Number(m?.[1] ?? 0);
  }

  test('rejects a connection without a client certificate (TLS certificate_required)', async () => {
    const before = await replayRows();
    const code = await handshakeError(`${esPeerUrl}/ncp/v1/ping`, { ca: dkClientTls.ca });
    assert.equal(code, 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED');
    assert.equal(await replayRows(), before);
  });

  test('rejects a client certificate from another CA (TLS unknown_ca)', async () => {
    const other = await initPki({ outDir: `${deployment.dir}/other-pki`, countries: ['DK'] });
    const c = other.countries.DK;
    assert.ok(c);
    const code = await handshakeError(`${esPeerUrl}/ncp/v1/ping`, {
      cert: await readFile(c.tlsClientCert),
      key: await readFile(c.tlsClientKey),
      ca: dkClientTls.ca,
    });
    // Node's TLS server closes the connection without an alert for a chain it cannot verify; the
    // refusal and its reason are visible on the server side.
    assert.equal(code, 'closed-without-alert');
    assert.equal(await refusals('UNABLE_TO_VERIFY_LEAF_SIGNATURE'), 1);
  });

  test('rejects an expired client certificate issued by the anchor (TLS certificate_expired)', async () => {
    const now = Date.now();
    const expired = await issueTlsCertificate({
      caCertFile: deployment.pki.ca.cert,
      caKeyFile: deployment.pki.ca.key,
      country: 'DK',
      role: 'client',
      notBefore: new Date(now - 10 * 86_400_000),
      notAfter: new Date(now - 86_400_000),
    });
    const code = await handshakeError(`${esPeerUrl}/ncp/v1/ping`, { cert: expired.certPem, key: expired.keyPem, ca: dkClientTls.ca });
    assert.equal(code, 'closed-without-alert');
    assert.equal(await refusals('CERT_HAS_EXPIRED'), 1);
  });

  test('rejects a valid certificate that is not in the trust list (peer.untrusted)', async () => {
    const before = await replayRows();
    const res = await rawPost(`${esPeerUrl}/ncp/v1/ping`, await signedByDk(), frClientTls);
    assert.equal(res.status, 403);
    assert.equal(res.code, 'peer.untrusted');
    assert.equal(await replayRows(), before);
  });

  test('rejects a request whose iss is another country than the certificate (peer.country-mismatch)', async () => {
    const res = await rawPost(`${esPeerUrl}/ncp/v1/ping`, await signedByDk(), ptClientTls);
    assert.equal(res.status, 403);
    assert.equal(res.code, 'peer.country-mismatch');
  });

  test('rejects an expired request (envelope.expired)', async () => {
    const res = await rawPost(`${esPeerUrl}/ncp/v1/ping`, await signedByDk({}, { now: new Date(Date.now() - 10 * 60_000) }), dkClientTls);
    assert.equal(res.code, 'envelope.expired');
    assert.equal(res.status, 401);
  });

  test('rejects a request addressed to a third country (envelope.wrong-audience)', async () => {
    const before = await replayRows();
    const res = await rawPost(`${esPeerUrl}/ncp/v1/ping`, await signedByDk({}, { aud: 'urn:ncpeh:ncp:PT' }), dkClientTls);
    assert.equal(res.code, 'envelope.wrong-audience');
    assert.equal(await replayRows(), before);
  });

  test('rejects a replayed jti (envelope.replayed)', async () => {
    const jws = await signedByDk();
    const first = await rawPost(`${esPeerUrl}/ncp/v1/ping`, jws, dkClientTls);
    assert.equal(first.status, 200);
    const second = await rawPost(`${esPeerUrl}/ncp/v1/ping`, jws, dkClientTls);
    assert.equal(second.code, 'envelope.replayed');
    assert.equal(second.status, 409);
  });

  test('rejects a tampered signature (envelope.signature-invalid)', async () => {
    const [h, p, s] = (await signedByDk()).split('.');
    const sig = Buffer.from(s ?? '', 'base64url');
    sig[10] = (sig[10] ?? 0) ^ 0x01;
    const res = await rawPost(`${esPeerUrl}/ncp/v1/ping`, `${h}.${p}.${sig.toString('base64url')}`, dkClientTls);
    assert.equal(res.code, 'envelope.signature-invalid');
  });

  test('rejects a tampered payload (envelope.signature-invalid)', async () => {
    const [h, p, s] = (await signedByDk()).split('.');
    const claims = JSON.parse(Buffer.from(p ?? '', 'base64url').toString()) as Record<string, unknown>;
    const res = await rawPost(`${esPeerUrl}/ncp/v1/ping`, `${h}.${b64url({ ...claims, nonce: 'evil' })}.${s}`, dkClientTls);
    assert.equal(res.code, 'envelope.signature-invalid');
  });

  function claimsNow(): Record<string, unknown> {
    const iat = Math.floor(Date.now() / 1000);
    return { iss: 'urn:ncpeh:ncp:DK', aud: 'urn:ncpeh:ncp:ES', iat, exp: iat + 60, jti: randomUUID() };
  }

  test('rejects alg none (envelope.algorithm-forbidden)', async () => {
    const res = await rawPost(`${esPeerUrl}/ncp/v1/ping`, `${b64url({ alg: 'none', typ: 'ncpeh-request+jwt' })}.${b64url(claimsNow())}.`, dkClientTls);
    assert.equal(res.code, 'envelope.algorithm-forbidden');
    assert.equal(res.status, 400);
  });

  test('rejects HS256 signed with the public key as HMAC secret (envelope.algorithm-forbidden)', async () => {
    const header = b64url({ alg: 'HS256', kid: dkSigning.kid, typ: 'ncpeh-request+jwt' });
    const payload = b64url(claimsNow());
    const secret = JSON.stringify(dkSigning.publicJwk);
    const sig = createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url');
    const res = await rawPost(`${esPeerUrl}/ncp/v1/ping`, `${header}.${payload}.${sig}`, dkClientTls);
    assert.equal(res.code, 'envelope.algorithm-forbidden');
  });

  test('rejects an unknown kid (envelope.unknown-key)', async () => {
    const attacker = await loadPrivateJwk({ ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }), kid: 'attacker-1' }, 'sig');
    const jws = await signRequest({}, { key: attacker, iss: 'urn:ncpeh:ncp:DK', aud: 'urn:ncpeh:ncp:ES' });
    const res = await rawPost(`${esPeerUrl}/ncp/v1/ping`, jws, dkClientTls);
    assert.equal(res.code, 'envelope.unknown-key');
  });

  test('rejects a zip header (envelope.algorithm-forbidden)', async () => {
    const [, p, s] = (await signedByDk()).split('.');
    const header = b64url({ alg: 'ES256', kid: dkSigning.kid, typ: 'ncpeh-request+jwt', zip: 'DEF' });
    const res = await rawPost(`${esPeerUrl}/ncp/v1/ping`, `${header}.${p}.${s}`, dkClientTls);
    assert.equal(res.code, 'envelope.algorithm-forbidden');
  });

  test('refuses to talk to a server whose certificate is not the pinned one, with no fallback', async () => {
    const list = es.trust.require();
    const wrongPins: TrustList = structuredClone(list);
    const esEntry = wrongPins.countries.ES;
    const ptEntry = wrongPins.countries.PT;
    assert.ok(esEntry && ptEntry);
    esEntry.tls.serverCertSha256 = [...ptEntry.tls.serverCertSha256];
    const dkFiles = deployment.pki.countries.DK;
    assert.ok(dkFiles);
    const client = new PeerClient({
      ourNcpId: 'urn:ncpeh:ncp:DK',
      keys: await loadGatewayKeys({ signingKeyFile: dkFiles.signingJwk, encryptionKeyFiles: [dkFiles.encryptionJwk] }),
      trustList: () => wrongPins,
      tls: { cert: await readFile(dkFiles.tlsClientCert), key: await readFile(dkFiles.tlsClientKey), ca: await readFile(deployment.pki.ca.cert) },
    });
    try {
      await assert.rejects(client.call('ES', '/ncp/v1/ping', {}, PongSchema), (e: unknown) => e instanceof GatewayError && e.code === 'peer.server-untrusted');
    } finally {
      await client.close();
    }
  });

  test('a peer that trickles its answer is given up on at the call deadline (peer.unreachable) or when the caller leaves, and the connection closed', { timeout: 30_000 }, async () => {
    const esFiles = deployment.pki.countries.ES;
    const dkFiles = deployment.pki.countries.DK;
    assert.ok(esFiles && dkFiles);
    const ca = await readFile(deployment.pki.ca.cert);
    // ES's own certificate (pinned for ES), on a server that answers 200 and then one byte at a time.
    let hungUp: Promise<void> | undefined;
    let reached: () => void = () => undefined;
    const trickler = createHttpsServer({ cert: await readFile(esFiles.tlsServerCert), key: await readFile(esFiles.tlsServerKey) }, (req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/jose' });
      const drip = setInterval(() => res.write('e'), 50);
      hungUp = new Promise((resolve) => res.on('close', () => (clearInterval(drip), resolve())));
      reached();
    });
    await new Promise<void>((resolve) => trickler.listen(0, '127.0.0.1', resolve));
    const list: TrustList = structuredClone(es.trust.require());
    const esEntry = list.countries.ES;
    assert.ok(esEntry);
    esEntry.peerUrl = `https://127.0.0.1:${(trickler.address() as AddressInfo).port}`;
    const clientOptions = {
      ourNcpId: 'urn:ncpeh:ncp:DK',
      keys: await loadGatewayKeys({ signingKeyFile: dkFiles.signingJwk, encryptionKeyFiles: [dkFiles.encryptionJwk] }),
      trustList: () => list,
      tls: { cert: await readFile(dkFiles.tlsClientCert), key: await readFile(dkFiles.tlsClientKey), ca },
    };
    // Only the whole call's deadline can end the first call: every byte arrives well within the
    // body timeout. The second has a long deadline and is ended by its caller leaving.
    const client = new PeerClient({ ...clientOptions, callTimeoutMs: 2_000 });
    const patient = new PeerClient({ ...clientOptions, callTimeoutMs: 60_000 });
    // A client that ignored these would wait for ever: after 10 s this reports that, and the
    // finally below ends the trickle so that the run goes on.
    const settled = (call: Promise<unknown>): Promise<unknown> =>
      Promise.race([
        call.then(
          () => 'answered',
          (e: unknown) => e,
        ),
        new Promise((resolve) => setTimeout(resolve, 10_000, 'still waiting').unref()),
      ]);
    try {
      const outcome = await settled(client.call('ES', '/ncp/v1/ping', {}, PongSchema));
      assert.ok(outcome instanceof GatewayError && outcome.code === 'peer.unreachable', String(outcome));
      assert.ok(hungUp, 'the request reached the server');
      await hungUp;

      hungUp = undefined;
      const caller = new AbortController();
      reached = () => caller.abort();
      const left = await settled(patient.call('ES', '/ncp/v1/ping', {}, PongSchema, { signal: caller.signal }));
      // Not the peer's failure: said as the bulkheads say a caller that left.
      assert.ok(left instanceof GatewayError && left.code === 'service.busy' && left.detail === 'the caller left', String(left));
      // (Read through a function: the server's handler set it, which the compiler cannot see.)
      const second = ((): Promise<void> | undefined => hungUp)();
      assert.ok(second, 'the second request reached the server');
      await second;
    } finally {
      trickler.closeAllConnections();
      await new Promise<void>((resolve) => trickler.close(() => resolve()));
      await Promise.all([client.close(), patient.close()]);
    }
  });

  test('a tampered, expired or rolled-back trust list is refused and the last good list stays in force', async () => {
    const good = await readFile(deployment.trustListFile, 'utf8');
    const inForce = es.trust.require().sequence;
    try {
      const [h, p, s] = good.split('.');
      const doc = JSON.parse(Buffer.from(p ?? '', 'base64url').toString()) as Record<string, unknown>;
      await writeFile(deployment.trustListFile, `${h}.${b64url({ ...doc, sequence: inForce + 1 })}.${s}`);
      assert.equal(await es.trust.load(), 'rejected');
      // Rolled back: a correctly signed list with a lower sequence number.
      await writeSandboxTrustList({
        pki: deployment.pki,
        countries: ['DK', 'ES'].map((cc) => ({ country: cc, ncpId: `urn:ncpeh:ncp:${cc}`, peerUrl: `https://127.0.0.1:${deployment.peerPorts[cc]}` })),
        outFile: deployment.trustListFile,
        now: new Date(Date.now() - 3_600_000),
      });
      assert.equal(await es.trust.load(), 'rejected');
      // Expired: correctly signed, newer sequence, but nextUpdate already past.
      await writeSandboxTrustList({
        pki: deployment.pki,
        countries: ['DK', 'ES'].map((cc) => ({ country: cc, ncpId: `urn:ncpeh:ncp:${cc}`, peerUrl: `https://127.0.0.1:${deployment.peerPorts[cc]}` })),
        outFile: deployment.trustListFile,
        now: new Date(Date.now() + 3_600_000 - 40 * 86_400_000),
      });
      assert.equal(await es.trust.load(), 'rejected');
      assert.equal(es.trust.require().sequence, inForce);
      const metrics = await es.gateway.api.inject({ method: 'GET', url: '/metrics' });
      assert.match(metrics.body, /ncpeh_trust_list_rejections_total\{rule="signature",country="ES"\} 1/);
      assert.match(metrics.body, /ncpeh_trust_list_rejections_total\{rule="rollback",country="ES"\} 1/);
      // Peer traffic still works under the list in force.
      const answer = await dk.peerClient.call('ES', '/ncp/v1/ping', { nonce: 'after' }, PongSchema);
      assert.equal(answer.payload.nonce, 'after');
    } finally {
      await writeFile(deployment.trustListFile, good);
    }
  });

  test('refused peers and trust-list changes are in the audit log', async () => {
    const { rows } = await es.db.query<{ event: { subtype?: Array<{ system?: string; code?: string }>; outcome?: string; outcomeDesc?: string } }>(
      'SELECT event FROM audit_log ORDER BY seq',
    );
    const kind = (e: (typeof rows)[number]['event']) => e.subtype?.find((c) => c.system === 'urn:ncpeh:audit-kind')?.code;
    const failures = rows.filter((r) => kind(r.event) === 'peer-auth-failure').map((r) => r.event.outcomeDesc ?? '');
    for (const code of ['peer.untrusted', 'peer.country-mismatch', 'envelope.replayed', 'envelope.signature-invalid', 'envelope.algorithm-forbidden', 'tls:CERT_HAS_EXPIRED']) {
      assert.ok(failures.some((f) => f.includes(code)), `${code} audited: ${failures.join(' ')}`);
    }
    const trustEvents = rows.filter((r) => kind(r.event) === 'trust-list-change');
    assert.ok(trustEvents.some((r) => r.event.outcome === '0'), 'the list loaded at start is audited');
    assert.ok(trustEvents.some((r) => r.event.outcome === '8'), 'a refused list is audited');
  });

  test('jwks.json publishes only public keys on both listeners', async () => {
    const res = await es.gateway.api.inject({ method: 'GET', url: '/.well-known/jwks.json' });
    assert.equal(res.statusCode, 200);
    const jwks = res.json<{ keys: Array<Record<string, unknown>> }>();
    assert.equal(jwks.keys.length, 2);
    for (const k of jwks.keys) assert.ok(!('d' in k), 'no private member');
    const peer = await es.gateway.peer.inject({ method: 'GET', url: '/.well-known/jwks.json' });
    assert.equal(peer.body, res.body);
  });
});
