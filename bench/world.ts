/**
 * Kenneth's world for the benchmark, modelled on test/helpers/world.ts but with each gateway in its
 * own `ncpeh serve` process: the national FHIR servers and eID providers stay in this (orchestrating)
 * process, the load generator is a third process (lib.ts `autocannon`). Gateway CPU and memory are
 * then the gateway's alone, read from /proc.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { clientAssertion, ensureSandboxClient, type SandboxClientFiles } from '../sandbox/clients.js';
import { ehrClientId, portalClientId, startCountryEid, type CountryEid } from '../sandbox/eid.js';
import { startFhirServer, type RunningFhirServer } from '../sandbox/fhir-server.js';
import { followLoginRedirects } from '../sandbox/oidc-op.js';
import { createTestDeployment, freePort, type TestDeployment } from '../test/helpers/deployment.js';
import { PATIENT_SYSTEMS } from '../test/helpers/world.js';
import { startGatewayProcess, type GatewayProcess } from './gateway-process.js';

export type Country = 'DK' | 'ES';
export type Storage = 'pg' | 'pglite';

export interface BenchCountry {
  readonly country: Country;
  readonly apiUrl: string;
  readonly configFile: string;
  readonly fhir: RunningFhirServer;
  readonly eid: CountryEid;
  readonly client: SandboxClientFiles;
  gateway: GatewayProcess | undefined;
}

/** A database of our own on the shared server, with one schema per country; dropped at the end. */
export class BenchDatabase {
  readonly name = `ncpeh_bench_${process.pid}`;
  constructor(readonly adminUrl: string) {}

  private async admin<T>(url: string, work: (c: pg.Client) => Promise<T>): Promise<T> {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      return await work(client);
    } finally {
      await client.end();
    }
  }

  get url(): string {
    const u = new URL(this.adminUrl);
    u.pathname = `/${this.name}`;
    return u.toString();
  }

  async create(): Promise<void> {
    await this.admin(this.adminUrl, (c) => c.query(`CREATE DATABASE ${this.name}`));
  }

  /** A fresh schema; gateways connect with search_path pinned to it (as the test helpers do). */
  async schemaUrl(schema: string): Promise<string> {
    await this.admin(this.url, (c) => c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE; CREATE SCHEMA ${schema}`));
    const u = new URL(this.url);
    u.searchParams.set('options', `-c search_path=${schema}`);
    return u.toString();
  }

  async drop(): Promise<void> {
    await this.admin(this.adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${this.name} WITH (FORCE)`));
  }
}

export interface BenchWorld {
  readonly deployment: TestDeployment;
  readonly dk: BenchCountry;
  readonly es: BenchCountry;
  /** Starts both gateways (DK first: ES's peer client needs it only at request time, but order is cheap). */
  startGateways(storage: Storage, opts?: { cpuProfDir?: string; freshSchemas?: boolean }): Promise<void>;
  stopGateways(): Promise<void>;
  hcpSignIn(country: Country, personId: string): Promise<string>;
  citizenSignIn(country: Country, personId: string): Promise<string>;
  close(): Promise<void>;
}

export async function startBenchWorld(db: BenchDatabase): Promise<BenchWorld> {
  const deployment = await createTestDeployment({ countries: ['DK', 'ES'] });
  const dataRoot = await mkdtemp(join(tmpdir(), 'ncpeh-bench-data-'));
  const parts: Partial<Record<Country, BenchCountry>> = {};
  for (const country of ['DK', 'ES'] as const) {
    const lc = country.toLowerCase();
    const apiPort = await freePort();
    const apiUrl = `http://127.0.0.1:${apiPort}`;
    const fhir = await startFhirServer({ port: 0, seed: country });
    const eid = await startCountryEid({ country, sandboxDir: deployment.dir, gatewayApiUrl: apiUrl, ports: { oidc: await freePort(), saml: await freePort() } });
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
      clients: [{ id: ehrClientId(country), name: `${country} hospital EHR (bench)`, scopes: ['hcp-assertion', 'cross-border'], jwksFile: client.jwksFile }],
      citizen: { patientIdentifierSystem: PATIENT_SYSTEMS[country], sessionTtlSeconds: 3600, secureCookies: false },
      policy: { clockSkewSeconds: 60, breakGlass: 'forbidden', hcpAssertionTtlSeconds: 3600 },
    });
    await writeFile(configFile, JSON.stringify(doc, null, 2));
    parts[country] = { country, apiUrl, configFile, fhir, eid, client, gateway: undefined };
  }
  const dk = parts.DK;
  const es = parts.ES;
  if (dk === undefined || es === undefined) throw new Error('world incomplete');
  const of = (c: Country): BenchCountry => (c === 'DK' ? dk : es);

  const world: BenchWorld = {
    deployment,
    dk,
    es,
    async startGateways(storage, opts = {}) {
      for (const cw of [dk, es]) {
        const lc = cw.country.toLowerCase();
        const storageEnv =
          storage === 'pg'
            ? { DATABASE_URL: opts.freshSchemas === false ? `${db.url}?options=${encodeURIComponent(`-c search_path=${lc}`)}` : await db.schemaUrl(lc) }
            : { NCPEH_DATA_DIR: join(dataRoot, lc) };
        cw.gateway = await startGatewayProcess({ configFile: cw.configFile, storageEnv, ...(opts.cpuProfDir === undefined ? {} : { cpuProfDir: opts.cpuProfDir }) });
      }
    },
    async stopGateways() {
      for (const cw of [es, dk]) {
        await cw.gateway?.stop();
        cw.gateway = undefined;
      }
    },
    async hcpSignIn(c, personId) {
      const cw = of(c);
      const sso = await fetch(`${cw.eid.samlUrl}/sso?person=${encodeURIComponent(personId)}&loa=substantial`);
      const { SAMLResponse } = (await sso.json()) as { SAMLResponse: string };
      const res = await fetch(`${cw.apiUrl}/api/v1/auth/hcp`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
          client_assertion: await clientAssertion(cw.client, `${cw.apiUrl}/api/v1/auth/hcp`),
          saml_response: SAMLResponse,
          purpose_of_use: 'TREAT',
        }),
      });
      const body = (await res.json()) as { access_token?: string };
      if (res.status !== 200 || body.access_token === undefined) throw new Error(`HCP sign-in failed: ${res.status} ${JSON.stringify(body)}`);
      return body.access_token;
    },
    async citizenSignIn(c, personId) {
      const cw = of(c);
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
    },
    async close() {
      await world.stopGateways().catch(() => undefined);
      for (const cw of [dk, es]) {
        await cw.eid.close().catch(() => undefined);
        await cw.fhir.close().catch(() => undefined);
      }
      await deployment.cleanup();
      await rm(dataRoot, { recursive: true, force: true });
    },
  };
  return world;
}
