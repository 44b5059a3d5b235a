import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { renderErrorsDoc } from '../scripts/errors-doc.js';
import { ERROR_CATALOGUE } from '../src/http/errors.js';
import { operationOutcome } from '../src/http/outcome.js';

describe('the error catalogue', () => {
  test('every code is dotted lower-case kebab and unique after normalisation', () => {
    const codes = Object.keys(ERROR_CATALOGUE);
    for (const code of codes) assert.match(code, /^[a-z][a-z0-9-]*\.[a-z][a-z0-9-]*$/, code);
    assert.equal(new Set(codes.map((c) => c.toLowerCase())).size, codes.length);
  });

  test('every code has an HTTP error status and a title', () => {
    for (const [code, spec] of Object.entries(ERROR_CATALOGUE)) {
      assert.ok(spec.status >= 400 && spec.status <= 599, code);
      assert.ok(spec.title.length > 10, code);
    }
  });

  test('docs/errors.md documents exactly the catalogue (run `npm run docs:errors` after a change)', () => {
    const committed = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');
    assert.equal(committed, renderErrorsDoc());
    for (const code of Object.keys(ERROR_CATALOGUE)) assert.ok(committed.includes(`| \`${code}\` |`), code);
  });

  test('an OperationOutcome carries the code, the issue type and no detail unless the code allows it', () => {
    const hidden = operationOutcome('envelope.signature-invalid', { diagnostics: undefined, correlationId: 'c-1' });
    assert.equal(hidden.id, 'c-1');
    assert.equal(hidden.issue[0]?.code, 'security');
    assert.deepEqual(hidden.issue[0]?.details.coding, [{ system: 'urn:ncpeh:error', code: 'envelope.signature-invalid' }]);
    assert.equal(hidden.issue[0]?.diagnostics, undefined);
  });
});
