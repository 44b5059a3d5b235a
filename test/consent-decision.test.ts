import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decide, permitsDiscovery, type ConsentPolicy, type ConsentRecord, type Decision, type DecisionRequest, type DenyReason } from '../src/consent/decision.js';
import {
  ConsentInputSchema,
  FhirConsentSchema,
  IPS_SECTION_CODES,
  IPS_SECTIONS,
  ISCO_ROLE_CODES,
  toFhirConsent,
  validateConsentInput,
  type ConsentTerms,
} from '../src/consent/model.js';
import { isGatewayError } from '../src/http/errors.js';

const PROBLEMS = '11450-4';
const ALLERGIES = '48765-2';
const MEDICATIONS = '10160-0';
const IMMUNIZATIONS = '11369-6';
const RESULTS = '30954-2';

const PHYSICIAN = '221';
const NURSE = '2221';
const DENTIST = '2261';

const AT = new Date('2025-06-15T12:00:00Z');
const ALLOWED: ConsentPolicy = { breakGlass: 'allowed' };
const FORBIDDEN: ConsentPolicy = { breakGlass: 'forbidden' };

function permit(over: Partial<ConsentRecord> = {}): ConsentRecord {
  return {
    id: 'c-permit',
    kind: 'permit',
    status: 'active',
    countries: ['ES'],
    roles: [PHYSICIAN],
    purposes: ['TREAT'],
    sections: [PROBLEMS, ALLERGIES, MEDICATIONS],
    periodStart: new Date('2025-01-01T00:00:00Z'),
    periodEnd: new Date('2026-01-01T00:00:00Z'),
    ...over,
  };
}

function optOut(over: Partial<ConsentRecord> = {}): ConsentRecord {
  return permit({ id: 'c-opt-out', kind: 'opt-out', countries: [], roles: [], purposes: [], sections: [], ...over });
}

function request(over: Partial<DecisionRequest> = {}): DecisionRequest {
  return { country: 'ES', role: PHYSICIAN, purpose: 'TREAT', at: AT, ...over };
}

function denied(reason: DenyReason): Decision {
  return { permit: false, reason };
}

describe('consent decision', () => {
  test('permits exactly the consented sections that were asked for', () => {
    const d = decide([permit()], FORBIDDEN, request({ sections: [RESULTS, MEDICATIONS, PROBLEMS] }));
    assert.deepEqual(d, { permit: true, sections: [MEDICATIONS, PROBLEMS], basis: 'consent', consentIds: ['c-permit'] });
  });

  test('permits every consented section, sorted, when no sections are named', () => {
    const d = decide([permit()], FORBIDDEN, request());
    assert.deepEqual(d, { permit: true, sections: [MEDICATIONS, PROBLEMS, ALLERGIES].sort(), basis: 'consent', consentIds: ['c-permit'] });
  });

  test('denies no-consent when the patient has no consent at all', () => {
    assert.deepEqual(decide([], FORBIDDEN, request()), denied('no-consent'));
  });

  test('denies not-in-period after the consent expired', () => {
    const expired = permit({ periodStart: new Date('2024-01-01T00:00:00Z'), periodEnd: new Date('2025-01-01T00:00:00Z') });
    assert.deepEqual(decide([expired], FORBIDDEN, request()), denied('not-in-period'));
  });

  test('denies not-in-period before the consent starts', () => {
    const future = permit({ periodStart: new Date('2025-07-01T00:00:00Z'), periodEnd: null });
    assert.deepEqual(decide([future], FORBIDDEN, request()), denied('not-in-period'));
  });

  test('ignores a revoked consent (denies no-consent)', () => {
    assert.deepEqual(decide([permit({ status: 'revoked' })], FORBIDDEN, request()), denied('no-consent'));
  });

  test('denies country when the consent is for professionals of another country', () => {
    assert.deepEqual(decide([permit({ countries: ['FR'] })], FORBIDDEN, request()), denied('country'));
  });

  test('denies role to a dentist (2261) when only physicians (221) are allowed', () => {
    assert.deepEqual(decide([permit()], FORBIDDEN, request({ role: DENTIST })), denied('role'));
  });

  test('denies purpose when the purpose of use was not consented', () => {
    assert.deepEqual(decide([permit({ purposes: ['ETREAT'] })], FORBIDDEN, request({ purpose: 'TREAT' })), denied('purpose'));
  });

  test('denies sections when a matching consent covers none of the wanted sections', () => {
    assert.deepEqual(decide([permit()], FORBIDDEN, request({ sections: [IMMUNIZATIONS] })), denied('sections'));
  });

  test('denies sections when the request wants no section at all', () => {
    assert.deepEqual(decide([permit()], ALLOWED, request({ sections: [] })), denied('sections'));
  });

  test('reports the most specific reason: an in-period consent for the country but not the role beats an expired one', () => {
    const expired = permit({ id: 'old', periodStart: new Date('2020-01-01T00:00:00Z'), periodEnd: new Date('2021-01-01T00:00:00Z') });
    const nurses = permit({ id: 'nurses', roles: [NURSE] });
    assert.deepEqual(decide([expired, nurses], FORBIDDEN, request()), denied('role'));
  });

  test('takes the union of the sections of two matching permits', () => {
    const a = permit({ id: 'a', sections: [PROBLEMS] });
    const b = permit({ id: 'b', sections: [ALLERGIES, IMMUNIZATIONS], roles: [PHYSICIAN, NURSE] });
    const d = decide([b, a], FORBIDDEN, request());
    assert.deepEqual(d, { permit: true, sections: [IMMUNIZATIONS, PROBLEMS, ALLERGIES].sort(), basis: 'consent', consentIds: ['a', 'b'] });
  });

  test('names only the consents that released a wanted section', () => {
    const a = permit({ id: 'a', sections: [PROBLEMS] });
    const b = permit({ id: 'b', sections: [ALLERGIES] });
    assert.deepEqual(decide([a, b], FORBIDDEN, request({ sections: [ALLERGIES] })), {
      permit: true,
      sections: [ALLERGIES],
      basis: 'consent',
      consentIds: ['b'],
    });
  });

  test('an opt-out in force beats a matching permit', () => {
    assert.deepEqual(decide([permit(), optOut()], ALLOWED, request()), denied('opt-out'));
  });

  test('an opt-out in force beats break-glass', () => {
    assert.deepEqual(decide([optOut()], ALLOWED, request({ purpose: 'ETREAT' })), denied('opt-out'));
  });

  test('an opt-out outside its period, or revoked, blocks nothing', () => {
    const past = optOut({ periodStart: new Date('2024-01-01T00:00:00Z'), periodEnd: new Date('2025-01-01T00:00:00Z') });
    const revoked = optOut({ id: 'r', status: 'revoked' });
    assert.equal(decide([permit(), past, revoked], FORBIDDEN, request()).permit, true);
  });

  test('break-glass allowed by policy: ETREAT without consent gets every IPS section', () => {
    const d = decide([], ALLOWED, request({ purpose: 'ETREAT' }));
    assert.deepEqual(d, { permit: true, sections: [...IPS_SECTION_CODES].sort(), basis: 'break-glass', consentIds: [] });
  });

  test('break-glass gives only the wanted IPS sections', () => {
    const d = decide([], ALLOWED, request({ purpose: 'ETREAT', sections: [ALLERGIES, 'not-a-section'] }));
    assert.deepEqual(d, { permit: true, sections: [ALLERGIES], basis: 'break-glass', consentIds: [] });
  });

  test('break-glass never releases more than the patient allowed for emergencies to anyone', () => {
    // Emergency access granted to physicians for Allergies only: a nurse under break-glass gets no more.
    const emergency = permit({ id: 'e', roles: [PHYSICIAN], purposes: ['ETREAT'], sections: [ALLERGIES] });
    const d = decide([emergency], ALLOWED, request({ purpose: 'ETREAT', role: NURSE }));
    assert.deepEqual(d, { permit: true, sections: [ALLERGIES], basis: 'break-glass', consentIds: [] });
    assert.deepEqual(decide([emergency], ALLOWED, request({ purpose: 'ETREAT', role: NURSE, sections: [PROBLEMS] })), denied('sections'));
    // A TREAT-only consent says nothing about emergencies: break-glass is unlimited by it.
    const treat = permit({ id: 't', purposes: ['TREAT'], sections: [ALLERGIES] });
    assert.deepEqual(decide([treat], ALLOWED, request({ purpose: 'ETREAT', role: NURSE })), {
      permit: true,
      sections: [...IPS_SECTION_CODES].sort(),
      basis: 'break-glass',
      consentIds: [],
    });
  });

  test('break-glass forbidden by policy: ETREAT without consent is denied', () => {
    assert.deepEqual(decide([], FORBIDDEN, request({ purpose: 'ETREAT' })), denied('no-consent'));
    assert.deepEqual(decide([permit()], FORBIDDEN, request({ purpose: 'ETREAT' })), denied('purpose'));
  });

  test('break-glass never applies to TREAT', () => {
    assert.deepEqual(decide([], ALLOWED, request({ purpose: 'TREAT' })), denied('no-consent'));
  });

  test('ETREAT with an explicit ETREAT consent is permitted on the consent, with its sections only', () => {
    const d = decide([permit({ purposes: ['TREAT', 'ETREAT'], sections: [ALLERGIES] })], ALLOWED, request({ purpose: 'ETREAT' }));
    assert.deepEqual(d, { permit: true, sections: [ALLERGIES], basis: 'consent', consentIds: ['c-permit'] });
  });

  test('the period end is exclusive and the start inclusive', () => {
    const c = permit({ periodStart: new Date('2025-06-01T00:00:00Z'), periodEnd: new Date('2025-06-15T12:00:00Z') });
    assert.deepEqual(decide([c], FORBIDDEN, request({ at: new Date('2025-06-15T12:00:00Z') })), denied('not-in-period'));
    assert.equal(decide([c], FORBIDDEN, request({ at: new Date('2025-06-15T11:59:59.999Z') })).permit, true);
    assert.equal(decide([c], FORBIDDEN, request({ at: new Date('2025-06-01T00:00:00Z') })).permit, true);
  });

  test('a consent without an end never expires', () => {
    assert.equal(decide([permit({ periodEnd: null })], FORBIDDEN, request({ at: new Date('2099-01-01T00:00:00Z') })).permit, true);
  });

  test('fails closed on a request time that is not a valid date, even when break-glass is allowed', () => {
    assert.equal(decide([permit()], ALLOWED, request({ at: new Date(Number.NaN), purpose: 'ETREAT' })).permit, false);
    assert.equal(decide([], ALLOWED, request({ at: new Date(Number.NaN), purpose: 'ETREAT' })).permit, false);
  });

  test('an opt-out whose period is not a valid date counts as in force', () => {
    assert.deepEqual(decide([permit(), optOut({ periodStart: new Date(Number.NaN) })], ALLOWED, request()), denied('opt-out'));
  });

  test('permitsDiscovery follows the decision with every section wanted', () => {
    assert.equal(permitsDiscovery([permit()], FORBIDDEN, request()), true);
    assert.equal(permitsDiscovery([permit()], FORBIDDEN, request({ role: DENTIST })), false);
    assert.equal(permitsDiscovery([], ALLOWED, request({ purpose: 'ETREAT' })), true);
    assert.equal(permitsDiscovery([optOut()], ALLOWED, request({ purpose: 'ETREAT' })), false);
  });
});

// ---------------------------------------------------------------------------------------------
// Property test: random consent sets and requests from a seeded PRNG
// ---------------------------------------------------------------------------------------------

/** mulberry32: a small, seedable 32-bit PRNG, so a failing case can be replayed from its seed. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function generators(rand: () => number) {
  const int = (n: number): number => Math.floor(rand() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const subset = <T>(xs: readonly T[]): T[] => xs.filter(() => rand() < 0.4);
  const DAY = 86_400_000;
  const base = Date.parse('2025-01-01T00:00:00Z');
  const day = (): Date => new Date(base + int(60) * DAY + int(3) * 3_600_000);
  const countries = ['ES', 'FR', 'DK', 'es'];
  const roles = [...ISCO_ROLE_CODES, '9999'];
  const sections = [...IPS_SECTION_CODES, 'X-1'];
  const consent = (i: number): ConsentRecord => {
    const start = day();
    const endRoll = rand();
    return {
      id: `c${i}`,
      kind: rand() < 0.15 ? 'opt-out' : 'permit',
      status: rand() < 0.2 ? 'revoked' : 'active',
      countries: subset(countries),
      roles: subset(roles),
      purposes: subset(['TREAT', 'ETREAT']),
      sections: subset(sections),
      periodStart: start,
      periodEnd: endRoll < 0.3 ? null : new Date(start.getTime() + (int(40) - 5) * DAY),
    };
  };
  const request = (): DecisionRequest => {
    const r: DecisionRequest = { country: pick(countries), role: pick(roles), purpose: pick(['TREAT', 'ETREAT'] as const), at: day() };
    return rand() < 0.3 ? r : { ...r, sections: subset(sections) };
  };
  return { int, consent, request, policy: (): ConsentPolicy => ({ breakGlass: rand() < 0.5 ? 'allowed' : 'forbidden' }) };
}

function inForce(c: ConsentRecord, at: Date): boolean {
  return c.status === 'active' && c.periodStart <= at && (c.periodEnd === null || at < c.periodEnd);
}

describe('consent decision properties (seeded PRNG)', () => {
  test('is deterministic, order-independent, never throws, never over-releases, and an opt-out in force always denies', () => {
    const seed = 20250615;
    const g = generators(mulberry32(seed));
    let permits = 0;
    let breakGlass = 0;
    for (let run = 0; run < 5_000; run += 1) {
      const consents = Array.from({ length: g.int(5) }, (_, i) => g.consent(i));
      const policy = g.policy();
      const req = g.request();
      const context = `seed ${seed} run ${run}: ${JSON.stringify({ consents, policy, req })}`;

      const d = decide(consents, policy, req);
      assert.deepEqual(decide(consents, policy, req), d, context);
      assert.deepEqual(decide([...consents].reverse(), policy, req), d, context);
      assert.equal(permitsDiscovery(consents, policy, req), decide(consents, policy, { ...req, sections: undefined }).permit, context);

      const optOutInForce = consents.some((c) => c.kind === 'opt-out' && inForce(c, req.at));
      if (optOutInForce) assert.deepEqual(d, { permit: false, reason: 'opt-out' }, context);
      if (!d.permit) continue;

      permits += 1;
      const wanted = new Set(req.sections ?? IPS_SECTION_CODES);
      assert.ok(d.sections.length > 0, context);
      assert.deepEqual(d.sections, [...new Set(d.sections)].sort(), context);
      for (const s of d.sections) assert.ok(wanted.has(s), `${s} not wanted; ${context}`);

      const matching = consents.filter(
        (c) =>
          c.kind === 'permit' &&
          inForce(c, req.at) &&
          c.countries.includes(req.country) &&
          c.roles.includes(req.role) &&
          c.purposes.includes(req.purpose),
      );
      if (d.basis === 'consent') {
        const granted = new Set(matching.flatMap((c) => c.sections));
        for (const s of d.sections) assert.ok(granted.has(s), `${s} not consented; ${context}`);
        assert.ok(d.consentIds.length > 0, context);
        for (const id of d.consentIds) assert.ok(matching.some((c) => c.id === id), context);
      } else {
        breakGlass += 1;
        assert.equal(req.purpose, 'ETREAT', context);
        assert.equal(policy.breakGlass, 'allowed', context);
        assert.equal(matching.length, 0, context);
        assert.deepEqual(d.consentIds, [], context);
        for (const s of d.sections) assert.ok(new Set<string>(IPS_SECTION_CODES).has(s), context);
      }
    }
    // The generator must actually exercise both kinds of permit, or the invariants prove little.
    assert.ok(permits - breakGlass > 50, `only ${permits - breakGlass} consent permits`);
    assert.ok(breakGlass > 50, `only ${breakGlass} break-glass permits`);
  });
});

// ---------------------------------------------------------------------------------------------
// Validation of the citizen's consent and its FHIR form
// ---------------------------------------------------------------------------------------------

const NOW = new Date('2025-06-01T10:00:00Z');
const KNOWN = { knownCountries: ['DK', 'ES', 'FR'], now: NOW };

function body(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    countries: ['ES'],
    roles: [PHYSICIAN, NURSE],
    purposes: ['TREAT'],
    sections: [PROBLEMS, ALLERGIES],
    period: { start: '2025-06-01', end: '2025-12-31' },
    ...over,
  };
}

function assertInvalid(input: unknown, expression: readonly string[]): void {
  assert.throws(
    () => validateConsentInput(input, KNOWN),
    (e: unknown) => {
      assert.ok(isGatewayError(e), String(e));
      assert.equal(e.code, 'consent.invalid');
      assert.equal(e.status, 422);
      assert.deepEqual([...e.expression].sort(), [...expression].sort());
      return true;
    },
  );
}

describe('consent validation', () => {
  test('accepts a valid consent and normalises it (sorted, unique codes; date-only end covers its whole day)', () => {
    const terms = validateConsentInput(body({ roles: [NURSE, PHYSICIAN, NURSE], sections: [ALLERGIES, PROBLEMS] }), KNOWN);
    assert.deepEqual(terms, {
      kind: 'permit',
      countries: ['ES'],
      roles: [PHYSICIAN, NURSE],
      purposes: ['TREAT'],
      sections: [PROBLEMS, ALLERGIES],
      periodStart: new Date('2025-06-01T00:00:00Z'),
      periodEnd: new Date('2026-01-01T00:00:00Z'),
      period: { start: '2025-06-01', end: '2025-12-31' },
    });
  });

  test('accepts a consent without an end (no expiry) and date-times with an offset', () => {
    const terms = validateConsentInput(body({ period: { start: '2025-06-01T12:00:00+02:00' } }), KNOWN);
    assert.equal(terms.periodStart.toISOString(), '2025-06-01T10:00:00.000Z');
    assert.equal(terms.periodEnd, null);
  });

  test('accepts a one-day consent (start and end on the same date)', () => {
    const terms = validateConsentInput(body({ period: { start: '2025-06-02', end: '2025-06-02' } }), KNOWN);
    assert.equal(terms.periodEnd?.toISOString(), '2025-06-03T00:00:00.000Z');
  });

  test('rejects an unknown section code at body.sections.0', () => {
    assertInvalid(body({ sections: ['99999-9', PROBLEMS] }), ['body.sections.0']);
  });

  test('rejects a period ending before it starts at body.period.end', () => {
    assertInvalid(body({ period: { start: '2025-07-01', end: '2025-06-30' } }), ['body.period.end']);
    assertInvalid(body({ period: { start: '2025-07-01T10:00:00Z', end: '2025-07-01T10:00:00Z' } }), ['body.period.end']);
  });

  test('rejects a period that is already over at body.period.end', () => {
    assertInvalid(body({ period: { start: '2025-01-01', end: '2025-05-31' } }), ['body.period.end']);
  });

  test('rejects a malformed date or a date-time without offset at the bound', () => {
    assertInvalid(body({ period: { start: '2025-02-30' } }), ['body.period.start']);
    assertInvalid(body({ period: { start: '2025-06-01T10:00:00' } }), ['body.period.start']);
    assertInvalid(body({ period: { start: '2025-06-01', end: 'tomorrow' } }), ['body.period.end']);
  });

  test('rejects a country outside the trust list at body.countries.0', () => {
    assertInvalid(body({ countries: ['XX', 'ES'] }), ['body.countries.0']);
  });

  test('rejects a country that is not upper-case alpha-2 at its index', () => {
    assertInvalid(body({ countries: ['ES', 'es', 'ESP'] }), ['body.countries.1', 'body.countries.2']);
  });

  test('rejects a role that is not an ISCO-08 code from the table at its index', () => {
    assertInvalid(body({ roles: [PHYSICIAN, '2211'] }), ['body.roles.1']);
  });

  test('rejects empty purposes at body.purposes, and an unknown purpose at its index', () => {
    assertInvalid(body({ purposes: [] }), ['body.purposes']);
    assertInvalid(body({ purposes: ['HPAYMT'] }), ['body.purposes.0']);
  });

  test('rejects a permit without countries, roles or sections', () => {
    assertInvalid({ period: { start: '2025-06-01' }, purposes: ['TREAT'] }, ['body.countries', 'body.roles', 'body.sections']);
  });

  test('reports every problem at once', () => {
    assertInvalid(body({ countries: ['XX'], roles: ['1'], sections: [PROBLEMS, 'nope'], period: { start: '2025-07-01', end: '2025-06-01' } }), [
      'body.countries.0',
      'body.roles.0',
      'body.sections.1',
      'body.period.end',
    ]);
  });

  test('rejects a body that is not an object', () => {
    assertInvalid('consent', ['body']);
  });

  test('accepts an opt-out with only a period; it applies to everything', () => {
    const terms = validateConsentInput({ kind: 'opt-out', period: { start: '2025-06-01' } }, KNOWN);
    assert.deepEqual(terms, {
      kind: 'opt-out',
      countries: [],
      roles: [],
      purposes: [],
      sections: [],
      periodStart: new Date('2025-06-01T00:00:00Z'),
      periodEnd: null,
      period: { start: '2025-06-01' },
    });
  });

  test('rejects an opt-out scoped to countries (an opt-out cannot be partial)', () => {
    assertInvalid({ kind: 'opt-out', countries: ['ES'], period: { start: '2025-06-01' } }, ['body.countries']);
  });

  test('the documented schema accepts any upper-case country (the trust list is checked per request)', () => {
    assert.equal(ConsentInputSchema.safeParse(body({ countries: ['SE'] })).success, true);
    assert.equal(ConsentInputSchema.safeParse(body({ countries: ['se'] })).success, false);
  });
});

describe('FHIR Consent (IHE PCF shape)', () => {
  const PATIENT = { system: 'urn:oid:1.2.208.176.1.2', value: '0201609995' };
  const options = {
    id: '8d7b0a51-3c2e-4f57-9c1b-6d3c1f2a9e10',
    patient: PATIENT,
    grantedAt: new Date('2025-06-01T10:00:00Z'),
    grantorName: 'Kenneth Sørensen',
    organizationName: 'NCPeH Denmark',
    policyUri: 'https://ncp.example.dk/policies/cross-border-consent/v1',
  };
  const terms: ConsentTerms = validateConsentInput(body({ purposes: ['TREAT', 'ETREAT'] }), KNOWN);

  test('a permit has the PCF foundation elements: status, scope, category 59284-0, patient, performer, organization, policy', () => {
    const c = toFhirConsent(terms, options);
    assert.equal(c.resourceType, 'Consent');
    assert.equal(c.id, options.id);
    assert.equal(c.status, 'active');
    assert.deepEqual(c.scope.coding.map((x) => [x.system, x.code]), [['http://terminology.hl7.org/CodeSystem/consentscope', 'patient-privacy']]);
    assert.deepEqual(c.category.flatMap((cc) => cc.coding.map((x) => [x.system, x.code])), [['http://loinc.org', '59284-0']]);
    assert.deepEqual(c.patient, { identifier: PATIENT });
    assert.equal(c.dateTime, '2025-06-01T10:00:00.000Z');
    assert.deepEqual(c.performer, [{ identifier: PATIENT, display: 'Kenneth Sørensen' }]);
    assert.deepEqual(c.organization, [{ display: 'NCPeH Denmark' }]);
    assert.deepEqual(c.policy, [{ uri: options.policyUri }]);
    assert.equal(FhirConsentSchema.safeParse(c).success, true);
  });

  test('a permit provision carries type, period, IRCP country actors and v3-ActReason purposes', () => {
    const p = toFhirConsent(terms, options).provision;
    assert.equal(p.type, 'permit');
    assert.deepEqual(p.period, { start: '2025-06-01', end: '2025-12-31' });
    assert.deepEqual(p.actor?.map((a) => [a.role.coding[0]?.system, a.role.coding[0]?.code, a.reference.identifier?.value]), [
      ['http://terminology.hl7.org/CodeSystem/v3-ParticipationType', 'IRCP', 'ES'],
    ]);
    assert.deepEqual(p.purpose?.map((x) => [x.system, x.code]), [
      ['http://terminology.hl7.org/CodeSystem/v3-ActReason', 'ETREAT'],
      ['http://terminology.hl7.org/CodeSystem/v3-ActReason', 'TREAT'],
    ]);
  });

  test('the nested provision narrows to the ISCO-08 roles and the IPS section LOINC codes', () => {
    const nested = toFhirConsent(terms, options).provision.provision;
    assert.equal(nested?.length, 1);
    const n = nested[0]!;
    assert.equal(n.type, 'permit');
    assert.deepEqual(n.actor?.map((a) => [a.role.coding[0]?.code, a.reference.identifier?.system, a.reference.identifier?.value]), [
      ['IRCP', 'urn:oid:2.16.840.1.113883.2.9.6.2.7', PHYSICIAN],
      ['IRCP', 'urn:oid:2.16.840.1.113883.2.9.6.2.7', NURSE],
    ]);
    assert.deepEqual(n.code?.map((cc) => [cc.coding[0]?.system, cc.coding[0]?.code]), [
      ['http://loinc.org', PROBLEMS],
      ['http://loinc.org', ALLERGIES],
    ]);
    // PCF consent.fsh: provision.provision.provision 0..0.
    assert.equal('provision' in n, false);
  });

  test('an opt-out is a root deny with its period, no actor and no purpose (everyone, every purpose)', () => {
    const optOutTerms = validateConsentInput({ kind: 'opt-out', period: { start: '2025-06-01' } }, KNOWN);
    const { grantorName: _unnamed, ...withoutName } = options;
    const c = toFhirConsent(optOutTerms, withoutName);
    assert.deepEqual(c.provision, { type: 'deny', period: { start: '2025-06-01' } });
    assert.deepEqual(c.performer, [{ identifier: PATIENT }]);
  });

  test('the section table lists the three required IPS sections', () => {
    assert.deepEqual(
      IPS_SECTIONS.filter((s) => s.required).map((s) => s.code),
      [PROBLEMS, ALLERGIES, MEDICATIONS],
    );
  });
});
