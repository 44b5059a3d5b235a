/**
 * The citizen's consent API (`/api/v1/me/consents`, DESIGN.md flow 1). Authenticated by the
 * citizen's eID session; consents are keyed by the national patient identifier the session names,
 * so nobody can read or revoke another person's consents.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { requireCitizen, type GuardOptions } from '../identity/guards.js';
import type { CitizenSession } from '../identity/citizen-session.js';
import type { TrustList } from '../trust/trust-list.js';
import { ConsentInputSchema, validateConsentInput } from './model.js';
import type { ConsentRepository, StoredConsent } from './repository.js';

export interface ConsentRoutesOptions {
  readonly guard: GuardOptions;
  readonly consents: ConsentRepository;
  readonly ourCountry: string;
  readonly trustList: () => TrustList;
  /** Audit hook: a consent was created or revoked (fail closed: a throw aborts the change's answer). */
  readonly onChange?: (change: { action: 'create' | 'revoke'; session: CitizenSession; consent: StoredConsent; requestId: string }) => Promise<void>;
}

const ConsentView = z.object({
  id: z.string(),
  kind: z.enum(['permit', 'opt-out']),
  status: z.enum(['active', 'revoked']),
  countries: z.array(z.string()),
  roles: z.array(z.string()),
  purposes: z.array(z.string()),
  sections: z.array(z.string()),
  periodStart: z.string(),
  periodEnd: z.string().nullable(),
  createdAt: z.string(),
  revokedAt: z.string().nullable(),
  resource: z.record(z.string(), z.unknown()),
});

function view(c: StoredConsent): z.infer<typeof ConsentView> {
  return {
    id: c.id,
    kind: c.kind,
    status: c.status,
    countries: [...c.countries],
    roles: [...c.roles],
    purposes: [...c.purposes],
    sections: [...c.sections],
    periodStart: c.periodStart.toISOString(),
    periodEnd: c.periodEnd === null ? null : c.periodEnd.toISOString(),
    createdAt: c.createdAt.toISOString(),
    revokedAt: c.revokedAt === null ? null : c.revokedAt.toISOString(),
    resource: { ...c.resource },
  };
}

export const consentRoutes: FastifyPluginAsyncZod<ConsentRoutesOptions> = async (app, opts) => {
  app.get(
    '/api/v1/me/consents',
    { schema: { summary: 'The signed-in citizen\'s consents, newest first', tags: ['consent'], response: { 200: z.object({ consents: z.array(ConsentView) }) } } },
    async (request) => {
      const session = await requireCitizen(request, opts.guard);
      return { consents: (await opts.consents.listForPatient(session.patientKey)).map(view) };
    },
  );

  app.post(
    '/api/v1/me/consents',
    {
      bodyLimit: 16 * 1024,
      // The schema documents the body (OpenAPI); the route validates itself so that an invalid
      // consent is a 422 naming every failing field, checked against the live trust list.
      attachValidation: true,
      schema: { summary: 'Grant a consent (or record an opt-out)', tags: ['consent'], body: ConsentInputSchema, response: { 201: ConsentView } },
    },
    async (request, reply) => {
      const session = await requireCitizen(request, opts.guard);
      const now = opts.guard.now();
      const knownCountries = Object.keys(opts.trustList().countries).filter((c) => c !== opts.ourCountry);
      const terms = validateConsentInput(request.body, { knownCountries, now });
      const stored = await opts.consents.grant(session, terms, { grantedAt: now, ourCountry: opts.ourCountry });
      await opts.onChange?.({ action: 'create', session, consent: stored, requestId: request.id });
      return reply.code(201).send(view(stored));
    },
  );

  app.delete(
    '/api/v1/me/consents/:id',
    {
      schema: {
        summary: 'Revoke a consent; effective for the very next request',
        tags: ['consent'],
        params: z.object({ id: z.string().max(64) }),
        response: { 200: ConsentView },
      },
    },
    async (request) => {
      const session = await requireCitizen(request, opts.guard);
      const revoked = await opts.consents.revoke(session.patientKey, request.params.id, opts.guard.now());
      await opts.onChange?.({ action: 'revoke', session, consent: revoked, requestId: request.id });
      return view(revoked);
    },
  );
};
