// The sandbox national FHIR server, exercised the way the gateway uses it: through fhir-kit-client.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Bundle, BundleEntry, CapabilityStatement, Composition, Condition, Observation, Organization, Patient, PractitionerRole, Resource } from '@medplum/fhirtypes';
import { parseSearchRequest } from '@medplum/core';
import { MemoryRepository } from '@medplum/fhir-router';
import { Client, type FhirResource } from 'fhir-kit-client';
import { startFhirServer, type RunningFhirServer } from '../sandbox/fhir-server.js';
import {
  CPR_SYSTEM,
  EIDAS_PERSON_ID_SYSTEM,
  ES_PRACTITIONERS,
  FIXTURE_PATIENTS,
  ISCO_08_SYSTEM,
  KENNETH,
  PATIENT_WITHOUT_SUMMARY,
  DK_GP,
  loadFixture,
  seedNational,
} from '../sandbox/seed.js';

const SHARED_FIXTURES = new URL('../../shared/fixtures/ips/valid/', import.meta.url);

interface HttpError {
  response: { status: number; data: { resourceType?: string; issue?: { code?: string }[] } };
}

async function rejectsWith(promise: Promise<unknown>, status: number): Promise<HttpError['response']['data']> {
  try {
    await promise;
  } catch (err) {
    const response = (err as HttpError).response;
    assert.equal(response.status, status);
    assert.equal(response.data.resourceType, 'OperationOutcome');
    return response.data;
  }
  assert.fail(`expected HTTP ${status}`);
}

/** fhir-kit-client answers untyped JSON; the tests read it as the FHIR types they expect. */
class Fhir {
  private readonly client: Client;
  constructor(baseUrl: string) {
    this.client = new Client({ baseUrl });
  }
  async metadata(): Promise<CapabilityStatement> {
    return (await this.client.capabilityStatement()) as unknown as CapabilityStatement;
  }
  async search<T extends Resource>(resourceType: T['resourceType'], searchParams: Record<string, string>): Promise<Bundle<T>> {
    return (await this.client.search({ resourceType, searchParams })) as unknown as Bundle<T>;
  }
  async read<T extends Resource>(resourceType: T['resourceType'], id: string): Promise<T> {
    return (await this.client.read({ resourceType, id })) as unknown as T;
  }
  async create<T extends Resource>(body: T): Promise<T & { id: string }> {
    return (await this.client.create({ resourceType: body.resourceType, body: body as unknown as FhirResource })) as unknown as T & { id: string };
  }
  async update<T extends Resource & { id: string }>(body: T): Promise<T> {
    return (await this.client.update({ resourceType: body.resourceType, id: body.id, body: body as unknown as FhirResource })) as unknown as T;
  }
  async delete(resourceType: string, id: string): Promise<void> {
    await this.client.delete({ resourceType, id });
  }
  async transaction(body: Bundle): Promise<Bundle> {
    return (await this.client.transaction({ body: body as unknown as FhirResource })) as unknown as Bundle;
  }
  /** Patient/{id}/$summary, or Patient/$summary?identifier=... when id is undefined. */
  async summary(id: string | undefined, identifier?: string): Promise<Bundle> {
    return (await this.client.operation({
      name: 'summary',
      resourceType: 'Patient',
      ...(id === undefined ? {} : { id }),
      method: 'GET',
      ...(identifier === undefined ? {} : { input: { identifier } }),
    })) as unknown as Bundle;
  }
}

function resources<T extends Resource>(bundle: Bundle<T>, mode?: 'match' | 'include'): Resource[] {
  return (bundle.entry ?? []).filter((e) => mode === undefined || e.search?.mode === mode).map((e) => e.resource!);
}

function identifierParam(identifier: { system: string; value: string }): string {
  return `${identifier.system}|${identifier.value}`;
}

describe('national FHIR server (DK seed)', () => {
  let server: RunningFhirServer;
  let fhir: Fhir;

  before(async () => {
    const started = performance.now();
    server = await startFhirServer({ seed: 'DK' });
    // Reported, not asserted: the first start in a process indexes the R4 definitions (~1 s).
    console.log(`# national FHIR server started in ${Math.round(performance.now() - started)} ms`);
    fhir = new Fhir(server.baseUrl);
  });
  after(async () => {
    await server.close();
  });

  test('listens on loopback under /fhir/R4 and serves a CapabilityStatement at /metadata', async () => {
    assert.match(server.baseUrl, /^http:\/\/127\.0\.0\.1:\d+\/fhir\/R4$/);
    const metadata = await fhir.metadata();
    assert.equal(metadata.resourceType, 'CapabilityStatement');
    const patient = metadata.rest?.[0]?.resource?.find((r) => r.type === 'Patient');
    assert.deepEqual(patient?.operation?.map((o) => o.name), ['summary']);
  });

  test('finds Kenneth by his CPR number', async () => {
    const bundle = await fhir.search<Patient>('Patient', { identifier: identifierParam(KENNETH.identifier) });
    assert.equal(bundle.total, 1);
    const patient = bundle.entry![0]!.resource!;
    assert.equal(patient.id, KENNETH.patientId);
    assert.equal(patient.birthDate, '1960-01-02');
    assert.equal(patient.name![0]!.family, 'Andersen');
    assert.equal(patient.generalPractitioner![0]!.reference, `Practitioner/${DK_GP.practitionerId}`);
  });

  test('answers an unknown CPR number with an empty searchset', async () => {
    const bundle = await fhir.search<Patient>('Patient', { identifier: `${CPR_SYSTEM}|0000000000` });
    assert.equal(bundle.type, 'searchset');
    assert.equal(bundle.total, 0);
  });

  test("Patient/$summary returns Kenneth's IPS document: Composition first, his Patient inside", async () => {
    const document = await fhir.summary(KENNETH.patientId);
    assert.equal(document.resourceType, 'Bundle');
    assert.equal(document.type, 'document');
    const composition = document.entry![0]!.resource as Composition;
    assert.equal(composition.resourceType, 'Composition');
    assert.equal(composition.type.coding![0]!.code, '60591-5');
    const patients = resources(document).filter((r): r is Patient => r.resourceType === 'Patient');
    assert.equal(patients.length, 1);
    assert.deepEqual(patients[0]!.identifier, [KENNETH.identifier]);
    assert.equal(patients[0]!.birthDate, KENNETH.birthDate);
    const problems = composition.section!.find((s) => s.code?.coding?.[0]?.code === '11450-4')!;
    const codes = problems.entry!.map((ref) => {
      const id = ref.reference!.split('/').pop();
      const condition = resources(document).find((r) => r.id === id) as Condition;
      return condition.code!.coding![0]!.code;
    });
    assert.deepEqual(codes.sort(), ['13645005', '48447003']);
    const fixture = await loadFixture('ips-ig-bundle-01.json');
    assert.notDeepEqual(document.identifier, fixture.identifier);
    assert.ok(Math.abs(Date.parse(document.timestamp!) - Date.now()) < 60_000);
  });

  test('Patient/$summary also works at type level with identifier=system|value', async () => {
    const document = await fhir.summary(undefined, identifierParam(KENNETH.identifier));
    assert.equal(document.id, KENNETH.documentId);
  });

  for (const fixturePatient of FIXTURE_PATIENTS) {
    test(`Patient/$summary returns the ${fixturePatient.fixture} document for its test patient`, async () => {
      const found = await fhir.search<Patient>('Patient', { identifier: identifierParam(fixturePatient.patientIdentifier) });
      assert.equal(found.total, 1);
      assert.equal(found.entry![0]!.resource!.id, fixturePatient.patientId);
      const document = await fhir.summary(fixturePatient.patientId);
      const fixture = await loadFixture(fixturePatient.fixture);
      assert.equal(document.entry![0]!.resource!.resourceType, 'Composition');
      assert.deepEqual(document.identifier, fixture.identifier);
      assert.deepEqual(
        document.entry!.map((e) => e.fullUrl),
        (fixture.entry ?? []).map((e) => e.fullUrl),
      );
      const patient = resources(document).find((r): r is Patient => r.resourceType === 'Patient')!;
      assert.deepEqual(patient.identifier![0], fixturePatient.patientIdentifier);
    });
  }

  test('Patient/$summary answers 404 OperationOutcome for a patient without a document, and for an unknown patient', async () => {
    await rejectsWith(fhir.summary(PATIENT_WITHOUT_SUMMARY.patientId), 404);
    await rejectsWith(fhir.summary('no-such-patient'), 404);
  });

  test('Patient/$summary returns the newest document once a newer one is stored', async () => {
    const { id: _id, meta: _meta, ...current } = await fhir.summary(KENNETH.patientId);
    const newer: Bundle = {
      ...current,
      identifier: { system: 'urn:ietf:rfc:3986', value: 'urn:uuid:5b0c7f5e-2f39-4d6c-9d43-0b0d6b0c1a11' },
      timestamp: new Date(Date.now() + 1000).toISOString(),
    };
    const stored = await fhir.create(newer);
    const latest = await fhir.summary(KENNETH.patientId);
    assert.equal(latest.id, stored.id);
    await fhir.delete('Bundle', stored.id);
    assert.equal((await fhir.summary(KENNETH.patientId)).id, KENNETH.documentId);
  });

  test('stored documents are searchable by Bundle identifier and type', async () => {
    const fixture = await loadFixture('ips-ig-bundle-minimal.json');
    const bundle = await fhir.search<Bundle>('Bundle', { identifier: `${fixture.identifier!.system}|${fixture.identifier!.value}`, type: 'document' });
    assert.equal(bundle.total, 1);
  });

  test('reads by id, and answers an unknown id with 404 OperationOutcome', async () => {
    const patient = await fhir.read<Patient>('Patient', KENNETH.patientId);
    assert.equal(patient.id, KENNETH.patientId);
    const outcome = await rejectsWith(fhir.read<Patient>('Patient', 'does-not-exist'), 404);
    assert.equal(outcome.issue?.[0]?.code, 'not-found');
  });

  test('answers an unknown resource type with 404 OperationOutcome', async () => {
    const response = await fetch(`${server.baseUrl}/Spaceship/1`, { headers: { accept: 'application/fhir+json' } });
    assert.equal(response.status, 404);
    assert.equal(((await response.json()) as { resourceType: string }).resourceType, 'OperationOutcome');
  });

  test('creates (server-assigned id) and updates a resource', async () => {
    const created = await fhir.create<Patient>({ resourceType: 'Patient', id: KENNETH.patientId, name: [{ family: 'Test' }] });
    assert.notEqual(created.id, KENNETH.patientId, 'a client id on create must not overwrite Kenneth');
    const updated = await fhir.update({ ...created, gender: 'female' });
    assert.equal(updated.gender, 'female');
    assert.notEqual(updated.meta?.versionId, created.meta?.versionId);
    const kenneth = await fhir.read<Patient>('Patient', KENNETH.patientId);
    assert.equal(kenneth.name![0]!.family, 'Andersen');
  });

  test("creates a Communication to the patient's GP", async () => {
    const communication = await fhir.create({
      resourceType: 'Communication',
      status: 'completed',
      subject: { reference: `Patient/${KENNETH.patientId}` },
      recipient: [{ reference: `Practitioner/${DK_GP.practitionerId}` }],
      payload: [{ contentString: 'New encounter report from ES' }],
    });
    const found = await fhir.search('Communication', { subject: `Patient/${KENNETH.patientId}` });
    assert.ok(resources(found).some((r) => r.id === communication.id));
  });

  function writeBack(messageId: string, observations: number): Bundle {
    const patientUrn = 'urn:uuid:0c3b3b43-6c55-4a0e-9e3b-6a7c4b2d0f01';
    const observationEntries: BundleEntry[] = Array.from({ length: observations }, (_, i) => ({
      fullUrl: `urn:uuid:0c3b3b43-6c55-4a0e-9e3b-6a7c4b2d1${String(i).padStart(3, '0')}`,
      resource: {
        resourceType: 'Observation',
        status: 'final',
        identifier: [{ system: 'urn:ncpeh:message-id', value: `${messageId}-obs-${i}` }],
        code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
        subject: { reference: patientUrn },
        valueQuantity: { value: 70 + i, unit: '/min' },
      },
      request: { method: 'POST', url: 'Observation', ifNoneExist: `identifier=urn:ncpeh:message-id|${messageId}-obs-${i}` },
    }));
    return {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        {
          fullUrl: 'urn:uuid:0c3b3b43-6c55-4a0e-9e3b-6a7c4b2d0f02',
          resource: { resourceType: 'DocumentReference', status: 'current', identifier: [{ system: 'urn:ncpeh:message-id', value: messageId }], subject: { reference: patientUrn }, content: [{ attachment: { contentType: 'application/fhir+json' } }] },
          request: { method: 'POST', url: 'DocumentReference', ifNoneExist: `identifier=urn:ncpeh:message-id|${messageId}` },
        },
        {
          fullUrl: patientUrn,
          resource: { resourceType: 'Patient', identifier: [{ system: CPR_SYSTEM, value: '0101019999' }] },
          request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=${CPR_SYSTEM}|0101019999` },
        },
        ...observationEntries,
      ],
    };
  }

  async function count(resourceType: Resource['resourceType'], searchParams: Record<string, string>): Promise<number | undefined> {
    return (await fhir.search(resourceType, searchParams)).total;
  }

  test('a transaction with conditional creates posted twice creates each resource once', async () => {
    // 14 entries: more than Medplum's own strict-transaction limit of 8 conditional entries.
    const first = await fhir.transaction(writeBack('msg-1', 12));
    assert.equal(first.type, 'transaction-response');
    assert.ok(first.entry!.every((e) => e.response?.status === '201'));
    const second = await fhir.transaction(writeBack('msg-1', 12));
    assert.ok(second.entry!.every((e) => e.response?.status === '200'));
    assert.equal(await count('Patient', { identifier: `${CPR_SYSTEM}|0101019999` }), 1);
    assert.equal(await count('DocumentReference', { identifier: 'urn:ncpeh:message-id|msg-1' }), 1);
    assert.equal(await count('Observation', { identifier: 'urn:ncpeh:message-id|msg-1-obs-11' }), 1);
    // urn:uuid references inside the transaction now point at the stored Patient.
    const patient = (await fhir.search<Patient>('Patient', { identifier: `${CPR_SYSTEM}|0101019999` })).entry![0]!.resource!;
    assert.equal(await count('Observation', { subject: `Patient/${patient.id}` }), 12);
  });

  test('a transaction with a failing entry leaves nothing behind', async () => {
    const body = writeBack('msg-broken', 2);
    body.entry!.push({ resource: { resourceType: 'Patient', id: 'x' }, request: { method: 'PUT', url: 'Observation/x' } });
    await rejectsWith(fhir.transaction(body), 400);
    assert.equal(await count('DocumentReference', { identifier: 'urn:ncpeh:message-id|msg-broken' }), 0);
    assert.equal(await count('Observation', { identifier: 'urn:ncpeh:message-id|msg-broken-obs-0' }), 0);
  });

  test('identifier searches follow updates, deletes and rolled-back transactions', async () => {
    const system = 'urn:ncpeh:test-identifier';
    const created = await fhir.create<Patient>({ resourceType: 'Patient', identifier: [{ system, value: 'before' }] });
    const ids = async (value: string): Promise<string[]> => resources(await fhir.search('Patient', { identifier: `${system}|${value}` })).map((r) => r.id!);
    assert.deepEqual(await ids('before'), [created.id]);
    // Token values match case-insensitively in Medplum's matcher; the index must agree.
    assert.deepEqual(await ids('BEFORE'), resources(await fhir.search('Patient', { identifier: `${system}|BEFORE`, _count: '10' })).map((r) => r.id!));

    await fhir.update({ ...created, identifier: [{ system, value: 'after' }] });
    assert.deepEqual(await ids('before'), [], 'the old identifier no longer finds it');
    assert.deepEqual(await ids('after'), [created.id]);

    // A transaction that changes the identifier and then fails puts the old version back, findable.
    const failing: Bundle = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { resource: { ...created, identifier: [{ system, value: 'during' }] }, request: { method: 'PUT', url: `Patient/${created.id}` } },
        { resource: { resourceType: 'Patient', id: 'x' }, request: { method: 'PUT', url: 'Observation/x' } },
      ],
    };
    await rejectsWith(fhir.transaction(failing), 400);
    assert.deepEqual(await ids('during'), []);
    assert.deepEqual(await ids('after'), [created.id]);

    await fhir.delete('Patient', created.id);
    assert.deepEqual(await ids('after'), []);
  });

  test('identifier searches from the index give what a full scan of the store gives', async () => {
    const system = 'urn:ncpeh:scan-check';
    for (let i = 0; i < 6; i++) {
      await fhir.create<Observation>({
        resourceType: 'Observation',
        status: 'final',
        code: { text: 'check' },
        identifier: [{ system, value: `v${i % 3}` }, ...(i % 2 === 0 ? [{ system: `${system}-other`, value: `v${i}` }] : [])],
      });
    }
    // An earlier resource that gains the identifier later: the store keeps it first, the index would not.
    const early = await fhir.create<Observation>({ resourceType: 'Observation', status: 'final', code: { text: 'check' }, identifier: [{ system, value: 'late' }] });
    await fhir.create<Observation>({ resourceType: 'Observation', status: 'final', code: { text: 'check' }, identifier: [{ system, value: 'order' }] });
    await fhir.update({ ...early, identifier: [{ system, value: 'late' }, { system, value: 'order' }] });
    // DocumentReference's identifier parameter also searches masterIdentifier.
    await fhir.create({ resourceType: 'DocumentReference', status: 'current', masterIdentifier: { system, value: 'master' }, content: [{ attachment: { contentType: 'text/plain' } }] });

    const fullScan = MemoryRepository.prototype.search.bind(server.repo);
    const cases: Array<[Resource['resourceType'], string]> = [
      ...[`${system}|v0`, `${system}|V1`, `${system}|v2`, `${system}|v9`, `${system}-other|v4`, `${system}|`, `|v0`, 'v0', `${system}|v0,${system}|v1`, `${system}|order`].map(
        (q): [Resource['resourceType'], string] => ['Observation', q],
      ),
      ['DocumentReference', `${system}|master`],
    ];
    for (const [resourceType, query] of cases) {
      for (const extra of [{}, { _count: '1' }, { _count: '1', _offset: '1' }, { _offset: '-1' }, { _offset: 'abc', _count: '1' }, { _count: '-1' }]) {
        const request = parseSearchRequest(resourceType, { identifier: query, ...extra });
        const indexed = await server.repo.search(request);
        const scanned = await fullScan(request);
        assert.deepEqual(
          { total: indexed.total, ids: (indexed.entry ?? []).map((e) => e.resource?.id) },
          { total: scanned.total, ids: (scanned.entry ?? []).map((e) => e.resource?.id) },
          `${resourceType}?identifier=${query} ${JSON.stringify(extra)}`,
        );
      }
    }
  });

  test('rejects malformed JSON with 400 OperationOutcome', async () => {
    const response = await fetch(`${server.baseUrl}/Patient`, { method: 'POST', headers: { 'content-type': 'application/fhir+json' }, body: '{"resourceType": "Patient",' });
    assert.equal(response.status, 400);
    assert.match(response.headers.get('content-type') ?? '', /^application\/fhir\+json/);
    assert.equal(((await response.json()) as { resourceType: string }).resourceType, 'OperationOutcome');
  });

  test('accepts application/json, refuses XML (406) and other body types (415)', async () => {
    const json = await fetch(`${server.baseUrl}/Patient/${KENNETH.patientId}`, { headers: { accept: 'application/json' } });
    assert.equal(json.status, 200);
    assert.match(json.headers.get('content-type') ?? '', /^application\/fhir\+json/);
    const xml = await fetch(`${server.baseUrl}/Patient/${KENNETH.patientId}`, { headers: { accept: 'application/fhir+xml' } });
    assert.equal(xml.status, 406);
    const text = await fetch(`${server.baseUrl}/Patient`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{}' });
    assert.equal(text.status, 415);
  });
});

describe('national FHIR server (ES seed): the HCP registry', () => {
  let server: RunningFhirServer;
  let fhir: Fhir;

  before(async () => {
    server = await startFhirServer({ seed: 'ES' });
    fhir = new Fhir(server.baseUrl);
  });
  after(async () => {
    await server.close();
  });

  for (const hcp of ES_PRACTITIONERS.filter((p) => p.roleCode !== undefined)) {
    test(`finds ${hcp.given} ${hcp.family}'s role and organisation by the eIDAS identifier (chained search)`, async () => {
      const bundle = await fhir.search<PractitionerRole>('PractitionerRole', {
        'practitioner.identifier': identifierParam(hcp.personIdentifier),
        _include: 'PractitionerRole:organization',
      });
      const roles = resources(bundle, 'match') as PractitionerRole[];
      const organizations = resources(bundle, 'include') as Organization[];
      assert.equal(roles.length, 1);
      assert.deepEqual(roles[0]!.code![0]!.coding![0], { system: ISCO_08_SYSTEM, code: hcp.roleCode, display: hcp.roleDisplay });
      assert.equal(organizations.length, 1);
      assert.equal(organizations[0]!.name, hcp.organization.name);
      assert.deepEqual(organizations[0]!.identifier![0], hcp.organization.identifier);
    });
  }

  test('the two-step lookup (Practitioner by identifier, then PractitionerRole by reference) works too', async () => {
    const ana = ES_PRACTITIONERS[0]!;
    assert.equal(ana.personIdentifier.value, 'ES/ES/12345678Z');
    const practitioners = await fhir.search('Practitioner', { identifier: identifierParam(ana.personIdentifier) });
    assert.equal(practitioners.total, 1);
    const bundle = await fhir.search<PractitionerRole>('PractitionerRole', {
      practitioner: `Practitioner/${practitioners.entry![0]!.resource!.id}`,
      _include: 'PractitionerRole:organization',
    });
    assert.deepEqual(resources(bundle).map((r) => r.resourceType), ['PractitionerRole', 'Organization']);
    assert.equal((resources(bundle)[1] as Organization).name, 'Hospital Clínic de Barcelona');
  });

  test('a registered person without a role, and an unknown identifier, find no PractitionerRole', async () => {
    const pedro = ES_PRACTITIONERS.find((p) => p.roleCode === undefined)!;
    for (const value of [pedro.personIdentifier.value, 'ES/ES/99999999R']) {
      const bundle = await fhir.search('PractitionerRole', { 'practitioner.identifier': `${EIDAS_PERSON_ID_SYSTEM}|${value}` });
      assert.equal(bundle.total, 0);
    }
  });

  test('every Spanish HCP identifier carries a valid DNI check letter', () => {
    for (const hcp of ES_PRACTITIONERS) {
      const match = /^ES\/ES\/(\d{8})([A-Z])$/.exec(hcp.personIdentifier.value);
      assert.ok(match, hcp.personIdentifier.value);
      assert.equal(match[2], 'TRWAGMYFPDXBNJZSQVHLCKE'[Number(match[1]) % 23]);
    }
  });
});

describe('national FHIR server: limits and seed data', () => {
  test('refuses a body over the limit with 413 OperationOutcome', async () => {
    const server = await startFhirServer({ bodyLimit: 1024 });
    try {
      const response = await fetch(`${server.baseUrl}/Patient`, {
        method: 'POST',
        headers: { 'content-type': 'application/fhir+json' },
        body: JSON.stringify({ resourceType: 'Patient', text: { status: 'generated', div: 'x'.repeat(4096) } }),
      });
      assert.equal(response.status, 413);
      assert.equal(((await response.json()) as { resourceType: string }).resourceType, 'OperationOutcome');
    } finally {
      await server.close();
    }
  });

  test('seeding by base URL (PUT with fixed ids) works against any FHIR server and is idempotent', async () => {
    const server = await startFhirServer({ seed: 'none' });
    try {
      await seedNational(server.baseUrl, 'DK');
      await seedNational(server.baseUrl, 'DK');
      const fhir = new Fhir(server.baseUrl);
      assert.equal((await fhir.search('Patient', { identifier: identifierParam(KENNETH.identifier) })).total, 1);
      assert.equal((await fhir.search('Bundle', { type: 'document' })).total, 7);
      assert.equal((await fhir.summary(KENNETH.patientId)).id, KENNETH.documentId);
    } finally {
      await server.close();
    }
  });

  test('CPR test numbers agree with the fixture patients\' birth dates and sex', async () => {
    for (const fixturePatient of FIXTURE_PATIENTS) {
      const fixture = await loadFixture(fixturePatient.fixture);
      const patient = fixture.entry?.find((e) => e.resource?.resourceType === 'Patient')?.resource as { birthDate: string; gender?: string };
      const [year, month, day] = patient.birthDate.split('-');
      assert.equal(fixturePatient.patientIdentifier.value.slice(0, 6), `${day}${month}${year?.slice(2)}`);
      const odd = Number(fixturePatient.patientIdentifier.value.slice(-1)) % 2 === 1;
      assert.equal(odd, patient.gender === 'male', fixturePatient.fixture);
    }
  });

  test('sandbox/data/ips holds verbatim copies of the shared fixtures', { skip: !existsSync(SHARED_FIXTURES) }, async () => {
    for (const fixturePatient of FIXTURE_PATIENTS) {
      const shared = await readFile(new URL(fixturePatient.fixture, SHARED_FIXTURES), 'utf8');
      const copy = await readFile(new URL(`../sandbox/data/ips/${fixturePatient.fixture}`, import.meta.url), 'utf8');
      assert.equal(copy, shared, fixturePatient.fixture);
    }
  });
});
