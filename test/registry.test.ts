import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { PractitionerRole } from '@medplum/fhirtypes';
import { startFhirServer, type RunningFhirServer } from '../sandbox/fhir-server.js';
import { ES_PRACTITIONERS, type SeedPractitioner } from '../sandbox/seed.js';
import { createRegistry, type Registry } from '../src/identity/registry.js';
import { startStub, stopStub } from './helpers/stub-server.js';
import { rejectsWith } from './helpers/errors.js';

function seeded(key: string): SeedPractitioner {
  const found = ES_PRACTITIONERS.find((p) => p.practitionerId === `es-practitioner-${key}`);
  if (found === undefined) throw new Error(`no seeded practitioner ${key}`);
  return found;
}

describe('professional registry lookup against a real FHIR server (ES seed)', () => {
  let fhir: RunningFhirServer;
  let registry: Registry;

  before(async () => {
    fhir = await startFhirServer({ seed: 'ES' });
    registry = createRegistry({ baseUrl: fhir.baseUrl, timeoutMs: 5000 });
  });
  after(async () => {
    await fhir.close();
  });

  test('resolves Ana García to ISCO-08 role 221 (medical doctor) at Hospital Clínic, a Hospital', async () => {
    const ana = seeded('ana-garcia');
    const professional = await registry.lookup(ana.personIdentifier.value);
    assert.deepEqual(professional, {
      personId: 'ES/ES/12345678Z',
      practitionerId: 'es-practitioner-ana-garcia',
      name: 'Ana García Pérez',
      roles: [{ code: '221', display: 'Medical doctors' }],
      organization: {
        id: 'es-org-hospital-clinic',
        name: 'Hospital Clínic de Barcelona',
        identifier: { system: 'urn:ncpeh:sandbox:es:regcess', value: 'ES-08-000101' },
      },
      facilityType: 'Hospital',
    });
  });

  test('maps every seeded role and facility type (nurse, dentist at Other, pharmacist at Pharmacy)', async () => {
    for (const hcp of ES_PRACTITIONERS.filter((p) => p.roleCode !== undefined)) {
      const professional = await registry.lookup(hcp.personIdentifier.value);
      assert.deepEqual(
        professional.roles.map((r) => r.code),
        [hcp.roleCode],
      );
      assert.equal(professional.organization.id, hcp.organization.id);
      assert.equal(professional.facilityType, hcp.organization.facilityType);
    }
  });

  test('refuses a registered person without any PractitionerRole with hcp.not-registered', async () => {
    await rejectsWith(registry.lookup(seeded('pedro-sanz').personIdentifier.value), 'hcp.not-registered');
  });

  test('refuses an unknown person with hcp.not-registered', async () => {
    await rejectsWith(registry.lookup('ES/ES/99999999R'), 'hcp.not-registered');
  });

  test('refuses a role that is no longer active with hcp.not-registered', async () => {
    const marta = seeded('marta-lopez');
    const roleId = marta.practitionerRoleId ?? '';
    const role = await fhir.repo.readResource<PractitionerRole>('PractitionerRole', roleId);
    await fhir.repo.updateResource({ ...role, active: false });
    try {
      await rejectsWith(registry.lookup(marta.personIdentifier.value), 'hcp.not-registered');
    } finally {
      await fhir.repo.updateResource({ ...role, active: true });
    }
  });

  test('refuses a role whose only code is not an accepted ISCO-08 code with hcp.not-registered', async () => {
    const laura = seeded('laura-fernandez');
    const role = await fhir.repo.readResource<PractitionerRole>('PractitionerRole', laura.practitionerRoleId ?? '');
    await fhir.repo.updateResource({ ...role, code: [{ coding: [{ system: 'urn:oid:2.16.840.1.113883.2.9.6.2.7', code: '9999' }] }] });
    try {
      await rejectsWith(registry.lookup(laura.personIdentifier.value), 'hcp.not-registered');
    } finally {
      await fhir.repo.updateResource(role);
    }
  });

  test('refuses an identifier carrying FHIR search syntax (| or ,) with hcp.not-registered, without asking', async () => {
    await rejectsWith(registry.lookup(`x|${seeded('ana-garcia').personIdentifier.value}`), 'hcp.not-registered');
    await rejectsWith(registry.lookup('ES/ES/1,ES/ES/2'), 'hcp.not-registered');
  });
});

describe('professional registry: fails closed when the registry cannot answer', () => {
  test('a stopped (closed) FHIR server gives registry.unavailable', async () => {
    const fhir = await startFhirServer({ seed: 'ES' });
    const registry = createRegistry({ baseUrl: fhir.baseUrl });
    await registry.lookup(seeded('ana-garcia').personIdentifier.value);
    await fhir.close();
    await rejectsWith(registry.lookup(seeded('ana-garcia').personIdentifier.value), 'registry.unavailable');
  });

  test('a 5xx answer gives registry.unavailable', async () => {
    const stub = await startStub((_req, res) => {
      res.writeHead(503, { 'content-type': 'application/fhir+json' }).end('{"resourceType":"OperationOutcome","issue":[]}');
    });
    try {
      await rejectsWith(createRegistry({ baseUrl: stub.baseUrl }).lookup('ES/ES/12345678Z'), 'registry.unavailable');
    } finally {
      await stopStub(stub.server);
    }
  });

  // The registry never answers, so only the client's own timeout can end the lookup; the test's
  // timeout turns a client that waits for ever into a failure rather than a hang.
  test('a registry slower than timeoutMs gives registry.unavailable, and the client hangs up', { timeout: 30_000 }, async () => {
    let hungUp: Promise<void> | undefined;
    const stub = await startStub((req) => {
      // never answers
      hungUp = new Promise((resolve) => req.socket.once('close', () => resolve()));
    });
    try {
      await rejectsWith(createRegistry({ baseUrl: stub.baseUrl, timeoutMs: 200 }).lookup('ES/ES/12345678Z'), 'registry.unavailable');
      assert.ok(hungUp, 'the request reached the registry');
      await hungUp;
    } finally {
      await stopStub(stub.server);
    }
  });

  test('an answer that is not a searchset Bundle gives registry.unavailable', async () => {
    const stub = await startStub((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/fhir+json' }).end('{"resourceType":"Patient","id":"x"}');
    });
    try {
      await rejectsWith(createRegistry({ baseUrl: stub.baseUrl }).lookup('ES/ES/12345678Z'), 'registry.unavailable');
    } finally {
      await stopStub(stub.server);
    }
  });

  test('a server that ignores the identifier filter cannot make someone else registered (hcp.not-registered)', async () => {
    // A lenient server dropping `practitioner.identifier` returns every role; each must still point
    // to a Practitioner carrying exactly the identifier we asked for.
    const fhir = await startFhirServer({ seed: 'ES' });
    let upstreamTotal = -1;
    const stub = await startStub((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      url.searchParams.delete('practitioner.identifier');
      fetch(`${fhir.baseUrl}/PractitionerRole${url.search}`, { headers: { accept: 'application/fhir+json' } })
        .then(async (answer) => {
          const text = await answer.text();
          const total: unknown = (JSON.parse(text) as { total?: unknown }).total;
          upstreamTotal = typeof total === 'number' ? total : -1;
          res.writeHead(answer.status, { 'content-type': 'application/fhir+json' }).end(text);
        })
        .catch(() => res.destroy());
    });
    try {
      await rejectsWith(createRegistry({ baseUrl: stub.baseUrl }).lookup('ES/ES/99999999R'), 'hcp.not-registered');
      assert.equal(upstreamTotal, ES_PRACTITIONERS.filter((p) => p.roleCode !== undefined).length);
    } finally {
      await stopStub(stub.server);
      await fhir.close();
    }
  });

  test('a server that ignores _include gives registry.unavailable, not hcp.not-registered', async () => {
    const fhir = await startFhirServer({ seed: 'ES' });
    const stub = await startStub((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      url.searchParams.delete('_include');
      fetch(`${fhir.baseUrl}/PractitionerRole${url.search}`, { headers: { accept: 'application/fhir+json' } })
        .then(async (answer) => res.writeHead(answer.status, { 'content-type': 'application/fhir+json' }).end(await answer.text()))
        .catch(() => res.destroy());
    });
    try {
      await rejectsWith(createRegistry({ baseUrl: stub.baseUrl }).lookup(seeded('ana-garcia').personIdentifier.value), 'registry.unavailable');
    } finally {
      await stopStub(stub.server);
      await fhir.close();
    }
  });
});
