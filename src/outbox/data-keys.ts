/**
 * Encryption of health data at rest in the gateway (queued submissions): AES-256-GCM under a data
 * key from configuration, identified by key id so keys can rotate (the first is current; older ones
 * still decrypt). A database dump alone reveals no clinical content.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { GatewayError } from '../http/errors.js';

const IV_BYTES = 12;
const TAG_BYTES = 16;

export interface DataKeys {
  readonly currentId: string;
  encrypt(plaintext: Buffer, aad: string): { keyId: string; sealed: Buffer };
  decrypt(keyId: string, sealed: Buffer, aad: string): Buffer;
}

/** A key file holds 32 random bytes, base64 (e.g. `openssl rand -base64 32`). */
export async function loadDataKeys(entries: ReadonlyArray<{ id: string; file: string }>): Promise<DataKeys> {
  const keys = new Map<string, Buffer>();
  for (const e of entries) {
    const key = Buffer.from((await readFile(e.file, 'utf8')).trim(), 'base64');
    if (key.length !== 32) throw new TypeError(`data key ${e.id} (${e.file}) must be 32 bytes, base64`);
    keys.set(e.id, key);
  }
  const current = entries[0];
  if (current === undefined) throw new TypeError('at least one data key is required');
  return {
    currentId: current.id,
    encrypt(plaintext, aad) {
      const key = keys.get(current.id);
      if (key === undefined) throw new Error('current data key missing');
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      // The row identity is authenticated too: a ciphertext moved to another row does not decrypt.
      cipher.setAAD(Buffer.from(aad, 'utf8'));
      const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
      return { keyId: current.id, sealed: Buffer.concat([iv, cipher.getAuthTag(), body]) };
    },
    decrypt(keyId, sealed, aad) {
      const key = keys.get(keyId);
      if (key === undefined) throw new GatewayError('service.unavailable', `data key ${keyId} is not configured`);
      const iv = sealed.subarray(0, IV_BYTES);
      const tag = sealed.subarray(IV_BYTES, IV_BYTES + TAG_BYTES);
      const decipher = createDecipheriv('aes-256-gcm', key, iv);
      decipher.setAAD(Buffer.from(aad, 'utf8'));
      decipher.setAuthTag(tag);
      return Buffer.concat([decipher.update(sealed.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
    },
  };
}

export async function generateDataKeyFile(file: string): Promise<void> {
  const { writeFile } = await import('node:fs/promises');
  await writeFile(file, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
}
