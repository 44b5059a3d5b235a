/**
 * Consents in the database (table `consents`, migrations/002_consents.sql), behind the Db port.
 *
 * Nothing is cached: every decision reads the rows afresh, so a revocation is in force for the very
 * next request on every replica (issue 5: "revocation is immediate").
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { GatewayError } from '../http/errors.js';
import type { Queryable } from '../storage/db.js';
import type { ConsentRecord } from './decision.js';
import { CONSENT_POLICY_URI, FhirConsentSchema, toFhirConsent, type ConsentTerms, type FhirConsent } from './model.js';

/** A consent as stored: the decision's view plus who it belongs to, its FHIR form and its history. */
export interface StoredConsent extends ConsentRecord {
  readonly patientKey: string;
  readonly resource: FhirConsent;
  readonly createdAt: Date;
  readonly revokedAt: Date | null;
}

/** The `patient_key` of a national patient identifier: `system|value`. */
export function patientKeyOf(identifier: { readonly system: string; readonly value: string }): string {
  return `${identifier.system}|${identifier.value}`;
}

/** RFC 9562 textual form; anything else cannot be one of our ids (and would make PostgreSQL throw). */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isConsentId(id: string): boolean {
  return UUID.test(id);
}

/** A fresh consent id (`crypto.randomUUID()`), to build the FHIR resource with before `create`. */
export function newConsentId(): string {
  return randomUUID();
}

// pg returns timestamptz as Date; keep accepting the text form should a type parser change.
const timestamp = z.union([z.date(), z.string()]).transform((v, ctx) => {
  const d = v instanceof Date ? v : new Date(v);
  if (Number.isNaN(d.getTime())) {
    ctx.addIssue({ code: 'custom', message: 'not a timestamp' });
    return z.NEVER;
  }
  return d;
});

const ConsentRowSchema = z.object({
  id: z.string(),
  patient_key: z.string(),
  kind: z.enum(['permit', 'opt-out']),
  status: z.enum(['active', 'revoked']),
  countries: z.array(z.string()),
  roles: z.array(z.string()),
  purposes: z.array(z.string()),
  sections: z.array(z.string()),
  period_start: timestamp,
  period_end: timestamp.nullable(),
  resource: FhirConsentSchema,
  created_at: timestamp,
  revoked_at: timestamp.nullable(),
});

/** The columns a decision reads (`ConsentRecord`): not the FHIR resource, nor its history. */
const RECORD_COLUMNS = 'id, kind, status, countries, roles, purposes, sections, period_start, period_end';

const ConsentRecordRowSchema = ConsentRowSchema.pick({
  id: true,
  kind: true,
  status: true,
  countries: true,
  roles: true,
  purposes: true,
  sections: true,
  period_start: true,
  period_end: true,
});

/** The decision's view of a row; a full row has these columns too. */
function recordOf(r: z.output<typeof ConsentRecordRowSchema>): ConsentRecord {
  return {
    id: r.id,
    kind: r.kind,
    status: r.status,
    countries: r.countries,
    roles: r.roles,
    purposes: r.purposes,
    sections: r.sections,
    periodStart: r.period_start,
    periodEnd: r.period_end,
  };
}

function toConsentRecord(row: unknown): ConsentRecord {
  return recordOf(ConsentRecordRowSchema.parse(row));
}

function toStoredConsent(row: unknown): StoredConsent {
  const r = ConsentRowSchema.parse(row);
  return { ...recordOf(r), patientKey: r.patient_key, resource: r.resource, createdAt: r.created_at, revokedAt: r.revoked_at };
}

const COLUMNS =
  'id, patient_key, kind, status, countries, roles, purposes, sections, period_start, period_end, resource, created_at, revoked_at';

/** Newest first; the id only breaks ties between consents created in one transaction. */
const NEWEST_FIRST = 'ORDER BY created_at DESC, id DESC';

export class ConsentRepository {
  readonly #db: Queryable;

  constructor(db: Queryable) {
    this.#db = db;
  }

  /**
   * Stores a consent under the resource's `id` (make it with `newConsentId()`). The resource must be
   * about the patient `patientKey` names; it is stored `active` whatever it says.
   */
  /**
   * A citizen's validated terms become a stored Consent: a new id, the FHIR resource (our NCP as the
   * organisation that presents and enforces the policy), the row. The API and the portal both grant
   * through here.
   */
  async grant(
    grantor: { readonly patientKey: string; readonly patient: { readonly system: string; readonly value: string }; readonly name?: string | undefined },
    terms: ConsentTerms,
    opts: { readonly grantedAt: Date; readonly ourCountry: string },
  ): Promise<StoredConsent> {
    const resource = toFhirConsent(terms, {
      id: newConsentId(),
      patient: grantor.patient,
      grantedAt: opts.grantedAt,
      ...(grantor.name === undefined ? {} : { grantorName: grantor.name }),
      organizationName: `National Contact Point for eHealth ${opts.ourCountry}`,
      policyUri: CONSENT_POLICY_URI,
    });
    return this.create(grantor.patientKey, terms, resource);
  }

  async create(patientKey: string, terms: ConsentTerms, fhir: FhirConsent): Promise<StoredConsent> {
    const id = fhir.id;
    // Programming errors, not caller errors: they surface as internal.error.
    if (!isConsentId(id) || id !== id.toLowerCase()) throw new Error('a consent id must be a lower-case UUID (newConsentId())');
    const subject = fhir.patient.identifier;
    if (subject === undefined || patientKeyOf(subject) !== patientKey) {
      throw new Error('the Consent resource names another patient than the one it is stored for');
    }
    const resource: FhirConsent = { ...fhir, id, status: 'active' };
    const { rows } = await this.#db.query(
      `INSERT INTO consents (id, patient_key, kind, status, countries, roles, purposes, sections, period_start, period_end, resource)
       VALUES ($1, $2, $3, 'active', $4, $5, $6, $7, $8, $9, ($10::text)::jsonb)
       RETURNING ${COLUMNS}`,
      [
        id,
        patientKey,
        terms.kind,
        [...terms.countries],
        [...terms.roles],
        [...terms.purposes],
        [...terms.sections],
        terms.periodStart.toISOString(),
        terms.periodEnd === null ? null : terms.periodEnd.toISOString(),
        JSON.stringify(resource),
      ],
    );
    return toStoredConsent(rows[0]);
  }

  /** Every consent of the patient, revoked ones included, newest first. */
  async listForPatient(patientKey: string): Promise<StoredConsent[]> {
    const { rows } = await this.#db.query(`SELECT ${COLUMNS} FROM consents WHERE patient_key = $1 ${NEWEST_FIRST}`, [patientKey]);
    return rows.map(toStoredConsent);
  }

  /**
   * The patient's non-revoked consents, for `decide()`. Expired and future ones are included: the
   * decision needs them to tell `not-in-period` from `no-consent`.
   */
  async activeForPatient(patientKey: string): Promise<StoredConsent[]> {
    const { rows } = await this.#db.query(
      `SELECT ${COLUMNS} FROM consents WHERE patient_key = $1 AND status = 'active' ${NEWEST_FIRST}`,
      [patientKey],
    );
    return rows.map(toStoredConsent);
  }

  /**
   * What `activeForPatient` holds, as a decision reads it (`decide`, `permitsDiscovery`): the same rows
   * in the same order, without the FHIR resource. Every peer request decides on these, so the
   * resource (JSON the driver parses, and its schema) is not read for it.
   */
  async activeRecordsForPatient(patientKey: string): Promise<ConsentRecord[]> {
    const { rows } = await this.#db.query(
      `SELECT ${RECORD_COLUMNS} FROM consents WHERE patient_key = $1 AND status = 'active' ${NEWEST_FIRST}`,
      [patientKey],
    );
    return rows.map(toConsentRecord);
  }

  /**
   * Revokes one of the patient's consents. An id that is not a UUID, unknown, or another patient's
   * gives `consent.not-found` (the same answer, so ids of others cannot be probed). Revoking again
   * changes nothing and keeps the first `revoked_at`. The FHIR resource becomes `inactive` in the
   * same statement, so the record and the indexed terms never disagree.
   */
  async revoke(patientKey: string, id: string, at: Date): Promise<StoredConsent> {
    if (!isConsentId(id)) throw new GatewayError('consent.not-found');
    const { rows } = await this.#db.query(
      `UPDATE consents
          SET status = 'revoked',
              revoked_at = COALESCE(revoked_at, $3),
              resource = jsonb_set(resource, '{status}', '"inactive"'::jsonb)
        WHERE id = $1 AND patient_key = $2
        RETURNING ${COLUMNS}`,
      [id.toLowerCase(), patientKey, at.toISOString()],
    );
    if (rows.length === 0) throw new GatewayError('consent.not-found');
    return toStoredConsent(rows[0]);
  }
}
