import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { buildApiApp } from '../src/app.js';
import { ERROR_SYSTEM } from '../src/http/errors.js';
import { createLogger } from '../src/http/logger.js';
import type { Db } from '../src/storage/db.js';
import { openTestDb } from './helpers/db.js';
import { createTestDeployment, type TestDeployment } from './helpers/deployment.js';
import { memoryLog, testGatewayDeps } from './helpers/gateway.js';

/** Routes that exist only to drive the shared error pipeline from a test. */
const probeRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/probe/echo',
    { schema: { body: z.object({ name: z.string().min(1), identifier: z.object({ system: z.string(), value: z.string().regex(/^\d+$/) }) }) } },
    async (request) => ({ received: request.body.name }),
  );
  app.post('/probe/small', { bodyLimit: 64, schema: { body: z.object({}).passthrough() } }, async () => ({ ok: true }));
  app.get('/probe/boom', async () => {
    throw new Error('internal detail: relation "secret_table" does not exist at /srv/app.js:42');
  });
};

function outcomeCode(body: string): string | undefined {
  const parsed: unknown = JSON.parse(body);
  assert.ok(typeof parsed === 'object' && parsed !== null);
  const outcome = parsed as { resourceType?: string; issue?: Array<{ details?: { coding?: Array<{ system?: string; code?: string }> } }> };
  assert.equal(outcome.resourceType, 'OperationOutcome');
  const coding = outcome.issue?.[0]?.details?.coding?.[0];
  assert.equal(coding?.system, ERROR_SYSTEM);
  return coding?.code;
}

describe('HTTP error model and common plugins', () => {
  let db: Db;
  let app: FastifyInstance;
  let deployment: TestDeployment;
  const log = memoryLog();

  before(async () => {
    deployment = await createTestDeployment({ countries: ['DK'] });
    db = await openTestDb();
    const logger = createLogger({ level: 'info', country: 'DK', destination: log.stream });
    app = await buildApiApp(await testGatewayDeps(deployment, 'DK', db, logger));
    await app.register(probeRoutes);
    await app.ready();
  });
  after(async () => {
    await app.close();
    await db.close();
    await deployment.cleanup();
  });

  test('an unknown route answers 404 as an OperationOutcome with a request id', async () => {
    const res = await app.inject({ method: 'GET', url: '/api/v1/nothing-here' });
    assert.equal(res.statusCode, 404);
    assert.match(String(res.headers['content-type']), /^application\/fhir\+json/);
    assert.equal(outcomeCode(res.body), 'request.not-found');
    assert.ok(typeof res.headers['x-request-id'] === 'string' && res.headers['x-request-id'].length >= 8);
  });

  test('a schema violation answers 400 naming the failing path', async () => {
    const res = await app.inject({ method: 'POST', url: '/probe/echo', payload: { name: 'x', identifier: { system: 's', value: 'abc' } } });
    assert.equal(res.statusCode, 400);
    assert.equal(outcomeCode(res.body), 'request.invalid');
    const issue = (JSON.parse(res.body) as { issue: Array<{ expression?: string[] }> }).issue[0];
    assert.deepEqual(issue?.expression, ['body.identifier.value']);
  });

  test('malformed JSON answers 400 request.malformed-json', async () => {
    const res = await app.inject({ method: 'POST', url: '/probe/echo', headers: { 'content-type': 'application/json' }, payload: '{"name": ' });
    assert.equal(res.statusCode, 400);
    assert.equal(outcomeCode(res.body), 'request.malformed-json');
  });

  test('an empty JSON body answers 400 request.malformed-json', async () => {
    const res = await app.inject({ method: 'POST', url: '/probe/echo', headers: { 'content-type': 'application/json' }, payload: '' });
    assert.equal(res.statusCode, 400);
    assert.equal(outcomeCode(res.body), 'request.malformed-json');
  });

  test('an unsupported content type answers 415 before any parsing', async () => {
    const res = await app.inject({ method: 'POST', url: '/probe/echo', headers: { 'content-type': 'text/plain' }, payload: 'name=x' });
    assert.equal(res.statusCode, 415);
    assert.equal(outcomeCode(res.body), 'request.unsupported-media-type');
  });

  test('application/fhir+json is accepted like application/json', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/probe/echo',
      headers: { 'content-type': 'application/fhir+json' },
      payload: JSON.stringify({ name: 'x', identifier: { system: 's', value: '1' } }),
    });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { received: 'x' });
  });

  test('a body over the default 1 MiB limit answers 413', async () => {
    const big = JSON.stringify({ name: 'x'.repeat(1024 * 1024 + 10), identifier: { system: 's', value: '1' } });
    const res = await app.inject({ method: 'POST', url: '/probe/echo', headers: { 'content-type': 'application/json' }, payload: big });
    assert.equal(res.statusCode, 413);
    assert.equal(outcomeCode(res.body), 'request.too-large');
  });

  test('a per-route body limit is enforced', async () => {
    const res = await app.inject({ method: 'POST', url: '/probe/small', payload: { filler: 'y'.repeat(100) } });
    assert.equal(res.statusCode, 413);
    assert.equal(outcomeCode(res.body), 'request.too-large');
  });

  test('__proto__ and constructor keys are refused and never pollute objects', async () => {
    for (const payload of [
      '{"name":"x","identifier":{"system":"s","value":"1"},"__proto__":{"polluted":true}}',
      '{"name":"x","identifier":{"system":"s","value":"1","constructor":{"prototype":{"polluted":true}}}}',
    ]) {
      const res = await app.inject({ method: 'POST', url: '/probe/echo', headers: { 'content-type': 'application/json' }, payload });
      assert.equal(res.statusCode, 400);
      assert.equal(outcomeCode(res.body), 'request.forbidden-key');
    }
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  test('an unknown error answers a generic 500 with the correlation id and no internal detail', async () => {
    const res = await app.inject({ method: 'GET', url: '/probe/boom', headers: { 'x-request-id': 'corr-12345678' } });
    assert.equal(res.statusCode, 500);
    assert.equal(outcomeCode(res.body), 'internal.error');
    assert.doesNotMatch(res.body, /secret_table|app\.js|internal detail|at /);
    const outcome = JSON.parse(res.body) as { id?: string };
    assert.equal(outcome.id, 'corr-12345678');
    assert.equal(res.headers['x-request-id'], 'corr-12345678');
    const logged = log.lines.map((l) => JSON.parse(l) as { reqId?: string; msg?: string }).find((l) => l.reqId === 'corr-12345678' && l.msg === 'request failed');
    assert.ok(logged, 'the failure is logged under the same correlation id');
  });

  test('an unsafe incoming x-request-id is replaced, not echoed', async () => {
    const res = await app.inject({ method: 'GET', url: '/health/live', headers: { 'x-request-id': '<script>alert(1)</script>' } });
    assert.notEqual(res.headers['x-request-id'], '<script>alert(1)</script>');
  });

  test('security headers from helmet are set', async () => {
    const res = await app.inject({ method: 'GET', url: '/health/live' });
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    assert.match(String(res.headers['content-security-policy']), /default-src 'none'/);
    assert.match(String(res.headers['strict-transport-security']), /max-age=31536000/);
    assert.equal(res.headers['x-frame-options'], 'SAMEORIGIN');
  });

  test('request log lines carry route, status and duration but no headers, tokens or bodies', async () => {
    const before = log.lines.length;
    await app.inject({
      method: 'POST',
      url: '/probe/echo?cpr=0201609995',
      headers: { authorization: 'Bearer secret-token-value', cookie: 'sid=secret-cookie' },
      payload: { name: 'Kenneth', identifier: { system: 'urn:oid:1.2.208.176.1.2', value: '0201609995' } },
    });
    const lines = log.lines.slice(before);
    const completed = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'request completed');
    assert.ok(completed);
    assert.equal(completed.route, '/probe/echo');
    assert.equal(completed.status, 200);
    assert.equal(typeof completed.durationMs, 'number');
    const text = lines.join('\n');
    for (const secret of ['secret-token-value', 'secret-cookie', '0201609995', 'Kenneth']) assert.ok(!text.includes(secret), `log leaks ${secret}`);
  });

  test('readiness checks the database; liveness does not', async () => {
    const ready = await app.inject({ method: 'GET', url: '/health/ready' });
    assert.equal(ready.statusCode, 200);
    assert.deepEqual(ready.json(), { status: 'ready', checks: { database: 'ok', 'trust-list': 'ok' } });
    const live = await app.inject({ method: 'GET', url: '/health/live' });
    assert.equal(live.statusCode, 200);
  });

  test('metrics are exposed in Prometheus text format with per-route counters', async () => {
    await app.inject({ method: 'GET', url: '/health/live' });
    const res = await app.inject({ method: 'GET', url: '/metrics' });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^text\/plain/);
    assert.match(res.body, /ncpeh_http_requests_total\{listener="api",method="GET",route="\/health\/live",status="200",country="DK"\} \d+/);
    assert.match(res.body, /ncpeh_http_request_duration_seconds_bucket/);
  });
});

describe('readiness without a database', () => {
  test('readiness answers 503 when the database is closed', async () => {
    const deployment = await createTestDeployment({ countries: ['DK'] });
    const db = await openTestDb();
    const app = await buildApiApp(await testGatewayDeps(deployment, 'DK', db, createLogger({ level: 'silent', country: 'DK' })));
    await db.close();
    const res = await app.inject({ method: 'GET', url: '/health/ready' });
    assert.equal(res.statusCode, 503);
    assert.deepEqual(res.json(), { status: 'not-ready', checks: { database: 'failed', 'trust-list': 'ok' } });
    await app.close();
    await deployment.cleanup();
  });
});
