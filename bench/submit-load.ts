/**
 * Load generator for step 5, run as its own process (`node --import tsx bench/submit-load.ts ARGS`):
 * an undici Pool posting submissions, each with a fresh Idempotency-Key (autocannon cannot vary a
 * header per request). Bounded by a deadline and a request cap; prints one JSON line.
 */
import { randomUUID } from 'node:crypto';
import { Pool } from 'undici';

interface Args {
  url: string;
  token: string;
  body: unknown;
  connections: number;
  durationS: number;
  rate?: number;
  maxRequests: number;
}

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '{}') as Args;
  const target = new URL(args.url);
  const pool = new Pool(target.origin, { connections: args.connections, pipelining: 1 });
  const body = JSON.stringify(args.body);
  const t0 = performance.now();
  const deadline = t0 + args.durationS * 1000;
  const interval = args.rate === undefined ? 0 : 1000 / args.rate;
  let scheduled = t0;
  let sent = 0;
  const latencies: number[] = [];
  const accepted: string[] = [];
  const statuses: Record<string, number> = {};
  const worker = async (): Promise<void> => {
    for (;;) {
      if (sent >= args.maxRequests) return;
      let start = performance.now();
      if (interval > 0) {
        const at = scheduled;
        scheduled += interval;
        if (at > start) await new Promise((r) => setTimeout(r, at - start));
        start = at;
      }
      if (start >= deadline) return;
      sent++;
      const res = await pool.request({
        method: 'POST',
        path: target.pathname,
        headers: { authorization: `Bearer ${args.token}`, 'content-type': 'application/fhir+json', 'idempotency-key': `bench-${randomUUID()}` },
        body,
      });
      const text = await res.body.text();
      // Latency from the scheduled send time: a paced run does not hide queueing (coordinated omission).
      latencies.push(performance.now() - start);
      statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
      if (res.statusCode === 202) accepted.push((JSON.parse(text) as { trackingId: string }).trackingId);
    }
  };
  await Promise.all(Array.from({ length: args.connections }, worker));
  const elapsed = (performance.now() - t0) / 1000;
  await pool.close();
  latencies.sort((a, b) => a - b);
  const pct = (p: number): number => Math.round(latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? 0);
  process.stdout.write(
    `${JSON.stringify({ sent, elapsedS: Math.round(elapsed * 100) / 100, acceptedPerSec: Math.round((accepted.length / elapsed) * 10) / 10, statuses, latencyMs: { p50: pct(50), p99: pct(99), max: pct(100) }, trackingIds: accepted })}\n`,
  );
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
