import { AsyncLocalStorage } from 'node:async_hooks';
import { PGlite, type Results, type Transaction } from '@electric-sql/pglite';
import type { QueryResult, Row } from './db.js';
import { storageUnavailable } from './errors.js';
import type { ScriptQueryable } from './migrate.js';
import type { ScriptableDb } from './pg.js';

export interface PgliteOptions {
  /** A directory for a persistent cluster; undefined or 'memory://' keeps everything in memory. */
  dataDir?: string | undefined;
  /** Start an in-memory cluster from a `dumpDataDir()` tarball (tests: a pre-migrated template). */
  loadDataDir?: Blob | undefined;
}

/**
 * FIFO lock over a promise chain. PGlite is one backend with one session: a statement from another
 * caller sent between a transaction's BEGIN and COMMIT would silently become part of it. PGlite's own
 * query() does not wait for its transaction(), so every operation on this adapter takes this lock.
 */
class Lock {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(fn);
    this.#tail = result.catch(() => undefined);
    return result;
  }
}

function toResult<R extends Row>(res: Results<R>): QueryResult<R> {
  // PGlite's `rowCount` is per statement like pg's; `affectedRows` is 0 for SELECT.
  return { rows: res.rows, rowCount: res.rowCount ?? res.affectedRows ?? res.rows.length };
}

function bindTx(ptx: Transaction): ScriptQueryable {
  return {
    async query<R extends Row = Row>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
      return toResult(await ptx.query<R>(sql, params === undefined ? undefined : [...params]));
    },
    async exec(sql: string): Promise<void> {
      await ptx.exec(sql);
    },
  };
}

/**
 * PGlite's cluster starts with PostgreSQL's default 128 MB of shared buffers, all of it in the
 * process's WebAssembly memory. A development gateway's data fits in far less: 16 MB took the
 * resident size of an idle PGlite from about 365 to 205 MB (bench/README.md, start-up).
 */
export const PGLITE_CONF = 'shared_buffers = 16MB';

export async function createPgliteDb(opts: PgliteOptions = {}): Promise<ScriptableDb> {
  const dataDir = opts.dataDir === 'memory://' ? undefined : opts.dataDir;
  const pglite = new PGlite({
    ...(dataDir === undefined ? {} : { dataDir }),
    ...(opts.loadDataDir === undefined ? {} : { loadDataDir: opts.loadDataDir }),
    postgresqlconf: PGLITE_CONF,
  });
  await pglite.waitReady;
  return wrapPglite(pglite);
}

/** The adapter over an already open PGlite, which it then owns (close() closes it). */
export function wrapPglite(pglite: PGlite): ScriptableDb {
  const lock = new Lock();
  // Marks code running inside one of this adapter's transactions. Calling the outer db from there
  // would wait for the lock that very transaction holds: a silent deadlock, so it fails loudly instead.
  const insideTx = new AsyncLocalStorage<{ active: boolean }>();
  const refuseReentry = (): void => {
    if (insideTx.getStore()?.active === true) {
      throw new Error('the database was used directly inside a transaction; use the transaction handle');
    }
  };
  let closing: Promise<void> | undefined;

  return {
    kind: 'pglite',

    async query<R extends Row = Row>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
      refuseReentry();
      const res = await lock.run(() => pglite.query<R>(sql, params === undefined ? undefined : [...params]));
      return toResult(res);
    },

    async transaction<T>(fn: (tx: ScriptQueryable) => Promise<T>): Promise<T> {
      refuseReentry();
      return lock.run(async () => {
        const marker = { active: true };
        try {
          return await insideTx.run(marker, () => pglite.transaction((ptx) => fn(bindTx(ptx))));
        } finally {
          marker.active = false;
        }
      });
    },

    async ping(): Promise<void> {
      try {
        await lock.run(() => pglite.query('SELECT 1'));
      } catch (e) {
        throw storageUnavailable(e, 'embedded database ping failed');
      }
    },

    close(): Promise<void> {
      // Queued behind in-flight work, so a transaction is never cut off by shutdown.
      closing ??= lock.run(() => pglite.close());
      return closing;
    },
  };
}
