import assert from 'node:assert/strict';
import { createHmac, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import jose from 'node-jose';
import { loadPrivateJwk, publicJwks, type SigningKey } from '../src/crossborder/envelope.js';
import { GatewayError } from '../src/http/errors.js';
import type { VerifiedEid } from '../src/identity/eid.js';
import {
  HCP_ASSERTION_AUDIENCE,
  V3_ACT_REASON_SYSTEM,
  bearerToken,
  issueHcpAssertion,
  verifyHcpAssertion,
  verifyPeerHcpAssertion,
  type HcpAssertion,
  type IssueHcpAssertionOptions,
  type VerifyHcpAssertionOptions,
} from '../src/identity/hcp-assertion.js';
import { ISCO_08_SYSTEM, type Professional } from '../src/identity/registry.js';
import { parseAnchorKeys, verifyTrustList, type TrustList } from '../src/trust/trust-list.js';
import { createTestDeployment, type TestDeployment } from './helpers/deployment.js';
import { rejectsWith } from './helpers/errors.js';

// ---------------------------------------------------------------------------------------------
// Fixtures: the ES gateway vouches for Dr. Ana García (Hospital Clínic).

const NOW = new Date('2030-01-01T10:00:00Z');
const T = NOW.getTime() / 1000;
const ES_NCP = 'urn:ncpeh:ncp:ES';

function ecJwk(kid: string): Record<string, unknown> {
  return { ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }), kid };
}

const ours: SigningKey = await loadPrivateJwk(ecJwk('es-sig-1'), 'sig');
/** Same kid as ours, other key material: what an attacker would sign with. */
const impostor: SigningKey = await loadPrivateJwk(ecJwk('es-sig-1'), 'sig');
const stranger: SigningKey = await loadPrivateJwk(ecJwk('stranger-sig'), 'sig');
const ourJwks = publicJwks([ours]);

const eid: VerifiedEid = {
  protocol: 'saml',
  providerId: 'es-eidas',
  issuer: 'https://eidas.es.example/idp',
  personId: 'ES/ES/12345678Z',
  givenName: 'Ana',
  familyName: 'García Pérez',
  birthDate: '1979-04-12',
  loa: 'substantial',
  authTime: new Date(NOW.getTime() - 30_000),
  assertionId: '_a1b2c3',
  expiresAt: new Date(NOW.getTime() + 300_000),
};

const ana: Professional = {
  personId: 'ES/ES/12345678Z',
  practitionerId: 'es-practitioner-ana-garcia',
  name: 'Ana García Pérez',
  roles: [{ code: '221', display: 'Medical doctors' }],
  organization: { id: 'es-org-hospital-clinic', name: 'Hospital Clínic de Barcelona', identifier: { system: 'urn:ncpeh:sandbox:es:regcess', value: 'ES-08-000101' } },
  facilityType: 'Hospital',
};

function issueOptions(overrides: Partial<IssueHcpAssertionOptions> = {}): IssueHcpAssertionOptions {
  return {
    eid,
    professional: ana,
    clientId: 'hospital-clinic-ehr',
    purposeOfUse: 'TREAT',
    scope: 'patient-summary',
    ourNcpId: ES_NCP,
    country: 'ES',
    signingKey: ours,
    now: NOW,
    ...overrides,
  };
}

function verifyOptions(overrides: Partial<VerifyHcpAssertionOptions> = {}): VerifyHcpAssertionOptions {
  return { trustedKeys: ourJwks, expectedIss: ES_NCP, now: NOW, skewSeconds: 60, ...overrides };
}

function b64(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function decode(token: string): { header: Record<string, unknown>; claims: Record<string, unknown> } {
  const [h = '', p = ''] = token.split('.');
  return { header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as Record<string, unknown>, claims: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown> };
}

/** Signs arbitrary claims under an arbitrary header with a real ES256 key. */
async function signWith(key: SigningKey, claims: unknown, header: Record<string, unknown> = { alg: 'ES256', kid: key.kid, typ: 'IUA-JWT' }): Promise<string> {
  const joseKey = await jose.JWK.asKey(key.privateKey.export({ format: 'jwk' }));
  const out: unknown = await jose.JWS.createSign({ format: 'compact', fields: header }, joseKey).update(JSON.stringify(claims), 'utf8').final();
  assert.equal(typeof out, 'string');
  return String(out);
}

/** A valid assertion's claims with some members changed, re-signed with our key. */
async function tampered(change: (claims: HcpAssertion) => unknown): Promise<string> {
  const { claims } = await issueHcpAssertion(issueOptions());
  return signWith(ours, change(structuredClone(claims)));
}

// ---------------------------------------------------------------------------------------------

describe('HCP assertion: issue and verify (IHE IUA JWT access token)', () => {
  test('an assertion the gateway issued verifies against its own key and yields the same claims', async () => {
    const issued = await issueHcpAssertion(issueOptions());
    const verified = await verifyHcpAssertion(issued.token, verifyOptions());
    assert.deepEqual(verified, issued.claims);
    assert.equal(issued.expiresAt.getTime(), (T + 3600) * 1000);
  });

  test('carries the IUA header and claims: typ IUA-JWT, eHDSI audience, ISCO-08 role, v3-ActReason purpose, LoA', async () => {
    const issued = await issueHcpAssertion(issueOptions({ purposeOfUse: 'ETREAT' }));
    const { header, claims } = decode(issued.token);
    assert.deepEqual(header, { alg: 'ES256', kid: 'es-sig-1', typ: 'IUA-JWT' });
    assert.equal(typeof claims['jti'], 'string');
    assert.deepEqual(
      { ...claims, jti: 'x' },
      {
        iss: ES_NCP,
        sub: 'ES/ES/12345678Z',
        aud: HCP_ASSERTION_AUDIENCE,
        jti: 'x',
        iat: T,
        nbf: T,
        exp: T + 3600,
        client_id: 'hospital-clinic-ehr',
        scope: 'patient-summary',
        extensions: {
          ihe_iua: {
            subject_name: 'Ana García Pérez',
            subject_organization: 'Hospital Clínic de Barcelona',
            subject_organization_id: 'ES-08-000101',
            subject_role: [{ system: ISCO_08_SYSTEM, code: '221', display: 'Medical doctors' }],
            purpose_of_use: [{ system: V3_ACT_REASON_SYSTEM, code: 'ETREAT', display: 'Emergency Treatment' }],
            home_community_id: ES_NCP,
            national_provider_identifier: 'ES/ES/12345678Z',
          },
          ncpeh: { country: 'ES', loa: 'http://eidas.europa.eu/LoA/substantial', auth_time: T - 30, facility_type: 'Hospital' },
        },
      },
    );
  });

  test('each issued assertion has its own jti', async () => {
    const a = await issueHcpAssertion(issueOptions());
    const b = await issueHcpAssertion(issueOptions());
    assert.notEqual(a.claims.jti, b.claims.jti);
  });

  test('refuses to issue for more than 4 hours (eHDSI) and issues exactly 4 hours', async () => {
    await assert.rejects(issueHcpAssertion(issueOptions({ ttlSeconds: 14_401 })), RangeError);
    const issued = await issueHcpAssertion(issueOptions({ ttlSeconds: 14_400 }));
    await verifyHcpAssertion(issued.token, verifyOptions({ now: new Date((T + 14_000) * 1000) }));
  });

  test('refuses to issue from an eID below substantial (eid.insufficient-loa)', async () => {
    await rejectsWith(issueHcpAssertion(issueOptions({ eid: { ...eid, loa: 'low' } })), 'eid.insufficient-loa');
  });

  test('refuses to issue when the registry entry is for another person (hcp.not-registered)', async () => {
    await rejectsWith(issueHcpAssertion(issueOptions({ professional: { ...ana, personId: 'ES/ES/23456789D' } })), 'hcp.not-registered');
  });
});

describe('HCP assertion verification refuses', () => {
  test('an expired assertion (hcp.assertion-expired), but accepts one within the 60 s skew', async () => {
    const { token } = await issueHcpAssertion(issueOptions());
    await rejectsWith(verifyHcpAssertion(token, verifyOptions({ now: new Date((T + 3600 + 61) * 1000) })), 'hcp.assertion-expired');
    await verifyHcpAssertion(token, verifyOptions({ now: new Date((T + 3600 + 30) * 1000) }));
  });

  test('an assertion whose nbf is in the future beyond the skew (hcp.assertion-expired)', async () => {
    const token = await tampered((c) => ({ ...c, nbf: T + 120 }));
    await rejectsWith(verifyHcpAssertion(token, verifyOptions()), 'hcp.assertion-expired', /not yet valid/);
  });

  test('an assertion issued in the future (hcp.assertion-expired)', async () => {
    const token = await tampered(({ nbf: _nbf, ...c }) => ({ ...c, iat: T + 600, exp: T + 1200 }));
    await rejectsWith(verifyHcpAssertion(token, verifyOptions()), 'hcp.assertion-expired', /issued in the future/);
  });

  test('an assertion living longer than 4 hours (hcp.assertion-invalid)', async () => {
    const token = await tampered((c) => ({ ...c, exp: c.iat + 14_401 }));
    await rejectsWith(verifyHcpAssertion(token, verifyOptions()), 'hcp.assertion-invalid', /lifetime/);
  });

  test('an assertion signed by another key under our kid (hcp.assertion-invalid)', async () => {
    const { token } = await issueHcpAssertion(issueOptions({ signingKey: impostor }));
    await rejectsWith(verifyHcpAssertion(token, verifyOptions()), 'hcp.assertion-invalid', /signature/);
  });

  test('an assertion naming an unknown kid (hcp.assertion-invalid)', async () => {
    const { token } = await issueHcpAssertion(issueOptions({ signingKey: stranger }));
    await rejectsWith(verifyHcpAssertion(token, verifyOptions()), 'hcp.assertion-invalid', /kid/);
  });

  test('alg none (hcp.assertion-invalid)', async () => {
    const { token } = await issueHcpAssertion(issueOptions());
    const [, payload = ''] = token.split('.');
    const unsigned = `${b64({ alg: 'none', kid: ours.kid, typ: 'IUA-JWT' })}.${payload}.`;
    await rejectsWith(verifyHcpAssertion(unsigned, verifyOptions()), 'hcp.assertion-invalid', /alg/);
  });

  test('HS256 keyed with our public key (hcp.assertion-invalid)', async () => {
    const { token } = await issueHcpAssertion(issueOptions());
    const [, payload = ''] = token.split('.');
    const header = b64({ alg: 'HS256', kid: ours.kid, typ: 'IUA-JWT' });
    const pem = createPublicKey({ key: { ...ours.publicJwk }, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
    for (const secret of [pem, JSON.stringify(ours.publicJwk)]) {
      const mac = createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url');
      await rejectsWith(verifyHcpAssertion(`${header}.${payload}.${mac}`, verifyOptions()), 'hcp.assertion-invalid', /alg/);
    }
  });

  test('a typ other than exactly IUA-JWT (JWT, iua-jwt, missing) (hcp.assertion-invalid)', async () => {
    const { claims } = await issueHcpAssertion(issueOptions());
    for (const header of [
      { alg: 'ES256', kid: ours.kid, typ: 'JWT' },
      { alg: 'ES256', kid: ours.kid, typ: 'iua-jwt' },
      { alg: 'ES256', kid: ours.kid },
    ]) {
      await rejectsWith(verifyHcpAssertion(await signWith(ours, claims, header), verifyOptions()), 'hcp.assertion-invalid', /typ/);
    }
  });

  test('a header carrying its own key (jwk) (hcp.assertion-invalid)', async () => {
    const { claims } = await issueHcpAssertion(issueOptions());
    const token = await signWith(ours, claims, { alg: 'ES256', kid: ours.kid, typ: 'IUA-JWT', jwk: ours.publicJwk });
    await rejectsWith(verifyHcpAssertion(token, verifyOptions()), 'hcp.assertion-invalid', /jwk/);
  });

  test('a wrong issuer (hcp.assertion-invalid)', async () => {
    const { token } = await issueHcpAssertion(issueOptions());
    await rejectsWith(verifyHcpAssertion(token, verifyOptions({ expectedIss: 'urn:ncpeh:ncp:DK' })), 'hcp.assertion-invalid', /issuer/);
    const forged = await tampered((c) => ({ ...c, iss: 'urn:ncpeh:ncp:DK' }));
    await rejectsWith(verifyHcpAssertion(forged, verifyOptions()), 'hcp.assertion-invalid', /issuer/);
  });

  test('a wrong audience (hcp.assertion-invalid)', async () => {
    const token = await tampered((c) => ({ ...c, aud: 'https://api.es.example/api/v1' }));
    await rejectsWith(verifyHcpAssertion(token, verifyOptions()), 'hcp.assertion-invalid', /audience/);
  });

  test('an eIDAS LoA below substantial (hcp.assertion-invalid)', async () => {
    const token = await tampered((c) => ({ ...c, extensions: { ...c.extensions, ncpeh: { ...c.extensions.ncpeh, loa: 'http://eidas.europa.eu/LoA/low' } } }));
    await rejectsWith(verifyHcpAssertion(token, verifyOptions()), 'hcp.assertion-invalid', /LoA/);
  });

  test('a role that is not an accepted ISCO-08 code (hcp.assertion-invalid)', async () => {
    const token = await tampered((c) => ({
      ...c,
      extensions: { ...c.extensions, ihe_iua: { ...c.extensions.ihe_iua, subject_role: [{ system: ISCO_08_SYSTEM, code: '2635', display: 'Social work' }] } },
    }));
    await rejectsWith(verifyHcpAssertion(token, verifyOptions()), 'hcp.assertion-invalid', /ISCO-08/);
  });

  test('a purpose of use the route does not allow (hcp.purpose-not-allowed)', async () => {
    const { token } = await issueHcpAssertion(issueOptions({ purposeOfUse: 'ETREAT' }));
    await rejectsWith(verifyHcpAssertion(token, verifyOptions({ allowedPurposes: ['TREAT'] })), 'hcp.purpose-not-allowed');
  });

  test('a purpose outside TREAT/ETREAT, e.g. BTG (hcp.purpose-not-allowed)', async () => {
    const token = await tampered((c) => ({
      ...c,
      extensions: { ...c.extensions, ihe_iua: { ...c.extensions.ihe_iua, purpose_of_use: [{ system: V3_ACT_REASON_SYSTEM, code: 'BTG' }] } },
    }));
    await rejectsWith(verifyHcpAssertion(token, verifyOptions()), 'hcp.purpose-not-allowed');
  });

  test('claims missing an IUA extension member (hcp.assertion-invalid)', async () => {
    const token = await tampered((c) => {
      const { subject_organization: _dropped, ...rest } = c.extensions.ihe_iua;
      return { ...c, extensions: { ...c.extensions, ihe_iua: rest } };
    });
    await rejectsWith(verifyHcpAssertion(token, verifyOptions()), 'hcp.assertion-invalid');
  });

  test('garbage instead of a compact JWS (hcp.assertion-invalid)', async () => {
    await rejectsWith(verifyHcpAssertion('not-a-jwt', verifyOptions()), 'hcp.assertion-invalid');
  });
});

describe('HCP assertion on the peer API: issued by the calling country', () => {
  let deployment: TestDeployment;
  let list: TrustList;
  let dkKey: SigningKey;

  before(async () => {
    deployment = await createTestDeployment({ countries: ['DK', 'ES'] });
    const anchor: unknown = JSON.parse(await readFile(deployment.pki.ca.signingPubJwk, 'utf8'));
    const verified = await verifyTrustList((await readFile(deployment.trustListFile, 'utf8')).trim(), { anchorKeys: parseAnchorKeys([anchor]), now: new Date() });
    list = verified.list;
    const dk = deployment.pki.countries['DK'];
    assert.ok(dk);
    dkKey = await loadPrivateJwk(JSON.parse(await readFile(dk.signingJwk, 'utf8')), 'sig');
  });
  after(async () => {
    await deployment.cleanup();
  });

  async function issuedByDk(overrides: Partial<IssueHcpAssertionOptions> = {}): Promise<string> {
    const now = new Date();
    const dkEid: VerifiedEid = { ...eid, personId: 'DK/DK/9208-2002-2-274815369021', authTime: now };
    const gp: Professional = { ...ana, personId: dkEid.personId, name: 'Mette Jensen', facilityType: 'Resident Physician' };
    const { token } = await issueHcpAssertion({ ...issueOptions(), eid: dkEid, professional: gp, ourNcpId: 'urn:ncpeh:ncp:DK', country: 'DK', signingKey: dkKey, now, ...overrides });
    return token;
  }

  test("accepts an assertion signed with DK's trust-list key when DK is the caller", async () => {
    const assertion = await verifyPeerHcpAssertion(await issuedByDk(), list, 'DK', new Date());
    assert.equal(assertion.iss, 'urn:ncpeh:ncp:DK');
    assert.equal(assertion.extensions.ncpeh.country, 'DK');
  });

  test("refuses DK's assertion presented by ES as the caller (hcp.assertion-invalid)", async () => {
    await rejectsWith(verifyPeerHcpAssertion(await issuedByDk(), list, 'ES', new Date()), 'hcp.assertion-invalid', /kid/);
  });

  test('refuses an assertion signed with an untrusted key but claiming DK as issuer (hcp.assertion-invalid)', async () => {
    await rejectsWith(verifyPeerHcpAssertion(await issuedByDk({ signingKey: stranger }), list, 'DK', new Date()), 'hcp.assertion-invalid', /kid/);
  });

  test("refuses DK's key vouching for another country's professional (hcp.assertion-invalid)", async () => {
    await rejectsWith(verifyPeerHcpAssertion(await issuedByDk({ country: 'ES' }), list, 'DK', new Date()), 'hcp.assertion-invalid', /country/);
  });
});

describe('Bearer HCP assertion from the Authorization header', () => {
  test('reads the token after the Bearer scheme, case-insensitively (RFC 6750 section 2.1)', () => {
    assert.equal(bearerToken('Bearer abc.def.ghi'), 'abc.def.ghi');
    assert.equal(bearerToken('bearer abc.def.ghi'), 'abc.def.ghi');
  });

  test('a missing, empty or non-Bearer header gives hcp.assertion-missing', () => {
    for (const header of [undefined, '', 'Bearer', 'Bearer ', 'Basic dXNlcjpwYXNz', 'Bearer a b', 'Bearerabc']) {
      assert.throws(
        () => bearerToken(header),
        (e: unknown) => e instanceof GatewayError && e.code === 'hcp.assertion-missing',
        String(header),
      );
    }
  });
});
