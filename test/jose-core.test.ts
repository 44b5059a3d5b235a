/**
 * The cryptography under the envelope (src/crossborder/jose-core.ts): published test vectors for
 * the building blocks, and interoperability with node-jose, an independent JOSE implementation, in
 * both directions for every algorithm of our profile.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync } from 'node:crypto';
import { describe, test } from 'node:test';
import jose from 'node-jose';
import { aesKeyUnwrap, aesKeyWrap, concatKdf, decryptCompact, DecryptionFailed, encryptCompact, signCompactEs256, verifyEs256, type JweParts } from '../src/crossborder/jose-core.js';

function parts(token: string): JweParts {
  const [protectedHeader = '', key = '', iv = '', ciphertext = '', tag = ''] = token.split('.');
  const d = (s: string): Buffer => Buffer.from(s, 'base64url');
  return { protectedHeader, encryptedKey: d(key), iv: d(iv), ciphertext: d(ciphertext), tag: d(tag) };
}

void describe('building blocks against published vectors', () => {
  void test('Concat KDF: RFC 7518 appendix C (ECDH-ES, A128GCM, apu Alice, apv Bob)', () => {
    const alice = createPrivateKey({
      key: { kty: 'EC', crv: 'P-256', x: 'gI0GAILBdu7T53akrFmMyGcsF3n5dO7MmwNBHKW5SV0', y: 'SLW_xSffzlPWrHEVI30DHM_4egVwt3NQqeUD7nMFpps', d: '0_NxaRPUMQoAJt50Gz8YiTr8gRTwyEaCumd-MToTmIo' },
      format: 'jwk',
    });
    const bob = createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: 'weNJy2HscCSM6AEDTDg04biOvhFhyyWvOHQfeF_PxMQ', y: 'e8lnCO-AlStT-NJVX-crhB7QRYhiix03illJOVAOyck' }, format: 'jwk' });
    const z = diffieHellman({ privateKey: alice, publicKey: bob });
    const key = concatKdf(z, 'A128GCM', 128, Buffer.from('Alice'), Buffer.from('Bob'));
    assert.equal(key.toString('base64url'), 'VqqN6vgjbSBcIijNcacQGg');
  });

  void test('AES key wrap: RFC 3394 section 4.6 (256-bit data with a 256-bit KEK), and a tampered wrap fails', () => {
    const kek = Buffer.from('000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F', 'hex');
    const data = Buffer.from('00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F', 'hex');
    const wrapped = aesKeyWrap(kek, data);
    assert.equal(wrapped.toString('hex').toUpperCase(), '28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21');
    assert.deepEqual(aesKeyUnwrap(kek, wrapped), data);
    const tampered = Buffer.from(wrapped);
    tampered[5] = (tampered[5] ?? 0) ^ 1;
    assert.throws(() => aesKeyUnwrap(kek, tampered));
  });
});

void describe('interoperability with node-jose', () => {
  const sig = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const plaintext = JSON.stringify({ resourceType: 'Bundle', text: 'ÆØÅ ñ 漢字', n: [1, 2, 3] });

  void test('ES256: node-jose verifies our JWS, and we verify node-jose\'s', async () => {
    const ours = signCompactEs256(sig.privateKey, { alg: 'ES256', kid: 's1', typ: 'x+jwt' }, plaintext);
    const publicJose = await jose.JWK.asKey({ ...sig.publicKey.export({ format: 'jwk' }), kid: 's1', use: 'sig', alg: 'ES256' });
    const verified = await jose.JWS.createVerify(publicJose, { algorithms: ['ES256'] }).verify(ours);
    assert.equal(verified.payload.toString('utf8'), plaintext);

    const privateJose = await jose.JWK.asKey({ ...sig.privateKey.export({ format: 'jwk' }), kid: 's1', use: 'sig', alg: 'ES256' });
    const signed: unknown = await jose.JWS.createSign({ format: 'compact', fields: { alg: 'ES256', kid: 's1' } }, privateJose).update(plaintext, 'utf8').final();
    assert.equal(typeof signed, 'string');
    const theirs = signed as string;
    const [h = '', p = '', s = ''] = theirs.split('.');
    assert.equal(verifyEs256(sig.publicKey, `${h}.${p}`, Buffer.from(s, 'base64url')), true);
    assert.equal(verifyEs256(sig.publicKey, `${h}.${p}x`, Buffer.from(s, 'base64url')), false);
    assert.equal(verifyEs256(ec.publicKey, `${h}.${p}`, Buffer.from(s, 'base64url')), false, 'another key');
    assert.equal(verifyEs256(sig.publicKey, `${h}.${p}`, Buffer.from(s, 'base64url').subarray(0, 63)), false, 'short signature');
  });

  for (const [alg, pair] of [
    ['ECDH-ES+A256KW', ec],
    ['RSA-OAEP-256', rsa],
  ] as const) {
    void test(`${alg} + A256GCM: node-jose decrypts ours, we decrypt node-jose's`, async () => {
      const ours = encryptCompact({ alg, kid: 'e1', publicKey: pair.publicKey }, plaintext, { cty: 'JWT' });
      const privateJose = await jose.JWK.asKey({ ...pair.privateKey.export({ format: 'jwk' }), kid: 'e1', use: 'enc', alg });
      const opened = await jose.JWE.createDecrypt(privateJose, { algorithms: [alg, 'A256GCM'] }).decrypt(ours);
      assert.equal(opened.plaintext.toString('utf8'), plaintext);
      assert.equal((opened.header as Record<string, unknown>)['cty'], 'JWT');

      const publicJose = await jose.JWK.asKey({ ...pair.publicKey.export({ format: 'jwk' }), kid: 'e1', use: 'enc', alg });
      const theirs = String(await jose.JWE.createEncrypt({ format: 'compact', contentAlg: 'A256GCM' }, publicJose).update(Buffer.from(plaintext)).final());
      const p = parts(theirs);
      const header = JSON.parse(Buffer.from(p.protectedHeader, 'base64url').toString('utf8')) as { epk?: object };
      const agreement =
        alg === 'ECDH-ES+A256KW'
          ? { alg, privateKey: pair.privateKey, epk: createPublicKey({ key: header.epk as never, format: 'jwk' }) }
          : { alg, privateKey: pair.privateKey };
      assert.equal(decryptCompact(p, agreement).toString('utf8'), plaintext);
    });
  }

  void test('every failure is the same DecryptionFailed: wrong key, tampered key, IV, ciphertext, tag or header', () => {
    const token = encryptCompact({ alg: 'ECDH-ES+A256KW', kid: 'e1', publicKey: ec.publicKey }, plaintext);
    const p = parts(token);
    const header = JSON.parse(Buffer.from(p.protectedHeader, 'base64url').toString('utf8')) as { epk: object };
    const epk = createPublicKey({ key: header.epk as never, format: 'jwk' });
    const ok = { alg: 'ECDH-ES+A256KW', privateKey: ec.privateKey, epk } as const;
    assert.equal(decryptCompact(p, ok).toString('utf8'), plaintext);
    const flip = (b: Buffer): Buffer => {
      const c = Buffer.from(b);
      c[0] = (c[0] ?? 0) ^ 1;
      return c;
    };
    const cases: JweParts[] = [
      { ...p, encryptedKey: flip(p.encryptedKey) },
      { ...p, iv: flip(p.iv) },
      { ...p, ciphertext: flip(p.ciphertext) },
      { ...p, tag: flip(p.tag) },
      { ...p, tag: p.tag.subarray(0, 12) },
      { ...p, protectedHeader: `${p.protectedHeader}A` },
    ];
    for (const bad of cases) assert.throws(() => decryptCompact(bad, ok), DecryptionFailed);
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    assert.throws(() => decryptCompact(p, { ...ok, privateKey: other.privateKey }), DecryptionFailed);
    const rsaToken = parts(encryptCompact({ alg: 'RSA-OAEP-256', kid: 'r', publicKey: rsa.publicKey }, plaintext));
    assert.throws(() => decryptCompact({ ...rsaToken, encryptedKey: flip(rsaToken.encryptedKey) }, { alg: 'RSA-OAEP-256', privateKey: rsa.privateKey }), DecryptionFailed);
  });
});
