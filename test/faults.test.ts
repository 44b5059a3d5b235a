/**
 * Fault tests for data back home (issue 6) with real processes and real PostgreSQL: the Spanish
 * sender runs as `ncpeh serve` child processes that are killed with SIGKILL, doubled into two
 * replicas on one database, and cut off from PostgreSQL by a server restart. Bounded in time.
 * PostgreSQL only: CI's second pass (DATABASE_URL) runs them; embedded PGlite is a single-process
 * development store, not what these guarantees are made for.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ES_PRACTITIONERS, KENNETH } from '../sandbox/seed.js';
import { readingsBundle } from '../sandbox/readings.js';
import { SUBMISSION_IDENTIFIER_SYSTEM } from '../src/crossborder/receiver.js';
import { freePort } from './helpers/deployment.js';
import { startWorld, type World } from './helpers/world.js';
import { call as api, type Json } from './helpers/http.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'dist', 'src', 'cli.js');
const ANA = ES_PRACTITIONERS.find((p) => p.roleCode === '221');
const ON_POSTGRES = process.env.DATABASE_URL !== undefined && process.env.DATABASE_URL !== '';

interface Sender {
  readonly child: ChildProcess;
  readonly apiUrl: string;
  readonly lines: string[];
}

function startSender(world: World, env: NodeJS.ProcessEnv = {}): Promise<Sender> {
  const child = spawn(process.execPath, [CLI, 'serve', '--config', world.deployment.configFile('ES')], {
    cwd: ROOT,
    env: { ...process.env, ...world.databaseEnv('ES'), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  return new Promise((resolveStart, reject) => {
    const timer = setTimeout(() => reject(new Error(`sender not ready:\n${lines.slice(-20).join('\n')}`)), 60_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`sender exited ${code}:\n${lines.slice(-20).join('\n')}`));
    });
    for (const s of [child.stdout, child.stderr]) {
      createInterface({ input: s }).on('line', (line) => {
        lines.push(line);
        const m = /"msg":"gateway ready"/.test(line) ? /"apiUrl":"([^"]+)"/.exec(line) : null;
        if (m?.[1] !== undefined) {
          clearTimeout(timer);
          child.removeAllListeners('exit');
          resolveStart({ child, apiUrl: m[1], lines });
        }
      });
    }
  });
}

async function stopSender(s: Sender, signal: NodeJS.Signals): Promise<void> {
  if (s.child.exitCode !== null || s.child.signalCode !== null) return;
  const exited = new Promise<void>((r) => s.child.once('exit', () => r()));
  s.child.kill(signal);
  await exited;
}

describe('data back home under faults (real processes, PostgreSQL)', { skip: ON_POSTGRES ? false : 'needs DATABASE_URL (run by CI on PostgreSQL)' }, () => {
  let world: World;
  let sender: Sender;
  let ana: string;
  let ref: string;

  async function registeredCount(trackingId: string): Promise<number> {
    const res = await fetch(`${world.dk.fhir.baseUrl}/Observation?identifier=${encodeURIComponent(`${SUBMISSION_IDENTIFIER_SYSTEM}|${trackingId}/0`)}`);
    return ((await res.json()) as { entry?: unknown[] }).entry?.length ?? 0;
  }
  async function allDelivered(apiUrl: string, ids: readonly string[], ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    for (;;) {
      const states = await Promise.all(ids.map(async (id) => (await api(`${apiUrl}/api/v1/cross-border/submissions/${id}`, { token: ana })).body.status));
      if (states.every((s) => s === 'delivered')) return;
      if (Date.now() > deadline) assert.fail(`not all delivered: ${JSON.stringify(states)}`);
      await new Promise((r) => setTimeout(r, 300));
    }
  }
  async function submitMany(apiUrl: string, n: number): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const res = await api(`${apiUrl}/api/v1/cross-border/patients/DK/${ref}/documents`, {
        token: ana,
        body: readingsBundle(ref, 60 + i),
        headers: { 'idempotency-key': `fault-${randomUUID()}` },
      });
      assert.equal(res.status, 202, JSON.stringify(res.body));
      ids.push(String(res.body.trackingId));
    }
    return ids;
  }

  before(async () => {
    assert.ok(existsSync(CLI), 'npm run build first (npm test does it)');
    world = await startWorld({ persistent: true, fastRetry: true });
    const kenneth = await world.citizenSignIn('DK', KENNETH.identifier.value);
    const start = new Date(Date.now() - 60_000).toISOString().replace(/\.\d+Z$/, 'Z');
    const consent = await api(`${world.dk.apiUrl}/api/v1/me/consents`, {
      token: kenneth,
      body: { countries: ['ES'], roles: ['221'], purposes: ['TREAT'], sections: ['11450-4'], period: { start } },
    });
    assert.equal(consent.status, 201);
    // The Spanish gateway leaves the test process and runs as a real `ncpeh serve` process.
    await world.stopGateway('ES');
    sender = await startSender(world);
    ana = await world.hcpSignIn('ES', ANA?.personIdentifier.value ?? '');
    const found = await api(`${sender.apiUrl}/api/v1/cross-border/patients/$identify`, {
      token: ana,
      body: { country: 'DK', identifier: KENNETH.identifier, birthDate: KENNETH.birthDate },
    });
    ref = (found.body.matches as Array<{ ref: string }>)[0]?.ref ?? '';
    assert.ok(ref.length > 0, JSON.stringify(found.body));
  });
  after(async () => {
    await stopSender(sender, 'SIGKILL');
    await world.close();
  });

  test('kill -9 of the sending gateway mid-delivery: after a restart nothing is lost or doubled', async () => {
    const ids = await submitMany(sender.apiUrl, 6);
    await stopSender(sender, 'SIGKILL');
    sender = await startSender(world);
    await allDelivered(sender.apiUrl, ids, 60_000);
    for (const id of ids) assert.equal(await registeredCount(id), 1, id);
  });

  test('two sender replicas on one database deliver each message exactly once', async () => {
    const second = await startSender(world, { NCPEH_API_PORT: String(await freePort()), NCPEH_PEER_PORT: String(await freePort()) });
    try {
      const ids = await submitMany(sender.apiUrl, 4);
      ids.push(...(await submitMany(second.apiUrl, 4)));
      await allDelivered(sender.apiUrl, ids, 60_000);
      for (const id of ids) assert.equal(await registeredCount(id), 1, id);
      const { rows } = await world.dk.gateway.db.query<{ n: string | number }>('SELECT count(*) AS n FROM received_documents WHERE message_id = ANY($1::text[])', [ids]);
      assert.equal(Number(rows[0]?.n), ids.length);
    } finally {
      await stopSender(second, 'SIGTERM');
    }
  });

  test('PostgreSQL restarted during traffic: 503 with Retry-After, never a false 202, and the pool recovers', { skip: spawnSync('which', ['pg_ctlcluster']).status === 0 ? false : 'pg_ctlcluster not available' }, async () => {
    const cluster = spawnSync('bash', ['-c', 'ls /etc/postgresql | head -n1'], { encoding: 'utf8' }).stdout.trim();
    assert.ok(cluster.length > 0);
    const stop = spawnSync('pg_ctlcluster', ['--skip-systemctl-redirect', cluster, 'main', 'stop', '--', '-m', 'fast'], { encoding: 'utf8' });
    assert.equal(stop.status, 0, stop.stderr);
    let refused: { status: number; body: Json; headers: Headers };
    try {
      refused = await api(`${sender.apiUrl}/api/v1/cross-border/patients/DK/${ref}/documents`, {
        token: ana,
        body: readingsBundle(ref, 99),
        headers: { 'idempotency-key': `pgdown-${randomUUID()}` },
      });
    } finally {
      const start = spawnSync('pg_ctlcluster', ['--skip-systemctl-redirect', cluster, 'main', 'start'], { encoding: 'utf8' });
      assert.equal(start.status, 0, start.stderr);
      for (let i = 0; i < 60 && spawnSync('pg_isready', ['-h', '127.0.0.1', '-q']).status !== 0; i++) await new Promise((r) => setTimeout(r, 500));
    }
    assert.equal(refused.status, 503, JSON.stringify(refused.body));
    assert.ok(Number(refused.headers.get('retry-after')) > 0);
    // The same process, without a restart, serves again once the database is back.
    let recovered = false;
    for (let i = 0; i < 40 && !recovered; i++) {
      const ready = await fetch(`${sender.apiUrl}/health/ready`);
      recovered = ready.status === 200;
      if (!recovered) await new Promise((r) => setTimeout(r, 500));
    }
    assert.ok(recovered, 'readiness recovers');
    const ids = await submitMany(sender.apiUrl, 1);
    await allDelivered(sender.apiUrl, ids, 60_000);
  });
});
