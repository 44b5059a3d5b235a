/**
 * Step 1, the floor: what one cross-border fetch's cryptography costs done directly with node:crypto
 * and nothing else. The compact forms are byte-compatible with our envelope (checked below in both
 * directions), so the floor does the same work, not a shortcut:
 *   B signs the request (ES256); A verifies it;
 *   A signs the IPS (JWS ES256) and encrypts it (JWE ECDH-ES+A256KW / A256GCM: ephemeral P-256 key,
 *     ECDH, Concat KDF (RFC 7518 section 4.6.2), AES key wrap (RFC 3394), AES-256-GCM);
 *   B decrypts and verifies; plus JSON serialise/parse of the IPS on their own.
 */
import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, createHash, createPublicKey, diffieHellman, generateKeyPairSync, randomBytes, randomUUID, sign, verify, type KeyObject } from 'node:crypto';
import type { Bundle } from '@medplum/fhirtypes';
import { openResponse, sealResponse } from '../src/crossborder/envelope.js';
import type { BenchKeys } from './crypto-keys.js';
import { micro, round, type MicroResult } from './lib.js';

const b64u = (b: Buffer | string): string => Buffer.from(b).toString('base64url');
const AES_KW_IV = Buffer.from('A6A6A6A6A6A6A6A6', 'hex');

export function jwsSign(key: KeyObject, kid: string, typ: string, claims: unknown): string {
  const input = `${b64u(JSON.stringify({ alg: 'ES256', kid, typ }))}.${b64u(JSON.stringify(claims))}`;
  return `${input}.${b64u(sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }))}`;
}

export function jwsVerify(key: KeyObject, token: string): unknown {
  const [h = '', p = '', s = ''] = token.split('.');
  const ok = verify('sha256', Buffer.from(`${h}.${p}`), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(s, 'base64url'));
  if (!ok) throw new Error('signature invalid');
  return JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
}

/** RFC 7518 section 4.6.2: one SHA-256 round of Concat KDF gives the 256-bit key-wrapping key. */
function concatKdf(z: Buffer, alg: string): Buffer {
  const u32 = (n: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  const algId = Buffer.from(alg);
  return createHash('sha256')
    .update(Buffer.concat([u32(1), z, u32(algId.length), algId, u32(0), u32(0), u32(256)]))
    .digest();
}

export function jweEncrypt(recipient: KeyObject, kid: string, plaintext: string): string {
  const eph = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const kek = concatKdf(diffieHellman({ privateKey: eph.privateKey, publicKey: recipient }), 'ECDH-ES+A256KW');
  const cek = randomBytes(32);
  const kw = createCipheriv('id-aes256-wrap', kek, AES_KW_IV);
  const wrapped = Buffer.concat([kw.update(cek), kw.final()]);
  const { kty, crv, x, y } = eph.publicKey.export({ format: 'jwk' });
  const header = b64u(JSON.stringify({ alg: 'ECDH-ES+A256KW', kid, epk: { kty, crv, x, y }, enc: 'A256GCM', cty: 'JWT' }));
  const iv = randomBytes(12);
  const gcm = createCipheriv('aes-256-gcm', cek, iv);
  gcm.setAAD(Buffer.from(header, 'ascii'));
  const ciphertext = Buffer.concat([gcm.update(plaintext, 'utf8'), gcm.final()]);
  return `${header}.${b64u(wrapped)}.${b64u(iv)}.${b64u(ciphertext)}.${b64u(gcm.getAuthTag())}`;
}

export function jweDecrypt(ours: KeyObject, token: string): string {
  const [h = '', k = '', iv = '', c = '', t = ''] = token.split('.');
  const header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as { epk: { kty: string; crv: string; x: string; y: string } };
  const epk = createPublicKey({ key: header.epk, format: 'jwk' });
  const kek = concatKdf(diffieHellman({ privateKey: ours, publicKey: epk }), 'ECDH-ES+A256KW');
  const unwrap = createDecipheriv('id-aes256-wrap', kek, AES_KW_IV);
  const cek = Buffer.concat([unwrap.update(Buffer.from(k, 'base64url')), unwrap.final()]);
  const gcm = createDecipheriv('aes-256-gcm', cek, Buffer.from(iv, 'base64url'));
  gcm.setAAD(Buffer.from(h, 'ascii'));
  gcm.setAuthTag(Buffer.from(t, 'base64url'));
  return Buffer.concat([gcm.update(Buffer.from(c, 'base64url')), gcm.final()]).toString('utf8');
}

/** A request as the peer client sends one: the HCP assertion (a JWT of about 1 KB) and the ref. */
export function requestClaims(): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return { op: 'patient-summary', ref: randomBytes(32).toString('base64url'), hcp: `eyJ${'x'.repeat(1000)}`, iss: 'urn:ncpeh:ncp:ES', aud: 'urn:ncpeh:ncp:DK', iat: now, exp: now + 120, jti: randomUUID() };
}

/** One whole fetch's crypto on the floor, both sides: for the paired floor/envelope comparison. */
export function floorFetch(keys: BenchKeys, ips: Bundle): () => unknown {
  const { dk, es } = keys;
  return () => {
    jwsVerify(es.raw.signPub, jwsSign(es.raw.signPriv, es.signing.kid, 'ncpeh-request+jwt', requestClaims()));
    const sealed = jweEncrypt(es.raw.encPub, es.encryption.kid, jwsSign(dk.raw.signPriv, dk.signing.kid, 'ncpeh-response+jwt', { iat: Math.floor(Date.now() / 1000), payload: { inResponseTo: 'x', result: ips } }));
    return jwsVerify(dk.raw.signPub, jweDecrypt(es.raw.encPriv, sealed));
  };
}

export interface FloorResult {
  readonly ops: MicroResult[];
  /** µs for one fetch: request sign + verify, seal, open. */
  readonly perFetchUs: number;
  readonly perFetchOpsPerSec: number;
  readonly perFetchWithoutRequestSignUs: number;
}

export async function runFloor(keys: BenchKeys, ips: Bundle, maxMs: number): Promise<FloorResult> {
  const { dk, es } = keys;
  const sealFloor = (): string => jweEncrypt(es.raw.encPub, es.encryption.kid, jwsSign(dk.raw.signPriv, dk.signing.kid, 'ncpeh-response+jwt', { iat: Math.floor(Date.now() / 1000), payload: ips }));
  const openFloor = (jwe: string): unknown => (jwsVerify(dk.raw.signPub, jweDecrypt(es.raw.encPriv, jwe)) as { payload: unknown }).payload;

  // Same bytes as the envelope, both ways: the floor is doing the envelope's job.
  const fromEnvelope = await sealResponse(ips, { signingKey: dk.signing, recipientKey: es.encryption.publicJwk });
  assert.deepEqual(openFloor(fromEnvelope), ips);
  const opened = await openResponse(sealFloor(), { decryptionKeys: [es.encryption], expectedSignerKeys: keys.publicSig(dk) });
  assert.deepEqual(opened, ips);

  const request = jwsSign(es.raw.signPriv, es.signing.kid, 'ncpeh-request+jwt', requestClaims());
  const sealed = sealFloor();
  const ipsText = JSON.stringify(ips);
  const ops: MicroResult[] = [];
  const run = async (name: string, fn: () => unknown): Promise<MicroResult> => {
    const r = await micro(name, fn, { maxMs });
    ops.push(r);
    return r;
  };
  const reqSign = await run('request JWS ES256 sign (B)', () => jwsSign(es.raw.signPriv, es.signing.kid, 'ncpeh-request+jwt', requestClaims()));
  const reqVerify = await run('request JWS ES256 verify (A)', () => jwsVerify(es.raw.signPub, request));
  const seal = await run('IPS JWS sign + JWE ECDH-ES+A256KW/A256GCM encrypt (A)', sealFloor);
  const open = await run('IPS JWE decrypt + JWS verify + JSON.parse (B)', () => openFloor(sealed));
  await run('  part: JSON.stringify(IPS)', () => JSON.stringify(ips));
  await run('  part: JSON.parse(IPS)', () => JSON.parse(ipsText));
  await run('  part: ES256 sign of the IPS JWS', () => jwsSign(dk.raw.signPriv, dk.signing.kid, 'ncpeh-response+jwt', { iat: 0, payload: ips }));
  await run('  part: ephemeral P-256 keygen', () => generateKeyPairSync('ec', { namedCurve: 'P-256' }));
  const signed = jwsSign(dk.raw.signPriv, dk.signing.kid, 'ncpeh-response+jwt', { iat: 0, payload: ips });
  await run('  part: JWE encrypt of the signed IPS', () => jweEncrypt(es.raw.encPub, es.encryption.kid, signed));
  const perFetchUs = reqSign.usPerOp + reqVerify.usPerOp + seal.usPerOp + open.usPerOp;
  return {
    ops,
    perFetchUs: round(perFetchUs),
    perFetchOpsPerSec: round(1e6 / perFetchUs),
    perFetchWithoutRequestSignUs: round(perFetchUs - reqSign.usPerOp),
  };
}
