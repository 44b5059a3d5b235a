/**
 * Seed data for the sandbox national FHIR servers (sandbox/fhir-server.ts, or any FHIR R4 server by
 * base URL): DK holds Kenneth, the six public IPS example documents (one test patient each) and a
 * small HCP registry; ES holds the Spanish HCP registry (Dr. Ana García and colleagues).
 *
 * Every id is fixed, so seeding is an idempotent upsert (PUT) and tests can name resources directly.
 * Identifiers are test values: CPR numbers follow DDMMYY+4 and agree with the birth date and sex
 * (odd last digit = male); DNI numbers carry a valid check letter; SOR/REGCESS codes are made up.
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { FhirRepository } from '@medplum/fhir-router';
import type {
  Bundle,
  BundleEntry,
  CodeableConcept,
  Composition,
  Condition,
  Identifier,
  Medication,
  MedicationStatement,
  Organization,
  Patient,
  Practitioner,
  PractitionerRole,
  Resource,
} from '@medplum/fhirtypes';
import { Client } from 'fhir-kit-client';

export type NationalCountry = 'DK' | 'ES';

export const CPR_SYSTEM = 'urn:oid:1.2.208.176.1.2';
/** The eIDAS PersonIdentifier (format `CC/CC/opaque`) the registry knows each HCP by. */
export const EIDAS_PERSON_ID_SYSTEM = 'urn:ncpeh:eidas:person-identifier';
/** ISCO-08 as used by eHDSI (STANDARDS.md): 221 doctors, 2221 nurses, 2261 dentists, 2262 pharmacists. */
export const ISCO_08_SYSTEM = 'urn:oid:2.16.840.1.113883.2.9.6.2.7';
/** Danish Sundhedsvæsenets Organisationsregister (SOR). */
export const SOR_SYSTEM = 'urn:oid:1.2.208.176.1.1';
export const ES_ORGANIZATION_SYSTEM = 'urn:ncpeh:sandbox:es:regcess';

export type IscoCode = '221' | '2221' | '2261' | '2262';
const ISCO_DISPLAY: Record<IscoCode, string> = {
  '221': 'Medical doctors',
  '2221': 'Nursing professionals',
  '2261': 'Dentists',
  '2262': 'Pharmacists',
};
/** eHDSI facility types (STANDARDS.md). */
export type FacilityType = 'Hospital' | 'Resident Physician' | 'Pharmacy' | 'Other';

const DNI_LETTERS = 'TRWAGMYFPDXBNJZSQVHLCKE';
/** A Spanish DNI with its check letter: letter = TRWAGMYFPDXBNJZSQVHLCKE[n mod 23]. */
export function dni(number: number): string {
  return `${String(number).padStart(8, '0')}${DNI_LETTERS[number % 23] ?? ''}`;
}

// ---------------------------------------------------------------------------------------------
// The HCP registry

interface SeedOrganization {
  readonly id: string;
  readonly name: string;
  readonly identifier: Identifier;
  readonly facilityType: FacilityType;
  readonly city: string;
  readonly country: NationalCountry;
}

export interface SeedPractitioner {
  readonly country: NationalCountry;
  readonly practitionerId: string;
  /** undefined: in the registry as a person, but without any role (must be refused). */
  readonly practitionerRoleId: string | undefined;
  readonly personIdentifier: { readonly system: string; readonly value: string };
  readonly given: string;
  readonly family: string;
  readonly birthDate: string;
  readonly roleCode: IscoCode | undefined;
  readonly roleDisplay: string | undefined;
  readonly specialty?: { readonly system: string; readonly code: string; readonly display: string };
  readonly organization: { readonly id: string; readonly name: string; readonly identifier: Identifier; readonly facilityType: FacilityType };
}

const ORGANIZATIONS: readonly SeedOrganization[] = [
  { id: 'dk-org-laegehuset-norrebro', name: 'Lægehuset Nørrebro', identifier: { system: SOR_SYSTEM, value: '425271000016005' }, facilityType: 'Resident Physician', city: 'København N', country: 'DK' },
  { id: 'dk-org-rigshospitalet-cardiology', name: 'Rigshospitalet, Hjertemedicinsk Klinik', identifier: { system: SOR_SYSTEM, value: '381081000016009' }, facilityType: 'Hospital', city: 'København Ø', country: 'DK' },
  { id: 'es-org-hospital-clinic', name: 'Hospital Clínic de Barcelona', identifier: { system: ES_ORGANIZATION_SYSTEM, value: 'ES-08-000101' }, facilityType: 'Hospital', city: 'Barcelona', country: 'ES' },
  { id: 'es-org-clinica-dental-eixample', name: 'Clínica Dental Eixample', identifier: { system: ES_ORGANIZATION_SYSTEM, value: 'ES-08-004417' }, facilityType: 'Other', city: 'Barcelona', country: 'ES' },
  { id: 'es-org-farmacia-provenca', name: 'Farmàcia Provença', identifier: { system: ES_ORGANIZATION_SYSTEM, value: 'ES-08-009230' }, facilityType: 'Pharmacy', city: 'Barcelona', country: 'ES' },
];

function organization(id: string): SeedPractitioner['organization'] {
  const found = ORGANIZATIONS.find((o) => o.id === id);
  if (found === undefined) throw new Error(`seed: unknown organization ${id}`);
  return { id: found.id, name: found.name, identifier: found.identifier, facilityType: found.facilityType };
}

function hcp(
  country: NationalCountry,
  key: string,
  opaque: string,
  given: string,
  family: string,
  birthDate: string,
  roleCode: IscoCode | undefined,
  organizationId: string,
  specialty?: SeedPractitioner['specialty'],
): SeedPractitioner {
  return {
    country,
    practitionerId: `${country.toLowerCase()}-practitioner-${key}`,
    practitionerRoleId: roleCode === undefined ? undefined : `${country.toLowerCase()}-role-${key}`,
    personIdentifier: { system: EIDAS_PERSON_ID_SYSTEM, value: `${country}/${country}/${opaque}` },
    given,
    family,
    birthDate,
    roleCode,
    roleDisplay: roleCode === undefined ? undefined : ISCO_DISPLAY[roleCode],
    ...(specialty === undefined ? {} : { specialty }),
    organization: organization(organizationId),
  };
}

const GENERAL_PRACTICE = { system: 'http://snomed.info/sct', code: '394814009', display: 'General practice (specialty)' } as const;
const CARDIOLOGY = { system: 'http://snomed.info/sct', code: '394579002', display: 'Cardiology (qualifier value)' } as const;

/** Danish HCPs (MitID-style PID as the opaque part of the eIDAS identifier). */
export const DK_PRACTITIONERS: readonly SeedPractitioner[] = [
  hcp('DK', 'gp-mette-jensen', '9208-2002-2-274815369021', 'Mette', 'Jensen', '1971-06-14', '221', 'dk-org-laegehuset-norrebro', GENERAL_PRACTICE),
  hcp('DK', 'cardiologist-lars-nielsen', '9208-2002-2-583920174652', 'Lars', 'Nielsen', '1968-02-27', '221', 'dk-org-rigshospitalet-cardiology', CARDIOLOGY),
];

/** Spanish HCPs, known to the registry by their eIDAS PersonIdentifier `ES/ES/<DNI>`. */
export const ES_PRACTITIONERS: readonly SeedPractitioner[] = [
  hcp('ES', 'ana-garcia', dni(12345678), 'Ana', 'García Pérez', '1979-04-12', '221', 'es-org-hospital-clinic'),
  hcp('ES', 'marta-lopez', dni(23456789), 'Marta', 'López Ruiz', '1985-09-30', '2221', 'es-org-hospital-clinic'),
  hcp('ES', 'javier-martin', dni(34567890), 'Javier', 'Martín Sánchez', '1976-12-03', '2261', 'es-org-clinica-dental-eixample'),
  hcp('ES', 'laura-fernandez', dni(45678901), 'Laura', 'Fernández Gómez', '1990-07-21', '2262', 'es-org-farmacia-provenca'),
  // A registered person with no PractitionerRole: the gateway must refuse to vouch for him.
  hcp('ES', 'pedro-sanz', dni(56789012), 'Pedro', 'Sanz Molina', '1982-01-15', undefined, 'es-org-hospital-clinic'),
];

export const DK_GP = DK_PRACTITIONERS[0] as SeedPractitioner;
export const DK_CARDIOLOGIST = DK_PRACTITIONERS[1] as SeedPractitioner;

function organizationResource(o: SeedOrganization): Organization {
  return {
    resourceType: 'Organization',
    id: o.id,
    identifier: [o.identifier],
    active: true,
    type: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/organization-type', code: 'prov', display: 'Healthcare Provider' }], text: o.facilityType }],
    name: o.name,
    address: [{ city: o.city, country: o.country }],
  };
}

function practitionerResources(p: SeedPractitioner): Resource[] {
  const practitioner: Practitioner = {
    resourceType: 'Practitioner',
    id: p.practitionerId,
    identifier: [{ ...p.personIdentifier }],
    active: true,
    name: [{ family: p.family, given: [p.given], prefix: p.roleCode === '221' ? ['Dr.'] : [] }],
    birthDate: p.birthDate,
  };
  if (p.practitionerRoleId === undefined || p.roleCode === undefined) return [practitioner];
  const role: PractitionerRole = {
    resourceType: 'PractitionerRole',
    id: p.practitionerRoleId,
    active: true,
    practitioner: { reference: `Practitioner/${p.practitionerId}`, display: `${p.given} ${p.family}` },
    organization: { reference: `Organization/${p.organization.id}`, display: p.organization.name },
    code: [{ coding: [{ system: ISCO_08_SYSTEM, code: p.roleCode, display: p.roleDisplay ?? '' }] }],
    ...(p.specialty === undefined ? {} : { specialty: [{ coding: [{ ...p.specialty }] }] }),
  };
  return [practitioner, role];
}

// ---------------------------------------------------------------------------------------------
// DK patients and IPS documents

export interface SeedPatient {
  readonly patientId: string;
  readonly identifier: { readonly system: string; readonly value: string };
  readonly given: string;
  readonly family: string;
  readonly birthDate: string;
  readonly gender: 'male' | 'female';
  /** Stored IPS document Bundle id, if the patient has one. */
  readonly documentId: string | undefined;
}

export const KENNETH: SeedPatient = {
  patientId: 'dk-patient-kenneth',
  identifier: { system: CPR_SYSTEM, value: '0201609995' },
  given: 'Kenneth',
  family: 'Andersen',
  birthDate: '1960-01-02',
  gender: 'male',
  documentId: 'dk-ips-kenneth',
};

/** Same name as Kenneth, another birth date and CPR, no document: for "more attributes needed". */
export const KENNETH_NAMESAKE: SeedPatient = {
  patientId: 'dk-patient-kenneth-andersen-1975',
  identifier: { system: CPR_SYSTEM, value: '1403751233' },
  given: 'Kenneth',
  family: 'Andersen',
  birthDate: '1975-03-14',
  gender: 'male',
  documentId: undefined,
};

/** A patient who exists but has no IPS document ($summary answers 404). CPR from STANDARDS.md. */
export const PATIENT_WITHOUT_SUMMARY: SeedPatient = {
  patientId: 'dk-patient-poul-hansen',
  identifier: { system: CPR_SYSTEM, value: '2311143995' },
  given: 'Poul',
  family: 'Hansen',
  birthDate: '1914-11-23',
  gender: 'male',
  documentId: undefined,
};

export const FIXTURE_FILES = [
  'ips-ig-bundle-01.json',
  'ips-ig-bundle-minimal.json',
  'ips-ig-bundle-no-info-required-sections.json',
  'ips-ig-bundle-no-known-required-sections.json',
  'au-ps-basicsummary.json',
  'au-ps-noknownx.json',
] as const;
export type FixtureFile = (typeof FIXTURE_FILES)[number];

export interface FixturePatient {
  readonly fixture: FixtureFile;
  readonly patientIdentifier: { readonly system: string; readonly value: string };
  readonly patientId: string;
  readonly documentId: string;
}

/** One DK test patient per fixture; each CPR agrees with the fixture patient's birth date and sex. */
const FIXTURE_CPR: Record<FixtureFile, string> = {
  'ips-ig-bundle-01.json': '0105721002',
  'ips-ig-bundle-minimal.json': '0105721014',
  'ips-ig-bundle-no-info-required-sections.json': '2504851003',
  'ips-ig-bundle-no-known-required-sections.json': '2504851015',
  'au-ps-basicsummary.json': '2508831006',
  'au-ps-noknownx.json': '1111941008',
};

export const FIXTURE_PATIENTS: readonly FixturePatient[] = FIXTURE_FILES.map((fixture) => {
  const stem = fixture.replace(/\.json$/, '');
  return {
    fixture,
    patientIdentifier: { system: CPR_SYSTEM, value: FIXTURE_CPR[fixture] },
    patientId: `dk-patient-fixture-${stem}`,
    documentId: `dk-ips-fixture-${stem}`,
  };
});

/** The verbatim copies of ../shared/fixtures/ips/valid kept in sandbox/data/ips. */
export async function loadFixture(fixture: FixtureFile): Promise<Bundle> {
  return JSON.parse(await readFile(new URL(`./data/ips/${fixture}`, import.meta.url), 'utf8')) as Bundle;
}

const KENNETH_ADDRESS = { use: 'home', line: ['Nørrebrogade 112, 3. tv'], city: 'København N', postalCode: '2200', country: 'DK' } as const;

function kennethPatient(id: string): Patient {
  return {
    resourceType: 'Patient',
    id,
    text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml">Kenneth Andersen, male, born 1960-01-02</div>' },
    identifier: [{ ...KENNETH.identifier }],
    active: true,
    name: [{ use: 'official', family: KENNETH.family, given: [KENNETH.given] }],
    gender: KENNETH.gender,
    birthDate: KENNETH.birthDate,
    address: [{ ...KENNETH_ADDRESS, line: [...KENNETH_ADDRESS.line] }],
    generalPractitioner: [{ reference: `Practitioner/${DK_GP.practitionerId}`, display: `${DK_GP.given} ${DK_GP.family}` }],
  };
}

function seedPatient(p: SeedPatient): Patient {
  return {
    resourceType: 'Patient',
    id: p.patientId,
    identifier: [{ ...p.identifier }],
    active: true,
    name: [{ use: 'official', family: p.family, given: [p.given] }],
    gender: p.gender,
    birthDate: p.birthDate,
  };
}

const div = (html: string): { status: 'generated'; div: string } => ({ status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml">${html}</div>` });
const snomed = (code: string, display: string): CodeableConcept => ({ coding: [{ system: 'http://snomed.info/sct', code, display }], text: display });

function sectionOf(composition: Composition, loinc: string): NonNullable<Composition['section']>[number] {
  const section = composition.section?.find((s) => s.code?.coding?.some((c) => c.code === loinc) === true);
  if (section === undefined) throw new Error(`seed: fixture has no section ${loinc}`);
  return section;
}

function entryFor<T extends Resource>(bundle: Bundle, reference: string | undefined): T {
  const id = reference?.split('/').pop() ?? '';
  const found = bundle.entry?.find((e) => e.resource?.id === id)?.resource;
  if (found === undefined) throw new Error(`seed: fixture has no entry for ${reference ?? '(none)'}`);
  return found as T;
}

function condition(original: Condition, code: CodeableConcept, clinical: 'active' | 'resolved', onset: string, text: string): Condition {
  return {
    resourceType: 'Condition',
    ...(original.id === undefined ? {} : { id: original.id }),
    text: div(text),
    ...(original.identifier === undefined ? {} : { identifier: original.identifier }),
    clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: clinical }] },
    ...(original.verificationStatus === undefined ? {} : { verificationStatus: original.verificationStatus }),
    ...(original.category === undefined ? {} : { category: original.category }),
    code,
    subject: original.subject,
    onsetDateTime: onset,
  };
}

function medication(original: Medication, atc: string, display: string, text: string): Medication {
  return {
    resourceType: 'Medication',
    ...(original.id === undefined ? {} : { id: original.id }),
    text: div(text),
    code: { coding: [{ system: 'http://www.whocc.no/atc', code: atc, display }], text },
  };
}

/**
 * Kenneth's IPS document, derived from the IPS IG example (ips-ig-bundle-01): same structure and
 * sections, new entry ids, Kenneth as the patient, COPD and chronic heart failure as active
 * problems, medication made plausible for him, a new Bundle.identifier and timestamp `now`.
 */
export function deriveKennethDocument(fixture: Bundle, now: Date = new Date()): Bundle {
  // Fresh ids: every entry id is a UUID that also appears in its fullUrl and in references.
  let text = JSON.stringify(fixture);
  for (const entry of fixture.entry ?? []) {
    const id = entry.resource?.id;
    if (id !== undefined) text = text.split(id).join(randomUUID());
  }
  const bundle = JSON.parse(text) as Bundle;
  const first = bundle.entry?.[0]?.resource;
  if (first?.resourceType !== 'Composition') throw new Error('seed: fixture does not start with a Composition');
  const composition = first;
  const entries = bundle.entry ?? [];
  const stamp = now.toISOString();

  const patientEntry = entries.find((e) => e.resource?.resourceType === 'Patient');
  if (patientEntry?.resource?.id === undefined) throw new Error('seed: fixture has no Patient');
  patientEntry.resource = kennethPatient(patientEntry.resource.id);
  const { generalPractitioner: _gp, ...documentPatient } = patientEntry.resource;
  patientEntry.resource = documentPatient;

  const problems = sectionOf(composition, '11450-4');
  const copd = entryFor<Condition>(bundle, problems.entry?.[0]?.reference);
  Object.assign(copd, condition(copd, snomed('13645005', 'Chronic obstructive lung disease (disorder)'), 'active', '2012-03', 'Chronic obstructive pulmonary disease'));
  const chfId = randomUUID();
  const chf = condition({ ...copd, id: chfId, identifier: [{ system: 'urn:ietf:rfc:3986', value: `urn:uuid:${randomUUID()}` }] }, snomed('48447003', 'Chronic heart failure (disorder)'), 'active', '2018-09', 'Chronic heart failure');
  const copdIndex = entries.findIndex((e) => e.resource === copd);
  entries.splice(copdIndex + 1, 0, { fullUrl: `urn:uuid:${chfId}`, resource: chf });
  problems.entry = [...(problems.entry ?? []), { reference: `Condition/${chfId}` }];
  problems.text = div('<ul><li>Chronic obstructive pulmonary disease (since 2012)</li><li>Chronic heart failure (since 2018)</li></ul>');

  const pastIllness = sectionOf(composition, '11348-0');
  const pastCondition = entryFor<Condition>(bundle, pastIllness.entry?.[0]?.reference);
  Object.assign(pastCondition, condition(pastCondition, snomed('22298006', 'Myocardial infarction (disorder)'), 'resolved', '2017-05', 'Myocardial infarction, 2017'));
  pastIllness.text = div('Myocardial infarction in 2017, treated with percutaneous coronary intervention');

  const medications = sectionOf(composition, '10160-0');
  const [inhaler, diuretic] = (medications.entry ?? []).map((ref) => entryFor<MedicationStatement>(bundle, ref.reference));
  if (inhaler === undefined || diuretic === undefined) throw new Error('seed: fixture has fewer than two medication statements');
  const inhalerMedication = entryFor<Medication>(bundle, inhaler.medicationReference?.reference);
  Object.assign(inhalerMedication, medication(inhalerMedication, 'R03BB04', 'tiotropium bromide', 'Tiotropium 2.5 microgram/dose inhalation spray'));
  inhaler.dosage = [{ text: 'Two puffs once daily', route: { coding: [{ system: 'http://standardterms.edqm.eu', code: '20020000', display: 'Inhalation use' }] } }];
  inhaler.effectivePeriod = { start: '2012-04' };
  inhaler.text = div('Tiotropium inhalation spray, two puffs once daily');
  const diureticMedication = entryFor<Medication>(bundle, diuretic.medicationReference?.reference);
  Object.assign(diureticMedication, medication(diureticMedication, 'C03CA01', 'furosemide', 'Furosemide 40 mg tablet'));
  diuretic.dosage = [{ text: 'One tablet every morning', route: { coding: [{ system: 'http://standardterms.edqm.eu', code: '20053000', display: 'Oral use' }] } }];
  diuretic.effectivePeriod = { start: '2018-09' };
  diuretic.text = div('Furosemide 40 mg, one tablet every morning');
  medications.text = div('<ul><li>Tiotropium 2.5 microgram/dose inhalation spray, two puffs once daily (since 2012)</li><li>Furosemide 40 mg tablet, one every morning (since 2018)</li></ul>');

  const plan = sectionOf(composition, '18776-5');
  plan.text = div('Continue inhaled bronchodilator and diuretic; pulmonary rehabilitation; cardiology follow-up every six months');

  // The author and custodian become Kenneth's GP and her practice.
  const author = entryFor<Practitioner>(bundle, composition.author[0]?.reference);
  Object.assign(author, { identifier: [{ ...DK_GP.personIdentifier }], name: [{ family: DK_GP.family, given: [DK_GP.given], prefix: ['Dr.'] }] });
  delete author.qualification;
  delete author.text;
  const custodian = entryFor<Organization>(bundle, composition.custodian?.reference);
  Object.assign(custodian, { identifier: [{ ...DK_GP.organization.identifier }], name: DK_GP.organization.name, address: [{ use: 'work', city: 'København N', postalCode: '2200', country: 'DK' }] });
  delete custodian.telecom;
  delete custodian.text;

  composition.date = stamp;
  composition.title = `Patient Summary as of ${stamp.slice(0, 10)}`;
  composition.identifier = { system: 'urn:ietf:rfc:3986', value: `urn:uuid:${randomUUID()}` };
  for (const attester of composition.attester ?? []) attester.time = stamp;

  delete bundle.id;
  delete bundle.meta;
  bundle.identifier = { system: 'urn:ietf:rfc:3986', value: `urn:uuid:${randomUUID()}` };
  bundle.timestamp = stamp;
  return bundle;
}

/**
 * A fixture document as stored for its DK test patient: unchanged except that its one Patient entry
 * also carries the patient's CPR, which is how the server ties a document to a Patient.
 */
export function fixtureDocumentFor(fixture: Bundle, cpr: Identifier): Bundle {
  const bundle = structuredClone(fixture);
  delete bundle.id;
  const patient = bundle.entry?.find((e): e is BundleEntry<Patient> => e.resource?.resourceType === 'Patient')?.resource;
  if (patient === undefined) throw new Error('seed: fixture has no Patient');
  patient.identifier = [{ ...cpr }, ...(patient.identifier ?? [])];
  return bundle;
}

function patientFromDocument(document: Bundle, fixturePatient: FixturePatient): Patient {
  const patient = document.entry?.find((e): e is BundleEntry<Patient> => e.resource?.resourceType === 'Patient')?.resource;
  return {
    resourceType: 'Patient',
    id: fixturePatient.patientId,
    identifier: [{ ...fixturePatient.patientIdentifier }],
    active: true,
    ...(patient?.name === undefined ? {} : { name: patient.name }),
    ...(patient?.gender === undefined ? {} : { gender: patient.gender }),
    ...(patient?.birthDate === undefined ? {} : { birthDate: patient.birthDate }),
  };
}

// ---------------------------------------------------------------------------------------------
// Writing

export interface SeedResult {
  readonly country: NationalCountry;
  readonly patients: readonly SeedPatient[];
  readonly fixtures: readonly FixturePatient[];
  readonly practitioners: readonly SeedPractitioner[];
  readonly resourceCount: number;
}

type Writer = (resource: Resource & { id: string }) => Promise<void>;

function writerFor(target: FhirRepository | string): Writer {
  if (typeof target === 'string') {
    const client = new Client({ baseUrl: target });
    return async (resource) => {
      await client.update({ resourceType: resource.resourceType, id: resource.id, body: resource as never });
    };
  }
  return async (resource) => {
    await target.updateResource(resource);
  };
}

async function dkResources(): Promise<Resource[]> {
  const resources: Resource[] = [];
  resources.push(kennethPatient(KENNETH.patientId), seedPatient(KENNETH_NAMESAKE), seedPatient(PATIENT_WITHOUT_SUMMARY));
  resources.push({ ...deriveKennethDocument(await loadFixture('ips-ig-bundle-01.json')), id: KENNETH.documentId ?? 'dk-ips-kenneth' });
  for (const fixturePatient of FIXTURE_PATIENTS) {
    const document = fixtureDocumentFor(await loadFixture(fixturePatient.fixture), fixturePatient.patientIdentifier);
    resources.push(patientFromDocument(document, fixturePatient), { ...document, id: fixturePatient.documentId });
  }
  return resources;
}

/**
 * Writes a country's sandbox data into `target`: a Medplum repository (in-process) or the base URL
 * of any FHIR R4 server (PUT with the fixed ids, so running it twice changes nothing but versions).
 */
export async function seedNational(target: FhirRepository | string, country: NationalCountry): Promise<SeedResult> {
  const write = writerFor(target);
  const practitioners = country === 'DK' ? DK_PRACTITIONERS : ES_PRACTITIONERS;
  const resources: Resource[] = [
    ...ORGANIZATIONS.filter((o) => o.country === country).map(organizationResource),
    ...practitioners.flatMap(practitionerResources),
    ...(country === 'DK' ? await dkResources() : []),
  ];
  for (const resource of resources) {
    if (resource.id === undefined) throw new Error(`seed: ${resource.resourceType} without id`);
    await write({ ...resource, id: resource.id });
  }
  return {
    country,
    patients: country === 'DK' ? [KENNETH, KENNETH_NAMESAKE, PATIENT_WITHOUT_SUMMARY] : [],
    fixtures: country === 'DK' ? FIXTURE_PATIENTS : [],
    practitioners,
    resourceCount: resources.length,
  };
}
