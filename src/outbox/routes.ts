/**
 * Hospital routes for data back home (country B): submit a Bundle about a patient of another country
 * (202 with a tracking id once it is durably stored), and read where it stands.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Auditor } from '../audit/auditor.js';
import { GatewayError } from '../http/errors.js';
import { requireHcp, type GuardOptions } from '../identity/guards.js';
import { auditUser } from '../crossborder/provider.js';
import type { SubmissionStore, SubmissionView } from './outbox.js';
import { checkSubmissionBundle, contentHash } from './submission-bundle.js';

export interface SubmissionRoutesOptions {
  readonly guard: GuardOptions;
  readonly ourCountry: string;
  readonly store: SubmissionStore;
  readonly audit: Auditor;
  readonly maxBodyBytes: number;
  /** Called after a submission is stored, to start delivery at once. */
  readonly onQueued?: () => void;
}

const IDEMPOTENCY_KEY = /^[A-Za-z0-9._:-]{8,128}$/;

const StatusView = z.object({
  trackingId: z.string(),
  status: z.enum(['queued', 'delivering', 'delivered', 'failed']),
  country: z.string(),
  submittedAt: z.string(),
  attempts: z.number(),
  deliveredAt: z.string().nullable(),
  receipt: z.string().nullable(),
  reason: z.string().nullable(),
});

function render(v: SubmissionView): z.infer<typeof StatusView> {
  return {
    trackingId: v.trackingId,
    status: v.status,
    country: v.country,
    submittedAt: v.submittedAt.toISOString(),
    attempts: v.attempts,
    deliveredAt: v.deliveredAt === null ? null : v.deliveredAt.toISOString(),
    receipt: v.receipt,
    reason: v.reason,
  };
}

export const submissionRoutes: FastifyPluginAsyncZod<SubmissionRoutesOptions> = async (app, opts) => {
  app.post(
    '/api/v1/cross-border/patients/:country/:ref/documents',
    {
      bodyLimit: opts.maxBodyBytes,
      schema: {
        summary: 'Send a FHIR Bundle (document or collection) about the patient back to their country; 202 once stored durably',
        tags: ['cross-border'],
        params: z.object({ country: z.string().regex(/^[A-Z]{2}$/), ref: z.string().min(1).max(128) }),
        headers: z.object({ 'idempotency-key': z.string().optional() }).loose(),
        body: z.record(z.string(), z.unknown()),
        response: { 202: z.object({ trackingId: z.string(), status: z.string() }) },
      },
    },
    async (request, reply) => {
      const { token, assertion } = await requireHcp(request, opts.guard);
      const key = request.headers['idempotency-key'];
      if (key === undefined) throw new GatewayError('submission.idempotency-key-required');
      if (!IDEMPOTENCY_KEY.test(key)) throw new GatewayError('request.invalid', 'Idempotency-Key must be 8-128 characters of [A-Za-z0-9._:-]', { expression: ['headers.idempotency-key'] });
      const { country, ref } = request.params;
      if (country === opts.ourCountry) throw new GatewayError('peer.unknown-country', country);
      checkSubmissionBundle(request.body, `Patient/${ref}`);
      const { view, created } = await opts.store.submit({
        clientId: assertion.client_id,
        idempotencyKey: key,
        bodyHash: contentHash({ country, ref, bundle: request.body }),
        country,
        patientRef: ref,
        hcpSubject: assertion.sub,
        hcpToken: token,
        bundle: request.body,
      });
      if (created) {
        await opts.audit.record({
          kind: 'submission-sent',
          outcome: 'success',
          user: auditUser(assertion),
          client: { id: assertion.client_id, network: request.ip },
          sourceCountry: opts.ourCountry,
          transactionId: request.id,
          patient: { reference: `Patient/${ref}` },
          entityExtra: [{ what: { identifier: { system: 'urn:ncpeh:submission', value: view.trackingId } }, description: `queued for ${country}` }],
        });
        opts.onQueued?.();
      }
      return reply.code(202).header('location', `/api/v1/cross-border/submissions/${view.trackingId}`).send({ trackingId: view.trackingId, status: view.status });
    },
  );

  app.get(
    '/api/v1/cross-border/submissions/:trackingId',
    {
      schema: {
        summary: 'Where a submission stands: queued, delivering, delivered (with the signed receipt) or failed (with the reason)',
        tags: ['cross-border'],
        params: z.object({ trackingId: z.string().max(64) }),
        response: { 200: StatusView },
      },
    },
    async (request) => {
      const { assertion } = await requireHcp(request, opts.guard);
      return render(await opts.store.status(request.params.trackingId, assertion.client_id));
    },
  );
};
