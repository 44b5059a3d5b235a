/**
 * Registered hospital EHR clients of the sandbox: one ES256 key pair per country, generated on first
 * run into .sandbox/clients. The gateway config names the public JWKS; demo scripts and the
 * professional viewer sign their private_key_jwt client assertions (RFC 7523) with the private key.
 */
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadPrivateJwk, signCompact } from '../src/crossborder/envelope.js';
import { jwkThumbprint } from '../src/trust/pki.js';

export interface SandboxClientFiles {
  readonly clientId: string;
  readonly privateJwkFile: string;
  readonly jwksFile: string;
}

export function sandboxClientFiles(sandboxDir: string, clientId: string): SandboxClientFiles {
  const dir = join(sandboxDir, 'clients');
  return { clientId, privateJwkFile: join(dir, `${clientId}.jwk.json`), jwksFile: join(dir, `${clientId}.jwks.json`) };
}

export async function ensureSandboxClient(sandboxDir: string, clientId: string): Promise<SandboxClientFiles> {
  const files = sandboxClientFiles(sandboxDir, clientId);
  try {
    await readFile(files.privateJwkFile);
    await readFile(files.jwksFile);
    return files;
  } catch {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = privateKey.export({ format: 'jwk' });
    if (jwk.kty === undefined || jwk.crv === undefined || jwk.x === undefined || jwk.y === undefined) throw new Error('EC key export lacks members');
    const pub = { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y };
    const kid = jwkThumbprint(pub);
    await mkdir(join(sandboxDir, 'clients'), { recursive: true, mode: 0o700 });
    await writeFile(files.privateJwkFile, JSON.stringify({ ...jwk, kid, use: 'sig', alg: 'ES256' }, null, 2), { mode: 0o600 });
    await writeFile(files.jwksFile, JSON.stringify({ keys: [{ ...pub, kid, use: 'sig', alg: 'ES256' }] }, null, 2), { mode: 0o644 });
    return files;
  }
}

/** A private_key_jwt client assertion (RFC 7523 section 2.2) for the given token endpoint. */
export async function clientAssertion(files: SandboxClientFiles, audience: string, now = new Date()): Promise<string> {
  const key = await loadPrivateJwk(JSON.parse(await readFile(files.privateJwkFile, 'utf8')) as unknown, 'sig');
  const iat = Math.floor(now.getTime() / 1000);
  return signCompact(key, 'JWT', { iss: files.clientId, sub: files.clientId, aud: audience, iat, exp: iat + 120, jti: randomUUID() });
}
