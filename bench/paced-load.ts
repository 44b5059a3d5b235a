/**
 * Open-loop GET load at a fixed rate, run as its own process (`node --import tsx bench/paced-load.ts
 * ARGS`): an undici Pool with at most `connections` sockets, one request every 1/rate seconds
 * whatever the answers are doing, latency measured from each request's scheduled send time (so
 * queueing in the client counts: no coordinated omission). Prints one JSON line (lib.ts LoadResult).
 *
 * Why not autocannon's `-R`: its limiter lets every connection send back to back at the start of
 * each second until that second's quota is used, then waits for the next second. "50% of
 * saturation" then means full load for half of every second and nothing for the other half, and
 * the latency it reports is that of the burst.
 */
import { Pool } from 'undici';

interface Args {
  url: string;
  headers: Record<string, string>;
  connections: number;
  durationS: number;
  rate: number;
}

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '{}') as Args;
  if (!(args.rate > 0) || !(args.durationS > 0)) throw new Error('rate and durationS must be positive');
  const target = new URL(args.url);
  const pool = new Pool(target.origin, { connections: args.connections, pipelining: 1 });
  const interval = 1000 / args.rate;
  const total = Math.max(1, Math.floor(args.rate * args.durationS));
  const latencies: number[] = [];
  let non2xx = 0;
  let errors = 0;
  let bytes = 0;
  const inFlight: Promise<void>[] = [];
  const t0 = performance.now() + 20;
  for (let i = 0; i < total; i++) {
    const at = t0 + i * interval;
    const wait = at - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    inFlight.push(
      (async () => {
        try {
          const res = await pool.request({ method: 'GET', path: `${target.pathname}${target.search}`, headers: args.headers, headersTimeout: 10_000, bodyTimeout: 10_000 });
          const body = await res.body.arrayBuffer();
          bytes += body.byteLength;
          if (res.statusCode < 200 || res.statusCode > 299) non2xx++;
        } catch {
          errors++;
        }
        latencies.push(performance.now() - at);
      })(),
    );
  }
  await Promise.all(inFlight);
  const elapsed = (performance.now() - t0) / 1000;
  await pool.close();
  latencies.sort((a, b) => a - b);
  const pct = (p: number): number => Math.round(latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? 0);
  const mean = latencies.reduce((a, b) => a + b, 0) / Math.max(1, latencies.length);
  const done = latencies.length;
  process.stdout.write(
    `${JSON.stringify({
      connections: args.connections,
      targetRate: args.rate,
      durationS: Math.round(elapsed * 100) / 100,
      requests: done,
      non2xx,
      errors,
      timeouts: 0,
      rps: Math.round((done / elapsed) * 10) / 10,
      latencyMs: { p50: pct(50), p90: pct(90), p99: pct(99), max: pct(100), mean: Math.round(mean * 100) / 100 },
      bytesPerResponse: done > 0 ? Math.round(bytes / done) : 0,
    })}\n`,
  );
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
