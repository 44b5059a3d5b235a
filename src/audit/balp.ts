/**
 * FHIR R4 AuditEvents in the shape of IHE Basic Audit Log Patterns (BALP; IHE/ITI.BasicAudit
 * input/fsh: PatientRead.fsh, PatientQuery.fsh, Disclose.fsh, IUAaccessToken.fsh). Pure.
 *
 * An AuditEvent says who did what to whose record, when, why and with what outcome: never the data
 * itself. Nothing here accepts a resource body, a section or narrative, and `buildAuditEvent`
 * refuses to emit an event that carries one (`assertNoClinicalContent`), because the log is kept
 * forever, exported to a SIEM and shown to the citizen.
 */
import type { AuditEvent, AuditEventAgent, AuditEventEntity, CodeableConcept, Coding, Reference } from '@medplum/fhirtypes';

type AgentWho = NonNullable<AuditEventAgent['who']>;
type AgentLocation = NonNullable<AuditEventAgent['location']>;

// ---------------------------------------------------------------------------------------------
// Code systems (the URLs BALP uses)

const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
const AUDIT_EVENT_TYPE = 'http://terminology.hl7.org/CodeSystem/audit-event-type';
const RESTFUL_INTERACTION = 'http://hl7.org/fhir/restful-interaction';
const LIFECYCLE = 'http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle';
const PARTICIPATION_TYPE = 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType';
const ROLE_CLASS = 'http://terminology.hl7.org/CodeSystem/v3-RoleClass';
const ENTITY_TYPE = 'http://terminology.hl7.org/CodeSystem/audit-entity-type';
const OBJECT_ROLE = 'http://terminology.hl7.org/CodeSystem/object-role';
const SOURCE_TYPE = 'http://terminology.hl7.org/CodeSystem/security-source-type';
/** BALP terms.fsh: CodeSystem BasicAuditEntityType, code XrequestId. */
export const BALP_ENTITY_TYPE = 'https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType';
/** Our own subtype, next to the standard ones (BALP slices subtype openly), naming the event kind. */
export const AUDIT_KIND_SYSTEM = 'urn:ncpeh:audit-kind';
/** Identifiers that are URIs (our NCP ids are URNs), per FHIR's identifier-system conventions. */
const URI_SYSTEM = 'urn:ietf:rfc:3986';
/** ISO 3166-1 alpha-2 country codes. */
export const COUNTRY_SYSTEM = 'urn:iso:std:iso:3166';

export const DCM_DESTINATION_ROLE_ID = '110152';
export const DCM_SOURCE_ROLE_ID = '110153';

// ---------------------------------------------------------------------------------------------
// Input

export type AuditKind =
  | 'read'
  | 'query'
  | 'export'
  | 'import'
  | 'consent-decision'
  | 'consent-change'
  | 'sign-in'
  | 'submission-sent'
  | 'submission-registered'
  | 'break-glass'
  | 'peer-auth-failure'
  | 'trust-list-change';

export const AUDIT_KINDS: readonly AuditKind[] = [
  'read',
  'query',
  'export',
  'import',
  'consent-decision',
  'consent-change',
  'sign-in',
  'submission-sent',
  'submission-registered',
  'break-glass',
  'peer-auth-failure',
  'trust-list-change',
];

export type AuditOutcome = 'success' | 'minor' | 'serious' | 'major';

/** FHIR R4 audit-event-outcome: 0 success, 4 minor failure, 8 serious failure, 12 major failure. */
const OUTCOME_CODES: Record<AuditOutcome, '0' | '4' | '8' | '12'> = { success: '0', minor: '4', serious: '8', major: '12' };

export interface AuditUser {
  /** Token issuer (`iss`) and subject (`sub`): BALP maps them to who.identifier.system/value. */
  id: { iss: string; sub: string };
  name?: string;
  role?: Coding;
  purposeOfUse?: readonly Coding[];
  organization?: { name: string; id?: string };
  /** The assertion's `jti`, recorded as policy `urn:ietf:params:oauth:jti:<jti>` (BALP token mapping). */
  jti?: string;
}

export interface AuditNode {
  /** Client id (EHR) or NCP id (peer gateway, our own server). */
  id: string;
  /** Network address as seen on the connection: IP address, host name or URL. */
  network: string;
  display?: string;
}

/** A pseudonymous patient handle: a reference (e.g. `Patient/<opaque>`) or an identifier. */
export type AuditPatient = { reference: string; identifier?: undefined } | { identifier: { system?: string; value: string }; reference?: undefined };

/**
 * An extra entity: a reference to the object acted on (Consent/123, Bundle id, trust-list sequence),
 * never its content.
 */
export interface AuditEntityExtra {
  what: { reference?: string; identifier?: { system?: string; value: string }; display?: string };
  type?: Coding;
  role?: Coding;
  description?: string;
}

export interface AuditEventInput {
  kind: AuditKind;
  outcome: AuditOutcome;
  recorded: Date;
  user?: AuditUser;
  client?: AuditNode;
  server: AuditNode;
  /** ISO 3166-1 alpha-2 code of the country the request came from. */
  sourceCountry?: string;
  patient?: AuditPatient;
  /** The request id (X-Request-Id / correlation id). */
  transactionId: string;
  /** The query as received (kind `query`), stored base64 as BALP asks. */
  query?: string;
  /** For `consent-change`: which RESTful interaction changed the Consent (default update). */
  interaction?: 'create' | 'update' | 'delete';
  /** A short machine reason for a failure (an error code such as `consent.denied`). */
  outcomeDesc?: string;
  entityExtra?: readonly AuditEntityExtra[];
}

// ---------------------------------------------------------------------------------------------
// Kind -> type, subtype, action

interface KindShape {
  type: Coding;
  subtype: Coding[];
  action: 'C' | 'R' | 'U' | 'D' | 'E';
}

const REST: Coding = { system: AUDIT_EVENT_TYPE, code: 'rest', display: 'Restful Operation' };
const EXPORT: Coding = { system: DCM, code: '110106', display: 'Export' };
const IMPORT: Coding = { system: DCM, code: '110107', display: 'Import' };
const SECURITY_ALERT: Coding = { system: DCM, code: '110113', display: 'Security Alert' };
const USER_AUTHENTICATION: Coding = { system: DCM, code: '110114', display: 'User Authentication' };
const DISCLOSE: Coding = { system: LIFECYCLE, code: 'disclose', display: 'Disclose Record Lifecycle Event' };

function rest(code: string): Coding {
  return { system: RESTFUL_INTERACTION, code, display: code };
}

const INTERACTION_ACTION = { create: 'C', update: 'U', delete: 'D' } as const;

/** STANDARDS.md (IHE BALP) mapping of each event kind. */
function shapeOf(input: AuditEventInput): KindShape {
  const kind = input.kind;
  switch (kind) {
    case 'read':
      return { type: REST, subtype: [rest('read')], action: 'R' };
    case 'query':
      return { type: REST, subtype: [rest('search')], action: 'E' };
    // Disclosure at the source (Disclose.fsh AuditPrivacyDisclosureSource): Export, action R.
    case 'export':
      return { type: EXPORT, subtype: [DISCLOSE, rest('read')], action: 'R' };
    // ... and at the recipient (AuditPrivacyDisclosureRecipient): Import, action C.
    case 'import':
      return { type: IMPORT, subtype: [DISCLOSE], action: 'C' };
    case 'submission-sent':
      return { type: EXPORT, subtype: [DISCLOSE], action: 'R' };
    case 'submission-registered':
      return { type: IMPORT, subtype: [DISCLOSE], action: 'C' };
    case 'consent-decision':
      return { type: SECURITY_ALERT, subtype: [], action: 'E' };
    case 'consent-change': {
      const interaction = input.interaction ?? 'update';
      return { type: REST, subtype: [rest(interaction)], action: INTERACTION_ACTION[interaction] };
    }
    case 'sign-in':
      return { type: USER_AUTHENTICATION, subtype: [{ system: DCM, code: '110122', display: 'Login' }], action: 'E' };
    case 'break-glass':
      return {
        type: SECURITY_ALERT,
        subtype: [{ system: DCM, code: '110127', display: 'Emergency Override Started' }],
        action: 'E',
      };
    case 'peer-auth-failure':
      return {
        type: SECURITY_ALERT,
        subtype: [{ system: DCM, code: '110126', display: 'Node Authentication' }],
        action: 'E',
      };
    case 'trust-list-change':
      return {
        type: SECURITY_ALERT,
        subtype: [{ system: DCM, code: '110129', display: 'Security Configuration' }],
        action: 'E',
      };
  }
}

// ---------------------------------------------------------------------------------------------
// Builders

function networkType(address: string): '1' | '2' | '5' {
  // R4 AuditEvent.agent.network.type is a code from http://hl7.org/fhir/network-type:
  // 1 machine name, 2 IP address, 5 URI.
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(address)) return '5';
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(address) || (address.includes(':') && /^[0-9a-f:.]+$/i.test(address))) return '2';
  return '1';
}

function network(address: string): NonNullable<AuditEventAgent['network']> {
  return { address, type: networkType(address) };
}

function nodeWho(node: AuditNode): AgentWho {
  const system = /^[a-z][a-z0-9+.-]*:/i.test(node.id) ? { system: URI_SYSTEM } : {};
  return { identifier: { ...system, value: node.id }, display: node.display ?? node.id };
}

function countryLocation(country: string): AgentLocation {
  return { identifier: { system: COUNTRY_SYSTEM, value: country }, display: country };
}

function serverAgent(server: AuditNode): AuditEventAgent {
  return {
    type: { coding: [{ system: DCM, code: DCM_SOURCE_ROLE_ID, display: 'Source Role ID' }] },
    who: nodeWho(server),
    requestor: false,
    network: network(server.network),
  };
}

function clientAgent(client: AuditNode, country: string | undefined): AuditEventAgent {
  return {
    type: { coding: [{ system: DCM, code: DCM_DESTINATION_ROLE_ID, display: 'Destination Role ID' }] },
    who: nodeWho(client),
    requestor: false,
    network: network(client.network),
    ...(country === undefined ? {} : { location: countryLocation(country) }),
  };
}

function concept(coding: Coding): CodeableConcept {
  return { coding: [{ ...coding }] };
}

function userAgents(user: AuditUser, country: string | undefined): AuditEventAgent[] {
  const agent: AuditEventAgent = {
    type: { coding: [{ system: PARTICIPATION_TYPE, code: 'IRCP', display: 'information recipient' }] },
    who: { identifier: { system: user.id.iss, value: user.id.sub }, ...(user.name === undefined ? {} : { display: user.name }) },
    requestor: true,
    ...(user.name === undefined ? {} : { name: user.name }),
    ...(user.role === undefined ? {} : { role: [concept(user.role)] }),
    ...(user.purposeOfUse === undefined || user.purposeOfUse.length === 0 ? {} : { purposeOfUse: user.purposeOfUse.map(concept) }),
    ...(user.jti === undefined ? {} : { policy: [`urn:ietf:params:oauth:jti:${user.jti}`] }),
    ...(country === undefined ? {} : { location: countryLocation(country) }),
  };
  if (user.organization === undefined) return [agent];
  // The user's organisation as its own agent, as BALP's token-use patterns record subject_organization.
  const org: AuditEventAgent = {
    type: { coding: [{ system: ROLE_CLASS, code: 'PROV', display: 'healthcare provider' }] },
    who: {
      ...(user.organization.id === undefined ? {} : { identifier: { value: user.organization.id } }),
      display: user.organization.name,
    },
    requestor: false,
  };
  return [agent, org];
}

function transactionEntity(transactionId: string): AuditEventEntity {
  return {
    type: { system: BALP_ENTITY_TYPE, code: 'XrequestId' },
    what: { identifier: { value: transactionId } },
  };
}

function patientEntity(patient: AuditPatient): AuditEventEntity {
  const what: Reference =
    patient.reference !== undefined
      ? { reference: patient.reference }
      : { type: 'Patient', identifier: { ...(patient.identifier.system === undefined ? {} : { system: patient.identifier.system }), value: patient.identifier.value } };
  return {
    type: { system: ENTITY_TYPE, code: '1', display: 'Person' },
    role: { system: OBJECT_ROLE, code: '1', display: 'Patient' },
    what,
  };
}

function queryEntity(query: string): AuditEventEntity {
  return {
    type: { system: ENTITY_TYPE, code: '2', display: 'System Object' },
    role: { system: OBJECT_ROLE, code: '24', display: 'Query' },
    query: Buffer.from(query, 'utf8').toString('base64'),
  };
}

function extraEntity(extra: AuditEntityExtra): AuditEventEntity {
  const what: Reference = {
    ...(extra.what.reference === undefined ? {} : { reference: extra.what.reference }),
    ...(extra.what.identifier === undefined ? {} : { identifier: { ...extra.what.identifier } }),
    ...(extra.what.display === undefined ? {} : { display: extra.what.display }),
  };
  return {
    what,
    type: extra.type ?? { system: ENTITY_TYPE, code: '2', display: 'System Object' },
    ...(extra.role === undefined ? {} : { role: { ...extra.role } }),
    ...(extra.description === undefined ? {} : { description: extra.description }),
  };
}

/** Members that carry clinical content in FHIR resources; none belongs in an AuditEvent. */
const CLINICAL_KEYS: ReadonlySet<string> = new Set(['section', 'entry', 'contained', 'text', 'resource', 'valueBase64Binary', 'detail', 'div']);

/** Throws if `value` contains a member that carries clinical content (a resource body, narrative, sections). */
export function assertNoClinicalContent(value: unknown, path = 'AuditEvent'): void {
  if (Array.isArray(value)) {
    value.forEach((item: unknown, i) => assertNoClinicalContent(item, `${path}[${i}]`));
    return;
  }
  if (typeof value !== 'object' || value === null) return;
  for (const [key, member] of Object.entries(value)) {
    if (CLINICAL_KEYS.has(key)) throw new TypeError(`${path}.${key}: an AuditEvent must not carry clinical content`);
    // A resource body smuggled in anywhere: only the AuditEvent itself may have a resourceType.
    if (key === 'resourceType' && path !== 'AuditEvent') throw new TypeError(`${path}: an AuditEvent must not embed a resource`);
    assertNoClinicalContent(member, `${path}.${key}`);
  }
}

/** Builds one BALP-shaped AuditEvent. The result is plain JSON (canonicalJson accepts it). */
export function buildAuditEvent(input: AuditEventInput): AuditEvent {
  const shape = shapeOf(input);
  const country = input.sourceCountry;
  const agents: AuditEventAgent[] = [];
  if (input.user !== undefined) agents.push(...userAgents(input.user, input.client === undefined ? country : undefined));
  if (input.client !== undefined) agents.push(clientAgent(input.client, country));
  agents.push(serverAgent(input.server));

  const entities: AuditEventEntity[] = [transactionEntity(input.transactionId)];
  if (input.patient !== undefined) entities.push(patientEntity(input.patient));
  if (input.query !== undefined) entities.push(queryEntity(input.query));
  for (const extra of input.entityExtra ?? []) entities.push(extraEntity(extra));

  const event: AuditEvent = {
    resourceType: 'AuditEvent',
    type: { ...shape.type },
    subtype: [...shape.subtype.map((c) => ({ ...c })), { system: AUDIT_KIND_SYSTEM, code: input.kind }],
    action: shape.action,
    recorded: input.recorded.toISOString(),
    outcome: OUTCOME_CODES[input.outcome],
    ...(input.outcomeDesc === undefined ? {} : { outcomeDesc: input.outcomeDesc }),
    agent: agents,
    // The gateway that records the event is the observer (security-source-type 4, application server).
    source: {
      observer: nodeWho(input.server),
      type: [{ system: SOURCE_TYPE, code: '4', display: 'Application Server' }],
    },
    entity: entities,
  };
  assertNoClinicalContent(event);
  // A JSON round trip drops nothing here but guarantees the value is plain data for canonical JSON.
  return JSON.parse(JSON.stringify(event)) as AuditEvent;
}

// ---------------------------------------------------------------------------------------------
// Readable summary (citizen's access log)

export interface AuditSummary {
  /** The person (or, failing that, the system) who acted. */
  who: string;
  role: string | undefined;
  organization: string | undefined;
  /** ISO 3166 country the request came from, when known. */
  country: string | undefined;
  what: string;
  /** ISO 8601 instant. */
  when: string;
  /** Purposes of use, readable. */
  why: string[];
  outcome: 'success' | 'denied or failed';
}

function codingText(c: Coding | undefined): string | undefined {
  return c?.display ?? c?.code;
}

function hasType(agent: AuditEventAgent, system: string, code: string): boolean {
  return agent.type?.coding?.some((c) => c.system === system && c.code === code) ?? false;
}

function kindOf(event: AuditEvent): AuditKind | undefined {
  const code = event.subtype?.find((c) => c.system === AUDIT_KIND_SYSTEM)?.code;
  return AUDIT_KINDS.find((k) => k === code);
}

const WHAT_BY_KIND: Record<AuditKind, string> = {
  read: 'read the record',
  query: 'searched for the patient',
  export: 'received the Patient Summary',
  import: 'received the Patient Summary',
  'consent-decision': 'consent was checked',
  'consent-change': 'consent was changed',
  'sign-in': 'signed in',
  'submission-sent': 'sent documents to the home country',
  'submission-registered': 'added documents to the record',
  'break-glass': 'used emergency access',
  'peer-auth-failure': 'a gateway failed to authenticate',
  'trust-list-change': 'the trust list changed',
};

/** Who, role, organisation, country, what, when, why and outcome of an AuditEvent, for people. */
export function describeAuditEvent(event: AuditEvent): AuditSummary {
  const agents = event.agent ?? [];
  const user = agents.find((a) => hasType(a, PARTICIPATION_TYPE, 'IRCP'));
  const client = agents.find((a) => hasType(a, DCM, DCM_DESTINATION_ROLE_ID));
  const org = agents.find((a) => hasType(a, ROLE_CLASS, 'PROV'));
  const countryOf = (a: AuditEventAgent | undefined): string | undefined =>
    a?.location?.identifier?.system === COUNTRY_SYSTEM ? a.location.identifier.value : undefined;
  const kind = kindOf(event);
  const consentInteraction = event.subtype?.find((c) => c.system === RESTFUL_INTERACTION)?.code;
  let what = kind === undefined ? (codingText(event.type) ?? 'unknown event') : WHAT_BY_KIND[kind];
  if (kind === 'consent-change') what = consentInteraction === 'create' ? 'consent was given' : consentInteraction === 'delete' ? 'consent was deleted' : what;
  return {
    who: user?.name ?? user?.who?.display ?? client?.who?.display ?? 'unknown',
    role: codingText(user?.role?.[0]?.coding?.[0]),
    organization: org?.who?.display,
    country: countryOf(client) ?? countryOf(user),
    what,
    when: event.recorded ?? '',
    why: (user?.purposeOfUse ?? []).flatMap((p) => p.coding ?? []).map((c) => codingText(c) ?? ''),
    outcome: event.outcome === '0' ? 'success' : 'denied or failed',
  };
}
