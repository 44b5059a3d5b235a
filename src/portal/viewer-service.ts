/**
 * What the professional viewer does on the professional's behalf, as the hospital EHR would through
 * the API (DESIGN.md flows 2, 3, 4), called in-process: sign in (sandbox only), identify a patient
 * of another country, fetch the Patient Summary. Each returns values or throws typed errors; the
 * routes render them. The cross-border steps follow src/crossborder/consumer-routes.ts rule for rule
 * (peer call, IPS re-validation of what the peer signed, audit record); keep the two in step.
 */
import { z } from 'zod';
import type { Config } from '../config/schema.js';
import { identifyAbroad, summaryFromAbroad, type ConsumerDeps, type FetchedSummary } from '../crossborder/consumer.js';
import { auditUser, type DiscoveryResult } from '../crossborder/provider.js';
import { GatewayError, isGatewayError, type ErrorCode } from '../http/errors.js';
import type { GuardOptions } from '../identity/guards.js';
import { issueHcpAssertion, verifyHcpAssertion, type HcpAssertion, type PurposeOfUse } from '../identity/hcp-assertion.js';
import type { Professional } from '../identity/registry.js';
import { checkSubmissionBundle, contentHash } from '../outbox/submission-bundle.js';
import type { GatewayServices } from '../services.js';

/** The client id the viewer's HCP assertions name (`client_id`), so audit records tell it apart. */
export const VIEWER_CLIENT_ID = 'ncpeh-portal-viewer';

export interface ViewerDeps {
  readonly config: Readonly<Config>;
  readonly services: Pick<GatewayServices, 'identity' | 'peers' | 'audit' | 'submissions'>;
  readonly guard: GuardOptions;
  /** Wakes the outbox worker after a submission is stored (GatewayDeps.onQueued). */
  readonly onQueued?: () => void;
}

export interface RequestMeta {
  readonly requestId: string;
  readonly remoteAddress: string;
  /** Aborted when the browser hangs up: a cross-border call still waiting or running is abandoned. */
  readonly signal?: AbortSignal;
}

export interface SignedInProfessional {
  readonly token: string;
  readonly assertion: HcpAssertion;
  readonly professional: Professional;
  readonly expiresAt: Date;
}

const SsoAnswer = z.object({ SAMLResponse: z.string().min(1).max(400_000) });
const SSO_TIMEOUT_MS = 5_000;

/**
 * The sandbox eIDAS IdP (sandbox/eid.ts) publishes entity id `<base>/idp` and answers
 * `GET <base>/sso?person=...` with a signed Response. A real IdP has no such door: in production the
 * professional signs in at the hospital EHR, which posts the assertion to `/api/v1/auth/hcp`.
 */
function sandboxSsoUrl(idpEntityId: string, personId: string): URL {
  const sso = new URL('sso', idpEntityId);
  sso.searchParams.set('person', personId);
  sso.searchParams.set('loa', 'substantial');
  return sso;
}

/**
 * Signs a professional in through the sandbox's eIDAS IdP, then exactly as `POST /api/v1/auth/hcp`
 * does after client authentication: SAML verification (signature, issuer, audience, recipient,
 * time, LoA >= substantial, replay) -> national registry (role and organisation) -> HCP assertion.
 */
export async function sandboxSignIn(deps: ViewerDeps, personId: string, purpose: PurposeOfUse, meta: RequestMeta): Promise<SignedInProfessional> {
  const { config, services } = deps;
  const report = async (outcome: 'success' | 'minor', code?: string): Promise<void> =>
    services.audit.record({
      kind: 'sign-in',
      outcome,
      user: { id: { iss: 'urn:ncpeh:eid:hcp', sub: personId } },
      client: { id: VIEWER_CLIENT_ID, network: meta.remoteAddress },
      transactionId: meta.requestId,
      ...(code === undefined ? {} : { outcomeDesc: code }),
    });
  try {
    // 0. the viewer signs people in only in the sandbox
    if (!config.sandbox) throw new GatewayError('eid.login-failed', 'viewer sign-in is available in the sandbox only');
    // 1. a signed eIDAS assertion from the configured IdP
    const samlConfig = config.eid.saml[0];
    const saml = samlConfig === undefined ? undefined : services.identity.saml.find((s) => s.id === samlConfig.id);
    if (samlConfig === undefined || saml === undefined) throw new GatewayError('eid.unknown-issuer', 'no SAML IdP configured');
    let res: Response;
    try {
      res = await fetch(sandboxSsoUrl(samlConfig.idpEntityId, personId), { redirect: 'error', signal: AbortSignal.timeout(SSO_TIMEOUT_MS) });
    } catch (cause) {
      throw new GatewayError('service.unavailable', 'sandbox IdP unreachable', { cause });
    }
    if (res.status !== 200) {
      await res.body?.cancel();
      throw new GatewayError('eid.login-failed', `sandbox IdP answered ${res.status}`);
    }
    const answer = SsoAnswer.safeParse(await res.json().catch(() => undefined));
    if (!answer.success) throw new GatewayError('eid.malformed', 'sandbox IdP answer');
    const eid = await saml.verifier.verify(answer.data.SAMLResponse);
    // 2. role and organisation from the national registry; not registered -> refused
    if (services.identity.registry === undefined) throw new GatewayError('registry.unavailable', 'no registry configured');
    const professional = await services.identity.registry.lookup(eid.personId);
    // 3. the gateway vouches for the result
    const issued = await issueHcpAssertion({
      eid,
      professional,
      clientId: VIEWER_CLIENT_ID,
      purposeOfUse: purpose,
      scope: 'patient/*.read',
      ourNcpId: config.ncpId,
      country: config.country,
      signingKey: deps.guard.signingKey,
      ttlSeconds: config.policy.hcpAssertionTtlSeconds,
      now: deps.guard.now(),
    });
    await report('success');
    return { token: issued.token, assertion: issued.claims, professional, expiresAt: issued.expiresAt };
  } catch (e) {
    await report('minor', isGatewayError(e) ? e.code : 'internal.error');
    throw e;
  }
}

/** The HCP assertion kept in the viewer's cookie, verified as `requireHcp` verifies a Bearer token. */
export async function verifyViewerAssertion(deps: ViewerDeps, token: string): Promise<HcpAssertion> {
  return verifyHcpAssertion(token, {
    trustedKeys: { keys: [deps.guard.signingKey.publicJwk] },
    expectedIss: deps.guard.ourNcpId,
    now: deps.guard.now(),
    skewSeconds: deps.guard.skewSeconds,
  });
}

/** Peer refusals the page explains to the professional; anything else stays a peer failure. */
const EXPLAINED = ['consent.denied', 'patient.reference-invalid', 'document.not-found', 'hcp.assertion-expired', 'hcp.assertion-invalid'] as const satisfies readonly ErrorCode[];

export function isExplainedRefusal(e: unknown): boolean {
  return isGatewayError(e) && (EXPLAINED as readonly string[]).includes(e.code);
}

export interface IdentifyQuery {
  readonly country: string;
  readonly identifier: { readonly system: string; readonly value: string };
  readonly birthDate: string;
}

function consumerDeps(deps: ViewerDeps): ConsumerDeps {
  return { ourCountry: deps.config.country, peers: deps.services.peers, audit: deps.services.audit };
}

/** The same identification as `POST /api/v1/cross-border/patients/$identify` (src/crossborder/consumer.ts). */
export async function identifyPatient(deps: ViewerDeps, hcp: { token: string; assertion: HcpAssertion }, q: IdentifyQuery, meta: RequestMeta): Promise<DiscoveryResult> {
  return deps.services.peers.withSlot(q.country, () => identifyAbroad(consumerDeps(deps), { ...hcp, ...meta }, q), { signal: meta.signal });
}

/** The same summary as `GET /api/v1/cross-border/patients/:country/:ref/summary`. */
export async function fetchSummary(
  deps: ViewerDeps,
  hcp: { token: string; assertion: HcpAssertion },
  country: string,
  ref: string,
  meta: RequestMeta,
): Promise<FetchedSummary> {
  return deps.services.peers.withSlot(country, () => summaryFromAbroad(consumerDeps(deps), { ...hcp, ...meta }, country, ref), { signal: meta.signal });
}

/** LOINC 34109-9 "Note": the document type of a free-text clinical note. */
const NOTE_TYPE = { system: 'http://loinc.org', code: '34109-9', display: 'Note' } as const;
export const MAX_NOTE_CHARS = 4000;

/**
 * The note as the Bundle the submissions API accepts (src/outbox/submission-bundle.ts): a
 * `collection` with one DocumentReference about the patient, its text as a plain-text attachment.
 * Deterministic for one form (the id comes from the form's idempotency key, no timestamp: the store
 * records when), so a resubmitted form is the same submission, not a conflict or a duplicate.
 */
export function noteBundle(p: { ref: string; note: string; idempotencyKey: string; author: string; organisation: string; lang: string }): Record<string, unknown> {
  return {
    resourceType: 'Bundle',
    type: 'collection',
    entry: [
      {
        fullUrl: `urn:uuid:${p.idempotencyKey}`,
        resource: {
          resourceType: 'DocumentReference',
          status: 'current',
          type: { coding: [{ ...NOTE_TYPE }] },
          subject: { reference: `Patient/${p.ref}` },
          author: [{ display: `${p.author}, ${p.organisation}` }],
          description: 'Note from a health professional abroad',
          content: [{ attachment: { contentType: 'text/plain; charset=utf-8', language: p.lang, data: Buffer.from(p.note, 'utf8').toString('base64') } }],
        },
      },
    ],
  };
}

/**
 * Sends a note back to the patient's country exactly as `POST .../documents` does (src/outbox/routes.ts):
 * the bundle rules -> durable store with the idempotency key -> audit record -> wake the worker.
 */
export async function sendNoteHome(
  deps: ViewerDeps,
  hcp: { token: string; assertion: HcpAssertion },
  p: { country: string; ref: string; note: string; idempotencyKey: string; lang: string },
  meta: RequestMeta,
): Promise<{ trackingId: string; status: string }> {
  if (p.country === deps.config.country) throw new GatewayError('peer.unknown-country', p.country);
  const iua = hcp.assertion.extensions.ihe_iua;
  const bundle = noteBundle({ ref: p.ref, note: p.note, idempotencyKey: p.idempotencyKey, author: iua.subject_name, organisation: iua.subject_organization, lang: p.lang });
  checkSubmissionBundle(bundle, `Patient/${p.ref}`);
  const { view, created } = await deps.services.submissions.submit({
    clientId: hcp.assertion.client_id,
    idempotencyKey: p.idempotencyKey,
    bodyHash: contentHash({ country: p.country, ref: p.ref, bundle }),
    country: p.country,
    patientRef: p.ref,
    hcpSubject: hcp.assertion.sub,
    hcpToken: hcp.token,
    bundle,
  });
  if (created) {
    await deps.services.audit.record({
      kind: 'submission-sent',
      outcome: 'success',
      user: auditUser(hcp.assertion),
      client: { id: hcp.assertion.client_id, network: meta.remoteAddress },
      sourceCountry: deps.config.country,
      transactionId: meta.requestId,
      patient: { reference: `Patient/${p.ref}` },
      entityExtra: [{ what: { identifier: { system: 'urn:ncpeh:submission', value: view.trackingId } }, description: `queued for ${p.country}` }],
    });
    deps.onQueued?.();
  }
  return { trackingId: view.trackingId, status: view.status };
}
