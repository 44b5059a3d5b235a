/**
 * Replay protection for peer requests: every `jti` is remembered, per issuing gateway, until the
 * request could no longer pass the expiry check anyway. RFC 7519 section 4.1.7 makes `jti` the
 * handle for this; RFC 8725 section 3.10 asks the recipient to keep state to stop replays.
 */
import type { Queryable } from '../storage/db.js';
import { GatewayError } from '../http/errors.js';

export interface ReplayStore {
  /**
   * Records `jti` under `scope` until `expiresAt`. Resolves `true` the first time a pair is seen and
   * `false` on every later call while the entry is kept. Atomic: of two concurrent calls with the
   * same pair, exactly one gets `true`.
   */
  remember(scope: string, jti: string, expiresAt: Date): Promise<boolean>;
}

/**
 * The production store, on table `replay_cache (scope, jti, expires_at, primary key (scope, jti))`
 * from migrations/001_init.sql. The primary key makes the insert the atomic test-and-set, so
 * several gateway processes sharing one database still see each `jti` exactly once.
 *
 * An expired row that has not been purged yet still refuses its pair. That is deliberately stricter
 * than needed: a request carrying an expired `jti` fails the expiry check before it gets here.
 */
export class DbReplayStore implements ReplayStore {
  readonly #db: Queryable;
  readonly #now: () => Date;

  constructor(db: Queryable, options: { now?: () => Date } = {}) {
    this.#db = db;
    this.#now = options.now ?? (() => new Date());
  }

  async remember(scope: string, jti: string, expiresAt: Date): Promise<boolean> {
    const result = await this.#db.query(
      'INSERT INTO replay_cache (scope, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT (scope, jti) DO NOTHING',
      [scope, jti, expiresAt.toISOString()],
    );
    return result.rowCount === 1;
  }

  /** Deletes entries whose expiry has passed; returns how many. Run periodically. */
  /** Whether `jti` is remembered (and not yet expired) under `scope`, e.g. a signed-out session. */
  async has(scope: string, jti: string): Promise<boolean> {
    const { rows } = await this.#db.query('SELECT 1 FROM replay_cache WHERE scope = $1 AND jti = $2 AND expires_at > now()', [scope, jti]);
    return rows.length > 0;
  }

  async purgeExpired(): Promise<number> {
    const result = await this.#db.query('DELETE FROM replay_cache WHERE expires_at < $1', [this.#now().toISOString()]);
    return result.rowCount;
  }
}

/**
 * In-process store for unit tests and single-process tools. Bounded: when full even after dropping
 * expired entries it refuses new ones with `service.unavailable` rather than evicting live entries,
 * because evicting a live `jti` would let that request be replayed.
 */
export class MemoryReplayStore implements ReplayStore {
  readonly #entries = new Map<string, number>();
  readonly #maxEntries: number;
  readonly #now: () => Date;

  constructor(options: { maxEntries?: number; now?: () => Date } = {}) {
    this.#maxEntries = options.maxEntries ?? 100_000;
    this.#now = options.now ?? (() => new Date());
  }

  get size(): number {
    return this.#entries.size;
  }

  async remember(scope: string, jti: string, expiresAt: Date): Promise<boolean> {
    // NUL cannot appear in a scope we build, so the joined key is unambiguous.
    const key = `${scope}\u0000${jti}`;
    const now = this.#now().getTime();
    const known = this.#entries.get(key);
    if (known !== undefined && known >= now) return false;
    if (known === undefined && this.#entries.size >= this.#maxEntries) {
      this.#purge(now);
      if (this.#entries.size >= this.#maxEntries) {
        throw new GatewayError('service.unavailable', 'replay cache is full');
      }
    }
    this.#entries.set(key, expiresAt.getTime());
    return true;
  }

  async purgeExpired(): Promise<number> {
    return this.#purge(this.#now().getTime());
  }

  #purge(now: number): number {
    let removed = 0;
    for (const [key, expiresAt] of this.#entries) {
      if (expiresAt < now) {
        this.#entries.delete(key);
        removed += 1;
      }
    }
    return removed;
  }
}
