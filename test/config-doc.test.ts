import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { renderConfigDoc } from '../scripts/config-doc.js';
import { ENV_OVERRIDES } from '../src/config/load.js';
import { ConfigSchema } from '../src/config/schema.js';

describe('the configuration reference', () => {
  test('docs/configuration.md is exactly what the schema generates (run `npm run docs:config` after a change)', () => {
    const committed = readFileSync(new URL('../docs/configuration.md', import.meta.url), 'utf8');
    assert.equal(committed, renderConfigDoc());
  });

  test('documents every top-level section and every environment override', () => {
    const doc = renderConfigDoc();
    for (const key of Object.keys(ConfigSchema.shape)) assert.ok(doc.includes(`| \`${key}\` |`), key);
    for (const o of ENV_OVERRIDES) assert.ok(doc.includes(`| \`${o.env}\` | \`${o.path.join('.')}\` |`), o.env);
  });

  test('shows defaults, required fields and nested array items', () => {
    const doc = renderConfigDoc();
    assert.match(doc, /\| `api\.port` \| integer \(0\.\.65535\) \| {2}\| yes \|/);
    assert.match(doc, /\| `policy\.clockSkewSeconds` \| integer \(0\.\.300\) \| `60` \| no \|/);
    assert.match(doc, /\| `eid\.saml\[\]\.idpCertFiles` \| array of string \(at least 1\) \| {2}\| yes \|/);
  });
});
