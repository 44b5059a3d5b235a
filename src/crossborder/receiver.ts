/**
 * Country A: registering what was produced abroad (DESIGN.md flow 5). After the peer request passed
 * mutual TLS and the envelope, in order: the HCP assertion (valid when the document was submitted)
 * -> the patient reference -> a consent or policy that lets data come back -> the Bundle rules ->
 * deduplication by message id -> registration in the national FHIR server as a transaction of
 * conditional creates (a redelivery can never duplicate) -> notification of the patient's GP ->
 * audit -> a signed receipt.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Auditor } from '../audit/auditor.js';
import type { Config } from '../config/schema.js';
import { permitsDiscovery } from '../consent/decision.js';
import type { ConsentRepository } from '../consent/repository.js';
import { GatewayError } from '../http/errors.js';
import { purposeOf, rolesOf, verifyPeerHcpAssertion } from '../identity/hcp-assertion.js';
import type { NationalFhir } from '../national/fhir.js';
import { checkSubmissionBundle, contentHash, type CheckedResource } from '../outbox/submission-bundle.js';
import type { Queryable } from '../storage/db.js';
import { countryEntry, type TrustList } from '../trust/trust-list.js';
import { signCompact, type SigningKey } from './envelope.js';
import type { PatientRefs } from './patient-refs.js';
import type { PeerOperation } from './peer-routes.js';
import { auditUser } from './provider.js';

export const RECEIPT_TYP = 'ncpeh-receipt+jwt';
export const SUBMISSION_IDENTIFIER_SYSTEM = 'urn:ncpeh:submission';

export interface ReceiverDeps {
  readonly config: Readonly<Config>;
  readonly db: Queryable;
  readonly national: NationalFhir;
  readonly consents: ConsentRepository;
  readonly refs: PatientRefs;
  readonly audit: Auditor;
  readonly signingKey: SigningKey;
  readonly trustList: () => TrustList;
  readonly now: () => Date;
  readonly notify?: Notifier;
}

export type Notifier = (event: { messageId: string; senderCountry: string; patientId: string; registered: string[] }) => Promise<void>;

const DeliverySchema = z
  .object({
    hcp: z.string().min(1).max(16 * 1024),
    ref: z.string().min(1).max(128),
    messageId: z.string().uuid(),
    submittedAt: z.iso.datetime(),
    bundle: z.record(z.string(), z.unknown()),
  })
  .strict();

const TransactionResponse = z.object({
  resourceType: z.literal('Bundle'),
  entry: z.array(z.object({ response: z.object({ location: z.string().optional(), status: z.string() }).loose() }).loose()).optional(),
});

type Json = Record<string, unknown>;

/** A copy whose every reference to the opaque patient reference names the national Patient instead. */
function toNationalPatient(resource: Json, patientId: string): Json {
  const text = JSON.stringify(resource);
  const subject = resource['subject'];
  const opaque = typeof subject === 'object' && subject !== null && 'reference' in subject && typeof subject.reference === 'string' ? subject.reference : undefined;
  if (opaque === undefined) return structuredClone(resource);
  const rewritten: unknown = JSON.parse(text, (key, value: unknown) => (key === 'reference' && value === opaque ? `Patient/${patientId}` : value));
  return typeof rewritten === 'object' && rewritten !== null && !Array.isArray(rewritten) ? { ...rewritten } : structuredClone(resource);
}

/** The national resources for one delivery: subject rewritten to the national Patient, tagged by message. */
export function registrationBundle(
  bundle: Json,
  resources: readonly CheckedResource[],
  patientId: string,
  messageId: string,
): Json & { resourceType: 'Bundle' } {
  const tag = (i: number): { system: string; value: string } => ({ system: SUBMISSION_IDENTIFIER_SYSTEM, value: `${messageId}/${i}` });
  if (bundle['type'] === 'document') {
    // A document stays one signed-off unit: stored whole, as the national server stores documents.
    const entries = resources.map(({ resource, fullUrl }) => ({ fullUrl: fullUrl ?? `urn:uuid:${randomUUID()}`, resource: toNationalPatient(resource, patientId) }));
    const doc = { ...structuredClone(bundle), identifier: tag(0), entry: entries };
    return {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [{ resource: doc, request: { method: 'POST', url: 'Bundle', ifNoneExist: `identifier=${SUBMISSION_IDENTIFIER_SYSTEM}|${messageId}/0` } }],
    };
  }
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: resources.map(({ resourceType, resource, fullUrl }, i) => {
      const copy = toNationalPatient(resource, patientId);
      delete copy['id'];
      const existing: unknown = copy['identifier'];
      const identifiers: unknown[] = Array.isArray(existing) ? existing : [];
      copy['identifier'] = [...identifiers, tag(i)];
      return {
        // Entries may reference each other by their urn:uuid; the transaction resolves those.
        fullUrl: fullUrl ?? `urn:uuid:${randomUUID()}`,
        resource: copy,
        // Conditional create (FHIR R4 http.html#ccreate): delivering the same message twice finds
        // the resource registered the first time instead of creating another.
        request: { method: 'POST', url: resourceType, ifNoneExist: `identifier=${SUBMISSION_IDENTIFIER_SYSTEM}|${messageId}/${i}` },
      };
    }),
  };
}

export function documentsOperation(deps: ReceiverDeps): PeerOperation {
  return {
    path: '/documents',
    handle: async (ctx) => {
      const parsed = DeliverySchema.safeParse({
        hcp: ctx.request.claims['hcp'],
        ref: ctx.request.claims['ref'],
        messageId: ctx.request.claims['messageId'],
        submittedAt: ctx.request.claims['submittedAt'],
        bundle: ctx.request.claims['bundle'],
      });
      if (!parsed.success) throw new GatewayError('request.invalid', 'delivery');
      const d = parsed.data;
      const now = deps.now();
      const submittedAt = new Date(d.submittedAt);
      // Delivery may come hours after submission (peer down): the sender vouches, by its signature,
      // for when the professional submitted; we accept that time only within a bounded window.
      const maxAgeMs = deps.config.submissions.maxAgeHours * 3_600_000;
      if (submittedAt.getTime() > now.getTime() + 60_000 || now.getTime() - submittedAt.getTime() > maxAgeMs) {
        throw new GatewayError('submission.invalid', 'submission time outside the accepted window', { expression: ['submittedAt'] });
      }
      const assertion = await verifyPeerHcpAssertion(d.hcp, deps.trustList(), ctx.country, submittedAt, { skewSeconds: deps.config.policy.clockSkewSeconds });
      const patient = await deps.refs.resolve(d.ref, { requesterCountry: ctx.country, hcpSubject: assertion.sub, hcpSession: assertion.jti }, submittedAt);
      const consents = await deps.consents.activeRecordsForPatient(patient.patientKey);
      const purpose = purposeOf(assertion);
      const allowed = rolesOf(assertion).some((role) =>
        permitsDiscovery(consents, { breakGlass: deps.config.policy.breakGlass }, { country: ctx.country, role: role.code, purpose, at: submittedAt }),
      );
      const base = {
        user: auditUser(assertion),
        client: { id: countryEntry(deps.trustList(), ctx.country).ncpId, network: ctx.remoteAddress },
        sourceCountry: ctx.country,
        transactionId: ctx.requestId,
        patient: { reference: `Patient/${d.ref}` },
      } as const;
      if (!allowed) {
        await deps.audit.record({ ...base, kind: 'submission-registered', outcome: 'minor', outcomeDesc: 'consent.denied' }, { patientKey: patient.patientKey });
        throw new GatewayError('consent.denied');
      }
      const checked = checkSubmissionBundle(d.bundle, `Patient/${d.ref}`);
      const hash = contentHash(d.bundle);

      const previous = await deps.db.query<{ content_hash: string; receipt_jws: string }>(
        'SELECT content_hash, receipt_jws FROM received_documents WHERE sender_country = $1 AND message_id = $2',
        [ctx.country, d.messageId],
      );
      const seen = previous.rows[0];
      if (seen !== undefined) {
        if (seen.content_hash !== hash) throw new GatewayError('submission.idempotency-conflict');
        return { receipt: seen.receipt_jws };
      }

      const response = TransactionResponse.safeParse(await deps.national.transaction(registrationBundle(d.bundle, checked.resources, patient.patientId, d.messageId)));
      if (!response.success) throw new GatewayError('national.bad-response', 'transaction response');
      const registered = (response.data.entry ?? []).map((e) => e.response.location ?? '').filter((l) => l.length > 0).map((l) => l.replace(/\/_history\/.*$/, ''));
      await deps.notify?.({ messageId: d.messageId, senderCountry: ctx.country, patientId: patient.patientId, registered });
      await deps.audit.record(
        { ...base, kind: 'submission-registered', outcome: 'success', entityExtra: [{ what: { identifier: { system: SUBMISSION_IDENTIFIER_SYSTEM, value: d.messageId } }, description: `${registered.length} resources` }] },
        { patientKey: patient.patientKey },
      );
      const receipt = await signCompact(deps.signingKey, RECEIPT_TYP, {
        iss: deps.config.ncpId,
        aud: countryEntry(deps.trustList(), ctx.country).ncpId,
        messageId: d.messageId,
        contentHash: hash,
        registered,
        receivedAt: now.toISOString(),
      });
      // A crash before this row is written is harmless: the redelivery re-registers through the same
      // conditional creates (same ids) and gets a receipt for the same registration.
      await deps.db.query(
        `INSERT INTO received_documents (message_id, sender_country, content_hash, patient_key, registered, receipt_jws)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (sender_country, message_id) DO NOTHING`,
        [d.messageId, ctx.country, hash, patient.patientKey, JSON.stringify(registered), receipt],
      );
      const stored = await deps.db.query<{ receipt_jws: string }>('SELECT receipt_jws FROM received_documents WHERE sender_country = $1 AND message_id = $2', [ctx.country, d.messageId]);
      return { receipt: stored.rows[0]?.receipt_jws ?? receipt };
    },
  };
}

/** How long the GP notification's webhook may take. */
export const GP_WEBHOOK_TIMEOUT_MS = 5_000;

/**
 * Notifies the patient's GP/specialist with a FHIR Communication in the national server (conditional
 * create, so a redelivery does not notify twice), and the configured webhook with ids only.
 */
export function gpNotifier(national: NationalFhir, webhookUrl: string | undefined, log: { warn(o: object, m: string): void }): Notifier {
  return async (event) => {
    const patient = await national.readPatient(event.patientId);
    const recipients = (patient?.generalPractitioner ?? []).filter((r) => r.reference !== undefined).map((r) => ({ reference: r.reference }));
    await national.transaction({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        {
          resource: {
            resourceType: 'Communication',
            identifier: [{ system: SUBMISSION_IDENTIFIER_SYSTEM, value: `${event.messageId}/notification` }],
            status: 'completed',
            category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/communication-category', code: 'notification' }] }],
            subject: { reference: `Patient/${event.patientId}` },
            recipient: recipients,
            sent: new Date().toISOString(),
            payload: [{ contentString: `New clinical data for your patient was received from ${event.senderCountry} and registered (${event.registered.length} resources).` }],
            about: event.registered.map((reference) => ({ reference })),
          },
          request: { method: 'POST', url: 'Communication', ifNoneExist: `identifier=${SUBMISSION_IDENTIFIER_SYSTEM}|${event.messageId}/notification` },
        },
      ],
    });
    if (webhookUrl !== undefined) {
      await fetch(webhookUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ event: 'document-registered', messageId: event.messageId, senderCountry: event.senderCountry, patient: `Patient/${event.patientId}`, registered: event.registered }),
        signal: AbortSignal.timeout(GP_WEBHOOK_TIMEOUT_MS),
      }).catch((err: unknown) => log.warn({ err }, 'webhook notification failed'));
    }
  };
}
