import type { Config } from '../config/schema.js';
import type { Db } from './db.js';
import type { PgPoolOptions, StorageLog } from './pg.js';

export interface OpenDbOptions {
  /** A PostgreSQL connection string; when set, the pg adapter is used. */
  databaseUrl?: string | undefined;
  /** PGlite data directory (created when missing); undefined or 'memory://' keeps data in memory. */
  dataDir?: string | undefined;
  production: boolean;
  pool?: PgPoolOptions | undefined;
  log?: StorageLog | undefined;
}

export const PGLITE_IN_PRODUCTION_MESSAGE =
  'Embedded PGlite storage is for development only; set DATABASE_URL to a PostgreSQL server when NODE_ENV=production';

/**
 * Each adapter is imported only when it is chosen: a gateway on PostgreSQL never loads PGlite, whose
 * JavaScript cost every production process 0.9 MB of heap and about 4 MB of resident memory
 * (bench/README.md), nor one on PGlite `pg`.
 */
export async function openDb(opts: OpenDbOptions): Promise<Db> {
  if (opts.databaseUrl !== undefined && opts.databaseUrl !== '') {
    const { createPgDb } = await import('./pg.js');
    return createPgDb({ connectionString: opts.databaseUrl, ...opts.pool, log: opts.log });
  }
  // One embedded single-connection backend, no replication, no backups: not a production database.
  if (opts.production) throw new Error(PGLITE_IN_PRODUCTION_MESSAGE);
  if (opts.dataDir === undefined || opts.dataDir === 'memory://') {
    const { createPgliteDb } = await import('./pglite.js');
    return createPgliteDb({});
  }
  // Created if missing; a new cluster is copied from a template of a migrated one (pglite-template.ts).
  const { openPgliteDataDir } = await import('./pglite-template.js');
  return openPgliteDataDir(opts.dataDir, { log: opts.log });
}

/** The database a configuration names (`database.url`, else PGlite in `database.dataDir`). */
export function openConfiguredDb(config: Readonly<Config>, log?: StorageLog): Promise<Db> {
  return openDb({
    databaseUrl: config.database.url,
    dataDir: config.database.url === undefined ? config.database.dataDir : undefined,
    production: process.env.NODE_ENV === 'production',
    pool: {
      max: config.database.poolMax,
      ...(config.database.statementTimeoutMs === 0 ? {} : { statementTimeoutMillis: config.database.statementTimeoutMs }),
    },
    log,
  });
}
