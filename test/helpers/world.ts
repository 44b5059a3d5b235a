/**
 * Kenneth's world for end-to-end tests, all real and on loopback: for DK and ES each a national FHIR
 * server (seeded), national eID providers (OpenID Connect + eIDAS SAML), a registered hospital EHR
 * client, and a gateway started through the same boot path as `ncpeh serve`; a dev PKI and a signed
 * trust list between them.
 */
import { readFile, writeFile } from 'node:fs/promises';

import { clientAssertion, ensureSandboxClient, type SandboxClientFiles } from '../../sandbox/clients.js';
import { ehrClientId, portalClientId, startCountryEid, type CountryEid } from '../../sandbox/eid.js';
import { startFhirServer, type RunningFhirServer } from '../../sandbox/fhir-server.js';
import { followLoginRedirects } from '../../sandbox/oidc-op.js';
import { createTestDeployment, freePort, type TestDeployment } from './deployment.js';
import { join } from 'node:path';
import { persistentDatabase, startTestGateway, type TestDatabase } from './gateway.js';

type Running = Awaited<ReturnType<typeof startTestGateway>>;
export type WorldCountry = 'DK' | 'ES';

export const PATIENT_SYSTEMS: Readonly<Record<WorldCountry, string>> = { DK: 'urn:oid:1.2.208.176.1.2', ES: 'urn:ncpeh:sandbox:es:dni' };

export interface CountryWorld {
  readonly country: WorldCountry;
  /** Replaced by `restartGateway`. */
  gateway: Running;
  readonly apiUrl: string;
  readonly fhir: RunningFhirServer;
  readonly eid: CountryEid;
  readonly client: SandboxClientFiles;
}

export interface World {
  readonly deployment: TestDeployment;
  readonly dk: CountryWorld;
  readonly es: CountryWorld;
  /** A fresh private_key_jwt for the country's hospital EHR. */
  clientAssertion(country: WorldCountry): Promise<string>;
  /** Signs a professional in at `country`'s gateway through its eIDAS SAML IdP; returns the HCP assertion. */
  hcpSignIn(country: WorldCountry, personId: string, opts?: { purpose?: 'TREAT' | 'ETREAT'; loa?: 'low' | 'substantial' | 'high' }): Promise<string>;
  /** Signs a citizen in at `country`'s gateway (OIDC code flow through the real OP); returns the session token. */
  citizenSignIn(country: WorldCountry, personId: string): Promise<string>;
  stopGateway(country: WorldCountry): Promise<void>;
  /** The environment that points a gateway process at this country's persistent database. */
  databaseEnv(country: WorldCountry): NodeJS.ProcessEnv;
  /** Starts a stopped gateway again on the same database (needs `persistent: true`). */
  restartGateway(country: WorldCountry): Promise<void>;
  close(): Promise<void>;
}

/** One country's counterparts, started and written into its gateway configuration (no gateway yet). */
export interface PreparedCountry {
  readonly country: WorldCountry;
  readonly apiUrl: string;
  readonly configFile: string;
  readonly fhir: RunningFhirServer;
  readonly eid: CountryEid;
  readonly client: SandboxClientFiles;
}

/**
 * Starts `country`'s national FHIR server (seeded) and eID providers, registers its hospital EHR
 * client, and writes them, a free API port and the given policy into the deployment's configuration
 * file. Shared by the test world (gateways in process) and the benchmark (gateways as processes).
 */
export async function prepareCountry(
  deployment: TestDeployment,
  country: WorldCountry,
  opts: { clientLabel: string; breakGlass?: 'allowed' | 'forbidden'; fastRetry?: boolean; configure?: (country: WorldCountry, doc: Record<string, unknown>) => void },
): Promise<PreparedCountry> {
  const lc = country.toLowerCase();
  const apiPort = await freePort();
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const fhir = await startFhirServer({ port: 0, seed: country });
  let eid: CountryEid;
  try {
    eid = await startCountryEid({ country, sandboxDir: deployment.dir, gatewayApiUrl: apiUrl, ports: { oidc: await freePort(), saml: await freePort() } });
  } catch (e) {
    await fhir.close().catch(() => undefined);
    throw e;
  }
  try {
    const client = await ensureSandboxClient(deployment.dir, ehrClientId(country));
    const configFile = deployment.configFile(country);
    const doc = JSON.parse(await readFile(configFile, 'utf8')) as Record<string, unknown>;
    Object.assign(doc, {
      api: { host: '127.0.0.1', port: apiPort },
      nationalFhir: { baseUrl: fhir.baseUrl, summaryMode: 'operation' },
      eid: {
        oidc: [
          { id: `${lc}-citizen-eid`, issuer: eid.oidcIssuer, clientId: portalClientId(country), redirectUri: `${apiUrl}/api/v1/auth/callback`, purpose: 'citizen', allowInsecureHttp: true },
          { id: `${lc}-hcp-eid`, issuer: eid.oidcIssuer, clientId: ehrClientId(country), purpose: 'hcp', allowInsecureHttp: true },
        ],
        saml: [{ id: `${lc}-eidas-node`, idpEntityId: eid.samlEntityId, idpCertFiles: [eid.samlCertFile], spEntityId: `urn:ncpeh:ncp:${country}`, acsUrl: `${apiUrl}/api/v1/auth/hcp` }],
      },
      clients: [{ id: ehrClientId(country), name: `${country} hospital EHR (${opts.clientLabel})`, scopes: ['hcp-assertion', 'cross-border'], jwksFile: client.jwksFile }],
      citizen: { patientIdentifierSystem: PATIENT_SYSTEMS[country], sessionTtlSeconds: 3600, secureCookies: false },
      policy: { clockSkewSeconds: 60, breakGlass: opts.breakGlass ?? 'forbidden', hcpAssertionTtlSeconds: 3600 },
      ...(opts.fastRetry === true ? { submissions: { retry: { baseDelaySeconds: 1, maxDelaySeconds: 2, breakerThreshold: 3, breakerOpenSeconds: 1, leaseSeconds: 3 } } } : {}),
    });
    opts.configure?.(country, doc);
    await writeFile(configFile, JSON.stringify(doc, null, 2));
    return { country, apiUrl, configFile, fhir, eid, client };
  } catch (e) {
    await eid.close().catch(() => undefined);
    await fhir.close().catch(() => undefined);
    throw e;
  }
}

/** Signs a professional in at a country's gateway through its eIDAS SAML IdP; returns the HCP assertion. */
export async function hcpSignInAt(
  cw: Pick<PreparedCountry, 'apiUrl' | 'eid' | 'client'>,
  personId: string,
  o: { purpose?: 'TREAT' | 'ETREAT'; loa?: 'low' | 'substantial' | 'high' } = {},
): Promise<string> {
  const sso = await fetch(`${cw.eid.samlUrl}/sso?person=${encodeURIComponent(personId)}&loa=${o.loa ?? 'substantial'}`);
  const { SAMLResponse } = (await sso.json()) as { SAMLResponse: string };
  const res = await fetch(`${cw.apiUrl}/api/v1/auth/hcp`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: await clientAssertion(cw.client, `${cw.apiUrl}/api/v1/auth/hcp`),
      saml_response: SAMLResponse,
      purpose_of_use: o.purpose ?? 'TREAT',
    }),
  });
  const body = (await res.json()) as { access_token?: string };
  if (res.status !== 200 || body.access_token === undefined) throw new Error(`HCP sign-in failed: ${res.status} ${JSON.stringify(body)}`);
  return body.access_token;
}

/** Signs a citizen in at a country's gateway (OIDC code flow through the real OP); returns the session token. */
export async function citizenSignInAt(cw: Pick<PreparedCountry, 'apiUrl'>, personId: string): Promise<string> {
  const login = await fetch(`${cw.apiUrl}/api/v1/auth/login`, { redirect: 'manual' });
  const location = login.headers.get('location');
  const loginCookie = /ncpeh_login=([^;]+)/.exec(login.headers.get('set-cookie') ?? '')?.[1];
  if (location === null || loginCookie === undefined) throw new Error(`login did not redirect: ${login.status}`);
  const authUrl = new URL(location);
  authUrl.searchParams.set('login_hint', personId);
  const callback = await followLoginRedirects(authUrl.toString(), `${cw.apiUrl}/api/v1/auth/callback`);
  const res = await fetch(callback, { headers: { cookie: `ncpeh_login=${loginCookie}` } });
  const body = (await res.json()) as { access_token?: string };
  if (res.status !== 200 || body.access_token === undefined) throw new Error(`citizen sign-in failed: ${res.status} ${JSON.stringify(body)}`);
  return body.access_token;
}

export async function startWorld(
  opts: {
    breakGlass?: 'allowed' | 'forbidden';
    persistent?: boolean;
    fastRetry?: boolean;
    /** Changes a country's configuration document before its gateway starts. */
    configure?: (country: WorldCountry, doc: Record<string, unknown>) => void;
  } = {},
): Promise<World> {
  const deployment = await createTestDeployment({ countries: ['DK', 'ES'] });
  const parts: Partial<Record<WorldCountry, CountryWorld>> = {};
  const databases: Partial<Record<WorldCountry, TestDatabase>> = {};
  const closers: Array<() => Promise<void>> = [];
  try {
    for (const country of ['DK', 'ES'] as const) {
      const lc = country.toLowerCase();
      const { apiUrl, fhir, eid, client } = await prepareCountry(deployment, country, {
        clientLabel: 'test',
        ...(opts.breakGlass === undefined ? {} : { breakGlass: opts.breakGlass }),
        ...(opts.fastRetry === undefined ? {} : { fastRetry: opts.fastRetry }),
        ...(opts.configure === undefined ? {} : { configure: opts.configure }),
      });
      closers.push(() => fhir.close());
      closers.push(() => eid.close());
      const database = opts.persistent === true ? await persistentDatabase(join(deployment.dir, `data-${lc}`)) : undefined;
      if (database !== undefined) {
        databases[country] = database;
        closers.push(() => database.drop());
      }
      const gateway = await startTestGateway(deployment, country, {}, database);
      closers.push(() => gateway.stop());
      parts[country] = { country, gateway, apiUrl, fhir, eid, client };
    }
  } catch (e) {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    await deployment.cleanup();
    throw e;
  }
  const dk = parts.DK;
  const es = parts.ES;
  if (dk === undefined || es === undefined) throw new Error('world incomplete');
  const of = (c: WorldCountry): CountryWorld => (c === 'DK' ? dk : es);
  const stopped = new Set<WorldCountry>();

  const world: World = {
    deployment,
    dk,
    es,
    clientAssertion: (c) => clientAssertion(of(c).client, `${of(c).apiUrl}/api/v1/auth/hcp`),
    hcpSignIn: (c, personId, o = {}) => hcpSignInAt(of(c), personId, o),
    citizenSignIn: (c, personId) => citizenSignInAt(of(c), personId),
    async stopGateway(c) {
      if (stopped.has(c)) return;
      stopped.add(c);
      await of(c).gateway.stop();
    },
    databaseEnv(c) {
      const database = databases[c];
      if (database === undefined) throw new Error('databaseEnv needs startWorld({ persistent: true })');
      return database.env;
    },
    async restartGateway(c) {
      const database = databases[c];
      if (database === undefined) throw new Error('restartGateway needs startWorld({ persistent: true })');
      if (!stopped.has(c)) throw new Error(`${c} is running`);
      of(c).gateway = await startTestGateway(deployment, c, {}, database);
      stopped.delete(c);
    },
    async close() {
      for (const c of ['DK', 'ES'] as const) {
        if (!stopped.has(c)) {
          stopped.add(c);
          await of(c).gateway.stop().catch(() => undefined);
        }
      }
      for (const cw of [dk, es]) {
        await cw.eid.close().catch(() => undefined);
        await cw.fhir.close().catch(() => undefined);
      }
      for (const db of Object.values(databases)) await db.drop().catch(() => undefined);
      await deployment.cleanup();
    },
  };
  return world;
}

