/**
 * The sandbox's national eID providers, one set per country, on loopback:
 * - an OpenID provider (oidc-provider) with citizens and health professionals as test users, and
 *   two clients: the gateway's citizen portal (code flow + PKCE) and the hospital EHR (whose ID
 *   tokens the EHR posts to the gateway's /api/v1/auth/hcp);
 * - an eIDAS SAML IdP that signs natural-person assertions for professionals, reachable at
 *   `GET /sso?person=<PersonIdentifier>` (answers `{ SAMLResponse }`) for scripts and the viewer.
 * The SAML signing key persists in .sandbox/eid so the gateway can pin its certificate.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { LOA_URIS, type LevelOfAssurance } from '../src/identity/eid.js';
import { startOidcOp, type OidcOp, type OpUser } from './oidc-op.js';
import { createSamlIdp, createSigningKey, type SamlSigningKey } from './saml-idp.js';
import { DK_PRACTITIONERS, ES_PRACTITIONERS, KENNETH, KENNETH_NAMESAKE, PATIENT_WITHOUT_SUMMARY, type SeedPractitioner } from './seed.js';

export interface EidPorts {
  readonly oidc: number;
  readonly saml: number;
}

export interface CountryEid {
  readonly oidcIssuer: string;
  readonly samlUrl: string;
  readonly samlEntityId: string;
  readonly samlCertFile: string;
  close(): Promise<void>;
}

export const SANDBOX_EID_PORTS: Readonly<Record<'DK' | 'ES', EidPorts>> = {
  DK: { oidc: 8113, saml: 8114 },
  ES: { oidc: 8123, saml: 8124 },
};

/** The OIDC client ids the gateway configs name (config/dk.json, config/es.json). */
export function portalClientId(country: string): string {
  return `ncpeh-${country.toLowerCase()}-citizen-portal`;
}
export function ehrClientId(country: string): string {
  return `${country.toLowerCase()}-hospital-ehr`;
}

function professionalUser(p: SeedPractitioner): OpUser {
  return { sub: p.personIdentifier.value, givenName: p.given, familyName: p.family, birthdate: p.birthDate, acr: LOA_URIS.substantial };
}

function citizens(country: 'DK' | 'ES'): OpUser[] {
  if (country !== 'DK') return [];
  return [KENNETH, KENNETH_NAMESAKE, PATIENT_WITHOUT_SUMMARY].map((p) => ({
    // The Danish citizen's national identifier is what the consent is indexed by.
    sub: p.identifier.value,
    givenName: p.given,
    familyName: p.family,
    birthdate: p.birthDate,
    acr: LOA_URIS.substantial,
  }));
}

async function loadOrCreateSamlKey(dir: string): Promise<{ key: SamlSigningKey; certFile: string }> {
  const certFile = join(dir, 'saml-idp.crt.pem');
  const keyFile = join(dir, 'saml-idp.key.pem');
  try {
    const [certPem, privateKeyPem] = await Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]);
    return { key: { keyType: 'rsa', certPem, privateKeyPem }, certFile };
  } catch {
    const key = await createSigningKey({ keyType: 'rsa', commonName: 'ncpeh sandbox eIDAS node', validDays: 365 });
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFile(certFile, key.certPem, { mode: 0o644 });
    await writeFile(keyFile, key.privateKeyPem, { mode: 0o600 });
    return { key, certFile };
  }
}

function listen(server: Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
}

export async function startCountryEid(opts: {
  country: 'DK' | 'ES';
  sandboxDir: string;
  gatewayApiUrl: string;
  ports?: EidPorts;
}): Promise<CountryEid> {
  const ports = opts.ports ?? SANDBOX_EID_PORTS[opts.country];
  const professionals = (opts.country === 'DK' ? DK_PRACTITIONERS : ES_PRACTITIONERS).map(professionalUser);
  const op: OidcOp = await startOidcOp({
    port: ports.oidc,
    users: [...citizens(opts.country), ...professionals],
    clients: [
      { clientId: portalClientId(opts.country), redirectUris: [`${opts.gatewayApiUrl}/api/v1/auth/callback`] },
      { clientId: ehrClientId(opts.country), redirectUris: ['http://127.0.0.1/ehr/callback'], idTokenSignedResponseAlg: 'ES256' },
    ],
  });

  const samlUrl = `http://127.0.0.1:${ports.saml}`;
  const samlEntityId = `${samlUrl}/idp`;
  const { key, certFile } = await loadOrCreateSamlKey(join(opts.sandboxDir, 'eid', opts.country.toLowerCase()));
  const idp = createSamlIdp({ entityId: samlEntityId, key });
  const byPerson = new Map((opts.country === 'DK' ? DK_PRACTITIONERS : ES_PRACTITIONERS).map((p) => [p.personIdentifier.value, p]));
  const saml = createServer((req, res) => {
    const url = new URL(req.url ?? '/', samlUrl);
    const send = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'GET') return send(405, { error: 'GET only' });
    if (url.pathname === '/metadata') return send(200, { entityId: samlEntityId, certificatePem: key.certPem });
    if (url.pathname !== '/sso') return send(404, { error: 'try /sso?person=<PersonIdentifier>' });
    const person = byPerson.get(url.searchParams.get('person') ?? '');
    if (person === undefined) return send(404, { error: 'unknown person', known: [...byPerson.keys()] });
    const loaParam = url.searchParams.get('loa') ?? 'substantial';
    const loa: LevelOfAssurance = loaParam === 'low' || loaParam === 'high' ? loaParam : 'substantial';
    const acsUrl = `${opts.gatewayApiUrl}/api/v1/auth/hcp`;
    const SAMLResponse = idp.response({
      audience: `urn:ncpeh:ncp:${opts.country}`,
      acsUrl,
      loa,
      nameId: person.personIdentifier.value,
      attributes: {
        personIdentifier: person.personIdentifier.value,
        familyName: person.family,
        givenName: person.given,
        dateOfBirth: person.birthDate,
      },
    });
    return send(200, { SAMLResponse, person: person.personIdentifier.value, loa });
  });
  await listen(saml, ports.saml);

  return {
    oidcIssuer: op.issuer,
    samlUrl,
    samlEntityId,
    samlCertFile: certFile,
    close: async () => {
      await Promise.allSettled([op.close(), new Promise<void>((r) => saml.close(() => r()))]);
    },
  };
}
