/**
 * Step 2: the same fetch through our envelope module (src/crossborder/envelope.ts, node-jose inside),
 * once per key-management choice for the consumer's encryption key, and the ratio to the floor.
 */
import type { Bundle } from '@medplum/fhirtypes';
import { openResponse, sealResponse, signRequest, verifyRequest, type DecryptionKey } from '../src/crossborder/envelope.js';
import type { ReplayStore } from '../src/crossborder/replay-store.js';
import type { BenchKeys } from './crypto-keys.js';
import type { FloorResult } from './floor.js';
import { micro, round, type MicroResult } from './lib.js';

/** Every jti is new (the benchmark signs a fresh request each time); the cache is in memory. */
class MemoryReplay implements ReplayStore {
  readonly #seen = new Set<string>();
  async remember(scope: string, jti: string): Promise<boolean> {
    const k = `${scope} ${jti}`;
    if (this.#seen.has(k)) return false;
    this.#seen.add(k);
    return true;
  }
}

/** One whole fetch through the envelope, both sides: for the paired floor/envelope comparison. */
export function envelopeFetch(keys: BenchKeys, ips: Bundle, recipient: DecryptionKey): () => Promise<unknown> {
  const { dk, es } = keys;
  const replay = new MemoryReplay();
  return async () => {
    const request = await signRequest({ op: 'patient-summary', ref: 'A'.repeat(43), hcp: `eyJ${'x'.repeat(1000)}` }, { key: es.signing, iss: 'urn:ncpeh:ncp:ES', aud: 'urn:ncpeh:ncp:DK' });
    await verifyRequest(request, { trustedKeys: keys.publicSig(es), expectedIss: 'urn:ncpeh:ncp:ES', expectedAud: 'urn:ncpeh:ncp:DK', replay });
    const sealed = await sealResponse({ inResponseTo: 'x', result: ips }, { signingKey: dk.signing, recipientKey: recipient.publicJwk });
    return openResponse(sealed, { decryptionKeys: [recipient], expectedSignerKeys: keys.publicSig(dk) });
  };
}

export interface EnvelopeVariant {
  readonly alg: DecryptionKey['alg'];
  readonly ops: MicroResult[];
  readonly perFetchUs: number;
  readonly perFetchCpuUs: number;
  readonly ratioToFloor: number;
  readonly jweChars: number;
}

export async function runEnvelope(keys: BenchKeys, ips: Bundle, floor: FloorResult, maxMs: number): Promise<EnvelopeVariant[]> {
  const { dk, es } = keys;
  const variants: EnvelopeVariant[] = [];
  for (const recipient of [es.encryption, es.rsaEncryption]) {
    const ops: MicroResult[] = [];
    const run = async (name: string, fn: () => unknown, max = 100_000): Promise<MicroResult> => {
      const r = await micro(name, fn, { maxMs, maxOps: max });
      ops.push(r);
      return r;
    };
    const sign = () => signRequest({ op: 'patient-summary', ref: 'A'.repeat(43), hcp: `eyJ${'x'.repeat(1000)}` }, { key: es.signing, iss: 'urn:ncpeh:ncp:ES', aud: 'urn:ncpeh:ncp:DK' });
    const replay = new MemoryReplay();
    // A pool of fresh requests so the replay check passes, as it does for real traffic.
    const requests: string[] = [];
    for (let i = 0; i < 4000; i++) requests.push(await sign());
    let next = 0;
    const seal = () => sealResponse({ inResponseTo: 'x', result: ips }, { signingKey: dk.signing, recipientKey: recipient.publicJwk });
    const sealed = await seal();
    const openOpts = { decryptionKeys: [recipient], expectedSignerKeys: keys.publicSig(dk) };

    const reqSign = await run('signRequest (B)', sign);
    const reqVerify = await run(
      'verifyRequest (A)',
      () => verifyRequest(requests[next++ % requests.length] ?? '', { trustedKeys: keys.publicSig(es), expectedIss: 'urn:ncpeh:ncp:ES', expectedAud: 'urn:ncpeh:ncp:DK', replay }),
      requests.length,
    );
    const sealR = await run(`sealResponse ${recipient.alg} (A)`, seal);
    const openR = await run(`openResponse ${recipient.alg} (B)`, () => openResponse(sealed, openOpts));
    const perFetchUs = reqSign.usPerOp + reqVerify.usPerOp + sealR.usPerOp + openR.usPerOp;
    const perFetchCpuUs = reqSign.cpuUsPerOp + reqVerify.cpuUsPerOp + sealR.cpuUsPerOp + openR.cpuUsPerOp;
    variants.push({
      alg: recipient.alg,
      ops,
      perFetchUs: round(perFetchUs),
      perFetchCpuUs: round(perFetchCpuUs),
      ratioToFloor: round(perFetchUs / floor.perFetchUs, 2),
      jweChars: sealed.length,
    });
  }
  return variants;
}
