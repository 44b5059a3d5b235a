/**
 * The one module that talks to this country's national FHIR server (fhir-rest.ts): find a patient
 * by national identifier, fetch the Patient Summary, register documents that came back from abroad,
 * and create notifications. Everything it returns is validated here (zod); transport problems become
 * `national.unavailable`, answers we cannot use `national.bad-response`: neither ever becomes "no such
 * patient", so an outage can't be mistaken for an answer.
 */
import { z } from 'zod';
import { GatewayError } from '../http/errors.js';
import { FhirHttpError, FhirRestClient } from './fhir-rest.js';

export interface NationalFhirOptions {
  readonly baseUrl: string;
  readonly timeoutMs: number;
  readonly summaryMode: 'operation' | 'latest-document';
}

const HumanName = z.object({ family: z.string().optional(), given: z.array(z.string()).optional(), text: z.string().optional() }).loose();
const Identifier = z.object({ system: z.string().optional(), value: z.string().optional() }).loose();
const Reference = z.object({ reference: z.string().optional(), display: z.string().optional() }).loose();

export const PatientSchema = z
  .object({
    resourceType: z.literal('Patient'),
    id: z.string().regex(/^[A-Za-z0-9\-.]{1,64}$/),
    identifier: z.array(Identifier).optional(),
    name: z.array(HumanName).optional(),
    birthDate: z.string().optional(),
    gender: z.string().optional(),
    generalPractitioner: z.array(Reference).optional(),
    active: z.boolean().optional(),
  })
  .loose();
export type NationalPatient = z.output<typeof PatientSchema>;

const SearchSet = z
  .object({
    resourceType: z.literal('Bundle'),
    type: z.literal('searchset'),
    entry: z.array(z.object({ resource: z.unknown().optional(), search: z.object({ mode: z.string().optional() }).loose().optional() }).loose()).optional(),
    link: z.array(z.object({ relation: z.string(), url: z.string() }).loose()).optional(),
  })
  .loose();

export type IdentifyOutcome =
  | { readonly outcome: 'match'; readonly patient: NationalPatient }
  | { readonly outcome: 'no-match' }
  | { readonly outcome: 'multiple-matches' }
  | { readonly outcome: 'more-attributes-needed' };

export interface IdentifyQuery {
  readonly identifier: { readonly system: string; readonly value: string };
  readonly birthDate?: string | undefined;
  readonly familyName?: string | undefined;
}

/** Case- and accent-insensitive comparison of family names ("García" = "garcia"). */
function normaliseName(name: string): string {
  return name.normalize('NFD').replace(/\p{Diacritic}/gu, '').trim().toLowerCase();
}

export class NationalFhir {
  readonly #client: FhirRestClient;
  readonly #opts: NationalFhirOptions;

  constructor(opts: NationalFhirOptions) {
    this.#opts = opts;
    this.#client = new FhirRestClient({ baseUrl: opts.baseUrl, timeoutMs: opts.timeoutMs });
  }

  async #call<T>(what: string, fn: () => Promise<T>, notFoundIsUndefined = false): Promise<T | undefined> {
    try {
      return await fn();
    } catch (cause) {
      const status = cause instanceof FhirHttpError ? cause.status : undefined;
      if (notFoundIsUndefined && (status === 404 || status === 410)) return undefined;
      if (status !== undefined && status >= 400 && status < 500) throw new GatewayError('national.bad-response', `${what}: ${status}`, { cause });
      throw new GatewayError('national.unavailable', what, { cause });
    }
  }

  close(): Promise<void> {
    return this.#client.close();
  }

  /**
   * Patient identification (DESIGN.md flow 3): the identifier must be the national one, and the
   * demographics the requester supplies must agree. Without a birth date we do not answer, because
   * an identifier alone is too easy to guess for a one-shot lookup (eHDSI "more attributes needed").
   */
  async identify(q: IdentifyQuery): Promise<IdentifyOutcome> {
    if (q.birthDate === undefined) return { outcome: 'more-attributes-needed' };
    const body = await this.#call('Patient search', () =>
      this.#client.search('Patient', { identifier: `${q.identifier.system}|${q.identifier.value}`, _count: 10 }),
    );
    const parsed = SearchSet.safeParse(body);
    if (!parsed.success) throw new GatewayError('national.bad-response', 'Patient search is not a searchset');
    const patients: NationalPatient[] = [];
    for (const entry of parsed.data.entry ?? []) {
      if (entry.search?.mode !== undefined && entry.search.mode !== 'match') continue;
      const p = PatientSchema.safeParse(entry.resource);
      if (!p.success) throw new GatewayError('national.bad-response', 'malformed Patient');
      // The server matched on the token; check it ourselves too (a lenient server must not widen it).
      if (p.data.identifier?.some((i) => i.system === q.identifier.system && i.value === q.identifier.value) === true && p.data.active !== false) {
        patients.push(p.data);
      }
    }
    const agreeing = patients.filter(
      (p) =>
        p.birthDate === q.birthDate &&
        (q.familyName === undefined || (p.name ?? []).some((n) => n.family !== undefined && normaliseName(n.family) === normaliseName(q.familyName ?? ''))),
    );
    const [only, ...more] = agreeing;
    if (only === undefined) return { outcome: 'no-match' };
    if (more.length > 0) return { outcome: 'multiple-matches' };
    return { outcome: 'match', patient: only };
  }

  /** The one active patient with exactly this national identifier, if there is exactly one. */
  async findByIdentifier(identifier: { system: string; value: string }): Promise<NationalPatient | undefined> {
    const body = await this.#call('Patient search', () =>
      this.#client.search('Patient', { identifier: `${identifier.system}|${identifier.value}`, _count: 10 }),
    );
    const parsed = SearchSet.safeParse(body);
    if (!parsed.success) throw new GatewayError('national.bad-response', 'Patient search is not a searchset');
    const matches = (parsed.data.entry ?? [])
      .map((e) => PatientSchema.safeParse(e.resource))
      .filter((p) => p.success)
      .map((p) => p.data)
      .filter((p) => p.active !== false && p.identifier?.some((i) => i.system === identifier.system && i.value === identifier.value) === true);
    return matches.length === 1 ? matches[0] : undefined;
  }

  async readPatient(id: string): Promise<NationalPatient | undefined> {
    const body = await this.#call('Patient read', () => this.#client.read('Patient', id), true);
    if (body === undefined) return undefined;
    const p = PatientSchema.safeParse(body);
    if (!p.success) throw new GatewayError('national.bad-response', 'malformed Patient');
    return p.data;
  }

  /** The newest IPS document for the patient, or undefined when there is none (404). */
  async summary(patientId: string): Promise<unknown> {
    if (this.#opts.summaryMode === 'operation') {
      return this.#call(
        'Patient $summary',
        () => this.#client.instanceOperation('Patient', patientId, 'summary'),
        true,
      );
    }
    const body = await this.#call('Bundle search', () =>
      this.#client.search('Bundle', { 'composition.patient': `Patient/${patientId}`, type: 'document', _sort: '-timestamp', _count: 1 }),
    );
    const parsed = SearchSet.safeParse(body);
    if (!parsed.success) throw new GatewayError('national.bad-response', 'Bundle search is not a searchset');
    return parsed.data.entry?.[0]?.resource;
  }

  /** Posts a transaction Bundle (conditional creates make a redelivery harmless). */
  async transaction(bundle: Record<string, unknown> & { resourceType: 'Bundle' }): Promise<unknown> {
    return this.#call('transaction', () => this.#client.transaction(bundle));
  }

  async create(resource: Record<string, unknown> & { resourceType: string }): Promise<unknown> {
    return this.#call(`${resource.resourceType} create`, () => this.#client.create(resource));
  }
}
