import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign as cryptoSign, webcrypto, type KeyObject } from 'node:crypto';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from 'undici';
import { GatewayError } from '../src/http/errors.js';
import {
  TRUST_LIST_TYP,
  countryByClientFingerprint,
  countryByNcpId,
  countryEntry,
  encryptionKeyFor,
  serverFingerprintsFor,
  signTrustList,
  signingKeysFor,
  verifyTrustList,
  type AnchorKey,
  type TrustList,
} from '../src/trust/trust-list.js';
import { loadX509 } from '../src/trust/pki.js';
import { TrustStore, type TrustListRejection } from '../src/trust/trust-store.js';

// ---- keys and documents ---------------------------------------------------------------------

function ecKeyPair(kid: string): { privateKey: KeyObject; privateJwk: Record<string, unknown>; publicJwk: AnchorKey } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pub = publicKey.export({ format: 'jwk' });
  return {
    privateKey,
    privateJwk: { ...privateKey.export({ format: 'jwk' }), kid },
    publicJwk: { kty: 'EC', crv: 'P-256', x: String(pub.x), y: String(pub.y), kid },
  };
}

function publicJwk(kid: string, use: 'sig' | 'enc'): Record<string, unknown> {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { ...publicKey.export({ format: 'jwk' }), kid, use };
}

const anchor = ecKeyPair('anchor-1');
const attacker = ecKeyPair('attacker-1');
const anchorKeys = [anchor.publicJwk];

const NOW = new Date('2030-01-01T12:00:00Z');
const HOUR = 3_600_000;
const iso = (ms: number): string => new Date(ms).toISOString();
const fp = (c: string): string => c.repeat(64);

function country(cc: string, client: string): Record<string, unknown> {
  return {
    ncpId: `urn:ncpeh:ncp:${cc}`,
    peerUrl: `https://ncp.${cc.toLowerCase()}.example/ncp/v1`,
    tls: { serverCertSha256: [fp('a')], clientCertSha256: [fp(client)] },
    jwks: { keys: [publicJwk(`${cc}-sig-1`, 'sig'), publicJwk(`${cc}-enc-1`, 'enc')] },
    validFrom: iso(NOW.getTime() - 24 * HOUR),
    validUntil: iso(NOW.getTime() + 365 * 24 * HOUR),
  };
}

const DK = country('DK', 'b');
const ES = country('ES', 'c');

function listDoc(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    version: 1,
    sequence: 5,
    issuedAt: iso(NOW.getTime() - HOUR),
    nextUpdate: iso(NOW.getTime() + 24 * HOUR),
    countries: { DK, ES },
    ...overrides,
  };
}

const b64 = (v: unknown): string => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** Signs anything, bypassing signTrustList's own validation, to build the hostile inputs. */
function rawSign(header: Record<string, unknown>, payload: unknown, key: KeyObject = anchor.privateKey): string {
  const input = `${b64(header)}.${b64(payload)}`;
  const signature = cryptoSign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}

const goodHeader = { alg: 'ES256', kid: 'anchor-1', typ: TRUST_LIST_TYP };

async function assertRefused(promise: Promise<unknown>, rule: string, code = 'trust-list.invalid'): Promise<GatewayError> {
  let caught: unknown;
  try {
    await promise;
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof GatewayError, `expected a GatewayError, got ${String(caught)}`);
  assert.equal(caught.code, code);
  assert.equal(caught.detail, rule);
  return caught;
}

const verify = (jws: string, extra: { now?: Date; current?: TrustList } = {}) =>
  verifyTrustList(jws, { anchorKeys, now: extra.now ?? NOW, current: extra.current });

// ---- verifyTrustList ------------------------------------------------------------------------

void describe('verifyTrustList', () => {
  void test('accepts a list signed by the anchor and returns it frozen', async () => {
    const { list, unchanged } = await verify(await signTrustList(listDoc(), anchor.privateJwk));
    assert.equal(unchanged, false);
    assert.equal(list.sequence, 5);
    assert.deepEqual(Object.keys(list.countries), ['DK', 'ES']);
    assert.ok(Object.isFrozen(list.countries['DK']?.tls.clientCertSha256));
  });

  void test('accepts a list signed by any configured anchor (anchor rotation)', async () => {
    const next = ecKeyPair('anchor-2');
    const jws = await signTrustList(listDoc(), next.privateJwk);
    const { list } = await verifyTrustList(jws, { anchorKeys: [anchor.publicJwk, next.publicJwk], now: NOW });
    assert.equal(list.sequence, 5);
  });

  void test('refuses an unsigned list (plain JSON)', async () => {
    await assertRefused(verify(JSON.stringify(listDoc())), 'compact-jws');
  });

  void test('refuses alg none (empty signature part)', async () => {
    await assertRefused(verify(`${b64({ ...goodHeader, alg: 'none' })}.${b64(listDoc())}.`), 'compact-jws');
  });

  void test('refuses alg none even with a signature part present', async () => {
    await assertRefused(verify(`${b64({ ...goodHeader, alg: 'none' })}.${b64(listDoc())}.AAAA`), 'header.alg');
  });

  void test('refuses any alg but ES256 (HS256 keyed with the public key)', async () => {
    await assertRefused(verify(rawSign({ ...goodHeader, alg: 'HS256' }, listDoc())), 'header.alg');
  });

  void test('refuses a header whose typ is not the trust-list type (an envelope signed by an anchor)', async () => {
    await assertRefused(verify(rawSign({ ...goodHeader, typ: 'JWT' }, listDoc())), 'header.typ');
    await assertRefused(verify(rawSign({ alg: 'ES256', kid: 'anchor-1' }, listDoc())), 'header.typ');
  });

  for (const member of ['jwk', 'jku', 'x5u', 'x5c', 'zip', 'crit']) {
    void test(`refuses a header carrying "${member}"`, async () => {
      const err = await assertRefused(verify(rawSign({ ...goodHeader, [member]: member === 'crit' ? ['exp'] : 'x' }, listDoc())), 'header.forbidden-member');
      assert.deepEqual(err.expression, [`header.${member}`]);
    });
  }

  void test('refuses an embedded jwk naming the attacker key even when it signed the token', async () => {
    const jws = rawSign({ ...goodHeader, jwk: attacker.publicJwk }, listDoc(), attacker.privateKey);
    await assertRefused(verify(jws), 'header.forbidden-member');
  });

  void test('refuses a list signed by a key that is not an anchor', async () => {
    await assertRefused(verify(await signTrustList(listDoc(), attacker.privateJwk)), 'anchor-kid');
  });

  void test('refuses a list signed by another key that spoofs the anchor kid', async () => {
    const jws = await signTrustList(listDoc(), { ...attacker.privateJwk, kid: 'anchor-1' });
    await assertRefused(verify(jws), 'signature');
  });

  void test('refuses a tampered payload', async () => {
    const [header, , signature] = (await signTrustList(listDoc(), anchor.privateJwk)).split('.');
    const tampered = `${header}.${b64(listDoc({ sequence: 6 }))}.${signature}`;
    await assertRefused(verify(tampered), 'signature');
  });

  void test('refuses a list whose nextUpdate has passed', async () => {
    const jws = await signTrustList(listDoc(), anchor.privateJwk);
    await assertRefused(verify(jws, { now: new Date(NOW.getTime() + 25 * HOUR) }), 'expired');
  });

  void test('tolerates at most 60 s of clock skew past nextUpdate', async () => {
    const nextUpdate = NOW.getTime() + 24 * HOUR;
    const jws = await signTrustList(listDoc(), anchor.privateJwk);
    await verify(jws, { now: new Date(nextUpdate + 59_000) });
    await assertRefused(verify(jws, { now: new Date(nextUpdate + 60_000) }), 'expired');
  });

  void test('refuses a list issued in the future (beyond 60 s of skew)', async () => {
    const jws = await signTrustList(listDoc({ issuedAt: iso(NOW.getTime() + 61_000) }), anchor.privateJwk);
    await assertRefused(verify(jws), 'issued-in-future');
    await verify(await signTrustList(listDoc({ issuedAt: iso(NOW.getTime() + 59_000) }), anchor.privateJwk));
  });

  void test('refuses a rollback to a lower sequence', async () => {
    const { list: current } = await verify(await signTrustList(listDoc({ sequence: 7 }), anchor.privateJwk));
    await assertRefused(verify(await signTrustList(listDoc({ sequence: 6 }), anchor.privateJwk), { current }), 'rollback');
  });

  void test('refuses the same sequence with different content', async () => {
    const { list: current } = await verify(await signTrustList(listDoc(), anchor.privateJwk));
    const other = await signTrustList(listDoc({ countries: { DK } }), anchor.privateJwk);
    await assertRefused(verify(other, { current }), 'same-sequence-different-content');
  });

  void test('reports the same sequence with an identical payload as unchanged', async () => {
    const doc = listDoc();
    const { list: current } = await verify(await signTrustList(doc, anchor.privateJwk));
    // A fresh signature (ECDSA is randomised) over the same bytes.
    const result = await verify(await signTrustList(doc, anchor.privateJwk), { current });
    assert.equal(result.unchanged, true);
    assert.equal(result.list, current);
  });

  void test('accepts a higher sequence over the current list', async () => {
    const { list: current } = await verify(await signTrustList(listDoc(), anchor.privateJwk));
    const result = await verify(await signTrustList(listDoc({ sequence: 6 }), anchor.privateJwk), { current });
    assert.equal(result.unchanged, false);
    assert.equal(result.list.sequence, 6);
  });

  void test('refuses a payload that is not JSON', async () => {
    const input = `${b64(goodHeader)}.${b64('not json')}`;
    const sig = cryptoSign('sha256', Buffer.from(input), { key: anchor.privateKey, dsaEncoding: 'ieee-p1363' });
    await assertRefused(verify(`${input}.${sig.toString('base64url')}`), 'payload.malformed');
  });

  const withDk = (patch: Record<string, unknown>): Record<string, unknown> => listDoc({ countries: { DK: { ...DK, ...patch }, ES } });
  const dkKeys = (DK['jwks'] as { keys: Record<string, unknown>[] }).keys;
  const schemaCases: [string, Record<string, unknown>, string][] = [
    ['a JWK carrying the private member d', withDk({ jwks: { keys: [{ ...dkKeys[0], d: 'AAAA' }, dkKeys[1]] } }), 'private key material ("d")'],
    ['a symmetric key (k)', withDk({ jwks: { keys: [...dkKeys, { kty: 'oct', k: 'AAAA', kid: 'h', use: 'sig' }] } }), 'private key material ("k")'],
    ['a lowercase country code', listDoc({ countries: { dk: DK } }), 'countries.dk'],
    ['a three-letter country code', listDoc({ countries: { DNK: DK } }), 'countries.DNK'],
    ['a country without an encryption key', withDk({ jwks: { keys: [dkKeys[0]] } }), 'encryption key'],
    ['a country without a signing key', withDk({ jwks: { keys: [dkKeys[1]] } }), 'signing key'],
    ['an http:// peer URL', withDk({ peerUrl: 'http://ncp.dk.example/ncp/v1' }), 'countries.DK.peerUrl'],
    ['an uppercase fingerprint', withDk({ tls: { serverCertSha256: [fp('A')], clientCertSha256: [fp('b')] } }), 'serverCertSha256'],
    ['no client fingerprint', withDk({ tls: { serverCertSha256: [fp('a')], clientCertSha256: [] } }), 'clientCertSha256'],
    ['duplicate kids in a country', withDk({ jwks: { keys: [dkKeys[0], { ...dkKeys[1], kid: 'DK-sig-1' }] } }), 'used twice'],
    ['an ncpId used by two countries', withDk({ ncpId: 'urn:ncpeh:ncp:ES' }), 'ncpId is also used'],
    ['a client certificate listed for two countries', withDk({ tls: { serverCertSha256: [fp('a')], clientCertSha256: [fp('c')] } }), 'also listed'],
    ['validFrom not before validUntil', withDk({ validFrom: iso(NOW.getTime()), validUntil: iso(NOW.getTime()) }), 'validFrom must be before'],
    ['issuedAt not before nextUpdate', listDoc({ issuedAt: iso(NOW.getTime()), nextUpdate: iso(NOW.getTime()) }), 'issuedAt must be before'],
    ['an unknown top-level member', listDoc({ comment: 'x' }), 'comment'],
    ['an unknown member in a country', withDk({ caChain: [] }), 'caChain'],
    ['a version other than 1', listDoc({ version: 2 }), 'version'],
    ['a zero sequence', listDoc({ sequence: 0 }), 'sequence'],
    ['a non-UTC time', listDoc({ issuedAt: '2030-01-01T10:00:00+01:00' }), 'issuedAt'],
    ['an EC point that is not on the curve', withDk({ jwks: { keys: [{ ...dkKeys[0], y: dkKeys[0]?.['x'] }, dkKeys[1]] } }), 'not a valid public key'],
    ['a key announcing a forbidden alg', withDk({ jwks: { keys: [{ ...dkKeys[0], alg: 'HS256' }, dkKeys[1]] } }), 'alg HS256 is not allowed'],
  ];
  for (const [name, doc, expected] of schemaCases) {
    void test(`refuses a list with ${name} (schema)`, async () => {
      const err = await assertRefused(verify(rawSign(goodHeader, doc)), 'schema');
      assert.ok(
        err.expression.some((e) => e.includes(expected)),
        `expected a problem mentioning ${JSON.stringify(expected)}, got ${JSON.stringify(err.expression)}`,
      );
      await assertRefused(signTrustList(doc, anchor.privateJwk), 'schema');
    });
  }
});

// ---- lookups --------------------------------------------------------------------------------

void describe('trust list lookups', () => {
  let list: TrustList;
  before(async () => {
    ({ list } = await verify(await signTrustList(listDoc(), anchor.privateJwk)));
  });

  void test('finds the country of a client certificate fingerprint, in either notation', () => {
    assert.equal(countryByClientFingerprint(list, fp('b'), NOW), 'DK');
    assert.equal(countryByClientFingerprint(list, fp('C').replace(/(..)(?!$)/g, '$1:'), NOW), 'ES');
    assert.equal(countryByClientFingerprint(list, fp('d'), NOW), undefined);
    assert.equal(countryByClientFingerprint(list, 'b', NOW), undefined);
  });

  void test('ignores a country entry outside its validity period', () => {
    assert.equal(countryByClientFingerprint(list, fp('b'), new Date(NOW.getTime() - 25 * HOUR)), undefined);
    assert.equal(countryByClientFingerprint(list, fp('b'), new Date(NOW.getTime() + 366 * 24 * HOUR)), undefined);
  });

  void test('gives pins, keys and ncp ids per country', () => {
    assert.deepEqual(serverFingerprintsFor(list, 'DK'), [fp('a')]);
    assert.deepEqual(signingKeysFor(list, 'ES').map((k) => k.kid), ['ES-sig-1']);
    assert.equal(encryptionKeyFor(list, 'ES').kid, 'ES-enc-1');
    assert.equal(countryByNcpId(list, 'urn:ncpeh:ncp:ES'), 'ES');
    assert.equal(countryByNcpId(list, 'urn:ncpeh:ncp:FR'), undefined);
  });

  void test('throws peer.unknown-country for a country not in the list, including prototype names', () => {
    for (const cc of ['FR', '__proto__', 'constructor', 'dk']) {
      assert.throws(() => countryEntry(list, cc), (e: unknown) => e instanceof GatewayError && e.code === 'peer.unknown-country');
    }
  });
});

// ---- TrustStore -----------------------------------------------------------------------------

interface LogEntry {
  level: string;
  obj: object;
  msg: string | undefined;
}

function recorder(): { log: { info: (o: object, m?: string) => void; warn: (o: object, m?: string) => void; error: (o: object, m?: string) => void }; entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  const at = (level: string) => (obj: object, msg?: string) => void entries.push({ level, obj, msg });
  return { log: { info: at('info'), warn: at('warn'), error: at('error') }, entries };
}

void describe('TrustStore (file source)', () => {
  let dir: string;
  let file: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ncpeh-trust-'));
    file = join(dir, 'list.jws');
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  function store(now: () => Date = () => NOW) {
    const { log, entries } = recorder();
    const rejected: TrustListRejection[] = [];
    const changed: number[] = [];
    const s = new TrustStore({
      source: { file },
      anchorKeys,
      now,
      log,
      onRejected: (r) => rejected.push(r),
      onChanged: (l) => changed.push(l.sequence),
    });
    return { s, entries, rejected, changed };
  }

  void test('loads a signed list from a file', async () => {
    await writeFile(file, `${await signTrustList(listDoc(), anchor.privateJwk)}\n`);
    const { s, changed } = store();
    assert.equal(s.isReady(), false);
    assert.equal(await s.load(), 'loaded');
    assert.equal(s.require().sequence, 5);
    assert.equal(s.isReady(), true);
    assert.deepEqual(changed, [5]);
    assert.equal(await s.load(), 'unchanged');
    assert.deepEqual(changed, [5]);
  });

  void test('keeps the last good list when a bad one replaces it, and reports the refusal', async () => {
    await writeFile(file, await signTrustList(listDoc(), anchor.privateJwk));
    const { s, rejected, entries } = store();
    assert.equal(await s.load(), 'loaded');
    const good = s.current();

    await writeFile(file, await signTrustList(listDoc({ sequence: 9 }), attacker.privateJwk));
    assert.equal(await s.load(), 'rejected');
    assert.deepEqual(rejected, [{ code: 'trust-list.invalid', rule: 'anchor-kid' }]);
    assert.equal(s.current(), good);
    assert.equal(s.require().sequence, 5);
    assert.ok(entries.some((e) => e.level === 'error' && 'rule' in e.obj && e.obj.rule === 'anchor-kid'));

    await writeFile(file, await signTrustList(listDoc({ sequence: 4 }), anchor.privateJwk));
    assert.equal(await s.load(), 'rejected');
    assert.deepEqual(rejected.at(-1), { code: 'trust-list.invalid', rule: 'rollback' });
    assert.equal(s.current(), good);
  });

  void test('a newer sequence replaces the list in force', async () => {
    await writeFile(file, await signTrustList(listDoc(), anchor.privateJwk));
    const { s, changed } = store();
    await s.load();
    await writeFile(file, await signTrustList(listDoc({ sequence: 6, countries: { DK } }), anchor.privateJwk));
    assert.equal(await s.load(), 'loaded');
    assert.equal(s.require().sequence, 6);
    assert.deepEqual(Object.keys(s.require().countries), ['DK']);
    assert.deepEqual(changed, [5, 6]);
  });

  void test('require() throws trust-list.unavailable when no list was ever loaded', async () => {
    await rm(file, { force: true });
    const { s, rejected } = store();
    assert.equal(await s.load(), 'rejected');
    assert.deepEqual(rejected, [{ code: 'trust-list.unavailable', rule: 'read-failed' }]);
    assert.throws(() => s.require(), (e: unknown) => e instanceof GatewayError && e.code === 'trust-list.unavailable');
    assert.equal(s.isReady(), false);
  });

  void test('require() throws trust-list.unavailable once the held list passed nextUpdate', async () => {
    await writeFile(file, await signTrustList(listDoc(), anchor.privateJwk));
    let now = NOW;
    const { s } = store(() => now);
    assert.equal(await s.load(), 'loaded');
    now = new Date(NOW.getTime() + 25 * HOUR);
    assert.throws(() => s.require(), (e: unknown) => e instanceof GatewayError && e.code === 'trust-list.unavailable');
    assert.equal(s.isReady(), false);
    assert.notEqual(s.current(), undefined);
    // Re-reading the same (now expired) list does not bring it back.
    assert.equal(await s.load(), 'rejected');
  });

  void test('refuses anchor keys that are not public P-256 keys at construction', () => {
    assert.throws(() => new TrustStore({ source: { file }, anchorKeys: [anchor.privateJwk], log: recorder().log }), /invalid trust anchor keys/);
    assert.throws(() => new TrustStore({ source: { file }, anchorKeys: [], log: recorder().log }), /invalid trust anchor keys/);
  });

  void test('auto refresh picks up a new list and stops', async () => {
    await writeFile(file, await signTrustList(listDoc(), anchor.privateJwk));
    const { s, changed } = store();
    await s.load();
    await writeFile(file, await signTrustList(listDoc({ sequence: 6 }), anchor.privateJwk));
    s.startAutoRefresh(10);
    for (let i = 0; i < 100 && s.require().sequence !== 6; i++) await new Promise((r) => setTimeout(r, 10));
    s.stop();
    assert.deepEqual(changed, [5, 6]);
  });
});

// ---- TrustStore over HTTPS ------------------------------------------------------------------

/** A throwaway server certificate; @peculiar/x509 comes through pki.ts, which supplies the Reflect shim it needs. */
async function selfSignedLocalhost(): Promise<{ cert: string; key: string }> {
  const x509 = await loadX509();
  x509.cryptoProvider.set(webcrypto);
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=localhost',
    notBefore: new Date(Date.now() - HOUR),
    notAfter: new Date(Date.now() + HOUR),
    signingAlgorithm: alg,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.SubjectAlternativeNameExtension([{ type: 'ip', value: '127.0.0.1' }]),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
  return { cert: cert.toString('pem'), key: `-----BEGIN PRIVATE KEY-----\n${pkcs8.replace(/.{64}/g, '$&\n')}\n-----END PRIVATE KEY-----\n` };
}

void describe('TrustStore (HTTPS source)', () => {
  let server: Server;
  let base: string;
  let agent: Agent;
  let requests = 0;
  let body = '';
  let status = 200;

  before(async () => {
    const { cert, key } = await selfSignedLocalhost();
    server = createServer({ cert, key }, (req, res) => {
      requests++;
      if (req.url === '/redirect') {
        res.writeHead(302, { location: '/list.jws' }).end();
        return;
      }
      if (req.url === '/huge') {
        res.writeHead(200, { 'content-type': 'application/jose' });
        res.end('A'.repeat(1024 * 1024 + 1));
        return;
      }
      // Delay a little so concurrent loads really overlap.
      setTimeout(() => res.writeHead(status, { 'content-type': 'application/jose' }).end(body), 20);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    agent = new Agent({ connect: { ca: cert } });
  });
  after(async () => {
    await agent.close();
    await new Promise((resolve) => server.close(resolve));
  });

  function store(path = '/list.jws') {
    const rejected: TrustListRejection[] = [];
    const s = new TrustStore({
      source: { url: `${base}${path}`, dispatcher: agent },
      anchorKeys,
      now: () => NOW,
      log: recorder().log,
      onRejected: (r) => rejected.push(r),
    });
    return { s, rejected };
  }

  void test('loads a signed list from an HTTPS URL', async () => {
    body = await signTrustList(listDoc(), anchor.privateJwk);
    status = 200;
    const { s } = store();
    assert.equal(await s.load(), 'loaded');
    assert.equal(s.require().sequence, 5);
  });

  void test('coalesces concurrent load() calls into one load plus one trailing reload', async () => {
    body = await signTrustList(listDoc(), anchor.privateJwk);
    status = 200;
    const { s } = store();
    requests = 0;
    const outcomes = await Promise.all([s.load(), s.load(), s.load(), s.load(), s.load()]);
    assert.deepEqual(outcomes, ['loaded', 'unchanged', 'unchanged', 'unchanged', 'unchanged']);
    assert.equal(requests, 2);
  });

  void test('does not follow redirects', async () => {
    const { s, rejected } = store('/redirect');
    assert.equal(await s.load(), 'rejected');
    assert.deepEqual(rejected, [{ code: 'trust-list.unavailable', rule: 'http-status' }]);
  });

  void test('refuses a body larger than 1 MiB', async () => {
    const { s, rejected } = store('/huge');
    assert.equal(await s.load(), 'rejected');
    assert.deepEqual(rejected, [{ code: 'trust-list.unavailable', rule: 'too-large' }]);
  });

  void test('keeps the last good list when the server fails', async () => {
    body = await signTrustList(listDoc(), anchor.privateJwk);
    status = 200;
    const { s, rejected } = store();
    await s.load();
    status = 500;
    assert.equal(await s.load(), 'rejected');
    assert.deepEqual(rejected, [{ code: 'trust-list.unavailable', rule: 'http-status' }]);
    assert.equal(s.require().sequence, 5);
  });

  void test('refuses a server certificate the dispatcher does not trust', async () => {
    const s = new TrustStore({ source: { url: `${base}/list.jws` }, anchorKeys, now: () => NOW, log: recorder().log });
    assert.equal(await s.load(), 'rejected');
    assert.equal(s.current(), undefined);
  });

  void test('refuses a plain http:// source URL at construction', () => {
    assert.throws(() => new TrustStore({ source: { url: 'http://127.0.0.1/list.jws' }, anchorKeys, log: recorder().log }), /https/);
  });
});
