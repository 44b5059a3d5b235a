/**
 * The storage port. Everything above src/storage talks to PostgreSQL through this interface only,
 * whether the adapter underneath is a pg.Pool (production, DATABASE_URL) or embedded PGlite.
 */

export type Row = Record<string, unknown>;

export interface QueryResult<R extends Row = Row> {
  rows: R[];
  rowCount: number;
}

export interface Queryable {
  query<R extends Row = Row>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>>;
}

export interface Db extends Queryable {
  readonly kind: 'pg' | 'pglite';
  /**
   * Runs `fn` inside BEGIN/COMMIT on one connection; any throw rolls back and is rethrown.
   * Transactions never interleave on one connection (PGlite has only one).
   */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Cheap round trip for readiness checks; throws GatewayError('storage.unavailable') on failure. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
