/**
 * Step 2: the same fetch through our envelope module (src/crossborder/envelope.ts: the one-rule checks
 * over node:crypto, jose-core.ts), once per key-management choice for the consumer's encryption key,
 * and the ratio to the floor; and the JOSE libraries it could be built on, for the same work.
 */
import { randomUUID, type KeyObject } from 'node:crypto';
import type { Bundle } from '@medplum/fhirtypes';
import * as panva from 'jose';
import nodeJose from 'node-jose';
import { openResponse, sealResponse, signRequest, verifyRequest, type DecryptionKey } from '../src/crossborder/envelope.js';
import type { ReplayStore } from '../src/crossborder/replay-store.js';
import type { BenchKeys } from './crypto-keys.js';
import type { FloorResult } from './floor.js';
import { micro, round, type MicroResult } from './lib.js';

/** Every jti is new (the benchmark signs a fresh request each time); the cache is in memory. */
class MemoryReplay implements ReplayStore {
  readonly #seen = new Set<string>();
  async remember(scope: string, jti: string): Promise<boolean> {
    const k = `${scope} ${jti}`;
    if (this.#seen.has(k)) return false;
    this.#seen.add(k);
    return true;
  }
}

/** One whole fetch through the envelope, both sides: for the paired floor/envelope comparison. */
export function envelopeFetch(keys: BenchKeys, ips: Bundle, recipient: DecryptionKey): () => Promise<unknown> {
  const { dk, es } = keys;
  const replay = new MemoryReplay();
  return async () => {
    const request = await signRequest({ op: 'patient-summary', ref: 'A'.repeat(43), hcp: `eyJ${'x'.repeat(1000)}` }, { key: es.signing, iss: 'urn:ncpeh:ncp:ES', aud: 'urn:ncpeh:ncp:DK' });
    await verifyRequest(request, { trustedKeys: keys.publicSig(es), expectedIss: 'urn:ncpeh:ncp:ES', expectedAud: 'urn:ncpeh:ncp:DK', replay });
    const sealed = await sealResponse({ inResponseTo: 'x', result: ips }, { signingKey: dk.signing, recipientKey: recipient.publicJwk });
    return openResponse(sealed, { decryptionKeys: [recipient], expectedSignerKeys: keys.publicSig(dk) });
  };
}

/** micro()'s default warm-up: each pooled request may be verified once, warm-up included. */
const VERIFY_WARMUP = 20;

export interface EnvelopeVariant {
  readonly alg: DecryptionKey['alg'];
  readonly ops: MicroResult[];
  readonly perFetchUs: number;
  readonly perFetchCpuUs: number;
  readonly ratioToFloor: number;
  readonly jweChars: number;
}

export async function runEnvelope(keys: BenchKeys, ips: Bundle, floor: FloorResult, maxMs: number): Promise<EnvelopeVariant[]> {
  const { dk, es } = keys;
  const variants: EnvelopeVariant[] = [];
  for (const recipient of [es.encryption, es.rsaEncryption]) {
    const ops: MicroResult[] = [];
    const run = async (name: string, fn: () => unknown, max = 100_000): Promise<MicroResult> => {
      const r = await micro(name, fn, { maxMs, maxOps: max });
      ops.push(r);
      return r;
    };
    const sign = () => signRequest({ op: 'patient-summary', ref: 'A'.repeat(43), hcp: `eyJ${'x'.repeat(1000)}` }, { key: es.signing, iss: 'urn:ncpeh:ncp:ES', aud: 'urn:ncpeh:ncp:DK' });
    const replay = new MemoryReplay();
    // A pool of fresh requests so the replay check passes, as it does for real traffic.
    const requests: string[] = [];
    // Warm-up runs first (micro's default 20), then at most requests.length - WARMUP measured ones.
    for (let i = 0; i < 4000 + VERIFY_WARMUP; i++) requests.push(await sign());
    let next = 0;
    const seal = () => sealResponse({ inResponseTo: 'x', result: ips }, { signingKey: dk.signing, recipientKey: recipient.publicJwk });
    const sealed = await seal();
    const openOpts = { decryptionKeys: [recipient], expectedSignerKeys: keys.publicSig(dk) };

    const reqSign = await run('signRequest (B)', sign);
    const reqVerify = await run(
      'verifyRequest (A)',
      () => verifyRequest(requests[next++ % requests.length] ?? '', { trustedKeys: keys.publicSig(es), expectedIss: 'urn:ncpeh:ncp:ES', expectedAud: 'urn:ncpeh:ncp:DK', replay }),
      requests.length - VERIFY_WARMUP,
    );
    const sealR = await run(`sealResponse ${recipient.alg} (A)`, seal);
    const openR = await run(`openResponse ${recipient.alg} (B)`, () => openResponse(sealed, openOpts));
    const perFetchUs = reqSign.usPerOp + reqVerify.usPerOp + sealR.usPerOp + openR.usPerOp;
    const perFetchCpuUs = reqSign.cpuUsPerOp + reqVerify.cpuUsPerOp + sealR.cpuUsPerOp + openR.cpuUsPerOp;
    variants.push({
      alg: recipient.alg,
      ops,
      perFetchUs: round(perFetchUs),
      perFetchCpuUs: round(perFetchCpuUs),
      ratioToFloor: round(perFetchUs / floor.perFetchUs, 2),
      jweChars: sealed.length,
    });
  }
  return variants;
}

/**
 * The JOSE libraries the envelope could be built on, doing one whole fetch's cryptography (request
 * sign + verify, response sign + encrypt, decrypt + verify) with keys imported once, without our
 * checks: what the library alone costs. node-jose is what the envelope used until this benchmark
 * measured it; jose (panva) is the common alternative, on WebCrypto.
 */
export async function libraryFetches(keys: BenchKeys, ips: Bundle): Promise<Record<'node-jose' | 'jose (WebCrypto)', () => Promise<unknown>>> {
  const { dk, es } = keys;
  const jwk = (k: { privateKey: KeyObject }): Record<string, unknown> => ({ ...k.privateKey.export({ format: 'jwk' }) });
  const request = (): string => JSON.stringify({ op: 'patient-summary', ref: 'A'.repeat(43), hcp: `eyJ${'x'.repeat(1000)}`, jti: randomUUID() });
  const response = (): string => JSON.stringify({ iat: Math.floor(Date.now() / 1000), payload: { inResponseTo: 'x', result: ips } });

  // node-jose's typings say object for every output format; the compact one is a string.
  const compact = (out: unknown): string => {
    if (typeof out !== 'string') throw new Error('node-jose did not return a compact serialisation');
    return out;
  };
  const nj = {
    esSign: await nodeJose.JWK.asKey({ ...jwk(es.signing), kid: 'es-sig', use: 'sig', alg: 'ES256' }),
    dkSign: await nodeJose.JWK.asKey({ ...jwk(dk.signing), kid: 'dk-sig', use: 'sig', alg: 'ES256' }),
    esEnc: await nodeJose.JWK.asKey({ ...jwk(es.encryption), kid: 'es-enc', use: 'enc', alg: 'ECDH-ES+A256KW' }),
  };
  const njFetch = async (): Promise<unknown> => {
    const req = compact(await nodeJose.JWS.createSign({ format: 'compact', fields: { alg: 'ES256', typ: 'ncpeh-request+jwt' } }, nj.esSign).update(request(), 'utf8').final());
    await nodeJose.JWS.createVerify(nj.esSign, { algorithms: ['ES256'] }).verify(req);
    const inner = compact(await nodeJose.JWS.createSign({ format: 'compact', fields: { alg: 'ES256', typ: 'ncpeh-response+jwt' } }, nj.dkSign).update(response(), 'utf8').final());
    const jwe = compact(await nodeJose.JWE.createEncrypt({ format: 'compact', contentAlg: 'A256GCM', fields: { cty: 'JWT' } }, nj.esEnc).update(Buffer.from(inner)).final());
    const { plaintext } = await nodeJose.JWE.createDecrypt(nj.esEnc, { algorithms: ['ECDH-ES+A256KW', 'A256GCM'] }).decrypt(jwe);
    const verified = await nodeJose.JWS.createVerify(nj.dkSign, { algorithms: ['ES256'] }).verify(plaintext.toString('utf8'));
    return JSON.parse(verified.payload.toString('utf8'));
  };

  const wc = {
    esSign: await panva.importJWK(jwk(es.signing), 'ES256'),
    esVerify: await panva.importJWK({ ...es.signing.publicJwk }, 'ES256'),
    dkSign: await panva.importJWK(jwk(dk.signing), 'ES256'),
    dkVerify: await panva.importJWK({ ...dk.signing.publicJwk }, 'ES256'),
    esEncPub: await panva.importJWK({ ...es.encryption.publicJwk }, 'ECDH-ES+A256KW'),
    esEncPriv: await panva.importJWK(jwk(es.encryption), 'ECDH-ES+A256KW'),
  };
  const utf8 = new TextEncoder();
  const joseFetch = async (): Promise<unknown> => {
    const req = await new panva.CompactSign(utf8.encode(request())).setProtectedHeader({ alg: 'ES256', typ: 'ncpeh-request+jwt' }).sign(wc.esSign);
    await panva.compactVerify(req, wc.esVerify, { algorithms: ['ES256'] });
    const inner = await new panva.CompactSign(utf8.encode(response())).setProtectedHeader({ alg: 'ES256', typ: 'ncpeh-response+jwt' }).sign(wc.dkSign);
    const jwe = await new panva.CompactEncrypt(utf8.encode(inner)).setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', cty: 'JWT' }).encrypt(wc.esEncPub);
    const { plaintext } = await panva.compactDecrypt(jwe, wc.esEncPriv, { keyManagementAlgorithms: ['ECDH-ES+A256KW'], contentEncryptionAlgorithms: ['A256GCM'] });
    const verified = await panva.compactVerify(new TextDecoder().decode(plaintext), wc.dkVerify, { algorithms: ['ES256'] });
    return JSON.parse(new TextDecoder().decode(verified.payload));
  };
  return { 'node-jose': njFetch, 'jose (WebCrypto)': joseFetch };
}
