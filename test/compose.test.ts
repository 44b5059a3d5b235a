import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';

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
