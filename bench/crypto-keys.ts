/**
 * Keys for the crypto steps: a dev PKI from the gateway's own `initPki` (DK signs, ES receives),
 * loaded through `loadPrivateJwk` for the envelope and as node:crypto KeyObjects for the floor, plus
 * an RSA-2048 encryption key for ES to compare RSA-OAEP-256 against ECDH-ES+A256KW.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPrivateJwk, type DecryptionKey, type PublicJwk, type SigningKey } from '../src/crossborder/envelope.js';
import { initPki } from '../src/trust/pki.js';

export interface CountryKeys {
  readonly signing: SigningKey;
  readonly encryption: DecryptionKey;
  readonly rsaEncryption: DecryptionKey;
  /** node:crypto handles for the floor, imported once as a real implementation would cache them. */
  readonly raw: { signPriv: KeyObject; signPub: KeyObject; encPriv: KeyObject; encPub: KeyObject };
}

export interface BenchKeys {
  readonly dk: CountryKeys;
  readonly es: CountryKeys;
  publicSig(c: CountryKeys): { keys: PublicJwk[] };
  cleanup(): Promise<void>;
}

async function countryKeys(signFile: string, encFile: string, country: string): Promise<CountryKeys> {
  const signJwk = JSON.parse(await readFile(signFile, 'utf8')) as Record<string, unknown>;
  const encJwk = JSON.parse(await readFile(encFile, 'utf8')) as Record<string, unknown>;
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const signing = await loadPrivateJwk(signJwk, 'sig');
  const encryption = await loadPrivateJwk(encJwk, 'enc');
  const rsaEncryption = await loadPrivateJwk({ ...rsa, kid: `${country}-bench-rsa-enc`, use: 'enc', alg: 'RSA-OAEP-256' }, 'enc');
  const priv = (jwk: Record<string, unknown>): KeyObject => createPrivateKey({ key: jwk as never, format: 'jwk' });
  return {
    signing,
    encryption,
    rsaEncryption,
    raw: {
      signPriv: priv(signJwk),
      signPub: createPublicKey(priv(signJwk)),
      encPriv: priv(encJwk),
      encPub: createPublicKey(priv(encJwk)),
    },
  };
}

export async function benchKeys(): Promise<BenchKeys> {
  const dir = await mkdtemp(join(tmpdir(), 'ncpeh-bench-keys-'));
  const pki = await initPki({ outDir: join(dir, 'pki'), countries: ['DK', 'ES'] });
  const of = (cc: 'DK' | 'ES'): { signingJwk: string; encryptionJwk: string } => {
    const c = pki.countries[cc];
    if (c === undefined) throw new Error(`no PKI for ${cc}`);
    return c;
  };
  const dk = await countryKeys(of('DK').signingJwk, of('DK').encryptionJwk, 'DK');
  const es = await countryKeys(of('ES').signingJwk, of('ES').encryptionJwk, 'ES');
  return {
    dk,
    es,
    publicSig: (c) => ({ keys: [{ ...c.signing.publicJwk }] }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
