/**
 * What a hospital may send back to the patient's country (DESIGN.md flow 5): a FHIR Bundle, either a
 * `document` (Composition first) or a `collection` of clinical resources about the patient. Checked
 * on the sender (before anything is stored) and again on the receiver (before anything is
 * registered), with the same rules.
 */
import { createHash } from 'node:crypto';
import { canonicalJson } from '../audit/merkle.js';
import { GatewayError } from '../http/errors.js';

/**
 * Clinical resource types that may come back home (issue 6), each about the patient through its
 * `subject`. Registry resources (Practitioner, PractitionerRole, Organization) never: the national
 * FHIR server is also where professionals' roles are looked up, and no foreign party may write
 * there. Patients never: the patient is the one the reference names.
 */
export const ALLOWED_TYPES: ReadonlySet<string> = new Set(['Encounter', 'Observation', 'Condition', 'MedicationStatement', 'DocumentReference', 'Composition']);

const MAX_ENTRIES = 500;
const URN_UUID = /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function fail(detail: string, path: string): never {
  throw new GatewayError('submission.invalid', detail, { expression: [path] });
}

export interface CheckedResource {
  readonly resourceType: string;
  readonly resource: Json;
  /** The entry's `urn:uuid:` fullUrl, when it has one (other entries may reference it). */
  readonly fullUrl: string | undefined;
}

export interface CheckedSubmission {
  readonly bundle: Json;
  readonly resources: readonly CheckedResource[];
}

/** Every `reference` string inside a resource, with its path. */
function references(value: unknown, path: string, out: Array<{ reference: string; path: string }>): void {
  if (Array.isArray(value)) {
    value.forEach((v, i) => references(v, `${path}[${i}]`, out));
    return;
  }
  if (!isObject(value)) return;
  for (const [key, v] of Object.entries(value)) {
    if (key === 'reference' && typeof v === 'string') out.push({ reference: v, path: `${path}.reference` });
    else references(v, `${path}.${key}`, out);
  }
}

/**
 * The rules, in order: a JSON Bundle of type document or collection; entries are objects with a
 * resource of an allowed type; no transaction/batch semantics; no contained resources; every
 * resource names exactly `patientReference` as its subject; and every reference anywhere in it
 * points either to that patient or to another entry of this Bundle (so nothing sent can attach data
 * to another patient, or to anything that already exists in the receiving country).
 */
export function checkSubmissionBundle(input: unknown, patientReference: string): CheckedSubmission {
  if (!isObject(input) || input['resourceType'] !== 'Bundle') fail('not a FHIR Bundle', 'Bundle');
  const type = input['type'];
  if (type !== 'document' && type !== 'collection') fail('Bundle.type must be document or collection', 'Bundle.type');
  const entries = input['entry'];
  if (!Array.isArray(entries) || entries.length === 0) fail('Bundle.entry must not be empty', 'Bundle.entry');
  if (entries.length > MAX_ENTRIES) fail(`at most ${MAX_ENTRIES} entries`, 'Bundle.entry');
  const fullUrls = new Set<string>();
  const resources: CheckedResource[] = [];
  entries.forEach((entry: unknown, i) => {
    const at = `Bundle.entry[${i}]`;
    if (!isObject(entry)) fail('entry must be an object', at);
    for (const forbidden of ['request', 'response', 'search']) if (forbidden in entry) fail(`entry.${forbidden} is not allowed`, `${at}.${forbidden}`);
    const fullUrl = entry['fullUrl'];
    if (fullUrl !== undefined) {
      if (typeof fullUrl !== 'string' || !URN_UUID.test(fullUrl)) fail('entry.fullUrl must be a urn:uuid', `${at}.fullUrl`);
      if (fullUrls.has(fullUrl)) fail('entry.fullUrl must be unique', `${at}.fullUrl`);
      fullUrls.add(fullUrl);
    }
    const resource = entry['resource'];
    if (!isObject(resource) || typeof resource['resourceType'] !== 'string') fail('entry.resource missing', `${at}.resource`);
    const resourceType = resource['resourceType'];
    if (!ALLOWED_TYPES.has(resourceType)) fail(`resource type ${resourceType} may not be sent home`, `${at}.resource.resourceType`);
    if ('contained' in resource) fail('contained resources are not accepted', `${at}.resource.contained`);
    const subject = resource['subject'];
    if (!isObject(subject) || subject['reference'] !== patientReference) fail(`subject must be ${patientReference}`, `${at}.resource.subject`);
    resources.push({ resourceType, resource, fullUrl: typeof fullUrl === 'string' ? fullUrl : undefined });
  });
  resources.forEach(({ resource }, i) => {
    const found: Array<{ reference: string; path: string }> = [];
    references(resource, `Bundle.entry[${i}].resource`, found);
    for (const r of found) {
      if (r.reference !== patientReference && !fullUrls.has(r.reference)) fail('references may name only the patient or entries of this Bundle', r.path);
    }
  });
  if (type === 'document' && resources[0]?.resourceType !== 'Composition') fail('a document Bundle starts with its Composition', 'Bundle.entry[0]');
  return { bundle: input, resources };
}

/** SHA-256 of the canonical JSON: the same body always hashes the same, whatever its key order. */
export function contentHash(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('base64url');
}
