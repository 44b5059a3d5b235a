/**
 * Step 5: data back home. Submissions posted to the ES gateway (accepted = 202 once durably stored),
 * then the delivery lag of each (deliveredAt - submittedAt as the ES gateway records them) read
 * back through the status route, waiting a bounded time for deliveries still in flight.
 */
import { join } from 'node:path';
import { readingsBundle } from '../sandbox/readings.js';
import { BENCH_DIR, lastJsonLine, log, metricValues, round, type ProcSample } from './lib.js';

/**
 * Paced runs: 5/s is well below what the gateways accept, so the lag is delivery itself; 15/s is
 * closer to what one patient's ordered deliveries drain (about 25/s on this machine), where the lag
 * starts to include waiting behind the patient's previous document.
 */
const PACED_RATES = [5, 15] as const;

export interface SubmissionRun {
  readonly connections: number;
  readonly targetRate: number | null;
  readonly sent: number;
  readonly acceptedPerSec: number;
  readonly statuses: Record<string, number>;
  readonly acceptLatencyMs: { p50: number; p99: number; max: number };
  /** Of the sampled submissions (at most 50), delivered within the bounded wait (20 s). */
  readonly delivered: number;
  readonly notDeliveredInTime: number;
  readonly deliveryLagMs: { p50: number; p99: number; max: number } | null;
  /** CPU of each process while the load ran (acceptance, plus whatever delivery ran meanwhile), per accepted submission. */
  readonly cpuMsPerSubmission: Record<string, number>;
  /** Submissions not yet delivered when the load stopped (from the ES gateway's delivery counter). */
  readonly backlogAfterLoad: number;
  /** Deliveries per second while the bounded wait that follows the load lasted: the outbox's drain rate. */
  readonly deliveredPerSecAfterLoad: number;
}

/** The ES gateway's count of completed deliveries (ncpeh_outbox_deliveries_total, all peers). */
async function deliveriesSoFar(esApiUrl: string): Promise<number> {
  return (await metricValues(esApiUrl, 'ncpeh_outbox_deliveries_total')).reduce((a, b) => a + b, 0);
}

interface LoadOut {
  sent: number;
  acceptedPerSec: number;
  statuses: Record<string, number>;
  latencyMs: { p50: number; p99: number; max: number };
  trackingIds: string[];
}


async function load(args: Record<string, unknown>, durationS: number): Promise<LoadOut> {
  return (await lastJsonLine('submit-load', ['--import', 'tsx', join(BENCH_DIR, 'submit-load.ts'), JSON.stringify(args)], durationS + 60)) as LoadOut;
}

interface StatusView {
  status: string;
  submittedAt: string;
  deliveredAt: string | null;
}

async function lags(statusBase: string, token: string, ids: readonly string[], waitS: number): Promise<{ lags: number[]; missing: number }> {
  // At most 50 evenly spread samples, polled once a second until delivered or the deadline: the
  // polling itself must stay a small load on the gateway it measures.
  const step = Math.max(1, Math.ceil(ids.length / 50));
  let pending = ids.filter((_, i) => i % step === 0);
  const found: number[] = [];
  const deadline = Date.now() + waitS * 1000;
  while (pending.length > 0 && Date.now() < deadline) {
    const still: string[] = [];
    for (const id of pending) {
      const res = await fetch(`${statusBase}/${id}`, { headers: { authorization: `Bearer ${token}` } });
      const v = (await res.json()) as StatusView;
      if (v.status === 'delivered' && v.deliveredAt !== null) found.push(Date.parse(v.deliveredAt) - Date.parse(v.submittedAt));
      else still.push(id);
    }
    pending = still;
    if (pending.length > 0) await new Promise((r) => setTimeout(r, 1000));
  }
  return { lags: found.sort((a, b) => a - b), missing: pending.length };
}

export async function runSubmissions(opts: {
  esApiUrl: string;
  token: string;
  ref: string;
  sample: () => Record<string, ProcSample>;
  durationS: number;
  /** Seconds of unmeasured load at saturation before the measured saturation run (V8 warm-up). */
  warmupS?: number;
  /** Started right before the measured saturation load, awaited right after it (e.g. perf). */
  profileSaturation?: () => () => Promise<void>;
}): Promise<SubmissionRun[]> {
  const url = `${opts.esApiUrl}/api/v1/cross-border/patients/DK/${encodeURIComponent(opts.ref)}/documents`;
  const statusBase = `${opts.esApiUrl}/api/v1/cross-border/submissions`;
  const runs: SubmissionRun[] = [];
  // Paced first, so its delivery lag is measured with the peer up and no backlog; then saturation,
  // whose backlog is only observed (bounded wait), not waited out.
  for (const rate of [...PACED_RATES, undefined]) {
    const phase = rate === undefined ? 'saturation' : 'paced';
    const connections = rate === undefined ? 20 : 5;
    const body = readingsBundle(opts.ref, 93);
    if (rate === undefined && (opts.warmupS ?? 0) > 0) {
      log(`submissions: warm-up at saturation (${opts.warmupS}s, not measured)`);
      await load({ url, token: opts.token, body, connections, durationS: opts.warmupS, maxRequests: 100_000 }, opts.warmupS ?? 0);
    }
    log(`submissions: ${phase}${rate === undefined ? '' : ` (${rate}/s)`}`);
    const stopProfile = rate === undefined ? opts.profileSaturation?.() : undefined;
    const before = opts.sample();
    const deliveredBefore = await deliveriesSoFar(opts.esApiUrl);
    const out = await load({ url, token: opts.token, body, connections, durationS: opts.durationS, maxRequests: 20_000, ...(rate === undefined ? {} : { rate }) }, opts.durationS);
    const after = opts.sample();
    await stopProfile?.();
    const loadEnded = Date.now();
    const deliveredAtEnd = await deliveriesSoFar(opts.esApiUrl);
    const { lags: l, missing } = await lags(statusBase, opts.token, out.trackingIds, 20);
    const drainPerSec = ((await deliveriesSoFar(opts.esApiUrl)) - deliveredAtEnd) / Math.max(0.001, (Date.now() - loadEnded) / 1000);
    const cpu: Record<string, number> = {};
    for (const [k, s] of Object.entries(after)) cpu[k] = round((s.cpuMs - (before[k]?.cpuMs ?? 0)) / Math.max(1, out.trackingIds.length), 3);
    const p = (q: number): number => l[Math.min(l.length - 1, Math.floor((q / 100) * l.length))] ?? 0;
    runs.push({
      connections,
      targetRate: rate ?? null,
      sent: out.sent,
      acceptedPerSec: out.acceptedPerSec,
      statuses: out.statuses,
      acceptLatencyMs: out.latencyMs,
      delivered: l.length,
      notDeliveredInTime: missing,
      deliveryLagMs: l.length === 0 ? null : { p50: p(50), p99: p(99), max: l[l.length - 1] ?? 0 },
      cpuMsPerSubmission: cpu,
      backlogAfterLoad: out.trackingIds.length - (deliveredAtEnd - deliveredBefore),
      deliveredPerSecAfterLoad: round(drainPerSec, 1),
    });
  }
  return runs;
}
