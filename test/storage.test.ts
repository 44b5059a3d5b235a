import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isGatewayError } from '../src/http/errors.js';
import type { Db } from '../src/storage/db.js';
import { MigrationError, migrationsDir, readMigrations, runMigrations } from '../src/storage/migrate.js';
import { openDb, PGLITE_IN_PRODUCTION_MESSAGE } from '../src/storage/open.js';
import { createPgDb } from '../src/storage/pg.js';
import { openTestDb, testAdapters, urlWithSearchPath } from './helpers/db.js';

async function withTmpDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'ncpeh-storage-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function withDb<T>(db: Db, fn: (db: Db) => Promise<T>): Promise<T> {
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

function isStorageUnavailable(e: unknown): boolean {
  return isGatewayError(e) && e.code === 'storage.unavailable' && e.retryAfter === 5;
}

async function tableExists(db: Db, name: string): Promise<boolean> {
  const { rows } = await db.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [name]);
  return rows[0]?.t !== null && rows[0]?.t !== undefined;
}

for (const adapter of testAdapters()) {
  describe(`storage on ${adapter}`, () => {
    const bare = (): Promise<Db> => openTestDb({ adapter, migrations: false });

    describe('migrations', () => {
      test('apply once, and re-running them applies nothing (idempotent restart)', async () => {
        await withDb(await bare(), async (db) => {
          const files = (await readMigrations(migrationsDir())).map((m) => m.file);
          assert.ok(files.length >= 1 && files[0] === '001_init.sql');
          const first = await runMigrations(db, migrationsDir());
          assert.deepEqual(first, { applied: files, alreadyApplied: 0 });
          assert.ok(await tableExists(db, 'replay_cache'));
          const second = await runMigrations(db, migrationsDir());
          assert.deepEqual(second, { applied: [], alreadyApplied: files.length });
          const { rows } = await db.query<{ n: string | number }>('SELECT count(*) AS n FROM schema_migrations');
          assert.equal(Number(rows[0]?.n), files.length);
        });
      });

      test('a multi-statement migration file is applied whole, in number order', async () => {
        await withTmpDir(async (dir) => {
          await writeFile(join(dir, '002_more.sql'), 'INSERT INTO a VALUES (2);\nCREATE TABLE b (x int);');
          await writeFile(join(dir, '001_first.sql'), 'CREATE TABLE a (x int);\nINSERT INTO a VALUES (1);');
          await writeFile(join(dir, 'README.md'), 'not a migration');
          await withDb(await bare(), async (db) => {
            const report = await runMigrations(db, dir);
            assert.deepEqual(report.applied, ['001_first.sql', '002_more.sql']);
            const { rows } = await db.query<{ x: number }>('SELECT x FROM a ORDER BY x');
            assert.deepEqual(rows, [{ x: 1 }, { x: 2 }]);
            assert.ok(await tableExists(db, 'b'));
          });
        });
      });

      test('refuses to run when an applied migration file was edited (forward-only)', async () => {
        await withTmpDir(async (dir) => {
          await writeFile(join(dir, '001_first.sql'), 'CREATE TABLE a (x int);');
          await withDb(await bare(), async (db) => {
            await runMigrations(db, dir);
            await writeFile(join(dir, '001_first.sql'), 'CREATE TABLE a (x int, y int);');
            await assert.rejects(runMigrations(db, dir), (e: unknown) => {
              assert.ok(e instanceof MigrationError);
              assert.match(e.message, /001_first\.sql was edited after it was applied/);
              return true;
            });
          });
        });
      });

      test('refuses a .sql file whose name is not NNN_name.sql', async () => {
        for (const bad of ['1_first.sql', '001-first.sql', '001_First.sql', '0001_first.sql']) {
          await withTmpDir(async (dir) => {
            await writeFile(join(dir, bad), 'SELECT 1;');
            await withDb(await bare(), async (db) => {
              await assert.rejects(runMigrations(db, dir), (e: unknown) => e instanceof MigrationError && e.message.includes(bad));
            });
          });
        }
      });

      test('refuses two migration files with the same number', async () => {
        await withTmpDir(async (dir) => {
          await writeFile(join(dir, '001_a.sql'), 'SELECT 1;');
          await writeFile(join(dir, '001_b.sql'), 'SELECT 1;');
          await withDb(await bare(), async (db) => {
            await assert.rejects(runMigrations(db, dir), /share the number 001/);
          });
        });
      });

      test('a failing migration leaves neither its partial changes nor its bookkeeping row', async () => {
        await withTmpDir(async (dir) => {
          await writeFile(join(dir, '001_ok.sql'), 'CREATE TABLE a (x int);');
          await writeFile(join(dir, '002_broken.sql'), 'CREATE TABLE b (x int);\nINSERT INTO nowhere VALUES (1);');
          await withDb(await bare(), async (db) => {
            await assert.rejects(runMigrations(db, dir), (e: unknown) => !isGatewayError(e));
            assert.ok(await tableExists(db, 'a'));
            assert.equal(await tableExists(db, 'b'), false);
            const { rows } = await db.query<{ version: number }>('SELECT version FROM schema_migrations');
            assert.deepEqual(rows, [{ version: 1 }]);
          });
        });
      });

      test('two runners starting at once apply each migration exactly once', async () => {
        await withTmpDir(async (dir) => {
          await writeFile(join(dir, '001_a.sql'), 'CREATE TABLE a (x int);');
          await writeFile(join(dir, '002_b.sql'), 'CREATE TABLE b (x int);');
          await withDb(await bare(), async (db) => {
            // On pg the two runners use two pooled connections, so the advisory lock is what serialises them.
            const [r1, r2] = await Promise.all([runMigrations(db, dir), runMigrations(db, dir)]);
            assert.deepEqual([...r1.applied, ...r2.applied].sort(), ['001_a.sql', '002_b.sql']);
            assert.equal(r1.alreadyApplied + r2.alreadyApplied, 2);
          });
        });
      });
    });

    describe('transactions', () => {
      test('a transaction that throws rolls back all its writes and rethrows the original error', async () => {
        await withDb(await openTestDb({ adapter }), async (db) => {
          const boom = new Error('boom');
          await assert.rejects(
            db.transaction(async (tx) => {
              await tx.query("INSERT INTO replay_cache VALUES ('peer', 'a', now())");
              await tx.query("INSERT INTO replay_cache VALUES ('peer', 'b', now())");
              throw boom;
            }),
            (e: unknown) => e === boom,
          );
          const { rows } = await db.query('SELECT * FROM replay_cache');
          assert.equal(rows.length, 0);
        });
      });

      test('a committed transaction returns the value of fn and keeps its writes', async () => {
        await withDb(await openTestDb({ adapter }), async (db) => {
          const value = await db.transaction(async (tx) => {
            const r = await tx.query("INSERT INTO replay_cache VALUES ('peer', 'a', now())");
            return r.rowCount;
          });
          assert.equal(value, 1);
          const { rows, rowCount } = await db.query<{ jti: string }>('SELECT jti FROM replay_cache');
          assert.deepEqual(rows, [{ jti: 'a' }]);
          assert.equal(rowCount, 1);
        });
      });

      test('SQL errors pass through unchanged with their SQLSTATE', async () => {
        await withDb(await openTestDb({ adapter }), async (db) => {
          const insert = "INSERT INTO replay_cache VALUES ('peer', 'a', now())";
          await db.query(insert);
          await assert.rejects(db.query(insert), (e: unknown) => !isGatewayError(e) && e instanceof Error && 'code' in e && e.code === '23505');
        });
      });

      test('a transaction whose statement failed is not reported as committed', async () => {
        await withDb(await openTestDb({ adapter }), async (db) => {
          await assert.rejects(
            db.transaction(async (tx) => {
              await tx.query("INSERT INTO replay_cache VALUES ('peer', 'a', now())");
              await tx.query('SELECT * FROM nowhere').catch(() => undefined);
            }),
          );
          const { rows } = await db.query('SELECT * FROM replay_cache');
          assert.equal(rows.length, 0);
        });
      });

      test('ping answers when the database is up', async () => {
        await withDb(await openTestDb({ adapter }), async (db) => {
          await db.ping();
        });
      });
    });
  });
}

describe('PGlite single connection', () => {
  test('two concurrent transactions never interleave', async () => {
    await withDb(await openTestDb({ adapter: 'pglite', migrations: false }), async (db) => {
      await db.query('CREATE TABLE log (id serial PRIMARY KEY, who text NOT NULL, what text NOT NULL)');
      const run = (who: string): Promise<void> =>
        db.transaction(async (tx) => {
          await tx.query("INSERT INTO log (who, what) VALUES ($1, 'begin')", [who]);
          // Without the lock the other transaction's statements would land here, inside this one.
          await sleep(20);
          await tx.query("INSERT INTO log (who, what) VALUES ($1, 'end')", [who]);
        });
      await Promise.all([run('a'), run('b'), run('c')]);
      const { rows } = await db.query<{ who: string; what: string }>('SELECT who, what FROM log ORDER BY id');
      assert.equal(rows.length, 6);
      for (let i = 0; i < rows.length; i += 2) {
        assert.equal(rows[i]?.what, 'begin');
        assert.equal(rows[i + 1]?.what, 'end');
        assert.equal(rows[i]?.who, rows[i + 1]?.who);
      }
    });
  });

  test('a plain query issued during a transaction waits until it commits', async () => {
    await withDb(await openTestDb({ adapter: 'pglite' }), async (db) => {
      const events: string[] = [];
      let inside!: () => void;
      const started = new Promise<void>((resolve) => (inside = resolve));
      const tx = db.transaction(async (t) => {
        await t.query("INSERT INTO replay_cache VALUES ('peer', 'a', now())");
        inside();
        await sleep(30);
        events.push('commit');
      });
      await started;
      const read = db.query<{ n: number }>('SELECT count(*)::int AS n FROM replay_cache').then((r) => {
        events.push('read');
        return r.rows[0]?.n;
      });
      await tx;
      assert.equal(await read, 1);
      assert.deepEqual(events, ['commit', 'read']);
    });
  });

  test('using the outer database inside a transaction fails fast instead of deadlocking', async () => {
    await withDb(await openTestDb({ adapter: 'pglite', migrations: false }), async (db) => {
      await assert.rejects(
        db.transaction(async () => {
          await db.query('SELECT 1');
        }),
        /use the transaction handle/,
      );
      await db.query('SELECT 1');
    });
  });

  test('a persistent data dir keeps data across close and reopen', async () => {
    await withTmpDir(async (tmp) => {
      const dataDir = join(tmp, 'nested', 'pgdata');
      await withDb(await openDb({ dataDir, production: false }), async (db) => {
        await runMigrations(db, migrationsDir());
        await db.query("INSERT INTO replay_cache VALUES ('peer', 'kept', now())");
      });
      await withDb(await openDb({ dataDir, production: false }), async (db) => {
        assert.deepEqual((await runMigrations(db, migrationsDir())).applied, []);
        const { rows } = await db.query<{ jti: string }>('SELECT jti FROM replay_cache');
        assert.deepEqual(rows, [{ jti: 'kept' }]);
      });
    });
  });
});

describe('openDb', () => {
  test('refuses embedded PGlite when production is true', async () => {
    await assert.rejects(openDb({ production: true }), (e: unknown) => e instanceof Error && !isGatewayError(e) && e.message === PGLITE_IN_PRODUCTION_MESSAGE);
    await assert.rejects(openDb({ production: true, databaseUrl: '', dataDir: '/tmp/x' }), { message: PGLITE_IN_PRODUCTION_MESSAGE });
  });

  test('uses PostgreSQL when a database URL is given, in production too', async () => {
    const db = await openDb({ production: true, databaseUrl: 'postgres://postgres@127.0.0.1:1/none' });
    assert.equal(db.kind, 'pg');
    await db.close();
  });
});

describe('pg adapter connection failures', () => {
  const unreachable = 'postgres://postgres@127.0.0.1:1/none';

  test('maps ECONNREFUSED to storage.unavailable with Retry-After', async () => {
    const db = createPgDb({ connectionString: unreachable, connectionTimeoutMillis: 2_000 });
    try {
      await assert.rejects(db.query('SELECT 1'), isStorageUnavailable);
      await assert.rejects(
        db.transaction(async () => assert.fail('fn must not run without a connection')),
        isStorageUnavailable,
      );
      await assert.rejects(db.ping(), isStorageUnavailable);
    } finally {
      await db.close();
    }
  });

  const url = process.env['DATABASE_URL'];
  test('recovers after the server drops its connections, without a restart', { skip: url === undefined && 'DATABASE_URL not set' }, async () => {
    const logged: string[] = [];
    const admin = createPgDb({ connectionString: url ?? '', max: 1 });
    const db = createPgDb({ connectionString: url ?? '', max: 1, log: (msg) => logged.push(msg) });
    try {
      // An idle pooled connection killed by the server (as on a PostgreSQL restart).
      const pid1 = (await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
      await admin.query('SELECT pg_terminate_backend($1)', [pid1]);
      await sleep(100);
      const pid2 = (await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
      assert.notEqual(pid2, pid1);
      assert.ok(logged.some((m) => m.includes('idle PostgreSQL connection failed')));

      // A connection killed in the middle of a transaction: the caller gets storage.unavailable (57P01),
      // the process survives, and the next request gets a fresh connection.
      await assert.rejects(
        db.transaction(async (tx) => {
          const pid = (await tx.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
          await admin.query('SELECT pg_terminate_backend($1)', [pid]);
          await sleep(100);
          await tx.query('SELECT 1');
        }),
        isStorageUnavailable,
      );
      const { rows } = await db.query<{ one: number }>('SELECT 1 AS one');
      assert.deepEqual(rows, [{ one: 1 }]);
    } finally {
      await db.close();
      await admin.close();
    }
  });

  test('a statement that outlives statement_timeout is storage.unavailable, and the pool goes on', { skip: url === undefined && 'DATABASE_URL not set' }, async () => {
    const db = createPgDb({ connectionString: url ?? '', max: 1, statementTimeoutMillis: 200 });
    try {
      await assert.rejects(db.query('SELECT pg_sleep(2)'), isStorageUnavailable);
      await assert.rejects(
        db.transaction(async (tx) => {
          await tx.query('SELECT pg_sleep(2)');
        }),
        isStorageUnavailable,
      );
      const { rows } = await db.query<{ one: number }>('SELECT 1 AS one');
      assert.deepEqual(rows, [{ one: 1 }]);
    } finally {
      await db.close();
    }
  });

  test('migrations are exempt from statement_timeout (a long one, or the wait for another replica\'s)', { skip: url === undefined && 'DATABASE_URL not set' }, async () => {
    const schema = `t_${randomBytes(8).toString('hex')}`;
    const admin = createPgDb({ connectionString: url ?? '', max: 1 });
    await admin.query(`CREATE SCHEMA ${schema}`);
    const db = createPgDb({ connectionString: urlWithSearchPath(url ?? '', schema), max: 2, statementTimeoutMillis: 200 });
    try {
      await withTmpDir(async (dir) => {
        await writeFile(join(dir, '001_slow.sql'), 'SELECT pg_sleep(0.5);\nCREATE TABLE slow_done (id int);\n');
        const report = await runMigrations(db, dir);
        assert.deepEqual(report.applied, ['001_slow.sql']);
      });
      // Outside the migration the timeout holds.
      await assert.rejects(db.query('SELECT pg_sleep(0.5)'), isStorageUnavailable);
    } finally {
      await db.close();
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await admin.close();
    }
  });

  test('a test schema pins search_path through the connection string', () => {
    const u = new URL(urlWithSearchPath('postgres://u@h:5432/d?sslmode=disable', 't_x'));
    assert.equal(u.searchParams.get('options'), '-c search_path=t_x');
    assert.equal(u.searchParams.get('sslmode'), 'disable');
  });
});
