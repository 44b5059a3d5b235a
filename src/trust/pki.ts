/**
 * The development PKI the sandbox generates on first run (DESIGN.md section 6, "Keys and
 * certificates"): one trust-anchor CA, one trust-anchor signing key for trust lists, and per country
 * a TLS server certificate, a TLS client certificate and the JOSE keys its gateway signs and decrypts
 * envelopes with. Nothing here is for production: production keys are files or env-provided.
 *
 * Everything is generated with @peculiar/x509 over node's WebCrypto and node:crypto; no hand-written
 * ASN.1 and no openssl CLI. @peculiar/x509 is loaded through `loadX509()`, see there why.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type * as X509 from '@peculiar/x509';
import { z } from 'zod';

export interface CountryPkiLayout {
  readonly country: string;
  readonly dir: string;
  readonly tlsServerCert: string;
  readonly tlsServerKey: string;
  readonly tlsClientCert: string;
  readonly tlsClientKey: string;
  /** Private EC P-256 JWK, `use: sig`, `alg: ES256`. */
  readonly signingJwk: string;
  /** Private EC P-256 JWK, `use: enc`, `alg: ECDH-ES+A256KW`. */
  readonly encryptionJwk: string;
  /** `{ keys: [public sig, public enc] }`. */
  readonly jwksPub: string;
  /** `{ serverCertSha256, clientCertSha256 }`, the values the trust list pins. */
  readonly fingerprints: string;
}

export interface PkiLayout {
  readonly outDir: string;
  readonly manifest: string;
  readonly ca: {
    readonly dir: string;
    readonly cert: string;
    readonly key: string;
    /** Private ES256 JWK that signs trust lists. */
    readonly signingJwk: string;
    readonly signingPubJwk: string;
  };
  readonly countries: Readonly<Record<string, CountryPkiLayout>>;
}

export interface InitPkiOptions {
  /** Owned entirely by the PKI: regeneration replaces the whole directory. */
  outDir: string;
  /** ISO 3166-1 alpha-2, uppercase. */
  countries: string[];
  /** Validity of every certificate; default 90. */
  validDays?: number;
  now?: Date;
}

export interface Fingerprints {
  serverCertSha256: string;
  clientCertSha256: string;
}

export interface PkiManifest {
  version: 1;
  generatedAt: string;
  countries: string[];
  validDays: number;
  notBefore: string;
  notAfter: string;
  caCertSha256: string;
}

/** A JWK as node:crypto exports it, plus the JOSE metadata members we add. */
export type Jwk = webcrypto.JsonWebKey & { kid?: string; use?: string; alg?: string };

const DEFAULT_VALID_DAYS = 90;
const DAY_MS = 24 * 60 * 60 * 1000;
/** A certificate with less than this left is regenerated at start rather than expiring mid-run. */
const MIN_REMAINING_MS = DAY_MS;
/** Backdate notBefore so a peer whose clock is slightly behind still accepts a fresh certificate. */
const CLOCK_SKEW_MS = 5 * 60 * 1000;
const COUNTRY_CODE = /^[A-Z]{2}$/;
const ORG = 'ncpeh sandbox';
const EC_KEY_ALG = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING_ALG = { name: 'ECDSA', hash: 'SHA-256' } as const;
const PRIVATE_MODE = 0o600;
const PUBLIC_MODE = 0o644;
const DIR_MODE = 0o700;

const crypto = webcrypto;

let x509Module: Promise<typeof X509> | undefined;

/**
 * @peculiar/x509 2.x resolves its algorithm providers through tsyringe, which refuses to load unless
 * the Reflect metadata API exists; its README asks for `reflect-metadata` to be imported first. A
 * dynamic import keeps that order explicit wherever x509 is used.
 */
export function loadX509(): Promise<typeof X509> {
  x509Module ??= import('reflect-metadata').then(() => import('@peculiar/x509'));
  return x509Module;
}

/** File paths only, so other code can find the PKI without regenerating it. */
export function pkiLayout(outDir: string, countries: readonly string[]): PkiLayout {
  const root = path.resolve(outDir);
  const caDir = path.join(root, 'ca');
  const perCountry: Record<string, CountryPkiLayout> = {};
  for (const country of normaliseCountries(countries)) {
    const dir = path.join(root, country);
    perCountry[country] = {
      country,
      dir,
      tlsServerCert: path.join(dir, 'tls-server.crt.pem'),
      tlsServerKey: path.join(dir, 'tls-server.key.pem'),
      tlsClientCert: path.join(dir, 'tls-client.crt.pem'),
      tlsClientKey: path.join(dir, 'tls-client.key.pem'),
      signingJwk: path.join(dir, 'signing.jwk.json'),
      encryptionJwk: path.join(dir, 'encryption.jwk.json'),
      jwksPub: path.join(dir, 'jwks.pub.json'),
      fingerprints: path.join(dir, 'fingerprints.json'),
    };
  }
  return {
    outDir: root,
    manifest: path.join(root, 'manifest.json'),
    ca: {
      dir: caDir,
      cert: path.join(caDir, 'anchor-ca.crt.pem'),
      key: path.join(caDir, 'anchor-ca.key.pem'),
      signingJwk: path.join(caDir, 'anchor-signing.jwk.json'),
      signingPubJwk: path.join(caDir, 'anchor-signing.pub.jwk.json'),
    },
    countries: perCountry,
  };
}

/**
 * Returns the PKI in `outDir`, generating it when there is none, when it lacks a requested country,
 * or when any certificate has a day or less left. The sandbox calls this at every start.
 */
export async function initPki(opts: InitPkiOptions): Promise<PkiLayout> {
  const validDays = opts.validDays ?? DEFAULT_VALID_DAYS;
  // A PKI of one day is regenerated at every call (MIN_REMAINING_MS); allowed, but pointless.
  if (!Number.isInteger(validDays) || validDays < 1) {
    throw new RangeError(`validDays must be a positive integer, got ${validDays}`);
  }
  const now = opts.now ?? new Date();
  const countries = normaliseCountries(opts.countries);
  const layout = pkiLayout(opts.outDir, countries);
  if (await isUsable(layout, now)) return layout;
  await generateAtomically(layout, countries, validDays, now);
  return layout;
}

/** Reads a generated PKI's manifest and returns the layout for every country it covers. */
export async function loadPkiLayout(outDir: string): Promise<PkiLayout> {
  const manifest = await readManifest(pkiLayout(outDir, []).manifest);
  return pkiLayout(outDir, manifest.countries);
}

export async function readFingerprints(country: CountryPkiLayout): Promise<Fingerprints> {
  return fingerprintsSchema.parse(JSON.parse(await readFile(country.fingerprints, 'utf8')));
}

/** SHA-256 of the certificate's DER encoding, lowercase hex: the value trust lists pin. */
export function fingerprintPem(pem: string): string {
  return createHash('sha256').update(new X509Certificate(pem).raw).digest('hex');
}

/**
 * RFC 7638 JWK thumbprint (SHA-256, base64url). Section 3.2: only the required members of the key
 * type, in lexicographic order, no whitespace; the private members never take part.
 */
export function jwkThumbprint(jwk: Jwk): string {
  const required = requiredMembers(jwk);
  const canonical = `{${required.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`;
  return createHash('sha256').update(canonical, 'utf8').digest('base64url');
}

/** The public part of a key: an allow-list, so a private member can never leak by omission. */
export function publicJwk(jwk: Jwk): Jwk {
  const pub: Jwk = {};
  for (const [name, value] of requiredMembers(jwk)) pub[name] = value;
  if (jwk.kid !== undefined) pub.kid = jwk.kid;
  if (jwk.use !== undefined) pub.use = jwk.use;
  if (jwk.alg !== undefined) pub.alg = jwk.alg;
  return pub;
}

// ---------------------------------------------------------------------------------------------

const fingerprintsSchema = z.object({
  serverCertSha256: z.string().regex(/^[0-9a-f]{64}$/),
  clientCertSha256: z.string().regex(/^[0-9a-f]{64}$/),
});

const manifestSchema = z.object({
  version: z.literal(1),
  generatedAt: z.string(),
  countries: z.array(z.string().regex(COUNTRY_CODE)),
  validDays: z.number().int().positive(),
  notBefore: z.string(),
  notAfter: z.string(),
  caCertSha256: z.string().regex(/^[0-9a-f]{64}$/),
});

type RequiredMember = 'crv' | 'e' | 'k' | 'kty' | 'n' | 'x' | 'y';

function requiredMembers(jwk: Jwk): [RequiredMember, string][] {
  // RFC 7638 section 3.2 lists the required members per key type (RFC 7518 section 6, RFC 8037).
  const names: RequiredMember[] =
    jwk.kty === 'EC' ? ['crv', 'kty', 'x', 'y']
    : jwk.kty === 'RSA' ? ['e', 'kty', 'n']
    : jwk.kty === 'OKP' ? ['crv', 'kty', 'x']
    : jwk.kty === 'oct' ? ['k', 'kty']
    : [];
  if (names.length === 0) throw new TypeError(`unsupported JWK key type ${String(jwk.kty)}`);
  return names.map((name) => {
    const value = jwk[name];
    if (typeof value !== 'string' || value === '') throw new TypeError(`JWK lacks required member ${name}`);
    return [name, value];
  });
}

function normaliseCountries(countries: readonly string[]): string[] {
  for (const country of countries) {
    if (!COUNTRY_CODE.test(country)) {
      throw new RangeError(`country must be an ISO 3166-1 alpha-2 code in upper case, got ${JSON.stringify(country)}`);
    }
  }
  return [...new Set(countries)].sort();
}

async function readManifest(file: string): Promise<PkiManifest> {
  return manifestSchema.parse(JSON.parse(await readFile(file, 'utf8')));
}

async function isUsable(layout: PkiLayout, now: Date): Promise<boolean> {
  let manifest: PkiManifest;
  try {
    manifest = await readManifest(layout.manifest);
  } catch {
    return false;
  }
  const covered = new Set(manifest.countries);
  const countries = Object.values(layout.countries);
  if (!countries.every((c) => covered.has(c.country))) return false;

  const certKeyPairs: [string, string][] = [
    [layout.ca.cert, layout.ca.key],
    ...countries.flatMap((c): [string, string][] => [
      [c.tlsServerCert, c.tlsServerKey],
      [c.tlsClientCert, c.tlsClientKey],
    ]),
  ];
  const otherFiles = [
    layout.ca.signingJwk,
    layout.ca.signingPubJwk,
    ...countries.flatMap((c) => [c.signingJwk, c.encryptionJwk, c.jwksPub, c.fingerprints]),
  ];
  try {
    for (const [certFile, keyFile] of certKeyPairs) {
      const cert = new X509Certificate(await readFile(certFile));
      if (Date.parse(cert.validFrom) > now.getTime()) return false;
      if (Date.parse(cert.validTo) - now.getTime() <= MIN_REMAINING_MS) return false;
      // A key that does not match its certificate would only show up as a failed handshake later.
      if (!cert.checkPrivateKey(createPrivateKey(await readFile(keyFile)))) return false;
    }
    for (const file of otherFiles) await stat(file);
  } catch {
    return false;
  }
  return true;
}

/**
 * Generates into a sibling temporary directory and swaps it in with renames, so `outDir` holds
 * either the old PKI or a complete new one, never half of one.
 */
async function generateAtomically(layout: PkiLayout, countries: string[], validDays: number, now: Date): Promise<void> {
  const parent = path.dirname(layout.outDir);
  await mkdir(parent, { recursive: true });
  // mkdtemp creates the directory with mode 0700; it becomes outDir after the rename.
  const tmpDir = await mkdtemp(`${layout.outDir}.tmp-`);
  const retired = `${layout.outDir}.old-${randomBytes(6).toString('hex')}`;
  try {
    await generate(pkiLayout(tmpDir, countries), countries, validDays, now);
    let hadPrevious = true;
    try {
      await rename(layout.outDir, retired);
    } catch (err) {
      if (!isErrnoException(err) || err.code !== 'ENOENT') throw err;
      hadPrevious = false;
    }
    await rename(tmpDir, layout.outDir);
    if (hadPrevious) await rm(retired, { recursive: true, force: true });
  } finally {
    await rm(tmpDir, { recursive: true, force: true });
  }
}

async function generate(layout: PkiLayout, countries: string[], validDays: number, now: Date): Promise<void> {
  const notBefore = new Date(now.getTime() - CLOCK_SKEW_MS);
  const notAfter = new Date(now.getTime() + validDays * DAY_MS);

  await mkdir(layout.ca.dir, { mode: DIR_MODE });
  const ca = await createAnchorCa(notBefore, notAfter);
  await writeFile(layout.ca.cert, ca.cert.toString('pem') + '\n', { mode: PUBLIC_MODE });
  await writeFile(layout.ca.key, await privateKeyPem(ca.keys.privateKey), { mode: PRIVATE_MODE });

  const anchorSigning = newJoseKey('sig', 'ES256');
  await writeJson(layout.ca.signingJwk, anchorSigning, PRIVATE_MODE);
  await writeJson(layout.ca.signingPubJwk, publicJwk(anchorSigning), PUBLIC_MODE);

  for (const country of countries) {
    const files = layout.countries[country];
    if (files === undefined) throw new Error(`layout lacks country ${country}`);
    await mkdir(files.dir, { mode: DIR_MODE });

    const server = await issueTlsCert(ca, country, 'server', notBefore, notAfter);
    const client = await issueTlsCert(ca, country, 'client', notBefore, notAfter);
    await writeFile(files.tlsServerCert, server.certPem, { mode: PUBLIC_MODE });
    await writeFile(files.tlsServerKey, server.keyPem, { mode: PRIVATE_MODE });
    await writeFile(files.tlsClientCert, client.certPem, { mode: PUBLIC_MODE });
    await writeFile(files.tlsClientKey, client.keyPem, { mode: PRIVATE_MODE });

    const signing = newJoseKey('sig', 'ES256');
    const encryption = newJoseKey('enc', 'ECDH-ES+A256KW');
    await writeJson(files.signingJwk, signing, PRIVATE_MODE);
    await writeJson(files.encryptionJwk, encryption, PRIVATE_MODE);
    await writeJson(files.jwksPub, { keys: [publicJwk(signing), publicJwk(encryption)] }, PUBLIC_MODE);

    const fingerprints: Fingerprints = {
      serverCertSha256: fingerprintPem(server.certPem),
      clientCertSha256: fingerprintPem(client.certPem),
    };
    await writeJson(files.fingerprints, fingerprints, PUBLIC_MODE);
  }

  const manifest: PkiManifest = {
    version: 1,
    generatedAt: now.toISOString(),
    countries,
    validDays,
    notBefore: notBefore.toISOString(),
    notAfter: notAfter.toISOString(),
    caCertSha256: fingerprintPem(ca.cert.toString('pem')),
  };
  // Written last: its presence is what marks the PKI complete.
  await writeJson(layout.manifest, manifest, PUBLIC_MODE);
}

interface AnchorCa {
  cert: X509.X509Certificate;
  keys: webcrypto.CryptoKeyPair;
}

async function createAnchorCa(notBefore: Date, notAfter: Date): Promise<AnchorCa> {
  const x509 = await loadX509();
  const keys = await crypto.subtle.generateKey(EC_KEY_ALG, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomSerial(),
      name: [{ CN: ['ncpeh sandbox trust anchor'] }, { O: [ORG] }],
      notBefore,
      notAfter,
      keys,
      signingAlgorithm: SIGNING_ALG,
      extensions: [
        // RFC 5280 4.2.1.9: critical in CA certificates; pathLen 0 because the anchor issues only
        // end-entity certificates, never an intermediate.
        new x509.BasicConstraintsExtension(true, 0, true),
        // RFC 5280 4.2.1.3: a CA key must assert keyCertSign to sign certificates.
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        // RFC 5280 4.2.1.2: MUST appear in conforming CA certificates.
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  return { cert, keys };
}

type TlsRole = 'server' | 'client';

async function issueTlsCert(
  ca: AnchorCa,
  country: string,
  role: TlsRole,
  notBefore: Date,
  notAfter: Date,
): Promise<{ certPem: string; keyPem: string }> {
  const x509 = await loadX509();
  const keys = await crypto.subtle.generateKey(EC_KEY_ALG, true, ['sign', 'verify']);
  const sans: X509.JsonGeneralNames =
    role === 'server'
      ? [
          { type: 'dns', value: 'localhost' },
          { type: 'ip', value: '127.0.0.1' },
          { type: 'ip', value: '::1' },
        ]
      : [{ type: 'dns', value: `ncp.${country.toLowerCase()}.sandbox` }];
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomSerial(),
      subject: [{ C: [country] }, { O: [`${ORG} NCP ${country}`] }, { CN: [`ncp-${country}-${role}`] }],
      issuer: ca.cert.subjectName,
      notBefore,
      notAfter,
      publicKey: keys.publicKey,
      signingKey: ca.keys.privateKey,
      signingAlgorithm: SIGNING_ALG,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        // ECDHE_ECDSA: the key only signs the handshake (RFC 5280 4.2.1.3, RFC 8446 section 4.4.3).
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        // One purpose per certificate (RFC 5280 4.2.1.12), so a client certificate cannot serve TLS.
        new x509.ExtendedKeyUsageExtension([role === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth], false),
        // RFC 5280 4.2.1.6: identities belong in the SAN; TLS clients match the host name there.
        new x509.SubjectAlternativeNameExtension(sans, false),
        // RFC 5280 4.2.1.1: MUST appear in certificates not self-signed; 4.2.1.2: SHOULD for end entities.
        await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey, false, crypto),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  return { certPem: cert.toString('pem') + '\n', keyPem: await privateKeyPem(keys.privateKey) };
}

/**
 * RFC 5280 4.1.2.2: a positive integer of at most 20 octets, unique per CA; 16 random octets make
 * collisions negligible, and clearing the high bit keeps the DER INTEGER positive.
 */
function randomSerial(): string {
  const bytes = randomBytes(16);
  // High bit clear (positive) and first octet non-zero, so the DER INTEGER is exactly 16 octets:
  // a leading zero octet would be dropped and expose a next octet >= 0x80 as the sign bit.
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x01;
  return bytes.toString('hex');
}

async function privateKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  const x509 = await loadX509();
  const pkcs8 = await crypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') + '\n';
}

function newJoseKey(use: 'sig' | 'enc', alg: 'ES256' | 'ECDH-ES+A256KW'): Jwk {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk: Jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: jwkThumbprint(jwk), use, alg };
}

async function writeJson(file: string, value: unknown, mode: number): Promise<void> {
  await writeFile(file, JSON.stringify(value, null, 2) + '\n', { mode });
}

function isErrnoException(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && 'code' in err;
}

/**
 * Issues one more TLS certificate from an existing anchor CA on disk, with an explicit validity
 * window (e.g. to replace a single country's certificate, or to prove that an expired one is
 * refused). Returns PEM certificate and PKCS#8 key.
 */
export async function issueTlsCertificate(opts: {
  caCertFile: string;
  caKeyFile: string;
  country: string;
  role: 'server' | 'client';
  notBefore: Date;
  notAfter: Date;
}): Promise<{ certPem: string; keyPem: string }> {
  if (!COUNTRY_CODE.test(opts.country)) throw new RangeError(`not an ISO 3166-1 alpha-2 code: ${opts.country}`);
  const x509 = await loadX509();
  const cert = new x509.X509Certificate(await readFile(opts.caCertFile, 'utf8'));
  const caKey = createPrivateKey(await readFile(opts.caKeyFile, 'utf8'));
  const privateKey = await crypto.subtle.importKey('pkcs8', caKey.export({ format: 'der', type: 'pkcs8' }), EC_KEY_ALG, false, ['sign']);
  const spki = createPublicKey(caKey).export({ format: 'der', type: 'spki' });
  const publicKey = await crypto.subtle.importKey('spki', spki, EC_KEY_ALG, true, ['verify']);
  return issueTlsCert({ cert, keys: { privateKey, publicKey } }, opts.country, opts.role, opts.notBefore, opts.notAfter);
}
