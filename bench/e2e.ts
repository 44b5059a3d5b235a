/**
 * Steps 3 and 4: the whole cross-border fetch on loopback (EHR client -> ES gateway -> mutual TLS ->
 * DK gateway -> national FHIR server, consent and audit on the database), and the same client
 * fetching the same document straight from the national FHIR server.
 *
 * Per concurrency: one run at saturation (as fast as the connections go), then one at 50% of that
 * rate for the latency percentiles (autocannon corrects for coordinated omission at a fixed rate).
 */
import type { Bundle } from '@medplum/fhirtypes';
import { ES_PRACTITIONERS, KENNETH } from '../sandbox/seed.js';
import { autocannon, log, pacedLoad, round, type LoadResult, type ProcSample } from './lib.js';
import type { BenchWorld } from './world.js';

export interface Target {
  readonly url: string;
  /** The HCP token and opaque patient ref behind a cross-border target (empty for direct). */
  readonly token: string;
  readonly ref: string;
  readonly headers: Record<string, string>;
  readonly bytes: number;
  readonly entries: number;
}

function isoIn(ms: number): string {
  return new Date(Date.now() + ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

async function json(res: Response): Promise<Record<string, unknown>> {
  return (await res.json()) as Record<string, unknown>;
}

/** The grown IPS becomes Kenneth's document on the DK national server. */
export async function installDocument(world: BenchWorld, ips: Bundle): Promise<void> {
  await world.dk.fhir.repo.updateResource({ ...ips, id: KENNETH.documentId ?? 'dk-ips-kenneth' });
}

/**
 * Kenneth consents to every section for Spanish doctors; Dr. Ana García signs in at ES and
 * identifies him once; her token and the opaque ref are then reused for every summary request.
 */
export async function prepareCrossBorder(world: BenchWorld, sections: readonly string[]): Promise<Target> {
  const kenneth = await world.citizenSignIn('DK', KENNETH.identifier.value);
  const consent = await fetch(`${world.dk.apiUrl}/api/v1/me/consents`, {
    method: 'POST',
    headers: { authorization: `Bearer ${kenneth}`, 'content-type': 'application/json' },
    body: JSON.stringify({ countries: ['ES'], roles: ['221'], purposes: ['TREAT'], sections, period: { start: isoIn(-3_600_000), end: isoIn(86_400_000) } }),
  });
  if (consent.status !== 201) throw new Error(`consent refused: ${consent.status} ${JSON.stringify(await json(consent))}`);
  const ana = ES_PRACTITIONERS.find((p) => p.roleCode === '221');
  if (ana === undefined) throw new Error('no ES physician in the seed');
  const token = await world.hcpSignIn('ES', ana.personIdentifier.value);
  const found = await fetch(`${world.es.apiUrl}/api/v1/cross-border/patients/$identify`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ country: 'DK', identifier: KENNETH.identifier, birthDate: KENNETH.birthDate }),
  });
  const body = (await json(found)) as { matches?: Array<{ ref: string }> };
  const ref = body.matches?.[0]?.ref;
  if (ref === undefined) throw new Error(`identify failed: ${JSON.stringify(body)}`);
  const url = `${world.es.apiUrl}/api/v1/cross-border/patients/DK/${encodeURIComponent(ref)}/summary`;
  return { ...(await checkTarget(url, { authorization: `Bearer ${token}` })), token, ref };
}

export async function prepareDirect(world: BenchWorld): Promise<Target> {
  return { ...(await checkTarget(`${world.dk.fhir.baseUrl}/Patient/${KENNETH.patientId}/$summary`, { accept: 'application/fhir+json' })), token: '', ref: '' };
}

async function checkTarget(url: string, headers: Record<string, string>): Promise<Omit<Target, 'token' | 'ref'>> {
  const res = await fetch(url, { headers });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status}: ${text.slice(0, 300)}`);
  const bundle = JSON.parse(text) as Bundle;
  return { url, headers, bytes: Buffer.byteLength(text), entries: bundle.entry?.length ?? 0 };
}

export interface PhaseResult {
  readonly connections: number;
  readonly saturation: LoadResult;
  /** At half the saturation rate, evenly paced (paced-load.ts): the latency of record. */
  readonly atHalf: LoadResult;
  /** The same rate through autocannon -R, which sends each second's quota at once (for comparison). */
  readonly atHalfBursts: LoadResult;
  /** ms of CPU per successful fetch during the saturation run, per process. */
  readonly cpuMsPerFetch: Record<string, number>;
  readonly rssMbAfter: Record<string, number>;
}

export type Sampler = () => Record<string, ProcSample>;

/** One window of the warm-up: throughput and the gateways' CPU per fetch as V8 tiers our code up. */
export interface WarmupWindow {
  readonly fromS: number;
  readonly rps: number;
  readonly cpuMsPerFetch: Record<string, number>;
}

/**
 * Load at saturation before anything is measured, in windows, so the run also shows how long the
 * gateways take to reach their steady state. For the first thousands of fetches V8 is still
 * compiling our code and the libraries' on background threads, which take the same two cores: a
 * run measured after 3 s reported 20-25% fewer fetches/s and more CPU per fetch than one after 30 s.
 */
export async function warmUp(target: Target, sample: Sampler, opts: { connections: number; totalS: number; windowS: number }): Promise<WarmupWindow[]> {
  const windows: WarmupWindow[] = [];
  for (let fromS = 0; fromS < opts.totalS; fromS += opts.windowS) {
    const before = sample();
    const r = await autocannon({ url: target.url, headers: target.headers, connections: opts.connections, durationS: Math.min(opts.windowS, opts.totalS - fromS) });
    const after = sample();
    const ok = Math.max(1, r.requests - r.non2xx - r.errors);
    const cpuMsPerFetch: Record<string, number> = {};
    for (const [k, s] of Object.entries(after)) cpuMsPerFetch[k] = round((s.cpuMs - (before[k]?.cpuMs ?? 0)) / ok, 3);
    windows.push({ fromS, rps: r.rps, cpuMsPerFetch });
  }
  log(`warm-up: ${windows.map((w) => w.rps).join(' -> ')} req/s`);
  return windows;
}

export async function loadPhases(name: string, target: Target, sample: Sampler, opts: { connections: readonly number[]; durationS: number }): Promise<PhaseResult[]> {
  const results: PhaseResult[] = [];
  for (const connections of opts.connections) {
    log(`${name}: ${connections} connection(s), saturation`);
    const before = sample();
    const saturation = await autocannon({ url: target.url, headers: target.headers, connections, durationS: opts.durationS });
    const after = sample();
    const ok = Math.max(1, saturation.requests - saturation.non2xx - saturation.errors);
    const cpuMsPerFetch: Record<string, number> = {};
    for (const [k, s] of Object.entries(after)) cpuMsPerFetch[k] = round((s.cpuMs - (before[k]?.cpuMs ?? 0)) / ok, 3);
    log(`${name}: ${connections} connection(s), ${saturation.rps} req/s; now at 50%`);
    // Latency at half load: evenly spaced requests (open loop). autocannon's -R is kept beside it,
    // for comparison only: it sends each second's quota in a burst (paced-load.ts).
    const atHalf = await pacedLoad({ url: target.url, headers: target.headers, connections, durationS: opts.durationS, rate: saturation.rps / 2 });
    const atHalfBursts = await autocannon({ url: target.url, headers: target.headers, connections, durationS: opts.durationS, rate: saturation.rps / 2 });
    const rssMbAfter: Record<string, number> = {};
    for (const [k, s] of Object.entries(sample())) rssMbAfter[k] = s.rssMb;
    results.push({ connections, saturation, atHalf, atHalfBursts, cpuMsPerFetch, rssMbAfter });
  }
  return results;
}
