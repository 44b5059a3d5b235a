/**
 * The one error catalogue. Every failure the gateway reports to a caller is a `GatewayError` with a
 * stable code from `ERROR_CATALOGUE`; the error handler (src/http/error-handler.ts) is the only place
 * that turns one into an HTTP answer (a FHIR OperationOutcome). Each code is documented in
 * docs/errors.md; test/errors.test.ts keeps the two in step.
 */

/** FHIR R4 IssueType values we use (http://hl7.org/fhir/valueset-issue-type.html). */
export type IssueType =
  | 'invalid'
  | 'structure'
  | 'required'
  | 'value'
  | 'security'
  | 'login'
  | 'forbidden'
  | 'suppressed'
  | 'processing'
  | 'not-supported'
  | 'duplicate'
  | 'not-found'
  | 'conflict'
  | 'too-long'
  | 'exception'
  | 'timeout'
  | 'transient'
  | 'throttled'
  | 'invariant';

export interface ErrorSpec {
  readonly status: number;
  readonly issueType: IssueType;
  /** Text shown to callers; never derived from internal state. */
  readonly title: string;
  /** Whether the detail message given at the throw site may be shown to the caller. */
  readonly exposeDetail: boolean;
}

export const ERROR_CATALOGUE = {
  // request shape (src/http)
  'request.invalid': { status: 400, issueType: 'invalid', title: 'The request does not match the schema', exposeDetail: true },
  'request.malformed-json': { status: 400, issueType: 'structure', title: 'The request body is not well-formed JSON', exposeDetail: false },
  'request.forbidden-key': { status: 400, issueType: 'security', title: 'The request body uses a forbidden property name', exposeDetail: false },
  'request.too-large': { status: 413, issueType: 'too-long', title: 'The request body is larger than this route accepts', exposeDetail: false },
  'request.unsupported-media-type': { status: 415, issueType: 'not-supported', title: 'The request content type is not supported by this route', exposeDetail: false },
  'request.not-found': { status: 404, issueType: 'not-found', title: 'No such route', exposeDetail: false },
  'request.method-not-allowed': { status: 405, issueType: 'not-supported', title: 'The method is not allowed on this route', exposeDetail: false },
  'request.timeout': { status: 408, issueType: 'timeout', title: 'The request took too long to arrive', exposeDetail: false },
  'request.rate-limited': { status: 429, issueType: 'throttled', title: 'Too many requests', exposeDetail: false },
  // process and dependencies
  'internal.error': { status: 500, issueType: 'exception', title: 'Internal error; quote the correlation id to the operator', exposeDetail: false },
  'service.unavailable': { status: 503, issueType: 'transient', title: 'A dependency is unavailable; retry later', exposeDetail: false },
  'service.busy': { status: 503, issueType: 'throttled', title: 'The gateway is at capacity; retry after the Retry-After delay', exposeDetail: false },
  'storage.unavailable': { status: 503, issueType: 'transient', title: 'The database is unavailable; retry later', exposeDetail: false },
  // peer gateways and trust (src/trust, src/crossborder)
  'peer.certificate-required': { status: 401, issueType: 'security', title: 'A trusted client certificate is required', exposeDetail: false },
  'peer.untrusted': { status: 403, issueType: 'security', title: 'The calling gateway is not in the trust list', exposeDetail: false },
  'peer.country-mismatch': { status: 403, issueType: 'security', title: 'The signed issuer does not match the authenticated certificate', exposeDetail: false },
  'peer.unreachable': { status: 502, issueType: 'transient', title: 'The peer gateway could not be reached', exposeDetail: false },
  'peer.bad-response': { status: 502, issueType: 'processing', title: 'The peer gateway answered with something we cannot accept', exposeDetail: false },
  'peer.unknown-country': { status: 404, issueType: 'not-found', title: 'No trusted gateway is known for that country', exposeDetail: true },
  'envelope.malformed': { status: 400, issueType: 'structure', title: 'The signed envelope is malformed', exposeDetail: false },
  'envelope.algorithm-forbidden': { status: 400, issueType: 'security', title: 'The envelope uses a forbidden algorithm or header', exposeDetail: false },
  'envelope.unknown-key': { status: 401, issueType: 'security', title: 'The envelope names a key we do not trust', exposeDetail: false },
  'envelope.signature-invalid': { status: 401, issueType: 'security', title: 'The envelope signature does not verify', exposeDetail: false },
  'envelope.decryption-failed': { status: 400, issueType: 'security', title: 'The encrypted envelope could not be decrypted', exposeDetail: false },
  'envelope.expired': { status: 401, issueType: 'security', title: 'The envelope is expired or not yet valid', exposeDetail: false },
  'envelope.lifetime-too-long': { status: 401, issueType: 'security', title: 'The envelope lifetime exceeds the allowed maximum', exposeDetail: false },
  'envelope.wrong-audience': { status: 401, issueType: 'security', title: 'The envelope is addressed to another gateway', exposeDetail: false },
  'envelope.replayed': { status: 409, issueType: 'duplicate', title: 'The envelope identifier was already used', exposeDetail: false },
  'peer.refused': { status: 502, issueType: 'processing', title: 'The peer gateway refused the request', exposeDetail: true },
  'peer.server-untrusted': { status: 502, issueType: 'security', title: 'The peer gateway presented a server certificate the trust list does not pin', exposeDetail: false },
  // national eID and professional identity (src/identity)
  'eid.malformed': { status: 400, issueType: 'structure', title: 'The eID assertion is malformed', exposeDetail: false },
  'eid.unknown-issuer': { status: 401, issueType: 'security', title: 'The eID assertion comes from an issuer this gateway does not accept', exposeDetail: false },
  'eid.signature-invalid': { status: 401, issueType: 'security', title: 'The eID assertion signature does not verify against the pinned keys', exposeDetail: false },
  'eid.algorithm-forbidden': { status: 401, issueType: 'security', title: 'The eID assertion uses a forbidden algorithm', exposeDetail: false },
  'eid.unknown-key': { status: 401, issueType: 'security', title: 'The eID assertion names a key the provider does not publish', exposeDetail: false },
  'eid.wrong-audience': { status: 401, issueType: 'security', title: 'The eID assertion is addressed to another party', exposeDetail: false },
  'eid.wrong-recipient': { status: 401, issueType: 'security', title: 'The eID assertion names another recipient or destination', exposeDetail: false },
  'eid.wrong-request': { status: 401, issueType: 'security', title: 'The eID assertion answers a request this gateway did not make', exposeDetail: false },
  'eid.expired': { status: 401, issueType: 'security', title: 'The eID assertion is expired or not yet valid', exposeDetail: false },
  'eid.replayed': { status: 401, issueType: 'security', title: 'The eID assertion was already used', exposeDetail: false },
  'eid.insufficient-loa': { status: 403, issueType: 'security', title: 'The eID level of assurance is below substantial', exposeDetail: false },
  'eid.doctype-forbidden': { status: 400, issueType: 'security', title: 'XML with a document type declaration is refused', exposeDetail: false },
  'eid.unsigned': { status: 401, issueType: 'security', title: 'The eID assertion is not signed as required', exposeDetail: false },
  'eid.wrapped': { status: 401, issueType: 'security', title: 'The eID response does not contain exactly one signed assertion', exposeDetail: false },
  'eid.missing-attribute': { status: 401, issueType: 'security', title: 'The eID assertion lacks a required attribute', exposeDetail: true },
  'eid.login-failed': { status: 401, issueType: 'login', title: 'Sign-in with the national eID failed', exposeDetail: false },
  // hospital clients and HCP assertions (src/identity)
  'client.unknown': { status: 401, issueType: 'security', title: 'The calling system is not a registered client', exposeDetail: false },
  'client.authentication-failed': { status: 401, issueType: 'security', title: 'The client authentication assertion is invalid', exposeDetail: false },
  'client.scope-not-allowed': { status: 403, issueType: 'forbidden', title: 'The client is not registered for this scope', exposeDetail: true },
  'hcp.not-registered': { status: 403, issueType: 'forbidden', title: 'The professional is not in the national registry with an active role', exposeDetail: false },
  'hcp.assertion-missing': { status: 401, issueType: 'login', title: 'A Bearer HCP assertion is required', exposeDetail: false },
  'hcp.assertion-invalid': { status: 401, issueType: 'security', title: 'The HCP assertion is invalid', exposeDetail: false },
  'hcp.assertion-expired': { status: 401, issueType: 'security', title: 'The HCP assertion is expired or not yet valid', exposeDetail: false },
  'hcp.purpose-not-allowed': { status: 403, issueType: 'forbidden', title: 'The purpose of use is not allowed', exposeDetail: true },
  'citizen.session-missing': { status: 401, issueType: 'login', title: 'Sign in with your national eID first', exposeDetail: false },
  'citizen.session-invalid': { status: 401, issueType: 'security', title: 'The citizen session is invalid or expired', exposeDetail: false },
  'registry.unavailable': { status: 503, issueType: 'transient', title: 'The national professional registry is unavailable', exposeDetail: false },
  // consent (src/consent)
  'consent.invalid': { status: 422, issueType: 'invalid', title: 'The consent is not valid', exposeDetail: true },
  'consent.not-found': { status: 404, issueType: 'not-found', title: 'No such consent', exposeDetail: false },
  'consent.denied': { status: 403, issueType: 'forbidden', title: 'No consent or policy permits this access', exposeDetail: false },
  // national infrastructure and documents (src/national)
  'national.unavailable': { status: 503, issueType: 'transient', title: 'The national FHIR server is unavailable', exposeDetail: false },
  'national.bad-response': { status: 502, issueType: 'processing', title: 'The national FHIR server answered with something we cannot use', exposeDetail: false },
  'patient.not-found': { status: 404, issueType: 'not-found', title: 'No matching patient', exposeDetail: false },
  'patient.reference-invalid': { status: 404, issueType: 'not-found', title: 'The patient reference is unknown, expired or not yours', exposeDetail: false },
  'document.not-found': { status: 404, issueType: 'not-found', title: 'No Patient Summary is available', exposeDetail: false },
  'document.invalid': { status: 422, issueType: 'invariant', title: 'The document does not satisfy the IPS rules and is not relayed', exposeDetail: true },
  'submission.invalid': { status: 422, issueType: 'invalid', title: 'The submitted Bundle is not acceptable', exposeDetail: true },
  'submission.idempotency-key-required': { status: 400, issueType: 'required', title: 'An Idempotency-Key header is required', exposeDetail: false },
  'submission.idempotency-conflict': { status: 409, issueType: 'conflict', title: 'The Idempotency-Key was used with a different body', exposeDetail: false },
  'submission.not-found': { status: 404, issueType: 'not-found', title: 'No such submission', exposeDetail: false },
  // audit (src/audit)
  'audit.unavailable': { status: 503, issueType: 'transient', title: 'The audit log cannot be written; nothing is disclosed', exposeDetail: false },
  'audit.proof-unavailable': { status: 404, issueType: 'not-found', title: 'No proof is available for that entry or tree size', exposeDetail: false },
  'trust-list.invalid': { status: 500, issueType: 'security', title: 'The trust list is invalid', exposeDetail: false },
  'trust-list.unavailable': { status: 503, issueType: 'transient', title: 'No valid trust list is loaded', exposeDetail: false },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export const ERROR_SYSTEM = 'urn:ncpeh:error';

export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Extra detail from the throw site; shown only when the catalogue says it is safe. */
  readonly detail: string | undefined;
  /** FHIRPath-ish locations (e.g. `body.identifier.value`) for validation failures. */
  readonly expression: readonly string[];
  /** Seconds for a `Retry-After` header (503s). */
  readonly retryAfter: number | undefined;

  constructor(
    code: ErrorCode,
    detail?: string,
    options: { cause?: unknown; expression?: readonly string[]; retryAfter?: number } = {},
  ) {
    super(detail === undefined ? code : `${code}: ${detail}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GatewayError';
    this.code = code;
    this.status = ERROR_CATALOGUE[code].status;
    this.detail = detail;
    this.expression = options.expression ?? [];
    this.retryAfter = options.retryAfter;
  }
}

export function isGatewayError(e: unknown): e is GatewayError {
  return e instanceof GatewayError;
}
