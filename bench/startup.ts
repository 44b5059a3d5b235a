/**
 * Step 6 (start-up): `ncpeh serve` from spawn to the `gateway ready` log line, on PGlite with a
 * fresh and with an existing data directory, and on PostgreSQL with a fresh and an existing schema;
 * the RSS once ready and idle. A bare `node` start is measured alongside as the floor.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGatewayProcess } from './gateway-process.js';
import { log, round } from './lib.js';
import type { BenchDatabase } from './world.js';

export interface StartupVariant {
  readonly variant: string;
  readonly readyMs: number[];
  readonly medianReadyMs: number;
  readonly idleRssMb: number[];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? 0) : round(((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2);
}

async function bareNodeMs(): Promise<number> {
  const t0 = process.hrtime.bigint();
  const child = spawn(process.execPath, ['-e', 'process.stdout.write("ready\\n")'], { stdio: ['ignore', 'pipe', 'ignore'] });
  await new Promise((resolve) => child.once('exit', resolve));
  return round(Number(process.hrtime.bigint() - t0) / 1e6);
}

export async function runStartup(configFile: string, db: BenchDatabase, reps: number): Promise<{ bareNodeMs: number; variants: StartupVariant[] }> {
  const root = await mkdtemp(join(tmpdir(), 'ncpeh-bench-startup-'));
  const variants: StartupVariant[] = [];
  const once = async (storageEnv: Record<string, string>): Promise<{ ms: number; rss: number }> => {
    const g = await startGatewayProcess({ configFile, storageEnv });
    await new Promise((r) => setTimeout(r, 1000));
    const rss = g.sample().rssMb;
    await g.stop();
    return { ms: g.readyMs, rss };
  };
  const record = (variant: string, runs: Array<{ ms: number; rss: number }>): void => {
    const readyMs = runs.map((r) => r.ms);
    variants.push({ variant, readyMs, medianReadyMs: median(readyMs), idleRssMb: runs.map((r) => r.rss) });
    log(`startup ${variant}: ${readyMs.join(', ')} ms`);
  };
  try {
    const bare: number[] = [];
    for (let i = 0; i < reps; i++) bare.push(await bareNodeMs());
    // A new data directory is copied from a template of a migrated cluster kept beside it
    // (src/storage/pglite-template.ts); the first one in a place builds that template.
    const first: Array<{ ms: number; rss: number }> = [];
    const fresh: Array<{ ms: number; rss: number }> = [];
    const existing: Array<{ ms: number; rss: number }> = [];
    for (let i = 0; i < reps; i++) {
      first.push(await once({ NCPEH_DATA_DIR: join(root, `place-${i}`, 'pglite') }));
      const env = { NCPEH_DATA_DIR: join(root, `place-${i}`, 'pglite-next') };
      fresh.push(await once(env));
      existing.push(await once(env));
    }
    record('PGlite, first data dir in a place (template built: initdb + migrations)', first);
    record('PGlite, fresh data dir (copied from the template)', fresh);
    record('PGlite, existing data dir', existing);
    const pgFresh: Array<{ ms: number; rss: number }> = [];
    const pgExisting: Array<{ ms: number; rss: number }> = [];
    for (let i = 0; i < reps; i++) {
      const env = { DATABASE_URL: await db.schemaUrl(`startup_${i}`) };
      pgFresh.push(await once(env));
      pgExisting.push(await once(env));
    }
    record('PostgreSQL, fresh schema (migrations run)', pgFresh);
    record('PostgreSQL, existing schema', pgExisting);
    return { bareNodeMs: median(bare), variants };
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}
