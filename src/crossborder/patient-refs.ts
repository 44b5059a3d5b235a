/**
 * Opaque, expiring, requester-bound patient references (country A side). 256 random bits, so a
 * reference can be neither guessed nor derived from the patient; the binding to country, HCP and
 * HCP session is checked on every use, and any mismatch looks exactly like an unknown reference.
 */
import { randomBytes } from 'node:crypto';
import { GatewayError } from '../http/errors.js';
import type { Queryable } from '../storage/db.js';

export interface PatientRefBinding {
  readonly requesterCountry: string;
  readonly hcpSubject: string;
  /** The HCP assertion's jti: a new sign-in is a new session and needs a new identification. */
  readonly hcpSession: string;
}

export interface ResolvedPatientRef {
  readonly patientId: string;
  readonly patientKey: string;
}

const REF = /^[A-Za-z0-9_-]{43}$/;

export function isPatientRef(value: string): boolean {
  return REF.test(value);
}

export class PatientRefs {
  readonly #db: Queryable;
  constructor(db: Queryable) {
    this.#db = db;
  }

  async create(patient: ResolvedPatientRef, binding: PatientRefBinding, expiresAt: Date): Promise<string> {
    const ref = randomBytes(32).toString('base64url');
    await this.#db.query(
      'INSERT INTO patient_refs (ref, patient_id, patient_key, requester_country, hcp_subject, hcp_session, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)',
      [ref, patient.patientId, patient.patientKey, binding.requesterCountry, binding.hcpSubject, binding.hcpSession, expiresAt],
    );
    return ref;
  }

  async resolve(ref: string, binding: PatientRefBinding, now: Date): Promise<ResolvedPatientRef> {
    if (!isPatientRef(ref)) throw new GatewayError('patient.reference-invalid');
    const { rows } = await this.#db.query<{ patient_id: string; patient_key: string }>(
      `SELECT patient_id, patient_key FROM patient_refs
        WHERE ref = $1 AND requester_country = $2 AND hcp_subject = $3 AND hcp_session = $4 AND expires_at > $5`,
      [ref, binding.requesterCountry, binding.hcpSubject, binding.hcpSession, now],
    );
    const row = rows[0];
    if (row === undefined) throw new GatewayError('patient.reference-invalid');
    return { patientId: row.patient_id, patientKey: row.patient_key };
  }

  async purgeExpired(now: Date): Promise<number> {
    const { rowCount } = await this.#db.query('DELETE FROM patient_refs WHERE expires_at <= $1', [now]);
    return rowCount;
  }
}
