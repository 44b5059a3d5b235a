// New PGlite data directories restored from a template of a migrated cluster (storage/pglite-template.ts):
// what the template holds, where it lives, and that anything doubtful is not used.
import assert from 'node:assert/strict';
import { chmod, chown, lstat, mkdir, mkdtemp, readdir, rm, stat, symlink, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { migrationsDir, readMigrations, runMigrations } from '../src/storage/migrate.js';
import { openDb } from '../src/storage/open.js';
import { loaderFlags, openPgliteDataDir, TEMPLATE_DIR_NAME, templateName } from '../src/storage/pglite-template.js';
import type { Db } from '../src/storage/db.js';

async function appliedVersions(db: Db): Promise<number[]> {
  const { rows } = await db.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
  return rows.map((r) => Number(r.version));
}

describe('PGlite data directories from a template', () => {
  let root: string;
  let allVersions: number[];

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'ncpeh-template-'));
    allVersions = (await readMigrations(migrationsDir())).map((m) => m.version);
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test('a new data directory gets a migrated cluster; the template is private and reused, and carries no data', async () => {
    const parent = join(root, 'a');
    const logged: string[] = [];
    const first = await openDb({ dataDir: join(parent, 'dk'), production: false, log: (m) => logged.push(m) });
    try {
      assert.deepEqual(await appliedVersions(first), allVersions);
      assert.deepEqual((await runMigrations(first, migrationsDir())).applied, [], 'nothing left to migrate');
      await first.query('CREATE TABLE only_in_dk (x int)');
      await first.query('INSERT INTO only_in_dk VALUES (1)');
    } finally {
      await first.close();
    }
    assert.deepEqual(logged, [], 'no warning on the way');
    const dir = join(parent, TEMPLATE_DIR_NAME);
    const template = join(dir, await templateName());
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
    assert.equal((await stat(template)).mode & 0o777, 0o700);
    const builtAt = (await stat(join(template, 'PG_VERSION'))).mtimeMs;

    const second = await openDb({ dataDir: join(parent, 'es'), production: false });
    try {
      assert.deepEqual(await appliedVersions(second), allVersions);
      const { rows } = await second.query<{ n: string }>("SELECT count(*)::text AS n FROM pg_tables WHERE tablename = 'only_in_dk'");
      assert.equal(rows[0]?.n, '0', "one gateway's tables never reach another through the template");
    } finally {
      await second.close();
    }
    assert.equal((await stat(join(template, 'PG_VERSION'))).mtimeMs, builtAt, 'the template was reused, not rebuilt');
    assert.deepEqual((await readdir(dir)).sort(), [await templateName()], 'no build left-overs');

    // The first cluster is on disk: reopened as it is, with its data.
    const again = await openDb({ dataDir: join(parent, 'dk'), production: false });
    try {
      assert.deepEqual((await again.query<{ x: number }>('SELECT x FROM only_in_dk')).rows, [{ x: 1 }]);
    } finally {
      await again.close();
    }
  });

  test('a template directory open to others is not used', async () => {
    const parent = join(root, 'b');
    const warm = await openPgliteDataDir(join(parent, 'one'));
    await warm.close();
    await chmod(join(parent, TEMPLATE_DIR_NAME), 0o777);
    const logged: string[] = [];
    const db = await openPgliteDataDir(join(parent, 'two'), { log: (m) => logged.push(m) });
    try {
      assert.deepEqual(await appliedVersions(db).catch(() => 'no schema_migrations'), 'no schema_migrations', 'created without the template');
    } finally {
      await db.close();
    }
    assert.match(logged.join('\n'), /not private/);
  });

  test('beside data directories in a place others may write to, a template is used only under the sticky bit', async () => {
    const open = join(root, 'open');
    const sticky = join(root, 'sticky');
    for (const [dir, mode] of [[open, 0o777], [sticky, 0o1777]] as const) {
      await openPgliteDataDir(join(dir, 'warm')).then((db) => db.close());
      await chmod(dir, mode);
    }
    const logged: string[] = [];
    const unsafe = await openPgliteDataDir(join(open, 'two'), { log: (m) => logged.push(m) });
    const safe = await openPgliteDataDir(join(sticky, 'two'));
    try {
      assert.equal(await appliedVersions(unsafe).catch(() => 'no schema_migrations'), 'no schema_migrations', 'created without the template');
      // A sticky directory others may write to protects our entries only when root owns it (/tmp).
      if (process.getuid?.() === 0) assert.deepEqual(await appliedVersions(safe), allVersions);
      else assert.equal(await appliedVersions(safe).catch(() => 'no schema_migrations'), 'no schema_migrations');
    } finally {
      await unsafe.close();
      await safe.close();
    }
    assert.match(logged.join('\n'), /not private/);
  });

  test('a damaged template is set aside and the cluster is created without it', async () => {
    const parent = join(root, 'c');
    const warm = await openPgliteDataDir(join(parent, 'one'));
    await warm.close();
    const dir = join(parent, TEMPLATE_DIR_NAME);
    await rm(join(dir, await templateName(), 'global', 'pg_control'));
    const logged: string[] = [];
    const db = await openPgliteDataDir(join(parent, 'two'), { log: (m) => logged.push(m) });
    try {
      await db.query('CREATE TABLE t (x int)');
      await db.query('INSERT INTO t VALUES (1)');
      assert.deepEqual((await db.query('SELECT x FROM t')).rows, [{ x: 1 }]);
    } finally {
      await db.close();
    }
    assert.match(logged.join('\n'), /does not open/);
    const aside = await readdir(dir);
    assert.ok(aside.some((f) => f.startsWith('cluster-') && f.includes('.unusable-')), 'the damaged template was kept aside for a look');
    assert.ok(aside.some((f) => f.startsWith('two.unusable-')), 'and so was the copy that did not open');
  });

  test('a symbolic link to an empty directory gets the cluster in its target; a killed restore is not taken for a cluster', async () => {
    const parent = join(root, 'd');
    await openPgliteDataDir(join(parent, 'one')).then((db) => db.close());
    const target = join(parent, 'target');
    await mkdir(target);
    await symlink(target, join(parent, 'link'));
    // What a restore killed half-way leaves: a partial copy beside the data directory, an hour old.
    const leftover = join(parent, '.target.restore-deadbeef');
    await mkdir(join(leftover, 'base'), { recursive: true });
    await utimes(leftover, new Date(Date.now() - 2 * 3600_000), new Date(Date.now() - 2 * 3600_000));
    const db = await openPgliteDataDir(join(parent, 'link'));
    try {
      assert.deepEqual(await appliedVersions(db), allVersions);
    } finally {
      await db.close();
    }
    assert.ok((await lstat(join(parent, 'link'))).isSymbolicLink(), 'the link is still a link');
    assert.ok((await readdir(target)).includes('PG_VERSION'), 'the cluster is in the target');
    assert.ok(!(await readdir(parent)).some((f) => f.includes('.restore-')), 'no restore left-overs');
  });

  test('a data directory that belongs to another user is refused', { skip: process.getuid?.() !== 0 ? 'needs root to give a directory away' : false }, async () => {
    const dir = join(root, 'e', 'theirs');
    await openPgliteDataDir(dir).then((db) => db.close());
    await chown(dir, 65534, 65534);
    await assert.rejects(openPgliteDataDir(dir), /belongs to another user/);
  });

  test('a template for other migrations goes once it is an hour old, when a new one is built', async () => {
    const parent = join(root, 'f');
    const dir = join(parent, TEMPLATE_DIR_NAME);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const old = join(dir, 'cluster-0123456789abcdef0123456789abcdef');
    const recent = join(dir, 'cluster-fedcba9876543210fedcba9876543210');
    const asideName = 'cluster-0123456789abcdef0123456789abcdef.unusable-1';
    for (const d of [old, recent, join(dir, asideName)]) await mkdir(d);
    const hourAgo = new Date(Date.now() - 2 * 3600_000);
    await utimes(old, hourAgo, hourAgo);
    await utimes(join(dir, asideName), hourAgo, hourAgo);
    await openPgliteDataDir(join(parent, 'one')).then((db) => db.close());
    assert.deepEqual((await readdir(dir)).sort(), [asideName, await templateName(), basename(recent)].sort());
  });

  test('the build child gets the module loaders of this process and none of its other flags', () => {
    assert.deepEqual(
      loaderFlags(['--cpu-prof', '--cpu-prof-dir', '/x', '--require', '/a/preflight.cjs', '--max-old-space-size=96', '--import', 'file:///a/loader.mjs', '--import=tsx', '--inspect']),
      ['--require', '/a/preflight.cjs', '--import', 'file:///a/loader.mjs', '--import=tsx'],
    );
  });

  test('the template name changes with the migrations', async () => {
    const empty = await mkdtemp(join(root, 'no-migrations-'));
    assert.notEqual(await templateName(empty), await templateName());
  });
});
