/**
 * Country B: the hospital-facing cross-border routes (DESIGN.md 3.1). The EHR calls with the HCP
 * assertion this gateway issued; the gateway forwards it, inside a signed peer request over mutual
 * TLS, to the patient's country and relays what comes back after checking it again.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Auditor } from '../audit/auditor.js';
import { ERROR_CATALOGUE, GatewayError, type ErrorCode } from '../http/errors.js';
import { FHIR_JSON } from '../http/error-handler.js';
import { requireHcp, type GuardOptions } from '../identity/guards.js';
import { validateIpsDocument } from '../national/ips.js';
import { PeerRefusedError, type PeerClient } from './peer-client.js';
import { auditUser, DiscoveryResultSchema, SummaryResultSchema } from './provider.js';

export interface ConsumerRoutesOptions {
  readonly guard: GuardOptions;
  readonly ourCountry: string;
  readonly ourNcpId: string;
  readonly peers: PeerClient;
  readonly audit: Auditor;
}

/** Codes a peer may hand back that mean the same to our caller; anything else is `peer.refused`. */
const RELAYED: ReadonlySet<string> = new Set<ErrorCode>([
  'consent.denied',
  'patient.reference-invalid',
  'document.not-found',
  'document.invalid',
  'hcp.assertion-invalid',
  'hcp.assertion-expired',
  'hcp.purpose-not-allowed',
  'request.invalid',
  'national.unavailable',
  'audit.unavailable',
]);

function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CATALOGUE, code);
}

function relay(e: unknown): never {
  if (e instanceof PeerRefusedError) {
    if (e.peerCode !== undefined && RELAYED.has(e.peerCode) && isErrorCode(e.peerCode)) throw new GatewayError(e.peerCode, undefined, { cause: e });
    if (e.peerStatus >= 500) throw new GatewayError('peer.unreachable', `peer answered ${e.peerStatus}`, { cause: e, retryAfter: 30 });
  }
  throw e;
}

const Country = z.string().regex(/^[A-Z]{2}$/);

const IdentifyBody = z
  .object({
    country: Country,
    identifier: z.object({ system: z.string().min(1).max(256), value: z.string().min(1).max(64) }).strict(),
    birthDate: z.iso.date().optional(),
    name: z.object({ family: z.string().min(1).max(200).optional(), given: z.string().min(1).max(200).optional() }).strict().optional(),
  })
  .strict();

const IdentifyAnswer = z.object({
  outcome: z.enum(['match', 'no-match', 'more-attributes-needed']),
  matches: z.array(z.object({ country: z.string(), ref: z.string(), name: z.string().optional(), birthDate: z.string().optional(), gender: z.string().optional() })),
});

export const consumerRoutes: FastifyPluginAsyncZod<ConsumerRoutesOptions> = async (app, opts) => {
  function checkAbroad(country: string): void {
    // The patient's own country answers through its own national systems, not the peer API.
    if (country === opts.ourCountry) throw new GatewayError('peer.unknown-country', country);
  }

  app.post(
    '/api/v1/cross-border/patients/$identify',
    {
      bodyLimit: 8 * 1024,
      schema: {
        summary: 'Identify a patient of another country (the answer never reveals whether an unconsented person exists)',
        tags: ['cross-border'],
        body: IdentifyBody,
        response: { 200: IdentifyAnswer },
      },
    },
    async (request) => {
      const { token, assertion } = await requireHcp(request, opts.guard);
      const body = request.body;
      checkAbroad(body.country);
      const answer = await opts.peers
        .call(
          body.country,
          '/ncp/v1/patient-discovery',
          {
            hcp: token,
            query: {
              identifier: body.identifier,
              ...(body.birthDate === undefined ? {} : { birthDate: body.birthDate }),
              ...(body.name?.family === undefined ? {} : { familyName: body.name.family }),
            },
          },
          DiscoveryResultSchema,
        )
        .catch(relay);
      await opts.audit.record({
        kind: 'query',
        outcome: answer.payload.outcome === 'match' ? 'success' : 'minor',
        user: auditUser(assertion),
        client: { id: assertion.client_id, network: request.ip },
        sourceCountry: opts.ourCountry,
        transactionId: request.id,
        query: `Patient?identifier=${body.identifier.system}|*&country=${body.country}`,
      });
      return {
        outcome: answer.payload.outcome,
        matches: answer.payload.matches.map((m) => ({ country: body.country, ...m })),
      };
    },
  );

  app.get(
    '/api/v1/cross-border/patients/:country/:ref/summary',
    {
      schema: {
        summary: 'The patient\'s IPS Patient Summary from their country, limited to what they consented to',
        tags: ['cross-border'],
        params: z.object({ country: Country, ref: z.string().min(1).max(128) }),
        querystring: z.object({ section: z.union([z.string(), z.array(z.string())]).optional() }).strict(),
      },
    },
    async (request, reply) => {
      const { token, assertion } = await requireHcp(request, opts.guard);
      const { country, ref } = request.params;
      checkAbroad(country);
      const wanted = request.query.section === undefined ? undefined : [request.query.section].flat();
      const answer = await opts.peers
        .call(country, '/ncp/v1/patient-summary', { hcp: token, ref, ...(wanted === undefined ? {} : { sections: wanted }) }, SummaryResultSchema)
        .catch(relay);
      // What a peer signed is still checked before it reaches a clinician's screen.
      let document;
      try {
        document = validateIpsDocument(answer.payload.bundle);
      } catch (cause) {
        throw new GatewayError('peer.bad-response', 'the peer sent an invalid IPS document', { cause });
      }
      const signedAt = answer.signature.signedAt.toISOString();
      await opts.audit.record({
        kind: 'import',
        outcome: 'success',
        user: auditUser(assertion),
        client: { id: assertion.client_id, network: request.ip },
        sourceCountry: country,
        transactionId: request.id,
        patient: { reference: `Patient/${ref}` },
        entityExtra: [{ what: { display: `IPS sections ${answer.payload.sections.join(',')}` }, description: `signed by ${answer.signature.signerNcpId} at ${signedAt}` }],
      });
      // Provenance travels with the document as FHIR Bundle.signature: the provider's own JWS over
      // the answer (sigFormat application/jose), verifiable against its trust-list keys.
      const bundle = {
        ...document.bundle,
        signature: {
          type: [{ system: 'urn:iso-astm:E1762-95:2013', code: '1.2.840.10065.1.12.1.5', display: 'Verification Signature' }],
          when: signedAt,
          who: { identifier: { system: 'urn:ncpeh:ncp', value: answer.signature.signerNcpId }, display: `National Contact Point ${country}` },
          sigFormat: 'application/jose',
          data: Buffer.from(answer.signature.jws, 'utf8').toString('base64'),
        },
      };
      return reply
        .header('content-type', FHIR_JSON)
        .header('x-ncpeh-signed-by', answer.signature.signerNcpId)
        .header('x-ncpeh-signed-at', signedAt)
        .header('x-ncpeh-consent-basis', answer.payload.basis)
        .header('cache-control', 'no-store')
        .send(bundle);
    },
  );
};
