import pg from 'pg';
import type { Db, QueryResult, Row } from './db.js';
import { isConnectionFailure, isStorageUnavailable, storageUnavailable, translateStorageError } from './errors.js';
import type { ScriptQueryable } from './migrate.js';

export type StorageLog = (msg: string, extra?: object) => void;

export interface PgPoolOptions {
  /** Upper bound on connections per gateway process; replicas x max must stay under max_connections. */
  max?: number | undefined;
  /** How long a request waits for a connection before it gets storage.unavailable. */
  connectionTimeoutMillis?: number | undefined;
  idleTimeoutMillis?: number | undefined;
  /** Server-side statement_timeout; unset leaves the server default. */
  statementTimeoutMillis?: number | undefined;
}

export interface PgOptions extends PgPoolOptions {
  connectionString: string;
  applicationName?: string | undefined;
  log?: StorageLog | undefined;
}

/** A Db whose transaction handle can also run multi-statement scripts (for the migration runner). */
export interface ScriptableDb extends Db {
  transaction<T>(fn: (tx: ScriptQueryable) => Promise<T>): Promise<T>;
}

type Executor = Pick<pg.ClientBase, 'query'>;

async function runQuery<R extends Row>(on: Executor, sql: string, params: readonly unknown[] | undefined): Promise<QueryResult<R>> {
  // Always the extended protocol, as PGlite's query() uses: one statement per call, in both adapters,
  // so multi-statement SQL that works in development cannot break in production (or the reverse).
  // `queryMode` is supported by pg but missing from @types/pg, hence the non-literal config.
  const config = { text: sql, values: params === undefined ? [] : [...params], queryMode: 'extended' };
  try {
    const res = await on.query<R>(config);
    return { rows: res.rows, rowCount: res.rowCount ?? res.rows.length };
  } catch (e) {
    throw translateStorageError(e);
  }
}

function errorFields(e: unknown): object {
  if (!(e instanceof Error)) return { error: String(e) };
  return { error: e.message, code: 'code' in e ? e.code : undefined };
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

export function createPgDb(opts: PgOptions): ScriptableDb {
  const log = opts.log;
  const pool = new pg.Pool({
    connectionString: opts.connectionString,
    max: opts.max ?? 10,
    connectionTimeoutMillis: opts.connectionTimeoutMillis ?? 5_000,
    idleTimeoutMillis: opts.idleTimeoutMillis ?? 30_000,
    // Dead peers (failover, dropped NAT entries) are noticed by the kernel instead of hanging a query.
    keepAlive: true,
    application_name: opts.applicationName ?? 'ncpeh',
    ...(opts.statementTimeoutMillis === undefined ? {} : { statement_timeout: opts.statementTimeoutMillis }),
  });
  // An idle client whose server went away (restart, pg_terminate_backend) is emitted here; without a
  // listener Node would crash the gateway. pg.Pool already discarded the client, so logging is all.
  pool.on('error', (err) => log?.('idle PostgreSQL connection failed; the pool will reconnect', errorFields(err)));

  let closing: Promise<void> | undefined;

  return {
    kind: 'pg',

    query<R extends Row = Row>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
      return runQuery<R>(pool, sql, params);
    },

    async transaction<T>(fn: (tx: ScriptQueryable) => Promise<T>): Promise<T> {
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (e) {
        throw translateStorageError(e);
      }
      let broken: Error | undefined;
      // pg.Pool removes its own error listener from a checked-out client; an error arriving between
      // two statements (fn awaiting something else) would otherwise be an uncaught 'error' event.
      const onError = (err: Error): void => {
        broken = err;
        log?.('PostgreSQL connection failed during a transaction', errorFields(err));
      };
      client.on('error', onError);
      let open = true;
      const checkOpen = (): void => {
        if (!open) throw new Error('transaction handle used after its transaction ended');
      };
      const tx: ScriptQueryable = {
        query<R extends Row = Row>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
          checkOpen();
          return runQuery<R>(client, sql, params);
        },
        async exec(sql: string): Promise<void> {
          checkOpen();
          try {
            // No values: pg uses the simple protocol, which accepts several statements.
            await client.query(sql);
          } catch (e) {
            throw translateStorageError(e);
          }
        },
      };

      try {
        await runQuery(client, 'BEGIN', undefined);
        const result = await fn(tx);
        let commit: pg.QueryResult;
        try {
          commit = await client.query('COMMIT');
        } catch (e) {
          // The connection dropped at COMMIT: the outcome is unknown to us, the caller must retry
          // idempotently, which is what storage.unavailable tells it.
          throw translateStorageError(e);
        }
        // PostgreSQL answers COMMIT of an aborted transaction (fn swallowed an SQL error) with a
        // ROLLBACK tag and no error; PGlite throws. Reporting success here would lose writes silently.
        if (commit.command === 'ROLLBACK') {
          throw new Error('transaction was aborted by an earlier statement error and has been rolled back');
        }
        return result;
      } catch (e) {
        if (broken === undefined && !isConnectionFailure(e) && !isStorageUnavailable(e)) {
          try {
            await client.query('ROLLBACK');
          } catch (rollbackError) {
            broken = asError(rollbackError);
          }
        } else {
          broken ??= asError(e);
        }
        throw e;
      } finally {
        open = false;
        client.removeListener('error', onError);
        // Releasing with an error destroys the client, so the pool never hands out a dead connection
        // again; that is what lets the gateway ride out a PostgreSQL restart.
        client.release(broken);
      }
    },

    async ping(): Promise<void> {
      try {
        await pool.query('SELECT 1');
      } catch (e) {
        throw isStorageUnavailable(e) ? e : storageUnavailable(e, 'database ping failed');
      }
    },

    close(): Promise<void> {
      closing ??= pool.end();
      return closing;
    },
  };
}
