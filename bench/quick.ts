/**
 * `npm run bench:quick`: the inner loop of performance work. Only step 3 on PostgreSQL at 10
 * connections (saturation, then 50%), with CPU per fetch of each gateway and their peak RSS. It
 * writes no result file: the numbers in bench/README.md come from a full `npm run bench`.
 */
import { rmSync } from 'node:fs';
import { installDocument, loadPhases, prepareCrossBorder } from './e2e.js';
import { buildGateway, BUILD_DIR } from './gateway-process.js';
import { buildBenchIps } from './ips.js';
import { autocannon, log, procSample, round } from './lib.js';
import { BenchDatabase, startBenchWorld, type BenchWorld } from './world.js';

const CONNECTIONS = Number(process.env['BENCH_CONNECTIONS'] ?? '10');

async function main(): Promise<void> {
  buildGateway();
  const ips = await buildBenchIps();
  const db = new BenchDatabase(process.env['BENCH_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres');
  let world: BenchWorld | undefined;
  try {
    await db.create();
    world = await startBenchWorld(db);
    await installDocument(world, ips.bundle);
    await world.startGateways('pg');
    const w = world;
    const sample = () => {
      const dk = w.dk.gateway;
      const es = w.es.gateway;
      if (dk === undefined || es === undefined) throw new Error('gateways not running');
      return { 'ES gateway': es.sample(), 'DK gateway': dk.sample(), orchestrator: procSample(process.pid) };
    };
    const target = await prepareCrossBorder(world, ips.sectionCodes);
    await autocannon({ url: target.url, headers: target.headers, connections: CONNECTIONS, durationS: 3 });
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
          cpuMsPerFetch: { ...phase.cpuMsPerFetch, gateways: round(gw, 2) },
          peakRssMb: { ES: peak['ES gateway'].hwmMb, DK: peak['DK gateway'].hwmMb },
          bytes: target.bytes,
        },
        null,
        2,
      )}\n`,
    );
  } finally {
    await world?.close().catch((e: unknown) => log(`close failed: ${String(e)}`));
    await db.drop().catch((e: unknown) => log(`drop database failed: ${String(e)}`));
    rmSync(BUILD_DIR, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    log(`bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exit(1);
  },
);
