/**
 * The hospital/citizen API's OpenAPI 3.1 document (`GET /api/v1/openapi.json`) and a docs page
 * (`/api/v1/docs`), both generated from the zod schemas the routes validate with, so the document
 * cannot drift from what the gateway accepts (DESIGN.md 3.1: every route appears in it).
 *
 * Registered on the root instance before any route: @fastify/swagger collects routes through an
 * onRoute hook, and sees only the routes added after it (and only outside an encapsulated child).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import swagger, { type SwaggerTransform } from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance, FastifySchema } from 'fastify';
import type { OpenAPIV3_1 } from 'openapi-types';
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ERROR_CATALOGUE, ERROR_SYSTEM, type ErrorCode } from './errors.js';

export const OPENAPI_PATH = '/api/v1/openapi.json';
export const DOCS_PREFIX = '/api/v1/docs';

export interface OpenApiOptions {
  /** ISO country code of this gateway, named in the document's title. */
  readonly country: string;
  /** Externally visible base URL of the API listener (config `api.publicUrl`), if known. */
  readonly publicUrl?: string | undefined;
}

export const OPENAPI_TAGS = [
  { name: 'auth', description: 'Sign-in: professionals through their hospital EHR, citizens through the national eID' },
  { name: 'consent', description: 'The signed-in citizen\'s consents to cross-border access' },
  { name: 'cross-border', description: 'Health professionals reading and writing data of patients from other countries' },
  { name: 'audit', description: 'The tamper-evident audit log: a citizen\'s access log and Merkle proofs' },
  { name: 'operations', description: 'Machine-readable description of this API' },
] as const;

/** Names of `components.securitySchemes`; routes are mapped onto them in `securityFor`. */
const SECURITY_SCHEMES = {
  hcpAssertion: {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'IUA-JWT',
    description: 'HCP assertion issued by POST /api/v1/auth/hcp (IHE IUA-style JWT signed by this gateway)',
  },
  citizenBearer: {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description: 'Citizen session token returned by GET /api/v1/auth/callback (typ ncpeh-citizen+jwt)',
  },
  citizenCookie: {
    type: 'apiKey',
    in: 'cookie',
    name: 'ncpeh_session',
    description: 'The same citizen session as an HttpOnly cookie, set by GET /api/v1/auth/callback',
  },
} as const;

/**
 * Which credential each group of routes demands (src/identity/guards.ts: `requireHcp`,
 * `requireCitizen`). Routes not listed here authenticate in their body (auth/hcp: client
 * assertion) or are public.
 */
function securityFor(url: string): Array<Record<string, string[]>> | undefined {
  if (url.startsWith('/api/v1/cross-border/')) return [{ hcpAssertion: [] }];
  if (url.startsWith('/api/v1/me/')) return [{ citizenBearer: [] }, { citizenCookie: [] }];
  return undefined;
}

const ErrorCodes = Object.keys(ERROR_CATALOGUE) as [ErrorCode, ...ErrorCode[]];

/** The one error body (src/http/outcome.ts), as a schema shared by every route's 4XX/5XX answer. */
const OperationOutcomeSchema = z
  .object({
    resourceType: z.literal('OperationOutcome'),
    id: z.string().optional().describe('Correlation id, also sent as the x-request-id header'),
    issue: z
      .array(
        z.object({
          severity: z.enum(['fatal', 'error', 'warning', 'information']),
          code: z.string().describe('FHIR issue type'),
          details: z.object({
            coding: z.array(z.object({ system: z.literal(ERROR_SYSTEM), code: z.enum(ErrorCodes) })).min(1),
            text: z.string(),
          }),
          diagnostics: z.string().optional().describe('Detail from the failing check, only for codes that allow it (docs/errors.md)'),
          expression: z.array(z.string()).optional().describe('Failing request paths, e.g. body.identifier.value'),
        }),
      )
      .min(1),
  })
  .describe('FHIR R4 OperationOutcome; the stable error code is issue[0].details.coding[0].code (docs/errors.md)');

/** OpenAPI 3.1 schema objects are JSON Schema 2020-12, which is what zod emits for this target. */
function operationOutcomeJsonSchema(): OpenAPIV3_1.SchemaObject {
  const { $schema: _ignored, ...schema } = z.toJSONSchema(OperationOutcomeSchema, { target: 'draft-2020-12', io: 'output' });
  return schema as OpenAPIV3_1.SchemaObject;
}

const OUTCOME_REF = { $ref: '#/components/schemas/OperationOutcome' } as const;

function errorResponse(description: string): Record<string, unknown> {
  return { description, content: { 'application/fhir+json': { schema: OUTCOME_REF } } };
}

/**
 * The zod transform, plus what every operation shares: the OperationOutcome error answers and the
 * credential its group of routes requires.
 */
const transform: SwaggerTransform = (input) => {
  const result = jsonSchemaTransform(input);
  const schema: FastifySchema & Record<string, unknown> = { ...result.schema };
  if (schema['hide'] === true) return result;
  const response: Record<string, unknown> = { ...(isRecord(schema.response) ? schema.response : {}) };
  // Swagger documents a bare "200 Default Response" when a route declares no answer; keep that
  // once error answers are added, so such routes still show a success.
  if (!Object.keys(response).some((status) => /^[23]/.test(status))) response['200'] = { description: 'Default Response', type: 'null' };
  response['4XX'] ??= errorResponse('Refused: an OperationOutcome with a stable error code (docs/errors.md)');
  response['5XX'] ??= errorResponse('Failed: an OperationOutcome with a stable error code and the correlation id');
  schema.response = response;
  const security = securityFor(result.url);
  if (security !== undefined && schema['security'] === undefined) schema['security'] = security;
  return { schema, url: result.url };
};

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Our own package.json (from src/ under tsx and from dist/src/ after a build). */
function packageVersion(from: string = import.meta.url): string {
  let dir = dirname(fileURLToPath(from));
  for (;;) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg: unknown = JSON.parse(readFileSync(file, 'utf8'));
      if (isRecord(pkg) && pkg['name'] === 'ncpeh' && typeof pkg['version'] === 'string') return pkg['version'];
    }
    const parent = dirname(dir);
    if (parent === dir) return '0.0.0';
    dir = parent;
  }
}

/**
 * Swagger UI loads only its own script, style and images, all served by @fastify/swagger-ui from
 * the package (no CDN); everything else stays closed as on the rest of the API. Its initializer is
 * an external script (no inline script), so no hash or 'unsafe-inline' is needed.
 */
export const DOCS_CSP = {
  'default-src': ["'none'"],
  'script-src': ["'self'"],
  'style-src': ["'self'"],
  'img-src': ["'self'", 'data:'],
  'font-src': ["'self'", 'data:'],
  'connect-src': ["'self'"],
  'base-uri': ["'none'"],
  'form-action': ["'none'"],
  'frame-ancestors': ["'none'"],
};

/**
 * Registers the OpenAPI generator, the document route and the docs page on the root instance
 * (not as an encapsulated plugin, so that the routes registered after it are documented).
 */
export async function registerOpenApi(app: FastifyInstance, opts: OpenApiOptions): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: `ncpeh ${opts.country} gateway API`,
        version: packageVersion(),
        description:
          `The hospital/citizen API of the ${opts.country} National Contact Point for eHealth. Professionals sign in ` +
          'through their hospital EHR (POST /api/v1/auth/hcp) and call the cross-border routes with the HCP assertion ' +
          'as a Bearer token; citizens sign in with their national eID and manage consents and read their access log. ' +
          'Every error is a FHIR OperationOutcome with a stable code (docs/errors.md).',
      },
      ...(opts.publicUrl === undefined ? {} : { servers: [{ url: opts.publicUrl }] }),
      tags: OPENAPI_TAGS.map((t) => ({ ...t })),
      components: { securitySchemes: SECURITY_SCHEMES, schemas: { OperationOutcome: operationOutcomeJsonSchema() } },
    },
    transform,
    transformObject: jsonSchemaTransformObject,
  });

  app.get(
    OPENAPI_PATH,
    { schema: { summary: 'This document: the OpenAPI 3.1 description of the hospital/citizen API', tags: ['operations'] } },
    async () => app.swagger(),
  );

  await app.register(swaggerUi, {
    routePrefix: DOCS_PREFIX,
    staticCSP: DOCS_CSP,
    uiConfig: { deepLinking: true },
  });
}
