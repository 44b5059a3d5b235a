/**
 * Validation of HL7 IPS document Bundles (FHIR R4 4.0.1, IPS 2.0) before the gateway relays one.
 *
 * Documents reach us from national FHIR servers we do not control, so the check is fail-closed and
 * reads as an ordered list of one-rule checks (STYLE.md guideline 2). Each rule cites the profile
 * element or invariant that demands it:
 *   - BundleUvIps.fsh (HL7/fhir-ips input/fsh/profiles): type = document, identifier 1.., timestamp 1..,
 *     entry.fullUrl 1.., entry.search/request/response ..0, entry[composition] 1..1, entry[patient] 1..1;
 *   - bdl-ips-1: no Composition other than the first entry;
 *   - CompositionUvIps.fsh: type = LOINC 60591-5, subject 1.. (a PatientUvIps), section.text 1..,
 *     section.section ..0, section title/code 1.., sections Problems/Allergies/Medications 1..1;
 *   - ips-comp-1 (on those three): `entry.reference.exists() or emptyReason.exists()`;
 *   - FHIR R4 Bundle: bdl-3/bdl-4 (no request/response outside transactions/batches), bdl-7 (fullUrl
 *     unique), bdl-8 (fullUrl not version specific), bdl-9 (document identifier with system and
 *     value), bdl-10 (document timestamp), bdl-11 (Composition first);
 *   - FHIR R4 Composition: date 1..1, author 1..*, title 1..1, cmp-2 (emptyReason only when empty);
 *   - FHIR R4 Bundle "Resolving references in Bundles" (http://hl7.org/fhir/R4/bundle.html#references):
 *     a document is self-contained, so every reference must resolve to an entry of the Bundle.
 *
 * Problems are collected and reported together (rule name, what, and a FHIRPath-like location). The
 * detail is shown to callers (`document.invalid` has exposeDetail), so messages name rules and paths,
 * never values taken from the document (ids, references, names).
 */
import type { Bundle, Composition, CompositionSection, Patient } from '@medplum/fhirtypes';
import { GatewayError } from '../http/errors.js';

export const LOINC = 'http://loinc.org';
export const PATIENT_SUMMARY_LOINC = '60591-5';

/** IPS sections that CompositionUvIps makes 1..1 and ips-comp-1 constrains. */
export const REQUIRED_SECTIONS: ReadonlyMap<string, string> = new Map([
  ['11450-4', 'Problem list'],
  ['48765-2', 'Allergies and intolerances'],
  ['10160-0', 'Medication summary'],
]);

/** Optional IPS sections of CompositionUvIps (STANDARDS.md); other LOINC-coded sections are allowed (open slicing). */
export const OPTIONAL_SECTIONS: ReadonlyMap<string, string> = new Map([
  ['11369-6', 'Immunizations'],
  ['30954-2', 'Results'],
  ['47519-4', 'History of procedures'],
  ['46264-8', 'Medical devices'],
  ['42348-3', 'Advance directives'],
  ['104605-1', 'Alerts'],
  ['47420-5', 'Functional status'],
  ['11348-0', 'History of past illness'],
  ['10162-6', 'History of pregnancy'],
  ['81338-6', 'Patient story'],
  ['18776-5', 'Plan of care'],
  ['29762-2', 'Social history'],
  ['8716-3', 'Vital signs'],
]);

/** Bounds on input we walk recursively; a national server answer is untrusted input too. */
export const IPS_LIMITS = {
  maxEntries: 2000,
  maxDepth: 64,
  maxNodes: 1_000_000,
  /** At most this many problems are reported; the rest are counted. */
  maxReportedProblems: 25,
} as const;

/** Keys that could reach Object.prototype when a consumer copies or merges the document. */
const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

export interface IpsDocument {
  readonly bundle: Bundle;
  readonly composition: Composition;
  readonly patient: Patient;
  /** Composition sections keyed by their LOINC code (codes are unique, see checkSectionCodesUnique). */
  readonly sectionsByCode: ReadonlyMap<string, CompositionSection>;
  /**
   * Per entry (by index in `bundle.entry`): the entries its resource references, contained resources
   * included, as validation resolved them (possibly repeated). The consent filter follows these
   * instead of walking every resource again.
   */
  readonly references: readonly (readonly number[])[];
}

// ---------------------------------------------------------------------------------------------
// JSON narrowing helpers (no casts on external data)

type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isNonEmptyString(value: unknown): value is string {
  return typeof value === 'string' && value.trim().length > 0;
}

function asArray(value: unknown): readonly unknown[] {
  return Array.isArray(value) ? value : [];
}

// ---------------------------------------------------------------------------------------------
// Reference resolution (FHIR R4 bundle.html#references), shared with the consent filter

/** http://hl7.org/fhir/R4/references.html#regex, without the optional leading base. */
const RELATIVE_REFERENCE = /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/([A-Za-z0-9\-.]{1,64}))?$/;
/** A RESTful absolute URL: [base]/[type]/[id] with an optional version. */
const RESTFUL_URL = /^(https?:\/\/.+\/)([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/([A-Za-z0-9\-.]{1,64}))?$/;
const ABSOLUTE_URI = /^[A-Za-z][A-Za-z0-9+.-]*:/;

/** What resolution needs to know about one Bundle entry. */
export interface EntryIndex {
  readonly fullUrl: string | undefined;
  readonly resourceType: string | undefined;
  readonly id: string | undefined;
  readonly versionId: string | undefined;
}

export type Resolution =
  | { readonly kind: 'entry'; readonly index: number }
  /** `#id` (or `#`, the container) inside the referencing resource. */
  | { readonly kind: 'contained' }
  | { readonly kind: 'unresolved'; readonly why: string };

/**
 * Resolves `reference`, found in the resource of entry `from` (or in one of its contained resources),
 * against the Bundle's entries.
 *
 * - Absolute URIs (`urn:uuid:`, `urn:oid:`, `http(s):`) must equal an entry's fullUrl; a version-specific
 *   RESTful URL matches its version-independent fullUrl plus `meta.versionId`.
 * - Relative `Type/id` from an entry whose fullUrl is RESTful resolves against that fullUrl's base, as
 *   R4 prescribes, and nothing else.
 * - Relative `Type/id` from an entry whose fullUrl is not RESTful (`urn:uuid:`): R4 says such a
 *   reference "has no defined meaning within this specification". The IPS IG's own examples
 *   (ips-ig-bundle-01.json: `Patient/<id>` with `urn:uuid:` fullUrls) rely on matching by resource type
 *   and id, as the HL7 validator does, so we accept that match only when it is unambiguous (exactly one
 *   entry of that type with that id; R4: "If multiple matches are found ... Applications MAY return an
 *   error") and never fall back to a server.
 * - Anything else (e.g. a bare id with no type) is not a reference form R4 defines.
 */
export function resolveReference(reference: string, from: number, containedIds: ReadonlySet<string>, index: BundleIndex): Resolution {
  if (reference.startsWith('#')) {
    const local = reference.slice(1);
    return local === '' || containedIds.has(local) ? CONTAINED : NO_CONTAINED;
  }
  return index.resolveOutside(reference, from);
}

const CONTAINED: Resolution = Object.freeze({ kind: 'contained' });
const NO_CONTAINED: Resolution = Object.freeze({ kind: 'unresolved', why: 'names no contained resource' });
const NOT_A_REFERENCE: Resolution = Object.freeze({ kind: 'unresolved', why: 'is not an absolute URI, Type/id or #id reference' });
const NO_MATCH: Resolution = Object.freeze({ kind: 'unresolved', why: 'matches no entry' });
const SEVERAL: Resolution = Object.freeze({ kind: 'unresolved', why: 'matches several entries' });

/** Resolution of a reference that is not `#id`, from an entry whose RESTful base is `base` (if any). */
function resolveAgainstEntries(reference: string, base: string | undefined, index: BundleIndex): Resolution {
  if (ABSOLUTE_URI.test(reference)) {
    const [, restBase, type, id, version] = RESTFUL_URL.exec(reference) ?? [];
    return version === undefined
      ? byFullUrl(reference, undefined, index)
      : byFullUrl(`${restBase ?? ''}${type ?? ''}/${id ?? ''}`, version, index);
  }
  const [, type, id, version] = RELATIVE_REFERENCE.exec(reference) ?? [];
  if (type === undefined || id === undefined) return NOT_A_REFERENCE;
  if (base !== undefined) return byFullUrl(`${base}${type}/${id}`, version, index);
  let only: number | undefined;
  let count = 0;
  for (const i of index.withTypeAndId(type, id)) {
    if (version !== undefined && index.entries[i]?.versionId !== version) continue;
    only = i;
    count += 1;
  }
  if (count === 1 && only !== undefined) return index.resolvedTo(only);
  return count === 0 ? NO_MATCH : SEVERAL;
}

function byFullUrl(fullUrl: string, version: string | undefined, index: BundleIndex): Resolution {
  for (const i of index.withFullUrl(fullUrl)) {
    if (version === undefined || index.entries[i]?.versionId === version) return index.resolvedTo(i);
  }
  return NO_MATCH;
}

/** Lookup tables over a Bundle's entries, so resolution stays linear in the number of references. */
export class BundleIndex {
  /** Per entry: what resolution needs, `undefined` for entries that are not objects. */
  readonly entries: readonly (EntryIndex | undefined)[];
  readonly #byFullUrl = new Map<string, number[]>();
  readonly #byTypeAndId = new Map<string, number[]>();

  constructor(rawEntries: readonly unknown[]) {
    this.entries = rawEntries.map(entryIndexOf);
    this.entries.forEach((e, i) => {
      if (e?.fullUrl !== undefined) push(this.#byFullUrl, e.fullUrl, i);
      if (e?.resourceType !== undefined && e.id !== undefined) push(this.#byTypeAndId, `${e.resourceType}/${e.id}`, i);
    });
  }

  withFullUrl(fullUrl: string): readonly number[] {
    return this.#byFullUrl.get(fullUrl) ?? [];
  }

  withTypeAndId(type: string, id: string): readonly number[] {
    return this.#byTypeAndId.get(`${type}/${id}`) ?? [];
  }

  // Per entry, computed once: a document resolves hundreds of references from a few dozen entries.
  readonly #bases = new Map<number, string | undefined>();
  readonly #resolutions = new Map<number, Resolution>();

  /** The RESTful base of entry `i`'s fullUrl (`https://x/fhir/` of `https://x/fhir/Patient/1`), if it has one. */
  restfulBaseOf(i: number): string | undefined {
    if (this.#bases.has(i)) return this.#bases.get(i);
    const base = RESTFUL_URL.exec(this.entries[i]?.fullUrl ?? '')?.[1];
    this.#bases.set(i, base);
    return base;
  }

  // Resolutions of references that are not `#id`, by the RESTful base of the entry they are found in
  // ('' for entries without one: then resolution does not depend on the entry). A document repeats
  // the same few references (the Patient, the author) in nearly every resource.
  readonly #memo = new Map<string, Map<string, Resolution>>();

  /** Resolution of `reference` (not `#id`) found in entry `from`; the same answer for the same input. */
  resolveOutside(reference: string, from: number): Resolution {
    const base = this.restfulBaseOf(from);
    let memo = this.#memo.get(base ?? '');
    if (memo === undefined) {
      memo = new Map();
      this.#memo.set(base ?? '', memo);
    }
    let resolved = memo.get(reference);
    if (resolved === undefined) {
      resolved = resolveAgainstEntries(reference, base, this);
      memo.set(reference, resolved);
    }
    return resolved;
  }

  /** The (shared, frozen) resolution to entry `i`. */
  resolvedTo(i: number): Resolution {
    let r = this.#resolutions.get(i);
    if (r === undefined) {
      r = Object.freeze({ kind: 'entry', index: i });
      this.#resolutions.set(i, r);
    }
    return r;
  }
}

function push(map: Map<string, number[]>, key: string, value: number): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}

/** `[2].code.coding[0]` from `[2, 'code', 'coding', 0]`. */
function formatPath(parts: readonly (string | number)[]): string {
  let out = '';
  for (const part of parts) out += typeof part === 'number' ? `[${part}]` : `.${part}`;
  return out;
}

/** The ids of `resource.contained[*]`, the only targets of `#id` references (R4 references.html#contained). */
export function containedIdsOf(resource: unknown): ReadonlySet<string> {
  const ids = new Set<string>();
  if (isObject(resource)) {
    for (const c of asArray(resource['contained'])) if (isObject(c) && isNonEmptyString(c['id'])) ids.add(c['id']);
  }
  return ids;
}

function entryIndexOf(entry: unknown): EntryIndex | undefined {
  if (!isObject(entry)) return undefined;
  const resource = isObject(entry['resource']) ? entry['resource'] : undefined;
  const meta = resource !== undefined && isObject(resource['meta']) ? resource['meta'] : undefined;
  return {
    fullUrl: typeof entry['fullUrl'] === 'string' ? entry['fullUrl'] : undefined,
    resourceType: typeof resource?.['resourceType'] === 'string' ? resource['resourceType'] : undefined,
    id: typeof resource?.['id'] === 'string' ? resource['id'] : undefined,
    versionId: typeof meta?.['versionId'] === 'string' ? meta['versionId'] : undefined,
  };
}

/** The first LOINC code of a CodeableConcept (IPS section codes are pattern-bound to one LOINC coding). */
export function loincCodeOf(concept: unknown): string | undefined {
  if (!isObject(concept)) return undefined;
  for (const coding of asArray(concept['coding'])) {
    if (isObject(coding) && coding['system'] === LOINC && isNonEmptyString(coding['code'])) return coding['code'];
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// The rules

interface Problem {
  readonly rule: string;
  readonly what: string;
  readonly expression: string;
}

interface Context {
  readonly bundle: JsonObject;
  /** `Bundle.entry` when it is an array, else empty. */
  readonly rawEntries: readonly unknown[];
  /** Per entry: what resolution needs, `undefined` for entries that are not objects. */
  readonly entries: readonly (EntryIndex | undefined)[];
  readonly index: BundleIndex;
  readonly problems: Problem[];
  /** References that resolve to nothing in the document, found by `walkDocument`, in document order. */
  readonly unresolvedReferences: readonly Problem[];
}

type Rule = (ctx: Context) => void;

function report(ctx: Context, rule: string, what: string, expression: string): void {
  ctx.problems.push({ rule, what, expression });
}

function resourceAt(ctx: Context, index: number): JsonObject | undefined {
  const entry = ctx.rawEntries[index];
  return isObject(entry) && isObject(entry['resource']) ? entry['resource'] : undefined;
}

function compositionOf(ctx: Context): JsonObject | undefined {
  const first = resourceAt(ctx, 0);
  return first?.['resourceType'] === 'Composition' ? first : undefined;
}

function sectionsOf(ctx: Context): readonly unknown[] {
  return asArray(compositionOf(ctx)?.['section']);
}

/** BundleUvIps `type = #document (exactly)`. */
const checkDocumentType: Rule = (ctx) => {
  if (ctx.bundle['type'] !== 'document') report(ctx, 'bundle-type', 'Bundle.type must be document', 'Bundle.type');
};

/** BundleUvIps `identifier 1..`; FHIR bdl-9: a document has an identifier with a system and a value. */
const checkIdentifier: Rule = (ctx) => {
  const identifier = ctx.bundle['identifier'];
  if (!isObject(identifier) || !isNonEmptyString(identifier['system']) || !isNonEmptyString(identifier['value'])) {
    report(ctx, 'bdl-9', 'Bundle.identifier with system and value is required', 'Bundle.identifier');
  }
};

/** FHIR R4 `instant` (datatypes.html#instant): a full date-time with seconds and a zone. */
const INSTANT =
  /^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]{1,9})?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))$/;

/** BundleUvIps `timestamp 1..`; FHIR bdl-10; the value must be an instant. */
const checkTimestamp: Rule = (ctx) => {
  const timestamp = ctx.bundle['timestamp'];
  if (typeof timestamp !== 'string' || !INSTANT.test(timestamp) || Number.isNaN(Date.parse(timestamp))) {
    report(ctx, 'bdl-10', 'Bundle.timestamp must be a valid instant', 'Bundle.timestamp');
  }
};

/** A document carries its content in `entry`; each entry is an object (JSON `null` is not a FHIR element). */
const checkEntriesAreObjects: Rule = (ctx) => {
  const entry = ctx.bundle['entry'];
  if (!Array.isArray(entry) || entry.length === 0) {
    report(ctx, 'bundle-entry', 'Bundle.entry must be a non-empty array', 'Bundle.entry');
    return;
  }
  ctx.rawEntries.forEach((e, i) => {
    if (!isObject(e)) report(ctx, 'bundle-entry', `entry ${i} is ${e === null ? 'null' : 'not an object'}`, `Bundle.entry[${i}]`);
  });
};

/** BundleUvIps `entry.fullUrl 1..`; FHIR bdl-8: a fullUrl is never version specific. */
const checkFullUrls: Rule = (ctx) => {
  ctx.rawEntries.forEach((e, i) => {
    if (!isObject(e)) return;
    const fullUrl = e['fullUrl'];
    if (!isNonEmptyString(fullUrl) || !ABSOLUTE_URI.test(fullUrl)) {
      report(ctx, 'entry-fullUrl', 'every entry needs an absolute fullUrl', `Bundle.entry[${i}].fullUrl`);
    } else if (fullUrl.includes('/_history/')) {
      report(ctx, 'bdl-8', 'fullUrl must not be version specific', `Bundle.entry[${i}].fullUrl`);
    }
  });
};

/** FHIR bdl-7: fullUrls are unique in a (non-history) Bundle. */
const checkFullUrlsUnique: Rule = (ctx) => {
  const seen = new Set<string>();
  ctx.entries.forEach((e, i) => {
    if (e?.fullUrl === undefined) return;
    if (seen.has(e.fullUrl)) report(ctx, 'bdl-7', 'fullUrl repeats an earlier entry', `Bundle.entry[${i}].fullUrl`);
    seen.add(e.fullUrl);
  });
};

/** BundleUvIps `entry[x].resource 1..`; FHIR bdl-5: a document entry carries a resource with a type. */
const checkEntryResources: Rule = (ctx) => {
  ctx.rawEntries.forEach((e, i) => {
    if (!isObject(e)) return;
    const resource = e['resource'];
    if (!isObject(resource) || !isNonEmptyString(resource['resourceType'])) {
      report(ctx, 'entry-resource', 'every entry needs a resource with a resourceType', `Bundle.entry[${i}].resource`);
    }
  });
};

/** "The fullUrl SHALL NOT disagree with the id in the resource" (R4 Bundle.entry.fullUrl definition). */
const checkFullUrlAgreesWithId: Rule = (ctx) => {
  ctx.entries.forEach((e, i) => {
    const restful = RESTFUL_URL.exec(e?.fullUrl ?? '');
    if (e === undefined || restful === null || e.resourceType === undefined) return;
    if (restful[2] !== e.resourceType || restful[3] !== e.id) {
      report(ctx, 'entry-fullUrl-id', 'a RESTful fullUrl must end with the resource type and id', `Bundle.entry[${i}].fullUrl`);
    }
  });
};

/** BundleUvIps `entry.search ..0`, `entry.request ..0`, `entry.response ..0`; FHIR bdl-2, bdl-3, bdl-4. */
const checkNoTransactionParts: Rule = (ctx) => {
  ctx.rawEntries.forEach((e, i) => {
    if (!isObject(e)) return;
    for (const key of ['search', 'request', 'response']) {
      if (key in e) report(ctx, 'entry-no-transaction', `a document entry must not carry ${key}`, `Bundle.entry[${i}].${key}`);
    }
  });
};

/** FHIR bdl-11 (Composition first), BundleUvIps entry[composition] 1..1 and bdl-ips-1 (no other Composition). */
const checkOneCompositionFirst: Rule = (ctx) => {
  if (ctx.entries.length > 0 && ctx.entries[0]?.resourceType !== 'Composition') {
    report(ctx, 'bdl-11', 'the first entry must be the Composition', 'Bundle.entry[0].resource');
  }
  ctx.entries.forEach((e, i) => {
    if (i > 0 && e?.resourceType === 'Composition') report(ctx, 'bdl-ips-1', 'only the first entry may be a Composition', `Bundle.entry[${i}].resource`);
  });
};

/** BundleUvIps entry[patient] 1..1. */
const checkOnePatient: Rule = (ctx) => {
  const patients = ctx.entries.filter((e) => e?.resourceType === 'Patient').length;
  if (patients !== 1) report(ctx, 'ips-patient', `exactly one Patient entry is required, found ${patients}`, 'Bundle.entry');
};

/** CompositionUvIps `type = $loinc#60591-5`. */
const checkCompositionType: Rule = (ctx) => {
  const composition = compositionOf(ctx);
  if (composition === undefined) return;
  const type = composition['type'];
  const codings = isObject(type) ? asArray(type['coding']) : [];
  if (!codings.some((c) => isObject(c) && c['system'] === LOINC && c['code'] === PATIENT_SUMMARY_LOINC)) {
    report(ctx, 'ips-composition-type', 'Composition.type must be LOINC 60591-5', 'Bundle.entry[0].resource.type');
  }
};

/** R4 Composition date 1..1, author 1..*, title 1..1 (CompositionUvIps keeps them MS). */
const checkCompositionHeader: Rule = (ctx) => {
  const composition = compositionOf(ctx);
  if (composition === undefined) return;
  const at = 'Bundle.entry[0].resource';
  if (!isNonEmptyString(composition['date'])) report(ctx, 'composition-date', 'Composition.date is required', `${at}.date`);
  const authors = asArray(composition['author']);
  if (authors.length === 0 || !authors.every(isObject)) report(ctx, 'composition-author', 'Composition.author needs at least one reference', `${at}.author`);
  if (!isNonEmptyString(composition['title'])) report(ctx, 'composition-title', 'Composition.title is required', `${at}.title`);
};

/** CompositionUvIps `subject 1..`, `subject.reference 1..`, `subject only Reference(PatientUvIps)`. */
const checkSubjectIsPatient: Rule = (ctx) => {
  const composition = compositionOf(ctx);
  if (composition === undefined) return;
  const at = 'Bundle.entry[0].resource.subject.reference';
  const subject = composition['subject'];
  const reference = isObject(subject) ? subject['reference'] : undefined;
  if (!isNonEmptyString(reference)) {
    report(ctx, 'composition-subject', 'Composition.subject.reference is required', at);
    return;
  }
  const resolved = resolveReference(reference, 0, containedIdsOf(composition), ctx.index);
  if (resolved.kind !== 'entry' || ctx.entries[resolved.index]?.resourceType !== 'Patient') {
    report(ctx, 'composition-subject', 'Composition.subject must reference the Patient entry', at);
  }
};

/** CompositionUvIps `section 1..`, section title/code 1.. (LOINC), `section.text 1..`, `section.section ..0`; R4 cmp-2. */
const checkSections: Rule = (ctx) => {
  const composition = compositionOf(ctx);
  if (composition === undefined) return;
  const sections = composition['section'];
  if (!Array.isArray(sections) || sections.length === 0) {
    report(ctx, 'composition-section', 'Composition.section is required', 'Bundle.entry[0].resource.section');
    return;
  }
  sections.forEach((section, i) => {
    const at = `Bundle.entry[0].resource.section[${i}]`;
    if (!isObject(section)) {
      report(ctx, 'composition-section', 'a section must be an object', at);
      return;
    }
    if (!isNonEmptyString(section['title'])) report(ctx, 'section-title', 'every section needs a title', `${at}.title`);
    if (loincCodeOf(section['code']) === undefined) report(ctx, 'section-code', 'every section needs a LOINC code', `${at}.code`);
    const text = section['text'];
    if (!isObject(text) || !isNonEmptyString(text['div'])) report(ctx, 'section-text', 'every section needs a narrative text with a div', `${at}.text`);
    if ('section' in section) report(ctx, 'section-nested', 'nested sections are not allowed', `${at}.section`);
    if (asArray(section['entry']).length > 0 && 'emptyReason' in section) {
      report(ctx, 'cmp-2', 'a section with entries must not have an emptyReason', `${at}.emptyReason`);
    }
  });
};

/** Section slices are at most 1..1 in CompositionUvIps, so a LOINC code appears on one section only. */
const checkSectionCodesUnique: Rule = (ctx) => {
  const seen = new Set<string>();
  sectionsOf(ctx).forEach((section, i) => {
    const code = isObject(section) ? loincCodeOf(section['code']) : undefined;
    if (code === undefined) return;
    if (seen.has(code)) report(ctx, 'section-unique', `section code ${code} appears more than once`, `Bundle.entry[0].resource.section[${i}].code`);
    seen.add(code);
  });
};

/** CompositionUvIps sectionProblems/Allergies/Medications 1..1, each obeying ips-comp-1. */
const checkRequiredSections: Rule = (ctx) => {
  if (compositionOf(ctx) === undefined) return;
  for (const code of REQUIRED_SECTIONS.keys()) {
    const index = sectionsOf(ctx).findIndex((s) => isObject(s) && loincCodeOf(s['code']) === code);
    const section = sectionsOf(ctx)[index];
    if (!isObject(section)) {
      report(ctx, 'ips-required-section', `required section ${code} is missing`, 'Bundle.entry[0].resource.section');
      continue;
    }
    const hasEntry = asArray(section['entry']).some((e) => isObject(e) && isNonEmptyString(e['reference']));
    if (!hasEntry && !isObject(section['emptyReason'])) {
      report(ctx, 'ips-comp-1', `section ${code} needs an entry or an emptyReason`, `Bundle.entry[0].resource.section[${index}]`);
    }
  }
};

/**
 * R4 bundle.html#references: a document is self-contained; every reference resolves inside it.
 * Resolved during the bounds walk (`walkDocument`), which passes every node once anyway; reported here,
 * in rule order.
 */
const checkReferencesResolve: Rule = (ctx) => {
  for (const problem of ctx.unresolvedReferences) ctx.problems.push(problem);
};

/** The rules, in the order they are reported. */
const RULES: readonly Rule[] = [
  checkDocumentType,
  checkIdentifier,
  checkTimestamp,
  checkEntriesAreObjects,
  checkFullUrls,
  checkFullUrlsUnique,
  checkEntryResources,
  checkFullUrlAgreesWithId,
  checkNoTransactionParts,
  checkOneCompositionFirst,
  checkOnePatient,
  checkCompositionType,
  checkCompositionHeader,
  checkSubjectIsPatient,
  checkSections,
  checkSectionCodesUnique,
  checkRequiredSections,
  checkReferencesResolve,
];

// ---------------------------------------------------------------------------------------------
// Guards that stop at once (walking further would be unsafe or meaningless)

/**
 * One depth-first pass over the whole document, before any rule reads it:
 * - bounds: depth, node count, and no prototype-reaching keys (the body parser refuses those too, but
 *   documents also come from the national server); these stop at once;
 * - references: every `reference` string inside an entry's resource (contained resources and
 *   extensions included) is resolved against the Bundle; those that resolve to nothing are returned
 *   for `checkReferencesResolve`.
 * The recursion is bounded by maxDepth. The path is one array of keys and indices, made text only
 * for a problem, and nothing is allocated per node: this pass runs three times per summary (twice at
 * home, once abroad), and walking the document once instead of twice, with each reference resolved
 * once per document, is most of what validation costs (bench/README.md).
 */
function walkDocument(bundle: JsonObject, index: BundleIndex): { unresolved: Problem[]; references: number[][] } {
  const unresolved: Problem[] = [];
  const references: number[][] = index.entries.map(() => []);
  const at: (string | number)[] = [];
  let nodes = 0;
  // The entry whose resource is being walked, and its contained ids (read at its first `#id` reference).
  let owner = -1;
  let ownerResource: JsonObject | undefined;
  let ownerContained: ReadonlySet<string> | undefined;
  const reference = (value: string): void => {
    let resolved: Resolution;
    if (value.startsWith('#')) {
      ownerContained ??= containedIdsOf(ownerResource);
      resolved = resolveReference(value, owner, ownerContained, index);
    } else {
      resolved = index.resolveOutside(value, owner);
    }
    if (resolved.kind === 'entry') references[owner]?.push(resolved.index);
    else if (resolved.kind === 'unresolved') {
      unresolved.push({ rule: 'reference-resolves', what: `reference ${resolved.why}`, expression: `Bundle${formatPath(at)}.reference` });
    }
  };
  const visit = (node: unknown, depth: number): void => {
    nodes += 1;
    if (nodes > IPS_LIMITS.maxNodes) throw invalid('bounds', 'the document is too large', 'Bundle');
    if (depth > IPS_LIMITS.maxDepth) throw invalid('bounds', `the document nests deeper than ${IPS_LIMITS.maxDepth}`, `Bundle${formatPath(at)}`);
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) {
        at.push(i);
        visit(node[i], depth + 1);
        at.pop();
      }
      return;
    }
    if (!isObject(node)) return;
    // Bundle.entry[i].resource: references are resolved from here down.
    const entered = depth === 3 && at[0] === 'entry' && typeof at[1] === 'number' && at[2] === 'resource';
    if (entered) {
      owner = at[1] as number;
      ownerResource = node;
      ownerContained = undefined;
    }
    for (const key in node) {
      if (!Object.hasOwn(node, key)) continue;
      if (FORBIDDEN_KEYS.has(key)) throw invalid('forbidden-key', 'the document uses a forbidden property name', `Bundle${formatPath(at)}`);
      const value = node[key];
      if (owner >= 0 && key === 'reference' && typeof value === 'string') reference(value);
      at.push(key);
      visit(value, depth + 1);
      at.pop();
    }
    if (entered) {
      owner = -1;
      ownerResource = undefined;
      ownerContained = undefined;
    }
  };
  visit(bundle, 0);
  return { unresolved, references };
}

function invalid(rule: string, what: string, expression: string): GatewayError {
  return new GatewayError('document.invalid', `${rule}: ${what}`, { expression: [expression] });
}

/**
 * Narrows to the FHIR type. Only called after every rule passed, which is what makes the shape
 * (a Bundle whose entries have resources with a resourceType) trustworthy.
 */
function isBundle(value: unknown): value is Bundle {
  return isObject(value) && value['resourceType'] === 'Bundle';
}

/**
 * Validates an IPS document Bundle. Pure; returns the same object, typed, with the Composition, the
 * Patient and the sections by LOINC code; throws `document.invalid` naming every broken rule.
 */
export function validateIpsDocument(input: unknown): IpsDocument {
  if (!isObject(input) || input['resourceType'] !== 'Bundle') {
    throw invalid('bundle-resource', 'the document must be a JSON object with resourceType Bundle', 'Bundle');
  }
  if (Array.isArray(input['entry']) && input['entry'].length > IPS_LIMITS.maxEntries) {
    throw invalid('bounds', `the document has more than ${IPS_LIMITS.maxEntries} entries`, 'Bundle.entry');
  }
  const rawEntries = asArray(input['entry']);
  // Reads only each entry's first levels (fullUrl, resourceType, id, meta.versionId), bounded by the
  // entry count, so it may come before the walk that bounds the rest.
  const index = new BundleIndex(rawEntries);
  const walked = walkDocument(input, index);
  const ctx: Context = { bundle: input, rawEntries, entries: index.entries, index, problems: [], unresolvedReferences: walked.unresolved };
  for (const rule of RULES) rule(ctx);

  if (ctx.problems.length > 0) {
    const shown = ctx.problems.slice(0, IPS_LIMITS.maxReportedProblems);
    const more = ctx.problems.length - shown.length;
    const detail = shown.map((p) => `${p.rule}: ${p.what} (${p.expression})`).join('; ') + (more > 0 ? `; and ${more} more` : '');
    throw new GatewayError('document.invalid', detail, { expression: shown.map((p) => p.expression) });
  }
  return toIpsDocument(input, walked.references);
}

function toIpsDocument(input: unknown, references: readonly (readonly number[])[]): IpsDocument {
  if (!isBundle(input)) throw invalid('bundle-resource', 'the document must be a Bundle', 'Bundle');
  const entries = input.entry ?? [];
  const composition = entries[0]?.resource;
  if (composition?.resourceType !== 'Composition') throw invalid('bdl-11', 'the first entry must be the Composition', 'Bundle.entry[0]');
  let patient: Patient | undefined;
  for (const entry of entries) if (entry.resource?.resourceType === 'Patient') patient = entry.resource;
  if (patient === undefined) throw invalid('ips-patient', 'exactly one Patient entry is required', 'Bundle.entry');
  const sectionsByCode = new Map<string, CompositionSection>();
  for (const section of composition.section ?? []) {
    const code = loincCodeOf(section.code);
    if (code !== undefined) sectionsByCode.set(code, section);
  }
  return { bundle: input, composition, patient, sectionsByCode, references };
}
