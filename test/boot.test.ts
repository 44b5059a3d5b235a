import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { migrationsDir, readMigrations } from '../src/storage/migrate.js';
import { createTestDeployment, type TestDeployment } from './helpers/deployment.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BUILT_CLI = join(ROOT, 'dist', 'src', 'cli.js');

interface Started {
  child: ChildProcess;
  apiUrl: string;
  lines: string[];
}

/** Starts the built CLI and resolves once it logs `gateway ready` with its URLs. */
function startBuilt(args: string[], env: NodeJS.ProcessEnv): Promise<Started> {
  const child = spawn(process.execPath, [BUILT_CLI, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  return new Promise((resolveStart, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ready in 60 s:\n${lines.join('\n')}`)), 60_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before ready:\n${lines.join('\n')}`));
    });
    for (const s of [child.stdout, child.stderr]) {
      if (s === null) continue;
      createInterface({ input: s }).on('line', (line) => {
        lines.push(line);
        try {
          const entry = JSON.parse(line) as { msg?: string; apiUrl?: string };
          if (entry.msg === 'gateway ready' && entry.apiUrl !== undefined) {
            clearTimeout(timer);
            child.removeAllListeners('exit');
            resolveStart({ child, apiUrl: entry.apiUrl, lines });
          }
        } catch {
          // non-JSON output
        }
      });
    }
  });
}

function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
}

describe('the built ncpeh command', () => {
  let deployment: TestDeployment;
  before(async () => {
    assert.ok(existsSync(BUILT_CLI), 'run `npm run build` first (npm test does it in pretest)');
    deployment = await createTestDeployment({ countries: ['DK'] });
  });
  after(async () => deployment.cleanup());

  test('`ncpeh serve` starts, answers /health/ready and exits 0 on SIGTERM', async () => {
    const started = await startBuilt(['serve', '--config', deployment.configFile('DK')], { ...process.env, NCPEH_DATA_DIR: 'memory://' });
    const res = await fetch(`${started.apiUrl}/health/ready`);
    assert.equal(res.status, 200);
    const exited = exitOf(started.child);
    started.child.kill('SIGTERM');
    const { code, signal } = await exited;
    assert.equal(signal, null);
    assert.equal(code, 0);
    assert.ok(started.lines.some((l) => l.includes('"msg":"stopped"')));
  });

  test('`ncpeh serve` whose peer port is taken says why and exits 1, leaving no listener open', async () => {
    const port = deployment.peerPorts['DK'];
    assert.ok(port !== undefined);
    const squatter = createServer();
    await new Promise<void>((r) => squatter.listen(port, '127.0.0.1', r));
    try {
      const child = spawn(process.execPath, [BUILT_CLI, 'serve', '--config', deployment.configFile('DK')], {
        cwd: ROOT,
        env: { ...process.env, NCPEH_DATA_DIR: 'memory://' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      // Before the fix, the API listener opened first stayed open and the process never exited.
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      const { code, signal } = await exitOf(child);
      clearTimeout(timer);
      assert.equal(signal, null, `killed after 30 s: the process did not exit by itself\n${out}`);
      assert.equal(code, 1, out);
      assert.match(out, /gateway failed to start/);
      assert.match(out, /EADDRINUSE/);
    } finally {
      await new Promise((r) => squatter.close(r));
    }
  });

  test('`ncpeh serve` with an invalid config prints every problem and exits non-zero', async () => {
    const child = spawn(process.execPath, [BUILT_CLI, 'serve', '--config', join(deployment.dir, 'missing.json')], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const { code } = await exitOf(child);
    assert.notEqual(code, 0);
    assert.match(stderr, /missing\.json/);
  });

  test('`ncpeh migrate` applies migrations once, then reports nothing to apply', async () => {
    const dataDir = join(deployment.dir, 'data-migrate');
    const run = async (): Promise<string> => {
      const child = spawn(process.execPath, [BUILT_CLI, 'migrate', '--config', deployment.configFile('DK')], {
        cwd: ROOT,
        env: { ...process.env, NCPEH_DATA_DIR: dataDir, DATABASE_URL: '' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const { code } = await exitOf(child);
      assert.equal(code, 0, out);
      return out;
    };
    // A new PGlite directory is copied from a template on which the migrations already ran
    // (storage/pglite-template.ts): after the first run every migration is in, however it got there.
    const total = (await readMigrations(migrationsDir())).length;
    const counts = (out: string): [number, number] => {
      const m = /applied (\d+) migration\(s\); (\d+) already applied/.exec(out);
      assert.ok(m, out);
      return [Number(m[1]), Number(m[2])];
    };
    const [applied, already] = counts(await run());
    assert.equal(applied + already, total);
    assert.deepEqual(counts(await run()), [0, total]);
  });

  test('PGlite is refused in production with a clear message', async () => {
    const child = spawn(process.execPath, [BUILT_CLI, 'serve', '--config', deployment.configFile('DK')], {
      cwd: ROOT,
      env: { ...process.env, NODE_ENV: 'production', DATABASE_URL: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const { code } = await exitOf(child);
    assert.notEqual(code, 0);
    assert.match(stderr, /PGlite.*development only.*DATABASE_URL/s);
  });

  test('an unknown command or flag is a usage error (exit 2)', async () => {
    for (const args of [['frobnicate'], ['serve', '--no-such-flag']]) {
      const child = spawn(process.execPath, [BUILT_CLI, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      const { code } = await exitOf(child);
      assert.equal(code, 2, args.join(' '));
    }
  });
});
