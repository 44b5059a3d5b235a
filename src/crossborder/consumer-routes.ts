/**
 * Country B: the hospital-facing cross-border routes (DESIGN.md 3.1). The EHR calls with the HCP
 * assertion this gateway issued; the work is in consumer.ts, shared with the professional viewer.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Auditor } from '../audit/auditor.js';
import { FHIR_JSON } from '../http/error-handler.js';
import { requireHcp, type GuardOptions } from '../identity/guards.js';
import { identifyAbroad, summaryFromAbroadAs } from './consumer.js';
import { callerLeft } from '../http/work-limiter.js';
import type { PeerClient } from './peer-client.js';

export interface ConsumerRoutesOptions {
  readonly guard: GuardOptions;
  readonly ourCountry: string;
  readonly ourNcpId: string;
  readonly peers: PeerClient;
  readonly audit: Auditor;
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

/**
 * The Bundle as JSON with `signature` last and `signature.data` the base64 of `jws` (FHIR base64Binary).
 * The ~93 KB base64 text is spliced in rather than passed through JSON.stringify: base64 needs no
 * escaping, and scanning it cost about a fifth of serialising the answer (bench/README.md). Any
 * `signature` the Bundle had is replaced, as a spread would.
 */
export function withSignature(bundle: object, signature: Readonly<Record<string, unknown>>, jws: string): Buffer {
  const { signature: _replaced, ...rest } = bundle as Record<string, unknown>;
  const head = JSON.stringify(rest);
  const sig = JSON.stringify({ ...signature, data: '' });
  if (!head.endsWith('}') || !sig.endsWith('"data":""}')) throw new Error('withSignature: unexpected JSON shape');
  // Written into one buffer of the exact size: building the 140 KB answer as one string first and
  // then encoding it cost about 190 KB more garbage per answer (bench/alloc.ts).
  const jwsBytes = Buffer.from(jws, 'utf8');
  const data = jwsBytes.toString('base64');
  const headBytes = head.length > 2 ? Buffer.byteLength(head, 'utf8') - 1 : 0; // without the closing '}'
  const middle = `${head.length > 2 ? ',' : '{'}"signature":${sig.slice(0, -3)}"`;
  const middleBytes = Buffer.byteLength(middle, 'utf8');
  const out = Buffer.allocUnsafe(headBytes + middleBytes + data.length + 3);
  let at = out.write(head, 0, headBytes, 'utf8');
  at += out.write(middle, at, middleBytes, 'utf8');
  at += out.write(data, at, data.length, 'latin1');
  at += out.write('"}}', at, 3, 'latin1');
  if (at !== out.length) throw new Error('withSignature: length mismatch');
  return out;
}

export const consumerRoutes: FastifyPluginAsyncZod<ConsumerRoutesOptions> = async (app, opts) => {
  const deps = { ourCountry: opts.ourCountry, peers: opts.peers, audit: opts.audit };

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
    async (request, reply) => {
      const { token, assertion } = await requireHcp(request, opts.guard);
      const body = request.body;
      const left = callerLeft(reply);
      const result = await opts.peers.withSlot(
        body.country,
        () =>
          identifyAbroad(
            deps,
            { token, assertion, remoteAddress: request.ip, requestId: request.id, signal: left },
            { country: body.country, identifier: body.identifier, birthDate: body.birthDate, familyName: body.name?.family },
          ),
        { signal: left },
      );
      return { outcome: result.outcome, matches: result.matches.map((m) => ({ country: body.country, ...m })) };
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
      const wanted = request.query.section === undefined ? undefined : [request.query.section].flat();
      // The peer's answer is opened, checked, serialised and audited inside the peer's bulkhead:
      // that is where the document is in memory several times over. It is serialised before the
      // audit record is written, so that only the answer's bytes wait for that write.
      const left = callerLeft(reply);
      const { summary, signedAt, body } = await opts.peers.withSlot(
        country,
        () =>
          summaryFromAbroadAs(deps, { token, assertion, remoteAddress: request.ip, requestId: request.id, signal: left }, country, ref, wanted, (fetched) => {
            const signedAt = fetched.signedAt.toISOString();
            // Provenance travels with the document as FHIR Bundle.signature: the provider's own JWS
            // over the answer (sigFormat application/jose), verifiable against its trust-list keys.
            const body = withSignature(fetched.bundle, {
              type: [{ system: 'urn:iso-astm:E1762-95:2013', code: '1.2.840.10065.1.12.1.5', display: 'Verification Signature' }],
              when: signedAt,
              who: { identifier: { system: 'urn:ncpeh:ncp', value: fetched.signerNcpId }, display: `National Contact Point ${country}` },
              sigFormat: 'application/jose',
            }, fetched.jws);
            return { summary: { signerNcpId: fetched.signerNcpId, basis: fetched.basis }, signedAt, body };
          }),
        { signal: left },
      );
      return reply
        .header('content-type', FHIR_JSON)
        .header('x-ncpeh-signed-by', summary.signerNcpId)
        .header('x-ncpeh-signed-at', signedAt)
        .header('x-ncpeh-consent-basis', summary.basis)
        .header('cache-control', 'no-store')
        .send(body);
    },
  );
};
