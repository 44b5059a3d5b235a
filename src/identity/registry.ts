/**
 * The national health-professional registry (issue 4, DESIGN.md section 2 step 2): a FHIR R4 server
 * queried (national/fhir-rest.ts) for the `PractitionerRole`s of the person an eID names. What comes
 * back decides whether the gateway vouches for a professional, so every member read is validated
 * with zod and every answer is re-checked here rather than trusted to the server's search:
 * a FHIR server is allowed to ignore search parameters it does not support (FHIR R4
 * search.html#errors, "lenient" handling), and one that ignored `practitioner.identifier` or
 * `active` would otherwise hand us every role in the country.
 *
 * Fail closed (DESIGN.md section 6): anything other than a well-formed searchset is
 * `registry.unavailable`, never "not registered" and never "registered".
 */
import { z } from 'zod';
import { GatewayError } from '../http/errors.js';
import { FhirRestClient } from '../national/fhir-rest.js';

// ---------------------------------------------------------------------------------------------
// Vocabulary (STANDARDS.md "eHDSI")

/** The eIDAS PersonIdentifier as the registry records it on `Practitioner.identifier`. */
export const DEFAULT_PERSON_ID_SYSTEM = 'urn:ncpeh:eidas:person-identifier';

/** ISCO-08, as eHDSI uses it for HCP roles (OID 2.16.840.1.113883.2.9.6.2.7). */
export const ISCO_08_SYSTEM = 'urn:oid:2.16.840.1.113883.2.9.6.2.7';

/** The ISCO-08 unit groups eHDSI accepts as HCP roles (STANDARDS.md), with the ILO titles. */
export const ISCO_08_ROLES = {
  '221': 'Medical doctors',
  '2221': 'Nursing professionals',
  '2222': 'Midwifery professionals',
  '2261': 'Dentists',
  '2262': 'Pharmacists',
  '2264': 'Physiotherapists',
  '3213': 'Pharmaceutical technicians and assistants',
} as const satisfies Record<string, string>;
export type IscoCode = keyof typeof ISCO_08_ROLES;

export function isIscoCode(code: string): code is IscoCode {
  return Object.hasOwn(ISCO_08_ROLES, code);
}

/** eHDSI facility types (STANDARDS.md). */
export const FACILITY_TYPES = ['Hospital', 'Resident Physician', 'Pharmacy', 'Other'] as const;
export type FacilityType = (typeof FACILITY_TYPES)[number];

export interface ProfessionalRole {
  readonly code: IscoCode;
  readonly display: string;
}

export interface Professional {
  /** The eIDAS PersonIdentifier the lookup was made with. */
  readonly personId: string;
  /** `Practitioner.id` on the registry server. */
  readonly practitionerId: string;
  readonly name: string;
  /** At least one; only ISCO-08 codes eHDSI accepts. */
  readonly roles: readonly ProfessionalRole[];
  readonly organization: {
    readonly id: string;
    readonly name: string;
    readonly identifier?: { readonly system: string; readonly value: string };
  };
  readonly facilityType: FacilityType;
}

export interface Registry {
  /** Throws `hcp.not-registered` or `registry.unavailable`. */
  lookup(personId: string): Promise<Professional>;
}

export interface RegistryOptions {
  /** FHIR base URL, e.g. `https://fhir.example/fhir/R4`. */
  readonly baseUrl: string;
  /** Whole request including the body; default 5000 ms. */
  readonly timeoutMs?: number;
  readonly identifierSystem?: string;
  readonly now?: () => Date;
}

const DEFAULT_TIMEOUT_MS = 5000;
/** Roles per practitioner are few; a page this size that is still not the whole answer is refused. */
const PAGE_SIZE = 50;

// ---------------------------------------------------------------------------------------------
// FHIR shapes: only the members we read. z.object strips the rest.

const fhirId = z.string().regex(/^[A-Za-z0-9\-.]{1,64}$/);
const codingSchema = z.object({ system: z.string().optional(), code: z.string().optional(), display: z.string().optional() });
const codeableConceptSchema = z.object({ coding: z.array(codingSchema).optional(), text: z.string().optional() });
const identifierSchema = z.object({ system: z.string().optional(), value: z.string().optional() });
const referenceSchema = z.object({ reference: z.string().optional() });
const periodSchema = z.object({ start: z.string().optional(), end: z.string().optional() });
const humanNameSchema = z.object({
  use: z.string().optional(),
  text: z.string().optional(),
  family: z.string().optional(),
  given: z.array(z.string()).optional(),
});

const practitionerRoleSchema = z.object({
  resourceType: z.literal('PractitionerRole'),
  id: fhirId,
  active: z.boolean().optional(),
  period: periodSchema.optional(),
  practitioner: referenceSchema.optional(),
  organization: referenceSchema.optional(),
  code: z.array(codeableConceptSchema).optional(),
});
type FhirPractitionerRole = z.infer<typeof practitionerRoleSchema>;

const practitionerSchema = z.object({
  resourceType: z.literal('Practitioner'),
  id: fhirId,
  active: z.boolean().optional(),
  identifier: z.array(identifierSchema).optional(),
  name: z.array(humanNameSchema).optional(),
});
type FhirPractitioner = z.infer<typeof practitionerSchema>;

const organizationSchema = z.object({
  resourceType: z.literal('Organization'),
  id: fhirId,
  active: z.boolean().optional(),
  name: z.string().min(1).optional(),
  identifier: z.array(identifierSchema).optional(),
  type: z.array(codeableConceptSchema).optional(),
});
type FhirOrganization = z.infer<typeof organizationSchema>;

const searchsetSchema = z.object({
  resourceType: z.literal('Bundle'),
  type: z.literal('searchset'),
  link: z.array(z.object({ relation: z.string(), url: z.string() })).optional(),
  entry: z
    .array(
      z.object({
        resource: z.looseObject({ resourceType: z.string() }).optional(),
        search: z.object({ mode: z.string().optional() }).optional(),
      }),
    )
    .optional(),
});

interface SearchResult {
  readonly roles: readonly FhirPractitionerRole[];
  readonly practitioners: ReadonlyMap<string, FhirPractitioner>;
  readonly organizations: ReadonlyMap<string, FhirOrganization>;
}

// ---------------------------------------------------------------------------------------------
// The lookup

export function createRegistry(options: RegistryOptions): Registry {
  const system = options.identifierSystem ?? DEFAULT_PERSON_ID_SYSTEM;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const client = new FhirRestClient({ baseUrl: options.baseUrl, timeoutMs });
  const now = options.now ?? (() => new Date());

  async function search(personId: string): Promise<unknown> {
    try {
      // FHIR R4 search.html#chaining and #include: one round trip for the roles, the practitioner
      // they point to and the organisation. `|` inside the token is the system|value separator.
      return await client.search('PractitionerRole', {
        'practitioner.identifier': `${system}|${personId}`,
        active: 'true',
        _include: ['PractitionerRole:organization', 'PractitionerRole:practitioner'],
        _count: PAGE_SIZE,
      });
    } catch (cause) {
      // Connection refused, reset, timeout (AbortSignal), any HTTP error status, a non-JSON body:
      // none of them says anything about the person, so none may become "not registered".
      throw new GatewayError('registry.unavailable', 'registry search failed', { cause });
    }
  }

  return {
    async lookup(personId: string): Promise<Professional> {
      // The value travels inside a token search parameter; `|`, `,` and `$` would change its meaning
      // (FHIR R4 search.html#escaping), and an empty one would match nothing useful.
      if (personId.length === 0 || personId.length > 256 || /[|,$\\]/.test(personId)) {
        throw new GatewayError('hcp.not-registered', 'person identifier unusable for the registry');
      }
      const result = parseSearchset(await search(personId));
      return toProfessional(personId, system, result, now());
    },
  };
}

function parseSearchset(body: unknown): SearchResult {
  const parsed = searchsetSchema.safeParse(body);
  if (!parsed.success) throw new GatewayError('registry.unavailable', 'registry answer is not a searchset Bundle');
  if (parsed.data.link?.some((l) => l.relation === 'next') === true) {
    // More roles than we read: deciding on part of the answer could pick the wrong organisation.
    throw new GatewayError('registry.unavailable', 'registry answer is paged');
  }
  const roles: FhirPractitionerRole[] = [];
  const practitioners = new Map<string, FhirPractitioner>();
  const organizations = new Map<string, FhirOrganization>();
  for (const entry of parsed.data.entry ?? []) {
    const resource = entry.resource;
    if (resource === undefined) continue;
    switch (resource.resourceType) {
      case 'PractitionerRole': {
        const role = practitionerRoleSchema.safeParse(resource);
        if (!role.success) throw new GatewayError('registry.unavailable', 'malformed PractitionerRole');
        roles.push(role.data);
        break;
      }
      case 'Practitioner': {
        const practitioner = practitionerSchema.safeParse(resource);
        if (!practitioner.success) throw new GatewayError('registry.unavailable', 'malformed Practitioner');
        practitioners.set(`Practitioner/${practitioner.data.id}`, practitioner.data);
        break;
      }
      case 'Organization': {
        const organization = organizationSchema.safeParse(resource);
        if (!organization.success) throw new GatewayError('registry.unavailable', 'malformed Organization');
        organizations.set(`Organization/${organization.data.id}`, organization.data);
        break;
      }
      default:
        // An OperationOutcome (search mode `outcome`) or anything else we did not ask for.
        break;
    }
  }
  return { roles, practitioners, organizations };
}

/** `Type/id`, also accepted at the end of an absolute URL (FHIR R4 references.html#literal). */
function referenceKey(reference: string | undefined, type: 'Practitioner' | 'Organization'): string | undefined {
  if (reference === undefined) return undefined;
  const match = new RegExp(`(?:^|/)(${type}/[A-Za-z0-9\\-.]{1,64})$`).exec(reference);
  return match?.[1];
}

function isCurrent(period: FhirPractitionerRole['period'], now: Date): boolean {
  if (period === undefined) return true;
  const t = now.getTime();
  if (period.start !== undefined) {
    const start = Date.parse(period.start);
    if (Number.isNaN(start) || start > t) return false;
  }
  if (period.end !== undefined) {
    const end = Date.parse(period.end);
    // A date-only end (`2026-03-31`) includes that whole day (FHIR R4 datatypes.html#Period).
    const inclusiveEnd = /^\d{4}-\d{2}-\d{2}$/.test(period.end) ? end + 86_400_000 : end;
    if (Number.isNaN(end) || inclusiveEnd <= t) return false;
  }
  return true;
}

function hasIdentifier(practitioner: FhirPractitioner, system: string, value: string): boolean {
  return (practitioner.identifier ?? []).some((i) => i.system === system && i.value === value);
}

function iscoRoles(role: FhirPractitionerRole): ProfessionalRole[] {
  const found: ProfessionalRole[] = [];
  for (const concept of role.code ?? []) {
    for (const coding of concept.coding ?? []) {
      // Only ISCO-08 codes eHDSI knows; the display is ours, not the server's free text.
      if (coding.system === ISCO_08_SYSTEM && coding.code !== undefined && isIscoCode(coding.code)) {
        found.push({ code: coding.code, display: ISCO_08_ROLES[coding.code] });
      }
    }
  }
  return found;
}

function displayName(practitioner: FhirPractitioner): string | undefined {
  const names = practitioner.name ?? [];
  const name = names.find((n) => n.use === 'official') ?? names.find((n) => n.use !== 'old') ?? names[0];
  if (name === undefined) return undefined;
  const text = name.text?.trim();
  if (text !== undefined && text.length > 0) return text;
  const parts = [...(name.given ?? []), name.family ?? ''].map((p) => p.trim()).filter((p) => p.length > 0);
  return parts.length > 0 ? parts.join(' ') : undefined;
}

/** HL7 v3 RoleCode (ServiceDeliveryLocationRoleType) and SNOMED CT codes that name a facility type. */
const FACILITY_CODES: ReadonlyMap<string, FacilityType> = new Map([
  ['http://terminology.hl7.org/CodeSystem/v3-RoleCode|HOSP', 'Hospital'],
  ['http://terminology.hl7.org/CodeSystem/v3-RoleCode|PHARM', 'Pharmacy'],
  ['http://terminology.hl7.org/CodeSystem/v3-RoleCode|GACH', 'Hospital'],
  ['http://snomed.info/sct|22232009', 'Hospital'],
  ['http://snomed.info/sct|264372000', 'Pharmacy'],
]);

/**
 * The eHDSI facility type from `Organization.type`: a coding we know, else a text or display that
 * is exactly one of the eHDSI names (how the sandbox registry records it), else `Other`. Unknown
 * never becomes Hospital or Pharmacy, which some consent and dispensation rules treat specially.
 */
function facilityTypeOf(organization: FhirOrganization): FacilityType {
  for (const concept of organization.type ?? []) {
    for (const coding of concept.coding ?? []) {
      const known = FACILITY_CODES.get(`${coding.system ?? ''}|${coding.code ?? ''}`);
      if (known !== undefined) return known;
    }
  }
  for (const concept of organization.type ?? []) {
    for (const label of [concept.text, ...(concept.coding ?? []).map((c) => c.display)]) {
      const named = FACILITY_TYPES.find((f) => f.toLowerCase() === label?.trim().toLowerCase());
      if (named !== undefined) return named;
    }
  }
  return 'Other';
}

function organizationIdentifier(organization: FhirOrganization): { system: string; value: string } | undefined {
  for (const identifier of organization.identifier ?? []) {
    if (identifier.system !== undefined && identifier.value !== undefined) return { system: identifier.system, value: identifier.value };
  }
  return undefined;
}

/**
 * Keeps only roles that are active, current, point to the practitioner carrying exactly this
 * identifier, to an active organisation, and carry an accepted ISCO-08 code. When the roles belong to
 * several organisations the first (by role id, so the answer is stable) is taken and only its roles
 * are reported: one assertion names one organisation (IHE IUA `subject_organization`).
 */
function toProfessional(personId: string, system: string, result: SearchResult, now: Date): Professional {
  interface Candidate {
    readonly practitioner: FhirPractitioner;
    readonly organization: FhirOrganization;
    readonly organizationName: string;
    readonly codes: readonly ProfessionalRole[];
  }
  const candidates: Candidate[] = [];
  for (const role of [...result.roles].sort((a, b) => a.id.localeCompare(b.id))) {
    if (role.active !== true || !isCurrent(role.period, now)) continue;
    const practitionerKey = referenceKey(role.practitioner?.reference, 'Practitioner');
    const organizationKey = referenceKey(role.organization?.reference, 'Organization');
    if (practitionerKey === undefined || organizationKey === undefined) continue;
    const practitioner = result.practitioners.get(practitionerKey);
    const organization = result.organizations.get(organizationKey);
    // A role whose referenced resources were not included means the server did not honour
    // `_include`: that says nothing about the person, so it is not "not registered".
    if (practitioner === undefined || organization === undefined) {
      throw new GatewayError('registry.unavailable', 'registry did not include the referenced resources');
    }
    if (practitioner.active === false || !hasIdentifier(practitioner, system, personId)) continue;
    const organizationName = organization?.name;
    if (organization === undefined || organization.active === false || organizationName === undefined) continue;
    const codes = iscoRoles(role);
    if (codes.length === 0) continue;
    candidates.push({ practitioner, organization, organizationName, codes });
  }
  const first = candidates[0];
  if (first === undefined) throw new GatewayError('hcp.not-registered');
  // Two Practitioner resources with the same national identifier: the registry is inconsistent and
  // we cannot tell which person the eID is.
  if (candidates.some((c) => c.practitioner.id !== first.practitioner.id)) {
    throw new GatewayError('registry.unavailable', 'identifier names several practitioners');
  }
  const name = displayName(first.practitioner);
  if (name === undefined) throw new GatewayError('registry.unavailable', 'practitioner has no name');

  const roles = new Map<IscoCode, ProfessionalRole>();
  for (const candidate of candidates) {
    if (candidate.organization.id !== first.organization.id) continue;
    for (const code of candidate.codes) roles.set(code.code, code);
  }
  const identifier = organizationIdentifier(first.organization);
  return {
    personId,
    practitionerId: first.practitioner.id,
    name,
    roles: [...roles.values()],
    organization: {
      id: first.organization.id,
      name: first.organizationName,
      ...(identifier === undefined ? {} : { identifier }),
    },
    facilityType: facilityTypeOf(first.organization),
  };
}
