import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Db, Queryable } from './db.js';

/**
 * Forward-only migrations: numbered plain SQL files, each applied once in its own transaction
 * together with its bookkeeping row, and never edited after it was applied anywhere.
 */

/** A transaction handle that can also run a multi-statement script (both adapters provide one). */
export interface ScriptQueryable extends Queryable {
  exec(sql: string): Promise<void>;
}

export type MigrationLog = (msg: string, extra?: object) => void;

export interface Migration {
  readonly version: number;
  readonly file: string;
  readonly sql: string;
  readonly checksum: string;
}

export interface MigrationReport {
  /** File names applied by this run, in order. */
  applied: string[];
  /** Migration files found already applied (by an earlier start or a concurrent replica). */
  alreadyApplied: number;
}

export class MigrationError extends Error {
  override readonly name = 'MigrationError';
}

const FILE_NAME = /^(\d{3})_[a-z0-9_]+\.sql$/;

/**
 * Key for pg_advisory_xact_lock, shared by every replica of this gateway on one database, so two
 * replicas starting together apply each migration once. Arbitrary constant ("ncpe" in ASCII).
 */
const MIGRATION_LOCK_KEY = 0x6e637065;

function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

function canExec(tx: Queryable): tx is ScriptQueryable {
  return 'exec' in tx && typeof tx.exec === 'function';
}

/**
 * Every `.sql` file must be named `NNN_name.sql`: a misnamed one would otherwise be skipped without a
 * word and its schema change silently missing. Files with other extensions (README.md) are ignored.
 */
export async function readMigrations(dir: string): Promise<Migration[]> {
  const byVersion = new Map<number, Migration>();
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.sql')) continue;
    const match = FILE_NAME.exec(entry.name);
    if (match?.[1] === undefined) {
      throw new MigrationError(`migration file name ${entry.name} does not match NNN_name.sql (three digits, lower-case name)`);
    }
    const version = Number(match[1]);
    const clash = byVersion.get(version);
    if (clash !== undefined) {
      throw new MigrationError(`migrations ${clash.file} and ${entry.name} share the number ${match[1]}`);
    }
    const sql = await readFile(join(dir, entry.name), 'utf8');
    byVersion.set(version, { version, file: entry.name, sql, checksum: sha256(sql) });
  }
  return [...byVersion.values()].sort((a, b) => a.version - b.version);
}

interface AppliedRow {
  [column: string]: unknown;
  version: number;
  name: string;
  checksum: string;
}

async function takeLock(tx: Queryable): Promise<void> {
  // A migration (or the wait for another replica's) may rightly take longer than the statement
  // timeout the gateway sets for its requests (config database.statementTimeoutMs).
  await tx.query('SET LOCAL statement_timeout = 0');
  await tx.query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`);
}

function checkUnchanged(m: Migration, row: AppliedRow): void {
  if (row.name !== m.file) {
    throw new MigrationError(`migration ${m.version} was applied as ${row.name} but is now named ${m.file}; applied migrations must not be renamed`);
  }
  if (row.checksum !== m.checksum) {
    throw new MigrationError(
      `migration ${m.file} was edited after it was applied (checksum ${row.checksum} in the database, ${m.checksum} on disk); ` +
        'migrations are forward-only: restore the file and add a new migration instead',
    );
  }
}

export async function runMigrations(db: Db, dir: string, log?: MigrationLog): Promise<MigrationReport> {
  const migrations = await readMigrations(dir);

  await db.transaction(async (tx) => {
    // Under the lock: concurrent CREATE TABLE IF NOT EXISTS can still fail on the catalog's unique index.
    await takeLock(tx);
    await tx.query(
      `CREATE TABLE IF NOT EXISTS schema_migrations (
         version int PRIMARY KEY,
         name text NOT NULL,
         checksum text NOT NULL,
         applied_at timestamptz NOT NULL DEFAULT now()
       )`,
    );
  });

  const { rows: appliedRows } = await db.query<AppliedRow>('SELECT version, name, checksum FROM schema_migrations ORDER BY version');
  const local = new Map(migrations.map((m) => [m.version, m]));
  const lastLocal = migrations.at(-1)?.version ?? 0;
  for (const row of appliedRows) {
    const m = local.get(row.version);
    if (m !== undefined) {
      checkUnchanged(m, row);
    } else if (row.version > lastLocal) {
      // A newer build already migrated this database (rolling upgrade); older code keeps working
      // because migrations only add.
      log?.('database has migrations newer than this build', { version: row.version, name: row.name });
    } else {
      throw new MigrationError(`migration ${row.name} is applied in the database but its file is missing from ${dir}`);
    }
  }

  const appliedVersions = new Set(appliedRows.map((r) => r.version));
  const lastApplied = Math.max(0, ...appliedVersions);
  const pending = migrations.filter((m) => !appliedVersions.has(m.version));
  const late = pending.find((m) => m.version < lastApplied);
  if (late !== undefined) {
    throw new MigrationError(`migration ${late.file} is numbered below the already applied ${lastApplied}; number new migrations after the latest`);
  }

  const report: MigrationReport = { applied: [], alreadyApplied: migrations.length - pending.length };
  for (const m of pending) {
    const appliedHere = await db.transaction(async (tx) => {
      await takeLock(tx);
      // Another replica may have applied it while we waited for the lock.
      const { rows } = await tx.query<AppliedRow>('SELECT version, name, checksum FROM schema_migrations WHERE version = $1', [m.version]);
      const existing = rows[0];
      if (existing !== undefined) {
        checkUnchanged(m, existing);
        return false;
      }
      // A pool-wide statement_timeout is for requests, not for a schema change on a large table.
      await tx.query('SET LOCAL statement_timeout = 0');
      if (canExec(tx)) await tx.exec(m.sql);
      else await tx.query(m.sql);
      await tx.query('INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [m.version, m.file, m.checksum]);
      return true;
    });
    if (appliedHere) {
      report.applied.push(m.file);
      log?.('applied migration', { file: m.file });
    } else {
      report.alreadyApplied += 1;
    }
  }
  return report;
}

/**
 * The repository's migrations/ folder, found from this module's location so it works from src/
 * under tsx and from dist/src/ after a build. A dist/package.json (emitted when code imports
 * package.json) has no migrations/ beside it and is skipped.
 */
export function migrationsDir(from: string = import.meta.url): string {
  let dir = dirname(fileURLToPath(from));
  for (;;) {
    const candidate = join(dir, 'migrations');
    if (existsSync(join(dir, 'package.json')) && existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no migrations/ folder next to a package.json above ${fileURLToPath(from)}`);
    dir = parent;
  }
}
