/**
 * Kenneth's world for the benchmark: the test world's countries (test/helpers/world.ts
 * `prepareCountry`), but with each gateway in its own `ncpeh serve` process. The national FHIR
 * servers and eID providers stay in this (orchestrating) process, the load generator is a third
 * process (lib.ts `autocannon`). Gateway CPU and memory are then the gateway's alone, read from /proc.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { SandboxClientFiles } from '../sandbox/clients.js';
import type { CountryEid } from '../sandbox/eid.js';
import type { RunningFhirServer } from '../sandbox/fhir-server.js';
import { createTestDeployment, type TestDeployment } from '../test/helpers/deployment.js';
import { citizenSignInAt, hcpSignInAt, prepareCountry } from '../test/helpers/world.js';
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
  startGateways(storage: Storage, opts?: { cpuProfDir?: string; perfMap?: boolean; freshSchemas?: boolean }): Promise<void>;
  stopGateways(): Promise<void>;
  /**
   * Each gateway's peak RSS so far (MB, by sampler name), then reset: called once the gateways are
   * ready and prepared, so that the peak read after the load is the peak under load, without
   * start-up and the one-off sign-in and identify.
   */
  resetPeaks(): Record<string, number>;
  hcpSignIn(country: Country, personId: string): Promise<string>;
  citizenSignIn(country: Country, personId: string): Promise<string>;
  close(): Promise<void>;
}

export async function startBenchWorld(db: BenchDatabase): Promise<BenchWorld> {
  const deployment = await createTestDeployment({ countries: ['DK', 'ES'] });
  const dataRoot = await mkdtemp(join(tmpdir(), 'ncpeh-bench-data-'));
  const parts: Partial<Record<Country, BenchCountry>> = {};
  for (const country of ['DK', 'ES'] as const) {
    const prepared = await prepareCountry(deployment, country, { clientLabel: 'bench' });
    parts[country] = { ...prepared, gateway: undefined };
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
        cw.gateway = await startGatewayProcess({
          configFile: cw.configFile,
          storageEnv,
          ...(opts.cpuProfDir === undefined ? {} : { cpuProfDir: opts.cpuProfDir }),
          ...(opts.perfMap === true ? { perfMap: true } : {}),
        });
      }
    },
    async stopGateways() {
      for (const cw of [es, dk]) {
        await cw.gateway?.stop();
        cw.gateway = undefined;
      }
    },
    resetPeaks() {
      const out: Record<string, number> = {};
      for (const cw of [es, dk]) {
        if (cw.gateway === undefined) throw new Error('gateways not running');
        out[`${cw.country} gateway`] = cw.gateway.resetPeak();
      }
      return out;
    },
    hcpSignIn: (c, personId) => hcpSignInAt(of(c), personId),
    citizenSignIn: (c, personId) => citizenSignInAt(of(c), personId),
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
