import { randomBytes } from 'node:crypto';
import { PGlite } from '@electric-sql/pglite';
import type { Db, Row } from '../../src/storage/db.js';
import { migrationsDir, runMigrations, type ScriptQueryable } from '../../src/storage/migrate.js';
import { createPgDb, type ScriptableDb } from '../../src/storage/pg.js';
import { createPgliteDb, wrapPglite } from '../../src/storage/pglite.js';

export type Adapter = Db['kind'];

export interface TestDbOptions {
  /** Defaults to pg when DATABASE_URL is set, PGlite otherwise. */
  adapter?: Adapter | undefined;
  /** Migrations folder to apply; false for a bare database. Defaults to the repository's migrations/. */
  migrations?: string | false | undefined;
}

/** The adapters a test should run against: PGlite always, pg as well when DATABASE_URL is set. */
export function testAdapters(): Adapter[] {
  return process.env['DATABASE_URL'] ? ['pglite', 'pg'] : ['pglite'];
}

function databaseUrl(): string {
  const url = process.env['DATABASE_URL'];
  if (!url) throw new Error('DATABASE_URL is not set; the pg adapter cannot be tested');
  return url;
}

/** The same database URL, with every connection's search_path pinned to one schema. */
export function urlWithSearchPath(url: string, schema: string): string {
  const u = new URL(url);
  u.searchParams.set('options', `-c search_path=${schema}`);
  return u.toString();
}

async function migrate(db: Db, migrations: string | false | undefined): Promise<void> {
  if (migrations === false) return;
  try {
    await runMigrations(db, migrations ?? migrationsDir());
  } catch (e) {
    await db.close();
    throw e;
  }
}

const templates = new Map<'bare' | 'migrated', Promise<Blob>>();

/**
 * A fresh cluster, or one with the repository's migrations applied, built once per test process;
 * a cluster restored from such a dump starts about three times faster than initdb (plus migrations).
 */
function template(kind: 'bare' | 'migrated'): Promise<Blob> {
  let dump = templates.get(kind);
  if (dump === undefined) {
    dump = (async () => {
      const pglite = new PGlite();
      await pglite.waitReady;
      const db = wrapPglite(pglite);
      try {
        if (kind === 'migrated') await runMigrations(db, migrationsDir());
        return await pglite.dumpDataDir('none');
      } finally {
        await db.close();
      }
    })();
    templates.set(kind, dump);
  }
  return dump;
}

/**
 * A migrated, isolated database for one test. On PostgreSQL each call gets a fresh schema (so tests
 * can run in parallel against one database) that close() drops; on PGlite a fresh in-memory cluster.
 */
export async function openTestDb(opts: TestDbOptions = {}): Promise<Db> {
  const adapter = opts.adapter ?? (process.env['DATABASE_URL'] ? 'pg' : 'pglite');
  if (adapter === 'pglite') {
    if (opts.migrations === undefined) return createPgliteDb({ loadDataDir: await template('migrated') });
    const db = await createPgliteDb({ loadDataDir: await template('bare') });
    await migrate(db, opts.migrations);
    return db;
  }

  const url = databaseUrl();
  // Lower-case hex only, so the name is a safe unquoted identifier.
  const schema = `t_${randomBytes(8).toString('hex')}`;
  const admin = createPgDb({ connectionString: url, max: 1 });
  try {
    await admin.query(`CREATE SCHEMA ${schema}`);
  } finally {
    await admin.close();
  }
  const inner = createPgDb({ connectionString: urlWithSearchPath(url, schema), max: 5 });
  const dropSchema = async (): Promise<void> => {
    try {
      await inner.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    } finally {
      await inner.close();
    }
  };
  let closing: Promise<void> | undefined;
  const db: ScriptableDb = {
    kind: inner.kind,
    query: <R extends Row = Row>(sql: string, params?: readonly unknown[]) => inner.query<R>(sql, params),
    transaction: <T>(fn: (tx: ScriptQueryable) => Promise<T>) => inner.transaction(fn),
    ping: () => inner.ping(),
    close: () => (closing ??= dropSchema()),
  };
  await migrate(db, opts.migrations);
  return db;
}
