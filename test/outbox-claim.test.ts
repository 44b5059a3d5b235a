// The outbox's claim: the oldest undelivered submission per patient, due and not leased, never one
// row twice, on both storage adapters.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Db } from '../src/storage/db.js';
import { generateDataKeyFile, loadDataKeys, type DataKeys } from '../src/outbox/data-keys.js';
import { OutboxWorker, SubmissionStore, type Lease } from '../src/outbox/outbox.js';
import { openTestDb, testAdapters } from './helpers/db.js';

const LEASE = 60;

for (const adapter of testAdapters()) {
  describe(`outbox claim (${adapter})`, () => {
    let dir: string;
    let keys: DataKeys;
    let db: Db;
    let store: SubmissionStore;
    let n = 0;

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'ncpeh-claim-'));
      await generateDataKeyFile(join(dir, 'data.key'));
      keys = await loadDataKeys([{ id: 'k1', file: join(dir, 'data.key') }]);
    });
    after(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    async function fresh(): Promise<void> {
      await db?.close();
      db = await openTestDb({ adapter });
      store = new SubmissionStore(db, keys);
    }

    /** A queued submission for `patient` whose submission time is `minute` minutes into the hour. */
    async function submit(patient: string, minute: number, country = 'DK'): Promise<string> {
      n += 1;
      const { view } = await store.submit({
        clientId: 'ehr',
        idempotencyKey: `key-${n}`,
        bodyHash: `hash-${n}`,
        country,
        patientRef: patient,
        hcpSubject: 'hcp',
        hcpToken: 'token',
        bundle: { resourceType: 'Bundle', type: 'collection' },
      });
      await db.query(`UPDATE submissions SET submitted_at = '2026-11-24T10:00:00Z'::timestamptz + make_interval(mins => $2) WHERE tracking_id = $1`, [view.trackingId, minute]);
      return view.trackingId;
    }

    /** The lease of a row's first claim (each claim counts one attempt). */
    const held = (trackingId: string, attempts = 1): Lease => ({ trackingId, attempts });

    async function claimIds(limit = 10, skip: string[] = []): Promise<string[]> {
      return (await store.claim(limit, LEASE, skip)).map((r) => r.tracking_id).sort();
    }

    after(async () => {
      await db?.close();
    });

    test('only the oldest undelivered submission of each patient is claimed, and then leased', async () => {
      await fresh();
      const a1 = await submit('A', 1);
      const a2 = await submit('A', 2);
      const a3 = await submit('A', 3);
      const b1 = await submit('B', 5);
      const es1 = await submit('A', 0, 'ES');
      // The same patient reference in another country is another patient.
      assert.deepEqual(await claimIds(), [a1, b1, es1].sort());
      assert.deepEqual(await claimIds(), [], 'leased rows are not claimed again');

      assert.equal(await store.markDelivered(held(a1), 'receipt'), true);
      assert.deepEqual(await claimIds(), [a2]);
      assert.equal(await store.markDelivered(held(a2), 'receipt'), true);
      assert.deepEqual(await claimIds(), [a3]);
    });

    test('a head waiting for its retry holds back the patient; a dead letter does not', async () => {
      await fresh();
      const a1 = await submit('A', 1);
      const a2 = await submit('A', 2);
      const b1 = await submit('B', 3);
      assert.deepEqual(await claimIds(), [a1, b1].sort());
      assert.equal(await store.markRetry(held(a1), 3600, 'peer down'), true);
      assert.equal(await store.markDelivered(held(b1), 'receipt'), true);
      assert.deepEqual(await claimIds(), [], 'a2 must wait for a1');
      await db.query('UPDATE submissions SET next_attempt_at = now() WHERE tracking_id = $1', [a1]);
      assert.deepEqual(await claimIds(), [a1], 'due again');
      assert.equal(await store.markFailed(held(a1, 2), 'refused'), true);
      assert.deepEqual(await claimIds(), [a2]);
    });

    test('an expired lease is claimed again; skipped countries and the limit are respected', async () => {
      await fresh();
      const a1 = await submit('A', 1);
      const b1 = await submit('B', 2);
      const c1 = await submit('C', 3);
      const es = await submit('A', 4, 'ES');
      assert.deepEqual(await claimIds(2, ['ES']), [a1, b1].sort(), 'oldest first, at most the limit');
      assert.deepEqual(await claimIds(10, ['ES']), [c1]);
      await db.query(`UPDATE submissions SET lease_until = now() - interval '1 second' WHERE tracking_id = $1`, [a1]);
      const again = await store.claim(10, LEASE, ['ES']);
      assert.deepEqual(
        again.map((r) => [r.tracking_id, Number(r.attempts)]),
        [[a1, 2]],
      );
      assert.deepEqual(await claimIds(), [es]);
    });

    test('an attempt that outlived its lease changes nothing once another attempt holds the row', async () => {
      await fresh();
      const a1 = await submit('A', 1);
      const a2 = await submit('A', 2);
      assert.deepEqual(await claimIds(), [a1]);
      // The first attempt stalls past its lease; a second claims the row again (attempt 2).
      await db.query(`UPDATE submissions SET lease_until = now() - interval '1 second' WHERE tracking_id = $1`, [a1]);
      assert.deepEqual(await claimIds(), [a1]);
      for (const late of [() => store.markRetry(held(a1), 1, 'late'), () => store.markFailed(held(a1), 'late'), () => store.markDelivered(held(a1), 'late')]) {
        assert.equal(await late(), false, 'the stalled attempt no longer holds the row');
      }
      const row = (await db.query<{ status: string; attempts: number }>('SELECT status, attempts FROM submissions WHERE tracking_id = $1', [a1])).rows[0];
      assert.deepEqual({ status: row?.status, attempts: Number(row?.attempts) }, { status: 'delivering', attempts: 2 });
      assert.deepEqual(await claimIds(), [], 'a2 still waits behind the held a1');
      assert.equal(await store.markDelivered(held(a1, 2), 'receipt'), true);
      // Late outcomes of either attempt cannot reopen a delivered row.
      assert.equal(await store.markRetry(held(a1, 2), 1, 'late'), false);
      assert.equal(await store.markFailed(held(a1, 1), 'late'), false);
      assert.deepEqual(await claimIds(), [a2]);
    });

    test('concurrent claims never hand out one row twice, nor two rows of one patient', async () => {
      await fresh();
      const patients = ['P1', 'P2', 'P3', 'P4', 'P5'];
      const order = new Map<string, string[]>();
      for (let minute = 0; minute < 40; minute++) {
        const patient = patients[minute % patients.length] ?? 'P1';
        const id = await submit(patient, minute);
        order.set(patient, [...(order.get(patient) ?? []), id]);
      }
      const delivered = new Map<string, string[]>();
      const patientOf = new Map([...order].flatMap(([p, ids]) => ids.map((id) => [id, p] as const)));
      for (let round = 0; round < 40 && [...delivered.values()].flat().length < 40; round++) {
        const batches = await Promise.all([store.claim(3, LEASE, []), store.claim(3, LEASE, []), store.claim(3, LEASE, [])]);
        const ids = batches.flat().map((r) => r.tracking_id);
        assert.equal(new Set(ids).size, ids.length, 'a row was claimed twice');
        const perPatient = ids.map((id) => patientOf.get(id));
        assert.equal(new Set(perPatient).size, perPatient.length, 'two rows of one patient were out at once');
        for (const id of ids) {
          const patient = patientOf.get(id) ?? '';
          delivered.set(patient, [...(delivered.get(patient) ?? []), id]);
          assert.equal(await store.markDelivered(held(id), 'receipt'), true);
        }
      }
      assert.deepEqual(Object.fromEntries(delivered), Object.fromEntries(order), 'every patient in submission order');
    });

    test('the worker runs one pass at a time, however often it is kicked', async () => {
      await fresh();
      // The real store and claim statement, with the count of claims under way added, and kicks at
      // the two places a second pass could start: while a pass runs (so the worker goes again at
      // once), and after it ended but before that next pass began.
      let inFlight = 0;
      let maxInFlight = 0;
      let passes = 0;
      const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };
      const worker = new OutboxWorker({
        store,
        peers: { call: () => Promise.reject(new Error('no submission is queued in this test')) },
        log: silent,
        pollMs: 60_000,
      });
      const claim = store.claim.bind(store);
      store.claim = async (...args: Parameters<SubmissionStore['claim']>) => {
        inFlight += 1;
        passes += 1;
        maxInFlight = Math.max(maxInFlight, inFlight);
        try {
          // A statement takes a turn of the event loop at least (PGlite can answer within one).
          await new Promise((r) => setImmediate(r));
          const rows = await claim(...args);
          worker.kick();
          return rows;
        } finally {
          inFlight -= 1;
          if (passes < 50) setImmediate(() => worker.kick());
        }
      };
      worker.start();
      try {
        for (let i = 0; i < 200; i++) {
          worker.kick();
          await new Promise((r) => (i % 2 === 0 ? setImmediate(r) : setTimeout(r, 0)));
        }
      } finally {
        await worker.stop();
      }
      assert.equal(maxInFlight, 1, 'two passes ran at once');
      assert.ok(passes > 1, `the kicks started passes (${passes})`);
      const after = passes;
      await new Promise((r) => setImmediate(r));
      assert.equal(passes, after, 'no pass starts after stop()');
    });
  });
}
