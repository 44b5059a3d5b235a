// The summary handed to the EHR: the Bundle with the provider's JWS as Bundle.signature.data, built
// by splicing the base64 text into the serialised Bundle (consumer-routes.ts, withSignature).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { withSignature } from '../src/crossborder/consumer-routes.js';

const signature = { type: [{ system: 'urn:iso-astm:E1762-95:2013', code: '1.2.840.10065.1.12.1.5' }], when: '2026-11-24T10:00:00.000Z', sigFormat: 'application/jose' };

test('the answer is what JSON.stringify of the Bundle with its signature gives, signature last', () => {
  const bundle = {
    resourceType: 'Bundle',
    type: 'document',
    entry: [{ resource: { resourceType: 'Composition', title: 'Résumé "quoted" \\ \u2028 </script>', text: { div: '<div xmlns="http://www.w3.org/1999/xhtml">ü</div>' } } }],
  };
  const jws = 'eyJhbGciOiJFUzI1NiJ9.eyJhIjoxfQ.c2ln';
  const out = withSignature(bundle, signature, jws);
  const expected = JSON.stringify({ ...bundle, signature: { ...signature, data: Buffer.from(jws).toString('base64') } });
  assert.equal(out.toString('utf8'), expected);
  const parsed = JSON.parse(out.toString('utf8')) as { signature: { data: string } };
  assert.equal(Buffer.from(parsed.signature.data, 'base64').toString('utf8'), jws);
  assert.equal(Object.keys(parsed).at(-1), 'signature');
});

test('a signature the Bundle already carried is replaced, not kept beside ours', () => {
  const out = JSON.parse(withSignature({ resourceType: 'Bundle', signature: { data: 'b3RoZXI=', sigFormat: 'x' }, type: 'document' }, signature, 'a.b.c').toString('utf8')) as Record<string, unknown>;
  assert.deepEqual(Object.keys(out), ['resourceType', 'type', 'signature']);
  assert.deepEqual(out['signature'], { ...signature, data: Buffer.from('a.b.c').toString('base64') });
});

test('an empty object and a signature with non-ASCII text serialise exactly as JSON.stringify does', () => {
  const withName = { ...signature, who: { display: 'Punto de Contacto Nacional de España · ü' } };
  for (const bundle of [{}, { resourceType: 'Bundle', id: 'ñ' }]) {
    const out = withSignature(bundle, withName, 'x.y.z');
    assert.equal(out.toString('utf8'), JSON.stringify({ ...bundle, signature: { ...withName, data: Buffer.from('x.y.z').toString('base64') } }));
  }
});
