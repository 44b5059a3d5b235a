import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, mkdir, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ConfigError, loadConfig, parseConfig } from '../src/config/load.js';

/** A config document whose every file exists (contents are irrelevant to config loading). */
async function fixtureDir(): Promise<{ dir: string; doc: Record<string, unknown> }> {
  const dir = await mkdtemp(join(tmpdir(), 'ncpeh-config-'));
  await mkdir(join(dir, 'keys'));
  for (const f of ['server.crt', 'server.key', 'client.crt', 'client.key', 'ca.crt', 'sig.jwk', 'enc.jwk', 'anchor.jwk', 'list.jws', 'data.key']) {
    await writeFile(join(dir, 'keys', f), 'x');
  }
  const doc = {
    country: 'DK',
    ncpId: 'urn:ncpeh:ncp:DK',
    api: { port: 8110 },
    peer: {
      port: 8111,
      tls: { certFile: 'keys/server.crt', keyFile: 'keys/server.key', clientCertFile: 'keys/client.crt', clientKeyFile: 'keys/client.key', caFile: 'keys/ca.crt' },
    },
    keys: { signingKeyFile: 'keys/sig.jwk', encryptionKeyFiles: ['keys/enc.jwk'] },
    trustList: { file: 'keys/list.jws', anchorKeyFiles: ['keys/anchor.jwk'] },
    dataKeys: [{ id: 'k1', file: 'keys/data.key' }],
  };
  return { dir, doc };
}

function problemsOf(fn: () => unknown): Array<{ path: string; message: string }> {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    return [...e.problems];
  }
  assert.fail('expected the configuration to be refused');
}

describe('configuration', () => {
  let dir: string;
  let doc: Record<string, unknown>;
  before(async () => ({ dir, doc } = await fixtureDir()));
  after(async () => rm(dir, { recursive: true, force: true }));

  test('a valid file loads with defaults applied, paths resolved and the result frozen', async () => {
    const file = join(dir, 'dk.json');
    await writeFile(file, JSON.stringify(doc));
    const config = loadConfig(file, {});
    assert.equal(config.country, 'DK');
    assert.equal(config.api.host, '127.0.0.1');
    assert.equal(config.api.bodyLimitBytes, 1024 * 1024);
    assert.equal(config.database.dataDir, 'memory://');
    assert.equal(config.policy.clockSkewSeconds, 60);
    assert.equal(config.keys.signingKeyFile, join(dir, 'keys', 'sig.jwk'));
    assert.ok(Object.isFrozen(config) && Object.isFrozen(config.peer.tls));
  });

  test('the shipped example configs parse against the schema', async () => {
    for (const name of ['dk', 'es']) {
      const { readFile } = await import('node:fs/promises');
      const raw: unknown = JSON.parse(await readFile(new URL(`../config/${name}.json`, import.meta.url), 'utf8'));
      // Files under .sandbox/ may not exist yet; only schema problems count here.
      const problems = (() => {
        try {
          parseConfig(raw, { env: {}, baseDir: dir });
          return [];
        } catch (e) {
          assert.ok(e instanceof ConfigError);
          return e.problems.filter((p) => !p.message.includes('is not readable'));
        }
      })();
      assert.deepEqual(problems, [], `config/${name}.json`);
    }
  });

  test('a missing required field is named', () => {
    const { ncpId: _drop, ...rest } = doc;
    const problems = problemsOf(() => parseConfig(rest, { env: {}, baseDir: dir }));
    assert.ok(problems.some((p) => p.path === 'ncpId'), JSON.stringify(problems));
  });

  test('a wrong type is named with its path', () => {
    const problems = problemsOf(() => parseConfig({ ...doc, api: { port: 'eighty' } }, { env: {}, baseDir: dir }));
    assert.ok(problems.some((p) => p.path === 'api.port'), JSON.stringify(problems));
  });

  test('a bad country code is refused with a readable message', () => {
    const problems = problemsOf(() => parseConfig({ ...doc, country: 'dk' }, { env: {}, baseDir: dir }));
    const p = problems.find((x) => x.path === 'country');
    assert.ok(p, JSON.stringify(problems));
    assert.match(p.message, /ISO 3166-1 alpha-2/);
  });

  test('an unreadable key file is named', async () => {
    const problems = problemsOf(() =>
      parseConfig({ ...doc, keys: { signingKeyFile: 'keys/missing.jwk', encryptionKeyFiles: ['keys/enc.jwk'] } }, { env: {}, baseDir: dir }),
    );
    const p = problems.find((x) => x.path === 'keys.signingKeyFile');
    assert.ok(p, JSON.stringify(problems));
    assert.match(p.message, /not readable \(ENOENT\)/);
    if (process.getuid?.() !== 0) {
      await chmod(join(dir, 'keys', 'enc.jwk'), 0o000);
      const denied = problemsOf(() => parseConfig(doc, { env: {}, baseDir: dir }));
      assert.ok(denied.some((x) => x.path === 'keys.encryptionKeyFiles.0'));
      await chmod(join(dir, 'keys', 'enc.jwk'), 0o600);
    }
  });

  test('every problem is reported at once', () => {
    const problems = problemsOf(() => parseConfig({ ...doc, country: 'Denmark', api: { port: -1 }, unknownField: 1 }, { env: {}, baseDir: dir }));
    const paths = problems.map((p) => p.path);
    assert.ok(paths.includes('country') && paths.includes('api.port') && paths.includes('(root)'), JSON.stringify(problems));
  });

  test('environment overrides apply and are validated', () => {
    const config = parseConfig(doc, { env: { NCPEH_API_PORT: '9000', DATABASE_URL: 'postgres://u@h/db' }, baseDir: dir });
    assert.equal(config.api.port, 9000);
    assert.equal(config.database.url, 'postgres://u@h/db');
    const problems = problemsOf(() => parseConfig(doc, { env: { NCPEH_PEER_PORT: 'x1' }, baseDir: dir }));
    assert.ok(problems.some((p) => p.path.startsWith('peer.port (env NCPEH_PEER_PORT)')));
  });

  test('production refuses sandbox configurations and embedded storage', () => {
    const problems = problemsOf(() => parseConfig({ ...doc, sandbox: true }, { env: { NODE_ENV: 'production' }, baseDir: dir }));
    assert.ok(problems.some((p) => p.path === 'sandbox'));
    assert.ok(problems.some((p) => p.path === 'database.url' && /PGlite/.test(p.message)));
  });

  test('a file that is not JSON is refused clearly', async () => {
    const file = join(dir, 'broken.json');
    await writeFile(file, '{ "country": ');
    const problems = problemsOf(() => loadConfig(file, {}));
    assert.equal(problems[0]?.path, '(file)');
    assert.match(problems[0]?.message ?? '', /not valid JSON/);
  });
});
