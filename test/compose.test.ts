import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { GATEWAY_NODE_FLAGS } from '../src/node-flags.js';

const root = fileURLToPath(new URL('..', import.meta.url));

/**
 * The Compose implementation on this machine: the `docker compose` plugin, else the standalone
 * `docker-compose`. Validating the file needs no Docker engine.
 */
function composeCommand(): string[] | undefined {
  const candidates = [['docker', 'compose'], ['docker-compose']];
  for (const cmd of candidates) {
    const probe = spawnSync(cmd[0] ?? '', [...cmd.slice(1), 'version'], { encoding: 'utf8' });
    if (probe.status === 0) return cmd;
  }
  return undefined;
}

function runConfig(cmd: string[], env: NodeJS.ProcessEnv): { status: number | null; stderr: string } {
  const res = spawnSync(cmd[0] ?? '', [...cmd.slice(1), '-f', 'docker-compose.yml', 'config', '-q'], { cwd: root, encoding: 'utf8', env });
  return { status: res.status, stderr: res.stderr };
}

describe('docker-compose.yml', () => {
  const cmd = composeCommand();
  const skip = process.env.NCPEH_SKIP_COMPOSE === '1';

  test('is accepted by `docker compose config`', { skip: cmd === undefined && skip ? 'no Compose here and NCPEH_SKIP_COMPOSE=1' : false }, () => {
    assert.ok(
      cmd !== undefined,
      'neither `docker compose` nor `docker-compose` works on this machine: install one (Debian: apt-get install docker-compose) or set NCPEH_SKIP_COMPOSE=1',
    );
    const { status, stderr } = runConfig(cmd, { ...process.env, NCPEH_POSTGRES_PASSWORD: 'only-for-validation' });
    assert.equal(status, 0, stderr);
  });

  test('refuses to start without the operator-provided database password', { skip: cmd === undefined }, () => {
    const env = { ...process.env };
    delete env.NCPEH_POSTGRES_PASSWORD;
    const { status, stderr } = runConfig(cmd ?? [], env);
    assert.notEqual(status, 0);
    assert.match(stderr, /NCPEH_POSTGRES_PASSWORD/);
  });
});

describe('the gateway process heap sizing (src/node-flags.ts)', () => {
  test('the image starts `ncpeh serve` with exactly the flags the sandbox and the bench use', () => {
    const dockerfile = readFileSync(`${root}docker/Dockerfile`, 'utf8');
    const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(dockerfile)?.[1];
    assert.ok(entrypoint !== undefined, 'no exec-form ENTRYPOINT in docker/Dockerfile');
    assert.deepEqual(JSON.parse(entrypoint), ['node', ...GATEWAY_NODE_FLAGS, 'dist/src/cli.js']);
  });

  test('node accepts the flags and sizes the heap by them (1 GB old generation, 8 MB semi-spaces)', () => {
    const res = spawnSync(process.execPath, [...GATEWAY_NODE_FLAGS, '-e', 'process.stdout.write(String(require("v8").getHeapStatistics().heap_size_limit))'], { encoding: 'utf8' });
    assert.equal(res.status, 0, res.stderr);
    const limitMb = Number(res.stdout) / 2 ** 20;
    // The limit is the old generation's plus the young generation's (three semi-spaces' worth).
    assert.ok(limitMb >= 1024 && limitMb <= 1024 + 3 * 8, `heap limit ${limitMb} MB`);
  });
});
