import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApiApp } from '../src/app.js';
import { createLogger } from '../src/http/logger.js';
import type { Db } from '../src/storage/db.js';
import { openTestDb } from './helpers/db.js';
import { createTestDeployment, type TestDeployment } from './helpers/deployment.js';
import { memoryLog, testGatewayDeps } from './helpers/gateway.js';

interface Operation {
  summary?: string;
  tags?: string[];
  parameters?: Array<{ in: string; name: string; required?: boolean }>;
  requestBody?: { content: Record<string, { schema: { required?: string[]; properties?: Record<string, unknown> } }> };
  responses: Record<string, { content?: Record<string, { schema?: { $ref?: string } }> }>;
  security?: Array<Record<string, string[]>>;
}
interface OpenApiDocument {
  openapi: string;
  info: { title: string; version: string };
  tags: Array<{ name: string }>;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, unknown>; securitySchemes: Record<string, { type: string; scheme?: string; in?: string; name?: string }> };
}

/**
 * Routes that are deliberately left out of the document (`schema.hide`): operator endpoints, key
 * publication and the docs page itself. A new hidden route must be added here on purpose.
 */
// HTML pages (citizen portal, professional viewer) are not part of the API document.
const HIDDEN: readonly RegExp[] = [/^\/health\/(live|ready)$/, /^\/metrics$/, /^\/\.well-known\/jwks\.json$/, /^\/api\/v1\/docs(\/.*)?$/, /^\/(portal|viewer)(\/.*)?$/];

/** Every route of the app, from Fastify's own route tree (`printRoutes`), HEAD twins of GET left out. */
function registeredRoutes(app: FastifyInstance): Array<{ method: string; url: string }> {
  const routes: Array<{ method: string; url: string }> = [];
  const stack: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const match = /^([│ ]*)[├└]── (.+?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (match === null) continue;
    const depth = (match[1] ?? '').length / 4;
    stack.length = depth;
    stack.push(match[2] ?? '');
    const methods = (match[3] ?? '').split(',').map((m) => m.trim()).filter((m) => m.length > 0);
    const url = stack.join('');
    for (const method of methods) {
      if (method === 'HEAD' && methods.includes('GET')) continue;
      routes.push({ method, url });
    }
  }
  return routes;
}

const openApiPath = (url: string): string => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

describe('the OpenAPI document and the docs page', () => {
  let db: Db;
  let app: FastifyInstance;
  let deployment: TestDeployment;
  let doc: OpenApiDocument;

  before(async () => {
    deployment = await createTestDeployment({ countries: ['DK'] });
    // Routes that exist only with a national FHIR server must be documented too; building the app
    // does not contact it.
    const configFile = deployment.configFile('DK');
    const config = JSON.parse(await readFile(configFile, 'utf8')) as Record<string, unknown>;
    await writeFile(configFile, JSON.stringify({ ...config, nationalFhir: { baseUrl: 'http://127.0.0.1:9/fhir' } }));
    db = await openTestDb();
    const logger = createLogger({ level: 'info', country: 'DK', destination: memoryLog().stream });
    app = await buildApiApp(await testGatewayDeps(deployment, 'DK', db, logger));
    await app.ready();
    const res = await app.inject({ method: 'GET', url: '/api/v1/openapi.json' });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    doc = JSON.parse(res.body) as OpenApiDocument;
  });
  after(async () => {
    await app.close();
    await db.close();
    await deployment.cleanup();
  });

  test('is an OpenAPI 3.1 document titled after the country, versioned like the package', () => {
    assert.match(doc.openapi, /^3\.1\./);
    assert.equal(doc.info.title, 'ncpeh DK gateway API');
    assert.match(doc.info.version, /^\d+\.\d+\.\d+/);
    assert.deepEqual(doc.tags.map((t) => t.name), ['auth', 'consent', 'cross-border', 'audit', 'operations']);
  });

  test('documents the API routes DESIGN.md 3.1 names', () => {
    const expected: Array<[string, string]> = [
      ['post', '/api/v1/auth/hcp'],
      ['get', '/api/v1/auth/login'],
      ['get', '/api/v1/auth/callback'],
      ['get', '/api/v1/me/consents'],
      ['post', '/api/v1/me/consents'],
      ['delete', '/api/v1/me/consents/{id}'],
      ['get', '/api/v1/me/access-log'],
      ['post', '/api/v1/cross-border/patients/$identify'],
      ['get', '/api/v1/cross-border/patients/{country}/{ref}/summary'],
      ['get', '/api/v1/audit/proof'],
      ['post', '/api/v1/cross-border/patients/{country}/{ref}/documents'],
      ['get', '/api/v1/cross-border/submissions/{trackingId}'],
    ];
    for (const [method, path] of expected) assert.ok(doc.paths[path]?.[method] !== undefined, `${method.toUpperCase()} ${path} is documented`);
  });

  test('every route of the API app is documented with a schema, unless deliberately hidden', () => {
    const routes = registeredRoutes(app);
    assert.ok(routes.length >= 15, `found only ${routes.length} routes in printRoutes()`);
    for (const { method, url } of routes) {
      const operation = doc.paths[openApiPath(url)]?.[method.toLowerCase()];
      if (HIDDEN.some((h) => h.test(url))) {
        assert.equal(operation, undefined, `${method} ${url} is an operator/infrastructure route and must stay hidden`);
        continue;
      }
      assert.ok(operation !== undefined, `${method} ${url} is missing from the OpenAPI document (give it a schema, or hide it on purpose)`);
      // summary and tags only come from a route's schema: a route without one fails here.
      assert.ok(operation.summary !== undefined && operation.summary.length > 0, `${method} ${url} has no schema summary`);
      assert.ok(operation.tags !== undefined && operation.tags.length > 0, `${method} ${url} has no tag`);
      for (const tag of operation.tags) assert.ok(doc.tags.some((t) => t.name === tag), `${method} ${url}: undeclared tag ${tag}`);
      for (const [, name] of url.matchAll(/:([A-Za-z0-9_]+)/g)) {
        assert.ok(
          operation.parameters?.some((p) => p.in === 'path' && p.name === name),
          `${method} ${url}: path parameter ${name} has no schema`,
        );
      }
      if (method === 'POST' && !url.endsWith('/logout')) assert.ok(operation.requestBody !== undefined, `${method} ${url} has no body schema`);
    }
  });

  test('leaves health, metrics, the JWKS and the peer API out', () => {
    for (const path of Object.keys(doc.paths)) {
      assert.ok(!/^\/(health|metrics|\.well-known|ncp)\b/.test(path), `${path} must not be documented`);
      assert.ok(path.startsWith('/api/v1/'), path);
    }
  });

  test('request bodies carry the zod-derived JSON schema', () => {
    const identify = doc.paths['/api/v1/cross-border/patients/$identify']?.['post']?.requestBody?.content['application/json']?.schema;
    assert.ok(identify !== undefined);
    assert.deepEqual([...(identify.required ?? [])].sort(), ['country', 'identifier']);
    assert.deepEqual(identify.properties?.['country'], { type: 'string', pattern: '^[A-Z]{2}$' });
    const hcp = doc.paths['/api/v1/auth/hcp']?.['post']?.requestBody?.content['application/json']?.schema;
    assert.ok(hcp?.required?.includes('client_assertion'));
  });

  test('every operation answers errors as a shared OperationOutcome (4XX and 5XX)', () => {
    const outcome = doc.components.schemas['OperationOutcome'] as { properties?: Record<string, unknown> } | undefined;
    assert.ok(outcome?.properties?.['issue'] !== undefined);
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, operation] of Object.entries(item)) {
        for (const status of ['4XX', '5XX']) {
          const schema = operation.responses[status]?.content?.['application/fhir+json']?.schema;
          assert.equal(schema?.$ref, '#/components/schemas/OperationOutcome', `${method} ${path} ${status}`);
        }
        assert.ok(Object.keys(operation.responses).some((s) => /^[23]/.test(s)), `${method} ${path} documents no success`);
      }
    }
  });

  test('declares the HCP assertion, the citizen bearer and the session cookie, and which routes need which', () => {
    const schemes = doc.components.securitySchemes;
    assert.deepEqual(schemes['hcpAssertion'] && { type: schemes['hcpAssertion'].type, scheme: schemes['hcpAssertion'].scheme }, { type: 'http', scheme: 'bearer' });
    assert.equal(schemes['citizenBearer']?.scheme, 'bearer');
    assert.deepEqual(schemes['citizenCookie'] && { in: schemes['citizenCookie'].in, name: schemes['citizenCookie'].name }, { in: 'cookie', name: 'ncpeh_session' });
    assert.deepEqual(doc.paths['/api/v1/cross-border/patients/$identify']?.['post']?.security, [{ hcpAssertion: [] }]);
    assert.deepEqual(doc.paths['/api/v1/me/consents']?.['get']?.security, [{ citizenBearer: [] }, { citizenCookie: [] }]);
    assert.equal(doc.paths['/api/v1/auth/hcp']?.['post']?.security, undefined);
  });

  test('the docs page answers HTML with a CSP that allows only its own scripts and styles', async () => {
    const res = await app.inject({ method: 'GET', url: '/api/v1/docs' });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^text\/html/);
    assert.match(res.body, /<div id="swagger-ui">/);
    const csp = String(res.headers['content-security-policy']);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.match(csp, /style-src 'self'(;|$)/);
    assert.match(csp, /default-src 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https:/);
    // Every asset is served by the gateway itself: no CDN, no inline script.
    assert.doesNotMatch(res.body, /(src|href)="(https?:)?\/\//);
    assert.doesNotMatch(res.body, /<script>(?!\s*<\/script>)/);
    for (const [, asset] of res.body.matchAll(/(?:src|href)="([^"]+)"/g)) {
      const assetRes = await app.inject({ method: 'GET', url: asset ?? '' });
      assert.equal(assetRes.statusCode, 200, `${asset} is served locally`);
      assert.ok(assetRes.headers['content-security-policy'] !== undefined, `${asset} carries a CSP`);
    }
  });
});
