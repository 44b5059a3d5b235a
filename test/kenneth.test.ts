/**
 * Kenneth's story end to end on real components (DESIGN.md flows 1, 3, 4): a Danish citizen signs in
 * with his eID and consents; a Barcelona doctor signs in with the Spanish eIDAS node; ES identifies
 * him at DK over mutual TLS and reads exactly the sections he allowed. Then every way it must fail.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CPR_SYSTEM, ES_PRACTITIONERS, FIXTURE_PATIENTS, KENNETH, PATIENT_WITHOUT_SUMMARY } from '../sandbox/seed.js';
import { toFhirConsent, validateConsentInput } from '../src/consent/model.js';
import { newConsentId, patientKeyOf } from '../src/consent/repository.js';
import { ConsentRepository } from '../src/consent/repository.js';
import * as oidc from 'openid-client';
import { followLoginRedirects } from '../sandbox/oidc-op.js';
import { startWorld, type World } from './helpers/world.js';
import { call as api, outcomeCode, type Json } from './helpers/http.js';

const ANA = ES_PRACTITIONERS.find((p) => p.roleCode === '221');
const MARTA = ES_PRACTITIONERS.find((p) => p.roleCode === '2221');
const JAVIER = ES_PRACTITIONERS.find((p) => p.roleCode === '2261');
const PEDRO = ES_PRACTITIONERS.find((p) => p.roleCode === undefined);
const ALLERGIES = '48765-2';
const PROBLEMS = '11450-4';
const MEDICATIONS = '10160-0';
const REQUIRED = [PROBLEMS, ALLERGIES, MEDICATIONS];




function sectionsOf(bundle: Json): Map<string, Json> {
  const entries = bundle.entry as Array<{ resource: Json }>;
  const composition = entries[0]?.resource as { section?: Array<Json & { code?: { coding?: Array<{ code?: string }> } }> };
  return new Map((composition.section ?? []).map((s) => [s.code?.coding?.[0]?.code ?? '', s]));
}

function isoIn(ms: number): string {
  return new Date(Date.now() + ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

describe("Kenneth's cross-border Patient Summary", () => {
  let world: World;
  let kennethSession: string;
  let anaToken: string;
  let consentId: string;

  before(async () => {
    assert.ok(ANA && MARTA && JAVIER && PEDRO, 'seeded professionals');
    world = await startWorld();
    kennethSession = await world.citizenSignIn('DK', KENNETH.identifier.value);
    anaToken = await world.hcpSignIn('ES', ANA.personIdentifier.value);
  });
  after(async () => world.close());

  const identify = (token: string, identifier: { system: string; value: string }, birthDate?: string) =>
    api(`${world.es.apiUrl}/api/v1/cross-border/patients/$identify`, {
      token,
      body: { country: 'DK', identifier, ...(birthDate === undefined ? {} : { birthDate }) },
    });
  const summary = (token: string, ref: string) => api(`${world.es.apiUrl}/api/v1/cross-border/patients/DK/${encodeURIComponent(ref)}/summary`, { token });

  test('Kenneth grants Spanish physicians Problems and Allergies for treatment', async () => {
    const res = await api(`${world.dk.apiUrl}/api/v1/me/consents`, {
      token: kennethSession,
      body: { countries: ['ES'], roles: ['221'], purposes: ['TREAT'], sections: [PROBLEMS, ALLERGIES], period: { start: isoIn(-3_600_000), end: isoIn(10 * 86_400_000) } },
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    consentId = String(res.body.id);
    const resource = res.body.resource as { resourceType?: string; scope?: { coding?: Array<{ code?: string }> } };
    assert.equal(resource.resourceType, 'Consent');
    assert.equal(resource.scope?.coding?.[0]?.code, 'patient-privacy');
    const list = await api(`${world.dk.apiUrl}/api/v1/me/consents`, { token: kennethSession });
    assert.equal((list.body.consents as unknown[]).length, 1);
  });

  test('a Spanish doctor identifies Kenneth and reads exactly the consented sections', async () => {
    const found = await identify(anaToken, KENNETH.identifier, KENNETH.birthDate);
    assert.equal(found.status, 200, JSON.stringify(found.body));
    assert.equal(found.body.outcome, 'match');
    const match = (found.body.matches as Array<{ ref: string; name?: string }>)[0];
    assert.ok(match);
    assert.doesNotMatch(match.ref, /0201609995|dk-patient/, 'the reference is opaque');
    const res = await summary(anaToken, match.ref);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.headers.get('x-ncpeh-signed-by'), 'urn:ncpeh:ncp:DK');
    assert.match(String(res.headers.get('content-type')), /application\/fhir\+json/);
    const bundle = res.body;
    assert.equal(bundle.type, 'document');
    const sig = bundle.signature as { sigFormat?: string; who?: { identifier?: { value?: string } } };
    assert.equal(sig.sigFormat, 'application/jose');
    assert.equal(sig.who?.identifier?.value, 'urn:ncpeh:ncp:DK');
    const sections = sectionsOf(bundle);
    assert.deepEqual([...sections.keys()].sort(), [...REQUIRED].sort(), 'optional sections removed, required kept');
    const meds = sections.get(MEDICATIONS) as { emptyReason?: { coding?: Array<{ code?: string }> }; entry?: unknown[] };
    assert.equal(meds.emptyReason?.coding?.[0]?.code, 'withheld');
    assert.equal(meds.entry, undefined);
    const text = JSON.stringify(bundle);
    for (const type of ['MedicationStatement', 'Medication"', 'Immunization', 'Observation']) {
      assert.ok(!text.includes(`"resourceType":"${type.replace('"', '')}"`), `${type} must not leak`);
    }
    assert.match(text, /"resourceType":"AllergyIntolerance"/);
    assert.match(text, /"resourceType":"Condition"/);
  });

  test('the answer for an unknown person and for a person without consent is the same', async () => {
    const unknown = await identify(anaToken, { system: CPR_SYSTEM, value: '0101019999' }, '2001-01-01');
    const unconsented = await identify(anaToken, PATIENT_WITHOUT_SUMMARY.identifier, PATIENT_WITHOUT_SUMMARY.birthDate);
    const wrongBirthDate = await identify(anaToken, KENNETH.identifier, '1961-01-02');
    for (const r of [unknown, unconsented, wrongBirthDate]) {
      assert.equal(r.status, 200);
      assert.deepEqual(r.body, { outcome: 'no-match', matches: [] });
    }
  });

  test('identification without a birth date asks for more attributes', async () => {
    const r = await identify(anaToken, KENNETH.identifier);
    assert.deepEqual(r.body, { outcome: 'more-attributes-needed', matches: [] });
  });

  test('rejects a dentist when only physicians are consented (no match, and summary denied)', async () => {
    const javier = await world.hcpSignIn('ES', JAVIER?.personIdentifier.value ?? '');
    const r = await identify(javier, KENNETH.identifier, KENNETH.birthDate);
    assert.deepEqual(r.body, { outcome: 'no-match', matches: [] });
  });

  test('rejects a purpose the patient did not consent to (emergency, break-glass forbidden)', async () => {
    const emergency = await world.hcpSignIn('ES', ANA?.personIdentifier.value ?? '', { purpose: 'ETREAT' });
    const r = await identify(emergency, KENNETH.identifier, KENNETH.birthDate);
    assert.deepEqual(r.body, { outcome: 'no-match', matches: [] });
  });

  test('rejects a reference used by another professional, or from another sign-in', async () => {
    const found = await identify(anaToken, KENNETH.identifier, KENNETH.birthDate);
    const ref = (found.body.matches as Array<{ ref: string }>)[0]?.ref ?? '';
    const marta = await world.hcpSignIn('ES', MARTA?.personIdentifier.value ?? '');
    const byMarta = await summary(marta, ref);
    assert.equal(byMarta.status, 404);
    assert.equal(outcomeCode(byMarta.body), 'patient.reference-invalid');
    const anaAgain = await world.hcpSignIn('ES', ANA?.personIdentifier.value ?? '');
    const newSession = await summary(anaAgain, ref);
    assert.equal(outcomeCode(newSession.body), 'patient.reference-invalid');
    const forged = await summary(anaToken, 'A'.repeat(43));
    assert.equal(outcomeCode(forged.body), 'patient.reference-invalid');
  });

  test('a professional signs in with an ID token from the national OpenID provider (EHR-posted)', async () => {
    // The hospital EHR runs the code flow at the national provider itself, then posts the ID token.
    const config = await oidc.discovery(new URL(world.es.eid.oidcIssuer), 'es-hospital-ehr', undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
    const verifier = oidc.randomPKCECodeVerifier();
    const nonce = oidc.randomNonce();
    const authUrl = oidc.buildAuthorizationUrl(config, {
      redirect_uri: 'http://127.0.0.1/ehr/callback',
      scope: 'openid profile',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      nonce,
      login_hint: ANA?.personIdentifier.value ?? '',
      acr_values: 'http://eidas.europa.eu/LoA/substantial',
    });
    const callback = await followLoginRedirects(authUrl.toString(), 'http://127.0.0.1/ehr/callback');
    const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedNonce: nonce, idTokenExpected: true });
    const idToken = tokens.id_token ?? '';
    const signIn = (token: string) =>
      api(`${world.es.apiUrl}/api/v1/auth/hcp`, {
        body: { client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: token, id_token: idToken },
      });
    const res = await signIn(await world.clientAssertion('ES'));
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal((res.body.hcp as { name?: string }).name, 'Ana García Pérez');
    // The same ID token again is a replay, even with a fresh client assertion.
    const replay = await signIn(await world.clientAssertion('ES'));
    assert.equal(outcomeCode(replay.body), 'eid.replayed');
    // And the same client assertion again is refused before the eID is even looked at.
    const assertion = await world.clientAssertion('ES');
    await signIn(assertion);
    const again = await signIn(assertion);
    assert.equal(outcomeCode(again.body), 'client.authentication-failed');
  });

  test('a professional without a registered role cannot sign in', async () => {
    const sso = await fetch(`${world.es.eid.samlUrl}/sso?person=${encodeURIComponent(PEDRO?.personIdentifier.value ?? '')}`);
    const { SAMLResponse } = (await sso.json()) as { SAMLResponse: string };
    const res = await api(`${world.es.apiUrl}/api/v1/auth/hcp`, {
      body: { client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: await world.clientAssertion('ES'), saml_response: SAMLResponse },
    });
    assert.equal(res.status, 403);
    assert.equal(outcomeCode(res.body), 'hcp.not-registered');
  });

  test('cross-border routes refuse a missing or foreign-signed HCP assertion', async () => {
    const none = await api(`${world.es.apiUrl}/api/v1/cross-border/patients/$identify`, { body: { country: 'DK', identifier: KENNETH.identifier, birthDate: KENNETH.birthDate } });
    assert.equal(outcomeCode(none.body), 'hcp.assertion-missing');
    // An assertion DK issued is not valid at ES's hospital API: each gateway accepts only its own.
    const dkIssued = await world.hcpSignIn('DK', 'DK/DK/9208-2002-2-274815369021');
    const foreign = await identify(dkIssued, KENNETH.identifier, KENNETH.birthDate);
    assert.equal(outcomeCode(foreign.body), 'hcp.assertion-invalid');
  });

  test('rejects a summary request after the consent was revoked (immediately)', async () => {
    const found = await identify(anaToken, KENNETH.identifier, KENNETH.birthDate);
    const ref = (found.body.matches as Array<{ ref: string }>)[0]?.ref ?? '';
    const revoked = await api(`${world.dk.apiUrl}/api/v1/me/consents/${consentId}`, { method: 'DELETE', token: kennethSession });
    assert.equal(revoked.status, 200);
    assert.equal(revoked.body.status, 'revoked');
    const res = await summary(anaToken, ref);
    assert.equal(res.status, 403);
    assert.equal(outcomeCode(res.body), 'consent.denied');
  });

  test('rejects access once a consent has expired', async () => {
    const res = await api(`${world.dk.apiUrl}/api/v1/me/consents`, {
      token: kennethSession,
      body: { countries: ['ES'], roles: ['221'], purposes: ['TREAT'], sections: [ALLERGIES], period: { start: isoIn(-60_000), end: isoIn(3_000) } },
    });
    assert.equal(res.status, 201);
    const found = await identify(anaToken, KENNETH.identifier, KENNETH.birthDate);
    assert.equal(found.body.outcome, 'match');
    const ref = (found.body.matches as Array<{ ref: string }>)[0]?.ref ?? '';
    await new Promise((r) => setTimeout(r, 3_500));
    const late = await summary(anaToken, ref);
    assert.equal(outcomeCode(late.body), 'consent.denied');
    await api(`${world.dk.apiUrl}/api/v1/me/consents/${String(res.body.id)}`, { method: 'DELETE', token: kennethSession });
  });

  test('invalid consents are refused with 422 naming the field', async () => {
    const cases: Array<[Json, string]> = [
      [{ countries: ['ES'], roles: ['221'], purposes: ['TREAT'], sections: ['99999-9'], period: { start: isoIn(0) } }, 'body.sections.0'],
      [{ countries: ['ES'], roles: ['221'], purposes: ['TREAT'], sections: [ALLERGIES], period: { start: isoIn(86_400_000), end: isoIn(3_600_000) } }, 'body.period.end'],
      [{ countries: ['XX'], roles: ['221'], purposes: ['TREAT'], sections: [ALLERGIES], period: { start: isoIn(0) } }, 'body.countries.0'],
    ];
    for (const [body, field] of cases) {
      const res = await api(`${world.dk.apiUrl}/api/v1/me/consents`, { token: kennethSession, body });
      assert.equal(res.status, 422, JSON.stringify(res.body));
      assert.equal(outcomeCode(res.body), 'consent.invalid');
      const expression = (res.body.issue as Array<{ expression?: string[] }>)[0]?.expression ?? [];
      assert.ok(expression.includes(field), `${field} in ${JSON.stringify(expression)}`);
    }
  });

  test('consent routes need a citizen session, and a session only sees its own consents', async () => {
    const none = await api(`${world.dk.apiUrl}/api/v1/me/consents`);
    assert.equal(outcomeCode(none.body), 'citizen.session-missing');
    const poul = await world.citizenSignIn('DK', PATIENT_WITHOUT_SUMMARY.identifier.value);
    const his = await api(`${world.dk.apiUrl}/api/v1/me/consents`, { token: poul });
    assert.deepEqual(his.body.consents, []);
    const steal = await api(`${world.dk.apiUrl}/api/v1/me/consents/${consentId}`, { method: 'DELETE', token: poul });
    assert.equal(outcomeCode(steal.body), 'consent.not-found');
  });

  test('signing out ends the session token itself, not only the cookie', async () => {
    const session = await world.citizenSignIn('DK', PATIENT_WITHOUT_SUMMARY.identifier.value);
    assert.equal((await api(`${world.dk.apiUrl}/api/v1/me/consents`, { token: session })).status, 200);
    const out = await api(`${world.dk.apiUrl}/api/v1/auth/logout`, { method: 'POST', token: session });
    assert.equal(out.status, 204);
    const after = await api(`${world.dk.apiUrl}/api/v1/me/consents`, { token: session });
    assert.equal(after.status, 401);
    assert.equal(outcomeCode(after.body), 'citizen.session-invalid');
  });

  describe('every IPS fixture relays exactly the consented sections', () => {
    const consentFor = async (identifier: { system: string; value: string }, sections: string[]): Promise<void> => {
      // Fixture patients have no eID account in the sandbox: their consents are stored directly.
      const repo = new ConsentRepository(world.dk.gateway.db);
      const terms = validateConsentInput(
        { countries: ['ES'], roles: ['221'], purposes: ['TREAT'], sections, period: { start: isoIn(-60_000) } },
        { knownCountries: ['ES'], now: new Date() },
      );
      const id = newConsentId();
      await repo.create(patientKeyOf(identifier), terms, toFhirConsent(terms, { id, patient: identifier, grantedAt: new Date(), organizationName: 'NCP DK', policyUri: 'urn:test' }));
    };

    for (const fixture of FIXTURE_PATIENTS) {
      test(fixture.fixture, async () => {
        const patient = (await (await fetch(`${world.dk.fhir.baseUrl}/Patient/${fixture.patientId}`)).json()) as { birthDate: string };
        await consentFor(fixture.patientIdentifier, [ALLERGIES]);
        const found = await identify(anaToken, fixture.patientIdentifier, patient.birthDate);
        assert.equal(found.body.outcome, 'match', JSON.stringify(found.body));
        const res = await summary(anaToken, (found.body.matches as Array<{ ref: string }>)[0]?.ref ?? '');
        assert.equal(res.status, 200, JSON.stringify(res.body));
        const sections = sectionsOf(res.body);
        assert.deepEqual([...sections.keys()].sort(), [...REQUIRED].sort());
        for (const code of [PROBLEMS, MEDICATIONS]) {
          const s = sections.get(code) as { emptyReason?: { coding?: Array<{ code?: string }> }; entry?: unknown[] };
          assert.equal(s.emptyReason?.coding?.[0]?.code, 'withheld', code);
          assert.equal(s.entry, undefined);
        }
        const text = JSON.stringify(res.body);
        for (const type of ['MedicationStatement', 'MedicationRequest', 'Immunization', 'Procedure', 'Observation', 'Condition']) {
          assert.ok(!text.includes(`"resourceType":"${type}"`), `${type} leaked from ${fixture.fixture}`);
        }
      });
    }
  });
});
