/**
 * Real gateways for tests: loaded from a TestDeployment's config files through the same boot path
 * as `ncpeh serve` (startGateway), on in-memory PGlite or a fresh PostgreSQL schema.
 */
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { createPgDb } from '../../src/storage/pg.js';
import { urlWithSearchPath } from './db.js';
import type { Logger } from 'pino';
import type { GatewayDeps } from '../../src/app.js';
import { loadConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/http/logger.js';
import { createMetrics } from '../../src/http/metrics.js';
import { createTrustStore, startGateway, type RunningGateway } from '../../src/main.js';
import type { Db } from '../../src/storage/db.js';
import { loadGatewayKeys } from '../../src/trust/keys.js';
import { createServices } from '../../src/services.js';
import type { TestDeployment } from './deployment.js';

export interface LogCapture {
  readonly stream: Writable;
  readonly lines: string[];
}

export function memoryLog(): LogCapture {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString('utf8').split('\n').filter((l) => l.length > 0));
      cb();
    },
  });
  return { stream, lines };
}

export interface TestDatabase {
  readonly env: NodeJS.ProcessEnv;
  drop(): Promise<void>;
}

/**
 * @param database a database to use (and keep) across restarts; by default a fresh one that is
 *   dropped when the gateway stops
 */
export async function startTestGateway(
  deployment: TestDeployment,
  country: string,
  env: NodeJS.ProcessEnv = {},
  database?: TestDatabase,
): Promise<RunningGateway & { log: LogCapture }> {
  if (database !== undefined) return startWithDatabase(deployment, country, env, database);
  const fresh = await isolatedDatabase();
  const running = await startWithDatabase(deployment, country, env, fresh).catch(async (e: unknown) => {
    await fresh.drop();
    throw e;
  });
  const stopGateway = running.stop;
  return {
    ...running,
    stop: async () => {
      await stopGateway();
      await fresh.drop();
    },
  };
}

async function startWithDatabase(
  deployment: TestDeployment,
  country: string,
  env: NodeJS.ProcessEnv,
  database: TestDatabase,
): Promise<RunningGateway & { log: LogCapture }> {
  const config = loadConfig(deployment.configFile(country), { NCPEH_DATA_DIR: 'memory://', ...database.env, ...env });
  const log = memoryLog();
  const logger = createLogger({ level: 'info', country, destination: log.stream });
  const running = await startGateway(config, logger);
  return { ...running, log };
}

/** A database that outlives gateway restarts: a PGlite data directory, or a PostgreSQL schema. */
export async function persistentDatabase(dataDir: string): Promise<TestDatabase> {
  const url = process.env.DATABASE_URL;
  if (url === undefined || url === '') return { env: { NCPEH_DATA_DIR: dataDir }, drop: async () => undefined };
  return isolatedDatabase();
}

/**
 * With DATABASE_URL (CI's second pass) each gateway gets a fresh schema of its own, as two
 * countries never share a database; otherwise in-memory PGlite.
 */
async function isolatedDatabase(): Promise<TestDatabase> {
  const url = process.env.DATABASE_URL;
  if (url === undefined || url === '') return { env: {}, drop: async () => undefined };
  const schema = `g_${randomBytes(8).toString('hex')}`;
  const admin = createPgDb({ connectionString: url, max: 1 });
  try {
    await admin.query(`CREATE SCHEMA ${schema}`);
  } finally {
    await admin.close();
  }
  return {
    env: { DATABASE_URL: urlWithSearchPath(url, schema) },
    drop: async () => {
      const db = createPgDb({ connectionString: url, max: 1 });
      try {
        await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      } finally {
        await db.close();
      }
    },
  };
}

/** Dependencies for building the apps in-process (inject tests), from a deployment's real files. */
export async function testGatewayDeps(deployment: TestDeployment, country: string, db: Db, logger: Logger): Promise<GatewayDeps> {
  const config = loadConfig(deployment.configFile(country), {});
  const metrics = createMetrics({ country, defaultMetrics: false });
  const trust = await createTrustStore(config, logger, metrics);
  await trust.load();
  const keys = await loadGatewayKeys(config.keys);
  return { config, db, logger, metrics, keys, trust, services: await createServices({ config, db, keys, trust, metrics, logger }) };
}
