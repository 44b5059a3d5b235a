/**
 * Country B's two questions to a patient's country, shared by the hospital API
 * (consumer-routes.ts) and the professional viewer (src/portal): identify the patient, and fetch the
 * consented Patient Summary. Each forwards the HCP assertion inside a signed peer request, checks
 * the answer again, and audits what it received before returning it.
 */
import type { Bundle } from '@medplum/fhirtypes';
import type { Auditor } from '../audit/auditor.js';
import { ERROR_CATALOGUE, GatewayError, type ErrorCode } from '../http/errors.js';
import type { HcpAssertion } from '../identity/hcp-assertion.js';
import { validateIpsDocument } from '../national/ips.js';
import { PeerRefusedError, type PeerClient } from './peer-client.js';
import { auditUser, DiscoveryResultSchema, SummaryResultSchema, type DiscoveryResult } from './provider.js';

export interface ConsumerDeps {
  readonly ourCountry: string;
  readonly peers: PeerClient;
  readonly audit: Auditor;
}

export interface Caller {
  readonly token: string;
  readonly assertion: HcpAssertion;
  readonly remoteAddress: string;
  readonly requestId: string;
  /** Aborted when the caller hangs up: a peer call still running is abandoned, freeing its slot. */
  readonly signal?: AbortSignal | undefined;
}

/** Codes a peer may hand back that mean the same to our caller; anything else is `peer.refused`. */
const RELAYED: ReadonlySet<string> = new Set<ErrorCode>([
  'consent.denied',
  'patient.reference-invalid',
  'document.not-found',
  'document.invalid',
  'hcp.assertion-invalid',
  'hcp.assertion-expired',
  'hcp.purpose-not-allowed',
  'request.invalid',
  'national.unavailable',
  'audit.unavailable',
]);

function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CATALOGUE, code);
}

export function relayPeerRefusal(e: unknown): never {
  if (e instanceof PeerRefusedError) {
    if (e.peerCode !== undefined && RELAYED.has(e.peerCode) && isErrorCode(e.peerCode)) throw new GatewayError(e.peerCode, undefined, { cause: e });
    // The peer's bulkhead is full: a retry in a moment can succeed, unlike with a peer that is down.
    if (e.peerCode === 'service.busy') throw new GatewayError('service.busy', 'the peer gateway is at capacity', { cause: e, retryAfter: 1 });
    if (e.peerStatus >= 500) throw new GatewayError('peer.unreachable', `peer answered ${e.peerStatus}`, { cause: e, retryAfter: 30 });
  }
  throw e;
}

function checkAbroad(deps: ConsumerDeps, country: string): void {
  // The patient's own country answers through its own national systems, not the peer API.
  if (country === deps.ourCountry) throw new GatewayError('peer.unknown-country', country);
}

export async function identifyAbroad(
  deps: ConsumerDeps,
  caller: Caller,
  q: { country: string; identifier: { system: string; value: string }; birthDate?: string | undefined; familyName?: string | undefined },
): Promise<DiscoveryResult> {
  checkAbroad(deps, q.country);
  const answer = await deps.peers
    .call(
      q.country,
      '/ncp/v1/patient-discovery',
      {
        hcp: caller.token,
        query: {
          identifier: q.identifier,
          ...(q.birthDate === undefined ? {} : { birthDate: q.birthDate }),
          ...(q.familyName === undefined ? {} : { familyName: q.familyName }),
        },
      },
      DiscoveryResultSchema,
      { signal: caller.signal },
    )
    .catch(relayPeerRefusal);
  await deps.audit.record({
    kind: 'query',
    outcome: answer.payload.outcome === 'match' ? 'success' : 'minor',
    user: auditUser(caller.assertion),
    client: { id: caller.assertion.client_id, network: caller.remoteAddress },
    sourceCountry: deps.ourCountry,
    transactionId: caller.requestId,
    query: `Patient?identifier=${q.identifier.system}|*&country=${q.country}`,
  });
  return answer.payload;
}

export interface FetchedSummary {
  readonly bundle: Bundle;
  readonly basis: 'consent' | 'break-glass';
  readonly sections: readonly string[];
  readonly signerNcpId: string;
  readonly signedAt: Date;
  /** The provider's compact JWS over its answer (provenance). */
  readonly jws: string;
}

export function summaryFromAbroad(deps: ConsumerDeps, caller: Caller, country: string, ref: string, sections?: readonly string[]): Promise<FetchedSummary> {
  return summaryFromAbroadAs(deps, caller, country, ref, sections, (summary) => summary);
}

/**
 * The summary from abroad as `prepare` turns it into what the caller sends on (the hospital API:
 * the answer's bytes). `prepare` runs once the document is checked and before the import is
 * audited, so that what waits for the audit record's database write is its result, not the parsed
 * document and the provider's JWS (several hundred kilobytes of objects that would otherwise
 * outlive a young-generation collection under load; bench/promotion.ts). Nothing is returned
 * unless the audit record is written (fail closed); if `prepare` throws, no import is recorded.
 */
export async function summaryFromAbroadAs<T>(
  deps: ConsumerDeps,
  caller: Caller,
  country: string,
  ref: string,
  sections: readonly string[] | undefined,
  prepare: (summary: FetchedSummary) => T,
): Promise<T> {
  checkAbroad(deps, country);
  // Received and prepared in a call of its own, so that nothing of the document stays reachable
  // from this frame while the audit record is written.
  const { prepared, sectionsDisplay, signature } = await receiveSummary(deps, caller, { country, ref, sections }, prepare);
  await deps.audit.record({
    kind: 'import',
    outcome: 'success',
    user: auditUser(caller.assertion),
    client: { id: caller.assertion.client_id, network: caller.remoteAddress },
    sourceCountry: country,
    transactionId: caller.requestId,
    patient: { reference: `Patient/${ref}` },
    entityExtra: [{ what: { display: sectionsDisplay }, description: signature }],
  });
  return prepared;
}

async function receiveSummary<T>(
  deps: ConsumerDeps,
  caller: Caller,
  { country, ref, sections }: { country: string; ref: string; sections: readonly string[] | undefined },
  prepare: (summary: FetchedSummary) => T,
): Promise<{ prepared: T; sectionsDisplay: string; signature: string }> {
  const answer = await deps.peers
    .call(country, '/ncp/v1/patient-summary', { hcp: caller.token, ref, ...(sections === undefined ? {} : { sections }) }, SummaryResultSchema, { signal: caller.signal })
    .catch(relayPeerRefusal);
  // What a peer signed is still checked before it reaches a clinician.
  let bundle: Bundle;
  try {
    bundle = validateIpsDocument(answer.payload.bundle).bundle;
  } catch (cause) {
    throw new GatewayError('peer.bad-response', 'the peer sent an invalid IPS document', { cause });
  }
  const { signedAt, signerNcpId, jws } = answer.signature;
  return {
    prepared: prepare({ bundle, basis: answer.payload.basis, sections: answer.payload.sections, signerNcpId, signedAt, jws }),
    sectionsDisplay: `IPS sections ${answer.payload.sections.join(',')}`,
    signature: `signed by ${signerNcpId} at ${signedAt.toISOString()}`,
  };
}
