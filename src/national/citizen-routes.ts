/**
 * `POST /api/v1/me/observations`: Kenneth, abroad, sends readings from his mHealth app straight to
 * his home gateway with his eID session. Registered like documents from abroad: in the national FHIR
 * server as conditional creates keyed by the Idempotency-Key (a retry never duplicates), his GP is
 * notified, and the access log records it.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Auditor } from '../audit/auditor.js';
import { registrationBundle, type Notifier } from '../crossborder/receiver.js';
import { GatewayError } from '../http/errors.js';
import { requireCitizen, type GuardOptions } from '../identity/guards.js';
import { checkSubmissionBundle } from '../outbox/submission-bundle.js';
import type { NationalFhir } from './fhir.js';

const TransactionResponse = z.object({
  entry: z.array(z.object({ response: z.object({ location: z.string().optional() }).loose() }).loose()).optional(),
});

export const citizenReadingsRoutes: FastifyPluginAsyncZod<{
  guard: GuardOptions;
  national: NationalFhir;
  audit: Auditor;
  notify: Notifier;
  country: string;
}> = async (app, opts) => {
  app.post(
    '/api/v1/me/observations',
    {
      bodyLimit: 512 * 1024,
      schema: {
        summary: 'Send your own readings (a collection of Observations about Patient/me) to your national record',
        tags: ['consent'],
        headers: z.object({ 'idempotency-key': z.string().optional() }).loose(),
        body: z.record(z.string(), z.unknown()),
        response: { 201: z.object({ registered: z.array(z.string()) }) },
      },
    },
    async (request, reply) => {
      const session = await requireCitizen(request, opts.guard);
      const key = request.headers['idempotency-key'];
      if (key === undefined) throw new GatewayError('submission.idempotency-key-required');
      if (!/^[A-Za-z0-9._:-]{8,128}$/.test(key)) throw new GatewayError('request.invalid', 'Idempotency-Key', { expression: ['headers.idempotency-key'] });
      const checked = checkSubmissionBundle(request.body, 'Patient/me');
      if (request.body['type'] !== 'collection' || checked.resources.some((r) => r.resourceType !== 'Observation')) {
        throw new GatewayError('submission.invalid', 'a collection of Observation resources is expected', { expression: ['Bundle.entry'] });
      }
      const patient = await opts.national.findByIdentifier(session.patient);
      if (patient === undefined) throw new GatewayError('patient.not-found');
      // Keyed by the person and the key: the same key from another citizen is another message.
      const messageId = `citizen:${session.personId}:${key}`;
      const response = TransactionResponse.safeParse(await opts.national.transaction(registrationBundle(request.body, checked.resources, patient.id, messageId)));
      if (!response.success) throw new GatewayError('national.bad-response', 'transaction response');
      const registered = (response.data.entry ?? []).map((e) => (e.response.location ?? '').replace(/\/_history\/.*$/, '')).filter((l) => l.length > 0);
      await opts.notify({ messageId, senderCountry: opts.country, patientId: patient.id, registered });
      await opts.audit.record(
        {
          kind: 'submission-registered',
          outcome: 'success',
          user: { id: { iss: 'urn:ncpeh:eid:citizen', sub: session.personId }, ...(session.name === undefined ? {} : { name: session.name }) },
          transactionId: request.id,
          entityExtra: [{ what: { display: `${registered.length} readings from the patient` } }],
        },
        { patientKey: session.patientKey },
      );
      return reply.code(201).send({ registered });
    },
  );
};
