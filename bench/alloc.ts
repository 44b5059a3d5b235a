/**
 * Allocation per step of one fetch, in process: what each gateway allocates on the V8 heap for the
 * bench document, step by step (DK: validate, filter, seal; ES: open, check, validate, answer).
 * Allocation drives garbage collection and how far V8 grows a gateway's heap under load, so it is
 * the measure to read next to RSS. Measured with V8's sampling heap profiler (node:inspector,
 * every ~256 bytes, objects collected by minor and major GCs included) over many calls of each step;
 * Buffer contents (off the V8 heap) are not counted. `tsx bench/alloc.ts` runs it alone.
 */
import { Session } from 'node:inspector/promises';
import type { Bundle } from '@medplum/fhirtypes';
import { withSignature } from '../src/crossborder/consumer-routes.js';
import { openResponseSigned, sealResponse } from '../src/crossborder/envelope.js';
import { SummaryResultSchema } from '../src/crossborder/provider.js';
import { validateIpsDocument } from '../src/national/ips.js';
import { filterIpsBySections } from '../src/national/ips-filter.js';
import { benchKeys, type BenchKeys } from './crypto-keys.js';
import { buildBenchIps } from './ips.js';
import { log, round } from './lib.js';

export interface AllocationStep {
  readonly side: 'DK' | 'ES';
  readonly step: string;
  /** V8 heap bytes allocated per call (sampled), in KB. */
  readonly heapKB: number;
}

interface ProfileNode {
  readonly selfSize: number;
  readonly children: readonly ProfileNode[];
}

function totalSelfSize(node: ProfileNode): number {
  return node.children.reduce((sum, c) => sum + totalSelfSize(c), node.selfSize);
}

async function allocatedPerCall(session: Session, fn: () => unknown, calls: number): Promise<number> {
  for (let i = 0; i < 20; i++) await fn();
  await session.post('HeapProfiler.startSampling', {
    samplingInterval: 256,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  } as never);
  for (let i = 0; i < calls; i++) await fn();
  const { profile } = (await session.post('HeapProfiler.stopSampling')) as unknown as { profile: { head: ProfileNode } };
  return totalSelfSize(profile.head) / calls;
}

export async function runAllocation(keys: BenchKeys, bundle: Bundle, sections: readonly string[], calls = 200): Promise<AllocationStep[]> {
  const session = new Session();
  session.connect();
  try {
    const recipient = keys.es.encryption;
    const json = JSON.stringify(bundle);
    const raw = JSON.parse(json) as unknown;
    const doc = validateIpsDocument(raw);
    const allowed = new Set(sections);
    const filtered = { ...filterIpsBySections(doc, allowed) };
    const payload = { inResponseTo: 'x', result: { bundle: filtered, basis: 'consent', sections } };
    const sealed = await sealResponse(payload, { signingKey: keys.dk.signing, recipientKey: recipient.publicJwk });
    const open = () => openResponseSigned(sealed, { decryptionKeys: [recipient], expectedSignerKeys: keys.publicSig(keys.dk) });
    const opened = await open();
    const result = (opened.payload as { result: unknown }).result;
    const answerBundle = SummaryResultSchema.parse(result).bundle;
    const signature = { type: [{ system: 'urn:iso-astm:E1762-95:2013', code: '1.2.840.10065.1.12.1.1' }], when: new Date().toISOString(), who: { display: 'DK' } };

    const steps: Array<[AllocationStep['side'], string, () => unknown]> = [
      ['DK', 'JSON.parse of the national answer', () => JSON.parse(json) as unknown],
      ['DK', 'validateIpsDocument', () => validateIpsDocument(raw)],
      ['DK', 'filterIpsBySections (validates its result)', () => filterIpsBySections(doc, allowed)],
      ['DK', 'sealResponse (sign + encrypt)', () => sealResponse(payload, { signingKey: keys.dk.signing, recipientKey: recipient.publicJwk })],
      ['ES', 'openResponseSigned (decrypt + verify + parse)', open],
      ['ES', 'SummaryResultSchema', () => SummaryResultSchema.safeParse(result)],
      ['ES', 'validateIpsDocument', () => validateIpsDocument(answerBundle)],
      ['ES', 'withSignature (the answer to the EHR)', () => withSignature(answerBundle, signature, opened.jws)],
    ];
    const out: AllocationStep[] = [];
    for (const [side, step, fn] of steps) {
      const bytes = await allocatedPerCall(session, fn, calls);
      out.push({ side, step, heapKB: round(bytes / 1024, 0) });
      log(`allocation ${side} ${step}: ${round(bytes / 1024, 0)} KB per call`);
    }
    return out;
  } finally {
    session.disconnect();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const keys = await benchKeys();
  try {
    const ips = await buildBenchIps();
    await runAllocation(keys, ips.bundle, ips.sectionCodes);
  } finally {
    await keys.cleanup();
  }
}
