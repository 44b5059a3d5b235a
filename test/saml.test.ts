import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import { DOMParser } from '@xmldom/xmldom';
import { SignedXml } from 'xml-crypto';
import { MemoryReplayStore } from '../src/crossborder/replay-store.js';
import { GatewayError } from '../src/http/errors.js';
import { EIDAS_NATURAL_PERSON, XMLDSIG, createSamlVerifier } from '../src/identity/saml.js';
import type { SamlVerifier, SamlVerifierOptions } from '../src/identity/saml.js';
import { STATUS, attacks, createSamlIdp, createSigningKey, fromBase64, toBase64 } from '../sandbox/saml-idp.js';
import type { ResponseOptions, SamlIdp, SamlSigningKey } from '../sandbox/saml-idp.js';

const IDP_ENTITY_ID = 'https://eidas.es.sandbox/EidasNode/ConnectorMetadata';
const SP_ENTITY_ID = 'https://ncp.dk.sandbox/saml/metadata';
const ACS_URL = 'https://ncp.dk.sandbox/api/v1/auth/saml/acs';
const XMLDSIG_NS = 'http://www.w3.org/2000/09/xmldsig#';
const T0 = new Date('2026-03-02T10:00:00.000Z');

let idpKey: SamlSigningKey;
let attackerKey: SamlSigningKey;
let idp: SamlIdp;

before(async () => {
  [idpKey, attackerKey] = await Promise.all([createSigningKey({ now: T0 }), createSigningKey({ now: T0, commonName: 'Attacker' })]);
  idp = createSamlIdp({ entityId: IDP_ENTITY_ID, key: idpKey, now: () => T0 });
});

function verifier(overrides: Partial<SamlVerifierOptions> = {}): SamlVerifier {
  return createSamlVerifier({
    providerId: 'es-eidas',
    idpEntityId: IDP_ENTITY_ID,
    idpCertsPem: [idpKey.certPem],
    spEntityId: SP_ENTITY_ID,
    acsUrl: ACS_URL,
    replay: new MemoryReplayStore({ now: () => T0 }),
    now: () => T0,
    ...overrides,
  });
}

function responseOptions(overrides: Partial<ResponseOptions> = {}): ResponseOptions {
  return { audience: SP_ENTITY_ID, acsUrl: ACS_URL, ...overrides };
}

async function assertRefused(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof GatewayError, `expected a GatewayError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return true;
  });
}

/** Whether every signature in `xml` still verifies with the IdP key: proves an attack kept them intact. */
function signaturesStillVerify(xml: string): boolean {
  const signatures = Array.from(new DOMParser().parseFromString(xml, 'text/xml').getElementsByTagNameNS(XMLDSIG_NS, 'Signature'));
  return (
    signatures.length === 2 &&
    signatures.every((signature) => {
      const signedXml = new SignedXml({ publicCert: idpKey.certPem, getCertFromKeyInfo: () => null });
      signedXml.loadSignature(signature);
      return signedXml.checkSignature(xml);
    })
  );
}

describe('eIDAS SAML Response verification', () => {
  describe('a valid response', () => {
    test('accepts a signed Response and Assertion and maps the eIDAS attributes', async () => {
      const eid = await verifier().verify(idp.response(responseOptions({ assertionId: '_a1', loa: 'high' })));
      assert.deepEqual(eid, {
        protocol: 'saml',
        providerId: 'es-eidas',
        issuer: IDP_ENTITY_ID,
        personId: 'ES/DK/12345678Z',
        givenName: 'Lucía',
        familyName: 'García López',
        birthDate: '1980-04-23',
        loa: 'high',
        authTime: T0,
        assertionId: '_a1',
        expiresAt: new Date(T0.getTime() + 300_000),
      });
    });

    test('accepts the answer to our AuthnRequest when InResponseTo matches', async () => {
      const eid = await verifier().verify(idp.response(responseOptions({ inResponseTo: '_req1' })), { expectedInResponseTo: '_req1' });
      assert.equal(eid.loa, 'substantial');
    });

    test('accepts an ECDSA-SHA256 signature from a pinned EC certificate', async () => {
      const ecKey = await createSigningKey({ keyType: 'ec', now: T0 });
      const ecIdp = createSamlIdp({ entityId: IDP_ENTITY_ID, key: ecKey, now: () => T0 });
      const eid = await verifier({ idpCertsPem: [ecKey.certPem] }).verify(ecIdp.response(responseOptions()));
      assert.equal(eid.personId, 'ES/DK/12345678Z');
    });

    test('accepts a response signed with the second of two pinned certificates (key rollover)', async () => {
      const nextKey = await createSigningKey({ now: T0 });
      const nextIdp = createSamlIdp({ entityId: IDP_ENTITY_ID, key: nextKey, now: () => T0 });
      const eid = await verifier({ idpCertsPem: [idpKey.certPem, nextKey.certPem] }).verify(nextIdp.response(responseOptions()));
      assert.equal(eid.issuer, IDP_ENTITY_ID);
    });

    test('accepts base64 wrapped in lines as the POST binding allows', async () => {
      const wrapped = idp.response(responseOptions()).replace(/.{76}/g, '$&\r\n');
      assert.equal((await verifier().verify(wrapped)).protocol, 'saml');
    });

    test('accepts a response within the clock skew after NotOnOrAfter', async () => {
      const response = idp.response(responseOptions());
      const eid = await verifier({ now: () => new Date(T0.getTime() + 300_000 + 30_000) }).verify(response);
      assert.equal(eid.personId, 'ES/DK/12345678Z');
    });
  });

  describe('signatures', () => {
    test('rejects a response in which neither the Response nor the Assertion is signed', async () => {
      await assertRefused(verifier().verify(idp.response(responseOptions({ signResponse: false, signAssertion: false }))), 'eid.unsigned');
    });

    test('rejects a signed Response whose Assertion is not signed', async () => {
      await assertRefused(verifier().verify(idp.response(responseOptions({ signAssertion: false }))), 'eid.unsigned');
    });

    test('rejects a signed Assertion in an unsigned Response', async () => {
      await assertRefused(verifier().verify(idp.response(responseOptions({ signResponse: false }))), 'eid.unsigned');
    });

    test('rejects a response re-signed by an attacker whose certificate is in KeyInfo', async () => {
      const attacker = createSamlIdp({ entityId: IDP_ENTITY_ID, key: attackerKey, now: () => T0 });
      const xml = attacker.responseXml(responseOptions({ attributes: { personIdentifier: 'ES/DK/VICTIM' } }));
      assert.match(xml, /<ds:X509Certificate>/);
      await assertRefused(verifier().verify(toBase64(xml)), 'eid.signature-invalid');
    });

    test('rejects an attribute value changed after signing', async () => {
      const xml = attacks.tamperAttribute(idp.responseXml(responseOptions()), EIDAS_NATURAL_PERSON.personIdentifier, 'ES/DK/VICTIM');
      await assertRefused(verifier().verify(toBase64(xml)), 'eid.signature-invalid');
    });

    test('rejects an RSA-SHA1 signature', async () => {
      const response = idp.response(responseOptions({ signatureAlgorithm: XMLDSIG.rsaSha1 }));
      await assertRefused(verifier().verify(response), 'eid.algorithm-forbidden');
    });

    test('rejects a SHA-1 reference digest', async () => {
      const response = idp.response(responseOptions({ digestAlgorithm: XMLDSIG.sha1 }));
      await assertRefused(verifier().verify(response), 'eid.algorithm-forbidden');
    });
  });

  describe('signature wrapping', () => {
    test('rejects an extra unsigned Assertion inserted before the signed one', async () => {
      const xml = attacks.extraAssertionBefore(idp.responseXml(responseOptions()));
      await assertRefused(verifier().verify(toBase64(xml)), 'eid.wrapped');
    });

    test('rejects the signed Assertion moved into Extensions with an evil one in its place', async () => {
      const xml = attacks.signedAssertionIntoExtensions(idp.responseXml(responseOptions()));
      await assertRefused(verifier().verify(toBase64(xml)), 'eid.wrapped');
    });

    test('rejects the signed Assertion moved into the Advice of an evil one', async () => {
      const xml = attacks.signedAssertionIntoAdvice(idp.responseXml(responseOptions()));
      await assertRefused(verifier().verify(toBase64(xml)), 'eid.wrapped');
    });

    test('rejects a document in which two elements carry the same ID', async () => {
      const xml = attacks.duplicateAssertionId(idp.responseXml(responseOptions()));
      await assertRefused(verifier().verify(toBase64(xml)), 'eid.wrapped');
    });

    test('rejects a Response signature whose Reference points at another element', async () => {
      const xml = attacks.assertionSignatureOnResponse(idp.responseXml(responseOptions({ signResponse: false })));
      await assertRefused(verifier().verify(toBase64(xml)), 'eid.wrapped');
    });

    test('rejects a comment inside NameID even though the signatures still verify', async () => {
      const xml = attacks.commentInNameId(idp.responseXml(responseOptions()), 'ES/DK/1234'.length);
      assert.match(xml, /<saml:NameID[^>]*>ES\/DK\/1234<!---->5678Z<\/saml:NameID>/);
      assert.ok(signaturesStillVerify(xml), 'the attack must leave the signatures valid');
      await assertRefused(verifier().verify(toBase64(xml)), 'eid.malformed');
    });
  });

  describe('addressing and timing', () => {
    test('rejects a response whose Issuer is not the configured IdP', async () => {
      const other = createSamlIdp({ entityId: 'https://eidas.fr.sandbox/idp', key: idpKey, now: () => T0 });
      await assertRefused(verifier().verify(other.response(responseOptions())), 'eid.unknown-issuer');
    });

    test('rejects an assertion whose Issuer differs from the Response Issuer', async () => {
      const response = idp.response(responseOptions({ assertionIssuer: 'https://eidas.fr.sandbox/idp' }));
      await assertRefused(verifier().verify(response), 'eid.unknown-issuer');
    });

    test('rejects an assertion addressed to another audience', async () => {
      const response = idp.response(responseOptions({ audience: 'https://ncp.se.sandbox/saml/metadata' }));
      await assertRefused(verifier().verify(response), 'eid.wrong-audience');
    });

    test('rejects a SubjectConfirmation Recipient other than our ACS', async () => {
      const response = idp.response(responseOptions({ recipient: 'https://ncp.se.sandbox/acs' }));
      await assertRefused(verifier().verify(response), 'eid.wrong-recipient');
    });

    test('rejects a Response Destination other than our ACS', async () => {
      const response = idp.response(responseOptions({ destination: 'https://ncp.se.sandbox/acs' }));
      await assertRefused(verifier().verify(response), 'eid.wrong-recipient');
    });

    test('rejects a Response without Destination', async () => {
      await assertRefused(verifier().verify(idp.response(responseOptions({ destination: null }))), 'eid.wrong-recipient');
    });

    test('rejects a response that answers another AuthnRequest', async () => {
      const response = idp.response(responseOptions({ inResponseTo: '_someone-elses-request' }));
      await assertRefused(verifier().verify(response, { expectedInResponseTo: '_req1' }), 'eid.wrong-request');
    });

    test('rejects an unsolicited response when we expect the answer to our AuthnRequest', async () => {
      await assertRefused(verifier().verify(idp.response(responseOptions()), { expectedInResponseTo: '_req1' }), 'eid.wrong-request');
    });

    test('rejects a SubjectConfirmationData InResponseTo that differs from the Response', async () => {
      const response = idp.response(responseOptions({ inResponseTo: '_req1', subjectInResponseTo: '_other' }));
      await assertRefused(verifier().verify(response, { expectedInResponseTo: '_req1' }), 'eid.wrong-request');
    });

    test('rejects an assertion past NotOnOrAfter beyond the clock skew', async () => {
      const response = idp.response(responseOptions());
      await assertRefused(verifier({ now: () => new Date(T0.getTime() + 300_000 + 61_000) }).verify(response), 'eid.expired');
    });

    test('rejects an assertion whose Conditions expired while the confirmation is still valid', async () => {
      const response = idp.response(responseOptions({ notOnOrAfter: new Date(T0.getTime() - 120_000), subjectNotOnOrAfter: new Date(T0.getTime() + 300_000) }));
      await assertRefused(verifier().verify(response), 'eid.expired');
    });

    test('rejects an assertion that is not yet valid beyond the clock skew', async () => {
      const response = idp.response(responseOptions({ notBefore: new Date(T0.getTime() + 120_000) }));
      await assertRefused(verifier().verify(response), 'eid.expired');
    });

    test('rejects the second use of the same assertion', async () => {
      const v = verifier();
      const response = idp.response(responseOptions());
      await v.verify(response);
      await assertRefused(v.verify(response), 'eid.replayed');
    });
  });

  describe('content', () => {
    test('rejects level of assurance low', async () => {
      await assertRefused(verifier().verify(idp.response(responseOptions({ loa: 'low' }))), 'eid.insufficient-loa');
    });

    test('rejects an AuthnContextClassRef that is not an eIDAS level', async () => {
      const response = idp.response(responseOptions({ loa: { uri: 'urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport' } }));
      await assertRefused(verifier().verify(response), 'eid.insufficient-loa');
    });

    test('rejects an assertion without PersonIdentifier', async () => {
      const response = idp.response(responseOptions({ attributes: { personIdentifier: null } }));
      await assertRefused(verifier().verify(response), 'eid.missing-attribute');
    });

    test('rejects a PersonIdentifier not of the form CC/CC/identifier', async () => {
      const response = idp.response(responseOptions({ attributes: { personIdentifier: '12345678Z' } }));
      await assertRefused(verifier().verify(response), 'eid.malformed');
    });

    test('rejects a DateOfBirth that is not a calendar date', async () => {
      const response = idp.response(responseOptions({ attributes: { dateOfBirth: '1980-02-30' } }));
      await assertRefused(verifier().verify(response), 'eid.malformed');
    });

    test('maps optional attributes the IdP did not send to undefined', async () => {
      const response = idp.response(responseOptions({ attributes: { familyName: null, givenName: null, dateOfBirth: null } }));
      const eid = await verifier().verify(response);
      assert.equal(eid.familyName, undefined);
      assert.equal(eid.givenName, undefined);
      assert.equal(eid.birthDate, undefined);
    });

    test('rejects a response whose status is not Success', async () => {
      await assertRefused(verifier().verify(idp.response(responseOptions({ statusCode: STATUS.responder }))), 'eid.login-failed');
    });
  });

  describe('input', () => {
    test('rejects a DOCTYPE with an external entity (XXE) before parsing', async () => {
      const xml = attacks.withDoctype(idp.responseXml(responseOptions()));
      await assertRefused(verifier().verify(toBase64(xml)), 'eid.doctype-forbidden');
    });

    test('rejects a processing instruction inside the document', async () => {
      const xml = idp.responseXml(responseOptions()).replace('<samlp:Status>', '<?xml-stylesheet href="x.xsl"?><samlp:Status>');
      await assertRefused(verifier().verify(toBase64(xml)), 'eid.malformed');
    });

    test('rejects garbage that is not base64', async () => {
      await assertRefused(verifier().verify('this is *not* base64!'), 'eid.malformed');
    });

    test('rejects base64 that does not decode to XML', async () => {
      await assertRefused(verifier().verify(toBase64('not xml at all')), 'eid.malformed');
    });

    test('rejects a document whose root is not a SAML protocol Response', async () => {
      const xml = fromBase64(idp.response(responseOptions())).replace(/urn:oasis:names:tc:SAML:2\.0:protocol/g, 'urn:example:not-saml');
      await assertRefused(verifier().verify(toBase64(xml)), 'eid.malformed');
    });

    test('rejects a response larger than the configured limit', async () => {
      const response = idp.response(responseOptions());
      await assertRefused(verifier({ maxResponseBytes: 2048 }).verify(response), 'request.too-large');
    });

    test('rejects an oversize input before decoding it', async () => {
      await assertRefused(verifier().verify('A'.repeat(600 * 1024)), 'request.too-large');
    });
  });
});
