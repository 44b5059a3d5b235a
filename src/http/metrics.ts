/**
 * Prometheus metrics. One registry per gateway instance (not prom-client's global one) so several
 * gateways can live in one process, as they do in tests.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface Metrics {
  readonly registry: Registry;
  readonly httpRequests: Counter<'listener' | 'method' | 'route' | 'status'>;
  readonly httpDuration: Histogram<'listener' | 'method' | 'route'>;
  /** Alert on any increase: a refused trust list means someone published a bad or forged one. */
  readonly trustListRejections: Counter<'rule'>;
  readonly trustListSequence: Gauge;
  /** TLS handshakes the peer listener refused (no, untrusted or expired client certificate...). */
  readonly peerTlsRefusals: Counter<'reason'>;
  /** A peer's audit checkpoint was refused (rollback, fork, bad proof): someone rewrote history. */
  readonly witnessRefusals: Counter<'peer' | 'reason'>;
  /** Submissions parked as dead letters (refused permanently by the receiver): alert on any. */
  readonly deadLetters: Counter<'peer'>;
  readonly deliveries: Counter<'peer'>;
  readonly trustListNextUpdate: Gauge;
  /** Bulkheads (src/http/work-limiter.ts): pieces of work running and waiting, and refusals. */
  readonly workRunning: Gauge<'pool' | 'key'>;
  readonly workQueued: Gauge<'pool' | 'key'>;
  readonly workRefused: Counter<'pool' | 'reason'>;
}

export function createMetrics(opts: { country: string; defaultMetrics?: boolean }): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ country: opts.country });
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  return {
    registry,
    httpRequests: new Counter({
      name: 'ncpeh_http_requests_total',
      help: 'HTTP requests answered, by listener, method, route pattern and status',
      labelNames: ['listener', 'method', 'route', 'status'],
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: 'ncpeh_http_request_duration_seconds',
      help: 'HTTP request latency by listener, method and route pattern',
      labelNames: ['listener', 'method', 'route'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    trustListRejections: new Counter({
      name: 'ncpeh_trust_list_rejections_total',
      help: 'Trust lists refused (the last good list stays in force), by the rule that refused them',
      labelNames: ['rule'],
      registers: [registry],
    }),
    peerTlsRefusals: new Counter({
      name: 'ncpeh_peer_tls_refusals_total',
      help: 'TLS handshakes refused on the peer listener, by OpenSSL reason code',
      labelNames: ['reason'],
      registers: [registry],
    }),
    witnessRefusals: new Counter({
      name: 'ncpeh_audit_witness_refusals_total',
      help: "Peer audit checkpoints refused as inconsistent with what we witnessed before (alert on any)",
      labelNames: ['peer', 'reason'],
      registers: [registry],
    }),
    deadLetters: new Counter({
      name: 'ncpeh_outbox_dead_letters_total',
      help: 'Submissions refused permanently by the receiving country (kept, flagged failed)',
      labelNames: ['peer'],
      registers: [registry],
    }),
    deliveries: new Counter({
      name: 'ncpeh_outbox_deliveries_total',
      help: 'Submissions delivered with a signed receipt',
      labelNames: ['peer'],
      registers: [registry],
    }),
    trustListSequence: new Gauge({
      name: 'ncpeh_trust_list_sequence',
      help: 'Sequence number of the trust list in force (0 = none)',
      registers: [registry],
    }),
    trustListNextUpdate: new Gauge({
      name: 'ncpeh_trust_list_next_update_seconds',
      help: 'nextUpdate of the trust list in force, as Unix time; alert when it nears',
      registers: [registry],
    }),
    workRunning: new Gauge({
      name: 'ncpeh_work_running',
      help: 'Heavy requests being worked on, by bulkhead (peer-operations, per-peer) and key (all, or the peer country)',
      labelNames: ['pool', 'key'],
      registers: [registry],
    }),
    workQueued: new Gauge({
      name: 'ncpeh_work_queued',
      help: 'Heavy requests waiting for a slot, by bulkhead and key',
      labelNames: ['pool', 'key'],
      registers: [registry],
    }),
    workRefused: new Counter({
      name: 'ncpeh_work_refused_total',
      help: 'Requests refused with service.busy because a bulkhead queue was full or the wait too long',
      labelNames: ['pool', 'reason'],
      registers: [registry],
    }),
  };
}
