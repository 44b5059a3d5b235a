/**
 * What a hospital may send back to the patient's country (DESIGN.md flow 5): a FHIR Bundle, either a
 * `document` (Composition first) or a `collection` of clinical resources about the patient. Checked
 * on the sender (before anything is stored) and again on the receiver (before anything is
 * registered), with the same rules.
 */
import { createHash } from 'node:crypto';
import { GatewayError } from '../http/errors.js';
import { canonicalJson } from '../audit/merkle.js';

/** Resource types that may come back home (issue 6). */
export const ALLOWED_TYPES: ReadonlySet<string> = new Set([
  'Encounter',
  'Observation',
  'Condition',
  'MedicationStatement',
  'DocumentReference',
  'Composition',
  'Practitioner',
  'PractitionerRole',
  'Organization',
]);

/** Elements that name the patient a resource is about. */
const SUBJECT_ELEMENTS = ['subject', 'patient'] as const;

const MAX_ENTRIES = 500;

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function fail(detail: string, path: string): never {
  throw new GatewayError('submission.invalid', detail, { expression: [path] });
}

export interface CheckedSubmission {
  readonly bundle: Json;
  readonly resources: ReadonlyArray<{ readonly resourceType: string; readonly resource: Json }>;
}

/**
 * The rules, in order: a JSON Bundle of type document or collection; entries are objects with a
 * resource of an allowed type (no Patient: the patient is the one the reference names, never one
 * the sender supplies); no transaction/batch semantics; every subject/patient element names exactly
 * `patientReference`.
 */
export function checkSubmissionBundle(input: unknown, patientReference: string): CheckedSubmission {
  if (!isObject(input) || input['resourceType'] !== 'Bundle') fail('not a FHIR Bundle', 'Bundle');
  const type = input['type'];
  if (type !== 'document' && type !== 'collection') fail('Bundle.type must be document or collection', 'Bundle.type');
  const entries = input['entry'];
  if (!Array.isArray(entries) || entries.length === 0) fail('Bundle.entry must not be empty', 'Bundle.entry');
  if (entries.length > MAX_ENTRIES) fail(`at most ${MAX_ENTRIES} entries`, 'Bundle.entry');
  const resources: Array<{ resourceType: string; resource: Json }> = [];
  entries.forEach((entry: unknown, i) => {
    const at = `Bundle.entry[${i}]`;
    if (!isObject(entry)) fail('entry must be an object', at);
    for (const forbidden of ['request', 'response', 'search']) if (forbidden in entry) fail(`entry.${forbidden} is not allowed`, `${at}.${forbidden}`);
    const resource = entry['resource'];
    if (!isObject(resource) || typeof resource['resourceType'] !== 'string') fail('entry.resource missing', `${at}.resource`);
    const resourceType = resource['resourceType'];
    if (!ALLOWED_TYPES.has(resourceType)) fail(`resource type ${resourceType} may not be sent home`, `${at}.resource.resourceType`);
    for (const element of SUBJECT_ELEMENTS) {
      const ref = resource[element];
      if (ref === undefined) continue;
      if (!isObject(ref) || ref['reference'] !== patientReference) fail(`${element} must be ${patientReference}`, `${at}.resource.${element}`);
    }
    resources.push({ resourceType, resource });
  });
  if (type === 'document' && resources[0]?.resourceType !== 'Composition') fail('a document Bundle starts with its Composition', 'Bundle.entry[0]');
  return { bundle: input, resources };
}

/** SHA-256 of the canonical JSON: the same body always hashes the same, whatever its key order. */
export function contentHash(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('base64url');
}
