/**
 * Country A: the peer operations that answer for this country's patients (DESIGN.md flows 3 and 4).
 * Each runs after the peer request passed mutual TLS and the signed envelope; then, in order:
 * the HCP assertion issued by the calling country -> the patient -> consent (or break-glass
 * policy) -> the national document -> IPS validation -> consent filtering -> audit, and only then
 * the answer (sealed by peer-routes.ts). Any failure before the audit record is written discloses
 * nothing.
 */
import { z } from 'zod';
import type { Auditor } from '../audit/auditor.js';
import type { AuditUser } from '../audit/balp.js';
import type { Config } from '../config/schema.js';
import { decide, permitsDiscovery, type Decision } from '../consent/decision.js';
import { patientKeyOf, type ConsentRepository } from '../consent/repository.js';
import { GatewayError, isGatewayError } from '../http/errors.js';
import { purposeOf, rolesOf, verifyPeerHcpAssertion, type HcpAssertion } from '../identity/hcp-assertion.js';
import type { NationalFhir, NationalPatient } from '../national/fhir.js';
import { filterIpsBySections } from '../national/ips-filter.js';
import { validateIpsDocument } from '../national/ips.js';
import type { TrustList } from '../trust/trust-list.js';
import type { PatientRefs } from './patient-refs.js';
import type { PeerContext, PeerOperation } from './peer-routes.js';

export interface ProviderDeps {
  readonly config: Readonly<Config>;
  readonly national: NationalFhir;
  readonly consents: ConsentRepository;
  readonly refs: PatientRefs;
  readonly audit: Auditor;
  readonly trustList: () => TrustList;
  readonly now: () => Date;
}

export const DiscoveryQuerySchema = z
  .object({
    identifier: z.object({ system: z.string().min(1).max(256), value: z.string().min(1).max(64).regex(/^[^|,$\\]+$/) }).strict(),
    birthDate: z.iso.date().optional(),
    familyName: z.string().min(1).max(200).optional(),
  })
  .strict();

export const DiscoveryResultSchema = z.object({
  outcome: z.enum(['match', 'no-match', 'more-attributes-needed']),
  matches: z.array(
    z.object({
      ref: z.string(),
      name: z.string().optional(),
      birthDate: z.string().optional(),
      gender: z.string().optional(),
    }),
  ),
});
export type DiscoveryResult = z.infer<typeof DiscoveryResultSchema>;

export const SummaryResultSchema = z.object({
  bundle: z.record(z.string(), z.unknown()),
  basis: z.enum(['consent', 'break-glass']),
  sections: z.array(z.string()),
});
export type SummaryResult = z.infer<typeof SummaryResultSchema>;

const HcpClaim = z.string().min(1).max(16 * 1024);

async function peerHcp(ctx: PeerContext, deps: ProviderDeps): Promise<{ token: string; assertion: HcpAssertion }> {
  const token = HcpClaim.safeParse(ctx.request.claims['hcp']);
  if (!token.success) throw new GatewayError('hcp.assertion-missing');
  const assertion = await verifyPeerHcpAssertion(token.data, deps.trustList(), ctx.country, deps.now(), {
    skewSeconds: deps.config.policy.clockSkewSeconds,
  });
  return { token: token.data, assertion };
}

function coding(c: { system: string; code: string; display?: string | undefined }): { system: string; code: string; display?: string } {
  return c.display === undefined ? { system: c.system, code: c.code } : { system: c.system, code: c.code, display: c.display };
}

export function auditUser(a: HcpAssertion): AuditUser {
  const first = rolesOf(a)[0];
  const role = first === undefined ? undefined : coding(first);
  return {
    id: { iss: a.iss, sub: a.sub },
    name: a.extensions.ihe_iua.subject_name,
    ...(role === undefined ? {} : { role }),
    purposeOfUse: a.extensions.ihe_iua.purpose_of_use.map(coding),
    organization: { name: a.extensions.ihe_iua.subject_organization, id: a.extensions.ihe_iua.subject_organization_id },
    jti: a.jti,
  };
}

/** The first of the professional's roles that the patient's consents (or policy) permit. */
function decideForRoles(a: HcpAssertion, decideFor: (role: string) => Decision): Decision {
  let last: Decision = { permit: false, reason: 'role' };
  for (const role of rolesOf(a)) {
    last = decideFor(role.code);
    if (last.permit) return last;
  }
  return last;
}

function displayName(p: NationalPatient): string | undefined {
  const n = p.name?.[0];
  if (n === undefined) return undefined;
  return n.text ?? [...(n.given ?? []), n.family ?? ''].join(' ').trim();
}

export function discoveryOperation(deps: ProviderDeps): PeerOperation {
  return {
    path: '/patient-discovery',
    handle: async (ctx) => {
      const { assertion } = await peerHcp(ctx, deps);
      const parsed = DiscoveryQuerySchema.safeParse(ctx.request.claims['query']);
      if (!parsed.success) throw new GatewayError('request.invalid', 'query');
      const query = parsed.data;
      const base = {
        user: auditUser(assertion),
        client: { id: deps.trustList().countries[ctx.country]?.ncpId ?? ctx.country, network: ctx.remoteAddress },
        sourceCountry: ctx.country,
        transactionId: ctx.requestId,
        // The identifier system only: the value is the patient's national number.
        query: `Patient?identifier=${query.identifier.system}|*&birthdate=${query.birthDate === undefined ? '-' : '*'}`,
      } as const;

      const ours = deps.config.citizen?.patientIdentifierSystem;
      const found = ours !== undefined && query.identifier.system === ours ? await deps.national.identify(query) : { outcome: 'no-match' as const };
      if (found.outcome === 'more-attributes-needed') {
        await deps.audit.record({ ...base, kind: 'query', outcome: 'minor', outcomeDesc: 'more-attributes-needed' });
        return { outcome: 'more-attributes-needed', matches: [] } satisfies DiscoveryResult;
      }
      if (found.outcome !== 'match') {
        // Several persons behind one national identifier is a registry defect; answering with it
        // would reveal existence, so it is "no match" like any other refusal.
        await deps.audit.record({ ...base, kind: 'query', outcome: 'minor', outcomeDesc: found.outcome });
        return { outcome: 'no-match', matches: [] } satisfies DiscoveryResult;
      }
      const patientKey = patientKeyOf(query.identifier);
      const consents = await deps.consents.activeRecordsForPatient(patientKey);
      const purpose = purposeOf(assertion);
      const permitted = rolesOf(assertion).some((role) =>
        permitsDiscovery(consents, { breakGlass: deps.config.policy.breakGlass }, { country: ctx.country, role: role.code, purpose, at: deps.now() }),
      );
      if (!permitted) {
        // No existence oracle (issue 5): a person without a consent for this requester gets the very
        // answer an unknown person gets. The patient still sees the attempt in the access log.
        await deps.audit.record({ ...base, kind: 'query', outcome: 'minor', outcomeDesc: 'consent.denied' }, { patientKey });
        return { outcome: 'no-match', matches: [] } satisfies DiscoveryResult;
      }
      const expiresAt = new Date(Math.min(assertion.exp * 1000, deps.now().getTime() + 4 * 3600_000));
      const ref = await deps.refs.create(
        { patientId: found.patient.id, patientKey },
        { requesterCountry: ctx.country, hcpSubject: assertion.sub, hcpSession: assertion.jti },
        expiresAt,
      );
      await deps.audit.record({ ...base, kind: 'query', outcome: 'success', patient: { reference: `Patient/${ref}` } }, { patientKey });
      const name = displayName(found.patient);
      return {
        outcome: 'match',
        matches: [
          {
            ref,
            ...(name === undefined ? {} : { name }),
            ...(found.patient.birthDate === undefined ? {} : { birthDate: found.patient.birthDate }),
            ...(found.patient.gender === undefined ? {} : { gender: found.patient.gender }),
          },
        ],
      } satisfies DiscoveryResult;
    },
  };
}

const SummaryRequestSchema = z
  .object({
    ref: z.string().min(1).max(128),
    sections: z.array(z.string().regex(/^\d{1,7}-\d$/)).max(32).optional(),
  })
  .strict();

export function summaryOperation(deps: ProviderDeps): PeerOperation {
  return {
    path: '/patient-summary',
    handle: async (ctx) => {
      const { assertion } = await peerHcp(ctx, deps);
      const parsed = SummaryRequestSchema.safeParse({ ref: ctx.request.claims['ref'], sections: ctx.request.claims['sections'] });
      if (!parsed.success) throw new GatewayError('request.invalid', 'ref');
      const at = deps.now();
      const patient = await deps.refs.resolve(parsed.data.ref, { requesterCountry: ctx.country, hcpSubject: assertion.sub, hcpSession: assertion.jti }, at);
      const base = {
        user: auditUser(assertion),
        client: { id: deps.trustList().countries[ctx.country]?.ncpId ?? ctx.country, network: ctx.remoteAddress },
        sourceCountry: ctx.country,
        transactionId: ctx.requestId,
        patient: { reference: `Patient/${parsed.data.ref}` },
      } as const;
      const audit = (input: Parameters<Auditor['record']>[0]): Promise<void> => deps.audit.record(input, { patientKey: patient.patientKey });

      // Read afresh on every request: a revocation a moment ago applies now (no caching).
      const consents = await deps.consents.activeRecordsForPatient(patient.patientKey);
      const purpose = purposeOf(assertion);
      const decision = decideForRoles(assertion, (role) =>
        decide(consents, { breakGlass: deps.config.policy.breakGlass }, { country: ctx.country, role, purpose, at, sections: parsed.data.sections }),
      );
      if (!decision.permit) {
        await audit({ ...base, kind: 'consent-decision', outcome: 'minor', outcomeDesc: `consent.denied:${decision.reason}` });
        throw new GatewayError('consent.denied');
      }
      if (decision.basis === 'break-glass') {
        await audit({ ...base, kind: 'break-glass', outcome: 'success', outcomeDesc: 'emergency access without consent (national policy)' });
      }
      let filtered: Record<string, unknown>;
      try {
        const raw = await deps.national.summary(patient.patientId);
        if (raw === undefined) throw new GatewayError('document.not-found');
        const document = validateIpsDocument(raw);
        // The filter validates its own result as an IPS before returning it: nothing invalid leaves.
        filtered = { ...filterIpsBySections(document, new Set(decision.sections)) };
      } catch (e) {
        await audit({ ...base, kind: 'export', outcome: 'serious', outcomeDesc: isGatewayError(e) ? e.code : 'internal.error' });
        throw e;
      }
      // Fail closed: if this record cannot be written, the summary is not released.
      await audit({
        ...base,
        kind: 'export',
        outcome: 'success',
        entityExtra: [{ what: { display: `IPS sections ${decision.sections.join(',')}` }, description: `basis ${decision.basis}` }],
      });
      return { bundle: filtered, basis: decision.basis, sections: decision.sections } satisfies SummaryResult;
    },
  };
}
