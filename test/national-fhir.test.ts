// The national FHIR adapter (src/national/fhir.ts on src/national/fhir-rest.ts): what it reads from a
// real FHIR server, and how every way that server can fail becomes a stable code, never an answer.
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { startFhirServer, type RunningFhirServer } from '../sandbox/fhir-server.js';
import { KENNETH as kenneth } from '../sandbox/seed.js';
import type { ErrorCode } from '../src/http/errors.js';
import { NationalFhir } from '../src/national/fhir.js';
import { FhirHttpError, FhirRestClient } from '../src/national/fhir-rest.js';
import { startStub, stopStub } from './helpers/stub-server.js';
import { rejectsWith } from './helpers/errors.js';

describe('national FHIR adapter against the sandbox FHIR server (DK seed)', () => {
  let fhir: RunningFhirServer;
  let national: NationalFhir;

  before(async () => {
    fhir = await startFhirServer({ seed: 'DK' });
    national = new NationalFhir({ baseUrl: fhir.baseUrl, timeoutMs: 5000, summaryMode: 'operation' });
  });
  after(async () => {
    await national.close();
    await fhir.close();
  });

  test('identifies a patient by national identifier and birth date, and reads his summary and record', async () => {
    const found = await national.identify({ identifier: kenneth.identifier, birthDate: kenneth.birthDate });
    assert.equal(found.outcome, 'match');
    assert.equal(found.outcome === 'match' ? found.patient.id : undefined, kenneth.patientId);
    assert.deepEqual(await national.identify({ identifier: kenneth.identifier, birthDate: '1900-01-01' }), { outcome: 'no-match' });
    const summary = (await national.summary(kenneth.patientId)) as { resourceType?: string; type?: string };
    assert.equal(summary.resourceType, 'Bundle');
    assert.equal(summary.type, 'document');
    assert.equal((await national.readPatient(kenneth.patientId))?.id, kenneth.patientId);
    assert.equal((await national.findByIdentifier(kenneth.identifier))?.id, kenneth.patientId);
  });

  test('a patient or summary the server does not have is undefined (404), not an error', async () => {
    assert.equal(await national.readPatient('no-such-patient'), undefined);
    assert.equal(await national.summary('no-such-patient'), undefined);
  });
});

describe('national FHIR adapter when the server misbehaves', () => {
  const cases: { name: string; handler: (req: IncomingMessage, res: ServerResponse) => void; code: ErrorCode }[] = [
    { name: '500', handler: (_q, r) => r.writeHead(500, { 'content-type': 'application/fhir+json' }).end('{"resourceType":"OperationOutcome"}'), code: 'national.unavailable' },
    { name: '503 with an HTML body', handler: (_q, r) => r.writeHead(503, { 'content-type': 'text/html' }).end('<h1>down</h1>'), code: 'national.unavailable' },
    { name: '400', handler: (_q, r) => r.writeHead(400, { 'content-type': 'application/fhir+json' }).end('{"resourceType":"OperationOutcome"}'), code: 'national.bad-response' },
    { name: '200 with a body that is not JSON', handler: (_q, r) => r.writeHead(200, { 'content-type': 'application/fhir+json' }).end('{"resourceType": "Bundle", '), code: 'national.unavailable' },
    { name: 'the connection closed mid-answer', handler: (_q, r) => {
      r.writeHead(200, { 'content-type': 'application/fhir+json', 'content-length': '1000' });
      r.write('{"resourceType":');
      setImmediate(() => r.socket?.destroy());
    }, code: 'national.unavailable' },
    { name: 'no answer within the timeout', handler: () => undefined, code: 'national.unavailable' },
  ];
  for (const c of cases) {
    test(`${c.name} is ${c.code} for every read`, async () => {
      const stub = await startStub(c.handler);
      const national = new NationalFhir({ baseUrl: stub.baseUrl, timeoutMs: 300, summaryMode: 'operation' });
      try {
        await rejectsWith(national.summary('p1'), c.code);
        await rejectsWith(national.identify({ identifier: { system: 'urn:x', value: '1' }, birthDate: '1970-01-01' }), c.code);
        await rejectsWith(national.readPatient('p1'), c.code);
        await rejectsWith(national.create({ resourceType: 'Communication' }), c.code);
      } finally {
        await national.close();
        await stopStub(stub.server);
      }
    });
  }

  test('a search answer that is not a searchset is national.bad-response, never "no match"', async () => {
    const stub = await startStub((_q, r) => r.writeHead(200, { 'content-type': 'application/fhir+json' }).end('{"resourceType":"Patient","id":"p1"}'));
    const national = new NationalFhir({ baseUrl: stub.baseUrl, timeoutMs: 1000, summaryMode: 'latest-document' });
    try {
      await rejectsWith(national.identify({ identifier: { system: 'urn:x', value: '1' }, birthDate: '1970-01-01' }), 'national.bad-response');
      await rejectsWith(national.summary('p1'), 'national.bad-response');
    } finally {
      await national.close();
      await stopStub(stub.server);
    }
  });
});

describe('FHIR REST client', () => {
  test('builds FHIR R4 request lines under the base path, with repeated and escaped parameters', async () => {
    const stub = await startStub((_q, r) => r.writeHead(200, { 'content-type': 'application/fhir+json' }).end('{"resourceType":"Bundle","type":"searchset"}'));
    const client = new FhirRestClient({ baseUrl: `${stub.baseUrl}/`, timeoutMs: 1000 });
    try {
      await client.search('PractitionerRole', { 'practitioner.identifier': 'urn:sys|a b', _include: ['PractitionerRole:organization', 'PractitionerRole:practitioner'], _count: 50 });
      await client.read('Patient', 'dk/1');
      await client.instanceOperation('Patient', 'p1', 'summary');
      await client.transaction({ resourceType: 'Bundle' });
      await client.create({ resourceType: 'Communication' });
      assert.deepEqual(stub.seen, [
        'GET /fhir/R4/PractitionerRole?practitioner.identifier=urn%3Asys%7Ca+b&_include=PractitionerRole%3Aorganization&_include=PractitionerRole%3Apractitioner&_count=50',
        'GET /fhir/R4/Patient/dk%2F1',
        'GET /fhir/R4/Patient/p1/$summary',
        'POST /fhir/R4',
        'POST /fhir/R4/Communication',
      ]);
    } finally {
      await client.close();
      await stopStub(stub.server);
    }
  });

  test('an answer larger than the limit fails, and a status error carries the status', async () => {
    const big = JSON.stringify({ resourceType: 'Binary', data: 'x'.repeat(64 * 1024) });
    const stub = await startStub((req, r) => {
      if (req.url?.endsWith('/missing') === true) r.writeHead(404, { 'content-type': 'application/fhir+json' }).end('{}');
      else r.writeHead(200, { 'content-type': 'application/fhir+json' }).end(big);
    });
    const client = new FhirRestClient({ baseUrl: stub.baseUrl, timeoutMs: 1000, maxResponseBytes: 16 * 1024 });
    try {
      await assert.rejects(client.read('Binary', 'b1'), (e: unknown) => !(e instanceof FhirHttpError));
      await assert.rejects(client.read('Binary', 'missing'), (e: unknown) => e instanceof FhirHttpError && e.status === 404);
    } finally {
      await client.close();
      await stopStub(stub.server);
    }
  });

  test('a GET cut off before any answer is sent once more; a POST is not', async () => {
    let n = 0;
    const stub = await startStub((_q, r) => {
      n += 1;
      if (n % 2 === 1) r.socket?.destroy();
      else r.writeHead(200, { 'content-type': 'application/fhir+json' }).end('{"resourceType":"Patient","id":"p1"}');
    });
    const client = new FhirRestClient({ baseUrl: stub.baseUrl, timeoutMs: 2000 });
    try {
      assert.deepEqual(await client.read('Patient', 'p1'), { resourceType: 'Patient', id: 'p1' });
      assert.equal(stub.seen.length, 2);
      await assert.rejects(client.create({ resourceType: 'Communication' }));
      assert.equal(stub.seen.length, 3, 'the POST went once');
    } finally {
      await client.close();
      await stopStub(stub.server);
    }
  });

  test('refuses a base URL it cannot use', () => {
    assert.throws(() => new FhirRestClient({ baseUrl: 'ftp://example.org/fhir', timeoutMs: 1000 }));
    assert.throws(() => new FhirRestClient({ baseUrl: 'http://example.org/fhir?x=1', timeoutMs: 1000 }));
  });
});
