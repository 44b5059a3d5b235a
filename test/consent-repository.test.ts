import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decide } from '../src/consent/decision.js';
import { CONSENT_POLICY_URI, toFhirConsent, validateConsentInput, type ConsentTerms } from '../src/consent/model.js';
import { ConsentRepository, isConsentId, newConsentId, patientKeyOf } from '../src/consent/repository.js';
import { isGatewayError } from '../src/http/errors.js';
import type { Db } from '../src/storage/db.js';
import { openTestDb, testAdapters } from './helpers/db.js';

const CPR = 'urn:oid:1.2.208.176.1.2';
const KENNETH = { system: CPR, value: '0201609995' };
const OTHER = { system: CPR, value: '2311143995' };
const NOW = new Date('2025-06-01T10:00:00Z');
const KNOWN = { knownCountries: ['DK', 'ES', 'FR'], now: NOW };

function terms(over: Record<string, unknown> = {}): ConsentTerms {
  return validateConsentInput(
    {
      countries: ['ES'],
      roles: ['221'],
      purposes: ['TREAT'],
      sections: ['11450-4', '48765-2'],
      period: { start: '2025-06-01', end: '2025-12-31' },
      ...over,
    },
    KNOWN,
  );
}

async function store(repo: ConsentRepository, patient: { system: string; value: string }, t: ConsentTerms) {
  const fhir = toFhirConsent(t, {
    id: newConsentId(),
    patient,
    grantedAt: NOW,
    organizationName: 'NCPeH Denmark',
    policyUri: 'https://ncp.example.dk/policies/cross-border-consent/v1',
  });
  return repo.create(patientKeyOf(patient), t, fhir);
}

async function withRepo(adapter: Db['kind'], fn: (repo: ConsentRepository, db: Db) => Promise<void>): Promise<void> {
  const db = await openTestDb({ adapter });
  try {
    await fn(new ConsentRepository(db), db);
  } finally {
    await db.close();
  }
}

function isNotFound(e: unknown): boolean {
  return isGatewayError(e) && e.code === 'consent.not-found' && e.status === 404;
}

for (const adapter of testAdapters()) {
  describe(`consent repository on ${adapter}`, () => {
    test("grant: a citizen's terms become a stored Consent presented by our NCP under our policy", async () => {
      await withRepo(adapter, async (repo) => {
        const t = terms();
        const granted = await repo.grant({ patientKey: patientKeyOf(KENNETH), patient: KENNETH, name: 'Kenneth Andersen' }, t, { grantedAt: NOW, ourCountry: 'DK' });
        assert.ok(isConsentId(granted.id));
        assert.equal(granted.patientKey, patientKeyOf(KENNETH));
        assert.deepEqual(granted.sections, ['11450-4', '48765-2']);
        assert.deepEqual(granted.resource.organization, [{ display: 'National Contact Point for eHealth DK' }]);
        assert.equal(granted.resource.policy?.[0]?.uri, CONSENT_POLICY_URI);
        assert.deepEqual(granted.resource.patient.identifier, KENNETH);
        assert.deepEqual(await repo.listForPatient(patientKeyOf(KENNETH)), [granted]);
      });
    });

    test('create, list and revoke round trip: indexed terms and the FHIR resource agree', async () => {
      await withRepo(adapter, async (repo) => {
        const t = terms();
        const created = await store(repo, KENNETH, t);
        assert.equal(created.patientKey, `${CPR}|0201609995`);
        assert.equal(created.kind, 'permit');
        assert.equal(created.status, 'active');
        assert.deepEqual(created.countries, ['ES']);
        assert.deepEqual(created.roles, ['221']);
        assert.deepEqual(created.purposes, ['TREAT']);
        assert.deepEqual(created.sections, ['11450-4', '48765-2']);
        assert.deepEqual(created.periodStart, new Date('2025-06-01T00:00:00Z'));
        assert.deepEqual(created.periodEnd, new Date('2026-01-01T00:00:00Z'));
        assert.equal(created.revokedAt, null);
        assert.ok(created.createdAt instanceof Date);
        assert.equal(created.resource.id, created.id);
        assert.equal(created.resource.status, 'active');

        const listed = await repo.listForPatient(patientKeyOf(KENNETH));
        assert.deepEqual(listed, [created]);

        const at = new Date('2025-06-02T08:00:00Z');
        const revoked = await repo.revoke(patientKeyOf(KENNETH), created.id, at);
        assert.equal(revoked.status, 'revoked');
        assert.deepEqual(revoked.revokedAt, at);
        assert.equal(revoked.resource.status, 'inactive');
        assert.deepEqual((await repo.listForPatient(patientKeyOf(KENNETH))).map((c) => [c.id, c.status, c.resource.status]), [
          [created.id, 'revoked', 'inactive'],
        ]);
      });
    });

    test('lists a patient\'s consents newest first, and only his', async () => {
      await withRepo(adapter, async (repo) => {
        const first = await store(repo, KENNETH, terms());
        const second = await store(repo, KENNETH, terms({ countries: ['FR'] }));
        await store(repo, OTHER, terms());
        const listed = await repo.listForPatient(patientKeyOf(KENNETH));
        assert.deepEqual(listed.map((c) => c.id), [second.id, first.id]);
        assert.deepEqual(await repo.listForPatient(`${CPR}|0000000000`), []);
      });
    });

    test('stores an opt-out with empty scope lists and a deny provision', async () => {
      await withRepo(adapter, async (repo) => {
        const c = await store(repo, KENNETH, terms({ kind: 'opt-out', countries: undefined, roles: undefined, purposes: undefined, sections: undefined, period: { start: '2025-06-01' } }));
        assert.equal(c.kind, 'opt-out');
        assert.deepEqual([c.countries, c.roles, c.purposes, c.sections], [[], [], [], []]);
        assert.equal(c.periodEnd, null);
        assert.equal(c.resource.provision.type, 'deny');
      });
    });

    test('revoking another patient\'s consent answers consent.not-found and changes nothing', async () => {
      await withRepo(adapter, async (repo) => {
        const theirs = await store(repo, OTHER, terms());
        await assert.rejects(repo.revoke(patientKeyOf(KENNETH), theirs.id, NOW), isNotFound);
        const [still] = await repo.listForPatient(patientKeyOf(OTHER));
        assert.equal(still?.status, 'active');
        assert.equal(still?.resource.status, 'active');
      });
    });

    test('revoking an unknown id or a non-UUID id answers consent.not-found', async () => {
      await withRepo(adapter, async (repo) => {
        await assert.rejects(repo.revoke(patientKeyOf(KENNETH), newConsentId(), NOW), isNotFound);
        await assert.rejects(repo.revoke(patientKeyOf(KENNETH), 'not-a-uuid', NOW), isNotFound);
        await assert.rejects(repo.revoke(patientKeyOf(KENNETH), "1' OR '1'='1", NOW), isNotFound);
      });
    });

    test('revoking twice is idempotent and keeps the first revoked_at', async () => {
      await withRepo(adapter, async (repo) => {
        const c = await store(repo, KENNETH, terms());
        const firstAt = new Date('2025-06-02T08:00:00Z');
        const once = await repo.revoke(patientKeyOf(KENNETH), c.id, firstAt);
        const twice = await repo.revoke(patientKeyOf(KENNETH), c.id.toUpperCase(), new Date('2025-06-03T08:00:00Z'));
        assert.deepEqual(twice, once);
        assert.deepEqual(twice.revokedAt, firstAt);
      });
    });

    test('a revoked consent is not in activeForPatient, so the next decision denies', async () => {
      await withRepo(adapter, async (repo) => {
        const kept = await store(repo, KENNETH, terms({ sections: ['48765-2'] }));
        const revoked = await store(repo, KENNETH, terms({ sections: ['11450-4'] }));
        const request = { country: 'ES', role: '221', purpose: 'TREAT', at: new Date('2025-06-10T00:00:00Z') } as const;

        const before = decide(await repo.activeForPatient(patientKeyOf(KENNETH)), { breakGlass: 'forbidden' }, request);
        assert.deepEqual(before, { permit: true, sections: ['11450-4', '48765-2'], basis: 'consent', consentIds: [kept.id, revoked.id].sort() });

        await repo.revoke(patientKeyOf(KENNETH), revoked.id, NOW);
        const active = await repo.activeForPatient(patientKeyOf(KENNETH));
        assert.deepEqual(active.map((c) => c.id), [kept.id]);
        const after = decide(active, { breakGlass: 'forbidden' }, { ...request, sections: ['11450-4'] });
        assert.deepEqual(after, { permit: false, reason: 'sections' });

        await repo.revoke(patientKeyOf(KENNETH), kept.id, NOW);
        assert.deepEqual(await repo.activeForPatient(patientKeyOf(KENNETH)), []);
        assert.deepEqual(decide([], { breakGlass: 'forbidden' }, request), { permit: false, reason: 'no-consent' });
      });
    });

    test('activeRecordsForPatient: the rows of activeForPatient, in its order, as a decision reads them, and no other patient\'s', async () => {
      await withRepo(adapter, async (repo) => {
        await store(repo, KENNETH, terms({ sections: ['48765-2'] }));
        const revoked = await store(repo, KENNETH, terms({ sections: ['11450-4'], countries: ['FR'] }));
        await store(repo, KENNETH, terms({ kind: 'opt-out', countries: [], roles: [], purposes: [], sections: [], period: { start: '2025-06-01' } }));
        await store(repo, OTHER, terms());
        await repo.revoke(patientKeyOf(KENNETH), revoked.id, NOW);

        const full = await repo.activeForPatient(patientKeyOf(KENNETH));
        const records = await repo.activeRecordsForPatient(patientKeyOf(KENNETH));
        assert.equal(records.length, 2);
        assert.deepEqual(
          records,
          full.map((c) => ({
            id: c.id,
            kind: c.kind,
            status: c.status,
            countries: c.countries,
            roles: c.roles,
            purposes: c.purposes,
            sections: c.sections,
            periodStart: c.periodStart,
            periodEnd: c.periodEnd,
          })),
        );
        const request = { country: 'ES', role: '221', purpose: 'TREAT', at: new Date('2025-06-10T00:00:00Z') } as const;
        assert.deepEqual(decide(records, { breakGlass: 'forbidden' }, request), decide(full, { breakGlass: 'forbidden' }, request));
        assert.deepEqual(await repo.activeRecordsForPatient(patientKeyOf({ system: CPR, value: '0000000000' })), []);
      });
    });

    test('activeForPatient keeps expired consents so the decision can say not-in-period', async () => {
      await withRepo(adapter, async (repo) => {
        await store(repo, KENNETH, terms());
        const active = await repo.activeForPatient(patientKeyOf(KENNETH));
        const later = { country: 'ES', role: '221', purpose: 'TREAT', at: new Date('2026-01-01T00:00:00Z') } as const;
        assert.deepEqual(decide(active, { breakGlass: 'forbidden' }, later), { permit: false, reason: 'not-in-period' });
      });
    });

    test('refuses to store a resource about another patient than the key names', async () => {
      await withRepo(adapter, async (repo) => {
        const t = terms();
        const fhir = toFhirConsent(t, { id: newConsentId(), patient: OTHER, grantedAt: NOW, organizationName: 'NCPeH Denmark', policyUri: 'https://x.example/p' });
        await assert.rejects(repo.create(patientKeyOf(KENNETH), t, fhir), /another patient/);
        assert.deepEqual(await repo.listForPatient(patientKeyOf(KENNETH)), []);
      });
    });
  });
}
