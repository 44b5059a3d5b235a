/**
 * `npm run bench:quick`: the inner loop of performance work. Only step 3 on PostgreSQL at 10
 * connections (saturation, then 50%), with CPU per fetch of each gateway and their peak RSS. It
 * writes no result file: the numbers in bench/README.md come from a full `npm run bench`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { installDocument, loadPhases, prepareCrossBorder, warmUp, type Sampler, type Target } from './e2e.js';
import { buildGateway, BUILD_DIR } from './gateway-process.js';
import { buildBenchIps } from './ips.js';
import { log, procSample, round } from './lib.js';
import { perfAvailable, recordPerf, summarisePerf, type OnCpuSummary } from './perf-profile.js';
import { summariseDir } from './profile.js';
import { runStartup } from './startup.js';
import { runSubmissions } from './submissions.js';
import { BenchDatabase, startBenchWorld, type BenchWorld } from './world.js';

const CONNECTIONS = Number(process.env['BENCH_CONNECTIONS'] ?? '10');
/** BENCH_PROFILE=1: the gateways run with --cpu-prof and their hot spots are printed at the end. */
const PROFILE = process.env['BENCH_PROFILE'] === '1';
/** BENCH_PERF=1: on-CPU profiles of both gateways with Linux perf during the load (perf-profile.ts). */
const PERF = process.env['BENCH_PERF'] === '1';
/** BENCH_WARMUP_S: seconds of load at saturation before the measured runs (default 30). */
const WARMUP_S = Number(process.env['BENCH_WARMUP_S'] ?? '30');
/**
 * BENCH_MODE=submissions: step 5 instead of step 3; BENCH_MODE=startup: step 6; BENCH_MODE=variants:
 * step 3 for each of BENCH_VARIANTS in turn, BENCH_ROUNDS times (A B C A B C ...), so settings are
 * compared within one run on this noisy machine.
 */
const MODE = process.env['BENCH_MODE'] ?? 'fetch';

/**
 * One setting to compare: `capacity` goes into both gateways' configuration, `nodeArgs` are extra
 * node flags for both, `env` their extra environment. BENCH_VARIANTS is a JSON array of these.
 */
interface Variant {
  readonly name: string;
  readonly capacity?: Record<string, number>;
  readonly nodeArgs?: string;
  /** Environment variables for both gateway processes (e.g. MALLOC_ARENA_MAX). */
  readonly env?: Record<string, string>;
}

async function main(): Promise<void> {
  buildGateway();
  const ips = await buildBenchIps();
  const db = new BenchDatabase(process.env['BENCH_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres');
  let world: BenchWorld | undefined;
  try {
    await db.create();
    world = await startBenchWorld(db);
    await installDocument(world, ips.bundle);
    const profDir = PROFILE ? mkdtempSync(join(tmpdir(), 'ncpeh-quick-prof-')) : undefined;
    if (PERF && !perfAvailable()) throw new Error('BENCH_PERF=1 needs Linux perf (Debian package linux-perf)');
    if (MODE === 'variants') {
      await runVariants(world, ips.sectionCodes);
      return;
    }
    await world.startGateways('pg', { ...(profDir === undefined ? {} : { cpuProfDir: profDir }), perfMap: PERF });
    const w = world;
    const sample = gatewaySampler(w);
    if (MODE === 'startup') {
      await world.stopGateways();
      process.stdout.write(`${JSON.stringify(await runStartup(world.dk.configFile, db, 3), null, 1)}\n`);
      return;
    }
    const target = await prepareCrossBorder(world, ips.sectionCodes);
    if (MODE === 'submissions') {
      let perf: (() => Promise<Record<string, OnCpuSummary>>) | undefined;
      const runs = await runSubmissions({
        esApiUrl: world.es.apiUrl,
        token: target.token,
        ref: target.ref,
        sample,
        durationS: 6,
        warmupS: WARMUP_S,
        profileSaturation: () => {
          if (PERF) perf = startPerfOnGateways(w);
          return async () => {
            if (perf !== undefined) process.stdout.write(`${JSON.stringify(await perf(), null, 1)}\n`);
          };
        },
      });
      process.stdout.write(`${JSON.stringify(runs, null, 2)}\n`);
    } else {
      // Warm-up before anything is measured or profiled: V8 is still tiering functions up
      // (compiling on background threads) for the first thousands of fetches.
      const startupPeak = world.resetPeaks();
      const warmup = await warmUp(target, sample, { connections: CONNECTIONS, totalS: WARMUP_S, windowS: 5 });
      process.stdout.write(`${JSON.stringify({ warmup })}\n`);
      const perf = PERF ? startPerfOnGateways(w) : undefined;
      await fetchPhase(target, sample, startupPeak);
      if (perf !== undefined) process.stdout.write(`${JSON.stringify(await perf(), null, 1)}\n`);
      process.stdout.write(`${JSON.stringify(await memoryBreakdown(world))}\n`);
      await heapSnapshot(world);
    }
    if (profDir !== undefined) {
      await world.stopGateways();
      for (const p of await summariseDir(profDir, new Set())) process.stdout.write(`${JSON.stringify(p, null, 1)}\n`);
      rmSync(profDir, { recursive: true, force: true });
    }
  } finally {
    await world?.close().catch((e: unknown) => log(`close failed: ${String(e)}`));
    await db.drop().catch((e: unknown) => log(`drop database failed: ${String(e)}`));
    rmSync(BUILD_DIR, { recursive: true, force: true });
  }
}

/**
 * BENCH_HEAPSNAPSHOT=1 (or =dk) or =es, with BENCH_GATEWAY_NODE_ARGS="--heapsnapshot-signal=SIGUSR2
 * --diagnostic-dir=DIR": the DK (or ES) gateway writes a heap snapshot, taken after a full GC.
 */
async function heapSnapshot(world: BenchWorld): Promise<void> {
  const of = { '1': world.dk.gateway, dk: world.dk.gateway, es: world.es.gateway }[process.env['BENCH_HEAPSNAPSHOT'] ?? ''];
  if (of === undefined) return;
  process.kill(of.pid, 'SIGUSR2');
  await new Promise((r) => setTimeout(r, 15_000));
}

/** CPU and memory of both gateway processes and of this one (the national servers and eID). */
function gatewaySampler(world: BenchWorld): Sampler {
  return () => {
    const dk = world.dk.gateway;
    const es = world.es.gateway;
    if (dk === undefined || es === undefined) throw new Error('gateways not running');
    return { 'ES gateway': es.sample(), 'DK gateway': dk.sample(), orchestrator: procSample(process.pid) };
  };
}

async function setCapacity(world: BenchWorld, capacity: Record<string, number> | undefined): Promise<void> {
  for (const cw of [world.dk, world.es]) {
    const doc = JSON.parse(await readFile(cw.configFile, 'utf8')) as Record<string, unknown>;
    if (capacity === undefined) delete doc['capacity'];
    else doc['capacity'] = capacity;
    await writeFile(cw.configFile, JSON.stringify(doc, null, 2));
  }
}

/** Step 3 at BENCH_CONNECTIONS for each variant, round after round, gateways restarted for each. */
async function runVariants(world: BenchWorld, sections: readonly string[]): Promise<void> {
  const variants = JSON.parse(process.env['BENCH_VARIANTS'] ?? '[]') as Variant[];
  if (!Array.isArray(variants) || variants.length === 0) throw new Error('BENCH_VARIANTS: a JSON array of { name, capacity?, nodeArgs? }');
  const rounds = Number(process.env['BENCH_ROUNDS'] ?? '2');
  const baseArgs = process.env['BENCH_GATEWAY_NODE_ARGS'] ?? '';
  const rows: Array<Record<string, unknown>> = [];
  let target: Target | undefined;
  for (let pass = 1; pass <= rounds; pass++) {
    for (const v of variants) {
      await setCapacity(world, v.capacity);
      process.env['BENCH_GATEWAY_NODE_ARGS'] = `${baseArgs} ${v.nodeArgs ?? ''}`.trim();
      const saved = Object.fromEntries(Object.keys(v.env ?? {}).map((k) => [k, process.env[k]]));
      Object.assign(process.env, v.env ?? {});
      // The first start creates the schemas; later ones keep them (consent, reference, sign-in).
      try {
        await world.startGateways('pg', { freshSchemas: target === undefined });
      } finally {
        for (const [k, old] of Object.entries(saved)) {
          if (old === undefined) delete process.env[k];
          else process.env[k] = old;
        }
      }
      target ??= await prepareCrossBorder(world, sections);
      const startupPeak = world.resetPeaks();
      const sample = gatewaySampler(world);
      await warmUp(target, sample, { connections: CONNECTIONS, totalS: WARMUP_S, windowS: 5 });
      const [phase] = await loadPhases(`${v.name} (round ${pass})`, target, sample, { connections: [CONNECTIONS], durationS: 6 });
      if (phase === undefined) throw new Error('no phase');
      const peak = sample();
      const row = {
        variant: v.name,
        round: pass,
        rps: phase.saturation.rps,
        errors: phase.saturation.errors + phase.saturation.non2xx,
        p50: phase.atHalf.latencyMs.p50,
        p99: phase.atHalf.latencyMs.p99,
        cpuMsEs: phase.cpuMsPerFetch['ES gateway'],
        cpuMsDk: phase.cpuMsPerFetch['DK gateway'],
        cpuMsGateways: round((phase.cpuMsPerFetch['ES gateway'] ?? 0) + (phase.cpuMsPerFetch['DK gateway'] ?? 0), 2),
        cpuMsOrchestrator: phase.cpuMsPerFetch['orchestrator'],
        peakRssMbEs: peak['ES gateway']?.hwmMb,
        peakRssMbDk: peak['DK gateway']?.hwmMb,
        startupPeakRssMbEs: startupPeak['ES gateway'],
        startupPeakRssMbDk: startupPeak['DK gateway'],
        ...Object.fromEntries(Object.entries(await memoryBreakdown(world)).map(([c, m]) => [`after${c}`, m])),
      };
      rows.push(row);
      process.stdout.write(`${JSON.stringify(row)}\n`);
      await heapSnapshot(world);
      await world.stopGateways();
    }
  }
  process.stdout.write(`${JSON.stringify({ connections: CONNECTIONS, warmupS: WARMUP_S, variants: rows }, null, 1)}\n`);
}

/** perf on both gateways from now until the returned function is called; then their summaries. */
function startPerfOnGateways(world: BenchWorld): () => Promise<Record<string, OnCpuSummary>> {
  const dir = mkdtempSync(join(tmpdir(), 'ncpeh-quick-perf-'));
  const runs = [world.es, world.dk].map((cw) => {
    const pid = cw.gateway?.pid;
    if (pid === undefined) throw new Error('gateways not running');
    const file = join(dir, `${cw.country}.data`);
    return { country: cw.country, pid, file, recording: recordPerf(pid, file) };
  });
  return async () => {
    const out: Record<string, OnCpuSummary> = {};
    for (const r of runs) {
      await r.recording.stop();
      out[r.country] = summarisePerf(r.file, r.pid);
    }
    rmSync(dir, { recursive: true, force: true });
    return out;
  };
}

/** Heap (by V8 space), external and resident memory as each gateway reports them (prom-client default metrics). */
async function memoryBreakdown(world: BenchWorld): Promise<Record<string, Record<string, number>>> {
  const out: Record<string, Record<string, number>> = {};
  for (const cw of [world.es, world.dk]) {
    const text = await (await fetch(`${cw.apiUrl}/metrics`)).text();
    const mb = (name: string, space?: string): number => {
      const re = new RegExp(`^${name}\\{[^}]*${space === undefined ? '' : `space="${space}"`}[^}]*\\} (\\S+)$`, 'm');
      return Math.round(Number(re.exec(text)?.[1] ?? NaN) / 1e6);
    };
    out[cw.country] = {
      rssMb: mb('process_resident_memory_bytes'),
      heapTotalMb: mb('nodejs_heap_size_total_bytes'),
      heapUsedMb: mb('nodejs_heap_size_used_bytes'),
      externalMb: mb('nodejs_external_memory_bytes'),
      ...Object.fromEntries(
        ['new', 'old', 'code', 'large_object', 'new_large_object'].map((space) => [`${space}SpaceMb`, mb('nodejs_heap_space_size_total_bytes', space)]),
      ),
    };
  }
  return out;
}

async function fetchPhase(target: Target, sample: Sampler, startupPeak: Record<string, number>): Promise<void> {
  const [phase] = await loadPhases('quick', target, sample, { connections: [CONNECTIONS], durationS: 6 });
  if (phase === undefined) throw new Error('no phase');
  const peak = sample();
  const gw = (phase.cpuMsPerFetch['ES gateway'] ?? 0) + (phase.cpuMsPerFetch['DK gateway'] ?? 0);
  process.stdout.write(
    `${JSON.stringify(
      {
        connections: CONNECTIONS,
        rps: phase.saturation.rps,
        errors: phase.saturation.errors + phase.saturation.non2xx,
        atHalf: phase.atHalf.latencyMs,
        atHalfAutocannonBursts: phase.atHalfBursts.latencyMs,
        cpuMsPerFetch: { ...phase.cpuMsPerFetch, gateways: round(gw, 2) },
        // Since the warm-up began (start-up's transient is the next line).
        peakRssMb: { ES: peak['ES gateway']?.hwmMb, DK: peak['DK gateway']?.hwmMb },
        startupPeakRssMb: { ES: startupPeak['ES gateway'], DK: startupPeak['DK gateway'] },
        bytes: target.bytes,
      },
      null,
      2,
    )}\n`,
  );
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    log(`bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exit(1);
  },
);
