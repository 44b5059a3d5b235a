/**
 * The cryptography of our JOSE profile, on node:crypto (OpenSSL) and nothing else:
 * - JWS ES256 (RFC 7515, RFC 7518 section 3.4): ECDSA P-256 with SHA-256, signature as R || S;
 * - JWE key management ECDH-ES+A256KW (RFC 7518 section 4.6: ephemeral-static ECDH on P-256, Concat
 *   KDF, AES-256 key wrap of RFC 3394) or RSA-OAEP-256 (section 4.3);
 * - JWE content encryption A256GCM (section 5.3), the protected header as additional data.
 *
 * Only the operations: which algorithms, keys and headers are acceptable is decided by the callers'
 * one-rule checks (envelope.ts) before anything here runs. Measured against node-jose and jose
 * (WebCrypto) in bench/README.md; interoperability with node-jose is tested both ways.
 */
import {
  constants,
  createCipheriv,
  createDecipheriv,
  createHash,
  diffieHellman,
  generateKeyPairSync,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';

/** RFC 3394 section 2.2.3.1: the default initial value of AES key wrap. */
const AES_KW_IV = Buffer.from('A6A6A6A6A6A6A6A6', 'hex');
const CEK_BYTES = 32;
const GCM_IV_BYTES = 12;
const GCM_TAG_BYTES = 16;

export function b64u(bytes: Uint8Array | string): string {
  return (typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)).toString('base64url');
}

// ---------------------------------------------------------------------------------------------
// JWS ES256

/** `BASE64URL(header) . BASE64URL(payload) . BASE64URL(R || S)` (RFC 7515 section 7.1). */
export function signCompactEs256(privateKey: KeyObject, header: Readonly<Record<string, unknown>>, payload: Uint8Array | string): string {
  const input = `${b64u(JSON.stringify(header))}.${b64u(payload)}`;
  const signature = sign('sha256', Buffer.from(input, 'ascii'), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}

/** Verifies R || S over the signing input (the compact token up to its second dot). */
export function verifyEs256(publicKey: KeyObject, signingInput: string, signature: Uint8Array): boolean {
  if (signature.length !== 64) return false;
  return verify('sha256', Buffer.from(signingInput, 'ascii'), { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature);
}

/** RFC 7518 section 3.3 (RS256, RSASSA-PKCS1-v1_5) and 3.5 (PS256, RSASSA-PSS, salt = hash length). */
export function verifyRsaJws(alg: 'RS256' | 'PS256', publicKey: KeyObject, signingInput: string, signature: Uint8Array): boolean {
  const padding = alg === 'PS256' ? { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 } : { padding: constants.RSA_PKCS1_PADDING };
  return verify('sha256', Buffer.from(signingInput, 'ascii'), { key: publicKey, ...padding }, signature);
}

// ---------------------------------------------------------------------------------------------
// Key management

function u32be(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

function lengthPrefixed(data: Uint8Array): Buffer {
  return Buffer.concat([u32be(data.length), data]);
}

/**
 * Concat KDF of NIST SP 800-56A as RFC 7518 section 4.6.2 profiles it: AlgorithmID, PartyUInfo and
 * PartyVInfo length-prefixed, SuppPubInfo = keydatalen in bits, no SuppPrivInfo. One SHA-256 round
 * suffices for keys of up to 256 bits, the only sizes we derive.
 */
export function concatKdf(sharedSecret: Uint8Array, algorithmId: string, keyBits: number, apu: Uint8Array = Buffer.alloc(0), apv: Uint8Array = Buffer.alloc(0)): Buffer {
  if (!Number.isInteger(keyBits) || keyBits < 8 || keyBits > 256 || keyBits % 8 !== 0) throw new RangeError('keyBits must be a multiple of 8 up to 256');
  const otherInfo = Buffer.concat([lengthPrefixed(Buffer.from(algorithmId, 'ascii')), lengthPrefixed(apu), lengthPrefixed(apv), u32be(keyBits)]);
  return createHash('sha256').update(u32be(1)).update(sharedSecret).update(otherInfo).digest().subarray(0, keyBits / 8);
}

/** AES key wrap (RFC 3394) with a 256-bit key-encryption key. */
export function aesKeyWrap(kek: Uint8Array, keyData: Uint8Array): Buffer {
  const cipher = createCipheriv('id-aes256-wrap', kek, AES_KW_IV);
  return Buffer.concat([cipher.update(keyData), cipher.final()]);
}

/** RFC 3394 unwrap; throws when the integrity check value does not come out as A6A6...A6. */
export function aesKeyUnwrap(kek: Uint8Array, wrapped: Uint8Array): Buffer {
  const decipher = createDecipheriv('id-aes256-wrap', kek, AES_KW_IV);
  return Buffer.concat([decipher.update(wrapped), decipher.final()]);
}

function ecdhKek(privateKey: KeyObject, publicKey: KeyObject): Buffer {
  return concatKdf(diffieHellman({ privateKey, publicKey }), 'ECDH-ES+A256KW', 256);
}

// ---------------------------------------------------------------------------------------------
// Compact JWE

export type JweRecipient =
  | { readonly alg: 'ECDH-ES+A256KW'; readonly kid: string; readonly publicKey: KeyObject }
  | { readonly alg: 'RSA-OAEP-256'; readonly kid: string; readonly publicKey: KeyObject };

/**
 * Encrypts to one recipient: a fresh content key and IV per message, and for ECDH-ES a fresh
 * ephemeral P-256 key (never reused: RFC 7518 section 4.6). Header members: alg, enc, kid, epk
 * (ECDH-ES only) and `extra` (e.g. cty).
 */
export function encryptCompact(recipient: JweRecipient, plaintext: Uint8Array | string, extra: Readonly<Record<string, string>> = {}): string {
  const cek = randomBytes(CEK_BYTES);
  let header: Record<string, unknown>;
  let encryptedKey: Buffer;
  if (recipient.alg === 'ECDH-ES+A256KW') {
    const ephemeral = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const { kty, crv, x, y } = ephemeral.publicKey.export({ format: 'jwk' });
    header = { alg: recipient.alg, enc: 'A256GCM', kid: recipient.kid, epk: { kty, crv, x, y }, ...extra };
    encryptedKey = aesKeyWrap(ecdhKek(ephemeral.privateKey, recipient.publicKey), cek);
  } else {
    header = { alg: recipient.alg, enc: 'A256GCM', kid: recipient.kid, ...extra };
    encryptedKey = publicEncrypt({ key: recipient.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, cek);
  }
  const protectedHeader = b64u(JSON.stringify(header));
  const iv = randomBytes(GCM_IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', cek, iv, { authTagLength: GCM_TAG_BYTES });
  cipher.setAAD(Buffer.from(protectedHeader, 'ascii'));
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return `${protectedHeader}.${encryptedKey.toString('base64url')}.${iv.toString('base64url')}.${ciphertext.toString('base64url')}.${cipher.getAuthTag().toString('base64url')}`;
}

export interface JweParts {
  /** The first part exactly as received: its ASCII bytes are the additional authenticated data. */
  readonly protectedHeader: string;
  readonly encryptedKey: Buffer;
  readonly iv: Buffer;
  readonly ciphertext: Buffer;
  readonly tag: Buffer;
}

export type JweKeyAgreement =
  | { readonly alg: 'ECDH-ES+A256KW'; readonly privateKey: KeyObject; readonly epk: KeyObject }
  | { readonly alg: 'RSA-OAEP-256'; readonly privateKey: KeyObject };

/** The one failure every decryption step reports, so that no step can be told apart from outside. */
export class DecryptionFailed extends Error {
  constructor() {
    super('JWE decryption failed');
  }
}

/**
 * Recovers the content key, then decrypts and authenticates. A content key that cannot be unwrapped
 * is replaced by a random one and decryption goes on, failing at the tag like any other tampering:
 * one error, at one point, whatever was wrong (RFC 7516 section 11.5).
 */
export function decryptCompact(parts: JweParts, agreement: JweKeyAgreement): Buffer {
  if (parts.iv.length !== GCM_IV_BYTES || parts.tag.length !== GCM_TAG_BYTES) throw new DecryptionFailed();
  let cek: Buffer;
  try {
    cek =
      agreement.alg === 'ECDH-ES+A256KW'
        ? aesKeyUnwrap(ecdhKek(agreement.privateKey, agreement.epk), parts.encryptedKey)
        : privateDecrypt({ key: agreement.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, parts.encryptedKey);
    if (cek.length !== CEK_BYTES) cek = randomBytes(CEK_BYTES);
  } catch {
    cek = randomBytes(CEK_BYTES);
  }
  try {
    const decipher = createDecipheriv('aes-256-gcm', cek, parts.iv, { authTagLength: GCM_TAG_BYTES });
    decipher.setAAD(Buffer.from(parts.protectedHeader, 'ascii'));
    decipher.setAuthTag(parts.tag);
    return Buffer.concat([decipher.update(parts.ciphertext), decipher.final()]);
  } catch {
    throw new DecryptionFailed();
  }
}
