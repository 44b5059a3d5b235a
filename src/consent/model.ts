/**
 * The consent a citizen grants (DESIGN.md section 2, flow 1): which countries' professionals, in
 * which roles, for which purposes, may see which sections of his Patient Summary, and when. Two
 * shapes of the same thing live here:
 *
 * - `ConsentTerms`, the normalised terms the decision (./decision.ts) and the indexed columns
 *   (./repository.ts) work on;
 * - the FHIR R4 `Consent` in IHE PCF shape (IHE/ITI.PCF input/fsh/consent.fsh, profiles
 *   FoundationConsent and IntermediateConsent), the record the citizen sees and the one we keep.
 *
 * Pure: no I/O.
 */
import { z } from 'zod';
import { GatewayError } from '../http/errors.js';

// ---------------------------------------------------------------------------------------------
// Code tables (STANDARDS.md)
// ---------------------------------------------------------------------------------------------

export const LOINC_SYSTEM = 'http://loinc.org';

/**
 * IPS 2.0 Composition sections (HL7/fhir-ips input/fsh/profiles/CompositionUvIps.fsh). `required`
 * marks the three a document must always carry (with entries or an `emptyReason`, ips-comp-1).
 */
export const IPS_SECTIONS = [
  { code: '11450-4', title: 'Problems', required: true },
  { code: '48765-2', title: 'Allergies and intolerances', required: true },
  { code: '10160-0', title: 'Medication summary', required: true },
  { code: '11369-6', title: 'Immunizations', required: false },
  { code: '30954-2', title: 'Results', required: false },
  { code: '47519-4', title: 'History of procedures', required: false },
  { code: '46264-8', title: 'Medical devices', required: false },
  { code: '42348-3', title: 'Advance directives', required: false },
  { code: '104605-1', title: 'Alerts', required: false },
  { code: '47420-5', title: 'Functional status', required: false },
  { code: '11348-0', title: 'History of past problems', required: false },
  { code: '10162-6', title: 'History of pregnancy', required: false },
  { code: '81338-6', title: 'Patient story', required: false },
  { code: '18776-5', title: 'Plan of care', required: false },
  { code: '29762-2', title: 'Social history', required: false },
  { code: '8716-3', title: 'Vital signs', required: false },
] as const satisfies readonly { code: string; title: string; required: boolean }[];

export type IpsSectionCode = (typeof IPS_SECTIONS)[number]['code'];

/** Every IPS section code, in table order. */
export const IPS_SECTION_CODES: readonly IpsSectionCode[] = IPS_SECTIONS.map((s) => s.code);

const IPS_SECTION_BY_CODE: ReadonlyMap<string, (typeof IPS_SECTIONS)[number]> = new Map(IPS_SECTIONS.map((s) => [s.code, s]));

export function isIpsSectionCode(code: string): code is IpsSectionCode {
  return IPS_SECTION_BY_CODE.has(code);
}

export function ipsSectionTitle(code: IpsSectionCode): string {
  return IPS_SECTION_BY_CODE.get(code)?.title ?? code;
}

/** ISCO-08, as eHDSI HCP assertions carry the role (OID 2.16.840.1.113883.2.9.6.2.7). */
export const ISCO_SYSTEM = 'urn:oid:2.16.840.1.113883.2.9.6.2.7';

export const ISCO_ROLES = [
  { code: '221', display: 'Medical doctors' },
  { code: '2221', display: 'Nursing professionals' },
  { code: '2222', display: 'Midwifery professionals' },
  { code: '2261', display: 'Dentists' },
  { code: '2262', display: 'Pharmacists' },
  { code: '2264', display: 'Physiotherapists' },
  { code: '3213', display: 'Pharmaceutical technicians and assistants' },
] as const satisfies readonly { code: string; display: string }[];

export type IscoRoleCode = (typeof ISCO_ROLES)[number]['code'];

export const ISCO_ROLE_CODES: readonly IscoRoleCode[] = ISCO_ROLES.map((r) => r.code);

const ISCO_ROLE_BY_CODE: ReadonlyMap<string, (typeof ISCO_ROLES)[number]> = new Map(ISCO_ROLES.map((r) => [r.code, r]));

export function isIscoRoleCode(code: string): code is IscoRoleCode {
  return ISCO_ROLE_BY_CODE.has(code);
}

export function iscoRoleDisplay(code: IscoRoleCode): string {
  return ISCO_ROLE_BY_CODE.get(code)?.display ?? code;
}

/** v3-ActReason purposes of use a consent can name (STANDARDS.md, IHE PCF BasicPurposeVS / IUA). */
export const ACT_REASON_SYSTEM = 'http://terminology.hl7.org/CodeSystem/v3-ActReason';

export const PURPOSES = [
  { code: 'TREAT', display: 'treatment' },
  { code: 'ETREAT', display: 'Emergency Treatment' },
] as const satisfies readonly { code: string; display: string }[];

export type Purpose = (typeof PURPOSES)[number]['code'];

export function isPurpose(code: string): code is Purpose {
  return PURPOSES.some((p) => p.code === code);
}

export function purposeDisplay(code: Purpose): string {
  return PURPOSES.find((p) => p.code === code)?.display ?? code;
}

export type ConsentKind = 'permit' | 'opt-out';
export type ConsentStatus = 'active' | 'revoked';

/** Grantee countries are ISO 3166-1 alpha-2, as the trust list names them. */
export const COUNTRY_SYSTEM = 'urn:iso:std:iso:3166';
const COUNTRY_CODE = /^[A-Z]{2}$/;

// ---------------------------------------------------------------------------------------------
// Input (the citizen API body)
// ---------------------------------------------------------------------------------------------

/** FHIR `date` (YYYY-MM-DD) or `dateTime` with seconds and an explicit offset (DESIGN.md 6: times are UTC). */
const ISO_DATE = z.iso.date();
const ISO_DATE_TIME = z.iso.datetime({ offset: true });

function isIsoDateOrDateTime(s: string): boolean {
  return ISO_DATE.safeParse(s).success || ISO_DATE_TIME.safeParse(s).success;
}

const DAY_MS = 86_400_000;

/**
 * The instant a period bound stands for. A date-only `start` is that day's first instant (UTC); a
 * date-only `end` covers the whole day, as FHIR Period.end does ("the end value includes any
 * matching date/time"), so it becomes the next day's first instant: ends are exclusive everywhere
 * in this module and in the decision.
 */
function boundInstant(value: string, bound: 'start' | 'end'): Date {
  if (!ISO_DATE.safeParse(value).success) return new Date(value);
  const dayStart = Date.parse(`${value}T00:00:00Z`);
  return new Date(bound === 'end' ? dayStart + DAY_MS : dayStart);
}

const MAX_ITEMS = 64;

interface SchemaOptions {
  /** Countries of the trust list; absent: any upper-case alpha-2 code (the schema as documented). */
  readonly knownCountries?: readonly string[];
  /** When given, a period that is already over is refused. */
  readonly now?: Date;
}

/**
 * Code checks are refinements on strings rather than enums, so each failure is reported at its own
 * index and none stops the others from being checked: the citizen gets every problem at once.
 */
function buildConsentInputSchema(opts: SchemaOptions) {
  const known = opts.knownCountries === undefined ? undefined : new Set(opts.knownCountries);
  // `meta` keeps the code lists in the OpenAPI document although the checks are refinements.
  const country = z
    .string()
    .refine((c) => COUNTRY_CODE.test(c) && (known === undefined || known.has(c)), {
      message: known === undefined ? 'not an upper-case ISO 3166-1 alpha-2 code' : 'not a country in the trust list',
    })
    .meta({ pattern: COUNTRY_CODE.source, description: 'ISO 3166-1 alpha-2 code of a country in the trust list' });
  const role = z
    .string()
    .refine(isIscoRoleCode, { message: `not an ISCO-08 role code (${ISCO_ROLE_CODES.join(', ')})` })
    .meta({ enum: [...ISCO_ROLE_CODES], description: 'ISCO-08 role code' });
  const purpose = z
    .string()
    .refine(isPurpose, { message: 'not a purpose of use (TREAT, ETREAT)' })
    .meta({ enum: PURPOSES.map((p) => p.code), description: 'v3-ActReason purpose of use' });
  const section = z
    .string()
    .refine(isIpsSectionCode, { message: 'not an IPS section LOINC code' })
    .meta({ enum: [...IPS_SECTION_CODES], description: 'IPS section LOINC code' });
  const bound = z.string().refine(isIsoDateOrDateTime, { message: 'not a date (YYYY-MM-DD) or date-time with offset' });

  const period = z
    .object({ start: bound, end: bound.optional() })
    .superRefine((p, ctx) => {
      if (!isIsoDateOrDateTime(p.start) || p.end === undefined || !isIsoDateOrDateTime(p.end)) return;
      const start = boundInstant(p.start, 'start');
      const end = boundInstant(p.end, 'end');
      if (end.getTime() <= start.getTime()) {
        ctx.addIssue({ code: 'custom', path: ['end'], message: 'the period must end after it starts' });
      } else if (opts.now !== undefined && end.getTime() <= opts.now.getTime()) {
        ctx.addIssue({ code: 'custom', path: ['end'], message: 'the period is already over' });
      }
    });

  return z
    .object({
      kind: z.enum(['permit', 'opt-out']).default('permit'),
      countries: z.array(country).max(MAX_ITEMS).optional(),
      roles: z.array(role).max(MAX_ITEMS).optional(),
      purposes: z.array(purpose).max(MAX_ITEMS).optional(),
      sections: z.array(section).max(MAX_ITEMS).optional(),
      period,
    })
    .superRefine((c, ctx) => {
      const lists = [
        ['countries', c.countries],
        ['roles', c.roles],
        ['purposes', c.purposes],
        ['sections', c.sections],
      ] as const;
      for (const [name, list] of lists) {
        const empty = list === undefined || list.length === 0;
        if (c.kind === 'permit' && empty) {
          ctx.addIssue({ code: 'custom', path: [name], message: `a consent names at least one of its ${name}` });
        }
        // An opt-out denies everything to everyone; a scoped-looking opt-out would mislead its author.
        if (c.kind === 'opt-out' && !empty) {
          ctx.addIssue({ code: 'custom', path: [name], message: `an opt-out applies to all ${name}; leave ${name} out` });
        }
      }
    });
}

/**
 * The body of `POST /api/v1/me/consents` as documented (OpenAPI). The country list of the trust
 * list and the clock are only known per request: `validateConsentInput` applies both.
 */
export const ConsentInputSchema = buildConsentInputSchema({});

export type ConsentInput = z.input<typeof ConsentInputSchema>;

/** Normalised terms: codes de-duplicated and sorted, bounds as instants (end exclusive). */
export interface ConsentTerms {
  readonly kind: ConsentKind;
  /** Empty for an opt-out (it applies to every country, role, purpose and section). */
  readonly countries: readonly string[];
  readonly roles: readonly IscoRoleCode[];
  readonly purposes: readonly Purpose[];
  readonly sections: readonly IpsSectionCode[];
  readonly periodStart: Date;
  /** Exclusive; null means no expiry. */
  readonly periodEnd: Date | null;
  /** The period as the citizen wrote it (FHIR `dateTime` values), for the FHIR resource. */
  readonly period: { readonly start: string; readonly end?: string };
}

function uniqueSorted<T extends string>(values: readonly T[] | undefined): T[] {
  return [...new Set(values ?? [])].sort();
}

/**
 * Checks a consent body and returns its normalised terms, or throws `consent.invalid` (422) naming
 * every failing field in `expression` (`body.sections.0`, `body.period.end`, ...).
 */
export function validateConsentInput(body: unknown, opts: { knownCountries: readonly string[]; now: Date }): ConsentTerms {
  const result = buildConsentInputSchema(opts).safeParse(body);
  if (!result.success) {
    const issues = result.error.issues;
    const expression = [...new Set(issues.map((i) => ['body', ...i.path.map(String)].join('.')))];
    const detail = issues.map((i) => `${['body', ...i.path.map(String)].join('.')}: ${i.message}`).join('; ');
    throw new GatewayError('consent.invalid', detail, { cause: result.error, expression });
  }
  const input = result.data;
  const periodEnd = input.period.end === undefined ? null : boundInstant(input.period.end, 'end');
  return {
    kind: input.kind,
    countries: uniqueSorted(input.countries),
    roles: uniqueSorted((input.roles ?? []).filter(isIscoRoleCode)),
    purposes: uniqueSorted((input.purposes ?? []).filter(isPurpose)),
    sections: uniqueSorted((input.sections ?? []).filter(isIpsSectionCode)),
    periodStart: boundInstant(input.period.start, 'start'),
    periodEnd,
    period: input.period.end === undefined ? { start: input.period.start } : { start: input.period.start, end: input.period.end },
  };
}

// ---------------------------------------------------------------------------------------------
// FHIR R4 Consent, IHE PCF shape
// ---------------------------------------------------------------------------------------------

export const CONSENT_SCOPE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/consentscope';
export const PARTICIPATION_TYPE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType';
/** LOINC 59284-0, the category every PCF consent carries (consent.fsh examples: `category = LOINC#59284-0`). */
export const CONSENT_CATEGORY_CODE = '59284-0';

const CodingSchema = z.object({ system: z.string(), code: z.string(), display: z.string().optional() });
const CodeableConceptSchema = z.object({ coding: z.array(CodingSchema).min(1), text: z.string().optional() });
const IdentifierSchema = z.object({ system: z.string(), value: z.string() });
const ReferenceSchema = z.object({ reference: z.string().optional(), identifier: IdentifierSchema.optional(), display: z.string().optional() });
const PeriodSchema = z.object({ start: z.string().optional(), end: z.string().optional() });
const ActorSchema = z.object({ role: CodeableConceptSchema, reference: ReferenceSchema });

const NestedProvisionSchema = z.object({
  type: z.enum(['permit', 'deny']),
  actor: z.array(ActorSchema).optional(),
  class: z.array(CodingSchema).optional(),
  code: z.array(CodeableConceptSchema).optional(),
});

/**
 * The Consent resources this gateway writes (and reads back from its own table). A subset of FHIR R4
 * Consent, checked on the way out of storage like any other data crossing a boundary.
 */
export const FhirConsentSchema = z.object({
  resourceType: z.literal('Consent'),
  id: z.string(),
  status: z.enum(['active', 'inactive']),
  scope: CodeableConceptSchema,
  category: z.array(CodeableConceptSchema).min(1),
  patient: ReferenceSchema,
  dateTime: z.string(),
  performer: z.array(ReferenceSchema).min(1),
  organization: z.array(ReferenceSchema).min(1),
  policy: z.array(z.object({ uri: z.string() })).min(1),
  provision: z.object({
    type: z.enum(['permit', 'deny']),
    period: PeriodSchema.optional(),
    actor: z.array(ActorSchema).optional(),
    purpose: z.array(CodingSchema).optional(),
    provision: z.array(NestedProvisionSchema).optional(),
  }),
});

export type FhirConsent = z.infer<typeof FhirConsentSchema>;

/** The policy every consent of ours is given under (FHIR Consent.policy.uri). */
export const CONSENT_POLICY_URI = 'urn:ncpeh:policy:cross-border-patient-summary';

export interface FhirConsentOptions {
  readonly id: string;
  /** The national patient identifier (e.g. CPR: system urn:oid:1.2.208.176.1.2). */
  readonly patient: { readonly system: string; readonly value: string };
  readonly grantedAt: Date;
  readonly grantorName?: string;
  /** Our NCP, the organisation that presents the policy and enforces it. */
  readonly organizationName: string;
  readonly policyUri: string;
}

const IRCP = { coding: [{ system: PARTICIPATION_TYPE_SYSTEM, code: 'IRCP', display: 'information recipient' }] };

/**
 * Builds the FHIR Consent for `terms`, following IHE PCF consent.fsh:
 * - FoundationConsent: status, scope `patient-privacy`, category, patient, dateTime, performer,
 *   organization, policy.uri, provision.type, provision.period (no end = no expiry), provision.actor
 *   with role fixed to v3-ParticipationType#IRCP, provision.purpose; `provision.class` and
 *   `provision.code` are 0..0 at the root, so the data narrowing goes in a nested provision.
 * - IntermediateConsent: one level of nested provisions (`provision.provision.provision` 0..0), as in
 *   the example `ex-consent-advanced-normal-focused-restricted` (root permit, nested permit narrowing).
 *
 * A permit reads: the root grants professionals of the named countries (actor, identified by
 * ISO 3166 code) the named purposes within the period; the nested provision narrows that to the
 * named ISCO-08 roles (actor) and IPS sections (`code`, LOINC). Access needs both to hold.
 * An opt-out is a root `deny` with no actor and no purpose: everyone, every purpose, within its period.
 *
 * Not carried: `source[x]` (1..1 in FoundationConsent). The citizen consents through the API with an
 * eID session, not on a signed document; the audit record of the consent change is the evidence.
 */
export function toFhirConsent(terms: ConsentTerms, opts: FhirConsentOptions): FhirConsent {
  const patientIdentifier = { system: opts.patient.system, value: opts.patient.value };
  const period = terms.period.end === undefined ? { start: terms.period.start } : { start: terms.period.start, end: terms.period.end };

  const provision: FhirConsent['provision'] =
    terms.kind === 'opt-out'
      ? { type: 'deny', period }
      : {
          type: 'permit',
          period,
          actor: terms.countries.map((country) => ({
            role: IRCP,
            reference: { identifier: { system: COUNTRY_SYSTEM, value: country }, display: `Health professionals in ${country}` },
          })),
          purpose: terms.purposes.map((code) => ({
            system: ACT_REASON_SYSTEM,
            code,
            display: purposeDisplay(code),
          })),
          provision: [
            {
              type: 'permit',
              actor: terms.roles.map((role) => ({
                role: IRCP,
                reference: { identifier: { system: ISCO_SYSTEM, value: role }, display: iscoRoleDisplay(role) },
              })),
              code: terms.sections.map((section) => ({
                coding: [{ system: LOINC_SYSTEM, code: section, display: ipsSectionTitle(section) }],
              })),
            },
          ],
        };

  return {
    resourceType: 'Consent',
    id: opts.id,
    status: 'active',
    scope: { coding: [{ system: CONSENT_SCOPE_SYSTEM, code: 'patient-privacy', display: 'Privacy Consent' }] },
    category: [{ coding: [{ system: LOINC_SYSTEM, code: CONSENT_CATEGORY_CODE, display: 'Consent' }] }],
    patient: { identifier: patientIdentifier },
    dateTime: opts.grantedAt.toISOString(),
    // PCF: performer is the patient when the patient consented himself.
    performer: [opts.grantorName === undefined ? { identifier: patientIdentifier } : { identifier: patientIdentifier, display: opts.grantorName }],
    organization: [{ display: opts.organizationName }],
    policy: [{ uri: opts.policyUri }],
    provision,
  };
}
