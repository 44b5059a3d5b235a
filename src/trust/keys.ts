/**
 * This gateway's own key material, loaded once at boot from the files the configuration names.
 * Several encryption keys may be configured during rotation: the first is announced as current,
 * all of them can still decrypt what peers sealed to them.
 */
import { readFile } from 'node:fs/promises';
import { loadPrivateJwk, publicJwks, type DecryptionKey, type PublicJwk, type SigningKey } from '../crossborder/envelope.js';

export interface GatewayKeys {
  readonly signing: SigningKey;
  readonly decryption: readonly DecryptionKey[];
  /** Public halves of every key, as served at /.well-known/jwks.json. */
  readonly jwks: { readonly keys: readonly PublicJwk[] };
}

async function readJwk(file: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as unknown;
  } catch (cause) {
    throw new TypeError(`cannot read a JWK from ${file}`, { cause });
  }
}

export async function loadGatewayKeys(files: { signingKeyFile: string; encryptionKeyFiles: readonly string[] }): Promise<GatewayKeys> {
  const signing = await loadPrivateJwk(await readJwk(files.signingKeyFile), 'sig');
  const decryption = await Promise.all(files.encryptionKeyFiles.map(async (f) => loadPrivateJwk(await readJwk(f), 'enc')));
  return { signing, decryption, jwks: publicJwks([signing, ...decryption]) };
}
