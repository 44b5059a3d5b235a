import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { isGatewayError } from '../src/http/errors.js';
import { WITHHELD_SECTION_TEXT, filterIpsBySections } from '../src/national/ips-filter.js';
import { IPS_LIMITS, REQUIRED_SECTIONS, validateIpsDocument } from '../src/national/ips.js';

const VALID_DIR = new URL('../sandbox/data/ips/', import.meta.url);
const NEGATIVE = new URL('./fixtures/ips-negative/eu-eps-bundle-null-entry-1.json', import.meta.url);
const FIXTURES = readdirSync(VALID_DIR).filter((f) => f.endsWith('.json')).sort();
const text = (name: string): string => readFileSync(new URL(name, VALID_DIR), 'utf8');

const PROBLEMS = '11450-4';
const ALLERGIES = '48765-2';
const MEDICATIONS = '10160-0';

// Every assert.ok carries a message: without one, node:assert re-reads the (tsx-transformed) source to
// describe the failure, which can hang the run instead of reporting it.

/** Asserts that validation refuses `input` with document.invalid, naming `rule` (and `expression` if given). */
function assertRefused(input: unknown, rule: string, expression?: string): void {
  assert.throws(
    () => validateIpsDocument(input),
    (e: unknown) => {
      assert.ok(isGatewayError(e), 'a GatewayError');
      assert.equal(e.code, 'document.invalid');
      assert.ok(e.detail?.includes(`${rule}:`), `detail names ${rule}: ${e.detail ?? ''}`);
      if (expression !== undefined) assert.ok(e.expression.includes(expression), `expression has ${expression}: ${e.expression.join(', ')}`);
      return true;
    },
  );
}

const MINIMAL = text('ips-ig-bundle-minimal.json');

function sectionIndex(bundle: { entry: { resource: { section: { code: { coding: { code: string }[] } }[] } }[] }, code: string): number {
  return bundle.entry[0]!.resource.section.findIndex((s) => s.code.coding.some((c) => c.code === code));
}

describe('validateIpsDocument: the valid fixtures', () => {
  test('there are valid fixtures to test', () => assert.ok(FIXTURES.length >= 6, FIXTURES.join(', ')));
  for (const name of FIXTURES) {
    test(`accepts ${name}`, () => {
      const input = JSON.parse(text(name));
      const snapshot = structuredClone(input);
      const doc = validateIpsDocument(input);
      assert.equal(doc.bundle, input);
      assert.deepEqual(input, snapshot, 'validation does not mutate');
      assert.equal(doc.composition.resourceType, 'Composition');
      assert.equal(doc.patient.resourceType, 'Patient');
      for (const code of REQUIRED_SECTIONS.keys()) assert.ok(doc.sectionsByCode.has(code), code);
    });
  }
});

describe('validateIpsDocument: the negative fixture', () => {
  const negative = JSON.parse(readFileSync(NEGATIVE, 'utf8'));

  test('refuses eu-eps-bundle-null-entry-1.json, naming the null entry', () => {
    assertRefused(negative, 'bundle-entry', 'Bundle.entry[2]');
    assert.throws(() => validateIpsDocument(negative), /entry 2 is null/);
  });

  test('also refuses its dangling Composition.author and its bare-id asserter references', () => {
    assertRefused(negative, 'reference-resolves', 'Bundle.entry[0].resource.author[0].reference');
    assertRefused(negative, 'reference-resolves', 'Bundle.entry[3].resource.asserter.reference');
  });

  test('its relative Patient/<id> references resolve by type and id, as in ips-ig-bundle-01 (not a cause)', () => {
    try {
      validateIpsDocument(negative);
      assert.fail('must be refused');
    } catch (e) {
      assert.ok(isGatewayError(e), 'a GatewayError');
      assert.ok(!e.expression.some((x) => x.endsWith('.subject.reference') || x.endsWith('.patient.reference')), e.expression.join(', '));
    }
  });

  test('stays refused without the null entry (the references are broken on their own)', () => {
    const copy = structuredClone(negative);
    copy.entry.splice(2, 1);
    assertRefused(copy, 'reference-resolves');
  });
});

describe('validateIpsDocument: each rule refuses', () => {
  test('input that is not a JSON object Bundle', () => {
    for (const input of [null, 'Bundle', [], { resourceType: 'Patient' }]) assertRefused(input, 'bundle-resource');
  });

  test('bundle-type: a collection Bundle', () => {
    const b = JSON.parse(MINIMAL);
    b.type = 'collection';
    assertRefused(b, 'bundle-type', 'Bundle.type');
  });

  test('bdl-9: a document without identifier system and value', () => {
    const b = JSON.parse(MINIMAL);
    delete b.identifier;
    assertRefused(b, 'bdl-9');
  });

  test('bdl-10: a timestamp that is missing or not an instant', () => {
    for (const timestamp of [undefined, '2020-12-11', '2020-13-11T14:30:00Z', '2020-12-11T14:30:00']) {
      const b = JSON.parse(MINIMAL);
      b.timestamp = timestamp;
      assertRefused(b, 'bdl-10', 'Bundle.timestamp');
    }
  });

  test('bundle-entry: no entries, or an entry that is not an object', () => {
    const empty = JSON.parse(MINIMAL);
    empty.entry = [];
    assertRefused(empty, 'bundle-entry');
    const withString = JSON.parse(MINIMAL);
    withString.entry.push('urn:uuid:x');
    assertRefused(withString, 'bundle-entry', 'Bundle.entry[8]');
  });

  test('bdl-11: the Composition is not the first entry', () => {
    const b = JSON.parse(MINIMAL);
    [b.entry[0], b.entry[1]] = [b.entry[1], b.entry[0]];
    assertRefused(b, 'bdl-11', 'Bundle.entry[0].resource');
  });

  test('bdl-ips-1: a second Composition', () => {
    const b = JSON.parse(MINIMAL);
    const second = structuredClone(b.entry[0]);
    second.fullUrl = 'urn:uuid:0b0f5f6e-3f55-4a4e-9c8e-9a1f0e3b7c11';
    second.resource.id = '0b0f5f6e-3f55-4a4e-9c8e-9a1f0e3b7c11';
    b.entry.push(second);
    assertRefused(b, 'bdl-ips-1', 'Bundle.entry[8].resource');
  });

  test('ips-patient: no Patient, or two', () => {
    const none = JSON.parse(MINIMAL);
    none.entry.splice(1, 1);
    assertRefused(none, 'ips-patient');
    const two = JSON.parse(MINIMAL);
    const copy = structuredClone(two.entry[1]);
    copy.fullUrl = 'urn:uuid:6f1c9a52-8d0e-4c43-bb0a-2f4c1f0f7d21';
    two.entry.push(copy);
    assertRefused(two, 'ips-patient');
  });

  test('ips-required-section: a required section missing', () => {
    const b = JSON.parse(MINIMAL);
    b.entry[0].resource.section.splice(sectionIndex(b, ALLERGIES), 1);
    assertRefused(b, 'ips-required-section');
  });

  test('ips-comp-1: a required section with neither entry nor emptyReason', () => {
    const b = JSON.parse(MINIMAL);
    delete b.entry[0].resource.section[sectionIndex(b, MEDICATIONS)].entry;
    assertRefused(b, 'ips-comp-1');
  });

  test('section-nested: a section inside a section', () => {
    const b = JSON.parse(MINIMAL);
    const problems = b.entry[0].resource.section[sectionIndex(b, PROBLEMS)];
    problems.section = [structuredClone(problems)];
    assertRefused(b, 'section-nested');
  });

  test('section-text: a section without narrative', () => {
    const b = JSON.parse(MINIMAL);
    delete b.entry[0].resource.section[0].text;
    assertRefused(b, 'section-text', 'Bundle.entry[0].resource.section[0].text');
  });

  test('section-title and section-code: a section carried by emptyReason still needs both', () => {
    const b = JSON.parse(text('ips-ig-bundle-no-info-required-sections.json'));
    const section = b.entry[0].resource.section[sectionIndex(b, ALLERGIES)];
    delete section.title;
    section.code = { text: 'Allergies' };
    assertRefused(b, 'section-title');
    assertRefused(b, 'section-code');
  });

  test('cmp-2: a section with entries and an emptyReason', () => {
    const b = JSON.parse(MINIMAL);
    b.entry[0].resource.section[0].emptyReason = { coding: [{ code: 'unavailable' }] };
    assertRefused(b, 'cmp-2');
  });

  test('section-unique: two sections with the same code', () => {
    const b = JSON.parse(MINIMAL);
    b.entry[0].resource.section.push(structuredClone(b.entry[0].resource.section[0]));
    assertRefused(b, 'section-unique');
  });

  test('ips-composition-type: a Composition that is not a Patient Summary', () => {
    const b = JSON.parse(MINIMAL);
    b.entry[0].resource.type = { coding: [{ system: 'http://loinc.org', code: '34133-9' }] };
    assertRefused(b, 'ips-composition-type');
  });

  test('composition-date, composition-author, composition-title: missing header elements', () => {
    for (const [key, rule] of [['date', 'composition-date'], ['author', 'composition-author'], ['title', 'composition-title']] as const) {
      const b = JSON.parse(MINIMAL);
      delete b.entry[0].resource[key];
      assertRefused(b, rule);
    }
  });

  test('composition-subject: a subject that is not the Patient entry', () => {
    const b = JSON.parse(MINIMAL);
    b.entry[0].resource.subject = { reference: b.entry[2].fullUrl };
    assertRefused(b, 'composition-subject');
  });

  test('reference-resolves: a dangling reference, without echoing its value', () => {
    const b = JSON.parse(MINIMAL);
    b.entry[4].resource.subject = { reference: 'urn:uuid:5ec2e7aa-0000-4000-8000-000000000001' };
    assertRefused(b, 'reference-resolves', 'Bundle.entry[4].resource.subject.reference');
    assert.throws(() => validateIpsDocument(b), (e: unknown) => isGatewayError(e) && !(e.detail ?? '').includes('5ec2e7aa'));
  });

  test('reference-resolves: a bare id is not a reference', () => {
    const b = JSON.parse(MINIMAL);
    b.entry[4].resource.asserter = { reference: '98315ba9-ffea-41ef-b59b-a836c039858f' };
    assertRefused(b, 'reference-resolves', 'Bundle.entry[4].resource.asserter.reference');
  });

  test('reference-resolves: Type/id from a urn:uuid entry must match exactly one entry', () => {
    const b = JSON.parse(text('ips-ig-bundle-01.json'));
    const practitioner = structuredClone(b.entry[2]);
    assert.equal(practitioner.resource.resourceType, 'Practitioner');
    practitioner.fullUrl = 'urn:uuid:3c8e0b0a-5a8f-4c55-9a55-6f3b8d1a2e10';
    b.entry.push(practitioner);
    assertRefused(b, 'reference-resolves', 'Bundle.entry[0].resource.author[0].reference');
  });

  test('reference-resolves: Type/id from a RESTful entry resolves against its base only', () => {
    const b = JSON.parse(text('ips-ig-bundle-no-info-required-sections.json'));
    assert.doesNotThrow(() => validateIpsDocument(b));
    b.entry[1].fullUrl = 'https://elsewhere.example/fhir/Patient/AAA1234';
    assertRefused(b, 'reference-resolves', 'Bundle.entry[0].resource.subject.reference');
  });

  test('reference-resolves: the same Type/id resolves against each entry\'s own base, not the first one seen', () => {
    const b = JSON.parse(text('ips-ig-bundle-no-info-required-sections.json'));
    // Entry 6 moves to another server: its `Patient/AAA1234` now means a Patient there, which the
    // document does not hold, while the identical references of the Composition (resolved first) and
    // of entry 7 still resolve. (The Composition's reference to entry 6 breaks too: its fullUrl moved.)
    b.entry[6].fullUrl = `https://elsewhere.example/fhir/Immunization/${b.entry[6].resource.id}`;
    assert.throws(
      () => validateIpsDocument(b),
      (e: unknown) =>
        isGatewayError(e) &&
        e.expression.includes('Bundle.entry[6].resource.patient.reference') &&
        !e.expression.includes('Bundle.entry[0].resource.subject.reference') &&
        !e.expression.includes('Bundle.entry[7].resource.patient.reference'),
    );
    // And the other way round: resolved first from the other base, then from the document's own.
    const c = JSON.parse(text('ips-ig-bundle-no-info-required-sections.json'));
    c.entry[7].fullUrl = `https://elsewhere.example/fhir/Immunization/${c.entry[7].resource.id}`;
    const [seventh] = c.entry.splice(7, 1);
    c.entry.splice(1, 0, seventh);
    assert.throws(
      () => validateIpsDocument(c),
      (e: unknown) =>
        isGatewayError(e) &&
        e.expression.includes('Bundle.entry[1].resource.patient.reference') &&
        !e.expression.includes('Bundle.entry[0].resource.subject.reference') &&
        !e.expression.includes('Bundle.entry[7].resource.patient.reference'),
    );
  });

  test('reference-resolves: #id is resolved in the resource it is found in, not in one seen before', () => {
    const b = JSON.parse(text('au-ps-basicsummary.json'));
    const index = b.entry.findIndex((e: { resource: { contained?: unknown } }) => e.resource.contained !== undefined);
    const copy = structuredClone(b.entry[index]);
    delete copy.resource.contained;
    copy.resource.id = '0c3c4a4f-6a3e-4a4f-9d65-2f9f8b9c1d01';
    copy.fullUrl = `urn:uuid:${copy.resource.id}`;
    b.entry.push(copy);
    const pushed = b.entry.length - 1;
    assert.throws(
      () => validateIpsDocument(b),
      (e: unknown) =>
        isGatewayError(e) && e.expression.length === 1 && (e.expression[0] ?? '').startsWith(`Bundle.entry[${pushed}].resource.`) && (e.expression[0] ?? '').endsWith('.reference'),
    );
  });

  test('reference-resolves: a dangling reference inside a contained resource is named by its path there', () => {
    const b = JSON.parse(text('au-ps-basicsummary.json'));
    const index = b.entry.findIndex((e: { resource: { contained?: unknown } }) => e.resource.contained !== undefined);
    b.entry[index].resource.contained[0].manufacturer = { reference: 'Organization/no-such-organization' };
    assertRefused(b, 'reference-resolves', `Bundle.entry[${index}].resource.contained[0].manufacturer.reference`);
  });

  test('reference-resolves: #id must name a contained resource', () => {
    const b = JSON.parse(text('au-ps-basicsummary.json'));
    assert.doesNotThrow(() => validateIpsDocument(b));
    const statement = b.entry.find((e: { resource: { contained?: unknown } }) => e.resource.contained !== undefined);
    statement.resource.contained[0].id = 'renamed';
    assertRefused(b, 'reference-resolves');
  });

  test('bdl-7: a duplicate fullUrl', () => {
    const b = JSON.parse(MINIMAL);
    b.entry[5].fullUrl = b.entry[4].fullUrl;
    assertRefused(b, 'bdl-7', 'Bundle.entry[5].fullUrl');
  });

  test('bdl-8: a version-specific fullUrl', () => {
    const b = JSON.parse(text('ips-ig-bundle-no-info-required-sections.json'));
    b.entry[6].fullUrl += '/_history/1';
    assertRefused(b, 'bdl-8');
  });

  test('entry-fullUrl-id: a RESTful fullUrl that disagrees with the resource id', () => {
    const b = JSON.parse(text('ips-ig-bundle-no-info-required-sections.json'));
    b.entry[6].resource.id = 'another-id';
    assertRefused(b, 'entry-fullUrl-id', 'Bundle.entry[6].fullUrl');
  });

  test('entry-no-transaction: an entry with request, response or search', () => {
    for (const key of ['request', 'response', 'search']) {
      const b = JSON.parse(MINIMAL);
      b.entry[3][key] = { method: 'POST', url: 'Organization', status: '201', mode: 'match' };
      assertRefused(b, 'entry-no-transaction', `Bundle.entry[3].${key}`);
    }
  });

  test('entry-fullUrl: an entry without fullUrl', () => {
    const b = JSON.parse(MINIMAL);
    delete b.entry[6].fullUrl;
    assertRefused(b, 'entry-fullUrl', 'Bundle.entry[6].fullUrl');
  });

  test('entry-resource: an entry without a typed resource', () => {
    const b = JSON.parse(MINIMAL);
    delete b.entry[6].resource.resourceType;
    assertRefused(b, 'entry-resource', 'Bundle.entry[6].resource');
  });

  test('forbidden-key: a __proto__ property anywhere in the document', () => {
    const raw = text('ips-ig-bundle-minimal.json').replace('"resourceType": "Organization"', '"__proto__": {"polluted": true}, "resourceType": "Organization"');
    const b = JSON.parse(raw);
    assert.ok(Object.keys(b.entry[3].resource).includes('__proto__'), 'the fixture mutation took effect');
    assertRefused(b, 'forbidden-key', 'Bundle.entry[3].resource');
  });

  test('bounds: too many entries, or nesting too deep', () => {
    const many = JSON.parse(MINIMAL);
    many.entry = [...many.entry, ...new Array<unknown>(IPS_LIMITS.maxEntries).fill(many.entry[6])];
    assertRefused(many, 'bounds', 'Bundle.entry');
    const deep = JSON.parse(MINIMAL);
    let node: Record<string, unknown> = deep.entry[3].resource;
    for (let i = 0; i < IPS_LIMITS.maxDepth + 5; i++) {
      const child = {};
      node['extension'] = child;
      node = child;
    }
    assertRefused(deep, 'bounds', `Bundle.entry[3].resource${'.extension'.repeat(IPS_LIMITS.maxDepth - 2)}`);
    const wide = JSON.parse(MINIMAL);
    wide.entry[3].resource.extension = [{ url: 'urn:x', valueString: 'x', extension: new Array<number>(IPS_LIMITS.maxNodes).fill(0) }];
    assertRefused(wide, 'bounds', 'Bundle');
  });

  test('collects every problem instead of stopping at the first', () => {
    const b = JSON.parse(MINIMAL);
    b.type = 'collection';
    delete b.entry[6].fullUrl;
    delete b.entry[0].resource.section[0].text;
    for (const rule of ['bundle-type', 'entry-fullUrl', 'section-text']) assertRefused(b, rule);
  });
});

// ---------------------------------------------------------------------------------------------
// Filtering, checked against an independent, naive notion of reachability

interface RawEntry {
  fullUrl: string;
  resource: { resourceType: string; id?: string; [k: string]: unknown };
}

function naiveResolve(entries: readonly RawEntry[], ref: string): RawEntry | undefined {
  return entries.find(
    (e) => e.fullUrl === ref || e.fullUrl.endsWith(`/${ref}`) || `${e.resource.resourceType}/${e.resource.id ?? ''}` === ref,
  );
}

function refsIn(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) for (const n of node) refsIn(n, out);
  else if (typeof node === 'object' && node !== null) {
    for (const [k, v] of Object.entries(node)) {
      if (k === 'reference' && typeof v === 'string') out.push(v);
      else refsIn(v, out);
    }
  }
  return out;
}

/** Entries reachable from the Composition context plus the sections whose code passes `keep`. */
function reachableFullUrls(bundle: { entry: RawEntry[] }, keep: (code: string) => boolean): Set<string> {
  const entries = bundle.entry;
  const composition = entries[0]!.resource;
  const { section, event: _event, text: _text, ...context } = composition;
  const roots = refsIn(context);
  for (const s of section as { code: { coding: { code: string }[] }; entry?: unknown }[]) {
    if (keep(s.code.coding[0]!.code)) roots.push(...refsIn(s.entry));
  }
  const seen = new Set<string>([entries[0]!.fullUrl]);
  const queue = roots.map((r) => naiveResolve(entries, r)).filter((e): e is RawEntry => e !== undefined);
  for (let e = queue.shift(); e !== undefined; e = queue.shift()) {
    if (seen.has(e.fullUrl)) continue;
    seen.add(e.fullUrl);
    for (const r of refsIn(e.resource)) {
      const t = naiveResolve(entries, r);
      if (t !== undefined) queue.push(t);
    }
  }
  return seen;
}

const ALLOWED_SETS: readonly [string, ReadonlySet<string>][] = [
  ['only Allergies', new Set([ALLERGIES])],
  ['Problems and Medications', new Set([PROBLEMS, MEDICATIONS])],
  ['nothing', new Set()],
];

describe('filterIpsBySections', () => {
  for (const name of FIXTURES) {
    for (const [label, allowed] of ALLOWED_SETS) {
      test(`${name}, allowing ${label}: valid, exactly the allowed sections, nothing withheld leaks`, () => {
        const input = JSON.parse(text(name));
        const doc = validateIpsDocument(input);
        const snapshot = structuredClone(input);
        const filtered = filterIpsBySections(doc, allowed);

        assert.deepEqual(input, snapshot, 'the input is not mutated');
        assert.notEqual(filtered, input);
        const again = validateIpsDocument(filtered);

        const originalCodes = [...doc.sectionsByCode.keys()];
        const expectedCodes = originalCodes.filter((c) => allowed.has(c) || REQUIRED_SECTIONS.has(c));
        assert.deepEqual([...again.sectionsByCode.keys()], expectedCodes);
        for (const [code, section] of again.sectionsByCode) {
          if (allowed.has(code)) {
            assert.deepEqual(section, doc.sectionsByCode.get(code));
          } else {
            assert.equal(section.emptyReason?.coding?.[0]?.code, 'withheld', code);
            assert.equal(section.entry, undefined, code);
            assert.equal(section.text?.status, 'generated');
            assert.ok(section.text?.div.includes(WITHHELD_SECTION_TEXT), code);
          }
        }

        const kept = reachableFullUrls(input, (c) => allowed.has(c));
        const everything = reachableFullUrls(input, () => true);
        const onlyWithheld = input.entry.filter((e: RawEntry) => everything.has(e.fullUrl) && !kept.has(e.fullUrl));
        const serialised = JSON.stringify(filtered);
        for (const e of onlyWithheld as RawEntry[]) {
          assert.ok(!serialised.includes(e.fullUrl), `${e.fullUrl} does not appear`);
          if (e.resource.id !== undefined) assert.ok(!serialised.includes(e.resource.id), `${e.resource.id} does not appear`);
        }
        const keptUrls = (filtered.entry ?? []).map((e) => e.fullUrl);
        assert.deepEqual(new Set(keptUrls), kept, 'exactly the reachable entries remain');
        assert.equal(filtered.entry?.[0]?.resource?.resourceType, 'Composition');
        assert.ok(filtered.entry?.some((e) => e.resource?.resourceType === 'Patient'), 'the Patient is kept');
      });
    }
  }

  test('allowing every section keeps every section unchanged and every reachable entry', () => {
    for (const name of FIXTURES) {
      const input = JSON.parse(text(name));
      const doc = validateIpsDocument(input);
      const filtered = filterIpsBySections(doc, new Set(doc.sectionsByCode.keys()));
      const composition = filtered.entry?.[0]?.resource;
      assert.ok(composition?.resourceType === 'Composition', 'the Composition is first');
      assert.deepEqual(composition.section, doc.composition.section, name);
      assert.deepEqual(new Set((filtered.entry ?? []).map((e) => e.fullUrl)), reachableFullUrls(input, () => true), name);
    }
  });

  test('the leak check has something to find: withholding removes entries from every fixture', () => {
    for (const name of FIXTURES) {
      const input = JSON.parse(text(name));
      const kept = reachableFullUrls(input, () => false);
      assert.ok(kept.size < input.entry.length, name);
    }
  });

  test('removes a resource reachable only from a withheld section, transitively (Medication via MedicationStatement)', () => {
    const doc = validateIpsDocument(JSON.parse(text('ips-ig-bundle-01.json')));
    const filtered = filterIpsBySections(doc, new Set([ALLERGIES]));
    const types = (filtered.entry ?? []).map((e) => e.resource?.resourceType);
    assert.ok(!types.includes('MedicationStatement') && !types.includes('Medication') && !types.includes('Condition'), types.join(','));
    assert.ok(!JSON.stringify(filtered).includes('976d0804-cae0-45ae-afe3-a19f3ceba6bc'), 'the Medication does not appear');
  });

  test('keeps a resource referenced from both a withheld and an allowed section', () => {
    const input = JSON.parse(text('ips-ig-bundle-01.json'));
    const pastIllness = input.entry[0].resource.section[sectionIndex(input, '11348-0')];
    pastIllness.entry.push({ reference: 'Condition/c64139e7-f02d-409c-bf34-75e8bf23bc80' });
    const filtered = filterIpsBySections(validateIpsDocument(input), new Set(['11348-0']));
    assert.ok((filtered.entry ?? []).some((e) => e.resource?.id === 'c64139e7-f02d-409c-bf34-75e8bf23bc80'), 'the shared Condition is kept');
    const problems = validateIpsDocument(filtered).sectionsByCode.get(PROBLEMS);
    assert.equal(problems?.emptyReason?.coding?.[0]?.code, 'withheld');
  });

  test('replaces the Composition narrative, drops the signature and prunes event.detail to kept resources', () => {
    const input = JSON.parse(text('ips-ig-bundle-01.json'));
    input.signature = { type: [{ system: 'urn:iso-astm:E1762-95:2013', code: '1.2.840.10065.1.12.1.1' }], when: '2017-12-11T14:30:00+01:00', who: { display: 'x' } };
    input.entry[0].resource.event[0].detail = [{ reference: 'Condition/c64139e7-f02d-409c-bf34-75e8bf23bc80' }];
    const originalDiv: string = input.entry[0].resource.text.div;
    const filtered = filterIpsBySections(validateIpsDocument(input), new Set([ALLERGIES]));
    const composition = filtered.entry?.[0]?.resource;
    assert.ok(composition?.resourceType === 'Composition', 'the Composition is first');
    assert.notEqual(composition.text?.div, originalDiv);
    assert.equal(composition.text?.status, 'generated');
    assert.equal(filtered.signature, undefined);
    assert.equal(composition.event?.[0]?.detail, undefined);
    assert.ok(!JSON.stringify(filtered).includes('c64139e7-f02d-409c-bf34-75e8bf23bc80'), 'the withheld Condition does not appear');
  });

  test('a withheld required section drops its original title, author and extensions', () => {
    const input = JSON.parse(MINIMAL);
    const problems = input.entry[0].resource.section[sectionIndex(input, PROBLEMS)];
    problems.title = 'Problems: a revealing title';
    problems.extension = [{ url: 'http://example.org/note', valueString: 'revealing' }];
    const filtered = filterIpsBySections(validateIpsDocument(input), new Set());
    const serialised = JSON.stringify(filtered);
    assert.ok(!serialised.includes('revealing'), 'nothing of the original section remains');
  });
});
