/**
 * Data back home (issue 6) on real components: a Barcelona hospital sends what happened to Kenneth;
 * the Spanish gateway stores it durably and delivers it to the Danish gateway, which registers it in
 * the Danish national FHIR server exactly once and notifies his GP. Bad input is refused with
 * nothing stored; a peer that is down delays delivery but loses nothing.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { DK_GP, ES_PRACTITIONERS, KENNETH } from '../sandbox/seed.js';
import { readingsBundle as readings } from '../sandbox/readings.js';
import { verifySignedClaims } from '../src/crossborder/envelope.js';
import { RECEIPT_TYP, SUBMISSION_IDENTIFIER_SYSTEM } from '../src/crossborder/receiver.js';
import { signingKeysFor } from '../src/trust/trust-list.js';
import { startWorld, type World } from './helpers/world.js';
import { call as api, outcomeCode, type Json } from './helpers/http.js';

const ANA = ES_PRACTITIONERS.find((p) => p.roleCode === '221');

describe('data back home', () => {
  let world: World;
  let ana: string;
  let ref: string;
  let kenneth: string;

  const submit = (body: unknown, key: string | undefined, token = ana, r = ref) =>
    api(`${world.es.apiUrl}/api/v1/cross-border/patients/DK/${r}/documents`, { token, body, headers: key === undefined ? {} : { 'idempotency-key': key } });
  const status = (id: string, token = ana) => api(`${world.es.apiUrl}/api/v1/cross-border/submissions/${id}`, { token });
  async function until(id: string, wanted: string, ms = 30_000): Promise<Json> {
    const deadline = Date.now() + ms;
    for (;;) {
      const s = await status(id);
      if (s.body.status === wanted) return s.body;
      if (Date.now() > deadline) assert.fail(`submission ${id} is ${String(s.body.status)}, not ${wanted}: ${JSON.stringify(s.body)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  async function registeredCount(trackingId: string): Promise<number> {
    const res = await fetch(`${world.dk.fhir.baseUrl}/Observation?identifier=${encodeURIComponent(`${SUBMISSION_IDENTIFIER_SYSTEM}|${trackingId}/0`)}`);
    const bundle = (await res.json()) as { entry?: unknown[] };
    return bundle.entry?.length ?? 0;
  }
  async function storedSubmissions(): Promise<number> {
    const { rows } = await world.es.gateway.db.query<{ n: string | number }>('SELECT count(*) AS n FROM submissions');
    return Number(rows[0]?.n);
  }

  before(async () => {
    world = await startWorld({ persistent: true, fastRetry: true });
    kenneth = await world.citizenSignIn('DK', KENNETH.identifier.value);
    const consent = await api(`${world.dk.apiUrl}/api/v1/me/consents`, {
      token: kenneth,
      body: { countries: ['ES'], roles: ['221'], purposes: ['TREAT'], sections: ['11450-4'], period: { start: new Date(Date.now() - 60_000).toISOString().replace(/\.\d+Z$/, 'Z') } },
    });
    assert.equal(consent.status, 201);
    ana = await world.hcpSignIn('ES', ANA?.personIdentifier.value ?? '');
    const found = await api(`${world.es.apiUrl}/api/v1/cross-border/patients/$identify`, {
      token: ana,
      body: { country: 'DK', identifier: KENNETH.identifier, birthDate: KENNETH.birthDate },
    });
    ref = (found.body.matches as Array<{ ref: string }>)[0]?.ref ?? '';
    assert.ok(ref.length > 0, 'Kenneth identified');
  });
  after(async () => world.close());

  test('a submission is accepted with 202, delivered, registered once, receipted and notified', async () => {
    const key = `visit-${randomUUID()}`;
    const res = await submit(readings(ref, 91), key);
    assert.equal(res.status, 202, JSON.stringify(res.body));
    const trackingId = String(res.body.trackingId);
    const done = await until(trackingId, 'delivered');
    const claims = await verifySignedClaims(String(done.receipt), { typ: RECEIPT_TYP, trustedKeys: { keys: signingKeysFor(world.es.gateway.trust.require(), 'DK') } });
    assert.equal(claims.messageId, trackingId);
    assert.equal((claims.registered as string[]).length, 2);
    assert.equal(await registeredCount(trackingId), 1);
    const comms = (await (await fetch(`${world.dk.fhir.baseUrl}/Communication?identifier=${encodeURIComponent(`${SUBMISSION_IDENTIFIER_SYSTEM}|${trackingId}/notification`)}`)).json()) as {
      entry?: Array<{ resource: { recipient?: Array<{ reference?: string }>; subject?: { reference?: string } } }>;
    };
    assert.equal(comms.entry?.length, 1);
    assert.equal(comms.entry?.[0]?.resource.recipient?.[0]?.reference, `Practitioner/${DK_GP.practitionerId}`);
    // The payload at rest is ciphertext: no clinical content in a database dump.
    const { rows } = await world.es.gateway.db.query<{ payload: Buffer | Uint8Array | null }>('SELECT payload FROM submissions WHERE tracking_id = $1', [trackingId]);
    const stored = Buffer.from(rows[0]?.payload ?? Buffer.alloc(0)).toString('latin1');
    assert.ok(!stored.includes('Observation') && !stored.includes('59408-5'), 'payload is encrypted');
  });

  test('the same Idempotency-Key with the same body returns the original answer; another body is a conflict', async () => {
    const key = `visit-${randomUUID()}`;
    const body = readings(ref, 92);
    const first = await submit(body, key);
    const again = await submit(structuredClone(body), key);
    assert.equal(again.status, 202);
    assert.equal(again.body.trackingId, first.body.trackingId);
    const other = await submit(readings(ref, 80), key);
    assert.equal(other.status, 409);
    assert.equal(outcomeCode(other.body), 'submission.idempotency-conflict');
  });

  test('bad input is refused with a clear error and nothing is stored', async () => {
    const before = await storedSubmissions();
    const patientResource = { resourceType: 'Bundle', type: 'collection', entry: [{ resource: { resourceType: 'Patient', name: [{ family: 'X' }] } }] };
    const wrongType = await submit(patientResource, `k-${randomUUID()}`);
    assert.equal(wrongType.status, 422);
    assert.equal(outcomeCode(wrongType.body), 'submission.invalid');
    const otherPatient = await submit(readings('someone-else', 90), `k-${randomUUID()}`);
    assert.equal(outcomeCode(otherPatient.body), 'submission.invalid');
    const noKey = await submit(readings(ref, 90), undefined);
    assert.equal(noKey.status, 400);
    assert.equal(outcomeCode(noKey.body), 'submission.idempotency-key-required');
    const transaction = await submit({ ...readings(ref, 90), type: 'transaction' }, `k-${randomUUID()}`);
    assert.equal(outcomeCode(transaction.body), 'submission.invalid');
    // Registry resources must never be writable from abroad (the national server is also the HCP registry).
    for (const resourceType of ['Practitioner', 'PractitionerRole', 'Organization']) {
      const registry = await submit({ resourceType: 'Bundle', type: 'collection', entry: [{ resource: { resourceType, active: true } }] }, `k-${randomUUID()}`);
      assert.equal(outcomeCode(registry.body), 'submission.invalid', resourceType);
    }
    const observation = (readings(ref, 90).entry as Array<{ resource: Record<string, unknown> }>)[0]?.resource ?? {};
    const variants: Array<Record<string, unknown>> = [
      { ...observation, subject: undefined },
      { ...observation, focus: [{ reference: 'Patient/dk-patient-fixture-ips-ig-bundle-01' }] },
      { ...observation, contained: [{ resourceType: 'Patient', identifier: [{ system: 'urn:oid:1.2.208.176.1.2', value: '0105721002' }] }] },
      { ...observation, performer: [{ reference: 'Practitioner/dk-practitioner-gp-mette-jensen' }] },
    ];
    for (const resource of variants) {
      const res = await submit({ resourceType: 'Bundle', type: 'collection', entry: [{ resource: JSON.parse(JSON.stringify(resource)) as unknown }] }, `k-${randomUUID()}`);
      assert.equal(res.status, 422, JSON.stringify(resource).slice(0, 120));
      assert.equal(outcomeCode(res.body), 'submission.invalid');
    }
    const huge = await api(`${world.es.apiUrl}/api/v1/cross-border/patients/DK/${ref}/documents`, {
      token: ana,
      headers: { 'idempotency-key': `k-${randomUUID()}` },
      raw: JSON.stringify({ ...readings(ref, 90), padding: 'x'.repeat(3 * 1024 * 1024) }),
    });
    assert.equal(huge.status, 413);
    const malformed = await api(`${world.es.apiUrl}/api/v1/cross-border/patients/DK/${ref}/documents`, { token: ana, headers: { 'idempotency-key': `k-${randomUUID()}` }, raw: '{"resourceType":' });
    assert.equal(malformed.status, 400);
    assert.equal(await storedSubmissions(), before);
  });

  test('only the submitting client may read a submission', async () => {
    const res = await submit(readings(ref, 93), `visit-${randomUUID()}`);
    const dkClientToken = await world.hcpSignIn('DK', 'DK/DK/9208-2002-2-274815369021');
    const other = await api(`${world.es.apiUrl}/api/v1/cross-border/submissions/${String(res.body.trackingId)}`, { token: dkClientToken });
    assert.equal(outcomeCode(other.body), 'hcp.assertion-invalid');
    const unknown = await status(randomUUID());
    assert.equal(outcomeCode(unknown.body), 'submission.not-found');
  });

  test('a redelivery after the receiver lost its answer registers nothing twice', async () => {
    const res = await submit(readings(ref, 94), `visit-${randomUUID()}`);
    const trackingId = String(res.body.trackingId);
    const first = await until(trackingId, 'delivered');
    // The receiver "crashed" after registering but before it could record and answer.
    await world.dk.gateway.db.query('DELETE FROM received_documents WHERE message_id = $1', [trackingId]);
    await world.es.gateway.db.query("UPDATE submissions SET status = 'queued', next_attempt_at = now(), receipt_jws = NULL WHERE tracking_id = $1", [trackingId]);
    const second = await until(trackingId, 'delivered');
    const claims = async (r: unknown) =>
      verifySignedClaims(String(r), { typ: RECEIPT_TYP, trustedKeys: { keys: signingKeysFor(world.es.gateway.trust.require(), 'DK') } });
    assert.deepEqual((await claims(second.receipt)).registered, (await claims(first.receipt)).registered);
    assert.equal(await registeredCount(trackingId), 1);
  });

  test('Kenneth sends his own readings home with his eID session; a retry registers nothing twice', async () => {
    const body = readings('me', 88);
    body.entry = (body.entry as unknown[]).slice(0, 1);
    const key = `app-${randomUUID()}`;
    const send = () => api(`${world.dk.apiUrl}/api/v1/me/observations`, { token: kenneth, body, headers: { 'idempotency-key': key } });
    const first = await send();
    assert.equal(first.status, 201, JSON.stringify(first.body));
    const again = await send();
    assert.deepEqual(again.body.registered, first.body.registered);
    const encounter = await api(`${world.dk.apiUrl}/api/v1/me/observations`, { token: kenneth, body: readings('me', 70), headers: { 'idempotency-key': `app-${randomUUID()}` } });
    assert.equal(outcomeCode(encounter.body), 'submission.invalid');
    const anonymous = await api(`${world.dk.apiUrl}/api/v1/me/observations`, { body, headers: { 'idempotency-key': key } });
    assert.equal(outcomeCode(anonymous.body), 'citizen.session-missing');
  });

  test('peer down: submissions made while DK is stopped all arrive exactly once after it returns', async () => {
    await world.stopGateway('DK');
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await submit(readings(ref, 95 + i), `down-${randomUUID()}`);
      assert.equal(res.status, 202);
      ids.push(String(res.body.trackingId));
    }
    await new Promise((r) => setTimeout(r, 2500));
    for (const id of ids) {
      const s = await status(id);
      assert.notEqual(s.body.status, 'delivered');
      assert.notEqual(s.body.status, 'failed');
    }
    await world.restartGateway('DK');
    for (const id of ids) await until(id, 'delivered', 45_000);
    for (const id of ids) assert.equal(await registeredCount(id), 1);
  });
});
