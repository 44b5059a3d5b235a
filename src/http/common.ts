/**
 * What every listener shares: request ids, security headers, JSON parsing, the error handler,
 * request logging without patient data, and request metrics.
 */
import { randomUUID } from 'node:crypto';
import helmet from '@fastify/helmet';
import { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { installJsonParsers } from './body.js';
import { installErrorHandling } from './error-handler.js';
import type { Metrics } from './metrics.js';

/** A caller's x-request-id is kept for end-to-end correlation only when it is this harmless. */
const INCOMING_ID = /^[A-Za-z0-9._:-]{8,64}$/;

type CompilersFactory = NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>;
// Fastify types these factories after ajv's and fast-json-stringify's signatures; at run time it
// only calls them and uses the compiler they return, which is all zod's compilers need.
const ZOD_COMPILERS = { buildValidator: () => validatorCompiler, buildSerializer: () => serializerCompiler } as unknown as CompilersFactory;

/**
 * Request ids, logging and schema compilers shared by both listeners; request lines are logged by
 * us. Every schema is a zod schema, so Fastify is given zod's compilers from the start: otherwise it
 * loads its default ones (ajv, fast-json-stringify) for each instance, about 70 ms of every start,
 * only for registerCommon to replace them.
 */
export function serverOptions(): Pick<FastifyServerOptions, 'genReqId' | 'requestIdHeader' | 'logController' | 'schemaController'> {
  return {
    schemaController: { compilersFactory: ZOD_COMPILERS },
    requestIdHeader: false,
    logController: new LogController({ requestIdLogLabel: 'reqId', disableRequestLogging: true }),
    genReqId: (req) => {
      const incoming = req.headers['x-request-id'];
      return typeof incoming === 'string' && INCOMING_ID.test(incoming) ? incoming : randomUUID();
    },
  };
}

export async function registerCommon(app: FastifyInstance, opts: { listener: 'api' | 'peer'; metrics: Metrics }): Promise<void> {
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  installJsonParsers(app);
  installErrorHandling(app);
  await app.register(helmet, {
    // The API answers JSON only; pages (portal) set their own stricter policy per route.
    contentSecurityPolicy: { directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
    crossOriginResourcePolicy: { policy: 'same-origin' },
    hsts: { maxAge: 31536000, includeSubDomains: true },
  });

  app.addHook('onRequest', async (request, reply) => {
    void reply.header('x-request-id', request.id);
  });
  app.addHook('onResponse', async (request, reply) => {
    // The route pattern (`/patients/:ref`), never the concrete URL: paths and query strings may
    // carry identifiers.
    const route = request.routeOptions.url ?? 'unmatched';
    const seconds = reply.elapsedTime / 1000;
    opts.metrics.httpRequests.inc({ listener: opts.listener, method: request.method, route, status: String(reply.statusCode) });
    opts.metrics.httpDuration.observe({ listener: opts.listener, method: request.method, route }, seconds);
    request.log.info(
      { listener: opts.listener, method: request.method, route, status: reply.statusCode, durationMs: Math.round(reply.elapsedTime * 10) / 10 },
      'request completed',
    );
  });
}
