import assert from 'node:assert/strict';
import { createHmac, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, randomInt, randomUUID, sign, type JsonWebKey, type KeyObject } from 'node:crypto';
import { after, describe, test } from 'node:test';
import jose from 'node-jose';
import {
  decodeBase64url,
  REQUEST_TYP,
  RESPONSE_TYP,
  loadPrivateJwk,
  openResponse,
  publicJwks,
  sealResponse,
  signRequest,
  verifyRequest,
  type DecryptionKey,
  type OpenResponseOptions,
  type PublicJwk,
  type SigningKey,
  type VerifyRequestOptions,
} from '../src/crossborder/envelope.js';
import { DbReplayStore, MemoryReplayStore } from '../src/crossborder/replay-store.js';
import { openTestDb } from './helpers/db.js';
import { rejectsWith } from './helpers/errors.js';

// ---------------------------------------------------------------------------------------------
// Fixtures: a DK gateway calls an ES gateway; FR is a third trusted country; the attacker is not.

const NOW = new Date('2030-01-01T00:00:00Z');
const T = NOW.getTime() / 1000;

function ecJwk(kid: string): JsonWebKey & { kid: string } {
  return { ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }), kid };
}
function rsaJwk(kid: string, bits = 2048): JsonWebKey & { kid: string } {
  return { ...generateKeyPairSync('rsa', { modulusLength: bits }).privateKey.export({ format: 'jwk' }), kid };
}
function keyObject(jwk: JsonWebKey): KeyObject {
  return createPrivateKey({ key: jwk, format: 'jwk' });
}

const raw = {
  dkSig: ecJwk('dk-sig'),
  dkEnc: ecJwk('dk-enc'),
  dkEncRsa: rsaJwk('dk-enc-rsa'),
  esSig: ecJwk('es-sig'),
  esEnc: ecJwk('es-enc'),
  frSig: ecJwk('fr-sig'),
  attackerSig: ecJwk('attacker-sig'),
  attackerEnc: ecJwk('attacker-enc'),
};
const dkSig: SigningKey = await loadPrivateJwk(raw.dkSig, 'sig');
const dkEnc: DecryptionKey = await loadPrivateJwk(raw.dkEnc, 'enc');
const dkEncRsa: DecryptionKey = await loadPrivateJwk(raw.dkEncRsa, 'enc');
const esSig: SigningKey = await loadPrivateJwk(raw.esSig, 'sig');
const esEnc: DecryptionKey = await loadPrivateJwk(raw.esEnc, 'enc');
const frSig: SigningKey = await loadPrivateJwk(raw.frSig, 'sig');
const attackerEnc: DecryptionKey = await loadPrivateJwk(raw.attackerEnc, 'enc');

/** What the trust list publishes for each country. */
const dkJwks = publicJwks([dkSig, dkEnc, dkEncRsa]);
const esJwks = publicJwks([esSig, esEnc]);

/** ES verifying a request from DK (the TLS certificate said DK). */
function verifyOpts(overrides: Partial<VerifyRequestOptions> = {}): VerifyRequestOptions {
  return {
    trustedKeys: dkJwks,
    expectedIss: 'DK',
    expectedAud: 'ES',
    now: NOW,
    replay: new MemoryReplayStore({ now: () => NOW }),
    ...overrides,
  };
}

/** DK opening an answer from ES, the country it asked. */
function openOpts(overrides: Partial<OpenResponseOptions> = {}): OpenResponseOptions {
  return { decryptionKeys: [dkEnc, dkEncRsa], expectedSignerKeys: esJwks, now: NOW, ...overrides };
}

function b64u(value: unknown): string {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
}
function decodePart(token: string, index: number): Record<string, unknown> {
  const value: unknown = JSON.parse(Buffer.from(token.split('.')[index]!, 'base64url').toString('utf8'));
  assert.ok(typeof value === 'object' && value !== null && !Array.isArray(value));
  return { ...value };
}

/** A compact ES256 JWS built by hand with node:crypto, so every header and claim is ours to set. */
function signRaw(header: Record<string, unknown>, claims: Record<string, unknown>, key: JsonWebKey = raw.dkSig): string {
  const input = `${b64u(header)}.${b64u(claims)}`;
  const signature = sign('sha256', Buffer.from(input), { key: keyObject(key), dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}
function requestHeader(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { alg: 'ES256', kid: 'dk-sig', typ: REQUEST_TYP, ...extra };
}
function requestClaims(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { iss: 'DK', aud: 'ES', iat: T, exp: T + 120, jti: randomUUID(), op: 'patient-discovery', ...extra };
}

/** Flips one bit of the decoded bytes of part `index` (not a padding bit of the text). */
function flipBit(token: string, index: number, byte = 5): string {
  const parts = token.split('.');
  const bytes = Buffer.from(parts[index]!, 'base64url');
  bytes[byte % bytes.length]! ^= 0x01;
  parts[index] = bytes.toString('base64url');
  return parts.join('.');
}

/** Rewrites the protected header of a compact token, leaving the other parts untouched. */
function withHeader(token: string, mutate: (header: Record<string, unknown>) => void): string {
  const parts = token.split('.');
  const header = decodePart(token, 0);
  mutate(header);
  parts[0] = b64u(header);
  return parts.join('.');
}

// node-jose accepts a recipient object `{ key, header }` (lib/jwe/encrypt.js, createEncrypt), which
// its published typings omit.
declare module 'node-jose' {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace JWE {
    interface Recipient {
      key: JWK.Key;
      header: Record<string, unknown>;
    }
    function createEncrypt(options: EncryptOptions, recipient: Recipient): Encryptor;
  }
}

/** A JWE made with node-jose directly, for plaintexts and options sealResponse would never produce. */
async function encryptRaw(plaintext: string, recipient: PublicJwk, options: { zip?: boolean } = {}): Promise<string> {
  const key = await jose.JWK.asKey(recipient);
  return jose.JWE.createEncrypt(
    { format: 'compact', contentAlg: 'A256GCM', fields: { cty: 'JWT' }, ...(options.zip === true ? { zip: true } : {}) },
    { key, header: { alg: recipient.alg, kid: recipient.kid } },
  )
    .update(Buffer.from(plaintext))
    .final();
}

// ---------------------------------------------------------------------------------------------
// node:test's describe/test return promises the runner tracks; `void` tells the floating-promise
// lint rule so (eslint.config.js does not list node:test as a known-safe call).

void describe('keys', () => {
  void test('refuses a symmetric (kty oct) key for either use', async () => {
    const oct = { kty: 'oct', k: Buffer.alloc(32, 1).toString('base64url'), kid: 'hmac' };
    await assert.rejects(loadPrivateJwk(oct, 'sig'), /symmetric/);
    await assert.rejects(loadPrivateJwk(oct, 'enc'), /symmetric/);
  });

  void test('refuses a key without kid', async () => {
    const { kid: _kid, ...noKid } = ecJwk('x');
    await assert.rejects(loadPrivateJwk(noKid, 'sig'), TypeError);
  });

  void test('refuses an RSA signing key (only ES256 signs)', async () => {
    await assert.rejects(loadPrivateJwk(rsaJwk('rsa-sig'), 'sig'), /ES256/);
  });

  void test('refuses an RSA encryption key under 2048 bits', async () => {
    await assert.rejects(loadPrivateJwk(rsaJwk('rsa-small', 1024), 'enc'), /2048/);
  });

  void test('refuses a key whose declared use or alg contradicts the requested use', async () => {
    await assert.rejects(loadPrivateJwk({ ...ecJwk('k'), use: 'enc' }, 'sig'), /use/);
    await assert.rejects(loadPrivateJwk({ ...ecJwk('k'), alg: 'ECDH-ES' }, 'enc'), /alg/);
  });

  void test('refuses a private key whose d does not match x/y', async () => {
    const other = ecJwk('other');
    await assert.rejects(loadPrivateJwk({ ...ecJwk('k'), d: other.d }, 'sig'), /not a valid private key/);
  });

  void test('publicJwks strips private members and states use and alg', () => {
    const set = publicJwks([dkSig, dkEnc, dkEncRsa]);
    for (const k of set.keys) {
      for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi']) assert.equal(member in k, false, `${k.kid} leaks ${member}`);
    }
    assert.deepEqual(
      set.keys.map((k) => [k.kid, k.use, k.alg]),
      [
        ['dk-sig', 'sig', 'ES256'],
        ['dk-enc', 'enc', 'ECDH-ES+A256KW'],
        ['dk-enc-rsa', 'enc', 'RSA-OAEP-256'],
      ],
    );
  });
});

void describe('peer request (JWS)', () => {
  void test('round trip: a request signed by DK verifies at ES with DK trust-list keys', async () => {
    const jws = await signRequest({ op: 'patient-discovery', hcp: 'assertion' }, { key: dkSig, iss: 'DK', aud: 'ES', now: NOW });
    assert.deepEqual(decodePart(jws, 0), { alg: 'ES256', kid: 'dk-sig', typ: REQUEST_TYP });
    const verified = await verifyRequest(jws, verifyOpts());
    assert.equal(verified.iss, 'DK');
    assert.equal(verified.aud, 'ES');
    assert.equal(verified.iat, T);
    assert.equal(verified.exp, T + 120);
    assert.equal(verified.kid, 'dk-sig');
    assert.match(verified.jti, /^[0-9a-f-]{36}$/);
    assert.equal(verified.claims['op'], 'patient-discovery');
    assert.equal(verified.claims['hcp'], 'assertion');
  });

  void test('a hand-built token with the profile header and claims verifies (baseline for the rules below)', async () => {
    await verifyRequest(signRaw(requestHeader(), requestClaims()), verifyOpts());
  });

  void test('signRequest refuses a ttl over 5 minutes and payloads that set reserved claims', async () => {
    await assert.rejects(signRequest({}, { key: dkSig, iss: 'DK', aud: 'ES', ttlSeconds: 301 }), RangeError);
    await assert.rejects(signRequest({ jti: 'x' }, { key: dkSig, iss: 'DK', aud: 'ES' }), TypeError);
  });

  void describe('checkCompactShape', () => {
    void test('rejects a token that is not three base64url parts', async () => {
      const good = signRaw(requestHeader(), requestClaims());
      await rejectsWith(verifyRequest(good.split('.').slice(0, 2).join('.'), verifyOpts()), 'envelope.malformed');
      await rejectsWith(verifyRequest(`${good}.x`, verifyOpts()), 'envelope.malformed');
      await rejectsWith(verifyRequest(good.replace('.', '.+'), verifyOpts()), 'envelope.malformed');
      await rejectsWith(verifyRequest(`${b64u('not json')}.${good.split('.')[1]!}.${good.split('.')[2]!}`, verifyOpts()), 'envelope.malformed');
    });

    void test('rejects a second spelling of the same bytes (unused trailing bits set) and an impossible length', async () => {
      const good = signRaw(requestHeader(), requestClaims());
      const [h, p, sig = ''] = good.split('.');
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      // 64 bytes are 86 characters: the last one carries 2 data bits and 4 that must be zero.
      const last = alphabet.indexOf(sig.charAt(sig.length - 1));
      const twin = `${sig.slice(0, -1)}${alphabet.charAt(last | 0x01)}`;
      assert.deepEqual(Buffer.from(twin, 'base64url'), Buffer.from(sig, 'base64url'), 'the same bytes');
      await rejectsWith(verifyRequest(`${h}.${p}.${twin}`, verifyOpts()), 'envelope.malformed');
      const impossible = `${p ?? ''}${'A'.repeat((5 - ((p ?? '').length % 4)) % 4)}`;
      assert.equal(impossible.length % 4, 1);
      await rejectsWith(verifyRequest(`${h}.${impossible}.${sig}`, verifyOpts()), 'envelope.malformed');
      await verifyRequest(good, verifyOpts());
    });

    void test('rejects a token over the size bound', async () => {
      const big = signRaw(requestHeader(), requestClaims({ pad: 'x'.repeat(5000) }));
      await rejectsWith(verifyRequest(big, verifyOpts({ maxChars: 4096 })), 'envelope.malformed');
    });
  });

  void describe('checkHeaderAllowlist', () => {
    void test('rejects alg none (unsigned, and with a signature attached)', async () => {
      const claims = b64u(requestClaims());
      const header = b64u({ alg: 'none', kid: 'dk-sig', typ: REQUEST_TYP });
      await rejectsWith(verifyRequest(`${header}.${claims}.`, verifyOpts()), 'envelope.algorithm-forbidden');
      await rejectsWith(verifyRequest(signRaw({ alg: 'none', kid: 'dk-sig', typ: REQUEST_TYP }, requestClaims()), verifyOpts()), 'envelope.algorithm-forbidden');
      await rejectsWith(verifyRequest(`${b64u({ alg: 'NONE', kid: 'dk-sig', typ: REQUEST_TYP })}.${claims}.`, verifyOpts()), 'envelope.algorithm-forbidden');
    });

    void test('rejects HS256 keyed with the ES256 public key bytes (algorithm confusion)', async () => {
      const input = `${b64u({ alg: 'HS256', kid: 'dk-sig', typ: REQUEST_TYP })}.${b64u(requestClaims())}`;
      const publicKey = createPublicKey({ key: raw.dkSig, format: 'jwk' });
      for (const secret of [
        publicKey.export({ format: 'pem', type: 'spki' }),
        publicKey.export({ format: 'der', type: 'spki' }),
        JSON.stringify(dkSig.publicJwk),
      ]) {
        const mac = createHmac('sha256', secret).update(input).digest('base64url');
        await rejectsWith(verifyRequest(`${input}.${mac}`, verifyOpts()), 'envelope.algorithm-forbidden');
      }
    });

    void test('rejects RS256', async () => {
      const input = `${b64u({ alg: 'RS256', kid: 'dk-sig', typ: REQUEST_TYP })}.${b64u(requestClaims())}`;
      const signature = sign('RSA-SHA256', Buffer.from(input), keyObject(rsaJwk('rsa')));
      await rejectsWith(verifyRequest(`${input}.${signature.toString('base64url')}`, verifyOpts()), 'envelope.algorithm-forbidden');
    });

    void test('rejects PS256, ES384 and ES512', async () => {
      for (const alg of ['PS256', 'ES384', 'ES512']) {
        await rejectsWith(verifyRequest(signRaw(requestHeader({ alg }), requestClaims()), verifyOpts()), 'envelope.algorithm-forbidden');
      }
    });

    void test('rejects an embedded jwk header, even when it holds the key that signed', async () => {
      const attacker = createPublicKey({ key: raw.attackerSig, format: 'jwk' }).export({ format: 'jwk' });
      const token = signRaw(requestHeader({ jwk: attacker }), requestClaims(), raw.attackerSig);
      await rejectsWith(verifyRequest(token, verifyOpts()), 'envelope.algorithm-forbidden');
    });

    void test('rejects jku, x5u, x5c, x5t and x5t#S256 headers', async () => {
      const values: Record<string, unknown> = {
        jku: 'https://attacker.example/jwks.json',
        x5u: 'https://attacker.example/cert.pem',
        x5c: ['MIIB'],
        x5t: 'AAAA',
        'x5t#S256': 'AAAA',
      };
      for (const [name, value] of Object.entries(values)) {
        await rejectsWith(verifyRequest(signRaw(requestHeader({ [name]: value }), requestClaims()), verifyOpts()), 'envelope.algorithm-forbidden');
      }
    });

    void test('rejects a zip header on the JWS', async () => {
      await rejectsWith(verifyRequest(signRaw(requestHeader({ zip: 'DEF' }), requestClaims()), verifyOpts()), 'envelope.algorithm-forbidden');
    });

    void test('rejects any crit header', async () => {
      await rejectsWith(verifyRequest(signRaw(requestHeader({ crit: ['urn:x'], 'urn:x': 1 }), requestClaims()), verifyOpts()), 'envelope.algorithm-forbidden');
      await rejectsWith(verifyRequest(signRaw(requestHeader({ crit: ['b64'], b64: false }), requestClaims()), verifyOpts()), 'envelope.algorithm-forbidden');
    });

    void test('rejects header members outside the profile (unknown names, __proto__)', async () => {
      await rejectsWith(verifyRequest(signRaw(requestHeader({ cty: 'JWT' }), requestClaims()), verifyOpts()), 'envelope.algorithm-forbidden');
      const input = `${b64u('{"alg":"ES256","kid":"dk-sig","typ":"ncpeh-request+jwt","__proto__":{"x":1}}')}.${b64u(requestClaims())}`;
      const signature = sign('sha256', Buffer.from(input), { key: keyObject(raw.dkSig), dsaEncoding: 'ieee-p1363' });
      await rejectsWith(verifyRequest(`${input}.${signature.toString('base64url')}`, verifyOpts()), 'envelope.malformed');
    });
  });

  void describe('checkType', () => {
    void test('rejects a response JWS presented as a request (explicit typing)', async () => {
      await rejectsWith(verifyRequest(signRaw(requestHeader({ typ: RESPONSE_TYP }), requestClaims()), verifyOpts()), 'envelope.malformed');
      await rejectsWith(verifyRequest(signRaw({ alg: 'ES256', kid: 'dk-sig' }, requestClaims()), verifyOpts()), 'envelope.malformed');
    });
  });

  void describe('checkKidKnown', () => {
    void test('rejects an unknown kid', async () => {
      const token = signRaw(requestHeader({ kid: 'attacker-sig' }), requestClaims(), raw.attackerSig);
      await rejectsWith(verifyRequest(token, verifyOpts()), 'envelope.unknown-key');
    });

    void test('rejects a token without kid', async () => {
      const { kid: _kid, ...header } = requestHeader();
      await rejectsWith(verifyRequest(signRaw(header, requestClaims()), verifyOpts()), 'envelope.unknown-key');
    });

    void test('rejects a kid that names the country encryption key, not a signing key', async () => {
      const token = signRaw(requestHeader({ kid: 'dk-enc' }), requestClaims(), raw.dkEnc);
      await rejectsWith(verifyRequest(token, verifyOpts()), 'envelope.unknown-key');
    });

    void test('rejects a kid of another trusted country (keys come from the TLS-authenticated country only)', async () => {
      const token = signRaw(requestHeader({ kid: 'fr-sig' }), requestClaims({ iss: 'FR' }), raw.frSig);
      await rejectsWith(verifyRequest(token, verifyOpts()), 'envelope.unknown-key');
    });

    void test('accepts either of two valid keys during rotation', async () => {
      const next = await loadPrivateJwk(ecJwk('dk-sig-2'), 'sig');
      const jwks = publicJwks([dkSig, next]);
      for (const key of [dkSig, next]) {
        const jws = await signRequest({}, { key, iss: 'DK', aud: 'ES', now: NOW });
        assert.equal((await verifyRequest(jws, verifyOpts({ trustedKeys: jwks }))).kid, key.kid);
      }
    });
  });

  void describe('checkSignature', () => {
    void test('rejects a tampered signature (one bit flipped)', async () => {
      const jws = await signRequest({}, { key: dkSig, iss: 'DK', aud: 'ES', now: NOW });
      await rejectsWith(verifyRequest(flipBit(jws, 2), verifyOpts()), 'envelope.signature-invalid');
    });

    void test('rejects a tampered payload', async () => {
      const jws = await signRequest({ patient: 'A' }, { key: dkSig, iss: 'DK', aud: 'ES', now: NOW });
      const parts = jws.split('.');
      parts[1] = b64u({ ...decodePart(jws, 1), patient: 'B' });
      await rejectsWith(verifyRequest(parts.join('.'), verifyOpts()), 'envelope.signature-invalid');
    });

    void test('rejects a token signed by another key under the trusted kid', async () => {
      await rejectsWith(verifyRequest(signRaw(requestHeader(), requestClaims(), raw.attackerSig), verifyOpts()), 'envelope.signature-invalid');
    });

    void test('rejects a DER-encoded ECDSA signature (ES256 is the 64-byte R||S form)', async () => {
      const input = `${b64u(requestHeader())}.${b64u(requestClaims())}`;
      const der = sign('sha256', Buffer.from(input), { key: keyObject(raw.dkSig), dsaEncoding: 'der' });
      await rejectsWith(verifyRequest(`${input}.${der.toString('base64url')}`, verifyOpts()), 'envelope.signature-invalid');
    });
  });

  void describe('checkClaimsShape', () => {
    void test('rejects claims outside the profile', async () => {
      const cases: Record<string, unknown>[] = [
        requestClaims({ jti: 'short' }),
        requestClaims({ jti: 'x'.repeat(129) }),
        requestClaims({ iat: T + 0.5 }),
        requestClaims({ exp: String(T + 120) }),
        requestClaims({ aud: ['ES'] }),
        requestClaims({ exp: T - 1 }),
      ];
      for (const claims of cases) {
        await rejectsWith(verifyRequest(signRaw(requestHeader(), claims), verifyOpts()), 'envelope.malformed');
      }
      const { iss: _iss, ...noIss } = requestClaims();
      await rejectsWith(verifyRequest(signRaw(requestHeader(), noIss), verifyOpts()), 'envelope.malformed');
    });

    void test('rejects a payload that is not a JSON object', async () => {
      const input = `${b64u(requestHeader())}.${b64u('[1,2]')}`;
      const signature = sign('sha256', Buffer.from(input), { key: keyObject(raw.dkSig), dsaEncoding: 'ieee-p1363' });
      await rejectsWith(verifyRequest(`${input}.${signature.toString('base64url')}`, verifyOpts()), 'envelope.malformed');
    });
  });

  void describe('checkIssuer', () => {
    void test('rejects iss of another country than the TLS-authenticated one', async () => {
      const jws = await signRequest({}, { key: dkSig, iss: 'ES', aud: 'ES', now: NOW });
      await rejectsWith(verifyRequest(jws, verifyOpts()), 'peer.country-mismatch');
    });
  });

  void describe('checkAudience', () => {
    void test('rejects a request addressed to a third country', async () => {
      const jws = await signRequest({}, { key: dkSig, iss: 'DK', aud: 'FR', now: NOW });
      await rejectsWith(verifyRequest(jws, verifyOpts()), 'envelope.wrong-audience');
    });
  });

  void describe('checkNotExpired', () => {
    void test('rejects an expired request', async () => {
      const jws = await signRequest({}, { key: dkSig, iss: 'DK', aud: 'ES', now: new Date(NOW.getTime() - 10 * 60_000) });
      await rejectsWith(verifyRequest(jws, verifyOpts()), 'envelope.expired');
    });

    void test('tolerates the clock skew and no more', async () => {
      await verifyRequest(signRaw(requestHeader(), requestClaims({ iat: T - 100, exp: T - 59 })), verifyOpts());
      await rejectsWith(verifyRequest(signRaw(requestHeader(), requestClaims({ iat: T - 100, exp: T - 60 })), verifyOpts()), 'envelope.expired');
    });

    void test('rejects iat in the future beyond the skew', async () => {
      const jws = await signRequest({}, { key: dkSig, iss: 'DK', aud: 'ES', now: new Date(NOW.getTime() + 5 * 60_000) });
      await rejectsWith(verifyRequest(jws, verifyOpts()), 'envelope.expired');
    });

    void test('rejects nbf in the future beyond the skew', async () => {
      await rejectsWith(verifyRequest(signRaw(requestHeader(), requestClaims({ nbf: T + 90 })), verifyOpts()), 'envelope.expired');
    });
  });

  void describe('checkLifetime', () => {
    void test('rejects exp - iat over 5 minutes', async () => {
      await verifyRequest(signRaw(requestHeader(), requestClaims({ exp: T + 300 })), verifyOpts());
      await rejectsWith(verifyRequest(signRaw(requestHeader(), requestClaims({ exp: T + 301 })), verifyOpts()), 'envelope.lifetime-too-long');
    });
  });

  void describe('checkNotReplayed', () => {
    void test('accepts a jti once and rejects the same request the second time', async () => {
      const replay = new MemoryReplayStore({ now: () => NOW });
      const jws = await signRequest({}, { key: dkSig, iss: 'DK', aud: 'ES', now: NOW });
      await verifyRequest(jws, verifyOpts({ replay }));
      await rejectsWith(verifyRequest(jws, verifyOpts({ replay })), 'envelope.replayed');
    });

    void test('rejects a re-signed request that reuses a jti', async () => {
      const replay = new MemoryReplayStore({ now: () => NOW });
      const jti = randomUUID();
      await verifyRequest(signRaw(requestHeader(), requestClaims({ jti })), verifyOpts({ replay }));
      await rejectsWith(verifyRequest(signRaw(requestHeader(), requestClaims({ jti, op: 'other' })), verifyOpts({ replay })), 'envelope.replayed');
    });

    void test('does not spend a jti on a request that fails an earlier check', async () => {
      const replay = new MemoryReplayStore({ now: () => NOW });
      const jti = randomUUID();
      await rejectsWith(verifyRequest(signRaw(requestHeader(), requestClaims({ jti, aud: 'FR' })), verifyOpts({ replay })), 'envelope.wrong-audience');
      assert.equal(replay.size, 0);
    });
  });
});

void describe('sealed response (JWE(JWS))', () => {
  void test('round trip to an EC recipient: ECDH-ES+A256KW, A256GCM, no zip', async () => {
    const payload = { resourceType: 'Bundle', type: 'document', entry: [{ fullUrl: 'urn:uuid:1' }] };
    const jwe = await sealResponse(payload, { signingKey: esSig, recipientKey: dkEnc.publicJwk, now: NOW });
    const header = decodePart(jwe, 0);
    assert.equal(header['alg'], 'ECDH-ES+A256KW');
    assert.equal(header['enc'], 'A256GCM');
    assert.equal(header['kid'], 'dk-enc');
    assert.equal(header['cty'], 'JWT');
    assert.equal('zip' in header, false);
    assert.deepEqual(await openResponse(jwe, openOpts()), payload);
  });

  void test('round trip to an RSA recipient: RSA-OAEP-256', async () => {
    const jwe = await sealResponse(['any', 'json', 1], { signingKey: esSig, recipientKey: dkEncRsa.publicJwk, now: NOW });
    assert.equal(decodePart(jwe, 0)['alg'], 'RSA-OAEP-256');
    assert.equal('epk' in decodePart(jwe, 0), false);
    assert.deepEqual(await openResponse(jwe, openOpts()), ['any', 'json', 1]);
  });

  void test('the inner JWS is ES256 with typ ncpeh-response+jwt, signed by the provider', async () => {
    const jwe = await sealResponse({ a: 1 }, { signingKey: esSig, recipientKey: dkEnc.publicJwk, now: NOW });
    const { plaintext } = await jose.JWE.createDecrypt(await jose.JWK.asKey(dkEnc.privateKey.export({ format: 'jwk' }))).decrypt(jwe);
    const inner = plaintext.toString('utf8');
    assert.deepEqual(decodePart(inner, 0), { alg: 'ES256', kid: 'es-sig', typ: RESPONSE_TYP });
    assert.deepEqual(decodePart(inner, 1), { iat: T, payload: { a: 1 } });
  });

  void test('every sealed response uses a fresh ephemeral key', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 5; i++) {
      const jwe = await sealResponse({ i }, { signingKey: esSig, recipientKey: dkEnc.publicJwk, now: NOW });
      seen.add(JSON.stringify(decodePart(jwe, 0)['epk']));
    }
    assert.equal(seen.size, 5);
  });

  void test('sealResponse refuses a recipient key that is symmetric, for signing, or too small', async () => {
    const cases: unknown[] = [
      { kty: 'oct', k: 'AAAA', kid: 'x', use: 'enc' },
      dkSig.publicJwk,
      { ...createPublicKey({ key: rsaJwk('small', 1024), format: 'jwk' }).export({ format: 'jwk' }), kid: 'small', use: 'enc' },
      { ...dkEnc.publicJwk, use: undefined },
    ];
    for (const recipientKey of cases) {
      await rejectsWith(sealResponse({}, { signingKey: esSig, recipientKey, now: NOW }), 'trust-list.invalid');
    }
  });

  void describe('checkCompactJweShape', () => {
    void test('rejects a token that is not five base64url parts, or a bad IV/tag length', async () => {
      const jwe = await sealResponse({}, { signingKey: esSig, recipientKey: dkEnc.publicJwk, now: NOW });
      const parts = jwe.split('.');
      await rejectsWith(openResponse(parts.slice(0, 4).join('.'), openOpts()), 'envelope.malformed');
      await rejectsWith(openResponse([...parts.slice(0, 2), b64u('short-iv'), ...parts.slice(3)].join('.'), openOpts()), 'envelope.malformed');
      await rejectsWith(openResponse([...parts.slice(0, 4), b64u('short')].join('.'), openOpts()), 'envelope.malformed');
      await rejectsWith(openResponse(jwe, openOpts({ maxChars: 100 })), 'envelope.malformed');
    });
  });

  void describe('checkJweHeaderAllowlist (before any decryption)', () => {
    void test('rejects RSA1_5, dir, PBES2, bare AES key wrap and ECDH-ES direct', async () => {
      const jwe = await sealResponse({}, { signingKey: esSig, recipientKey: dkEnc.publicJwk, now: NOW });
      for (const alg of ['RSA1_5', 'dir', 'PBES2-HS256+A128KW', 'PBES2-HS512+A256KW', 'A256KW', 'A128GCMKW', 'ECDH-ES', 'RSA-OAEP', 'none']) {
        await rejectsWith(openResponse(withHeader(jwe, (h) => (h['alg'] = alg)), openOpts()), 'envelope.algorithm-forbidden');
      }
    });

    void test('rejects a dir-style JWE with an empty encrypted key', async () => {
      const parts = (await sealResponse({}, { signingKey: esSig, recipientKey: dkEnc.publicJwk, now: NOW })).split('.');
      parts[1] = '';
      await rejectsWith(openResponse(parts.join('.'), openOpts()), 'envelope.algorithm-forbidden');
    });

    void test('rejects content encryption other than A256GCM', async () => {
      const jwe = await sealResponse({}, { signingKey: esSig, recipientKey: dkEnc.publicJwk, now: NOW });
      for (const enc of ['A128GCM', 'A256CBC-HS512', 'A128CBC-HS256']) {
        await rejectsWith(openResponse(withHeader(jwe, (h) => (h['enc'] = enc)), openOpts()), 'envelope.algorithm-forbidden');
      }
    });

    void test('rejects zip on the JWE (a genuinely compressed one, and a header edit)', async () => {
      const compressed = await encryptRaw('x'.repeat(100), dkEnc.publicJwk, { zip: true });
      assert.equal(decodePart(compressed, 0)['zip'], 'DEF');
      await rejectsWith(openResponse(compressed, openOpts()), 'envelope.algorithm-forbidden');
      const jwe = await sealResponse({}, { signingKey: esSig, recipientKey: dkEnc.publicJwk, now: NOW });
      await rejectsWith(openResponse(withHeader(jwe, (h) => (h['zip'] = 'DEF')), openOpts()), 'envelope.algorithm-forbidden');
    });

    void test('rejects jku, jwk, x5u, x5c, crit and unknown members on the JWE', async () => {
      const jwe = await sealResponse({}, { signingKey: esSig, recipientKey: dkEnc.publicJwk, now: NOW });
      const extras: Record<string, unknown> = {
        jku: 'https://attacker.example/jwks.json',
        jwk: attackerEnc.publicJwk,
        x5u: 'https://attacker.example/cert.pem',
        x5c: ['MIIB'],
        crit: ['exp'],
        p2c: 10_000_000,
        apu: 'AAAA',
      };
      for (const [name, value] of Object.entries(extras)) {
        await rejectsWith(openResponse(withHeader(jwe, (h) => (h[name] = value)), openOpts()), 'envelope.algorithm-forbidden');
      }
    });
  });

  void describe('checkEphemeralKey', () => {
    const epkOf = (jwe: string): Record<string, unknown> => {
      const epk = decodePart(jwe, 0)['epk'];
      assert.ok(typeof epk === 'object' && epk !== null);
      return { ...epk };
    };

    void test('rejects an epk carrying a private member d', async () => {
      const jwe = await sealResponse({}, { signingKey: esSig, recipientKey: dkEnc.publicJwk, now: NOW });
      const d = ecJwk('x').d;
      await rejectsWith(openResponse(withHeader(jwe, (h) => (h['epk'] = { ...epkOf(jwe), d })), openOpts()), 'envelope.algorithm-forbidden');
    });

    void test('rejects an epk on another curve', async () => {
      const jwe = await sealResponse({}, { signingKey: esSig, recipientKey: dkEnc.publicJwk, now: NOW });
      const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ format: 'jwk' });
      await rejectsWith(openResponse(withHeader(jwe, (h) => (h['epk'] = p384)), openOpts()), 'envelope.algorithm-forbidden');
      const x25519 = generateKeyPairSync('x25519').publicKey.export({ format: 'jwk' });
      await rejectsWith(openResponse(withHeader(jwe, (h) => (h['epk'] = x25519)), openOpts()), 'envelope.algorithm-forbidden');
    });

    void test('rejects an epk that is not a point on P-256 (invalid-curve attack)', async () => {
      const jwe = await sealResponse({}, { signingKey: esSig, recipientKey: dkEnc.publicJwk, now: NOW });
      const epk = epkOf(jwe);
      const offCurve = { ...epk, y: Buffer.alloc(32, 7).toString('base64url') };
      await rejectsWith(openResponse(withHeader(jwe, (h) => (h['epk'] = offCurve)), openOpts()), 'envelope.algorithm-forbidden');
    });

    void test('rejects ECDH-ES without epk, and an epk next to RSA-OAEP-256', async () => {
      const ec = await sealResponse({}, { signingKey: esSig, recipientKey: dkEnc.publicJwk, now: NOW });
      await rejectsWith(openResponse(withHeader(ec, (h) => delete h['epk']), openOpts()), 'envelope.algorithm-forbidden');
      const rsa = await sealResponse({}, { signingKey: esSig, recipientKey: dkEncRsa.publicJwk, now: NOW });
      await rejectsWith(openResponse(withHeader(rsa, (h) => (h['epk'] = epkOf(ec))), openOpts()), 'envelope.algorithm-forbidden');
    });
  });

  void describe('checkRecipientKid', () => {
    void test('rejects a JWE encrypted for another recipient kid', async () => {
      const jwe = await sealResponse({}, { signingKey: esSig, recipientKey: attackerEnc.publicJwk, now: NOW });
      await rejectsWith(openResponse(jwe, openOpts()), 'envelope.unknown-key');
    });

    void test('rejects a kid of ours used with the algorithm of another key', async () => {
      const jwe = await sealResponse({}, { signingKey: esSig, recipientKey: dkEnc.publicJwk, now: NOW });
      await rejectsWith(openResponse(withHeader(jwe, (h) => (h['kid'] = 'dk-enc-rsa')), openOpts()), 'envelope.unknown-key');
    });

    void test('decrypts with whichever of our current keys the kid names (rotation)', async () => {
      const next = await loadPrivateJwk(ecJwk('dk-enc-2'), 'enc');
      const jwe = await sealResponse({ r: 2 }, { signingKey: esSig, recipientKey: next.publicJwk, now: NOW });
      assert.deepEqual(await openResponse(jwe, openOpts({ decryptionKeys: [dkEnc, next] })), { r: 2 });
    });
  });

  void describe('checkDecrypts', () => {
    for (const [name, index] of [
      ['encrypted key', 1],
      ['IV', 2],
      ['ciphertext', 3],
      ['tag', 4],
    ] as const) {
      void test(`rejects a tampered ${name} (EC recipient)`, async () => {
        const jwe = await sealResponse({ secret: 'health data' }, { signingKey: esSig, recipientKey: dkEnc.publicJwk, now: NOW });
        await rejectsWith(openResponse(flipBit(jwe, index), openOpts()), 'envelope.decryption-failed');
      });
    }

    void test('rejects a tampered ciphertext and encrypted key (RSA recipient)', async () => {
      const jwe = await sealResponse({ secret: 'health data' }, { signingKey: esSig, recipientKey: dkEncRsa.publicJwk, now: NOW });
      await rejectsWith(openResponse(flipBit(jwe, 3), openOpts()), 'envelope.decryption-failed');
      await rejectsWith(openResponse(flipBit(jwe, 1), openOpts()), 'envelope.decryption-failed');
    });

    void test('rejects an edited protected header (it is the additional authenticated data)', async () => {
      const jwe = await sealResponse({}, { signingKey: esSig, recipientKey: dkEnc.publicJwk, now: NOW });
      await rejectsWith(openResponse(withHeader(jwe, (h) => (h['cty'] = 'jwt')), openOpts()), 'envelope.decryption-failed');
      // Same members, other order: the exact header bytes are authenticated, not their meaning.
      const parts = jwe.split('.');
      const reordered = Object.fromEntries(Object.entries(decodePart(jwe, 0)).reverse());
      parts[0] = b64u(reordered);
      await rejectsWith(openResponse(parts.join('.'), openOpts()), 'envelope.decryption-failed');
    });
  });

  void describe('inner JWS', () => {
    void test('rejects a response signed by a different country than the one asked', async () => {
      const jwe = await sealResponse({}, { signingKey: frSig, recipientKey: dkEnc.publicJwk, now: NOW });
      await rejectsWith(openResponse(jwe, openOpts()), 'envelope.unknown-key');
    });

    void test('rejects a response signed by another key under the asked country kid', async () => {
      const impostor = await loadPrivateJwk({ ...raw.attackerSig, kid: 'es-sig' }, 'sig');
      const jwe = await sealResponse({}, { signingKey: impostor, recipientKey: dkEnc.publicJwk, now: NOW });
      await rejectsWith(openResponse(jwe, openOpts()), 'envelope.signature-invalid');
    });

    void test('rejects a request JWS wrapped as a response (explicit typing)', async () => {
      const request = await signRequest({}, { key: esSig, iss: 'ES', aud: 'DK', now: NOW });
      await rejectsWith(openResponse(await encryptRaw(request, dkEnc.publicJwk), openOpts()), 'envelope.malformed');
    });

    void test('applies the JWS header allowlist to the inner token', async () => {
      const hs = `${b64u({ alg: 'HS256', kid: 'es-sig', typ: RESPONSE_TYP })}.${b64u({ iat: T, payload: {} })}`;
      const mac = createHmac('sha256', JSON.stringify(esSig.publicJwk)).update(hs).digest('base64url');
      await rejectsWith(openResponse(await encryptRaw(`${hs}.${mac}`, dkEnc.publicJwk), openOpts()), 'envelope.algorithm-forbidden');
      const embedded = signRaw({ alg: 'ES256', kid: 'es-sig', typ: RESPONSE_TYP, jwk: esSig.publicJwk }, { iat: T, payload: {} }, raw.esSig);
      await rejectsWith(openResponse(await encryptRaw(embedded, dkEnc.publicJwk), openOpts()), 'envelope.algorithm-forbidden');
    });

    void test('rejects a plaintext that is not a compact JWS', async () => {
      await rejectsWith(openResponse(await encryptRaw('{"payload":{}}', dkEnc.publicJwk), openOpts()), 'envelope.malformed');
    });

    void test('rejects inner claims without payload', async () => {
      const inner = signRaw({ alg: 'ES256', kid: 'es-sig', typ: RESPONSE_TYP }, { iat: T }, raw.esSig);
      await rejectsWith(openResponse(await encryptRaw(inner, dkEnc.publicJwk), openOpts()), 'envelope.malformed');
    });

    void test('rejects a stale response and one signed in the future', async () => {
      const old = await sealResponse({}, { signingKey: esSig, recipientKey: dkEnc.publicJwk, now: new Date(NOW.getTime() - 10 * 60_000) });
      await rejectsWith(openResponse(old, openOpts()), 'envelope.expired');
      const future = await sealResponse({}, { signingKey: esSig, recipientKey: dkEnc.publicJwk, now: new Date(NOW.getTime() + 5 * 60_000) });
      await rejectsWith(openResponse(future, openOpts()), 'envelope.expired');
    });
  });
});

void describe('replay stores', () => {
  void test('MemoryReplayStore: first true, then false until expiry, scopes independent', async () => {
    let now = NOW;
    const store = new MemoryReplayStore({ now: () => now });
    const expires = new Date(NOW.getTime() + 60_000);
    assert.equal(await store.remember('peer-request:DK', 'j1', expires), true);
    assert.equal(await store.remember('peer-request:DK', 'j1', expires), false);
    assert.equal(await store.remember('peer-request:FR', 'j1', expires), true);
    now = new Date(NOW.getTime() + 120_000);
    assert.equal(await store.purgeExpired(), 2);
    assert.equal(await store.remember('peer-request:DK', 'j1', new Date(now.getTime() + 60_000)), true);
  });

  void test('MemoryReplayStore: when full of live entries it refuses new ones instead of evicting', async () => {
    let now = NOW;
    const store = new MemoryReplayStore({ maxEntries: 2, now: () => now });
    const expires = new Date(NOW.getTime() + 60_000);
    await store.remember('s', 'a', expires);
    await store.remember('s', 'b', expires);
    await rejectsWith(store.remember('s', 'c', expires), 'service.unavailable');
    assert.equal(await store.remember('s', 'a', expires), false);
    now = new Date(NOW.getTime() + 120_000);
    assert.equal(await store.remember('s', 'c', new Date(now.getTime() + 60_000)), true);
    assert.equal(store.size, 1);
  });

  void describe('DbReplayStore (replay_cache table)', () => {
    const opened = openTestDb();
    after(async () => (await opened).close());

    void test('remembers a jti once per scope and purges expired rows', async () => {
      const db = await opened;
      let now = NOW;
      const store = new DbReplayStore(db, { now: () => now });
      const expires = new Date(NOW.getTime() + 60_000);
      const [first, second] = await Promise.all([store.remember('peer-request:DK', 'j1', expires), store.remember('peer-request:DK', 'j1', expires)]);
      assert.deepEqual([first, second].sort(), [false, true]);
      assert.equal(await store.remember('peer-request:DK', 'j1', expires), false);
      assert.equal(await store.remember('peer-request:FR', 'j1', expires), true);
      assert.equal(await store.remember('peer-request:DK', 'j2', new Date(NOW.getTime() + 600_000)), true);
      assert.equal(await store.purgeExpired(), 0);
      now = new Date(NOW.getTime() + 120_000);
      assert.equal(await store.purgeExpired(), 2);
      assert.equal(await store.remember('peer-request:DK', 'j2', expires), false);
    });

    void test('through the whole pipeline: the second verify of a request is refused', async () => {
      const replay = new DbReplayStore(await opened);
      const jws = await signRequest({}, { key: dkSig, iss: 'DK', aud: 'ES', now: NOW });
      await verifyRequest(jws, verifyOpts({ replay }));
      await rejectsWith(verifyRequest(jws, verifyOpts({ replay })), 'envelope.replayed');
    });
  });
});

describe('strict base64url (decodeBase64url)', () => {
  // The rule, written the plain way: only the URL-safe alphabet, no 4n+1 length, zero unused bits.
  const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  function byTheRule(text: string): Buffer | undefined {
    if (!/^[A-Za-z0-9_-]*$/.test(text)) return undefined;
    const rest = text.length % 4;
    if (rest === 1) return undefined;
    if (rest !== 0 && (ALPHABET.indexOf(text.charAt(text.length - 1)) & (rest === 2 ? 0x0f : 0x03)) !== 0) return undefined;
    return Buffer.from(text, 'base64url');
  }
  const OUTSIDE = ['+', '/', '=', ' ', '\n', '\t', '\r', '.', '!', '%', '\0', 'é', '\u00ad', '\u0100', '\ud800', '\uffff'];

  test('accepts and refuses exactly what the rule does, on 50,000 random texts with stray characters', () => {
    for (let i = 0; i < 50_000; i++) {
      const mode = randomInt(4);
      let text = mode === 0 ? randomBytes(randomInt(0, 40)).toString('base64url') : Array.from({ length: randomInt(0, 24) }, () => ALPHABET[randomInt(64)]).join('');
      if (mode >= 2) {
        for (let k = randomInt(1, 4); k > 0; k--) {
          const at = randomInt(text.length + 1);
          text = `${text.slice(0, at)}${OUTSIDE[randomInt(OUTSIDE.length)] ?? ''}${text.slice(at)}`;
        }
      }
      if (mode === 3 && randomInt(2) === 0) text += '='.repeat(randomInt(1, 3));
      const got = decodeBase64url(text);
      const want = byTheRule(text);
      assert.equal(got === undefined, want === undefined, `accept/refuse differs for ${JSON.stringify(text)}`);
      if (got !== undefined && want !== undefined) assert.ok(got.equals(want), `bytes differ for ${JSON.stringify(text)}`);
    }
  });

  test('refuses the standard alphabet, padding, whitespace and non-canonical last characters', () => {
    for (const text of ['ab+c', 'ab/c', 'QQ==', 'QQ', 'QR', 'ab c', 'ab\nc', 'abcde', 'QUJD=', 'QUI']) {
      const want = byTheRule(text);
      assert.equal(decodeBase64url(text) === undefined, want === undefined, text);
    }
    assert.equal(decodeBase64url('QR'), undefined, 'unused bits set');
    assert.equal(decodeBase64url('QUJ'), undefined, 'unused bits set');
    assert.deepEqual(decodeBase64url('QUI'), Buffer.from('AB'));
    assert.deepEqual(decodeBase64url(''), Buffer.alloc(0));
  });
});
