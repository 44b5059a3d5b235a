import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AuditEvent } from '@medplum/fhirtypes';
import {
  assertNoClinicalContent,
  AUDIT_KINDS,
  BALP_ENTITY_TYPE,
  buildAuditEvent,
  describeAuditEvent,
  type AuditEventInput,
  type AuditKind,
} from '../src/audit/balp.js';
import { AuditLog, CHECKPOINT_TYP, verifyCheckpointJws, WitnessRefusedError, type Checkpoint } from '../src/audit/log.js';
import { leafHashOfJson, verifyConsistency, verifyInclusion } from '../src/audit/merkle.js';
import { verifyAuditLog } from '../src/audit/verify.js';
import { loadPrivateJwk, publicJwks, type SigningKey } from '../src/crossborder/envelope.js';
import { GatewayError, isGatewayError } from '../src/http/errors.js';
import type { Db } from '../src/storage/db.js';
import { openTestDb, testAdapters } from './helpers/db.js';

const DK = 'urn:ncpeh:ncp:DK';
const ES = 'urn:ncpeh:ncp:ES';

async function signingKey(kid: string): Promise<SigningKey> {
  return loadPrivateJwk({ ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }), kid }, 'sig');
}

const dkKey = await signingKey('dk-audit-1');
const esKey = await signingKey('es-audit-1');
const otherKey = await signingKey('es-audit-1'); // same kid, different key: an impostor
const dkKeys = publicJwks([dkKey]);
const esKeys = publicJwks([esKey]);

function input(kind: AuditKind, extra: Partial<AuditEventInput> = {}): AuditEventInput {
  return {
    kind,
    outcome: 'success',
    recorded: new Date('2025-03-01T10:00:00.000Z'),
    user: {
      id: { iss: 'https://idp.es.example', sub: 'hcp-4711' },
      name: 'Dr. Elena García',
      role: { system: 'urn:oid:2.16.840.1.113883.2.9.6.2.7', code: '221', display: 'Medical doctors' },
      purposeOfUse: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'TREAT', display: 'treatment' }],
      organization: { name: 'Hospital Clínic de Barcelona', id: 'urn:oid:2.16.724.1.1' },
      jti: 'a1b2c3d4-e5f6',
    },
    client: { id: ES, network: '10.0.0.7' },
    server: { id: DK, network: 'https://ncp.dk.example/ncp/v1' },
    sourceCountry: 'ES',
    patient: { reference: 'Patient/opaque-7f3a' },
    transactionId: 'req-0001',
    ...extra,
  };
}

function eventNo(i: number, patient = 'Patient/opaque-7f3a'): AuditEvent {
  return buildAuditEvent(input(i % 2 === 0 ? 'export' : 'read', { transactionId: `req-${i}`, patient: { reference: patient } }));
}

async function appendN(log: AuditLog, n: number, patientKey?: string): Promise<void> {
  for (let i = 0; i < n; i++) await log.append(eventNo(i), patientKey === undefined ? {} : { patientKey });
}

/** Tampering needs the append-only trigger out of the way: a superuser's move (the tests run as one). */
async function tamper(db: Db, sql: string, params: unknown[] = [], table = 'audit_log'): Promise<void> {
  await db.query(`ALTER TABLE ${table} DISABLE TRIGGER USER`);
  try {
    await db.query(sql, params);
  } finally {
    await db.query(`ALTER TABLE ${table} ENABLE TRIGGER USER`);
  }
}

async function count(db: Db, table: string): Promise<number> {
  const { rows } = await db.query<{ n: unknown }>(`SELECT count(*)::int AS n FROM ${table}`);
  return Number(rows[0]?.n);
}

function b64(hashes: readonly Buffer[]): string[] {
  return hashes.map((h) => h.toString('base64'));
}

// ---------------------------------------------------------------------------------------------
// BALP builder (pure)

describe('BALP AuditEvent builder (STANDARDS.md, IHE BALP)', () => {
  test('read: type rest, subtype read, action R, outcome 0', () => {
    const e = buildAuditEvent(input('read'));
    assert.equal(e.resourceType, 'AuditEvent');
    assert.deepEqual([e.type?.system, e.type?.code], ['http://terminology.hl7.org/CodeSystem/audit-event-type', 'rest']);
    assert.ok(e.subtype?.some((c) => c.system === 'http://hl7.org/fhir/restful-interaction' && c.code === 'read'));
    assert.equal(e.action, 'R');
    assert.equal(e.outcome, '0');
    assert.equal(e.recorded, '2025-03-01T10:00:00.000Z');
  });

  test('agents: user IRCP requestor with role, purpose of use and jti policy; client 110152 and server 110153 with who and network', () => {
    const e = buildAuditEvent(input('read'));
    const agents = e.agent ?? [];
    const user = agents.find((a) => a.type?.coding?.[0]?.code === 'IRCP');
    assert.ok(user);
    assert.equal(user.type?.coding?.[0]?.system, 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType');
    assert.equal(user.requestor, true);
    assert.deepEqual(user.who?.identifier, { system: 'https://idp.es.example', value: 'hcp-4711' });
    assert.equal(user.role?.[0]?.coding?.[0]?.code, '221');
    assert.equal(user.purposeOfUse?.[0]?.coding?.[0]?.code, 'TREAT');
    assert.deepEqual(user.policy, ['urn:ietf:params:oauth:jti:a1b2c3d4-e5f6']);
    assert.equal(user.network, undefined, 'users are not network devices');

    const dcm = (code: string) => agents.find((a) => a.type?.coding?.some((c) => c.system === 'http://dicom.nema.org/resources/ontology/DCM' && c.code === code));
    const client = dcm('110152');
    const server = dcm('110153');
    assert.ok(client && server);
    assert.equal(client.who?.identifier?.value, ES);
    assert.deepEqual(client.network, { address: '10.0.0.7', type: '2' });
    assert.equal(client.requestor, false);
    assert.equal(server.who?.identifier?.value, DK);
    assert.deepEqual(server.network, { address: 'https://ncp.dk.example/ncp/v1', type: '5' });
    assert.equal(e.source?.observer?.identifier?.value, DK);
  });

  test('entities: transaction XrequestId and patient (type 1, role 1)', () => {
    const e = buildAuditEvent(input('read'));
    const tx = e.entity?.find((x) => x.type?.system === BALP_ENTITY_TYPE && x.type.code === 'XrequestId');
    assert.equal(tx?.what?.identifier?.value, 'req-0001');
    const patient = e.entity?.find((x) => x.type?.code === '1' && x.role?.code === '1');
    assert.equal(patient?.what?.reference, 'Patient/opaque-7f3a');
    assert.equal(patient?.type?.system, 'http://terminology.hl7.org/CodeSystem/audit-entity-type');
    assert.equal(patient?.role?.system, 'http://terminology.hl7.org/CodeSystem/object-role');
  });

  test('query: subtype search, action E, query entity (type 2, role 24) carrying the query base64', () => {
    const e = buildAuditEvent(input('query', { query: 'identifier=urn:oid:1.2.208.176.1.2|0201609995' }));
    assert.ok(e.subtype?.some((c) => c.code === 'search'));
    assert.equal(e.action, 'E');
    const q = e.entity?.find((x) => x.type?.code === '2' && x.role?.code === '24');
    assert.equal(Buffer.from(q?.query ?? '', 'base64').toString('utf8'), 'identifier=urn:oid:1.2.208.176.1.2|0201609995');
  });

  test('disclosure: export at the source is DCM 110106 (R), import at the recipient DCM 110107 (C), both disclose', () => {
    const exp = buildAuditEvent(input('export'));
    assert.deepEqual([exp.type?.system, exp.type?.code, exp.action], ['http://dicom.nema.org/resources/ontology/DCM', '110106', 'R']);
    assert.ok(exp.subtype?.some((c) => c.code === 'disclose'));
    const imp = buildAuditEvent(input('import'));
    assert.deepEqual([imp.type?.code, imp.action], ['110107', 'C']);
    assert.ok(imp.subtype?.some((c) => c.code === 'disclose'));
  });

  test('consent decision is DCM 110113 with action E and the Consent as an entity', () => {
    const e = buildAuditEvent(
      input('consent-decision', { outcome: 'minor', outcomeDesc: 'consent.denied', entityExtra: [{ what: { reference: 'Consent/c-1' }, description: 'no permit' }] }),
    );
    assert.deepEqual([e.type?.code, e.action, e.outcome, e.outcomeDesc], ['110113', 'E', '4', 'consent.denied']);
    assert.ok(e.entity?.some((x) => x.what?.reference === 'Consent/c-1'));
  });

  test('security events: sign-in 110114/110122, break-glass 110113/110127, peer auth failure 110113/110126, trust list 110113/110129', () => {
    const subtypeOf = (kind: AuditKind) => {
      const e = buildAuditEvent(input(kind));
      return [e.type?.code, e.subtype?.find((c) => c.system === 'http://dicom.nema.org/resources/ontology/DCM')?.code];
    };
    assert.deepEqual(subtypeOf('sign-in'), ['110114', '110122']);
    assert.deepEqual(subtypeOf('break-glass'), ['110113', '110127']);
    assert.deepEqual(subtypeOf('peer-auth-failure'), ['110113', '110126']);
    assert.deepEqual(subtypeOf('trust-list-change'), ['110113', '110129']);
  });

  test('consent change maps the interaction to the action; outcomes map to 0/4/8/12', () => {
    assert.equal(buildAuditEvent(input('consent-change', { interaction: 'create' })).action, 'C');
    assert.equal(buildAuditEvent(input('consent-change', { interaction: 'delete' })).action, 'D');
    assert.equal(buildAuditEvent(input('consent-change')).action, 'U');
    const outcomes = (['success', 'minor', 'serious', 'major'] as const).map((o) => buildAuditEvent(input('read', { outcome: o })).outcome);
    assert.deepEqual(outcomes, ['0', '4', '8', '12']);
  });

  test('no event of any kind carries clinical content', () => {
    const forbidden = new Set(['section', 'entry', 'contained', 'text', 'resource', 'div', 'detail']);
    const keysOf = (v: unknown): string[] =>
      Array.isArray(v) ? v.flatMap(keysOf) : typeof v === 'object' && v !== null ? Object.entries(v).flatMap(([k, x]) => [k, ...keysOf(x)]) : [];
    for (const kind of AUDIT_KINDS) {
      const e = buildAuditEvent(input(kind, { query: 'x=1', entityExtra: [{ what: { reference: 'Bundle/b-1' } }] }));
      const bad = keysOf(e).filter((k) => forbidden.has(k));
      assert.deepEqual(bad, [], kind);
      assert.equal(keysOf(e).filter((k) => k === 'resourceType').length, 1, `${kind}: no embedded resource`);
    }
  });

  test('a resource body smuggled into an extra entity is dropped, and the guard refuses one outright', () => {
    const smuggled = { what: { reference: 'Bundle/b-1', resource: { resourceType: 'Bundle', entry: [] } }, detail: [{ type: 'x', valueString: 'y' }] };
    const e = buildAuditEvent(input('export', { entityExtra: [smuggled] }));
    assert.ok(!JSON.stringify(e).includes('"entry"'));
    assert.throws(() => assertNoClinicalContent({ resourceType: 'AuditEvent', entity: [{ what: { resource: { resourceType: 'Bundle' } } }] }), /clinical content/);
    assert.throws(() => assertNoClinicalContent({ resourceType: 'AuditEvent', contained: [{ resourceType: 'Composition', section: [] }] }), /clinical content/);
  });

  test('describeAuditEvent gives the citizen who, role, organisation, country, what, when, why, outcome', () => {
    assert.deepEqual(describeAuditEvent(buildAuditEvent(input('export'))), {
      who: 'Dr. Elena García',
      role: 'Medical doctors',
      organization: 'Hospital Clínic de Barcelona',
      country: 'ES',
      what: 'received the Patient Summary',
      when: '2025-03-01T10:00:00.000Z',
      why: ['treatment'],
      outcome: 'success',
    });
    assert.equal(describeAuditEvent(buildAuditEvent(input('consent-decision', { outcome: 'minor' }))).outcome, 'denied or failed');
  });
});

// ---------------------------------------------------------------------------------------------
// The log, on every adapter

for (const adapter of testAdapters()) {
  describe(`audit log on ${adapter}`, () => {
    let db: Db;
    let log: AuditLog;
    const fresh = async (): Promise<void> => {
      db = await openTestDb({ adapter });
      log = new AuditLog(db, { ncpId: DK, signingKey: dkKey });
    };
    const closeDb = async (): Promise<void> => {
      await db.close();
    };

    describe('append, checkpoint, proofs', () => {
      before(fresh);
      after(closeDb);

      test('appends get consecutive indices from 0 and the event id is its index', async () => {
        const a = await log.append(eventNo(0), { patientKey: 'dk:kenneth' });
        const b = await log.append(eventNo(1));
        assert.deepEqual([a.seq, b.seq], [0, 1]);
        const { rows } = await db.query<{ event: { id: string } }>('SELECT event FROM audit_log ORDER BY seq');
        assert.deepEqual(rows.map((r) => r.event.id), ['0', '1']);
      });

      test('a checkpoint is a JWS (typ ncpeh-checkpoint+jws) over size, root, time and NCP id, and an inclusion proof verifies against it', async () => {
        await appendN(log, 5, 'dk:kenneth');
        const cp = await log.checkpoint(dkKey);
        assert.equal(cp.treeSize, 7);
        const verified = await verifyCheckpointJws(cp.jws, dkKeys);
        assert.equal(verified.claims.treeSize, 7);
        assert.equal(verified.claims.ncpId, DK);
        assert.deepEqual(verified.rootHash, cp.rootHash);
        const header = JSON.parse(Buffer.from(cp.jws.split('.')[0]!, 'base64url').toString('utf8')) as Record<string, unknown>;
        assert.deepEqual(header, { alg: 'ES256', kid: 'dk-audit-1', typ: CHECKPOINT_TYP });

        for (let seq = 0; seq < 7; seq++) {
          const p = await log.inclusionProofFor(seq, cp.treeSize);
          assert.ok(verifyInclusion(seq, cp.treeSize, p.leafHash, p.proof, cp.rootHash), `entry ${seq}`);
        }
        assert.deepEqual((await log.latestCheckpoint())?.treeSize, 7);
      });

      test("the citizen's access log lists his events, each with a proof that verifies from the event itself", async () => {
        const events = await log.eventsForPatient('dk:kenneth');
        assert.deepEqual(
          events.map((e) => e.seq),
          [0, 2, 3, 4, 5, 6],
        );
        for (const e of events) {
          const proven = await log.inclusionProofAgainstLatest(e.seq);
          assert.ok(proven);
          // The event as read back from jsonb hashes to the very leaf that was appended.
          const leaf = leafHashOfJson(e.event);
          assert.deepEqual(leaf, proven.proof.leafHash);
          assert.ok(verifyInclusion(e.seq, proven.checkpoint.treeSize, leaf, proven.proof.proof, proven.checkpoint.rootHash));
          assert.equal(describeAuditEvent(e.event as unknown as AuditEvent).country, 'ES');
        }
        assert.deepEqual(await log.eventsForPatient('dk:nobody'), []);
      });

      test('an entry newer than the latest checkpoint has no proof yet; a tree size beyond the log is proof-unavailable', async () => {
        const { seq } = await log.append(eventNo(9));
        assert.equal(await log.inclusionProofAgainstLatest(seq), undefined);
        await assert.rejects(log.inclusionProofFor(0, 999), (e: unknown) => isGatewayError(e) && e.code === 'audit.proof-unavailable');
        await assert.rejects(log.consistencyProof(5, 3), (e: unknown) => isGatewayError(e) && e.code === 'audit.proof-unavailable');
      });

      test('a second log instance (another replica) sees the first one\'s appends and proves consistency between checkpoints', async () => {
        const replica = new AuditLog(db, { ncpId: DK, signingKey: dkKey });
        const earlier = await log.latestCheckpoint();
        assert.ok(earlier);
        await replica.append(eventNo(10));
        const cp = await log.checkpoint();
        assert.equal(cp.treeSize, await replica.size());
        const proof = await replica.consistencyProof(earlier.treeSize, cp.treeSize);
        assert.ok(verifyConsistency(earlier.treeSize, cp.treeSize, earlier.rootHash, cp.rootHash, proof));
        assert.deepEqual(await verifyAuditLog(db, { signingKeys: dkKeys }), { ok: true, size: cp.treeSize, checkpoints: 2, witnesses: 0 });
      });

      test('UPDATE, DELETE and TRUNCATE on audit_log are refused by the trigger', async () => {
        await assert.rejects(db.query(`UPDATE audit_log SET patient_key = 'x' WHERE seq = 0`), /append-only/);
        await assert.rejects(db.query('DELETE FROM audit_log WHERE seq = 0'), /append-only/);
        await assert.rejects(db.query('TRUNCATE audit_log'), /append-only/);
        assert.equal((await verifyAuditLog(db, { signingKeys: dkKeys })).ok, true);
      });

      test('a checkpoint signed by a key that is not ours fails verification', async () => {
        const intruder = await signingKey('dk-audit-1');
        const result = await verifyAuditLog(db, { signingKeys: publicJwks([intruder]) });
        assert.equal(result.ok, false);
        assert.match(result.ok ? '' : result.problem, /^checkpoint at size \d+: signature does not verify/);
      });
    });

    describe('concurrency', () => {
      before(fresh);
      after(closeDb);

      test('50 concurrent appends yield the contiguous indices 0..49', async () => {
        const results = await Promise.all(Array.from({ length: 50 }, (_, i) => log.append(eventNo(i))));
        assert.deepEqual(
          results.map((r) => r.seq).sort((a, b) => a - b),
          Array.from({ length: 50 }, (_, i) => i),
        );
        assert.deepEqual(await verifyAuditLog(db, { signingKeys: dkKeys }), { ok: true, size: 50, checkpoints: 0, witnesses: 0 });
      });

      test('appendMany writes its events in order with consecutive indices', async () => {
        const results = await log.appendMany([{ event: eventNo(1) }, { event: eventNo(2), patientKey: 'dk:p' }]);
        assert.deepEqual(results.map((r) => r.seq), [50, 51]);
      });

      test('appends waiting together are written by fewer statements than appends (group commit)', async () => {
        let statements = 0;
        const counting: Db = {
          kind: db.kind,
          query: (sql, params) => {
            if (sql.startsWith('INSERT INTO audit_log')) statements += 1;
            return db.query(sql, params);
          },
          transaction: (fn) => db.transaction(fn),
          ping: () => db.ping(),
          close: () => Promise.resolve(),
        };
        const grouped = new AuditLog(counting, { ncpId: DK, signingKey: dkKey });
        const results = await Promise.all(Array.from({ length: 30 }, (_, i) => grouped.append(eventNo(300 + i))));
        assert.ok(statements >= 1 && statements < 30, `${statements} INSERT statements for 30 appends`);
        for (const [i, r] of results.entries()) {
          const { rows } = await db.query<{ event: { entity?: Array<{ what?: { reference?: string } }>; id?: string } }>('SELECT event FROM audit_log WHERE seq = $1', [r.seq]);
          assert.equal(rows[0]?.event.id, String(r.seq), 'the stored event carries its index');
          assert.ok(JSON.stringify(rows[0]?.event).includes(`"req-${300 + i}"`), 'each caller gets the index of its own event');
        }
      });

      test('an event the database cannot hold fails its own append only, not the others written with it', async () => {
        const start = await log.size();
        // jsonb refuses the NUL character; such text could come from a peer (a professional's name).
        const poisoned = { ...eventNo(501), extension: [{ url: 'urn:test', valueString: 'a\u0000b' }] };
        const results = await Promise.allSettled([log.append(eventNo(500)), log.append(poisoned), log.append(eventNo(502)), log.append(eventNo(503))]);
        assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
        const refused = results[1];
        assert.ok(refused?.status === 'rejected' && isGatewayError(refused.reason) && refused.reason.code === 'audit.unavailable');
        assert.equal(await log.size(), start + 3);
        assert.equal((await verifyAuditLog(db, { signingKeys: dkKeys })).ok, true);
      });

      test('two replicas appending at once race for the end of the log and still leave it contiguous', async () => {
        const replica = new AuditLog(db, { ncpId: DK, signingKey: dkKey });
        const start = await log.size();
        const results = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? log : replica).append(eventNo(400 + i))));
        assert.deepEqual(
          results.map((r) => r.seq).sort((a, b) => a - b),
          Array.from({ length: 40 }, (_, i) => start + i),
        );
        assert.deepEqual(await verifyAuditLog(db, { signingKeys: dkKeys }), { ok: true, size: start + 40, checkpoints: 0, witnesses: 0 });
      });
    });

    describe('tampering is detected and the entry named', () => {
      let checkpoint: Checkpoint;
      const setup = async (): Promise<void> => {
        await fresh();
        await appendN(log, 30);
        checkpoint = await log.checkpoint();
        await appendN(log, 5);
        assert.equal((await verifyAuditLog(db, { signingKeys: dkKeys })).ok, true);
      };

      test('an edited event', async () => {
        await setup();
        try {
          await tamper(db, `UPDATE audit_log SET event = jsonb_set(event, '{action}', '"D"') WHERE seq = 17`);
          assert.deepEqual(await verifyAuditLog(db, { signingKeys: dkKeys }), { ok: false, problem: 'entry 17: leaf hash does not match its event', seq: 17 });
        } finally {
          await closeDb();
        }
      });

      test('an edited event whose leaf hash was recomputed too is caught by the checkpoint', async () => {
        await setup();
        try {
          const { rows } = await db.query<{ event: Record<string, unknown> }>('SELECT event FROM audit_log WHERE seq = 17');
          const forged = { ...rows[0]!.event, outcome: '8' };
          await tamper(db, 'UPDATE audit_log SET event = $1::jsonb, leaf_hash = $2 WHERE seq = 17', [JSON.stringify(forged), leafHashOfJson(forged)]);
          const result = await verifyAuditLog(db, { signingKeys: dkKeys });
          assert.deepEqual(result, { ok: false, problem: `checkpoint at size ${checkpoint.treeSize}: root differs from the one recomputed from the entries` });
        } finally {
          await closeDb();
        }
      });

      test('a deleted row', async () => {
        await setup();
        try {
          await tamper(db, 'DELETE FROM audit_log WHERE seq = 12');
          assert.deepEqual(await verifyAuditLog(db, { signingKeys: dkKeys }), { ok: false, problem: 'entries missing after 11', seq: 12 });
        } finally {
          await closeDb();
        }
      });

      test("two rows' seq swapped", async () => {
        await setup();
        try {
          await tamper(db, 'UPDATE audit_log SET seq = 1000000 WHERE seq = 3');
          await tamper(db, 'UPDATE audit_log SET seq = 3 WHERE seq = 8');
          await tamper(db, 'UPDATE audit_log SET seq = 8 WHERE seq = 1000000');
          const result = await verifyAuditLog(db, { signingKeys: dkKeys });
          assert.deepEqual(result, { ok: false, problem: 'entry 3: event id "8" does not match its position (rows reordered?)', seq: 3 });
        } finally {
          await closeDb();
        }
      });

      test('the tail truncated after a checkpoint', async () => {
        await setup();
        try {
          await tamper(db, 'DELETE FROM audit_log WHERE seq >= 27');
          const result = await verifyAuditLog(db, { signingKeys: dkKeys });
          assert.deepEqual(result, { ok: false, problem: 'checkpoint at size 30: the log has only 27 entries (entries after 26 were removed)', seq: 27 });
        } finally {
          await closeDb();
        }
      });

      test('a checkpoint row whose stored root was changed', async () => {
        await setup();
        try {
          await assert.rejects(db.query('DELETE FROM audit_checkpoints'), /append-only/);
          await tamper(db, `UPDATE audit_checkpoints SET root_hash = decode(repeat('00', 32), 'hex') WHERE tree_size = 30`, [], 'audit_checkpoints');
          const result = await verifyAuditLog(db, { signingKeys: dkKeys });
          assert.deepEqual(result, { ok: false, problem: 'checkpoint at size 30: stored size or root differs from the signed checkpoint' });
        } finally {
          await closeDb();
        }
      });
    });

    describe('witnessing a peer (rollback and rewrite detection)', () => {
      let peerDb: Db;
      let forkDb: Db;
      let peer: AuditLog;
      let fork: AuditLog;
      let cp8: Checkpoint;
      let cp10: Checkpoint;
      before(async () => {
        await fresh();
        peerDb = await openTestDb({ adapter });
        forkDb = await openTestDb({ adapter });
        peer = new AuditLog(peerDb, { ncpId: ES, signingKey: esKey });
        // The same peer after restoring an older backup and writing a different history from entry 6.
        fork = new AuditLog(forkDb, { ncpId: ES, signingKey: esKey });
        await appendN(peer, 8);
        cp8 = await peer.checkpoint();
        await appendN(peer, 2);
        cp10 = await peer.checkpoint();
        await appendN(fork, 6);
        for (let i = 0; i < 6; i++) await fork.append(eventNo(100 + i, 'Patient/someone-else'));
      });
      after(async () => {
        await Promise.all([db.close(), peerDb.close(), forkDb.close()]);
      });

      test('a first checkpoint is stored as the baseline', async () => {
        const w = await log.recordWitness('ES', { checkpointJws: cp10.jws }, esKeys, { expectedNcpId: ES });
        assert.deepEqual([w.treeSize, w.stored], [10, true]);
        assert.equal(await count(db, 'audit_witness'), 1);
      });

      test('the same checkpoint again is accepted and stores nothing', async () => {
        const w = await log.recordWitness('ES', { checkpointJws: cp10.jws }, esKeys);
        assert.equal(w.stored, false);
        assert.equal(await count(db, 'audit_witness'), 1);
      });

      test('a smaller tree (size 8 after 10) is refused as a rollback and nothing is stored', async () => {
        await assert.rejects(log.recordWitness('ES', { checkpointJws: cp8.jws }, esKeys), (e: unknown) => e instanceof WitnessRefusedError && e.reason === 'rollback' && /rollback/.test(e.message));
        assert.equal(await count(db, 'audit_witness'), 1);
      });

      test('a larger tree (size 12) whose root is inconsistent with size 10 is refused as a rewrite', async () => {
        const forged = await fork.checkpoint();
        assert.equal(forged.treeSize, 12);
        const proof = b64(await fork.consistencyProof(10, 12));
        await assert.rejects(
          log.recordWitness('ES', { checkpointJws: forged.jws, consistencyProof: proof, fromSize: 10 }, esKeys),
          (e: unknown) => e instanceof WitnessRefusedError && e.reason === 'proof-invalid' && e.code === 'peer.bad-response',
        );
        assert.equal(await count(db, 'audit_witness'), 1);
      });

      test('a larger tree without a consistency proof, or with one from another size, is refused', async () => {
        await appendN(peer, 2);
        const cp12 = await peer.checkpoint();
        await assert.rejects(log.recordWitness('ES', { checkpointJws: cp12.jws }, esKeys), (e: unknown) => e instanceof WitnessRefusedError && e.reason === 'proof-missing');
        const from8 = b64(await peer.consistencyProof(8, 12));
        await assert.rejects(
          log.recordWitness('ES', { checkpointJws: cp12.jws, consistencyProof: from8, fromSize: 8 }, esKeys),
          (e: unknown) => e instanceof WitnessRefusedError && e.reason === 'proof-missing',
        );
        assert.equal(await count(db, 'audit_witness'), 1);
      });

      test('a different root for an already witnessed size is refused as a fork', async () => {
        const forkOnly10 = await openTestDb({ adapter });
        try {
          const other = new AuditLog(forkOnly10, { ncpId: ES, signingKey: esKey });
          for (let i = 0; i < 10; i++) await other.append(eventNo(200 + i));
          const cp = await other.checkpoint();
          await assert.rejects(log.recordWitness('ES', { checkpointJws: cp.jws }, esKeys), (e: unknown) => e instanceof WitnessRefusedError && e.reason === 'fork');
        } finally {
          await forkOnly10.close();
        }
      });

      test('a checkpoint signed by an impostor, or of another type, is refused before any comparison', async () => {
        const impostorDb = await openTestDb({ adapter });
        const impostor = new AuditLog(impostorDb, { ncpId: ES, signingKey: otherKey });
        const forged = await impostor.checkpoint().finally(() => impostorDb.close());
        await assert.rejects(log.recordWitness('ES', { checkpointJws: forged.jws }, esKeys), (e: unknown) => e instanceof GatewayError && e.code === 'envelope.signature-invalid');
        await assert.rejects(log.recordWitness('ES', { checkpointJws: cp10.jws }, esKeys, { expectedNcpId: DK }), (e: unknown) => e instanceof WitnessRefusedError && e.reason === 'wrong-issuer');
      });

      test('the genuine next checkpoint with its consistency proof is accepted, and audit verify re-checks the chain', async () => {
        const latest = await peer.latestCheckpoint();
        assert.ok(latest && latest.treeSize > 10);
        const proof = b64(await peer.consistencyProof(10, latest.treeSize));
        const w = await log.recordWitness('ES', { checkpointJws: latest.jws, consistencyProof: proof, fromSize: 10 }, esKeys);
        assert.equal(w.stored, true);
        assert.deepEqual(await verifyAuditLog(db, { signingKeys: dkKeys, peerKeys: { ES: esKeys } }), { ok: true, size: 0, checkpoints: 0, witnesses: 2 });

        // A witness record whose stored proof was altered breaks the chain for `audit verify`.
        await tamper(
          db,
          `UPDATE audit_witness SET consistency_proof = decode(repeat('00', 32), 'hex') || substring(consistency_proof from 33) WHERE tree_size = $1`,
          [latest.treeSize],
          'audit_witness',
        );
        const result = await verifyAuditLog(db, { signingKeys: dkKeys });
        assert.deepEqual(result, { ok: false, problem: `witness of ES at size ${latest.treeSize}: not consistent with the witnessed size 10` });
      });

      test('a proof from an older witnessed size (answers racing each other) is checked, not stored; a fork there is refused', async () => {
        const before = await count(db, 'audit_witness');
        await appendN(peer, 3);
        const newer = await peer.checkpoint();
        const from10 = { checkpointJws: newer.jws, consistencyProof: b64(await peer.consistencyProof(10, newer.treeSize)), fromSize: 10 };
        const w = await log.recordWitness('ES', { ...from10, askedFrom: 10 }, esKeys);
        assert.equal(w.stored, false);
        assert.equal(await count(db, 'audit_witness'), before);
        // The peer never chooses where consistency is proven from: a proof from another size than asked is refused.
        await assert.rejects(
          log.recordWitness('ES', { ...from10, askedFrom: (await log.lastWitnessedSize('ES')) ?? -1 }, esKeys),
          (e: unknown) => e instanceof WitnessRefusedError && e.reason === 'proof-missing',
        );
        // ... and the next request asks from the newest witnessed size.
        assert.ok(((await log.lastWitnessedSize('ES')) ?? 0) > 10);

        await appendN(fork, newer.treeSize - 12 + 1);
        const forked = await fork.checkpoint();
        assert.ok(forked.treeSize > newer.treeSize);
        await assert.rejects(
          log.recordWitness('ES', { checkpointJws: forked.jws, consistencyProof: b64(await fork.consistencyProof(10, forked.treeSize)), fromSize: 10, askedFrom: 10 }, esKeys),
          (e: unknown) => e instanceof WitnessRefusedError && e.reason === 'proof-invalid',
        );
        assert.equal(await count(db, 'audit_witness'), before);
      });

      test('a checkpoint another replica has already superseded is a rollback; an identical one needs a still trusted key', async () => {
        const fresh = new AuditLog(db, { ncpId: DK, signingKey: dkKey, witnessCacheMs: 0 });
        await assert.rejects(fresh.recordWitness('ES', { checkpointJws: cp10.jws }, esKeys), (e: unknown) => e instanceof WitnessRefusedError && e.reason === 'rollback');
        const { rows } = await db.query<{ jws: string }>("SELECT jws FROM audit_witness WHERE peer_country = 'ES' ORDER BY tree_size DESC LIMIT 1");
        const newest = rows[0]?.jws;
        assert.ok(newest);
        const cached = new AuditLog(db, { ncpId: DK, signingKey: dkKey });
        const w = await cached.recordWitness('ES', { checkpointJws: newest }, esKeys);
        assert.equal(w.stored, false);
        // The same bytes again would be a no-op, but not once the peer's key left the trust list.
        await assert.rejects(cached.recordWitness('ES', { checkpointJws: newest }, { keys: [] }), (e: unknown) => isGatewayError(e) && e.code === 'envelope.unknown-key');

        // Replica A remembers that newest witness; replica B then witnesses a newer one. Once A's
        // memory is older than its limit, the same old checkpoint is a rollback for A too.
        const replicaA = new AuditLog(db, { ncpId: DK, signingKey: dkKey, witnessCacheMs: 50 });
        assert.equal((await replicaA.recordWitness('ES', { checkpointJws: newest }, esKeys)).stored, false);
        const witnessedSize = (await replicaA.lastWitnessedSize('ES')) ?? 0;
        await appendN(peer, 2);
        const next = await peer.checkpoint();
        const proof = b64(await peer.consistencyProof(witnessedSize, next.treeSize));
        assert.equal((await cached.recordWitness('ES', { checkpointJws: next.jws, consistencyProof: proof, fromSize: witnessedSize, askedFrom: witnessedSize }, esKeys)).stored, true);
        await sleep(80);
        await assert.rejects(replicaA.recordWitness('ES', { checkpointJws: newest }, esKeys), (e: unknown) => e instanceof WitnessRefusedError && e.reason === 'rollback');
        assert.equal(await replicaA.lastWitnessedSize('ES'), next.treeSize);
      });
    });

    describe('fail closed and scheduling', () => {
      before(fresh);
      after(closeDb);

      test('when the audit store is unavailable, append throws audit.unavailable', async () => {
        const broken: Db = {
          kind: 'pg',
          query: () => Promise.reject(new Error('connection refused')),
          transaction: () => Promise.reject(new Error('connection refused')),
          ping: () => Promise.resolve(),
          close: () => Promise.resolve(),
        };
        const unavailable = new AuditLog(broken, { ncpId: DK });
        await assert.rejects(unavailable.append(eventNo(0)), (e: unknown) => isGatewayError(e) && e.code === 'audit.unavailable');
      });

      test('the scheduler checkpoints after N entries and after T ms', async () => {
        const stopByCount = log.startCheckpointing({ everyEntries: 3, everyMs: 60_000 });
        try {
          await appendN(log, 3);
          for (let i = 0; i < 100 && (await log.latestCheckpoint())?.treeSize !== 3; i++) await sleep(20);
          assert.equal((await log.latestCheckpoint())?.treeSize, 3);
        } finally {
          stopByCount.stop();
        }
        const stopByTime = log.startCheckpointing({ everyEntries: 1000, everyMs: 30 });
        try {
          await log.append(eventNo(3));
          for (let i = 0; i < 100 && (await log.latestCheckpoint())?.treeSize !== 4; i++) await sleep(20);
          assert.equal((await log.latestCheckpoint())?.treeSize, 4);
        } finally {
          stopByTime.stop();
        }
        assert.deepEqual(await verifyAuditLog(db, { signingKeys: dkKeys }), { ok: true, size: 4, checkpoints: 2, witnesses: 0 });
      });
    });
  });
}
