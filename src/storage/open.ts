import type { Config } from '../config/schema.js';
import type { Db } from './db.js';
import { createPgDb, type PgPoolOptions, type StorageLog } from './pg.js';
import { createPgliteDb } from './pglite.js';
import { openPgliteDataDir } from './pglite-template.js';

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

export async function openDb(opts: OpenDbOptions): Promise<Db> {
  if (opts.databaseUrl !== undefined && opts.databaseUrl !== '') {
    return createPgDb({ connectionString: opts.databaseUrl, ...opts.pool, log: opts.log });
  }
  // One embedded single-connection backend, no replication, no backups: not a production database.
  if (opts.production) throw new Error(PGLITE_IN_PRODUCTION_MESSAGE);
  if (opts.dataDir === undefined || opts.dataDir === 'memory://') return createPgliteDb({});
  // Created if missing; a new cluster is copied from a template of a migrated one (pglite-template.ts).
  return openPgliteDataDir(opts.dataDir, { log: opts.log });
}

/** The database a configuration names (`database.url`, else PGlite in `database.dataDir`). */
export function openConfiguredDb(config: Readonly<Config>, log?: StorageLog): Promise<Db> {
  return openDb({
    databaseUrl: config.database.url,
    dataDir: config.database.url === undefined ? config.database.dataDir : undefined,
    production: process.env.NODE_ENV === 'production',
    pool: { max: config.database.poolMax },
    log,
  });
}
